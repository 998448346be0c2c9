//! An app as a first-class consumer of the platform, against real services brought
//! up by the process driver (no app binary: the test dials with the environment the
//! app would get): the Capsule Registry of `environments/base.yaml` (seed 003).
//!
//! With the rendered `DATABASE_URL` its role reaches only its own database, owns
//! nothing and is subject to row-level security; with `EVENTS_NATS_URL` its NATS user
//! publishes and subscribes exactly its subjects; with `REDIS_URL` its Redis user
//! touches only its prefix; its AppRole reads only its KV path. `plan` shows the
//! parts before seeding, and a second seed changes nothing.

use std::time::Duration;

use cp_core::names::ServiceName;
use cp_core::plan::{Action, Layer};
use cp_runtime::resp::{Connection, Reply, RespError};
use cp_seed::{Report, layers};
use cp_testkit::TestEnv;
use serde_json::json;
use sqlx::{Connection as _, PgConnection, Row};

const TENANT_A: &str = "0b7c5b6e-1111-4222-8333-944455556666";
const TENANT_B: &str = "1c8d6c7f-2222-4333-9444-a55566667777";

fn userinfo(url: &str) -> (String, String, String) {
    // scheme://user:password@host:port/...
    let rest = url.split_once("://").expect("a URL").1;
    let (creds, host) = rest.split_once('@').expect("credentials in the URL");
    let (user, password) = creds.split_once(':').expect("user:password");
    let addr = host.split('/').next().unwrap().to_owned();
    (user.to_owned(), password.to_owned(), addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capsule_registry_gets_exactly_what_it_uses() {
    let t = TestEnv::new(&["monitoring.enabled=false", "backup.enabled=false"]);
    let app = ServiceName::new("capsule-registry").unwrap();
    assert!(
        t.env.apps[&app].uses.postgres.is_some(),
        "base.yaml declares what it uses"
    );
    t.up().await.expect("the platform comes up");
    let access = t.access().await;

    // `plan` shows the app's parts before they exist.
    let mut r = Report::new("postgres");
    let o = layers::observe(Layer::Database, &access, &t.env, &mut r)
        .await
        .expect("observe the database layer");
    let role_step = o
        .plan
        .steps
        .iter()
        .find(|s| s.id.kind == "app-role" && s.id.name == "capsule_registry")
        .expect("the plan shows the app's role");
    assert_eq!(role_step.action, Action::Create);

    let first = cp_seed::seed_all(&access, &t.env).await.expect("seed");
    let all: Vec<&String> = first.reports.iter().flat_map(|r| &r.changes).collect();
    for want in [
        "app capsule-registry: role capsule_registry",
        "created Redis ACL user app-capsule-registry",
        "created policy app-capsule-registry",
        "created approle app-capsule-registry",
    ] {
        assert!(
            all.iter().any(|c| c.starts_with(want)),
            "no change `{want}` in {all:#?}"
        );
    }
    let again = cp_seed::seed_all(&access, &t.env)
        .await
        .expect("seed again");
    let changed: Vec<&String> = again.reports.iter().flat_map(|r| &r.changes).collect();
    assert!(changed.is_empty(), "a second seed changed {changed:#?}");

    let vars = cp_runtime::access::app_environment(
        &t.env,
        &app,
        |k| Some(cp_runtime::probe::Endpoint::local(t.port(k))),
        &t.secrets,
    )
    .await
    .expect("the app's environment resolves");
    for v in [
        "DATABASE_URL",
        "EVENTS_NATS_URL",
        "REDIS_URL",
        "VAULT_ADDR",
        "OIDC_ISSUER_URL",
        "OIDC_CLIENT_ID",
    ] {
        assert!(vars.contains_key(v), "{v} missing from {:?}", vars.keys());
    }

    postgres(&t, vars["DATABASE_URL"].expose()).await;
    nats(vars["EVENTS_NATS_URL"].expose()).await;
    redis(vars["REDIS_URL"].expose()).await;
    vault(&t, &access).await;
    t.down(true).await;
}

async fn postgres(t: &TestEnv, url: &str) {
    let mut app = PgConnection::connect(url)
        .await
        .expect("the app connects with DATABASE_URL");
    let row = sqlx::query(
        "SELECT current_user::text AS u, current_database()::text AS d, current_schema()::text AS s,
                (SELECT rolbypassrls OR rolsuper FROM pg_roles WHERE rolname = current_user) AS bypass",
    )
    .fetch_one(&mut app)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>("u"), "capsule_registry");
    assert_eq!(row.get::<String, _>("d"), "capsule_registry");
    assert_eq!(row.get::<String, _>("s"), "capsule_registry");
    assert!(!row.get::<bool, _>("bypass"), "the app's role bypasses RLS");

    // Not the platform database.
    let platform = format!("{}/anumate", url.rsplit_once('/').unwrap().0);
    let err = PgConnection::connect(&platform)
        .await
        .expect_err("the app's role reaches the platform database");
    assert!(
        err.to_string().contains("permission denied"),
        "unexpected: {err}"
    );
    // It creates nothing (schema changes run as the owner).
    let err = sqlx::raw_sql("CREATE TABLE capsule_registry.mine (x int)")
        .execute(&mut app)
        .await
        .expect_err("the app's role creates a table");
    assert!(err.to_string().contains("permission denied"), "{err}");

    // The owner makes a tenant table under forced RLS, as the app's migrations would.
    let admin_pw = t.secret("services.postgres.admin_password").await;
    let (_, _, addr) = userinfo(url);
    let mut admin = PgConnection::connect(&format!(
        "postgresql://anumate_admin:{}@{addr}/capsule_registry",
        admin_pw.expose()
    ))
    .await
    .expect("the admin connects to the app's database");
    sqlx::raw_sql(
        "CREATE TABLE capsule_registry.capsules (tenant_id uuid NOT NULL, name text NOT NULL);
         ALTER TABLE capsule_registry.capsules ENABLE ROW LEVEL SECURITY;
         ALTER TABLE capsule_registry.capsules FORCE ROW LEVEL SECURITY;
         CREATE POLICY tenant ON capsule_registry.capsules
           USING (tenant_id = current_setting('app.current_tenant_id', true)::uuid);",
    )
    .execute(&mut admin)
    .await
    .expect("the owner creates the table");
    for (tenant, name) in [(TENANT_A, "a"), (TENANT_B, "b")] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "BEGIN; SET LOCAL app.current_tenant_id = '{tenant}';
             INSERT INTO capsule_registry.capsules VALUES ('{tenant}', '{name}'); COMMIT;"
        )))
        .execute(&mut admin)
        .await
        .expect("insert as the owner");
    }
    // Unbound, the app sees nothing; bound to A, only A's row; it cannot write B's.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM capsules")
        .fetch_one(&mut app)
        .await
        .expect("the app reads its table (default privileges)");
    assert_eq!(n, 0, "RLS lets an unbound session see rows");
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
        .bind(TENANT_A)
        .execute(&mut *tx)
        .await
        .unwrap();
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM capsules")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(names, ["a"]);
    let err = sqlx::query("INSERT INTO capsules VALUES ($1::uuid, 'x')")
        .bind(TENANT_B)
        .execute(&mut *tx)
        .await
        .expect_err("the app writes another tenant's row");
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(tx);
    app.close().await.ok();
    admin.close().await.ok();
}

async fn nats(url: &str) {
    let (tx, mut errors) = tokio::sync::mpsc::unbounded_channel::<String>();
    // async-nats reads no credentials from a URL (nats.py and nats.go do): pass them.
    let (user, password, addr) = userinfo(url);
    let client = async_nats::ConnectOptions::with_user_and_password(user.clone(), password)
        .custom_inbox_prefix(cp_core::serverconf::app_user_inbox_prefix(&user))
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(async_nats::ServerError::Other(m)) = e {
                    let _ = tx.send(m);
                }
            }
        })
        .connect(format!("nats://{addr}"))
        .await
        .expect("the app connects with EVENTS_NATS_URL");
    let mut sub = client
        .subscribe("events.capsule.>")
        .await
        .expect("subscribe on its subject");
    client.flush().await.unwrap();
    client
        .publish("events.capsule.created", "hello".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut sub))
        .await
        .expect("its own subject's message arrives")
        .expect("a message");
    assert_eq!(got.subject.as_str(), "events.capsule.created");

    // Anything else is refused by the server, which says so.
    let refused = |what: &'static str| move |m: &String| m.to_ascii_lowercase().contains(what);
    client
        .publish("events.plan.created", "x".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(10), errors.recv())
        .await
        .expect("the server refuses a publish outside its subjects")
        .unwrap();
    assert!(refused("publish")(&m), "{m}");
    let _other = client.subscribe("events.plan.>").await.unwrap();
    client.flush().await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(10), errors.recv())
        .await
        .expect("the server refuses a subscription outside its subjects")
        .unwrap();
    assert!(refused("subscription")(&m), "{m}");
    client
        .publish("$JS.API.STREAM.NAMES", "".into())
        .await
        .unwrap();
    client.flush().await.unwrap();
    let m = tokio::time::timeout(Duration::from_secs(10), errors.recv())
        .await
        .expect("the server refuses JetStream's API")
        .unwrap();
    assert!(refused("publish")(&m), "{m}");
}

async fn redis(url: &str) {
    let (user, password, addr) = userinfo(url);
    assert_eq!(user, "app-capsule-registry");
    let mut c = Connection::connect(&addr).await.unwrap();
    c.command(&["AUTH", user.as_str(), password.as_str()])
        .await
        .expect("the app's Redis user logs in with REDIS_URL");
    assert_eq!(
        c.command(&["SET", "capsule-registry:k", "v"])
            .await
            .unwrap(),
        Reply::Simple("OK".into())
    );
    for args in [
        &["SET", "t:x:k", "v"][..],
        &["GET", "other:k"][..],
        &["CONFIG", "GET", "maxmemory"][..],
        &["FLUSHALL"][..],
    ] {
        match c.command(args).await {
            Err(RespError::Server { message, .. }) => {
                assert!(message.starts_with("NOPERM"), "{args:?}: {message}");
            }
            other => panic!("{args:?} was not refused: {other:?}"),
        }
    }
}

async fn vault(t: &TestEnv, access: &cp_seed::Access) {
    let v = access.vault.as_ref().expect("vault runs");
    let root = v.client().expect("the root token");
    let kv = &t.env.vault.kv_mount;
    for p in [
        "anumate/config/capsule-registry",
        "anumate/config/other-app",
    ] {
        root.write(
            &format!("{kv}/data/{p}"),
            &json!({"data": {"signing_public_key": "pk"}}),
        )
        .await
        .expect("write a secret as root");
    }
    let (token, _) = cp_seed::vault::role_login(v, "app-capsule-registry")
        .await
        .expect("the app logs in through its AppRole");
    let app = v.client_with(token);
    let own = app
        .read(&format!("{kv}/data/anumate/config/capsule-registry"))
        .await
        .expect("the app reads its own secrets")
        .expect("present");
    assert_eq!(own["data"]["data"]["signing_public_key"], "pk");
    for p in [
        format!("{kv}/data/anumate/config/other-app"),
        format!("{kv}/data/tenants/{TENANT_A}/x"),
        "sys/policies/acl/app-capsule-registry".to_owned(),
    ] {
        assert!(app.read(&p).await.is_err(), "the app's AppRole reads {p}");
    }
    assert!(
        app.write(
            &format!("{kv}/data/anumate/config/capsule-registry"),
            &json!({"data": {"x": "y"}})
        )
        .await
        .is_err(),
        "the app's AppRole writes its secrets"
    );
}
