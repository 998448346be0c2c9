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
    /// Owner (uid, gid) as the container sees it; root when `None`.
    pub(crate) owner: Option<(u64, u64)>,
}

/// An archive of `dirs` (mode 0755, root's) then `files` (each its owner's, root's
/// when it names none). Docker extracts with the archive's ownership.
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
        let (uid, gid) = f.owner.unwrap_or((0, 0));
        h.set_uid(uid);
        h.set_gid(gid);
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

/// The uid and gid of `user` (a name or a number) in a container's `/etc/passwd`.
pub(crate) fn passwd_ids(passwd: &str, user: &str) -> Option<(u64, u64)> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        let (name, uid, gid) = (f.first()?, f.get(2)?, f.get(3)?);
        (*name == user || *uid == user)
            .then(|| Some((uid.parse().ok()?, gid.parse().ok()?)))
            .flatten()
    })
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
                owner: None,
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

    #[test]
    fn finds_a_user_by_name_or_number() {
        let passwd =
            "root:x:0:0:root:/root:/bin/bash\nredis:x:101:103::/var/lib/redis:/usr/sbin/nologin\n";
        assert_eq!(passwd_ids(passwd, "redis"), Some((101, 103)));
        assert_eq!(passwd_ids(passwd, "101"), Some((101, 103)));
        assert_eq!(passwd_ids(passwd, "postgres"), None);
    }
}
