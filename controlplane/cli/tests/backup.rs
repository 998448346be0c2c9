//! The backup commands through the `controlplane` binary: `backup` prints the set's
//! id, `backup list` works from a fresh machine (another state directory) because the
//! destination is the source of truth, `restore` onto a target that holds data is
//! refused without `--yes` (exit 3, listing what it would replace, nothing touched)
//! and done with it, `backup verify [--restore-drill]` and `backup prune --dry-run`.

mod common;
use common::{controlplane, text};

use serde_json::Value;

fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("json: {e}\n{}", text(o)))
}

#[test]
fn backup_list_refused_restore_restore_verify_prune() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("dev");
    let dest = tmp.path().join("backups");
    let mut sets = cp_testkit::port_sets();
    sets.extend(cp_testkit::only(&[
        cp_core::names::CoreKind::Redis,
        cp_core::names::CoreKind::Nats,
    ]));
    sets.retain(|s| s != "backup.enabled=false");
    sets.extend([
        "platform=process".to_owned(),
        "backup.services=[redis, nats]".to_owned(),
        format!("backup.destinations.local.path={}", dest.display()),
        // A second destination: `backup` keeps the set at both.
        format!(
            "backup.destinations.second={{type: local, path: \"{}\"}}",
            tmp.path().join("second").display()
        ),
    ]);
    // Whatever happens, the servers go when the test ends.
    let _down = common::down(&state, &sets);
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "up:\n{}", text(&o));
    let o = controlplane(
        &state,
        &sets,
        &["redis-cli", "--", "SET", "t:1:before", "1"],
    );
    assert!(o.status.success(), "redis-cli:\n{}", text(&o));

    let o = controlplane(&state, &sets, &["backup"]);
    assert!(o.status.success(), "backup:\n{}", text(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert!(cp_backup::BackupId::parse(&id).is_ok(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("redis") && err.contains("compressed"), "{err}");

    // A fresh machine: nothing in its state directory, the same destination.
    let elsewhere = tmp.path().join("elsewhere");
    let o = controlplane(&elsewhere, &sets, &["-o", "json", "backup", "list"]);
    assert!(o.status.success(), "list:\n{}", text(&o));
    let v = json(&o);
    assert_eq!(v["sets"][0]["id"], id.as_str(), "{v}");
    assert_eq!(v["sets"][0]["state"]["state"], "complete", "{v}");
    // Every destination holds it: the backup said so, and each one lists it.
    assert!(
        err.contains("destination second") && err.contains("copied from local"),
        "{err}"
    );
    let o = controlplane(
        &elsewhere,
        &sets,
        &["-o", "json", "backup", "list", "--destination", "all"],
    );
    assert!(o.status.success(), "list --destination all:\n{}", text(&o));
    let v = json(&o);
    let names: Vec<&str> = v["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["destination"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["local", "second"], "{v}");
    for d in v["destinations"].as_array().unwrap() {
        assert_eq!(d["sets"][0]["id"], id.as_str(), "{v}");
        assert_eq!(d["sets"][0]["state"]["state"], "complete", "{v}");
    }

    // Data written after the backup; restore without --yes is refused, touching nothing.
    let o = controlplane(&state, &sets, &["redis-cli", "--", "SET", "t:1:after", "2"]);
    assert!(o.status.success());
    let o = controlplane(&state, &sets, &["restore", &id]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("would delete") && err.contains("2 Redis keys"),
        "{err}"
    );
    let o = controlplane(&state, &sets, &["redis-cli", "--", "GET", "t:1:after"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "2",
        "nothing was touched"
    );

    let o = controlplane(&state, &sets, &["restore", &id, "--yes"]);
    assert!(o.status.success(), "restore:\n{}", text(&o));
    let o = controlplane(&state, &sets, &["redis-cli", "--", "EXISTS", "t:1:after"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "0",
        "{}",
        text(&o)
    );
    let o = controlplane(&state, &sets, &["redis-cli", "--", "GET", "t:1:before"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1");

    let o = controlplane(&state, &sets, &["-o", "json", "backup", "verify", &id]);
    assert!(o.status.success(), "verify:\n{}", text(&o));
    assert_eq!(json(&o)["ok"], true);
    let o = controlplane(&state, &sets, &["-o", "json", "backup", "list"]);
    assert_eq!(json(&o)["sets"][0]["state"]["state"], "verified");
    let o = controlplane(&state, &sets, &["backup", "verify", &id, "--restore-drill"]);
    assert!(o.status.success(), "drill:\n{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("drill: redis: 1 keys") && out.contains("drill: nats: "),
        "{out}"
    );
    let o = controlplane(&state, &sets, &["-o", "json", "backup", "list"]);
    assert_eq!(json(&o)["sets"][0]["state"]["state"], "drilled");
    let o = controlplane(
        &state,
        &sets,
        &["-o", "json", "backup", "prune", "--dry-run"],
    );
    assert!(o.status.success(), "prune:\n{}", text(&o));
    let v = json(&o);
    assert_eq!(v["applied"], false);
    assert_eq!(v["plan"]["keep"][0][0], id.as_str(), "{v}");
    assert!(v["plan"]["delete"].as_array().unwrap().is_empty(), "{v}");
}

#[test]
fn up_backup_takes_a_set_first_and_applies_nothing_when_it_fails() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("dev");
    let dest = tmp.path().join("backups");
    let mut sets = cp_testkit::port_sets();
    sets.extend(cp_testkit::only(&[
        cp_core::names::CoreKind::Redis,
        cp_core::names::CoreKind::Nats,
    ]));
    sets.retain(|s| s != "backup.enabled=false");
    sets.extend([
        "platform=process".to_owned(),
        "backup.services=[redis, nats]".to_owned(),
    ]);
    let mut good = sets.clone();
    good.push(format!("backup.destinations.local.path={}", dest.display()));
    let _down = common::down(&state, &good);
    let o = controlplane(&state, &good, &["up"]);
    assert!(o.status.success(), "up:\n{}", text(&o));

    // A change to Redis, with a destination that cannot be written: nothing applied.
    let blocker = tmp.path().join("a-file");
    std::fs::write(&blocker, "").unwrap();
    let mut bad = sets.clone();
    bad.push(format!(
        "backup.destinations.local.path={}/sub",
        blocker.display()
    ));
    bad.push("services.redis.maxmemory=128mb".into());
    let o = controlplane(&state, &bad, &["up", "--backup"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = controlplane(&state, &bad, &["plan"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "the change is still pending:\n{}",
        text(&o)
    );

    // With a working destination: a set of Redis first, then the change.
    let mut changed = good.clone();
    changed.push("services.redis.maxmemory=128mb".into());
    let o = controlplane(&state, &changed, &["up", "--backup"]);
    assert!(o.status.success(), "up --backup:\n{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("backed up redis as "),
        "{}",
        text(&o)
    );
    let o = controlplane(&state, &changed, &["-o", "json", "backup", "list"]);
    let v = json(&o);
    assert_eq!(v["sets"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(
        v["sets"][0]["services"],
        serde_json::json!(["redis"]),
        "{v}"
    );
    let o = controlplane(&state, &changed, &["plan"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}
