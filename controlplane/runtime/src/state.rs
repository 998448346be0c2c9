//! The per-environment state directory (`.controlplane/<env>/`): what the process
//! driver runs, generated dev secrets, Vault's dev unseal key, locks.
//!
//! Files that hold secrets are written 0600, atomically (temp file + rename), so a
//! crash never leaves half a file. A `state.json` records the format version: a
//! directory written by a newer controlplane is refused rather than misread.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The state format this build reads and writes.
pub const STATE_FORMAT: u32 = 1;

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Filesystem trouble.
    #[error("cannot use the state directory {path}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Written by a newer version.
    #[error(
        "the state directory {path} was written by a newer controlplane (state format {found}, this one understands up to {STATE_FORMAT}); upgrade controlplane, or use another --state-dir"
    )]
    TooNew {
        /// The directory.
        path: PathBuf,
        /// The format found.
        found: u32,
    },
    /// `state.json` does not parse.
    #[error("{path} is corrupt ({detail}); move it aside and run again")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Someone else holds the lock.
    #[error(
        "another controlplane is working on this environment ({what} lock held by {holder}); wait for it to finish (lock file {path})"
    )]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// What the lock protects.
        what: String,
        /// Who holds it and since when, as the holder wrote it.
        holder: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    format: u32,
    environment: String,
    written_by: String,
}

/// An environment's state directory, checked and ready.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `p` made absolute against the working directory (paths in the state directory are
/// handed to servers that run elsewhere).
fn absolute(p: PathBuf) -> PathBuf {
    std::path::absolute(&p).unwrap_or(p)
}

impl StateDir {
    /// Opens (creating if needed, mode 0700) the state directory of `env`.
    pub fn open(root: impl Into<PathBuf>, env: &str) -> Result<Self, StateError> {
        let root = absolute(root.into());
        let existed = root.is_dir();
        if !existed {
            // The parents as the umask has them (a service user may have to pass
            // through them), the directory itself 0700 from its creation.
            if let Some(parent) = root.parent() {
                fs::create_dir_all(parent).map_err(io(parent))?;
            }
            use std::os::unix::fs::DirBuilderExt;
            match fs::DirBuilder::new().mode(0o700).create(&root) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(&root)(e)),
            }
        }
        // Private: nobody else may list or write it. Group search (x) alone may be
        // granted to a service user (the process driver runs PostgreSQL as `postgres`
        // when we are root, and that user must reach its own directory): keep it.
        let mode = fs::metadata(&root).map_err(io(&root))?.permissions().mode() & 0o777;
        let private = if existed {
            0o700 | (mode & 0o010)
        } else {
            0o700
        };
        if mode != private {
            fs::set_permissions(&root, fs::Permissions::from_mode(private)).map_err(io(&root))?;
        }
        let dir = Self { root };
        let state_path = dir.root.join("state.json");
        match fs::read(&state_path) {
            Ok(bytes) => {
                let state: StateFile =
                    serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                        path: state_path.clone(),
                        detail: e.to_string(),
                    })?;
                if state.format > STATE_FORMAT {
                    return Err(StateError::TooNew {
                        path: dir.root.clone(),
                        found: state.format,
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let state = StateFile {
                    format: STATE_FORMAT,
                    environment: env.to_owned(),
                    written_by: format!("controlplane {}", env!("CARGO_PKG_VERSION")),
                };
                dir.write_private(
                    "state.json",
                    &serde_json::to_vec_pretty(&state).expect("serializes"),
                )?;
            }
            Err(e) => return Err(io(&state_path)(e)),
        }
        Ok(dir)
    }

    /// Opens an existing state directory without creating anything (for read-only
    /// commands such as `plan` and `status`). `None` when it does not exist.
    pub fn open_existing(root: impl Into<PathBuf>) -> Result<Option<Self>, StateError> {
        let root = absolute(root.into());
        let state_path = root.join("state.json");
        match fs::read(&state_path) {
            Ok(bytes) => {
                let state: StateFile =
                    serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
                        path: state_path.clone(),
                        detail: e.to_string(),
                    })?;
                if state.format > STATE_FORMAT {
                    return Err(StateError::TooNew {
                        path: root,
                        found: state.format,
                    });
                }
                Ok(Some(Self { root }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&state_path)(e)),
        }
    }

    /// A handle on a directory that may not exist, for read-only commands on an
    /// environment that was never brought up: nothing is read or created.
    pub fn phantom(root: impl Into<PathBuf>) -> Self {
        Self {
            root: absolute(root.into()),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// A path inside the directory.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.join(rel)
    }

    /// Writes a file atomically with the given mode (temp file, fsync, rename). A
    /// missing directory on the way is created 0700: what the state directory holds
    /// (data, credentials, hashes) is nobody else's.
    pub fn write(&self, rel: impl AsRef<Path>, bytes: &[u8], mode: u32) -> Result<(), StateError> {
        let path = self.root.join(rel);
        if let Some(dir) = path.parent() {
            private_dir_all(dir)?;
        }
        write_atomic(&path, bytes, mode)
    }

    /// Writes a file that holds a secret: mode 0600.
    pub fn write_private(&self, rel: impl AsRef<Path>, bytes: &[u8]) -> Result<(), StateError> {
        self.write(rel, bytes, 0o600)
    }

    /// Reads a file; `None` when absent.
    pub fn read(&self, rel: impl AsRef<Path>) -> Result<Option<Vec<u8>>, StateError> {
        let p = self.root.join(rel);
        match fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }

    /// Takes an exclusive lock named `what` (e.g. `environment`, `backup`) without
    /// waiting, for `command` (what the holder is doing, shown to a second run). The
    /// lock is an flock: it is released when the process ends, however it ends, so a
    /// crashed run never leaves it behind. The holder's pid, command and start time
    /// are written into the lock file for whoever finds it taken.
    pub fn lock(&self, what: &str, command: &str) -> Result<StateLock, StateError> {
        let path = self.root.join(format!("{what}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(mut lock) => {
                let holder = Holder {
                    pid: std::process::id(),
                    command: command.to_owned(),
                    since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                };
                let text = serde_json::to_vec(&holder).expect("serializes");
                use std::io::Seek;
                let f: &mut File = &mut lock;
                f.set_len(0).map_err(io(&path))?;
                f.seek(std::io::SeekFrom::Start(0)).map_err(io(&path))?;
                f.write_all(&text).map_err(io(&path))?;
                Ok(StateLock { _lock: lock })
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                let holder = fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Holder>(&b).ok())
                    .map_or_else(
                        || "another process".to_owned(),
                        |h| format!("pid {} (`{}`) since {}", h.pid, h.command, h.since),
                    );
                Err(StateError::Busy {
                    path,
                    what: what.into(),
                    holder,
                })
            }
            Err((_, e)) => Err(io(&path)(std::io::Error::from(e))),
        }
    }
}

/// Who holds a lock, as written into its file.
#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    pid: u32,
    command: String,
    since: String,
}

/// Held while a run works on a state directory; released on drop (or process exit).
#[derive(Debug)]
pub struct StateLock {
    _lock: nix::fcntl::Flock<File>,
}

/// Creates `dir` and its missing parents with mode 0700 (set at creation; existing
/// directories are left as they are).
pub fn private_dir_all(dir: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))
}

/// Writes `bytes` to `path` atomically with `mode`: a crash leaves the old file or the
/// new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    // The mode given to open() is masked by the umask; set it exactly.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))?;
    // The rename is durable only once the directory is: a crash right after must not
    // bring back the old file (Vault's unseal key, kept once, lives in one).
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

/// Who holds lock `what` of the state directory at `root` now, without taking it:
/// the kernel's lock table (`/proc/locks`) says whether a process holds an flock on
/// the lock file, and the file says who wrote it. `None`: free, or never taken.
pub fn holder(root: &Path, what: &str) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let path = root.join(format!("{what}.lock"));
    let meta = fs::metadata(&path).ok()?;
    let table = fs::read_to_string("/proc/locks").ok()?;
    let (major, minor) = (
        nix::sys::stat::major(meta.dev()),
        nix::sys::stat::minor(meta.dev()),
    );
    let held = table.lines().any(|line| {
        // `1: FLOCK  ADVISORY  WRITE 1234 fd:01:123456 0 EOF`
        let f: Vec<&str> = line.split_whitespace().collect();
        f.get(1) == Some(&"FLOCK")
            && f.get(5).is_some_and(|dev| {
                let mut p = dev.split(':');
                let maj = p.next().and_then(|v| u64::from_str_radix(v, 16).ok());
                let min = p.next().and_then(|v| u64::from_str_radix(v, 16).ok());
                let ino = p.next().and_then(|v| v.parse::<u64>().ok());
                maj == Some(major) && min == Some(minor) && ino == Some(meta.ino())
            })
    });
    held.then(|| {
        fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Holder>(&b).ok())
            .map_or_else(
                || "another process".to_owned(),
                |h| format!("pid {} (`{}`) since {}", h.pid, h.command, h.since),
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_directory_is_held_as_an_absolute_path() {
        // Servers start in other working directories and read files by these paths
        // (initdb's password file): a relative `./.controlplane/dev` once broke `up`.
        let d = StateDir::phantom(".controlplane/dev");
        assert!(d.path().is_absolute(), "{}", d.path().display());
        assert_eq!(
            d.join("postgres/initdb.pw"),
            std::env::current_dir()
                .unwrap()
                .join(".controlplane/dev/postgres/initdb.pw")
        );
    }

    #[test]
    fn private_files_are_0600_and_newer_state_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path().join("dev"), "dev").unwrap();
        dir.write_private("secrets.json", b"{}").unwrap();
        let mode = fs::metadata(dir.join("secrets.json"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777,
            0o700
        );
        // state.json and a directory made on the way are private too.
        dir.write_private("backup/metrics.json", b"{}").unwrap();
        let mode = |p: &str| fs::metadata(dir.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("state.json"), 0o600);
        assert_eq!(mode("backup"), 0o700);
        fs::write(
            dir.join("state.json"),
            br#"{"format": 99, "environment": "dev", "written_by": "x"}"#,
        )
        .unwrap();
        let e = StateDir::open(tmp.path().join("dev"), "dev").unwrap_err();
        assert!(e.to_string().contains("newer controlplane"), "{e}");
        assert!(
            StateDir::open_existing(tmp.path().join("nope"))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn locks_exclude_each_other() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path(), "dev").unwrap();
        let held = dir.lock("environment", "up").unwrap();
        let e = dir.lock("environment", "seed").unwrap_err();
        assert!(matches!(e, StateError::Busy { .. }), "{e}");
        // The second run is told who holds it and since when.
        let text = e.to_string();
        assert!(
            text.contains(&format!("pid {} (`up`) since ", std::process::id())),
            "{text}"
        );
        drop(held);
        assert!(dir.lock("environment", "seed").is_ok());
    }

    #[test]
    fn holder_reads_a_lock_without_taking_it() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(d.path(), "dev").unwrap();
        assert_eq!(holder(s.path(), "backup"), None);
        let l = s.lock("backup", "backup job-1 (api)").unwrap();
        let h = holder(s.path(), "backup").expect("held");
        assert!(h.contains("backup job-1 (api)"), "{h}");
        // Reading did not take it: a second run still finds it held.
        assert!(s.lock("backup", "another").is_err());
        drop(l);
        assert_eq!(holder(s.path(), "backup"), None);
    }
}
