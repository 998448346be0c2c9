//! Real clients checking each service does its job: SQL, Redis commands, JetStream
//! streams, Vault KV.

#![allow(dead_code, unreachable_pub)]

use cp_core::names::CoreKind;
use cp_runtime::secrets::Secret;
use sqlx::{ConnectOptions, Connection};

use super::support::TestEnv;

/// Connects as the superuser to `postgres`.
pub async fn pg(t: &TestEnv) -> sqlx::PgConnection {
    let pw = t.secret("services.postgres.superuser_password").await;
    sqlx::postgres::PgConnectOptions::new()
        .host("127.0.0.1")
        .port(t.port(CoreKind::Postgres))
        .username("postgres")
        .password(pw.expose())
        .database("postgres")
        .connect()
        .await
        .expect("connect to postgres as its superuser")
}

/// Writes a row that must survive restarts.
pub async fn pg_write(t: &TestEnv, value: &str) {
    let mut c = pg(t).await;
    sqlx::query("CREATE TABLE IF NOT EXISTS cp_test (v text)")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("INSERT INTO cp_test VALUES ($1)")
        .bind(value)
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
}

/// The rows written so far.
pub async fn pg_rows(t: &TestEnv) -> Vec<String> {
    let mut c = pg(t).await;
    let rows: Vec<String> = sqlx::query_scalar("SELECT v FROM cp_test ORDER BY v")
        .fetch_all(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    rows
}

/// AUTH as admin, PING, SET and GET; `default` must be refused.
pub async fn redis_roundtrip(t: &TestEnv) {
    let addr = format!("127.0.0.1:{}", t.port(CoreKind::Redis));
    let pw = t.secret("services.redis.admin_password").await;
    let mut c = cp_runtime::resp::Connection::connect(&addr).await.unwrap();
    assert!(
        c.command(&["PING"]).await.is_err(),
        "an unauthenticated client must be refused"
    );
    c.command(&["AUTH", "admin", pw.expose()]).await.unwrap();
    assert_eq!(
        c.command(&["PING"]).await.unwrap(),
        cp_runtime::resp::Reply::Simple("PONG".into())
    );
    c.command(&["SET", "cp:test", "42"]).await.unwrap();
    assert_eq!(
        c.command(&["GET", "cp:test"])
            .await
            .unwrap()
            .text()
            .as_deref(),
        Some("42")
    );
}

/// Creates a stream as admin and publishes to it with an ack.
pub async fn nats_stream(t: &TestEnv) {
    let pw = t.secret("services.nats.admin_password").await;
    let client = async_nats::ConnectOptions::new()
        .user_and_password("admin".into(), pw.expose().to_owned())
        .connect(format!("127.0.0.1:{}", t.port(CoreKind::Nats)))
        .await
        .expect("connect to nats as admin");
    let js = async_nats::jetstream::new(client);
    js.create_stream(async_nats::jetstream::stream::Config {
        name: "CP_TEST".into(),
        subjects: vec!["cptest.>".into()],
        ..Default::default()
    })
    .await
    .expect("create a stream");
    let ack = js
        .publish("cptest.hello", "hi".into())
        .await
        .unwrap()
        .await
        .expect("publish acknowledged");
    assert_eq!(ack.stream, "CP_TEST");
}

/// The root token kept in the state directory (dev).
pub async fn vault_root(t: &TestEnv) -> Secret {
    cp_runtime::vault::root_token(
        t.env.services.vault.as_ref().unwrap(),
        &t.secrets,
        &t.state,
        "vault",
    )
    .await
    .unwrap()
    .expect("dev keeps the root token")
}

/// Mounts KV v2 (once) and writes and reads a secret with the root token.
pub async fn vault_kv(t: &TestEnv) {
    let token = vault_root(t).await;
    let c = cp_runtime::vault::Client::with_token(
        &format!("http://127.0.0.1:{}", t.port(CoreKind::Vault)),
        token,
    );
    let mounts = c.read("sys/mounts").await.unwrap().unwrap_or_default();
    if mounts.get("cptest/").is_none() {
        c.write(
            "sys/mounts/cptest",
            &serde_json::json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await
        .unwrap();
    }
    // The shared client retries the moment a fresh KV v2 mount upgrades its storage.
    c.write(
        "cptest/data/app",
        &serde_json::json!({"data": {"greeting": "hello"}}),
    )
    .await
    .unwrap();
    let v = c.read("cptest/data/app").await.unwrap().unwrap();
    assert_eq!(v["data"]["data"]["greeting"], "hello");
}
