//! Backup and restore round trip on real services (process driver): a seeded dev
//! environment with data for two tenants is backed up and restored into a fresh
//! environment; every table's rows (a digest per tenant), every stream's messages with
//! their sequence numbers and consumers, the Vault secrets and keys (a ciphertext made
//! before the backup decrypts after), and the Redis keys with their TTLs are the same.

mod support;

use cp_backup::catalog::SetState;
use cp_backup::run;
use cp_backup::set::SetReader;
use cp_core::names::CoreKind;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_environment_restores_into_a_fresh_one() {
    let tmp = tempfile::tempdir().unwrap();
    // A destination directory the backup creates (with its parent `backups`).
    let dest = tmp.path().join("backups/sets");
    let a = support::env(&dest, &[]);
    let aa = support::up_and_seed(&a).await;
    let seeded = support::data(&a, &aa).await;
    let report = support::backup(&a, &aa).await;
    assert_eq!(report.state, "complete", "{report:#?}");
    for s in &report.services {
        assert!(s.ok && s.stored_size > 0, "{s:?}");
    }
    // The set (full dumps, the RDB, the Vault snapshot) and the backup state files
    // are this user's only: every directory 0700, every file 0600.
    let private = private_tree(&tmp.path().join("backups"));
    assert!(private.files >= 5, "too few files to judge: {private:?}");
    private_tree(&a.state.join("backup"));
    // The metrics `serve` exports, in the contract's names.
    let metrics = cp_backup::metrics::Metrics::read(&a.state);
    let text = metrics.exposition(
        "dev",
        &support::kinds(),
        &cp_backup::metrics::Configured::default(),
    );
    for k in support::kinds() {
        assert!(
            text.contains(&format!(
                "controlplane_backup_last_run_success{{env=\"dev\",service=\"{k}\"}} 1"
            )),
            "{text}"
        );
        assert!(
            metrics.services[&k].size_bytes > 0
                && metrics.services[&k].last_success_timestamp_seconds > 0
        );
    }
    let store = support::store(&a).await;
    let listed = run::list(&store, None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, SetState::Complete);
    let m = run::manifest_of(&store, &report.id).await.unwrap();
    // Row counts from the dump's snapshot.
    let cp_backup::manifest::Detail::Postgres { tables, .. } =
        &m.services[&CoreKind::Postgres].detail
    else {
        panic!("no postgres detail");
    };
    let users = tables.iter().find(|t| t.table == "users").unwrap();
    assert_eq!(users.rows, 40 + 47);

    // The drill restores into scratch targets and leaves the live services alone.
    let live = support::table_digests(&aa).await;
    let reader = SetReader {
        store: store.clone(),
        id: report.id.clone(),
        identity: None,
    };
    let source = cp_backup::drill::Source {
        env: &a.env,
        postgres: aa.postgres.as_ref(),
        unseal_keys: support::unseal_keys(&a),
        vault_token: Some(support::root(&a).await),
    };
    let lines = cp_backup::drill::drill(&reader, &m, &source)
        .await
        .expect("drill");
    let text = lines.join("\n");
    for want in [
        "postgres: ",
        "redis: 4 keys",
        "nats: AUDIT_EVENTS has 30 messages up to sequence 30",
        "the canary decrypts",
    ] {
        assert!(text.contains(want), "{want} missing in:\n{text}");
    }
    assert_eq!(
        support::table_digests(&aa).await,
        live,
        "the drill left the live database alone"
    );

    // A fresh environment, seeded (roles exist), then restored over.
    let b = support::env(&dest, &[]);
    let ba = support::up_and_seed(&b).await;
    let before = support::table_digests(&ba).await;
    assert_ne!(before, support::table_digests(&aa).await);
    let reader = SetReader {
        store: support::store(&b).await,
        id: report.id.clone(),
        identity: None,
    };
    let all = support::kinds();
    run::precheck(&reader.store, &m, &all).await.unwrap();
    let target = run::Target {
        access: &ba,
        source_unseal_keys: support::unseal_keys(&a),
    };
    let done = match run::restore(&reader, &m, &all, &target).await {
        Ok(d) => d,
        Err(e) => {
            for f in std::fs::read_dir(b.root.join("vault")).unwrap().flatten() {
                if f.path().file_name().is_some_and(|x| x == "log") {
                    let t = std::fs::read_to_string(f.path()).unwrap_or_default();
                    let tail: Vec<&str> = t.lines().rev().take(40).collect();
                    eprintln!(
                        "{}:\n{}",
                        f.path().display(),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
            }
            panic!("restore: {}", cp_runtime::error::chain(&e));
        }
    };
    assert_eq!(done.len(), 4, "{done:?}");

    assert_eq!(
        support::table_digests(&ba).await,
        support::table_digests(&aa).await
    );
    assert_eq!(support::streams(&ba).await, support::streams(&aa).await);
    assert_eq!(
        support::redis_keys(&ba).await,
        support::redis_keys(&aa).await
    );
    // The ACL users are the target's own, untouched.
    let mut r = support::redis(&ba).await;
    let acl = match r.command(&["ACL", "LIST"]).await.unwrap() {
        cp_runtime::resp::Reply::Array(Some(users)) => users
            .iter()
            .filter_map(|u| u.text())
            .collect::<Vec<_>>()
            .join("\n"),
        other => panic!("ACL LIST: {other:?}"),
    };
    assert!(acl.contains("anumate_app"), "{acl}");

    // Vault: the source's token, secrets and keys came along.
    let root = support::root(&a).await;
    let v = cp_runtime::vault::Client::with_token(&ba.vault.as_ref().unwrap().addr, root);
    let kv = v
        .read("secret/data/anumate/config/app")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kv["data"]["data"]["api_key"], "k-123");
    let plain = v
        .write(
            "transit/decrypt/anumate-config",
            &json!({"ciphertext": seeded.ciphertext}),
        )
        .await
        .unwrap();
    assert_eq!(plain["data"]["plaintext"], support::PLAINTEXT);
    // The tenants' keys too.
    for id in &seeded.tenants {
        assert!(
            v.read(&format!("transit/keys/tenant-{id}"))
                .await
                .unwrap()
                .is_some()
        );
    }
}

/// What [`private_tree`] saw.
#[derive(Debug)]
struct Walked {
    dirs: usize,
    files: usize,
}

/// Asserts every directory under `root` (itself included) is 0700 and every file
/// 0600; says how many of each it saw.
fn private_tree(root: &std::path::Path) -> Walked {
    use std::os::unix::fs::PermissionsExt;
    let mut seen = Walked { dirs: 0, files: 0 };
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{} is {mode:o}", p.display());
            seen.dirs += 1;
            todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{} is {mode:o}", p.display());
            seen.files += 1;
        }
    }
    seen
}
