//! Vault seeding against a real OpenBao server brought up by the process driver:
//! idempotence, the audit device, the app's AppRole and what its token may not do,
//! tenant isolation (including the `tenant-1` / `tenant-10` glob trap), crypto-shred
//! on delete, and root token revocation.

use std::time::Duration;

use cp_core::names::CoreKind;
use cp_runtime::probe::Endpoint;
use cp_seed::vault::{self, VaultClient};
use cp_seed::{Access, VaultAccess};
use cp_testkit::TestEnv;
use serde_json::json;

async fn started(extra: &[&str]) -> (TestEnv, VaultAccess, std::path::PathBuf) {
    let t = TestEnv::only(&[CoreKind::Vault], extra);
    t.up().await.expect("vault comes up");
    let access = Access::resolve(
        &t.env,
        |k| Some(Endpoint::local(t.port(k))),
        &t.secrets,
        &t.state,
        "vault",
    )
    .await
    .expect("access resolves");
    let v = access.vault.expect("vault is enabled");
    let audit = t.state.join("vault").join(&t.env.vault.audit_log);
    (t, v, audit)
}

#[tokio::test]
async fn seeding_twice_changes_nothing_the_second_time_and_audits_from_the_start() {
    let (t, v, audit) = started(&[]).await;
    let first = vault::seed(&v, &t.env).await.expect("first seed");
    assert!(first.changed());
    for want in [
        "created mount secret",
        "created mount transit",
        "created transit-key anumate-config",
        "created policy anumate-app",
        "created approle anumate-app",
        "created policy controlplane-seeder",
        "created policy controlplane-backup",
        "created token-role controlplane-backup",
        "created transit-key controlplane-backup-canary",
    ] {
        assert!(
            first.changes.iter().any(|c| c == want),
            "missing `{want}` in {:?}",
            first.changes
        );
    }
    let second = vault::seed(&v, &t.env).await.expect("second seed");
    assert!(
        second.changes.is_empty(),
        "second seed changed {:?}",
        second.changes
    );
    assert!(second.round_trips > 0);
    let plan = vault::plan(&v, &t.env).await.unwrap();
    assert!(plan.is_empty(), "{plan}");

    // The audit device records requests (with HMAC'd values, never plaintext).
    let log = std::fs::read_to_string(&audit).expect("audit log exists");
    assert!(
        log.contains("sys/policies/acl/anumate-app"),
        "audit log records the seeding"
    );

    // Global keys: not exportable, no plaintext backup, not deletable.
    let c = vault::client(&v).unwrap();
    let k = c
        .read("transit/keys/anumate-tokens")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(k["data"]["exportable"], json!(false));
    assert_eq!(k["data"]["allow_plaintext_backup"], json!(false));
    assert_eq!(k["data"]["deletion_allowed"], json!(false));
}

#[tokio::test]
async fn a_changed_setting_is_planned_and_applied_in_place() {
    let (t, v, _) = started(&[]).await;
    vault::seed(&v, &t.env).await.unwrap();
    let changed = cp_testkit::load_dev(
        &[t.sets.clone(), vec!["vault.app_role.token_ttl=30m".into()]].concat(),
    );
    let plan = vault::plan(&v, &changed).await.unwrap();
    let text = plan.to_string();
    assert!(text.contains("approle"), "{text}");
    assert!(!plan.is_blocked());
    let r = vault::seed(&v, &changed).await.unwrap();
    assert_eq!(r.changes, vec!["updated approle anumate-app".to_owned()]);
    let c = vault::client(&v).unwrap();
    let role = c
        .read("auth/approle/role/anumate-app")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(role["data"]["token_ttl"], json!(1800));
}

#[tokio::test]
async fn the_app_token_is_short_lived_and_cannot_export_or_administer() {
    let (t, v, _) = started(&[]).await;
    vault::seed(&v, &t.env).await.unwrap();
    let (token, ttl) = vault::app_login(&v, &t.env).await.unwrap();
    assert!(
        ttl > 0 && ttl <= 3600,
        "finite TTL of at most token_ttl, got {ttl}s"
    );
    let app = VaultClient::with_token(&v.addr, token);

    // What it needs works.
    let ct = app
        .try_write(
            "transit/encrypt/anumate-config",
            &json!({"plaintext": "aGVsbG8="}),
        )
        .await
        .unwrap()
        .expect("the app encrypts with a global key");
    assert!(
        ct["data"]["ciphertext"]
            .as_str()
            .unwrap()
            .starts_with("vault:v1:")
    );

    // What it must not do is refused.
    let refused: [(&str, serde_json::Value); 5] = [
        (
            "transit/keys/anumate-config/config",
            json!({"exportable": true}),
        ),
        (
            "transit/keys/anumate-config/config",
            json!({"allow_plaintext_backup": true}),
        ),
        ("transit/keys/anumate-new", json!({"exportable": true})),
        (
            "sys/policies/acl/anumate-app",
            json!({"policy": "path \"*\" { capabilities = [\"sudo\"] }"}),
        ),
        (
            "sys/audit/file",
            json!({"type": "file", "options": {"file_path": "/dev/null"}}),
        ),
    ];
    for (path, body) in refused {
        let r = app.try_write(path, &body).await.unwrap();
        assert!(
            r.as_ref().is_err_and(|e| e.status == 403),
            "app may not write {path}: {r:?}"
        );
    }
    for path in [
        "transit/backup/anumate-config",
        "transit/export/encryption-key/anumate-config",
        "sys/audit",
        "secret/data/tenants/x/meta",
    ] {
        let r = app.try_read(path).await.unwrap();
        assert!(
            r.as_ref().is_err_and(|e| e.status == 403),
            "app may not read {path}: {r:?}"
        );
    }
    let r = app.try_write("sys/audit/file", &json!({})).await.unwrap();
    assert!(r.is_err(), "app cannot disable or change the audit device");
}

#[tokio::test]
async fn tenant_1_cannot_reach_tenant_10_and_delete_crypto_shreds() {
    let (t, v, _) = started(&[]).await;
    vault::seed(&v, &t.env).await.unwrap();
    // Ids where one is a prefix of the other: a policy glob on `tenant-1*` would match
    // both; ours must not.
    for id in ["1", "10"] {
        let r = vault::create_tenant(&v, &t.env, id, &format!("acme-{id}"))
            .await
            .unwrap();
        assert_eq!(r.changes.len(), 3, "{:?}", r.changes);
        let again = vault::create_tenant(&v, &t.env, id, &format!("acme-{id}"))
            .await
            .unwrap();
        assert!(again.changes.is_empty(), "{:?}", again.changes);
    }
    let one = VaultClient::with_token(
        &v.addr,
        vault::tenant_token(&v, "1", Duration::from_secs(300))
            .await
            .unwrap(),
    );
    let ten = VaultClient::with_token(
        &v.addr,
        vault::tenant_token(&v, "10", Duration::from_secs(300))
            .await
            .unwrap(),
    );

    let plain = json!({"plaintext": "c2VjcmV0"});
    assert!(
        one.try_write("transit/encrypt/tenant-1", &plain)
            .await
            .unwrap()
            .is_ok()
    );
    let ten_ct = ten
        .try_write("transit/encrypt/tenant-10", &plain)
        .await
        .unwrap()
        .expect("tenant 10 encrypts");
    let ten_ct = ten_ct["data"]["ciphertext"].as_str().unwrap().to_owned();
    for (path, body) in [
        ("transit/encrypt/tenant-10", plain.clone()),
        ("transit/decrypt/tenant-10", json!({"ciphertext": ten_ct})),
        ("transit/datakey/wrapped/tenant-10", json!({})),
        ("secret/data/tenants/10/meta", json!({"data": {"x": "y"}})),
        ("secret/data/tenants/10/other", json!({"data": {"x": "y"}})),
        ("transit/encrypt/anumate-config", plain.clone()),
        ("transit/keys/tenant-1/config", json!({"exportable": true})),
    ] {
        let r = one.try_write(path, &body).await.unwrap();
        assert!(
            r.as_ref().is_err_and(|e| e.status == 403),
            "tenant 1 may not write {path}: {r:?}"
        );
    }
    for path in [
        "secret/data/tenants/10/meta",
        "secret/data/tenants/1",
        "transit/keys/tenant-10",
    ] {
        let r = one.try_read(path).await.unwrap();
        assert!(
            r.as_ref().is_err_and(|e| e.status == 403),
            "tenant 1 may not read {path}: {r:?}"
        );
    }
    // Its own subtree works.
    assert!(
        one.try_write("secret/data/tenants/1/db", &json!({"data": {"dsn": "x"}}))
            .await
            .unwrap()
            .is_ok()
    );
    assert!(
        one.try_read("secret/data/tenants/1/db")
            .await
            .unwrap()
            .is_ok()
    );

    // Delete tenant 10: its key is destroyed, so its ciphertext is unreadable even to root.
    let r = vault::delete_tenant(&v, &t.env, "10").await.unwrap();
    assert!(
        r.changes
            .iter()
            .any(|c| c == "destroyed transit key tenant-10"),
        "{:?}",
        r.changes
    );
    let root = vault::client(&v).unwrap();
    let after = root
        .try_write("transit/decrypt/tenant-10", &json!({"ciphertext": ten_ct}))
        .await
        .unwrap();
    assert!(
        after.is_err(),
        "a destroyed key decrypts nothing: {after:?}"
    );
    let parts = vault::tenant_parts(&root, &t.env, "10").await.unwrap();
    assert_eq!(
        parts,
        vault::TenantParts {
            key: false,
            policy: false,
            kv: false
        }
    );
    // Tenant 1 is untouched, and deleting again is a no-op.
    assert_eq!(
        vault::tenant_parts(&root, &t.env, "1").await.unwrap(),
        vault::TenantParts {
            key: true,
            policy: true,
            kv: true
        }
    );
    assert!(
        vault::delete_tenant(&v, &t.env, "10")
            .await
            .unwrap()
            .changes
            .is_empty()
    );
}

#[tokio::test]
async fn a_root_token_is_revoked_and_other_tokens_are_left_alone() {
    let (_t, v, _audit) = started(&[]).await;
    let root = vault::client(&v).unwrap();
    let child = root
        .write(
            "auth/token/create",
            &json!({"policies": ["root"], "ttl": "10m"}),
        )
        .await
        .unwrap();
    let child = cp_seed::VaultAccess {
        addr: v.addr.clone(),
        ca: None,
        token: Some(cp_runtime::secrets::Secret::new(
            child["auth"]["client_token"].as_str().unwrap(),
        )),
    };
    let plain = root
        .write(
            "auth/token/create",
            &json!({"policies": ["default"], "ttl": "10m"}),
        )
        .await
        .unwrap();
    let plain = cp_seed::VaultAccess {
        addr: v.addr.clone(),
        ca: None,
        token: Some(cp_runtime::secrets::Secret::new(
            plain["auth"]["client_token"].as_str().unwrap(),
        )),
    };
    assert!(
        !vault::revoke_root(&plain).await.unwrap(),
        "a non-root token is kept"
    );
    assert!(vault::revoke_root(&child).await.unwrap());
    let err = vault::token_is_root(&child)
        .await
        .expect_err("a revoked token is refused");
    assert!(
        cp_runtime::error::chain(&err).contains("403")
            || cp_runtime::error::chain(&err).contains("permission denied"),
        "{err}"
    );

    let none = VaultAccess {
        addr: v.addr.clone(),
        ca: None,
        token: None,
    };
    let err = vault::seed(&none, &_t.env).await.expect_err("no token");
    assert!(err.to_string().contains("VAULT_TOKEN"), "{err}");
}
