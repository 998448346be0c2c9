//! The file audit device's log on a machine we run Vault on: bounded by rotation.
//! OpenBao's file device never rotates on its own; it reopens its file on SIGHUP (the
//! documented way to rotate). [`rotate`] moves a log past [`LIMIT`] to `<log>.1`
//! (replacing the previous one) so the server, told by its driver, starts a fresh
//! file: at most two files of about [`LIMIT`] each, plus what is written between two
//! checks. [`files`] are what `down --volumes` removes with the data.

use std::path::{Path, PathBuf};

/// Past this size a log is rotated (64 MiB).
pub const LIMIT: u64 = 64 * 1024 * 1024;

/// The log and its rotated copy, as paths (whether or not they exist).
pub fn files(log: &Path) -> [PathBuf; 2] {
    [log.to_path_buf(), rotated(log)]
}

fn rotated(log: &Path) -> PathBuf {
    let mut p = log.as_os_str().to_owned();
    p.push(".1");
    PathBuf::from(p)
}

/// Moves `log` to `<log>.1` when it is larger than `limit`; `true` when it did (the
/// server must then reopen its file: SIGHUP). An absent log is not an error.
pub fn rotate(log: &Path, limit: u64) -> std::io::Result<bool> {
    match std::fs::metadata(log) {
        Ok(m) if m.len() > limit => {
            std::fs::rename(log, rotated(log))?;
            Ok(true)
        }
        Ok(_) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_past_the_limit_moves_aside_once_and_replaces_the_previous_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("vault-audit.log");
        assert!(!rotate(&log, 10).unwrap(), "absent: nothing to do");
        std::fs::write(&log, b"0123456789").unwrap();
        assert!(!rotate(&log, 10).unwrap(), "at the limit: kept");
        std::fs::write(rotated(&log), b"old").unwrap();
        std::fs::write(&log, b"0123456789a").unwrap();
        assert!(rotate(&log, 10).unwrap());
        assert!(!log.exists());
        assert_eq!(std::fs::read(rotated(&log)).unwrap(), b"0123456789a");
        assert_eq!(
            files(&log),
            [log.clone(), tmp.path().join("vault-audit.log.1")]
        );
    }
}
