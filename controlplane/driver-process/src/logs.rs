//! Service logs: each service's stdout and stderr, appended to `<service>/log`.
//! Tails read only the end of the file; following polls it for growth.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// The last `lines` lines of the file at `path` (empty when there is none).
pub(crate) fn tail(path: &Path, lines: usize) -> std::io::Result<Vec<String>> {
    if lines == 0 {
        return Ok(Vec::new());
    }
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    // Read backwards in growing windows until enough lines are in.
    let mut window: u64 = 16 * 1024;
    loop {
        let start = len.saturating_sub(window);
        f.seek(SeekFrom::Start(start))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        let text = String::from_utf8_lossy(&buf);
        let mut all: Vec<&str> = text.lines().collect();
        if start > 0 && !all.is_empty() {
            // The first line is probably cut.
            all.remove(0);
        }
        if all.len() >= lines || start == 0 {
            let from = all.len().saturating_sub(lines);
            return Ok(all[from..].iter().map(|l| (*l).to_owned()).collect());
        }
        window *= 4;
    }
}

/// Reads what was appended to `path` since `offset`; returns the new offset. A file
/// that shrank (truncated, replaced) is read again from the start.
pub(crate) fn read_from(path: &Path, offset: u64, out: &mut Vec<u8>) -> std::io::Result<u64> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let from = if len < offset { 0 } else { offset };
    f.seek(SeekFrom::Start(from))?;
    let n = f.read_to_end(out)?;
    Ok(from + n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_long_files() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("log");
        let text: String = (0..10_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&p, text).unwrap();
        assert_eq!(tail(&p, 2).unwrap(), vec!["line 9998", "line 9999"]);
        assert_eq!(tail(&p, 10_000).unwrap().len(), 10_000);
        assert!(tail(&tmp.path().join("none"), 5).unwrap().is_empty());
        let mut out = Vec::new();
        let off = read_from(&p, 0, &mut out).unwrap();
        std::fs::write(&p, "new\n").unwrap();
        out.clear();
        assert_eq!(read_from(&p, off, &mut out).unwrap(), 4);
        assert_eq!(out, b"new\n");
    }
}
