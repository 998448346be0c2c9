//! PostgreSQL's data directory: which major version wrote it, and `initdb` on first
//! start, crash-safe.
//!
//! A marker (`postgres/initdb.pending`, naming the initdb process) is written before
//! initdb runs and removed after it succeeded. A data directory with the marker, or
//! without `PG_VERSION`, is a half-finished initdb of ours: it is removed (after its
//! initdb, if still running, is stopped) and made again. A data directory written by
//! another major version is never touched.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cp_core::names::ServiceName;
use cp_drivers::DriverError;
use cp_runtime::secrets::Secret;
use cp_runtime::state::StateDir;
use nix::sys::signal::Signal;
use tokio::time::Instant;

use crate::record::{Record, now_secs};
use crate::spawn::{self, Spawn};
use crate::user::RunAs;
use crate::{logs, procfs, stop};

/// The marker, relative to the state directory.
const MARKER: &str = "postgres/initdb.pending";
/// The temporary password file, relative to the state directory.
const PWFILE: &str = "postgres/initdb.pw";

/// What the data directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Data {
    /// A cluster of the wanted major version.
    Ready,
    /// Nothing yet.
    Absent,
    /// A half-finished initdb.
    Interrupted,
}

/// Looks at the data directory without changing anything.
pub(crate) fn inspect(
    service: &ServiceName,
    root: &Path,
    data: &Path,
    major: &str,
) -> Result<Data, DriverError> {
    if root.join(MARKER).exists() {
        return Ok(Data::Interrupted);
    }
    match std::fs::read_to_string(data.join("PG_VERSION")) {
        Ok(v) if v.trim() == major => Ok(Data::Ready),
        Ok(v) => Err(DriverError::VersionMismatch {
            service: service.clone(),
            path: data.to_path_buf(),
            found: v.trim().to_owned(),
            wanted: major.to_owned(),
        }),
        Err(_) => {
            let empty = std::fs::read_dir(data).map_or(true, |mut d| d.next().is_none());
            Ok(if empty {
                Data::Absent
            } else {
                Data::Interrupted
            })
        }
    }
}

/// Why a half-finished initdb could not be cleared away.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClearError {
    /// Its process or helpers did not go away.
    #[error(transparent)]
    Stop(#[from] stop::StopError),
    /// Its data directory could not be removed.
    #[error("cannot remove the half-made {}", data.display())]
    Remove {
        /// The data directory.
        data: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Removes a half-finished initdb: stops its process if it still runs (it is
/// recorded in the marker), waits for its helpers, deletes the data directory.
pub(crate) async fn clear_interrupted(root: &Path, data: &Path) -> Result<(), ClearError> {
    if let Some(rec) = std::fs::read(root.join(MARKER))
        .ok()
        .and_then(|b| serde_json::from_slice::<Record>(&b).ok())
    {
        let deadline = Instant::now() + Duration::from_secs(10);
        stop::stop(&rec, Signal::SIGKILL, Duration::ZERO, deadline).await?;
    }
    // An initdb whose marker did not name it yet, and the servers it runs, finish
    // on their own (in about a second); wait for them rather than delete under them.
    let dir = data.parent().unwrap_or(data);
    let deadline = Instant::now() + Duration::from_secs(10);
    stop::leftovers_gone(dir, "initdb", deadline).await?;
    stop::leftovers_gone(dir, "postgres", deadline).await?;
    match std::fs::remove_dir_all(data) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ClearError::Remove {
                data: data.to_path_buf(),
                source,
            });
        }
    }
    let _ = std::fs::remove_file(root.join(PWFILE));
    let _ = std::fs::remove_file(root.join(MARKER));
    Ok(())
}

/// Everything `initdb` needs.
#[derive(Debug)]
pub(crate) struct Initdb<'a> {
    /// The service (for errors).
    pub(crate) service: &'a ServiceName,
    /// The state directory.
    pub(crate) state: &'a StateDir,
    /// The initdb program.
    pub(crate) program: &'a Path,
    /// The data directory to create.
    pub(crate) data: &'a Path,
    /// The superuser's password.
    pub(crate) password: &'a Secret,
    /// Who runs it.
    pub(crate) run_as: Option<&'a RunAs>,
    /// Its log (the service's).
    pub(crate) log: &'a Path,
}

/// Runs initdb: superuser `postgres` with the password from a temporary 0600 file,
/// SCRAM authentication, UTF-8.
pub(crate) async fn initdb(i: Initdb<'_>) -> Result<(), DriverError> {
    let spawn_err = |source: std::io::Error| DriverError::Spawn {
        service: i.service.clone(),
        program: i.program.to_path_buf(),
        source,
    };
    i.state
        .write_private(MARKER, b"{}")
        .map_err(DriverError::State)?;
    i.state
        .write_private(PWFILE, format!("{}\n", i.password.expose()).as_bytes())
        .map_err(DriverError::State)?;
    let pwfile: PathBuf = i.state.join(PWFILE);
    if let Some(u) = i.run_as {
        u.own(&pwfile, false).map_err(|e| DriverError::Prepare {
            service: i.service.clone(),
            source: e.into(),
        })?;
    }
    let args: Vec<String> = vec![
        "-D".into(),
        i.data.to_string_lossy().into_owned(),
        "-U".into(),
        cp_core::serverconf::POSTGRES_SUPERUSER.into(),
        format!("--pwfile={}", pwfile.display()),
        "--auth=scram-sha-256".into(),
        "--encoding=UTF8".into(),
        "--locale=C".into(),
        "--no-instructions".into(),
    ];
    let cwd = i.data.parent().unwrap_or(i.data);
    let cmd = spawn::command(&Spawn {
        program: i.program,
        args: &args,
        env: &[],
        cwd,
        log: i.log,
        run_as: i.run_as,
    })
    .map_err(spawn_err)?;
    let mut cmd = tokio::process::Command::from(cmd);
    // Dropping the future (an aborted `up`) must not leave initdb writing into a
    // directory the next run will remove.
    cmd.kill_on_drop(true);
    let mut child = cmd.spawn().map_err(spawn_err)?;
    if let Some(pid) = child.id()
        && let Some(st) = procfs::stat(pid)
    {
        let rec = Record {
            pid,
            start_time: st.start_time,
            boot_id: procfs::boot_id(),
            binary: i.program.to_path_buf(),
            args: args.clone(),
            user: i.run_as.map(|u| u.name.clone()),
            ports: vec![],
            started_at: now_secs(),
            spec: serde_json::Value::Null,
        };
        i.state
            .write_private(MARKER, &serde_json::to_vec(&rec).expect("serializes"))
            .map_err(DriverError::State)?;
    }
    let status = child.wait().await;
    let _ = std::fs::remove_file(&pwfile);
    let status = status.map_err(spawn_err)?;
    if !status.success() {
        return Err(DriverError::NotReady {
            service: i.service.clone(),
            detail: format!("initdb {}", spawn::describe_exit(status)),
            log_tail: logs::tail(i.log, 20).unwrap_or_default(),
        });
    }
    // Only now is the cluster complete; a marker left behind would have the next
    // run remove it.
    std::fs::remove_file(i.state.join(MARKER)).map_err(|source| DriverError::File {
        action: "remove",
        path: i.state.join(MARKER),
        source,
    })?;
    Ok(())
}

/// The files of a half-finished initdb, for `down --volumes`.
pub(crate) fn scratch_files(root: &Path) -> [PathBuf; 2] {
    [root.join(MARKER), root.join(PWFILE)]
}
