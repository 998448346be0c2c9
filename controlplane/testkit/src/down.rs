//! The one cleanup guard of the tests: whatever a test started goes when the guard is
//! dropped, at the end of the test or while a failed assertion unwinds it.
//!
//! A guard stops a child process by its pid (SIGTERM, then SIGKILL after a grace),
//! or runs a command that brings an environment down (`controlplane down --volumes
//! --yes`) and then kills, by pid, any process still working in its state directory.
//! Guards chain with [`Down::then`] and run in order. Nothing in a drop panics (a
//! panic while unwinding would abort the test binary and leave the servers behind):
//! failures are printed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a process gets to stop after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(10);

/// Cleans up when dropped (see the module's documentation).
#[must_use = "the guard cleans up when it is dropped: bind it to a variable (`let _down = ...`)"]
pub struct Down {
    steps: Vec<Step>,
}

enum Step {
    Stop(Child),
    Run(Box<Command>),
    KillIn(PathBuf),
}

impl Down {
    /// Stops `child` (SIGTERM, SIGKILL after 10 s) and reaps it.
    pub fn process(child: Child) -> Self {
        Self {
            steps: vec![Step::Stop(child)],
        }
    }

    /// Runs `down` (e.g. `controlplane down --volumes --yes`), then kills every
    /// process still working in `state` (its current directory or an argument under
    /// it), so a failed `down` leaves nothing running either.
    pub fn environment(state: impl Into<PathBuf>, down: Command) -> Self {
        Self {
            steps: vec![Step::Run(Box::new(down)), Step::KillIn(state.into())],
        }
    }

    /// Kills every process working in `dir` (for servers started by a process the
    /// test does not hold).
    pub fn processes_in(dir: impl Into<PathBuf>) -> Self {
        Self {
            steps: vec![Step::KillIn(dir.into())],
        }
    }

    /// This guard's cleanup, then `next`'s.
    pub fn then(mut self, mut next: Down) -> Self {
        self.steps.append(&mut next.steps);
        self
    }

    /// The pid of the (first) child this guard stops.
    pub fn pid(&self) -> Option<u32> {
        self.steps.iter().find_map(|s| match s {
            Step::Stop(c) => Some(c.id()),
            _ => None,
        })
    }

    /// Waits up to `within` for the (first) child this guard stops to exit by
    /// itself, and returns its status (`None`: still running; the guard stops it
    /// when dropped).
    pub fn wait(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let child = self.steps.iter_mut().find_map(|s| match s {
            Step::Stop(c) => Some(c),
            _ => None,
        })?;
        let deadline = Instant::now() + within;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => return None,
            }
        }
    }

    /// Runs the cleanup now (as dropping the guard would).
    pub fn now(self) {}
}

impl Drop for Down {
    fn drop(&mut self) {
        for step in self.steps.drain(..) {
            match step {
                Step::Stop(child) => stop(child),
                Step::Run(mut cmd) => match cmd.output() {
                    Ok(o) if o.status.success() => {}
                    Ok(o) => eprintln!(
                        "cleanup {cmd:?} failed ({}):\n{}{}",
                        o.status,
                        String::from_utf8_lossy(&o.stdout),
                        String::from_utf8_lossy(&o.stderr)
                    ),
                    Err(e) => eprintln!("cleanup {cmd:?} could not run: {e}"),
                },
                Step::KillIn(dir) => {
                    for (pid, cmd) in processes_in(&dir) {
                        eprintln!("cleanup: killing {pid} ({cmd}), left in {}", dir.display());
                        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                    }
                }
            }
        }
    }
}

/// SIGTERM, a grace, SIGKILL; then reaps.
fn stop(mut child: Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("cleanup: {pid} ignored SIGTERM for {GRACE:?}; SIGKILL");
    let _ = child.kill();
    let _ = child.wait();
}

/// Live processes (pid, command line) whose current directory is under `dir` or
/// whose command line names it; this process excluded.
pub fn processes_in(dir: &Path) -> Vec<(u32, String)> {
    let Some(needle) = dir.to_str().filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let state = stat.rsplit_once(") ").and_then(|(_, r)| r.chars().next());
        if matches!(state, Some('Z' | 'X')) {
            continue;
        }
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cwd.starts_with(dir) || cmd.contains(needle) {
            out.push((pid, cmd));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(dir: &Path) -> Child {
        // `sleep` is coreutils; a test of the guard needs some process to stop.
        let sleep = cp_runtime::exec::find_binary("sleep").expect("sleep is installed");
        cp_runtime::exec::command(&sleep)
            .arg("600")
            .current_dir(dir)
            .spawn()
            .expect("start sleep")
    }

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            !matches!(
                s.rsplit_once(") ").and_then(|(_, r)| r.chars().next()),
                Some('Z' | 'X')
            )
        })
    }

    #[test]
    fn a_process_is_stopped_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let down = Down::process(sleeper(dir.path()));
        let pid = down.pid().unwrap();
        assert!(alive(pid));
        down.now();
        assert!(!alive(pid), "{pid} still runs");
    }

    #[test]
    fn a_process_is_stopped_when_the_test_panics() {
        let dir = tempfile::tempdir().unwrap();
        let child = sleeper(dir.path());
        let pid = child.id();
        let r = std::panic::catch_unwind(move || {
            let _down = Down::process(child);
            panic!("a failed assertion");
        });
        assert!(r.is_err());
        assert!(!alive(pid), "{pid} still runs");
    }

    #[test]
    fn leftovers_in_a_state_directory_are_killed_by_pid() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = sleeper(dir.path());
        let pid = child.id();
        assert!(processes_in(dir.path()).iter().any(|(p, _)| *p == pid));
        Down::processes_in(dir.path()).now();
        child.wait().unwrap();
        assert!(!alive(pid), "{pid} still runs");
    }
}
