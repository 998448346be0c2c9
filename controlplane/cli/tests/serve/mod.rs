//! The served binary for the end-to-end tests: `dev` brought up and seeded on free
//! ports by `controlplane up`, then `controlplane serve` on 127.0.0.1:0 (the port read
//! from its first log line), an admin token from `controlplane token create`. Both
//! are stopped (and the data deleted) when dropped.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::common::{controlplane, controlplane_cmd, text};

pub struct Served {
    /// First, so the servers go before their directory: `serve` stopped, then the
    /// environment brought down.
    down: Option<cp_testkit::Down>,
    pub tmp: tempfile::TempDir,
    pub state: PathBuf,
    pub server_dir: PathBuf,
    pub sets: Vec<String>,
    pub addr: String,
    pub admin: String,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Served {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The recorded pid of a service (`<state>/<service>/process.json`).
    pub fn pid(&self, service: &str) -> u32 {
        let bytes = std::fs::read(self.state.join(service).join("process.json")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v["pid"].as_u64().unwrap() as u32
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

/// `dev` up and seeded, served.
pub fn served() -> Served {
    served_with(&[], &[])
}

/// `dev` with the `--set`s `extra`, up and seeded, each of `then` run (as
/// `controlplane ARGS`, e.g. `backup --base`) before it is served.
pub fn served_with(extra: &[String], then: &[&[&str]]) -> Served {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("dev");
    let server_dir = tmp.path().join("server");
    let mut sets = cp_testkit::port_sets();
    sets.push("platform=process".into());
    sets.push(format!(
        "backup.destinations.local.path={}",
        tmp.path().join("backups").display()
    ));
    sets.extend(extra.iter().cloned());
    let mut s = Served {
        state: state.clone(),
        server_dir: server_dir.clone(),
        sets: sets.clone(),
        addr: String::new(),
        admin: String::new(),
        log: Arc::new(Mutex::new(Vec::new())),
        down: Some(super::common::down(&state, &sets)),
        tmp,
    };
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "{}", text(&o));
    for args in then {
        let o = controlplane(&state, &sets, args);
        assert!(o.status.success(), "{args:?}: {}", text(&o));
    }
    let dir = server_dir.to_str().unwrap();
    let o = controlplane(
        &state,
        &sets,
        &[
            "token",
            "create",
            "--role",
            "admin",
            "--name",
            "admin",
            "--server-dir",
            dir,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    s.admin = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    let mut cmd = controlplane_cmd(
        &state,
        &sets,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--only",
            "dev",
            "--probe-interval",
            "1s",
            "--server-dir",
            dir,
        ],
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start controlplane serve");
    let stderr = child.stderr.take().unwrap();
    s.down = Some(cp_testkit::Down::process(child).then(s.down.take().expect("the guard")));
    let (tx, rx) = std::sync::mpsc::channel();
    let log = s.log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("\"listening\"") {
                let _ = tx.send(line.clone());
            }
            log.lock().unwrap().push(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("serve did not say where it listens:\n{}", s.log_text()));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    s.addr = v["fields"]["addr"].as_str().unwrap().to_owned();
    s
}

/// Polls `f` every 100 ms until it is `Some`, for at most `secs`.
pub fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
