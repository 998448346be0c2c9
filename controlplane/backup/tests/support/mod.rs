//! Shared by the backup tests: a seeded dev environment holding data for two tenants
//! in every service, and fingerprints of what each service holds, to compare a
//! restored environment with the original.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::Path;

use async_nats::jetstream;
use chrono::Utc;
use cp_backup::run::{self, Context};
use cp_core::names::CoreKind;
use cp_runtime::access::{Access, PgAccess};
use cp_runtime::resp::Connection;
use cp_runtime::secrets::Secret;
use cp_testkit::TestEnv;
use serde_json::{Value, json};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection as _, Row};

/// The dev environment on free ports, writing backups to `dest`, plus `extra`.
pub fn env(dest: &Path, extra: &[&str]) -> TestEnv {
    let mut sets = vec![
        format!("backup.destinations.local.path={}", dest.display()),
        "apps.capsule-registry.enabled=false".to_owned(),
        "monitoring.enabled=false".to_owned(),
    ];
    sets.extend(extra.iter().map(|s| (*s).to_owned()));
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    TestEnv::new(&sets)
}

/// Brings `t` up and seeds it.
pub async fn up_and_seed(t: &TestEnv) -> Access {
    t.up().await.expect("the environment comes up");
    let access = t.access().await;
    cp_seed::seed_all(&access, &t.env).await.expect("seed");
    // Seeding outside dev revokes the root token; in dev it is kept, and re-read.
    t.access().await
}

async fn superuser(pg: &PgAccess) -> PgConnection {
    PgConnection::connect_with(&cp_seed::postgres::connect_options(
        pg,
        "postgres",
        pg.superuser_password.expose(),
        &pg.database,
    ))
    .await
    .expect("connect as the superuser")
}

/// What the tests put in before a backup, to find again after a restore.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// The tenants' ids.
    pub tenants: Vec<String>,
    /// A transit ciphertext of `PLAINTEXT` made before the backup.
    pub ciphertext: String,
}

/// The plaintext behind [`Seeded::ciphertext`].
pub const PLAINTEXT: &str = "aGVsbG8gZnJvbSBiZWZvcmUgdGhlIGJhY2t1cA==";

/// Two tenants with rows, messages, secrets and keys.
pub async fn data(t: &TestEnv, a: &Access) -> Seeded {
    let mut tenants = Vec::new();
    for slug in ["acme", "globex"] {
        let o = cp_seed::tenants::create(a, &t.env, slug, None)
            .await
            .expect("tenant create");
        tenants.push(o.tenant.id.to_string());
    }
    let pg = a.postgres.as_ref().unwrap();
    let mut c = superuser(pg).await;
    for (i, id) in tenants.iter().enumerate() {
        for n in 0..(40 + i * 7) {
            sqlx::query("INSERT INTO anumate.users (tenant_id, email, display_name) VALUES ($1::uuid, $2, $3)")
                .bind(id)
                .bind(format!("user{n}@t{i}.example"))
                .bind(format!("User \"{n}\"\twith\nnewline"))
                .execute(&mut c)
                .await
                .expect("insert user");
        }
        for n in 0..25 {
            sqlx::query("INSERT INTO audit.events (tenant_id, actor, action, details) VALUES ($1::uuid, $2, 'login', $3)")
                .bind(id)
                .bind(format!("user{n}"))
                .bind(json!({"n": n, "tenant": i}))
                .execute(&mut c)
                .await
                .expect("insert audit event");
        }
    }
    // JetStream: messages on two streams and a durable consumer.
    let n = a.nats.as_ref().unwrap();
    let js = cp_runtime::nats::jetstream_admin(n).await.unwrap();
    for i in 0..30 {
        js.publish(
            format!("events.audit.t{}", i % 2),
            format!("audit {i}").into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    for i in 0..7 {
        js.publish("events.capsule.created", format!("capsule {i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    js.get_stream("AUDIT_EVENTS")
        .await
        .unwrap()
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("auditor".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    // Vault: a KV secret and a ciphertext.
    let v = a.vault.as_ref().unwrap().client().unwrap();
    v.write(
        "secret/data/anumate/config/app",
        &json!({"data": {"api_key": "k-123"}}),
    )
    .await
    .unwrap();
    let ct = v
        .write(
            "transit/encrypt/anumate-config",
            &json!({"plaintext": PLAINTEXT}),
        )
        .await
        .unwrap()["data"]["ciphertext"]
        .as_str()
        .unwrap()
        .to_owned();
    // Redis: keys with and without TTLs.
    let mut r = redis(a).await;
    for (k, v, ttl) in [
        ("t:1:session", "s1", Some("3600")),
        ("t:2:cache", "c2", None),
        ("t:1:x", "x", Some("7200")),
    ] {
        r.command(&["SET", k, v]).await.unwrap();
        if let Some(ttl) = ttl {
            r.command(&["EXPIRE", k, ttl]).await.unwrap();
        }
    }
    r.command(&["HSET", "t:2:h", "f", "v"]).await.unwrap();
    Seeded {
        tenants,
        ciphertext: ct,
    }
}

pub async fn redis(a: &Access) -> Connection {
    let r = a.redis.as_ref().unwrap();
    let mut c = Connection::connect(&r.endpoint.addr()).await.unwrap();
    c.command(&["AUTH", "admin", r.admin_password.expose()])
        .await
        .unwrap();
    c
}

/// Per table and tenant, a digest of every row.
pub async fn table_digests(a: &Access) -> BTreeMap<String, String> {
    let pg = a.postgres.as_ref().unwrap();
    let mut c = superuser(pg).await;
    let tables: Vec<(String, String, bool)> = sqlx::query_as(
        "SELECT table_schema::text, table_name::text,
                EXISTS (SELECT 1 FROM information_schema.columns k WHERE k.table_schema = t.table_schema AND k.table_name = t.table_name AND k.column_name = 'tenant_id')
         FROM information_schema.tables t WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for (s, t, tenant) in tables {
        let q = if tenant {
            format!(
                "SELECT tenant_id::text, count(*), md5(string_agg(x::text, '|' ORDER BY x::text)) FROM \"{s}\".\"{t}\" x GROUP BY 1"
            )
        } else {
            format!(
                "SELECT '-', count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM \"{s}\".\"{t}\" x"
            )
        };
        for row in sqlx::query(AssertSqlSafe(q))
            .fetch_all(&mut c)
            .await
            .unwrap()
        {
            let who: String = row.get(0);
            let n: i64 = row.get(1);
            let d: Option<String> = row.get(2);
            out.insert(
                format!("{s}.{t} tenant {who}"),
                format!("{n} rows {}", d.unwrap_or_default()),
            );
        }
    }
    out
}

/// Every stream's state and every message with its sequence number.
pub async fn streams(a: &Access) -> BTreeMap<String, Value> {
    let js = cp_runtime::nats::jetstream_admin(a.nats.as_ref().unwrap())
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    use futures::TryStreamExt;
    let names: Vec<String> = js.stream_names().try_collect().await.unwrap();
    for name in names {
        let s = js.get_stream(&name).await.unwrap();
        let st = s.cached_info().state.clone();
        let mut msgs = Vec::new();
        if st.messages > 0 {
            for seq in st.first_sequence..=st.last_sequence {
                if let Ok(m) = s.get_raw_message(seq).await {
                    msgs.push(json!([
                        seq,
                        m.subject.to_string(),
                        String::from_utf8_lossy(&m.payload)
                    ]));
                }
            }
        }
        let mut consumers: Vec<String> = s.consumer_names().try_collect().await.unwrap();
        consumers.sort();
        // An empty stream's first sequence is 0 or 1 depending on its history; only
        // the last one says where numbering goes on.
        let first = (st.messages > 0).then_some(st.first_sequence);
        out.insert(
            name,
            json!({"messages": st.messages, "first": first, "last": st.last_sequence, "msgs": msgs, "consumers": consumers}),
        );
    }
    out
}

/// Redis keys with their values and whether they expire.
pub async fn redis_keys(a: &Access) -> BTreeMap<String, String> {
    let mut c = redis(a).await;
    let keys = match c.command(&["KEYS", "*"]).await.unwrap() {
        cp_runtime::resp::Reply::Array(Some(k)) => {
            k.iter().filter_map(|x| x.text()).collect::<Vec<_>>()
        }
        _ => Vec::new(),
    };
    let mut out = BTreeMap::new();
    for k in keys {
        let ty = c
            .command(&["TYPE", &k])
            .await
            .unwrap()
            .text()
            .unwrap_or_default();
        let v = if ty == "string" {
            c.command(&["GET", &k])
                .await
                .unwrap()
                .text()
                .unwrap_or_default()
        } else {
            ty
        };
        let ttl = match c.command(&["TTL", &k]).await.unwrap() {
            cp_runtime::resp::Reply::Int(n) => n,
            _ => -3,
        };
        out.insert(k, format!("{v} expires={}", ttl > 0));
    }
    out
}

/// A context for the library's commands.
pub fn cx<'a>(t: &'a TestEnv, access: &'a Access) -> Context<'a> {
    Context {
        env: &t.env,
        access,
        state: &t.state,
        secrets: &t.secrets,
        project_root: t.root.as_path(),
    }
}

/// The unseal keys `t` keeps (dev keeps them in its state directory).
pub fn unseal_keys(t: &TestEnv) -> Vec<Secret> {
    let v = t.env.services.vault.as_ref().unwrap();
    cp_runtime::vault::key_store(v, &t.state, "vault")
        .unseal_keys()
        .unwrap()
        .expect("dev keeps its unseal keys")
}

/// Takes a backup of `t`.
pub async fn backup(t: &TestEnv, a: &Access) -> run::BackupReport {
    let _lock = run::lock(&t.state, "backup").unwrap();
    run::backup(&cx(t, a), &[], None, Utc::now(), &run::Quiet)
        .await
        .expect("backup")
}

/// Opens the first destination of `t`.
pub async fn store(t: &TestEnv) -> cp_backup::dest::Store {
    let b = t.env.backup.as_ref().unwrap();
    cp_backup::dest::Store::open(&b.destinations, None, &t.root, &t.secrets)
        .await
        .unwrap()
}

/// The kept root token of `t`.
pub async fn root(t: &TestEnv) -> Secret {
    t.vault_root_token().await
}

pub fn kinds() -> Vec<CoreKind> {
    CoreKind::ALL.to_vec()
}
