//! One plan across every layer, end to end through the binary against real servers:
//! an out-of-band change in each layer (a stream's max_age, a dropped grant, a deleted
//! Vault policy, an edited Redis ACL, a tenant's destroyed key, a pending migration)
//! shows in `plan` with exit 2, `up` repairs it, and `plan` exits 0 again. `plan`
//! writes nothing (the state directory and what every service shows are the same
//! before and after it), and a saved plan is applied exactly or refused, touching
//! nothing, when the world moved.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

mod common;
use common::{controlplane, text};

use serde_json::Value;

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// What controlplane keeps in the state directory, by path: size and content hash.
/// Servers' own data, logs and Vault's audit log (every read is audited) are the
/// servers' business and left out.
fn state_files(dir: &Path) -> BTreeMap<String, (u64, String)> {
    use sha2::Digest;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if ["data", "jetstream", "log", "run"].contains(&name.as_str())
                || name.ends_with(".log")
            {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                let hash = hex::encode(sha2::Sha256::digest(&bytes));
                out.insert(rel, (bytes.len() as u64, hash));
            }
        }
    }
    out
}

fn secrets(state: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(state.join("secrets.json")).unwrap()).unwrap()
}

fn vault(state: &Path, port: u16) -> cp_runtime::vault::Client {
    let init: Value =
        serde_json::from_slice(&std::fs::read(state.join("vault/init.json")).unwrap()).unwrap();
    cp_runtime::vault::Client::with_token(
        &format!("http://127.0.0.1:{port}"),
        cp_runtime::secrets::Secret::new(init["root_token"].as_str().unwrap()),
    )
}

fn port(sets: &[String], setting: &str) -> u16 {
    sets.iter()
        .find_map(|s| s.strip_prefix(&format!("{setting}=")))
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn every_layer_drifts_shows_in_plan_and_up_repairs_it() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("dev");
    let mut sets = cp_testkit::port_sets();
    sets.push("platform=process".into());
    let _down = common::down(&state, &sets);
    let run = |args: &[&str]| controlplane(&state, &sets, args);
    let rt = tokio::runtime::Runtime::new().unwrap();

    ok(&run(&["up"]));
    assert_eq!(code(&run(&["plan"])), Some(0), "{}", text(&run(&["plan"])));
    let tenant = ok(&run(&["tenant", "create", "acme"])).trim().to_owned();

    // Out-of-band changes, one per layer, made the way an operator would.
    let nats_port = port(&sets, "services.nats.port");
    let admin_pw = secrets(&state)["services.nats.admin_password"]
        .as_str()
        .unwrap()
        .to_owned();
    rt.block_on(async {
        let c = async_nats::ConnectOptions::with_user_and_password("admin".into(), admin_pw)
            .connect(format!("127.0.0.1:{nats_port}"))
            .await
            .unwrap();
        let js = async_nats::jetstream::new(c);
        let mut st = js.get_stream("CAPSULE_EVENTS").await.unwrap();
        let mut cfg = st.info().await.unwrap().config.clone();
        cfg.max_age = std::time::Duration::from_secs(3600);
        js.update_stream(cfg).await.unwrap();
    });
    ok(&run(&[
        "psql",
        "--role",
        "superuser",
        "--",
        "-d",
        "anumate",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "REVOKE SELECT ON anumate.tenants FROM anumate_app",
    ]));
    let v = vault(&state, port(&sets, "services.vault.port"));
    rt.block_on(async {
        v.delete("sys/policies/acl/anumate-app").await.unwrap();
        let key = format!("transit/keys/tenant-{tenant}");
        v.write(
            &format!("{key}/config"),
            &serde_json::json!({"deletion_allowed": true}),
        )
        .await
        .unwrap();
        v.delete(&key).await.unwrap();
    });
    let acl = run(&["redis-cli", "--", "ACL", "SETUSER", "anumate_app", "~*"]);
    assert!(stdout(&acl).contains("OK"), "{}", text(&acl));

    // The plan shows every one of them, in one document, and writes nothing.
    let files_before = state_files(&state);
    let a = tmp.path().join("a.plan");
    let o = run(&["plan", "--out", a.to_str().unwrap()]);
    assert_eq!(code(&o), Some(2), "{}", text(&o));
    let plan = stdout(&o);
    for want in [
        "streams:\n    ~ stream CAPSULE_EVENTS\n        /max_age_secs: 3600 -> 604800",
        "+ grant anumate_app on table anumate.tenants",
        "+ policy anumate-app",
        "~ acl-user anumate_app",
        &format!("+ transit-key tenant-{tenant}"),
        "Plan: 3 to create, 2 to change, 0 to remove, 0 to start",
    ] {
        assert!(plan.contains(want), "expected `{want}` in:\n{plan}");
    }
    let b = tmp.path().join("b.plan");
    assert_eq!(code(&run(&["plan", "--out", b.to_str().unwrap()])), Some(2));
    assert_eq!(
        state_files(&state),
        files_before,
        "plan changed the state directory"
    );
    let basis = |f: &Path| -> Value {
        serde_json::from_slice::<Value>(&std::fs::read(f).unwrap()).unwrap()["basis"].clone()
    };
    assert_eq!(
        basis(&a),
        basis(&b),
        "what the services show changed across a plan"
    );

    // `up` repairs everything; the plan is empty again.
    let o = run(&["up"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["plan"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));

    // A pending migration, with the note about grants.
    ok(&run(&["migrate", "down", "--steps", "1"]));
    let o = run(&["plan"]);
    assert_eq!(code(&o), Some(2), "{}", text(&o));
    let plan = stdout(&o);
    assert!(
        plan.contains("+ migration 20261201000700 events outbox"),
        "{plan}"
    );
    assert!(
        plan.contains("note: privileges on tables are checked"),
        "{plan}"
    );
    ok(&run(&["up"]));
    assert_eq!(code(&run(&["plan"])), Some(0));

    // A saved plan is applied exactly while the world holds still...
    let acl = run(&["redis-cli", "--", "ACL", "SETUSER", "anumate_app", "~*"]);
    assert!(stdout(&acl).contains("OK"), "{}", text(&acl));
    let fresh = tmp.path().join("fresh.plan");
    assert_eq!(
        code(&run(&["plan", "--out", fresh.to_str().unwrap()])),
        Some(2)
    );
    let o = run(&["up", "--plan", fresh.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("updated Redis ACL user anumate_app"),
        "{}",
        text(&o)
    );
    assert_eq!(code(&run(&["plan"])), Some(0));

    // ... and refused, naming what moved and touching nothing, once it moved.
    let acl = run(&["redis-cli", "--", "ACL", "SETUSER", "anumate_app", "~*"]);
    assert!(stdout(&acl).contains("OK"), "{}", text(&acl));
    let stale = tmp.path().join("stale.plan");
    assert_eq!(
        code(&run(&["plan", "--out", stale.to_str().unwrap()])),
        Some(2)
    );
    rt.block_on(async { v.delete("sys/policies/acl/anumate-app").await.unwrap() });
    let o = run(&["up", "--plan", stale.to_str().unwrap()]);
    assert_eq!(code(&o), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no longer matches")
            && err.contains("vault: policy anumate-app disappeared since the plan was made"),
        "{err}"
    );
    let plan = stdout(&run(&["plan"]));
    assert!(
        plan.contains("~ acl-user anumate_app") && plan.contains("+ policy anumate-app"),
        "nothing was applied:\n{plan}"
    );
    ok(&run(&["up"]));

    // `status` shows no password anywhere unless asked for.
    let status = ok(&run(&["-o", "json", "status"]));
    let all = secrets(&state);
    for (setting, value) in all.as_object().unwrap() {
        let value = value.as_str().unwrap();
        assert!(!status.contains(value), "status -o json shows {setting}");
    }
}

#[test]
fn read_only_commands_leave_an_empty_state_directory_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("empty");
    std::fs::create_dir(&state).unwrap();
    let mut sets = cp_testkit::port_sets();
    sets.push("platform=process".into());
    for args in [
        &["status"][..],
        &["plan"],
        &["-o", "json", "status", "--show-secrets"],
        &["config"],
    ] {
        let o = controlplane(&state, &sets, args);
        assert!(matches!(code(&o), Some(0..=2)), "{args:?}: {}", text(&o));
        let left: Vec<_> = std::fs::read_dir(&state).unwrap().collect();
        assert!(
            left.is_empty(),
            "{args:?} wrote into the state directory: {left:?}"
        );
    }
}
