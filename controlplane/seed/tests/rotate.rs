//! Rotation against real services (issue 18's "done means 3"): a transit key rotated
//! with a tenant's KV entry rewrapped (old ciphertexts decrypt while their version is
//! kept, and are refused once `min_decryption_version` passes them), a PostgreSQL
//! role's password rotated under an application pool running queries in a loop, and a
//! Redis ACL user's password switched while clients keep authenticating: zero failed
//! queries or commands, the old password refused afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cp_core::names::CoreKind;
use cp_runtime::resp::Connection;
use cp_runtime::secrets::{Secret, new_value};
use cp_seed::postgres::{APP_ROLE, connect_options};
use cp_seed::rotate::{self, KeyOwner};
use cp_seed::vault;
use cp_testkit::TestEnv;
use serde_json::json;
use sqlx::Connection as _;
use sqlx::postgres::{PgConnection, PgPoolOptions};

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

async fn decrypt(c: &vault::VaultClient, key: &str, ciphertext: &str) -> Result<String, String> {
    let v = c
        .write(
            &format!("transit/decrypt/{key}"),
            &json!({ "ciphertext": ciphertext }),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(v["data"]["plaintext"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transit_keys_rotate_rewrap_the_platforms_ciphertexts_then_refuse_old_versions() {
    let t = TestEnv::only(&[CoreKind::Vault], &[]);
    t.up().await.expect("vault comes up");
    let access = t.access().await;
    let v = access.vault.expect("vault is enabled");
    vault::seed(&v, &t.env).await.expect("seed");
    let id = uuid::Uuid::new_v4().to_string();
    vault::create_tenant(&v, &t.env, &id, "acme")
        .await
        .expect("tenant");
    let c = vault::client(&v).unwrap();
    let key = cp_core::seedspec::tenant_names(&id).transit_key;
    let prefix = cp_core::seedspec::tenant_names(&id).kv_prefix;

    // What the platform keeps encrypted: a field of an entry in the tenant's subtree.
    let secret = b64("tenant secret");
    let before = c
        .write(
            &format!("transit/encrypt/{key}"),
            &json!({ "plaintext": secret }),
        )
        .await
        .unwrap()["data"]["ciphertext"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(before.starts_with("vault:v1:"), "{before}");
    let entry = format!("secret/data/{prefix}api");
    c.write(&entry, &json!({"data": {"token": before, "note": "plain"}}))
        .await
        .unwrap();

    let owner = KeyOwner::Tenant(id.clone());
    let state = |name: String| {
        let (c, env, owner) = (&c, &t.env, owner.clone());
        async move {
            rotate::key_state(c, env, &name, owner)
                .await
                .unwrap()
                .expect("the key exists")
        }
    };

    // keep_versions 2: v2 is made, the entry is rewrapped to it, v1 still decrypts.
    let r = rotate::rotate_key(&c, &t.env, &state(key.clone()).await, 2)
        .await
        .expect("rotate");
    assert_eq!(r.versions, (1, 2));
    assert_eq!(r.min_decryption, (1, 1));
    assert_eq!(r.rewrapped, [format!("secret/{prefix}api#token")]);
    assert_eq!(decrypt(&c, &key, &before).await.unwrap(), secret);
    let stored = c.read(&entry).await.unwrap().unwrap();
    let rewrapped = stored["data"]["data"]["token"].as_str().unwrap().to_owned();
    assert!(rewrapped.starts_with("vault:v2:"), "{rewrapped}");
    assert_eq!(stored["data"]["data"]["note"], "plain");
    assert_eq!(decrypt(&c, &key, &rewrapped).await.unwrap(), secret);

    // keep_versions 1: v3, the entry rewrapped to v3, min_decryption_version 3.
    let r = rotate::rotate_key(&c, &t.env, &state(key.clone()).await, 1)
        .await
        .expect("rotate again");
    assert_eq!(r.versions, (2, 3));
    assert_eq!(r.min_decryption, (1, 3));
    let stored = c.read(&entry).await.unwrap().unwrap();
    let now = stored["data"]["data"]["token"].as_str().unwrap().to_owned();
    assert!(now.starts_with("vault:v3:"), "{now}");
    assert_eq!(decrypt(&c, &key, &now).await.unwrap(), secret);
    let refused = decrypt(&c, &key, &before).await.unwrap_err();
    assert!(
        refused.contains("disallowed by policy (too old)"),
        "the v1 ciphertext must be refused: {refused}"
    );
    assert!(
        decrypt(&c, &key, &rewrapped).await.is_err(),
        "v2 is refused too"
    );

    // A global key and the canary's: a new version, the previous one kept.
    let states = rotate::key_states(&c, &t.env, std::slice::from_ref(&id))
        .await
        .unwrap();
    let names: Vec<&str> = states.iter().map(|k| k.name.as_str()).collect();
    assert!(names.contains(&"anumate-config"), "{names:?}");
    assert!(names.contains(&cp_core::seedspec::CANARY_KEY), "{names:?}");
    assert!(names.contains(&key.as_str()), "{names:?}");
    let global = states.iter().find(|k| k.name == "anumate-config").unwrap();
    assert!(
        global.latest_created.is_some(),
        "Vault reports when v1 was made"
    );
    let old = c
        .write(
            "transit/encrypt/anumate-config",
            &json!({ "plaintext": secret }),
        )
        .await
        .unwrap()["data"]["ciphertext"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = rotate::rotate_key(&c, &t.env, global, 2).await.unwrap();
    assert_eq!((r.versions, r.min_decryption), ((1, 2), (1, 1)));
    assert!(r.rewrapped.is_empty());
    assert_eq!(decrypt(&c, "anumate-config", &old).await.unwrap(), secret);
}

/// Runs `SELECT 1` on every connection of `pool` in a loop until `stop`, counting
/// failures.
fn query_loop(
    pool: sqlx::PgPool,
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let mut errors = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match sqlx::query_scalar::<_, i32>("SELECT 1")
                .fetch_one(&pool)
                .await
            {
                Ok(1) => {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                Ok(n) => errors.push(format!("SELECT 1 returned {n}")),
                Err(e) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    errors.push(e.to_string());
                }
            }
        }
        errors
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_password_rotation_under_a_running_pool_fails_no_query_and_ends_the_old_password()
 {
    let t = TestEnv::only(&[CoreKind::Postgres], &[]);
    t.up().await.expect("postgres comes up");
    let pg = t.access().await.postgres.expect("postgres is enabled");
    cp_seed::postgres::seed(&pg).await.expect("seed");
    let old = pg.app_password.clone();

    const POOL: u32 = 4;
    let pool = PgPoolOptions::new()
        .max_connections(POOL)
        .min_connections(POOL)
        .connect_with(connect_options(&pg, APP_ROLE, old.expose(), &pg.database))
        .await
        .expect("app pool");
    let (stop, ok, failed) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let loops: Vec<_> = (0..POOL)
        .map(|_| query_loop(pool.clone(), stop.clone(), ok.clone(), failed.clone()))
        .collect();
    // The loops run on every connection before the rotation.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while ok.load(Ordering::Relaxed) < 200 || pool.size() < POOL {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the loops never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = ok.load(Ordering::Relaxed);

    let new = new_value();
    cp_seed::postgres::set_password(&pg, APP_ROLE, &new)
        .await
        .expect("rotate");
    // The app picks the new value up for the connections it makes from now on.
    pool.set_connect_options(connect_options(&pg, APP_ROLE, new.expose(), &pg.database));
    let after_rotation = ok.load(Ordering::Relaxed);
    while ok.load(Ordering::Relaxed) < after_rotation + 200 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut errors = Vec::new();
    for l in loops {
        errors.extend(l.await.unwrap());
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed queries: {errors:?}"
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert!(ok.load(Ordering::Relaxed) > before + 200);
    pool.close().await;

    let with = |p: &Secret| connect_options(&pg, APP_ROLE, p.expose(), &pg.database);
    let refused = PgConnection::connect_with(&with(&old)).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("password authentication failed"),
        "{refused}"
    );
    let mut c = PgConnection::connect_with(&with(&new))
        .await
        .expect("the new password is accepted");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(one, 1);
    c.close().await.unwrap();
}

async fn auth(addr: &str, user: &str, password: &Secret) -> Result<Connection, String> {
    let mut c = Connection::connect(addr).await.map_err(|e| e.to_string())?;
    c.command(&["AUTH", user, password.expose()])
        .await
        .map_err(|e| e.to_string())?;
    Ok(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_password_switch_holds_both_passwords_then_only_the_new_one() {
    let t = TestEnv::only(&[CoreKind::Redis], &[]);
    t.up().await.expect("redis comes up");
    let redis = t.access().await.redis.expect("redis is enabled");
    cp_seed::redis::seed(&redis, &t.env).await.expect("seed");
    let user = cp_core::seedspec::redis(&t.env)[0].id.name.clone();
    let addr = redis.endpoint.addr();
    let old = redis.app_password.clone();
    let new = new_value();
    let key = format!("t:{}:k", uuid::Uuid::new_v4());

    // A client that keeps its connection and one that reconnects for every command
    // with the password it currently holds (switched once the new value is stored).
    let current = Arc::new(std::sync::Mutex::new(old.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut kept = auth(&addr, &user, &old).await.expect("login");
    let client = {
        let (current, stop, ok, failed, addr, user, key) = (
            current.clone(),
            stop.clone(),
            ok.clone(),
            failed.clone(),
            addr.clone(),
            user.clone(),
            key.clone(),
        );
        tokio::spawn(async move {
            let mut errors = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let p = current.lock().unwrap().clone();
                let r = match auth(&addr, &user, &p).await {
                    Ok(mut c) => c
                        .command(&["INCR", &key])
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                match r {
                    Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        errors.push(e);
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            errors
        })
    };
    let wait_for = |n: u64| {
        let ok = ok.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            let target = ok.load(Ordering::Relaxed) + n;
            while ok.load(Ordering::Relaxed) < target {
                assert!(tokio::time::Instant::now() < deadline, "the client stalled");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_for(50).await;

    rotate::redis_add_password(&redis, &user, &new)
        .await
        .expect("add the new password");
    // Both are accepted during the switch.
    auth(&addr, &user, &old).await.expect("old still accepted");
    auth(&addr, &user, &new).await.expect("new accepted");
    wait_for(50).await;
    *current.lock().unwrap() = new.clone();
    wait_for(50).await;
    rotate::redis_drop_password(&redis, &user, &old)
        .await
        .expect("drop the old password");
    wait_for(50).await;
    stop.store(true, Ordering::Relaxed);
    let errors = client.await.unwrap();
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed: {errors:?}");

    let refused = auth(&addr, &user, &old)
        .await
        .map(|_| ())
        .expect_err("old refused");
    assert!(refused.contains("WRONGPASS"), "{refused}");
    auth(&addr, &user, &new).await.expect("new accepted");
    // The connection authenticated before the switch still works.
    kept.command(&["INCR", &key])
        .await
        .expect("kept connection");
    // The ACL file holds the new password only: a reload keeps the switch.
    let mut admin = auth(
        &addr,
        cp_core::serverconf::REDIS_ADMIN_USER,
        &redis.admin_password,
    )
    .await
    .unwrap();
    admin.command(&["ACL", "LOAD"]).await.expect("ACL LOAD");
    auth(&addr, &user, &old)
        .await
        .map(|_| ())
        .expect_err("old refused after a reload");
    auth(&addr, &user, &new)
        .await
        .expect("new accepted after a reload");
}
