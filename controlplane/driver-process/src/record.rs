//! The record of a started process (`<service>/process.json`): how the driver knows,
//! in a later run, which pid is its service and from which spec it was started.
//!
//! A pid alone is not an identity: after the process exits the kernel hands the
//! number to someone else. The record keeps the process's start time (and the boot
//! it belongs to) and its command line; [`Record::is_alive`] accepts a pid only when
//! all of them still match, and nothing is ever signalled that it does not accept.
//!
//! Spawning and recording cannot be one atomic step. So an intent
//! (`<service>/process.starting`: program, arguments, spec) is written before the
//! spawn and removed after the record: a run killed in between leaves the intent, and
//! the next run adopts the process it describes ([`adopt`]: same program and
//! arguments, working in the service's directory) instead of finding an unknown
//! server on its port.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::procfs;

/// What the driver knows about a process it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    /// The process id.
    pub(crate) pid: u32,
    /// Its start time (clock ticks since boot, from `/proc/<pid>/stat`).
    pub(crate) start_time: u64,
    /// The boot it was started in.
    pub(crate) boot_id: Option<String>,
    /// The program run.
    pub(crate) binary: PathBuf,
    /// Its arguments (never a secret: those go through the environment).
    pub(crate) args: Vec<String>,
    /// The user it runs as, when not ours.
    pub(crate) user: Option<String>,
    /// The ports it listens on.
    pub(crate) ports: Vec<u16>,
    /// Seconds since the Unix epoch when it was started.
    pub(crate) started_at: u64,
    /// The desired spec it was started from (what `plan` compares against).
    pub(crate) spec: Value,
}

/// The record file of a service, relative to the state directory.
pub(crate) fn rel_path(service: &str) -> PathBuf {
    Path::new(service).join("process.json")
}

/// The intent file of a service, relative to the state directory.
pub(crate) fn intent_path(service: &str) -> PathBuf {
    Path::new(service).join("process.starting")
}

/// What is about to be started (a record without a process yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Intent {
    /// The program.
    pub(crate) binary: PathBuf,
    /// Its arguments.
    pub(crate) args: Vec<String>,
    /// The user it will run as.
    pub(crate) user: Option<String>,
    /// Its ports.
    pub(crate) ports: Vec<u16>,
    /// Its spec.
    pub(crate) spec: Value,
}

impl Intent {
    /// Reads an intent left behind; `None` when there is none.
    pub(crate) fn read(root: &Path, service: &str) -> Option<Intent> {
        let bytes = std::fs::read(root.join(intent_path(service))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// True when `cmdline` is this program with these arguments, as started or as
    /// the server retitled itself (`/usr/bin/redis-server 127.0.0.1:6379`).
    fn started(&self, cmdline: &[String]) -> bool {
        let cmdline = crate::spawn::unwrapped(cmdline);
        let binary = self.binary.to_string_lossy();
        match cmdline {
            [one] if !self.args.is_empty() && one.starts_with(&format!("{binary} ")) => true,
            [first, rest @ ..] => {
                procfs::base_name(first) == procfs::base_name(&binary)
                    && rest == self.args.as_slice()
            }
            [] => false,
        }
    }
}

/// The process an interrupted run started from `intent` in `dir`, as a record:
/// alive, working in `dir`, running the intended program with the intended
/// arguments. `None` when the run died before starting it.
pub(crate) fn adopt(intent: &Intent, dir: &Path) -> Option<Record> {
    let boot_id = procfs::boot_id();
    procfs::working_in(dir).into_iter().find_map(|(pid, _)| {
        let cmd = procfs::cmdline(pid)?;
        if !intent.started(&cmd) {
            return None;
        }
        let st = procfs::stat(pid)?;
        Some(Record {
            pid,
            start_time: st.start_time,
            boot_id: boot_id.clone(),
            binary: intent.binary.clone(),
            args: intent.args.clone(),
            user: intent.user.clone(),
            ports: intent.ports.clone(),
            started_at: now_secs(),
            spec: intent.spec.clone(),
        })
    })
}

impl Record {
    /// Reads a record; `None` when there is none or it does not parse (a record is
    /// written atomically, so an unreadable one is not ours to trust).
    pub(crate) fn read(root: &Path, service: &str) -> Option<Record> {
        let bytes = std::fs::read(root.join(rel_path(service))).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// True while the recorded process runs: same pid, same start time in the same
    /// boot, same program. A zombie (exited, not reaped) is not alive.
    pub(crate) fn is_alive(&self) -> bool {
        let Some(st) = procfs::stat(self.pid) else {
            return false;
        };
        if st.exited() || st.start_time != self.start_time {
            return false;
        }
        if self.boot_id.is_some() && procfs::boot_id() != self.boot_id {
            return false;
        }
        self.same_program()
    }

    /// Some servers retitle themselves (`redis-server 127.0.0.1:6379`), and a
    /// wrapper script execs the real binary, so compare program names: the first
    /// word of the command line, or the executable itself.
    fn same_program(&self) -> bool {
        let want = procfs::base_name(self.binary.to_str().unwrap_or_default());
        let cmd = procfs::cmdline(self.pid).unwrap_or_default();
        let first_words = crate::spawn::unwrapped(&cmd)
            .iter()
            .take(2)
            .filter_map(|a| a.split_whitespace().next());
        if first_words
            .into_iter()
            .any(|w| procfs::base_name(w) == want)
        {
            return true;
        }
        // The command line is unreadable or blank for a moment while a server
        // retitles itself (Redis clears it, then writes its title) or while the
        // umask wrapper execs: judge by the executable then, symlinks resolved
        // (Debian's redis-server is a link to redis-check-rdb).
        let Some(exe) = procfs::exe(self.pid) else {
            return false;
        };
        exe.file_name().is_some_and(|n| n.to_string_lossy() == want)
            || std::fs::canonicalize(&self.binary).is_ok_and(|b| b == exe)
            || std::fs::canonicalize(crate::spawn::SHELL).is_ok_and(|sh| sh == exe)
    }

    /// Seconds it has been running.
    pub(crate) fn uptime_secs(&self) -> u64 {
        now_secs().saturating_sub(self.started_at)
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intents_recognise_their_process_even_retitled() {
        let intent = Intent {
            binary: "/usr/bin/redis-server".into(),
            args: vec!["/s/redis/redis.conf".into()],
            user: None,
            ports: vec![6379],
            spec: Value::Null,
        };
        let cmd = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(intent.started(&cmd(&["/usr/bin/redis-server", "/s/redis/redis.conf"])));
        assert!(intent.started(&cmd(&["/usr/bin/redis-server 127.0.0.1:6379"])));
        assert!(!intent.started(&cmd(&["/usr/bin/redis-server", "/other.conf"])));
        assert!(!intent.started(&cmd(&["postgres: checkpointer "])));
        assert!(!intent.started(&[]));
    }

    #[test]
    fn a_reused_pid_is_not_ours() {
        let me = std::process::id();
        let st = procfs::stat(me).unwrap();
        let exe = std::env::current_exe().unwrap();
        let r = Record {
            pid: me,
            start_time: st.start_time,
            boot_id: procfs::boot_id(),
            binary: exe,
            args: vec![],
            user: None,
            ports: vec![],
            started_at: now_secs(),
            spec: Value::Null,
        };
        assert!(r.is_alive());
        assert!(
            !Record {
                start_time: st.start_time + 1,
                ..r.clone()
            }
            .is_alive()
        );
        assert!(
            !Record {
                binary: "/usr/bin/something-else".into(),
                ..r.clone()
            }
            .is_alive()
        );
        assert!(
            !Record {
                boot_id: Some("another-boot".into()),
                ..r
            }
            .is_alive()
        );
    }
}
