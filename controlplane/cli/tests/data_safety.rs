//! Nothing is silently lost, end to end through the `controlplane` binary with real
//! servers (PostgreSQL, Redis, NATS, OpenBao) on free loopback ports: a service whose
//! data vanished after initialisation is refused, not re-created empty, until `up
//! --reinitialise` is confirmed; an interrupted first initialisation of Vault is named
//! and redone only when confirmed; `down`, `migrate down` and `tenant delete` refuse
//! to run under a running backup, naming it; a JetStream store that vanished is
//! refused like PostgreSQL's data (Redis, a cache, is not); every file a service
//! writes is private to its user.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;
use common::{controlplane, down, text};

/// A temporary project state directory the `postgres` user can enter, and the
/// `--set` overrides that put every service on a free port with the process driver.
fn setup() -> (tempfile::TempDir, PathBuf, Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("dev");
    let mut sets = cp_testkit::port_sets();
    sets.push("platform=process".into());
    (tmp, state, sets)
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn port_of(sets: &[String], setting: &str) -> u16 {
    sets.iter()
        .find_map(|s| s.strip_prefix(&format!("{setting}=")))
        .expect("the port is set")
        .parse()
        .unwrap()
}

#[test]
fn a_postgres_whose_data_vanished_is_never_recreated_empty_without_a_confirmation() {
    let (_tmp, state, sets) = setup();
    let _down = down(&state, &sets);
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "first up:\n{}", text(&o));
    let data = state.join("postgres/data");
    let record = state.join("initialised/postgres.json");
    let rec = std::fs::read_to_string(&record).expect("up records postgres as initialised");
    assert!(rec.contains("system identifier "), "{rec}");

    // The data directory goes (a disk replaced, a wrong `rm -rf`), then `down`.
    std::fs::remove_dir_all(&data).unwrap();
    let o = controlplane(&state, &sets, &["down"]);
    assert!(o.status.success(), "down:\n{}", text(&o));

    // `up` refuses, saying what happened and both ways on; nothing is initialised.
    let o = controlplane(&state, &sets, &["up"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "up on missing data:\n{}",
        text(&o)
    );
    let err = stderr(&o);
    for needle in [
        "data missing: postgres was initialised at",
        "controlplane restore",
        "up --reinitialise postgres --yes",
    ] {
        assert!(err.contains(needle), "`{needle}` missing:\n{err}");
    }
    assert!(
        !data.join("PG_VERSION").exists(),
        "a refused up ran initdb anyway"
    );
    // `plan` shows it blocked, and still exits 2 (changes pending), creating nothing.
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(o.status.code(), Some(2), "plan:\n{}", text(&o));
    assert!(
        stdout(&o).contains("(blocked: data missing: postgres was initialised at"),
        "{}",
        text(&o)
    );

    // Re-initialising needs a confirmation; without a terminal, --yes.
    let o = controlplane(&state, &sets, &["up", "--reinitialise", "postgres"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        stderr(&o).contains("everything postgres held") && stderr(&o).contains("--yes"),
        "{}",
        text(&o)
    );
    assert!(!data.join("PG_VERSION").exists());
    // Only data that is missing can be replaced: vault's is present.
    let o = controlplane(&state, &sets, &["up", "--reinitialise", "vault", "--yes"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(stderr(&o).contains("data is present"), "{}", text(&o));
    let o = controlplane(&state, &sets, &["up", "--reinitialise", "redis", "--yes"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));

    let o = controlplane(
        &state,
        &sets,
        &["up", "--reinitialise", "postgres", "--yes"],
    );
    assert!(o.status.success(), "up --reinitialise:\n{}", text(&o));
    assert!(data.join("PG_VERSION").exists());
    let rec2 = std::fs::read_to_string(&record).expect("recorded again");
    assert_ne!(rec, rec2, "a new cluster, a new record");
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(o.status.code(), Some(0), "plan after:\n{}", text(&o));
}

#[test]
fn an_interrupted_first_vault_initialisation_is_named_and_redone_only_when_confirmed() {
    let (_tmp, state, sets) = setup();
    let _down = down(&state, &sets);
    let o = controlplane(&state, &sets, &["up", "--no-seed"]);
    assert!(o.status.success(), "first up:\n{}", text(&o));

    // The state a run killed between `PUT /v1/sys/init` and keeping its answer
    // leaves (the kill -9 itself is in crash_safety.rs, where its timing decides):
    // the server initialised and sealed, its keys nowhere, the journal pending.
    let keys: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("vault/init.json")).unwrap()).unwrap();
    let token = keys["root_token"].as_str().unwrap().to_owned();
    let port = port_of(&sets, "services.vault.port");
    let client = cp_runtime::vault::Client::with_token(
        &format!("http://127.0.0.1:{port}"),
        cp_runtime::secrets::Secret::new(token),
    );
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(client.put("sys/seal", &serde_json::json!({})))
        .expect("seal vault");
    std::fs::remove_file(state.join("vault/init.json")).unwrap();
    std::fs::remove_file(state.join("initialised/vault.json")).unwrap();
    std::fs::write(
        state.join("vault/init.pending"),
        "initialisation requested\n",
    )
    .unwrap();

    // `plan` says what happened (not "the bootstrap root token is revoked").
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(o.status.code(), Some(2), "plan:\n{}", text(&o));
    let all = text(&o);
    assert!(
        all.contains("first initialisation was interrupted") && all.contains("vault is sealed"),
        "{all}"
    );
    assert!(!all.contains("bootstrap root token"), "{all}");
    // `up` refuses and says how to go on; the server is left as it was.
    let o = controlplane(&state, &sets, &["up"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        stderr(&o).contains("first initialisation was interrupted")
            && stderr(&o).contains("up --reinitialise vault --yes"),
        "{}",
        text(&o)
    );
    assert!(state.join("vault/init.pending").exists());
    let o = controlplane(&state, &sets, &["up", "--reinitialise", "vault"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        stderr(&o).contains("interrupted first initialisation"),
        "{}",
        text(&o)
    );

    let o = controlplane(&state, &sets, &["up", "--reinitialise", "vault", "--yes"]);
    assert!(o.status.success(), "up --reinitialise vault:\n{}", text(&o));
    assert!(state.join("vault/init.json").exists());
    assert!(!state.join("vault/init.pending").exists());
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(o.status.code(), Some(0), "plan after:\n{}", text(&o));
}

/// Holds the environment's backup lock as a running backup job does.
fn hold_backup_lock(state: &Path) -> cp_runtime::state::StateLock {
    cp_runtime::state::StateDir::open(state, "dev")
        .unwrap()
        .lock("backup", "backup job-under-test (cli)")
        .unwrap()
}

#[test]
fn down_migrate_down_and_tenant_delete_refuse_to_run_under_a_backup() {
    let (_tmp, state, sets) = setup();
    let _down = down(&state, &sets);
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "up:\n{}", text(&o));
    let o = controlplane(&state, &sets, &["tenant", "create", "acme"]);
    assert!(o.status.success(), "tenant create:\n{}", text(&o));

    let lock = hold_backup_lock(&state);
    for args in [
        &["down"][..],
        &["down", "--volumes", "--yes"],
        &["migrate", "down"],
        &["tenant", "delete", "acme", "--yes"],
    ] {
        let o = controlplane(&state, &sets, args);
        assert_eq!(o.status.code(), Some(1), "{args:?}:\n{}", text(&o));
        assert!(
            stderr(&o).contains("backup job-under-test (cli)"),
            "{args:?} names the backup:\n{}",
            text(&o)
        );
    }
    // Nothing was stopped or changed under it.
    let pg = port_of(&sets, "services.postgres.port");
    assert!(std::net::TcpStream::connect(("127.0.0.1", pg)).is_ok());
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = controlplane(&state, &sets, &["-o", "json", "tenant", "list"]);
    assert!(stdout(&o).contains("\"acme\""), "{}", text(&o));

    drop(lock);
    let o = controlplane(&state, &sets, &["tenant", "delete", "acme", "--yes"]);
    assert!(o.status.success(), "tenant delete after:\n{}", text(&o));
    let o = controlplane(&state, &sets, &["down"]);
    assert!(o.status.success(), "down after:\n{}", text(&o));
}

#[test]
fn a_redis_that_cannot_write_its_final_save_still_stops_within_downs_deadline() {
    let (_tmp, state, mut sets) = setup();
    sets.extend(cp_testkit::only(&[cp_core::names::CoreKind::Redis]));
    let _down = down(&state, &sets);
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "up:\n{}", text(&o));
    let port = port_of(&sets, "services.redis.port");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());

    // Its directory vanishes: the save it attempts on SIGTERM fails, and Redis
    // then refuses to exit.
    std::fs::remove_dir_all(state.join("redis/data")).unwrap();
    let started = Instant::now();
    let o = controlplane(&state, &sets, &["down"]);
    let took = started.elapsed();
    assert!(o.status.success(), "down:\n{}", text(&o));
    // The graceful stop alone would wait 15 s, then SIGKILL.
    assert!(
        took < Duration::from_secs(12),
        "down took {took:?}:\n{}",
        text(&o)
    );
    assert!(
        text(&o).contains("could not write its final save") && text(&o).contains("SHUTDOWN NOSAVE"),
        "down says how redis stopped:\n{}",
        text(&o)
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn a_jetstream_store_that_vanished_is_never_recreated_empty_and_redis_as_a_cache_is() {
    use cp_core::names::CoreKind;
    let (_tmp, state, mut sets) = setup();
    sets.extend(cp_testkit::only(&[CoreKind::Nats, CoreKind::Redis]));
    let _down = down(&state, &sets);
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "first up:\n{}", text(&o));
    let record = state.join("initialised/nats.json");
    assert!(record.exists(), "up records nats as initialised");
    assert!(
        !state.join("initialised/redis.json").exists(),
        "redis is a cache: no record"
    );
    let o = controlplane(&state, &sets, &["down"]);
    assert!(o.status.success(), "down:\n{}", text(&o));

    // JetStream's store goes: the streams (and every message) with it.
    let store = state.join("nats/jetstream");
    std::fs::remove_dir_all(&store).unwrap();
    // Redis's dump and ACL file go too: a cache (allkeys-lru evicts any key at any
    // time) whose users the seed writes again, so it starts empty, and says nothing.
    std::fs::remove_dir_all(state.join("redis/data")).unwrap();
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(o.status.code(), Some(2), "plan:\n{}", text(&o));
    assert!(
        stdout(&o).contains("(blocked: data missing: nats was initialised at"),
        "{}",
        text(&o)
    );
    assert!(!stdout(&o).contains("data missing: redis"), "{}", text(&o));
    let o = controlplane(&state, &sets, &["up"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "up on missing data:\n{}",
        text(&o)
    );
    assert!(
        stderr(&o).contains("data missing: nats was initialised at")
            && stderr(&o).contains("up --reinitialise nats --yes"),
        "{}",
        text(&o)
    );
    assert!(!store.exists(), "a refused up started JetStream empty");

    let o = controlplane(&state, &sets, &["up", "--reinitialise", "nats", "--yes"]);
    assert!(o.status.success(), "up --reinitialise nats:\n{}", text(&o));
    assert!(record.exists());
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(o.status.code(), Some(0), "plan after:\n{}", text(&o));
}

/// Every file under `root` with group or other permission bits, and every such
/// directory, as `path (mode)`.
fn not_private(root: &Path) -> Vec<String> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let mut out = Vec::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() || meta.file_type().is_socket() {
                continue;
            }
            let mode = meta.permissions().mode() & 0o777;
            if meta.is_dir() {
                todo.push(p.clone());
            }
            if mode & 0o077 != 0 {
                out.push(format!(
                    "{} ({mode:o})",
                    p.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_file_a_service_writes_is_private_to_its_user() {
    let (_tmp, state, sets) = setup();
    let _down = down(&state, &sets);
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "up:\n{}", text(&o));
    // `down` makes Redis write its dump on the way out.
    let o = controlplane(&state, &sets, &["down"]);
    assert!(o.status.success(), "down:\n{}", text(&o));
    for f in [
        "redis/data/dump.rdb",
        "redis/users.acl",
        "postgres/data/PG_VERSION",
    ] {
        assert!(state.join(f).exists(), "{f} is not there to check");
    }
    assert!(
        std::fs::read_dir(state.join("nats/jetstream"))
            .unwrap()
            .next()
            .is_some(),
        "JetStream wrote nothing to check"
    );
    // What controlplane writes for the servers to read, holding no data and no
    // secret (passwords reach servers through their environment or 0600 files):
    // configuration PostgreSQL must read as its own user, the platform's name and the
    // initialisation records (system identifiers).
    let public = [
        "driver",
        "initialised",
        "nats/nats.conf",
        "postgres/pg_hba.conf",
        "postgres/postgresql.conf",
        "redis/redis.conf",
        "vault/vault.hcl",
    ];
    let open: Vec<String> = not_private(&state)
        .into_iter()
        .filter(|p| !public.iter().any(|f| p.starts_with(&format!("{f} ("))))
        .collect();
    assert!(
        open.is_empty(),
        "readable by others than the service's user:\n{}",
        open.join("\n")
    );
}
