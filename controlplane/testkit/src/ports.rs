//! Free loopback ports for the servers the tests start: chosen below the kernel's
//! ephemeral range, checked free by binding, and never handed out twice by
//! concurrently running test binaries.
//!
//! A port the kernel picked for `127.0.0.1:0` lies in its ephemeral range, so between
//! the moment a test releases it and the moment its server binds it, any outgoing
//! connection on the machine may take it as its local port. Below that range only a
//! listener can hold a port. Test binaries run concurrently (`cargo test` runs one at a
//! time, but nextest and several worktrees do not), so a cursor in a locked file under
//! the temp directory moves through the band: each call takes ports after the last
//! one any process was given.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// The ports this process has handed out (a second guard against reuse, should the
/// shared cursor go round the band while we run).
static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Fixed ports the shipped environments publish inside the band (extras' well-known
/// ports, which the tests' `--set`s do not move): never handed out, or a test that
/// gives one to a service fails validation ("port already used") at random.
/// `cargo test -p cp-testkit --test ports` fails when an environment file adds one
/// that is missing here.
pub const SHIPPED_IN_BAND: &[u16] = &[16686];

/// `n` distinct free loopback ports, below the ephemeral range.
pub fn free_ports(n: usize) -> Vec<u16> {
    allocate(n, false)
}

/// A free loopback port, below the ephemeral range.
pub fn free_port() -> u16 {
    allocate(1, false)[0]
}

/// The first of `n` consecutive free loopback ports (for clusters whose nodes listen
/// on a base port plus their index).
pub fn free_port_block(n: usize) -> u16 {
    allocate(n, true)[0]
}

/// The band ports are chosen from: `[lo/2, lo)` below the ephemeral range `[lo, hi]`,
/// which keeps clear of the services' default ports (5432, 6379, 8200, 9090, ...);
/// above the range when it starts too low to leave room below it.
pub fn band() -> (u16, u16) {
    static BAND: OnceLock<(u16, u16)> = OnceLock::new();
    *BAND.get_or_init(|| {
        let (lo, hi) = ephemeral_range();
        if lo >= 4096 {
            (lo / 2, lo)
        } else if hi < 61_000 {
            (hi + 1, 65_535)
        } else {
            panic!(
                "the ephemeral port range {lo}-{hi} leaves no room for the tests' servers; \
                 narrow it (sysctl net.ipv4.ip_local_port_range)"
            )
        }
    })
}

/// The kernel's ephemeral port range (Linux's default when it cannot be read).
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32_768, 60_999))
}

fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn cursor_file() -> PathBuf {
    std::env::temp_dir().join("cp-testkit-ports")
}

fn allocate(n: usize, consecutive: bool) -> Vec<u16> {
    assert!(n > 0, "ask for at least one port");
    let (start, end) = band();
    let span = usize::from(end - start);
    let path = cursor_file();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open the port cursor {}: {e}", path.display()));
    let mut file = match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive) {
        Ok(f) => f,
        Err((_, e)) => panic!("cannot lock the port cursor {}: {e}", path.display()),
    };
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let given = given.get_or_insert_with(HashSet::new);

    // Where the last caller stopped; a fresh file starts somewhere by pid.
    let mut next = read_cursor(&mut file)
        .filter(|p| (start..end).contains(p))
        .unwrap_or_else(|| start + (std::process::id() as usize % span) as u16);
    let mut out: Vec<u16> = Vec::with_capacity(n);
    // Once round the band, plus a block's length.
    for _ in 0..span + n {
        let port = next;
        next = if next + 1 >= end { start } else { next + 1 };
        if consecutive && port == start {
            out.clear();
        }
        if given.contains(&port) || SHIPPED_IN_BAND.contains(&port) || !is_free(port) {
            if consecutive {
                out.clear();
            }
            continue;
        }
        out.push(port);
        if out.len() == n {
            break;
        }
    }
    assert!(
        out.len() == n,
        "no {n} free loopback ports in {start}-{end} (below the ephemeral range)"
    );
    given.extend(&out);
    write_cursor(&mut file, next);
    out
}

fn read_cursor(file: &mut File) -> Option<u16> {
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

fn write_cursor(file: &mut File, next: u16) {
    // Best effort: a lost cursor only means the next caller starts elsewhere, and it
    // still checks every port by binding it.
    let _ = file
        .set_len(0)
        .and_then(|()| file.seek(SeekFrom::Start(0)))
        .and_then(|_| writeln!(file, "{next}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_distinct_and_free() {
        let (lo, _) = ephemeral_range();
        let a = free_ports(8);
        let b = free_ports(8);
        let all: HashSet<u16> = a.iter().chain(&b).copied().collect();
        assert_eq!(all.len(), 16, "{a:?} {b:?}");
        for p in &all {
            assert!(*p < lo || lo < 4096, "{p} is in the ephemeral range");
            assert!(is_free(*p), "{p} is taken");
        }
    }

    #[test]
    fn a_block_is_consecutive_and_free() {
        let base = free_port_block(16);
        for p in base..base + 16 {
            assert!(is_free(p), "{p} is taken");
        }
        assert!(base + 15 < band().1);
    }
}
