//! Tar archives for Docker's archive API: files in (configuration uploaded before a
//! container starts), one file out (an existing ACL file on a volume).

use std::io::Read;

/// A file to put into an archive.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    /// Path relative to the extraction directory (no leading `/`).
    pub(crate) path: &'a str,
    /// Content.
    pub(crate) content: &'a [u8],
    /// Permission bits.
    pub(crate) mode: u32,
}

/// An archive of `dirs` (mode 0755) then `files`, owned by root.
pub(crate) fn build(dirs: &[&str], files: &[Entry<'_>]) -> std::io::Result<Vec<u8>> {
    let mtime = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut b = tar::Builder::new(Vec::new());
    for d in dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h.set_mtime(mtime);
        b.append_data(&mut h, d, std::io::empty())?;
    }
    for f in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(f.mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(f.content.len() as u64);
        h.set_mtime(mtime);
        b.append_data(&mut h, f.path, f.content)?;
    }
    b.into_inner()
}

/// The content of the first regular file of an archive.
pub(crate) fn first_file(archive: &[u8]) -> std::io::Result<Option<Vec<u8>>> {
    let mut a = tar::Archive::new(archive);
    for entry in a.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type().is_file() {
            let mut out = Vec::new();
            entry.read_to_end(&mut out)?;
            return Ok(Some(out));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let a = build(
            &["etc/controlplane"],
            &[Entry {
                path: "etc/controlplane/redis.conf",
                content: b"port 6379\n",
                mode: 0o644,
            }],
        )
        .unwrap();
        assert_eq!(first_file(&a).unwrap().unwrap(), b"port 6379\n");
        let mut names = Vec::new();
        for e in tar::Archive::new(&a[..]).entries().unwrap() {
            let e = e.unwrap();
            names.push((
                e.path().unwrap().display().to_string(),
                e.header().mode().unwrap(),
            ));
        }
        assert_eq!(
            names,
            [
                ("etc/controlplane".to_owned(), 0o755),
                ("etc/controlplane/redis.conf".to_owned(), 0o644)
            ]
        );
    }
}
