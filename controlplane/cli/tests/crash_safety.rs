//! `kill -9` of `controlplane up` at several points of a cold start (spawning the
//! servers, PostgreSQL's initdb, OpenBao's first initialisation, seeding), each
//! followed by an `up` that converges (exit 0) and a `plan` with nothing to do. Real
//! servers on free loopback ports, a fresh state directory per point.
//!
//! An `up` killed between OpenBao answering its initialisation and the keys being
//! kept leaves a server nobody can unseal: the next `up` refuses, naming it, and `up
//! --reinitialise vault --yes` converges (see data_safety.rs for that path on its
//! own). Which side of that instant the kill lands on is up to timing: both converge.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;
use common::{controlplane, controlplane_cmd, down, text};

/// Where in a cold start the kill lands: a condition on the state directory (and,
/// for Vault, on the server) that the killed run has reached.
#[derive(Debug, Clone, Copy)]
enum Point {
    /// The state directory exists: servers are being spawned.
    Spawning,
    /// initdb runs (its marker names its pid).
    Initdb,
    /// OpenBao was asked to initialise and answered it is initialised.
    VaultInit,
    /// Both stateful services are recorded as initialised: seeding runs.
    Seeding,
}

/// Whether the killed run got to `p` (or just past it: polling may miss an instant).
fn reached(p: Point, state: &Path) -> bool {
    match p {
        Point::Spawning => state.join("postgres").exists() || state.join("redis").exists(),
        Point::Initdb => {
            std::fs::read_to_string(state.join("postgres/initdb.pending"))
                .is_ok_and(|s| s.contains("\"pid\""))
                || state.join("initialised/postgres.json").exists()
        }
        Point::VaultInit => {
            state.join("vault/init.pending").exists() || state.join("vault/init.json").exists()
        }
        Point::Seeding => {
            state.join("initialised/postgres.json").exists()
                && state.join("initialised/vault.json").exists()
        }
    }
}

fn cold_up_killed_at(p: Point) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state: PathBuf = tmp.path().join("dev");
    let mut sets = cp_testkit::port_sets();
    sets.push("platform=process".into());
    let _down = down(&state, &sets);
    let port: u16 = sets
        .iter()
        .find_map(|s| s.strip_prefix("services.vault.port="))
        .unwrap()
        .parse()
        .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let vault = cp_runtime::vault::VaultApi::new(&cp_runtime::probe::Endpoint::local(port));

    let mut child = controlplane_cmd(&state, &sets, &["up"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start controlplane up");
    let end = Instant::now() + Duration::from_secs(60);
    let mut hit = false;
    while Instant::now() < end {
        if reached(p, &state) {
            hit = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if hit && matches!(p, Point::VaultInit) {
        // Let OpenBao finish the initialisation the run asked for, so the kill lands
        // as near as polling can to the instant before its answer is kept.
        while Instant::now() < end
            && !state.join("vault/init.json").exists()
            && !rt
                .block_on(vault.seal_status())
                .is_ok_and(|s| s.initialized)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // SIGKILL: nothing of `up` runs after this, no destructor, no cleanup.
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(
        hit,
        "{p:?}: the killed up never got there:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let o = controlplane(&state, &sets, &["up"]);
    let o = if o.status.code() == Some(1)
        && String::from_utf8_lossy(&o.stderr).contains("first initialisation was interrupted")
    {
        eprintln!("{p:?}: the kill lost vault's keys; re-initialising it as the refusal says");
        controlplane(&state, &sets, &["up", "--reinitialise", "vault", "--yes"])
    } else {
        o
    };
    assert!(o.status.success(), "{p:?}: the next up:\n{}", text(&o));
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{p:?}: plan after the converging up:\n{}",
        text(&o)
    );
}

#[test]
fn a_cold_up_killed_while_spawning_the_servers_converges() {
    cold_up_killed_at(Point::Spawning);
}

#[test]
fn a_cold_up_killed_during_initdb_converges() {
    cold_up_killed_at(Point::Initdb);
}

#[test]
fn a_cold_up_killed_during_openbao_initialisation_converges() {
    cold_up_killed_at(Point::VaultInit);
}

#[test]
fn a_cold_up_killed_while_seeding_converges() {
    cold_up_killed_at(Point::Seeding);
}
