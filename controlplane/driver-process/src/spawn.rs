//! Starting a server as a detached process that outlives the CLI.
//!
//! Its own process group (a Ctrl-C at the terminal does not reach it), stdin from
//! `/dev/null`, stdout and stderr appended to its log file, a minimal environment
//! (nothing of ours leaks into a long-running server's `/proc/<pid>/environ`, such as
//! unseal keys), and secrets only through the variables it is given. While this
//! process lives, a thread reaps the child when it exits and keeps its exit status,
//! so readiness can say "exited with status 1" instead of waiting for a deadline.
//! Every program starts under umask 0077 (see [`SHELL`]).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};

use cp_runtime::exec;
use cp_runtime::secrets::Secret;

use crate::user::RunAs;

/// Variables of ours a server may see: paths and locale, nothing else.
const PASS_ENV: &[&str] = &[
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
    "TZ",
    "TMPDIR",
];

/// Exit statuses of the processes this driver started and reaped, by pid.
#[derive(Debug, Clone, Default)]
pub(crate) struct Exits(Arc<Mutex<HashMap<u32, ExitStatus>>>);

impl Exits {
    /// How `pid` ended, if it was ours and has.
    pub(crate) fn get(&self, pid: u32) -> Option<ExitStatus> {
        self.0.lock().expect("not poisoned").get(&pid).copied()
    }

    fn forget(&self, pid: u32) {
        self.0.lock().expect("not poisoned").remove(&pid);
    }

    fn set(&self, pid: u32, status: ExitStatus) {
        self.0.lock().expect("not poisoned").insert(pid, status);
    }
}

/// Says how a process ended, for people.
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!(
            "was killed by signal {sig}{}",
            nix::sys::signal::Signal::try_from(sig)
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        ),
        _ => "exited".into(),
    }
}

/// What to run.
#[derive(Debug)]
pub(crate) struct Spawn<'a> {
    /// The program.
    pub(crate) program: &'a Path,
    /// Its arguments.
    pub(crate) args: &'a [String],
    /// Extra variables (secrets among them).
    pub(crate) env: &'a [(String, Secret)],
    /// Working directory.
    pub(crate) cwd: &'a Path,
    /// Log file (appended to, created 0600).
    pub(crate) log: &'a Path,
    /// Another user to run as.
    pub(crate) run_as: Option<&'a RunAs>,
}

/// Opens a log file for appending, creating it 0600.
pub(crate) fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// The shell every server and helper is started through: it sets the umask to 0077
/// and replaces itself with the program (same pid, the program's own command line).
/// Every file a server writes holds data (Redis's `dump.rdb` and `users.acl`,
/// JetStream's store, Prometheus's blocks) and each picks its own mode from the umask
/// (Redis: 0644), so they start under 0077: files 0600, directories 0700. std sets a
/// child's umask only in an `unsafe` `pre_exec`, which this workspace forbids.
pub(crate) const SHELL: &str = "/bin/sh";

/// The shell's arguments before the program and its own.
pub(crate) const UMASK_WRAPPER: [&str; 2] = ["-c", "umask 077 && exec \"$0\" \"$@\""];

/// `cmdline` with the umask wrapper taken off when it is still the shell (in the
/// moment between the spawn and its `exec`).
pub(crate) fn unwrapped(cmdline: &[String]) -> &[String] {
    match cmdline {
        [sh, c, line, rest @ ..]
            if sh == SHELL && c == UMASK_WRAPPER[0] && line == UMASK_WRAPPER[1] =>
        {
            rest
        }
        _ => cmdline,
    }
}

/// Builds the command shared by servers and one-shot helpers (initdb).
pub(crate) fn command(s: &Spawn<'_>) -> std::io::Result<std::process::Command> {
    let log = open_log(s.log)?;
    let mut cmd = exec::command(Path::new(SHELL));
    cmd.args(UMASK_WRAPPER)
        .arg(s.program)
        .args(s.args)
        .current_dir(s.cwd)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .env_clear();
    for var in PASS_ENV {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    for (k, v) in s.env {
        cmd.env(k, v.expose());
    }
    if let Some(u) = s.run_as {
        // std drops supplementary groups when root sets a uid.
        cmd.uid(u.uid).gid(u.gid);
        if let Some(home) = nix::unistd::User::from_uid(u.uid.into())
            .ok()
            .flatten()
            .map(|u| u.dir)
        {
            cmd.env("HOME", home);
        }
    } else if let Some(home) = std::env::var_os("HOME") {
        cmd.env("HOME", home);
    }
    Ok(cmd)
}

/// Starts a detached server; returns its pid. The child is reaped by a thread of
/// ours while we live, and by init after.
pub(crate) fn detached(s: &Spawn<'_>, exits: &Exits) -> std::io::Result<u32> {
    let mut cmd = command(s)?;
    cmd.process_group(0);
    let mut child = cmd.spawn()?;
    let pid = child.id();
    exits.forget(pid);
    let exits = exits.clone();
    std::thread::Builder::new()
        .name(format!("reap-{pid}"))
        .spawn(move || {
            if let Ok(status) = child.wait() {
                exits.set(pid, status);
            }
        })?;
    Ok(pid)
}

/// The absolute form of a path (no I/O beyond the working directory).
pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
