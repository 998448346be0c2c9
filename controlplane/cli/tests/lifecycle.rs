//! The bring-up commands end to end, through the `controlplane` binary as a user runs
//! it: `plan`, `up` (twice), `status --output json`, a killed service seen as down and
//! brought back by `up`, and `down --volumes` leaving no process and no port behind.
//! Real servers (PostgreSQL, Redis, NATS, OpenBao) on free loopback ports.

use std::path::Path;

mod common;
use common::{controlplane, text};

use serde_json::Value;

/// `status --output json`, and whether it exited 0 (every service healthy) rather
/// than 1 (something is down).
fn status_json(state: &Path, sets: &[String]) -> (Value, bool) {
    let o = controlplane(state, sets, &["--output", "json", "status"]);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "status failed:\n{}",
        text(&o)
    );
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("status json: {e}\n{}", text(&o)));
    (v, o.status.success())
}

fn service<'v>(status: &'v Value, name: &str) -> &'v Value {
    status["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["service"] == name)
        .unwrap_or_else(|| panic!("{name} missing from status: {status}"))
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn plan_up_twice_status_heal_and_down() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    // The postgres user must be able to enter the state directory when run as root.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("dev");
    let mut sets = cp_testkit::port_sets();
    sets.push("platform=process".into());
    let ports: Vec<u16> = sets
        .iter()
        .filter(|s| s.contains(".port=") && !s.contains("cluster"))
        .map(|s| s.rsplit('=').next().unwrap().parse().unwrap())
        .collect();
    // However the test ends, nothing it started outlives it.
    let _down = common::down(&state, &sets);

    // plan before anything exists: read-only, exit 2, creates nothing.
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("4 to create"),
        "{}",
        text(&o)
    );
    assert!(!state.exists(), "plan must not create the state directory");

    let o = controlplane(&state, &sets, &["up", "--no-seed"]);
    assert!(o.status.success(), "up failed:\n{}", text(&o));
    for p in &ports {
        assert!(port_open(*p), "port {p} should answer after up");
    }

    // The second run changes nothing and says so.
    let o = controlplane(&state, &sets, &["up", "--no-seed"]);
    assert!(o.status.success(), "second up failed:\n{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("nothing to change"),
        "{}",
        text(&o)
    );
    // Without seeding, the seeded layers are pending, and the plan says so.
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "plan after up --no-seed:\n{}",
        text(&o)
    );
    let plan = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(plan.contains("platform: up to date"), "{plan}");
    assert!(plan.contains("+ database anumate"), "{plan}");
    assert!(plan.contains("+ stream CAPSULE_EVENTS"), "{plan}");
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "up (seeding):\n{}", text(&o));
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(o.status.code(), Some(0), "plan after up:\n{}", text(&o));

    let (st, healthy) = status_json(&state, &sets);
    assert!(healthy, "status exits 0 when all are up: {st}");
    for name in ["postgres", "redis", "nats", "vault"] {
        let s = service(&st, name);
        assert_eq!(s["state"]["state"], "running", "{name}: {s}");
        assert_eq!(s["health"]["health"], "healthy", "{name}: {s}");
        assert!(s["version"].is_string(), "{name} has a version: {s}");
    }
    // Connection URLs carry no password unless asked for (dev only).
    let url = service(&st, "postgres")["connect"]["app"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with("postgres://anumate_app@"), "{url}");
    let o = controlplane(&state, &sets, &["-o", "json", "status", "--show-secrets"]);
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    let url = service(&shown, "postgres")["connect"]["app"]
        .as_str()
        .unwrap();
    assert!(url.starts_with("postgres://anumate_app:"), "{url}");

    // Kill redis (by the pid status reports, which this test's `up` started).
    let pid: i32 = service(&st, "redis")["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let mut st = status_json(&state, &sets);
    for _ in 0..50 {
        if service(&st.0, "redis")["state"]["state"] != "running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        st = status_json(&state, &sets);
    }
    assert_ne!(
        service(&st.0, "redis")["state"]["state"],
        "running",
        "{}",
        st.0
    );
    assert!(!st.1, "status exits non-zero while redis is down");
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "plan sees redis down:\n{}",
        text(&o)
    );
    let o = controlplane(&state, &sets, &["up", "--no-seed"]);
    assert!(o.status.success(), "up after kill:\n{}", text(&o));
    let (st, healthy) = status_json(&state, &sets);
    assert!(healthy, "all healthy again: {st}");
    assert_eq!(service(&st, "redis")["state"]["state"], "running", "{st}");

    let pids: Vec<String> = ["postgres", "redis", "nats", "vault"]
        .iter()
        .map(|n| service(&st, n)["id"].as_str().unwrap().to_owned())
        .collect();
    // Deleting data needs a confirmation; without a terminal, --yes.
    let o = controlplane(&state, &sets, &["down", "--volumes"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "down --volumes without --yes:\n{}",
        text(&o)
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("would delete") && err.contains("--yes"),
        "{err}"
    );
    assert!(
        err.contains("data: this cannot be undone"),
        "it names what holds data: {err}"
    );
    for p in &ports {
        assert!(
            port_open(*p),
            "a refused down touched nothing, port {p} answers"
        );
    }
    let o = controlplane(&state, &sets, &["down", "--volumes", "--yes"]);
    assert!(o.status.success(), "down failed:\n{}", text(&o));
    for p in &ports {
        assert!(!port_open(*p), "port {p} still answers after down");
    }
    for pid in &pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z")),
            "process {pid} still alive after down"
        );
    }
}
