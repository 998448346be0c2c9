//! Reading `/proc`: a process's identity (start time, command line, boot), its
//! liveness, who listens on a port, and which processes still work in a directory.
//!
//! Read-only. The driver decides from these facts whether a pid is still the process
//! it started before it ever signals it.

use std::fs;
use std::path::{Path, PathBuf};

/// The fields of `/proc/<pid>/stat` the driver needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stat {
    /// `comm`: the executable's short name.
    pub(crate) comm: String,
    /// `R`, `S`, `Z`...
    pub(crate) state: char,
    /// Start time in clock ticks since boot: with the boot id, identifies a process
    /// across pid reuse.
    pub(crate) start_time: u64,
}

impl Stat {
    /// Zombies and dead tasks have exited; only their parent has not reaped them yet.
    pub(crate) fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// `/proc/<pid>/stat`, `None` when there is no such process.
pub(crate) fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<Stat> {
    // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses, so
    // split at the last `)`.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state); field 22 (starttime) is rest[19].
    Some(Stat {
        comm,
        state: rest.first()?.chars().next()?,
        start_time: rest.get(19)?.parse().ok()?,
    })
}

/// `/proc/<pid>/cmdline`, split at NULs (a retitled process may pack its title,
/// spaces and all, into the first element).
pub(crate) fn cmdline(pid: u32) -> Option<Vec<String>> {
    let bytes = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        bytes
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
    )
}

/// This boot's id: a start time is only meaningful within one boot.
pub(crate) fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Every pid in `/proc`.
pub(crate) fn pids() -> Vec<u32> {
    fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Live processes whose working directory is `dir` or below it. PostgreSQL's
/// server processes leave the postmaster's process group but inherit its working
/// directory (the data directory): this finds the ones a killed postmaster left
/// behind, which must be gone before a new one can start on the same data.
pub(crate) fn working_in(dir: &Path) -> Vec<(u32, String)> {
    pids()
        .into_iter()
        .filter_map(|pid| {
            let cwd = fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
            if !cwd.starts_with(dir) {
                return None;
            }
            let st = stat(pid)?;
            (!st.exited()).then_some((pid, st.comm))
        })
        .collect()
}

/// The process listening on a TCP `port` of this network namespace, as
/// `(pid, comm)`, when `/proc` tells (another user's process may hide its fds).
pub(crate) fn listener(port: u16) -> Option<(u32, String)> {
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| fs::read_to_string(f).ok())
        .flat_map(|text| listening_inodes(&text, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for pid in pids() {
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = fs::read_link(fd.path())
                && wanted.iter().any(|w| target.as_os_str() == w.as_str())
            {
                let comm = stat(pid).map(|s| s.comm).unwrap_or_default();
                return Some((pid, comm));
            }
        }
    }
    None
}

/// Inodes of sockets listening on `port` in a `/proc/net/tcp{,6}` table.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    let want = format!("{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let local = cols.get(1)?;
            let (_, p) = local.rsplit_once(':')?;
            // State 0A is LISTEN.
            (p == want && *cols.get(3)? == "0A").then(|| cols.get(9).map(|s| (*s).to_owned()))?
        })
        .collect()
}

/// The final component of a path-like string (`/usr/bin/redis-server` ->
/// `redis-server`).
pub(crate) fn base_name(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

/// `/proc/<pid>/exe`, when readable.
pub(crate) fn exe(pid: u32) -> Option<PathBuf> {
    fs::read_link(format!("/proc/{pid}/exe")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_comm() {
        let s = "42 (a) b) c) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 123456 0 0";
        let st = parse_stat(s).unwrap();
        assert_eq!(st.comm, "a) b) c");
        assert_eq!(st.state, 'S');
        assert_eq!(st.start_time, 123456);
        let me = stat(std::process::id()).unwrap();
        assert!(!me.exited());
        assert!(boot_id().is_some());
    }

    #[test]
    fn finds_the_listener_of_a_port() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (pid, _) = listener(port).unwrap();
        assert_eq!(pid, std::process::id());
        drop(l);
        assert!(listener(port).is_none());
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1\n   1: 0100007F:1F90 0100007F:877F 01 00000000:00000000 00:00000000 00000000     0        0 778 1\n";
        assert_eq!(listening_inodes(table, 8080), vec!["777".to_owned()]);
    }
}
