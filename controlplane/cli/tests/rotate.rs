//! `controlplane rotate` end to end with real PostgreSQL, Redis and OpenBao: every
//! managed transit key gets a new version and every platform password a new value,
//! written to the state file and accepted by the servers (the old ones refused);
//! `plan` then finds nothing to change (server and store agree) until a password is
//! older than `rotation.passwords.every`; an `env://` password in scope refuses the
//! whole request before anything changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cp_core::names::CoreKind;

mod common;
use common::{controlplane, down, text};

fn setup() -> (tempfile::TempDir, PathBuf, Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("dev");
    let mut sets = cp_testkit::port_sets();
    sets.extend(cp_testkit::only(&[
        CoreKind::Postgres,
        CoreKind::Redis,
        CoreKind::Vault,
    ]));
    sets.push("platform=process".into());
    (tmp, state, sets)
}

fn secrets(state: &Path) -> BTreeMap<String, String> {
    serde_json::from_slice(&std::fs::read(state.join("secrets.json")).unwrap()).unwrap()
}

fn port_of(sets: &[String], setting: &str) -> u16 {
    sets.iter()
        .find_map(|s| s.strip_prefix(&format!("{setting}=")))
        .expect("the port is set")
        .parse()
        .unwrap()
}

/// Whether `psql` logs in as `role` with `password`.
#[allow(clippy::disallowed_methods)] // psql is the judge here
fn psql_ok(port: u16, role: &str, password: &str) -> bool {
    let psql = cp_testkit::require_tool("psql");
    Command::new(psql)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-U",
            role,
            "-d",
            "postgres",
            "-w",
            "-tAc",
            "SELECT 1",
        ])
        .env("PGPASSWORD", password)
        .env_remove("PGSERVICE")
        .output()
        .unwrap()
        .status
        .success()
}

fn redis_auth(port: u16, user: &str, password: &str) -> Result<(), String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let mut c = cp_runtime::resp::Connection::connect(&format!("127.0.0.1:{port}"))
                .await
                .map_err(|e| e.to_string())?;
            c.command(&["AUTH", user, password])
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
}

#[test]
fn rotate_all_changes_every_key_and_password_and_plan_agrees_with_the_servers() {
    let (_tmp, state, sets) = setup();
    let _down = down(&state, &sets);
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "up:\n{}", text(&o));
    let before = secrets(&state);
    let pg = port_of(&sets, "services.postgres.port");
    let redis = port_of(&sets, "services.redis.port");

    // An env:// password in scope: refused before anything changes, naming it.
    let mut with_env = sets.clone();
    with_env.push("services.redis.app_password=env://CP_ROTATE_TEST_UNSET".into());
    let o = controlplane(&state, &with_env, &["rotate", "passwords", "--yes"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("CP_ROTATE_TEST_UNSET"), "{err}");
    assert!(err.contains("nothing was rotated"), "{err}");
    assert_eq!(
        secrets(&state),
        before,
        "a refused rotation changed a secret"
    );

    // Without a terminal and without --yes, passwords are not rotated.
    let o = controlplane(&state, &sets, &["rotate", "passwords"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(secrets(&state), before);

    let o = controlplane(&state, &sets, &["rotate", "all", "--yes", "-o", "json"]);
    assert!(o.status.success(), "rotate:\n{}", text(&o));
    let view: serde_json::Value = serde_json::from_slice(&o.stdout).expect("a rotation view");
    let keys: Vec<&str> = view["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"anumate-config"), "{keys:?}");
    assert!(keys.contains(&"controlplane-backup-canary"), "{keys:?}");
    for k in view["keys"].as_array().unwrap() {
        assert_eq!(k["to_version"], 2, "{k}");
        assert_eq!(k["min_decryption_version"], 1, "keep_versions 2: {k}");
    }
    let after = secrets(&state);
    let rotated = [
        "services.postgres.superuser_password",
        "services.postgres.admin_password",
        "services.postgres.app_password",
        "services.postgres.readonly_password",
        "services.postgres.backup_password",
        "services.redis.admin_password",
        "services.redis.app_password",
    ];
    assert_eq!(view["passwords"].as_array().unwrap().len(), rotated.len());
    for s in rotated {
        assert_ne!(before.get(s), after.get(s), "{s} was not rotated");
    }
    let app = "services.postgres.app_password";
    assert!(!psql_ok(pg, "anumate_app", &before[app]), "old refused");
    assert!(psql_ok(pg, "anumate_app", &after[app]), "new accepted");
    let su = "services.postgres.superuser_password";
    assert!(!psql_ok(pg, "postgres", &before[su]));
    assert!(psql_ok(pg, "postgres", &after[su]));
    let user = "anumate_app";
    let r = "services.redis.app_password";
    let refused = redis_auth(redis, user, &before[r]).unwrap_err();
    assert!(refused.contains("WRONGPASS"), "{refused}");
    redis_auth(redis, user, &after[r]).expect("new Redis password");
    let a = "services.redis.admin_password";
    assert!(redis_auth(redis, "admin", &before[a]).is_err());
    redis_auth(redis, "admin", &after[a]).expect("new Redis admin password");

    // The servers and the store agree: nothing to change, nothing due.
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(o.status.code(), Some(0), "plan after rotate:\n{}", text(&o));

    // A password older than its period is a pending change.
    let record = state.join("rotation/state.json");
    let mut rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    rec["passwords"][app] = serde_json::json!("2000-01-01T00:00:00Z");
    std::fs::write(&record, serde_json::to_vec(&rec).unwrap()).unwrap();
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&format!("password {app}")),
        "{}",
        text(&o)
    );
}
