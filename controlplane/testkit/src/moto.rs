//! An S3 protocol server on loopback for tests: `moto_server` from PyPI
//! `moto[server]` (which `cargo xtask test` installs) on a free port, with the buckets
//! a test asks for, stopped by pid when dropped (even when the test fails).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::{Down, free_port, require_tool};

/// A running moto_server.
pub struct Moto {
    /// Stops it.
    pub down: Down,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    port: u16,
}

impl Moto {
    /// A `backup.destinations.<name>` value for `bucket` under `prefix`, with moto's
    /// test credentials.
    pub fn destination(&self, bucket: &str, prefix: &str) -> String {
        format!(
            "{{type: s3, bucket: {bucket}, prefix: {prefix}, region: us-east-1, endpoint: \"{}\", access_key_id: testing, secret_access_key: testing}}",
            self.endpoint
        )
    }
}

/// `PUT /<bucket>`: the HTTP status, or `None` when nothing answers yet.
fn create_bucket(port: u16, bucket: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 32];
    let n = s.read(&mut head).ok()?;
    let line = String::from_utf8_lossy(&head[..n]).into_owned();
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Starts moto_server and creates `buckets` (waiting up to 60 s for it to answer).
pub fn moto(buckets: &[&str]) -> Moto {
    let program = require_tool("moto_server");
    let port = free_port();
    let child = cp_runtime::exec::command(&program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let m = Moto {
        down: Down::process(child),
        endpoint: format!("http://127.0.0.1:{port}"),
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    for b in buckets {
        loop {
            match create_bucket(m.port, b) {
                Some(s) if (200..300).contains(&s) => break,
                Some(s) => panic!("moto_server refused to create bucket {b}: HTTP {s}"),
                None => {}
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    m
}
