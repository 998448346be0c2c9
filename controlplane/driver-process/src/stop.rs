//! Stopping a recorded process: its graceful signal, then SIGKILL after a grace
//! period, then waiting until it is gone, its leftovers have exited and its ports
//! are free.
//!
//! Only a pid the record still identifies ([`Record::is_alive`]) is ever signalled.
//! Leftovers (PostgreSQL server processes a killed postmaster left behind) are never
//! signalled: they exit by themselves once they notice, and we wait for them.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use tokio::time::Instant;

use crate::ports;
use crate::procfs;
use crate::record::Record;

/// A process, its leftovers or its ports did not go away in time.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StopError {
    /// The process survived SIGKILL.
    #[error("pid {pid} did not exit even after SIGKILL")]
    Survived {
        /// The pid.
        pid: u32,
    },
    /// Processes of an earlier run still work in the directory.
    #[error(
        "{} of an earlier run still work in {} and did not exit; stop them, then run again",
        procs.join(", "),
        dir.display()
    )]
    Leftovers {
        /// `pid 812 (postgres)` each.
        procs: Vec<String>,
        /// The directory.
        dir: std::path::PathBuf,
    },
    /// A port stayed in use.
    #[error("port {port} is still in use{}", holder.as_ref().map(|h| format!(" by {h}")).unwrap_or_default())]
    PortBusy {
        /// The port.
        port: u16,
        /// What holds it, when known.
        holder: Option<String>,
    },
}

/// How often stop and start poll `/proc` and ports.
pub(crate) const POLL: Duration = Duration::from_millis(10);

/// Stops the recorded process: `signal`, then after `grace` SIGKILL to its process
/// group (it leads one: we started it in its own), until `deadline`. Returns
/// whether it was running.
pub(crate) async fn stop(
    rec: &Record,
    signal: Signal,
    grace: Duration,
    deadline: Instant,
) -> Result<bool, StopError> {
    if !rec.is_alive() {
        return Ok(false);
    }
    let pid = Pid::from_raw(rec.pid as i32);
    // ESRCH: it exited just now; fine.
    let _ = kill(pid, signal);
    let escalate = Instant::now() + grace;
    let mut killed = false;
    loop {
        if !rec.is_alive() {
            return Ok(true);
        }
        let now = Instant::now();
        if !killed && now >= escalate.min(deadline) {
            tracing::warn!(
                pid = rec.pid,
                "did not stop within {grace:?}; sending SIGKILL"
            );
            let _ = killpg(pid, Signal::SIGKILL);
            let _ = kill(pid, Signal::SIGKILL);
            killed = true;
        } else if killed && now >= deadline + Duration::from_secs(5) {
            return Err(StopError::Survived { pid: rec.pid });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until no process named `program` works in `dir` any more (see
/// [`procfs::working_in`]). Names the stragglers when `deadline` passes.
pub(crate) async fn leftovers_gone(
    dir: &Path,
    program: &str,
    deadline: Instant,
) -> Result<(), StopError> {
    loop {
        let left: Vec<(u32, String)> = procfs::working_in(dir)
            .into_iter()
            .filter(|(_, comm)| comm == program)
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(StopError::Leftovers {
                procs: left
                    .iter()
                    .map(|(pid, comm)| format!("pid {pid} ({comm})"))
                    .collect(),
                dir: dir.to_path_buf(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until every port is free; names the holder when `deadline` passes.
pub(crate) async fn ports_free(ports: &[u16], deadline: Instant) -> Result<(), StopError> {
    loop {
        let Some(busy) = ports.iter().copied().find(|p| !ports::is_free(*p)) else {
            return Ok(());
        };
        if Instant::now() >= deadline {
            return Err(StopError::PortBusy {
                port: busy,
                holder: ports::holder(busy),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
