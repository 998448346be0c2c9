//! One recovery point across services, through the `controlplane` binary on the
//! process platform with all four services real: paired writes (each step inserts an
//! outbox row in PostgreSQL, then publishes its event to JetStream, and sets a Redis
//! key), a logical set before T and one after it, continuous WAL archiving, then
//! `restore --to-time T` of the whole environment (refused without `--yes`, listing
//! what it replaces). Afterwards every event at or before T has its row and every row
//! at or before T its event, nothing after T is back, Redis is the set's from before
//! T, and the per-service distance from T is printed.

mod common;
use common::{controlplane, psql_admin as psql, text};

use std::path::Path;
use std::time::Duration;

const ARCHIVE_TIMEOUT_S: u64 = 2;

fn ok(state: &Path, sets: &[String], args: &[&str]) -> String {
    let o = controlplane(state, sets, args);
    assert!(o.status.success(), "{args:?}:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn epoch_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One paired write: the row (committed first, as an outbox row is), then its event
/// (acknowledged by JetStream), then the Redis key. Returns the event's sequence.
fn step(state: &Path, sets: &[String], n: u32) -> u64 {
    psql(
        state,
        sets,
        &format!("INSERT INTO outbox(step) VALUES ({n})"),
    );
    let v: serde_json::Value = serde_json::from_str(&ok(
        state,
        sets,
        &[
            "-o",
            "json",
            "nats",
            "pub",
            "events.plan.step",
            &format!("step-{n}"),
        ],
    ))
    .unwrap();
    assert_eq!(v["stream"], "PLAN_EVENTS", "{v}");
    ok(
        state,
        sets,
        &["redis-cli", "--", "SET", "step", &n.to_string()],
    );
    v["sequence"].as_u64().unwrap()
}

fn rows(state: &Path, sets: &[String]) -> Vec<u32> {
    psql(state, sets, "SELECT step FROM outbox ORDER BY step")
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

fn stream(state: &Path, sets: &[String]) -> serde_json::Value {
    serde_json::from_str(&ok(
        state,
        sets,
        &["-o", "json", "nats", "stream", "info", "PLAN_EVENTS"],
    ))
    .unwrap()
}

fn rfc3339(epoch: f64) -> String {
    let secs = epoch.floor() as i64;
    let nanos = ((epoch - epoch.floor()) * 1e9) as u32;
    chrono::DateTime::from_timestamp(secs, nanos)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[test]
fn a_restore_to_a_time_leaves_every_event_with_its_row_and_every_row_with_its_event() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("dev");
    let mut sets = cp_testkit::port_sets();
    sets.extend(cp_testkit::only(&cp_core::names::CoreKind::ALL));
    sets.retain(|s| s != "backup.enabled=false");
    sets.extend([
        "platform=process".to_owned(),
        "backup.pitr.enabled=true".to_owned(),
        format!("backup.pitr.archive_timeout={ARCHIVE_TIMEOUT_S}s"),
        format!(
            "backup.destinations.local.path={}",
            tmp.path().join("backups").display()
        ),
    ]);
    let _down = common::down(&state, &sets);
    ok(&state, &sets, &["up"]);
    psql(
        &state,
        &sets,
        "CREATE TABLE outbox (step int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())",
    );
    ok(&state, &sets, &["backup", "--base"]);

    // Steps 1-2, then set A (Redis and OpenBao come from it: it finished before T).
    let mut seqs = vec![0];
    for n in 1..=2 {
        seqs.push(step(&state, &sets, n));
    }
    let set_a = ok(&state, &sets, &["backup"]);
    // Steps 3-5; T falls between step 5's event and step 6's row.
    for n in 3..=5 {
        std::thread::sleep(Duration::from_millis(500));
        seqs.push(step(&state, &sets, n));
    }
    let before = epoch_now();
    std::thread::sleep(Duration::from_millis(1000));
    let after = epoch_now();
    let t = rfc3339(before + (after - before) / 2.0);
    // Steps 6-7, then set B (JetStream comes from it, trimmed to T), then step 8.
    for n in 6..=7 {
        seqs.push(step(&state, &sets, n));
        std::thread::sleep(Duration::from_millis(500));
    }
    let set_b = ok(&state, &sets, &["backup"]);
    seqs.push(step(&state, &sets, 8));
    assert_eq!(
        seqs,
        (0..=8).collect::<Vec<u64>>(),
        "one event per step, in order"
    );
    // Step 8's WAL reaches the archive within archive_timeout.
    std::thread::sleep(Duration::from_secs(ARCHIVE_TIMEOUT_S * 2 + 2));

    // Refused without --yes, naming what each service is replaced by; nothing touched.
    let o = controlplane(&state, &sets, &["restore", "--to-time", &t]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("outbox"), "{err}");
    assert!(
        err.contains(&format!("redis: replaced by set {set_a}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("nats: every stream in set {set_b}")),
        "{err}"
    );
    assert_eq!(rows(&state, &sets), (1..=8).collect::<Vec<_>>());

    let o = controlplane(&state, &sets, &["restore", "--to-time", &t, "--yes"]);
    assert!(o.status.success(), "restore --to-time:\n{}", text(&o));
    let printed = String::from_utf8_lossy(&o.stderr).into_owned();
    eprintln!("restore --to-time {t}:\n{printed}");

    // Every row at or before T has its event, and every event at or before T its row;
    // nothing after T came back.
    assert_eq!(rows(&state, &sets), (1..=5).collect::<Vec<_>>());
    let info = stream(&state, &sets);
    assert_eq!(info["stream"]["messages"], 5, "{info}");
    assert_eq!(info["first_sequence"], 1, "{info}");
    // Redis is set A's: the key as step 2 left it.
    assert_eq!(ok(&state, &sets, &["redis-cli", "--", "GET", "step"]), "2");

    // Per service, how far from T it landed.
    for (service, how) in [
        ("postgres", "exactly at T"),
        ("nats", "exactly at T"),
        ("redis", "before T"),
        ("vault", "before T"),
    ] {
        assert!(
            printed
                .lines()
                .any(|l| l.trim_start().starts_with(service) && l.contains(how)),
            "{service} {how}:\n{printed}"
        );
    }
    assert!(printed.contains(&format!("from set {set_a}")), "{printed}");
    assert!(
        printed.contains("stream PLAN_EVENTS: 2 message(s) stored after T removed, 5 kept"),
        "{printed}"
    );

    // The environment works on after the restore: the next event follows on.
    let next = step(&state, &sets, 6);
    assert!(next > 5, "sequence {next}");
}
