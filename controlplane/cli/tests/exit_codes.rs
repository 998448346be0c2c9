//! The exit-code table, per command: 0 success or nothing to change, 1 failure, 2
//! changes pending or drift, 3 invalid input or usage; a closed pipe ends quietly;
//! completion scripts load in their shell; `down` outside dev without a terminal
//! refuses and lists what it would delete.

// Tests run the binaries they judge (ours, kubectl, promtool) by path on purpose.
#![allow(clippy::disallowed_methods)]

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

mod common;
use common::text;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_controlplane"));
    c.current_dir(cp_testkit::repo_root())
        .env_remove("CONTROLPLANE_ENV")
        .env_remove("CONTROLPLANE_ENVIRONMENTS")
        .env_remove("VAULT_TOKEN");
    c
}

fn exit(args: &[&str]) -> i32 {
    let o = bin().args(args).output().unwrap();
    o.status.code().unwrap_or(-1)
}

#[test]
fn one_table_for_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("state");
    let s = empty.to_str().unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["--help"], 0, "help is not an error"),
        (&["--version"], 0, "version"),
        (&["validate", "--all"], 0, "valid files"),
        (
            &["render", "--all", "--check"],
            0,
            "committed output is fresh",
        ),
        (&["no-such-command"], 3, "unknown command is usage"),
        (&["status", "--no-such-flag"], 3, "unknown flag is usage"),
        (
            &["--env", "nope", "validate"],
            3,
            "unknown environment is invalid input",
        ),
        (
            &["--set", "services.postgres.port=x", "plan"],
            3,
            "a bad --set is invalid input, not pending",
        ),
        (
            &["--set", "services.postgres.port=x", "render", "--check"],
            3,
            "invalid input beats drift",
        ),
        (
            &["--state-dir", s, "--set", "platform=process", "plan"],
            2,
            "nothing is up: changes pending",
        ),
        (
            &[
                "--state-dir",
                s,
                "--set",
                "platform=process",
                "up",
                "--service",
                "nope",
            ],
            3,
            "unknown service",
        ),
        (
            &[
                "--state-dir",
                s,
                "--set",
                "platform=process",
                "up",
                "--timeout",
                "soon",
            ],
            3,
            "bad duration",
        ),
        (
            &["--state-dir", s, "--set", "platform=process", "status"],
            1,
            "nothing runs: unhealthy",
        ),
        (
            &[
                "--state-dir",
                s,
                "--set",
                "platform=process",
                "up",
                "--plan",
                "/nonexistent.plan",
            ],
            3,
            "unreadable saved plan",
        ),
        (&["schema", "--view", "nope"], 3, "unknown view"),
        (&["schema", "--view", "plan"], 0, "a view's schema"),
    ];
    for (args, want, why) in cases {
        assert_eq!(exit(args), *want, "{why}: controlplane {}", args.join(" "));
    }
    assert!(
        !empty.exists(),
        "read-only commands created the state directory"
    );

    // render --check on a drifted copy is 2.
    let out = tmp.path().join("out");
    let o = out.to_str().unwrap();
    assert_eq!(exit(&["render", "--all", "--out", o]), 0);
    std::fs::write(out.join("compose/dev/stray.yaml"), "x: 1\n").unwrap();
    assert_eq!(exit(&["render", "--all", "--out", o, "--check"]), 2);
}

#[test]
fn a_closed_pipe_ends_quietly() {
    // `controlplane config | head -1`: the reader goes away after one line.
    let mut child = bin()
        .args(["--env", "production", "config"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit {status:?}, stderr: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "{err}"
    );
    // Through a real shell pipeline too.
    let o = Command::new("bash")
        .args([
            "-o",
            "pipefail",
            "-c",
            &format!(
                "{} --env production config | head -1",
                env!("CARGO_BIN_EXE_controlplane")
            ),
        ])
        .current_dir(cp_testkit::repo_root())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pipefail sees a failure: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn completions_load_in_their_shell() {
    let o = Command::new("bash")
        .args([
            "-c",
            &format!(
                "source <({} completions bash) && complete -p controlplane",
                env!("CARGO_BIN_EXE_controlplane")
            ),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("controlplane"));
    for shell in ["zsh", "fish", "powershell"] {
        let o = bin().args(["completions", shell]).output().unwrap();
        assert!(o.status.success() && !o.stdout.is_empty(), "{shell}");
    }
}

/// The staging secrets this test hands over through the environment.
const STAGING_VARS: &[(&str, &str)] = &[
    ("ANUMATE_REDIS_ADMIN_PASSWORD", "staging-redis-admin-pw"),
    ("ANUMATE_REDIS_APP_PASSWORD", "staging-redis-app-pw"),
];

fn staging(state: &Path, sets: &[String], args: &[&str]) -> std::process::Output {
    let mut c = bin();
    c.arg("--env").arg("staging").arg("--state-dir").arg(state);
    for s in sets {
        c.args(["--set", s]);
    }
    for (k, v) in STAGING_VARS {
        c.env(k, v);
    }
    c.args(args).output().unwrap()
}

#[test]
fn down_outside_dev_without_a_terminal_refuses_and_lists_what_it_would_delete() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("staging");
    let _down = cp_testkit::Down::processes_in(&state);
    let mut sets = cp_testkit::port_sets();
    sets.push("platform=process".into());
    let o = staging(&state, &sets, &["up", "--service", "redis", "--no-seed"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = staging(&state, &sets, &["down"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("`down` on staging would delete") && err.contains("process redis"),
        "{err}"
    );
    assert!(err.contains("--yes"), "{err}");
    let o = staging(&state, &sets, &["status"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("running"),
        "nothing was stopped: {}",
        text(&o)
    );
    let o = staging(&state, &sets, &["down", "--volumes", "--yes"]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_second_mutating_run_fails_fast_naming_the_holder() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("dev");
    let s = state.to_str().unwrap();
    // The state directory exists (a first run made it) and another run holds the lock.
    let o = bin()
        .args(["--state-dir", s, "--set", "platform=process", "down"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let holder = cp_runtime::state::StateDir::open(&state, "dev")
        .unwrap()
        .lock("environment", "up")
        .unwrap();
    let started = std::time::Instant::now();
    for args in [
        &["seed"][..],
        &["up"],
        &["down"],
        &["migrate", "up"],
        &["tenant", "create", "acme"],
    ] {
        let o = bin()
            .args(["--state-dir", s, "--set", "platform=process"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains(&format!("held by pid {} (`up`) since ", std::process::id())),
            "{args:?} names the holder: {err}"
        );
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "it fails fast"
    );
    // Read-only commands need no lock.
    let o = bin()
        .args(["--state-dir", s, "--set", "platform=process", "plan"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    drop(holder);
}
