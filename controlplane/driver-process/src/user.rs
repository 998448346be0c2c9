//! Running PostgreSQL when controlplane runs as root.
//!
//! `initdb` and `postgres` refuse to run as root, and sessions, CI and many users'
//! containers are root. Then PostgreSQL runs as the unprivileged `postgres` system
//! user (else `nobody`) through `CommandExt::{uid,gid}`, owns its own directories, and
//! must be able to reach them: every directory above the state directory must be
//! searchable by that user. When one is not, the driver says which and what to do
//! instead of failing later inside PostgreSQL.

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Uid, User};

/// The user a service runs as, when it is not us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunAs {
    /// Its name.
    pub(crate) name: String,
    /// Its uid.
    pub(crate) uid: u32,
    /// Its primary gid.
    pub(crate) gid: u32,
    /// Every group it is in.
    groups: Vec<u32>,
}

/// Who runs PostgreSQL: `None` (we do) unless we are root; then `postgres`, or
/// `nobody` where there is no `postgres` user.
/// Why PostgreSQL cannot be given a user to run as, or its directories.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UserError {
    /// Root, and no user to run PostgreSQL as.
    #[error(
        "controlplane runs as root, PostgreSQL refuses to, and there is neither a `postgres` nor a `nobody` user to run it as; create one (`useradd --system postgres`) or run controlplane as an ordinary user"
    )]
    NoUser,
    /// A directory above the state directory cannot be entered by the user.
    #[error(
        "PostgreSQL runs as the unprivileged user `{user}` (controlplane runs as root, which PostgreSQL refuses), and that user cannot enter {} (mode {mode:o}, owner uid {owner}); use a state directory it can reach, e.g. `--state-dir /var/tmp/controlplane/<env>`, or allow it with `chmod o+x {}`",
        dir.display(),
        dir.display()
    )]
    CannotEnter {
        /// The user.
        user: String,
        /// The directory.
        dir: PathBuf,
        /// Its mode.
        mode: u32,
        /// Its owner.
        owner: u32,
    },
    /// A path could not be inspected or listed.
    #[error("{}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The state directory's group could not be changed.
    #[error("cannot change the group of {}", path.display())]
    Chgrp {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The state directory's mode could not be changed.
    #[error("cannot let `{user}` enter {}", path.display())]
    Chmod {
        /// The user.
        user: String,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A path could not be given to the user.
    #[error("cannot give {} to `{user}`", path.display())]
    Chown {
        /// The user.
        user: String,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn read(path: &Path) -> impl FnOnce(std::io::Error) -> UserError + '_ {
    move |source| UserError::Read {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn postgres_user() -> Result<Option<RunAs>, UserError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Ok(Some(u)) = User::from_name(name) {
            let groups = CString::new(name)
                .ok()
                .and_then(|c| nix::unistd::getgrouplist(&c, u.gid).ok())
                .map(|g| g.into_iter().map(Gid::as_raw).collect())
                .unwrap_or_else(|| vec![u.gid.as_raw()]);
            return Ok(Some(RunAs {
                name: u.name,
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
                groups,
            }));
        }
    }
    Err(UserError::NoUser)
}

impl RunAs {
    /// True when this user may search (enter) `dir`, from its mode bits.
    fn can_search(&self, meta: &std::fs::Metadata) -> bool {
        let mode = meta.permissions().mode();
        if meta.uid() == self.uid {
            mode & 0o100 != 0
        } else if self.groups.contains(&meta.gid()) {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    }

    /// Checks that every directory above `state_root` can be entered by this user,
    /// and lets it enter `state_root` itself (group search only: it still cannot list
    /// or write it). The message names the directory and what to do.
    pub(crate) fn ensure_reachable(&self, state_root: &Path) -> Result<(), UserError> {
        for dir in state_root.ancestors().skip(1) {
            let Ok(meta) = std::fs::metadata(dir) else {
                continue;
            };
            if !self.can_search(&meta) {
                return Err(UserError::CannotEnter {
                    user: self.name.clone(),
                    dir: dir.to_path_buf(),
                    mode: meta.permissions().mode() & 0o7777,
                    owner: meta.uid(),
                });
            }
        }
        let meta = std::fs::metadata(state_root).map_err(read(state_root))?;
        if !self.can_search(&meta) {
            // Ours (we are root): hand search, and only search, to its group.
            std::os::unix::fs::chown(state_root, None, Some(self.gid)).map_err(|source| {
                UserError::Chgrp {
                    path: state_root.to_path_buf(),
                    source,
                }
            })?;
            let mode = (meta.permissions().mode() & 0o777) | 0o010;
            std::fs::set_permissions(state_root, std::fs::Permissions::from_mode(mode)).map_err(
                |source| UserError::Chmod {
                    user: self.name.clone(),
                    path: state_root.to_path_buf(),
                    source,
                },
            )?;
        }
        Ok(())
    }

    /// Makes `path` (and, when `recursive`, everything below) owned by this user.
    pub(crate) fn own(&self, path: &Path, recursive: bool) -> Result<(), UserError> {
        let mut todo: Vec<PathBuf> = vec![path.to_path_buf()];
        while let Some(p) = todo.pop() {
            let meta = std::fs::symlink_metadata(&p).map_err(read(&p))?;
            if meta.uid() != self.uid || meta.gid() != self.gid {
                std::os::unix::fs::lchown(&p, Some(self.uid), Some(self.gid)).map_err(
                    |source| UserError::Chown {
                        user: self.name.clone(),
                        path: p.clone(),
                        source,
                    },
                )?;
            }
            if recursive && meta.is_dir() {
                for e in std::fs::read_dir(&p).map_err(read(&p))? {
                    todo.push(e.map_err(read(&p))?.path());
                }
            }
        }
        Ok(())
    }

    /// True when `path` is owned by someone else (so a recursive [`RunAs::own`] is
    /// due: the data was made by another user, e.g. a run as non-root).
    pub(crate) fn owns_not(&self, path: &Path) -> bool {
        std::fs::metadata(path).is_ok_and(|m| m.uid() != self.uid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_parents_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let closed = tmp.path().join("closed");
        let state = closed.join("state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let meta = std::fs::metadata(&closed).unwrap();
        // A user who is neither owner nor in the group.
        let stranger = RunAs {
            name: "stranger".into(),
            uid: meta.uid() + 12345,
            gid: meta.gid() + 12345,
            groups: vec![meta.gid() + 12345],
        };
        let e = stranger.ensure_reachable(&state).unwrap_err().to_string();
        assert!(e.contains(&closed.display().to_string()), "{e}");
        assert!(e.contains("--state-dir"), "{e}");
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o711)).unwrap();
        let owner = RunAs {
            uid: meta.uid(),
            ..stranger
        };
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        owner.ensure_reachable(&state).unwrap();
    }
}
