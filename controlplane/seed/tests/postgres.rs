//! PostgreSQL seeding against a real server: roles and privileges, reversible
//! migrations, the committed schema snapshot, the tenant registry, and tenant isolation
//! as the application role.
//!
//! One server serves the whole file (this is a `harness = false` test: `main` starts
//! it, runs the tests, and tears it down even when one fails); every test works in a
//! database of its own. The two tests that change cluster-wide roles run first, alone;
//! the rest run concurrently. `cargo test -p cp-seed --test postgres [FILTER]`;
//! `CP_BLESS=1` rewrites `migrations/schema.snapshot.sql` and
//! `migrations/privileges.json` (`cargo xtask codegen` does, with every other golden).

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use cp_core::names::CoreKind;
use cp_runtime::probe::Endpoint;
use cp_seed::PgAccess;
use cp_seed::postgres::{
    self, ADMIN_ROLE, APP_ROLE, BACKUP_ROLE, READONLY_ROLE, TENANT_TABLES, TenantId,
    begin_tenant_tx, connect_options,
};
use cp_testkit::TestEnv;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Row};
use uuid::Uuid;

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
type Test = fn(PgAccess) -> BoxFut<'static, ()>;

/// Generous for two busy cores; a healthy run of every test takes seconds.
const TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(180);

/// Tests that change roles every database shares: run first, one at a time.
const SERIAL: &[(&str, Test)] = &[
    ("seed_creates_everything_then_changes_nothing", |pg| {
        Box::pin(seed_creates_everything_then_changes_nothing(pg))
    }),
    ("seed_repairs_drifted_roles_and_privileges", |pg| {
        Box::pin(seed_repairs_drifted_roles_and_privileges(pg))
    }),
];

/// Tests that only touch their own database: run together.
const CONCURRENT: &[(&str, Test)] = &[
    ("migrations_go_down_and_up_again", |pg| {
        Box::pin(migrations_go_down_and_up_again(pg))
    }),
    ("a_failed_migration_leaves_nothing_and_reruns", |pg| {
        Box::pin(a_failed_migration_leaves_nothing_and_reruns(pg))
    }),
    ("schema_matches_the_committed_snapshot", |pg| {
        Box::pin(schema_matches_the_committed_snapshot(pg))
    }),
    ("privileges_match_the_committed_snapshot", |pg| {
        Box::pin(privileges_match_the_committed_snapshot(pg))
    }),
    (
        "catalog_every_tenant_table_is_forced_with_full_policies",
        |pg| Box::pin(catalog_every_tenant_table_is_forced_with_full_policies(pg)),
    ),
    ("tenant_registry_insert_find_list_delete", |pg| {
        Box::pin(tenant_registry_insert_find_list_delete(pg))
    }),
    ("isolation_as_the_app_role", |pg| {
        Box::pin(isolation_as_the_app_role(pg))
    }),
    ("readonly_and_backup_roles", |pg| {
        Box::pin(readonly_and_backup_roles(pg))
    }),
    ("seed_000_sql_examples_run_as_written", |pg| {
        Box::pin(seed_000_sql_examples_run_as_written(pg))
    }),
    ("errors_say_what_to_do_and_never_the_password", |pg| {
        Box::pin(errors_say_what_to_do_and_never_the_password(pg))
    }),
    ("scram_verifiers_agree_with_the_server", |pg| {
        Box::pin(scram_verifiers_agree_with_the_server(pg))
    }),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exact = args.iter().any(|a| a == "--exact");
    let filter = args.iter().find(|a| !a.starts_with('-'));
    let all = SERIAL.iter().chain(CONCURRENT);
    if args.iter().any(|a| a == "--list") {
        // libtest's listing format, so runners such as nextest can list and filter;
        // nothing here is ignored.
        if args.iter().any(|a| a == "--ignored") {
            return;
        }
        for (name, _) in all {
            println!("{name}: test");
        }
        return;
    }
    let selected = |name: &str| match filter {
        None => true,
        Some(f) if exact => name == f,
        Some(f) => name.contains(f.as_str()),
    };
    let serial: Vec<_> = SERIAL.iter().filter(|(n, _)| selected(n)).collect();
    let concurrent: Vec<_> = CONCURRENT.iter().filter(|(n, _)| selected(n)).collect();
    let total = serial.len() + concurrent.len();
    println!("\nrunning {total} tests (one shared PostgreSQL server)");
    if total == 0 {
        println!("\ntest result: ok. 0 passed; 0 failed\n");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let failed = rt.block_on(async {
        let t = TestEnv::only(&[CoreKind::Postgres], &[]);
        if let Err(e) = t.up().await {
            panic!("cannot start PostgreSQL for these tests:\n{e}");
        }
        let base = PgAccess {
            endpoint: Endpoint::local(t.port(CoreKind::Postgres)),
            database: String::new(),
            superuser_password: t.secret("services.postgres.superuser_password").await,
            admin_password: t.secret("services.postgres.admin_password").await,
            app_password: t.secret("services.postgres.app_password").await,
            readonly_password: t.secret("services.postgres.readonly_password").await,
            backup_password: t.secret("services.postgres.backup_password").await,
        };
        let with_db = |name: &str| PgAccess {
            database: format!("t_{name}").chars().take(60).collect(),
            ..base.clone()
        };
        let mut failed = Vec::new();
        // Each test runs in a task, so a panic is caught and reported as a failure.
        // A test that hangs fails after its deadline instead of hanging the run.
        let run = |name: &'static str, test: Test| {
            let fut = test(with_db(name));
            tokio::spawn(async move {
                if tokio::time::timeout(TEST_TIMEOUT, fut).await.is_err() {
                    panic!("{name} did not finish within {TEST_TIMEOUT:?}");
                }
            })
        };
        for (name, test) in &serial {
            let r = run(name, *test).await;
            report(name, r.is_ok(), &mut failed);
        }
        // Roles are cluster-wide: create them once before seeding concurrently (when
        // the serial tests were filtered out), so concurrent seeds never race on them.
        if serial.is_empty() {
            seeded(&with_db("bootstrap")).await;
        }
        let handles: Vec<_> = concurrent
            .iter()
            .map(|(name, test)| (*name, run(name, *test)))
            .collect();
        for (name, h) in handles {
            report(name, h.await.is_ok(), &mut failed);
        }
        drop(t);
        failed
    });
    if failed.is_empty() {
        println!("\ntest result: ok. {total} passed; 0 failed\n");
    } else {
        println!("\nfailures:\n    {}", failed.join("\n    "));
        println!(
            "\ntest result: FAILED. {} passed; {} failed\n",
            total - failed.len(),
            failed.len()
        );
        std::process::exit(101);
    }
}

fn report(name: &'static str, ok: bool, failed: &mut Vec<&'static str>) {
    println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
    if !ok {
        failed.push(name);
    }
}

// ---------------------------------------------------------------------------------
// Helpers

async fn conn_as(pg: &PgAccess, user: &str, password: &str, db: &str) -> PgConnection {
    PgConnection::connect_with(&connect_options(pg, user, password, db))
        .await
        .unwrap_or_else(|e| panic!("connect as {user} to {db}: {e}"))
}

async fn superuser(pg: &PgAccess, db: &str) -> PgConnection {
    conn_as(pg, "postgres", pg.superuser_password.expose(), db).await
}

async fn admin(pg: &PgAccess) -> PgConnection {
    conn_as(pg, ADMIN_ROLE, pg.admin_password.expose(), &pg.database).await
}

async fn pool_as(pg: &PgAccess, user: &str, password: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect_with(connect_options(pg, user, password, &pg.database))
        .await
        .unwrap_or_else(|e| panic!("pool as {user}: {e}"))
}

async fn seeded(pg: &PgAccess) {
    if let Err(e) = postgres::seed(pg).await {
        panic!("seed {}: {e}", pg.database);
    }
}

async fn exec(c: &mut PgConnection, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(&mut *c)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

fn applied(status: &[postgres::MigrationStatus]) -> Vec<i64> {
    status
        .iter()
        .filter(|s| s.applied)
        .map(|s| s.version)
        .collect()
}

// ---------------------------------------------------------------------------------
// Seeding and migrations

async fn seed_creates_everything_then_changes_nothing(pg: PgAccess) {
    let first = postgres::seed(&pg).await.expect("first seed");
    let text = first.changes.join("\n");
    for role in [ADMIN_ROLE, APP_ROLE, READONLY_ROLE, BACKUP_ROLE] {
        assert!(
            text.contains(&format!("created role {role}")),
            "first seed of a fresh cluster creates {role}:\n{text}"
        );
    }
    assert!(
        text.contains(&format!("created database {}", pg.database)),
        "{text}"
    );
    assert!(
        text.contains("granted pg_read_all_data to anumate_backup"),
        "{text}"
    );
    for role in [ADMIN_ROLE, APP_ROLE, READONLY_ROLE, BACKUP_ROLE] {
        assert!(
            text.contains(&format!(
                "set search_path anumate, audit, events, public on role {role}"
            )),
            "{text}"
        );
    }
    let migrations = first
        .changes
        .iter()
        .filter(|c| c.starts_with("applied migration"))
        .count();
    assert_eq!(migrations, postgres::MIGRATOR.iter().count() / 2, "{text}");
    assert!(
        !text.contains(pg.app_password.expose()),
        "no password in the report"
    );

    let second = postgres::seed(&pg).await.expect("second seed");
    assert!(
        second.changes.is_empty(),
        "a second seed changes nothing, but reported:\n{}",
        second.changes.join("\n")
    );
    assert!(second.round_trips > 0 && second.round_trips < first.round_trips);
    println!(
        "  seed: first {} changes in {} round trips, second 0 changes in {} round trips",
        first.changes.len(),
        first.round_trips,
        second.round_trips
    );
    let status = postgres::migrate_status(&pg).await.unwrap();
    assert!(
        status.iter().all(|s| s.applied && s.checksum_ok),
        "{status:?}"
    );
}

async fn seed_repairs_drifted_roles_and_privileges(pg: PgAccess) {
    seeded(&pg).await;
    let mut su = superuser(&pg, "postgres").await;
    exec(&mut su, "ALTER ROLE anumate_app BYPASSRLS CREATEDB").await;
    exec(&mut su, "GRANT anumate_admin TO anumate_app").await;
    exec(
        &mut su,
        "ALTER ROLE anumate_readonly PASSWORD 'not-the-configured-one'",
    )
    .await;
    exec(&mut su, "ALTER ROLE anumate_backup NOBYPASSRLS").await;
    exec(&mut su, "ALTER ROLE anumate_admin RESET search_path").await;
    exec(&mut su, "ALTER ROLE anumate_app SET search_path TO public").await;
    exec(
        &mut su,
        &format!(
            "GRANT CONNECT, TEMPORARY ON DATABASE {} TO PUBLIC",
            pg.database
        ),
    )
    .await;
    let mut su_db = superuser(&pg, &pg.database).await;
    exec(
        &mut su_db,
        "CREATE TABLE anumate.side_door (i int); ALTER TABLE anumate.side_door OWNER TO anumate_app",
    )
    .await;
    exec(
        &mut su_db,
        "REVOKE SELECT ON anumate.tenants FROM anumate_app; GRANT DELETE ON audit.events TO anumate_app",
    )
    .await;
    // The plan shows every drift before anything is repaired.
    let mut r = cp_seed::Report::new("postgres");
    let cat = postgres::layer::observe(&pg, &mut r).await.unwrap();
    let plan = postgres::layer::plan(&pg.database, &cat).to_string();
    for want in [
        "~ role anumate_app",
        "/bypassrls: true -> false",
        "/search_path: \"not set\" -> \"anumate, audit, events, public\"",
        "/search_path: \"public\" -> \"anumate, audit, events, public\"",
        "/password: \"differs from services.postgres.readonly_password\" -> \"matches services.postgres.readonly_password\"",
        "+ grant anumate_app on table anumate.tenants",
        "~ grant anumate_app on table audit.events",
        "~ ownership objects owned by the app, read-only and backup roles",
    ] {
        assert!(
            plan.contains(want),
            "expected `{want}` in the plan:\n{plan}"
        );
    }
    let r = postgres::seed(&pg).await.expect("seed repairs");
    let text = r.changes.join("\n");
    for want in [
        "granted SELECT on table anumate.tenants to anumate_app",
        "revoked DELETE on table audit.events from anumate_app",
        "set NOCREATEDB NOBYPASSRLS on role anumate_app",
        "revoked membership of anumate_app in anumate_admin",
        "set the password of role anumate_readonly (from services.postgres.readonly_password)",
        "set BYPASSRLS on role anumate_backup",
        "set search_path anumate, audit, events, public on role anumate_admin",
        "set search_path anumate, audit, events, public on role anumate_app",
        "set privileges on database",
        "reassigned 1 object(s) owned by anumate_app to anumate_admin",
    ] {
        assert!(text.contains(want), "expected `{want}` in:\n{text}");
    }
    // The repaired password works, and the next seed has nothing left to do.
    conn_as(
        &pg,
        READONLY_ROLE,
        pg.readonly_password.expose(),
        &pg.database,
    )
    .await;
    let again = postgres::seed(&pg).await.unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    let owner: String = sqlx::query_scalar(
        "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'anumate.side_door'::regclass",
    )
    .fetch_one(&mut su_db)
    .await
    .unwrap();
    assert_eq!(owner, ADMIN_ROLE);
}

async fn migrations_go_down_and_up_again(pg: PgAccess) {
    seeded(&pg).await;
    let all: Vec<i64> = postgres::migrate_status(&pg)
        .await
        .unwrap()
        .iter()
        .map(|s| s.version)
        .collect();
    assert_eq!(all.len(), 7);

    let r = postgres::migrate_down(&pg, 2).await.unwrap();
    assert_eq!(r.changes.len(), 2, "{:?}", r.changes);
    assert!(
        r.changes[0].contains(&all[6].to_string()),
        "newest first: {:?}",
        r.changes
    );
    let s = postgres::migrate_status(&pg).await.unwrap();
    assert_eq!(applied(&s), all[..5].to_vec());
    assert!(s.iter().all(|m| m.checksum_ok));

    let r = postgres::migrate_down(&pg, 100).await.unwrap();
    assert_eq!(r.changes.len(), 5, "{:?}", r.changes);
    let s = postgres::migrate_status(&pg).await.unwrap();
    assert!(applied(&s).is_empty(), "{s:?}");
    let mut c = admin(&pg).await;
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_namespace WHERE nspname IN ('anumate', 'audit', 'events')",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(left, 0, "down removes the schemas");
    let nothing = postgres::migrate_down(&pg, 1).await.unwrap();
    assert!(nothing.changes.is_empty());

    let r = postgres::migrate_up(&pg).await.unwrap();
    assert_eq!(r.changes.len(), 7);
    let s = postgres::migrate_status(&pg).await.unwrap();
    assert_eq!(applied(&s), all);
    assert!(postgres::seed(&pg).await.unwrap().changes.is_empty());

    // An edited applied migration is caught, by status and by up.
    exec(
        &mut c,
        &format!(
            "UPDATE public._sqlx_migrations SET checksum = '\\x00' WHERE version = {}",
            all[3]
        ),
    )
    .await;
    let s = postgres::migrate_status(&pg).await.unwrap();
    assert!(!s[3].checksum_ok && s.iter().filter(|m| !m.checksum_ok).count() == 1);
    let e = cp_runtime::error::chain(&postgres::migrate_up(&pg).await.unwrap_err());
    assert!(
        e.contains("was changed after it was applied") && e.contains("hint:"),
        "{e}"
    );
}

async fn a_failed_migration_leaves_nothing_and_reruns(pg: PgAccess) {
    seeded(&pg).await;
    postgres::migrate_down(&pg, 5).await.unwrap();
    // Something in the way of migration 3 (people), created after users would be.
    let mut c = admin(&pg).await;
    exec(&mut c, "CREATE TABLE anumate.roles (x int)").await;
    let e = cp_runtime::error::chain(&postgres::migrate_up(&pg).await.unwrap_err());
    assert!(
        e.contains("migration 20261201000300") && e.contains("already exists"),
        "{e}"
    );
    assert!(e.contains("rolled back"), "{e}");
    let s = postgres::migrate_status(&pg).await.unwrap();
    assert_eq!(applied(&s).len(), 2, "{s:?}");
    let users: Option<String> = sqlx::query_scalar("SELECT to_regclass('anumate.users')::text")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(
        users, None,
        "the failed migration's earlier statements were rolled back"
    );
    exec(&mut c, "DROP TABLE anumate.roles").await;
    let r = postgres::migrate_up(&pg).await.unwrap();
    assert_eq!(r.changes.len(), 5, "{:?}", r.changes);
}

async fn schema_matches_the_committed_snapshot(pg: PgAccess) {
    seeded(&pg).await;
    let pg_dump = cp_runtime::exec::find_postgres_binary("pg_dump", "15").expect("pg_dump 15");
    let out = cp_runtime::exec::tokio_command(&pg_dump)
        .args(["--schema-only", "--no-password", "-h"])
        .arg(&pg.endpoint.host)
        .arg("-p")
        .arg(pg.endpoint.port.to_string())
        .args(["-U", "postgres", "-d", &pg.database])
        .env("PGPASSWORD", pg.superuser_password.expose())
        .output()
        .await
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dump = String::from_utf8(out.stdout).unwrap();
    // Version lines and psql's random \restrict key change between builds of the same
    // major version; owners, privileges and policies are kept.
    let mut normal: String = dump
        .lines()
        .filter(|l| {
            !l.starts_with("-- Dumped from")
                && !l.starts_with("-- Dumped by")
                && !l.starts_with("\\restrict")
                && !l.starts_with("\\unrestrict")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    while normal.contains("\n\n\n") {
        normal = normal.replace("\n\n\n", "\n\n");
    }
    cp_testkit::golden("migrations/schema.snapshot.sql", &normal);
}

/// `migrations/privileges.json`, what the database layer expects, is what the
/// migrations alone grant on a fresh database (no repair by the seeder involved).
async fn privileges_match_the_committed_snapshot(pg: PgAccess) {
    let mut r = cp_seed::Report::new("postgres");
    let cat = postgres::layer::observe(&pg, &mut r).await.unwrap();
    let mut plan = postgres::layer::plan(&pg.database, &cat);
    plan.steps
        .retain(|s| s.id.kind == "role" || s.id.kind == "database");
    postgres::layer::apply(&pg, &plan).await.unwrap();
    postgres::migrate_up(&pg).await.unwrap();
    let mut su = superuser(&pg, &pg.database).await;
    let grants = postgres::layer::read_grants(&pg, &mut su, &mut r)
        .await
        .unwrap();
    let fresh = serde_json::to_string_pretty(&grants).unwrap() + "\n";
    // The seeder repairs privileges towards this file (it is compiled in).
    cp_testkit::golden("migrations/privileges.json", &fresh);
    assert!(
        grants
            .iter()
            .any(|g| g.grantee == APP_ROLE && g.object == "table anumate.tenants"),
        "{grants:?}"
    );
}

async fn catalog_every_tenant_table_is_forced_with_full_policies(pg: PgAccess) {
    seeded(&pg).await;
    let mut c = admin(&pg).await;
    let rows = sqlx::query(
        "SELECT n.nspname || '.' || c.relname AS t, c.relrowsecurity, c.relforcerowsecurity,
                pg_get_userbyid(c.relowner)::text AS owner,
                (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid AND p.polcmd = '*'
                   AND pg_get_expr(p.polqual, c.oid) LIKE '%current_setting(''app.current_tenant_id''::text, true)%'
                   AND pg_get_expr(p.polwithcheck, c.oid) LIKE '%current_setting(''app.current_tenant_id''::text, true)%') AS full_policies,
                (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid
                   AND (p.polqual IS NULL OR p.polwithcheck IS NULL)) AS partial_policies,
                EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                        AND a.attnotnull AND a.atttypid = 'uuid'::regtype AND NOT a.attisdropped) AS tenant_col
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('anumate', 'audit', 'events') AND c.relkind IN ('r', 'p')
         ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    let mut tenant_tables = BTreeSet::new();
    for r in &rows {
        let t: String = r.get("t");
        assert!(r.get::<bool, _>("relrowsecurity"), "{t}: RLS enabled");
        assert!(r.get::<bool, _>("relforcerowsecurity"), "{t}: RLS forced");
        assert_eq!(r.get::<String, _>("owner"), ADMIN_ROLE, "{t}: owner");
        assert!(
            r.get::<i64, _>("full_policies") >= 1,
            "{t}: a tenant policy with USING and WITH CHECK"
        );
        assert_eq!(
            r.get::<i64, _>("partial_policies"),
            0,
            "{t}: every policy has USING and WITH CHECK"
        );
        if r.get::<bool, _>("tenant_col") {
            tenant_tables.insert(t);
        } else {
            assert_eq!(
                t, "anumate.tenants",
                "every table but tenants carries tenant_id uuid NOT NULL"
            );
        }
    }
    let listed: BTreeSet<String> = TENANT_TABLES.iter().map(|s| s.to_string()).collect();
    assert_eq!(tenant_tables, listed, "TENANT_TABLES matches the catalog");

    // Views run as the caller; SECURITY DEFINER functions pin search_path.
    let bad_views: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('anumate', 'audit', 'events') AND c.relkind = 'v'
           AND NOT coalesce(c.reloptions @> ARRAY['security_invoker=true'], false)",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert!(
        bad_views.is_empty(),
        "views without security_invoker: {bad_views:?}"
    );
    let bad_functions: Vec<String> = sqlx::query_scalar(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname IN ('anumate', 'audit', 'events', 'public') AND p.prosecdef
           AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert!(
        bad_functions.is_empty(),
        "SECURITY DEFINER without a pinned search_path: {bad_functions:?}"
    );

    // A function a later migration adds is not callable by the app until granted.
    let mut tx = c.begin().await.unwrap();
    sqlx::query("CREATE FUNCTION anumate.probe() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        .execute(&mut *tx)
        .await
        .unwrap();
    let callable: bool = sqlx::query_scalar(
        "SELECT has_function_privilege('anumate_app', 'anumate.probe()', 'EXECUTE')",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert!(!callable, "new functions are not executable by PUBLIC");
    tx.rollback().await.unwrap();

    // The app owns nothing and holds only DML: no TRUNCATE, REFERENCES or TRIGGER.
    let owned: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_class WHERE relowner = 'anumate_app'::regrole)
              + (SELECT count(*) FROM pg_namespace WHERE nspowner = 'anumate_app'::regrole)
              + (SELECT count(*) FROM pg_proc WHERE proowner = 'anumate_app'::regrole)
              + (SELECT count(*) FROM pg_database WHERE datdba = 'anumate_app'::regrole)",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(owned, 0, "anumate_app owns nothing");
    let extra: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname || ' ' || p FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         CROSS JOIN unnest(ARRAY['TRUNCATE', 'REFERENCES', 'TRIGGER']) p
         WHERE n.nspname IN ('anumate', 'audit', 'events', 'public') AND c.relkind IN ('r', 'v', 'p')
           AND (has_table_privilege('anumate_app', c.oid, p) OR has_table_privilege('anumate_readonly', c.oid, p))
         ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert!(
        extra.is_empty(),
        "privileges the app and read-only roles must not have: {extra:?}"
    );
    let writes: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname || ' ' || p FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'DELETE']) p
         WHERE c.relkind IN ('r', 'v', 'p') AND n.nspname IN ('anumate', 'audit', 'events', 'public')
           AND (has_table_privilege('anumate_readonly', c.oid, p) OR has_table_privilege('anumate_backup', c.oid, p)
                OR (has_table_privilege('anumate_app', c.oid, p)
                    AND (n.nspname || '.' || c.relname IN ('anumate.tenants', 'public._sqlx_migrations', 'anumate.run_overview')
                         OR (p <> 'INSERT' AND n.nspname || '.' || c.relname = 'audit.events')
                         OR (p = 'DELETE' AND n.nspname || '.' || c.relname = 'events.outbox'))))
         ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    assert!(
        writes.is_empty(),
        "writes that must not be granted: {writes:?}"
    );

    let roles = sqlx::query(
        "SELECT rolname::text, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication
         FROM pg_roles WHERE rolname LIKE 'anumate\\_%' ORDER BY 1",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    for r in roles {
        let name: String = r.get(0);
        for (i, attr) in ["SUPERUSER", "CREATEROLE", "CREATEDB"].iter().enumerate() {
            assert!(!r.get::<bool, _>(i + 1), "{name} must not have {attr}");
        }
        assert!(!r.get::<bool, _>(5), "{name} must not have REPLICATION");
        assert_eq!(
            r.get::<bool, _>(4),
            name == BACKUP_ROLE,
            "{name}: BYPASSRLS only for backup"
        );
    }
}

// ---------------------------------------------------------------------------------
// Tenants and isolation

/// One tenant's rows, one in every tenant table.
#[derive(Debug, Clone)]
struct Rows {
    id: Uuid,
    user: Uuid,
    email: String,
    team: Uuid,
    capsule: Uuid,
    run: Uuid,
    connector_name: String,
    token: Vec<u8>,
}

/// Creates `slug` (as the admin, like the CLI) and a row in every tenant table (as
/// the application, like the server).
async fn tenant_with_rows(pg: &PgAccess, app: &PgPool, slug: &str) -> Rows {
    let id = Uuid::new_v4();
    assert!(
        postgres::insert_tenant(pg, id, slug, &format!("Tenant {slug}"))
            .await
            .unwrap()
    );
    let mut tx = begin_tenant_tx(app, TenantId(id)).await.unwrap();
    let one = |sql: &'static str| sqlx::query_scalar::<_, Uuid>(sql);
    let email = format!("ops@{slug}.example");
    let user = one("INSERT INTO anumate.users (tenant_id, email) VALUES ($1, $2) RETURNING id")
        .bind(id)
        .bind(&email)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let team = one("INSERT INTO anumate.teams (tenant_id, name) VALUES ($1, 'ops') RETURNING id")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO anumate.team_members (tenant_id, team_id, user_id) VALUES ($1, $2, $3)",
    )
    .bind(id)
    .bind(team)
    .bind(user)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO anumate.roles (tenant_id, name, permissions) VALUES ($1, 'operator', '{run}')",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .unwrap();
    let capsule = one(
        "INSERT INTO anumate.capsules (tenant_id, name, version, created_by) VALUES ($1, 'deploy', 1, $2) RETURNING id",
    )
    .bind(id)
    .bind(user)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let plan =
        one("INSERT INTO anumate.plans (tenant_id, capsule_id) VALUES ($1, $2) RETURNING id")
            .bind(id)
            .bind(capsule)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    let run = one("INSERT INTO anumate.runs (tenant_id, plan_id) VALUES ($1, $2) RETURNING id")
        .bind(id)
        .bind(plan)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO anumate.approvals (tenant_id, run_id, approver_id) VALUES ($1, $2, $3)",
    )
    .bind(id)
    .bind(run)
    .bind(user)
    .execute(&mut *tx)
    .await
    .unwrap();
    let token: Vec<u8> = (0..32u8).map(|i| i ^ slug.as_bytes()[0]).collect();
    sqlx::query(
        "INSERT INTO anumate.capability_tokens (tenant_id, token_sha256, run_id, expires_at)
         VALUES ($1, $2, $3, now() + interval '1 hour')",
    )
    .bind(id)
    .bind(&token)
    .bind(run)
    .execute(&mut *tx)
    .await
    .unwrap();
    let connector_name = format!("github-{slug}");
    sqlx::query("INSERT INTO anumate.connectors (tenant_id, kind, name) VALUES ($1, 'github', $2)")
        .bind(id)
        .bind(&connector_name)
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO audit.events (tenant_id, actor, action) VALUES ($1, 'test', 'tenant.seeded')",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO events.outbox (tenant_id, subject, type, payload) VALUES ($1, 'capsule.created', 'anumate.capsule.created', '{}')",
    )
    .bind(id)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    Rows {
        id,
        user,
        email,
        team,
        capsule,
        run,
        connector_name,
        token,
    }
}

/// Rows of `tenant` in every tenant table, counted by the backup role (which sees all).
async fn rows_of(pg: &PgAccess, tenant: Uuid) -> i64 {
    let mut c = conn_as(pg, BACKUP_ROLE, pg.backup_password.expose(), &pg.database).await;
    let mut n = 0;
    for t in TENANT_TABLES {
        n += sqlx::query_scalar::<_, i64>(AssertSqlSafe(format!(
            "SELECT count(*) FROM {t} WHERE tenant_id = $1"
        )))
        .bind(tenant)
        .fetch_one(&mut c)
        .await
        .unwrap();
    }
    n
}

async fn tenant_registry_insert_find_list_delete(pg: PgAccess) {
    seeded(&pg).await;
    let app = pool_as(&pg, APP_ROLE, pg.app_password.expose()).await;
    let a = tenant_with_rows(&pg, &app, "acme").await;
    let b = tenant_with_rows(&pg, &app, "globex").await;

    assert!(
        !postgres::insert_tenant(&pg, a.id, "acme", "Again")
            .await
            .unwrap(),
        "idempotent"
    );
    let e = postgres::insert_tenant(&pg, Uuid::new_v4(), "acme", "Other")
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains(&format!("`acme` is already taken by tenant {}", a.id)),
        "{e}"
    );
    let e = postgres::insert_tenant(&pg, a.id, "acme-2", "Other")
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("already exists with slug `acme`"),
        "{e}"
    );

    let by_slug = postgres::find_tenant(&pg, "globex").await.unwrap().unwrap();
    assert_eq!((by_slug.id, by_slug.name.as_str()), (b.id, "Tenant globex"));
    let by_id = postgres::find_tenant(&pg, &a.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_id.slug, "acme");
    assert_eq!(postgres::find_tenant(&pg, "initech").await.unwrap(), None);
    let slugs: Vec<String> = postgres::list_tenants(&pg)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.slug)
        .collect();
    assert_eq!(slugs, ["acme", "globex"]);

    let before = rows_of(&pg, a.id).await;
    assert_eq!(
        before,
        TENANT_TABLES.len() as i64,
        "one row per tenant table"
    );
    let removed = postgres::delete_tenant_rows(&pg, a.id).await.unwrap();
    assert_eq!(
        removed,
        before as u64 + 1,
        "every row plus the tenant's own"
    );
    assert_eq!(rows_of(&pg, a.id).await, 0);
    assert_eq!(
        rows_of(&pg, b.id).await,
        TENANT_TABLES.len() as i64,
        "the other tenant is untouched"
    );
    assert_eq!(postgres::find_tenant(&pg, "acme").await.unwrap(), None);
    assert_eq!(postgres::delete_tenant_rows(&pg, a.id).await.unwrap(), 0);
}

async fn readonly_and_backup_roles(pg: PgAccess) {
    seeded(&pg).await;
    let app = pool_as(&pg, APP_ROLE, pg.app_password.expose()).await;
    let a = tenant_with_rows(&pg, &app, "ro-a").await;
    tenant_with_rows(&pg, &app, "ro-b").await;

    let ro = pool_as(&pg, READONLY_ROLE, pg.readonly_password.expose()).await;
    let mut tx = ro.begin().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM anumate.users")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 0, "read-only without a tenant sees nothing");
    drop(tx);
    let mut tx = begin_tenant_tx(&ro, TenantId(a.id)).await.unwrap();
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT tenant_id FROM anumate.users")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(ids, [a.id], "read-only is subject to RLS");
    let e =
        sqlx::query("INSERT INTO audit.events (tenant_id, actor, action) VALUES ($1, 'x', 'y')")
            .bind(a.id)
            .execute(&mut *tx)
            .await
            .unwrap_err();
    assert_eq!(sqlstate(&e).as_deref(), Some("42501"), "{e}");
    drop(tx);

    let mut bk = conn_as(&pg, BACKUP_ROLE, pg.backup_password.expose(), &pg.database).await;
    let n: i64 = sqlx::query_scalar("SELECT count(DISTINCT tenant_id) FROM audit.events")
        .fetch_one(&mut bk)
        .await
        .unwrap();
    assert_eq!(n, 2, "backup bypasses RLS and sees every tenant");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM public._sqlx_migrations")
        .fetch_one(&mut bk)
        .await
        .unwrap();
    assert_eq!(n, 7, "backup reads the migrations table too");
    let e = sqlx::query("DELETE FROM anumate.connectors")
        .execute(&mut bk)
        .await
        .unwrap_err();
    assert_eq!(
        sqlstate(&e).as_deref(),
        Some("42501"),
        "backup is read-only: {e}"
    );
}

/// Seed 000's "RLS Policies" and "RLS not working" SQL, verbatim, in plain sessions
/// (the way `psql -U anumate_admin -d anumate` or the app's own pool opens them): the
/// roles' `search_path` finds `users` in schema `anumate`, and RLS filters by the
/// session's tenant for the app, the read-only role and the admin (FORCE RLS).
async fn seed_000_sql_examples_run_as_written(pg: PgAccess) {
    seeded(&pg).await;
    let app = pool_as(&pg, APP_ROLE, pg.app_password.expose()).await;
    let a = tenant_with_rows(&pg, &app, "s0-a").await;
    tenant_with_rows(&pg, &app, "s0-b").await;
    for (role, password) in [
        (APP_ROLE, pg.app_password.expose()),
        (ADMIN_ROLE, pg.admin_password.expose()),
        (READONLY_ROLE, pg.readonly_password.expose()),
    ] {
        let mut c = conn_as(&pg, role, password, &pg.database).await;
        let path: String = sqlx::query_scalar("SHOW search_path")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(path, "anumate, audit, events, public", "{role}");
        exec(&mut c, &format!("SET app.current_tenant_id = '{}';", a.id)).await;
        let rows = sqlx::query("SELECT * FROM users; -- Only returns users for current tenant")
            .fetch_all(&mut c)
            .await
            .unwrap_or_else(|e| panic!("SELECT * FROM users as {role}: {e}"));
        let tenants: Vec<Uuid> = rows.iter().map(|r| r.get("tenant_id")).collect();
        assert_eq!(
            tenants,
            [a.id],
            "{role} sees exactly the session tenant's users"
        );
        let set: Option<String> =
            sqlx::query_scalar("SELECT current_setting('app.current_tenant_id', true);")
                .fetch_one(&mut c)
                .await
                .unwrap();
        assert_eq!(set, Some(a.id.to_string()), "{role}");
        let policies: i64 = sqlx::query("SELECT * FROM pg_policies WHERE tablename = 'users';")
            .fetch_all(&mut c)
            .await
            .unwrap()
            .len() as i64;
        assert!(policies > 0, "{role} sees the policies on users");
        c.close().await.unwrap();
    }
}

async fn errors_say_what_to_do_and_never_the_password(pg: PgAccess) {
    seeded(&pg).await;
    let missing = PgAccess {
        database: "t_never_created".into(),
        ..pg.clone()
    };
    let e = cp_runtime::error::chain(&postgres::migrate_status(&missing).await.unwrap_err());
    assert!(
        e.contains("does not exist") && e.contains("run `controlplane seed`"),
        "{e}"
    );
    let wrong = PgAccess {
        admin_password: cp_runtime::secrets::Secret::new("wrong-Pa55word"),
        ..pg.clone()
    };
    let e = cp_runtime::error::chain(&postgres::list_tenants(&wrong).await.unwrap_err());
    assert!(
        e.contains("rejected the password of role `anumate_admin`")
            && e.contains("services.postgres.admin_password")
            && !e.contains("wrong-Pa55word"),
        "{e}"
    );
    let closed = PgAccess {
        endpoint: Endpoint::local(cp_testkit::free_port()),
        ..pg.clone()
    };
    let e = cp_runtime::error::chain(&postgres::seed(&closed).await.unwrap_err());
    assert!(
        e.contains("cannot reach PostgreSQL") && e.contains("controlplane up"),
        "{e}"
    );
    postgres::migrate_down(&pg, 7).await.unwrap();
    let e = cp_runtime::error::chain(
        &postgres::insert_tenant(&pg, Uuid::new_v4(), "x", "X")
            .await
            .unwrap_err(),
    );
    assert!(e.contains("migrate up"), "{e}");
}

async fn scram_verifiers_agree_with_the_server(pg: PgAccess) {
    seeded(&pg).await;
    let mut su = superuser(&pg, "postgres").await;
    // A verifier the server made (from a non-ASCII password, through SASLprep) ...
    exec(&mut su, "SET password_encryption = 'scram-sha-256'").await;
    exec(
        &mut su,
        "CREATE ROLE scram_probe LOGIN PASSWORD 'pässwörd ﬁ'",
    )
    .await;
    let stored: String =
        sqlx::query_scalar("SELECT rolpassword FROM pg_authid WHERE rolname = 'scram_probe'")
            .fetch_one(&mut su)
            .await
            .unwrap();
    let ok = postgres::scram::verify(&stored, "pässwörd ﬁ");
    let wrong = postgres::scram::verify(&stored, "pässwörd fi!");
    // ... and one we made, which the server accepts at login.
    let mine = postgres::scram::verifier("ünïcode ﬁ pw");
    exec(
        &mut su,
        &format!("ALTER ROLE scram_probe PASSWORD '{mine}'"),
    )
    .await;
    let login = PgConnection::connect_with(&connect_options(
        &pg,
        "scram_probe",
        "ünïcode ﬁ pw",
        "postgres",
    ))
    .await;
    exec(&mut su, "DROP ROLE scram_probe").await;
    assert!(ok, "our check accepts the server's verifier");
    assert!(!wrong, "and rejects another password");
    login.expect("the server accepts our verifier");
}

fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// What the isolation cases get: tenant A (whose transactions they run in) and the
/// ids of tenant B's rows they try to reach.
struct Fx {
    pg: PgAccess,
    app: PgPool,
    a: Rows,
    b: Rows,
}

type CaseResult = Result<(), String>;
type Case = for<'a> fn(&'a Fx) -> BoxFut<'a, CaseResult>;

trait Ctx<T> {
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T> Ctx<T> for Result<T, sqlx::Error> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

/// `r` failed with SQLSTATE `code`.
fn denied<T: std::fmt::Debug>(r: Result<T, sqlx::Error>, code: &str, what: &str) -> CaseResult {
    match r {
        Ok(v) => Err(format!(
            "{what}: expected SQLSTATE {code}, but it succeeded: {v:?}"
        )),
        Err(e) if sqlstate(&e).as_deref() == Some(code) => Ok(()),
        Err(e) => Err(format!("{what}: expected SQLSTATE {code}, got {e}")),
    }
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> CaseResult {
    if cond { Ok(()) } else { Err(msg()) }
}

const PRIVILEGE: &str = "42501";
const RLS_VIOLATION: &str = "42501";

async fn scalar_i64(tx: &mut PgConnection, sql: &'static str, bind: Uuid) -> Result<i64, String> {
    sqlx::query_scalar(sql)
        .bind(bind)
        .fetch_one(tx)
        .await
        .ctx(sql)
}

/// Named isolation cases: each runs as anumate_app in its own transaction (bound to
/// tenant A unless the case says otherwise), rolled back at the end.
const CASES: &[(&str, Case)] = &[
    ("select_by_other_tenant_id_finds_nothing", |fx| {
        Box::pin(async move {
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            for t in TENANT_TABLES {
                let sql = format!("SELECT count(*) FROM {t} WHERE tenant_id = $1");
                let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql.clone()))
                    .bind(fx.b.id)
                    .fetch_one(&mut *tx)
                    .await
                    .ctx(&sql)?;
                ensure(n == 0, || format!("{t}: {n} of B's rows visible"))?;
            }
            Ok(())
        })
    }),
    ("count_star_counts_only_own_rows", |fx| {
        Box::pin(async move {
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            for t in TENANT_TABLES
                .iter()
                .chain(&["anumate.tenants", "anumate.run_overview"])
            {
                let sql = format!("SELECT count(*) FROM {t}");
                let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql.clone()))
                    .fetch_one(&mut *tx)
                    .await
                    .ctx(&sql)?;
                ensure(n == 1, || {
                    format!("{t}: count(*) = {n}, expected A's single row")
                })?;
            }
            Ok(())
        })
    }),
    ("tenants_table_shows_only_own_row_and_is_read_only", |fx| {
        Box::pin(async move {
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM anumate.tenants")
                .fetch_all(&mut *tx)
                .await
                .ctx("select")?;
            ensure(ids == [fx.a.id], || format!("tenants visible: {ids:?}"))?;
            denied(sqlx::query("INSERT INTO anumate.tenants (id, slug, name) VALUES (gen_random_uuid(), 'x', 'x')").execute(&mut *tx).await, PRIVILEGE, "insert tenant")
        })
    }),
    ("insert_with_other_tenant_id_is_rejected", |fx| {
        Box::pin(async move {
            for (sql, what) in [
                (
                    "INSERT INTO anumate.users (tenant_id, email) VALUES ($1, 'x@y')",
                    "users",
                ),
                (
                    "INSERT INTO anumate.connectors (tenant_id, kind, name) VALUES ($1, 'k', 'n')",
                    "connectors",
                ),
                (
                    "INSERT INTO audit.events (tenant_id, actor, action) VALUES ($1, 'a', 'b')",
                    "audit.events",
                ),
                (
                    "INSERT INTO events.outbox (tenant_id, subject, type, payload) VALUES ($1, 's', 't', '{}')",
                    "events.outbox",
                ),
            ] {
                let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                    .await
                    .ctx("begin")?;
                denied(
                    sqlx::query(sql).bind(fx.b.id).execute(&mut *tx).await,
                    RLS_VIOLATION,
                    what,
                )?;
            }
            Ok(())
        })
    }),
    ("update_cannot_reach_other_rows", |fx| {
        Box::pin(async move {
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            let n = sqlx::query("UPDATE anumate.users SET display_name = 'pwned' WHERE id = $1")
                .bind(fx.b.user)
                .execute(&mut *tx)
                .await
                .ctx("update by id")?
                .rows_affected();
            ensure(n == 0, || format!("updated {n} of B's users"))?;
            let n = sqlx::query("UPDATE anumate.runs SET status = 'cancelled'")
                .execute(&mut *tx)
                .await
                .ctx("update all")?
                .rows_affected();
            ensure(n == 1, || {
                format!("an unqualified UPDATE touched {n} runs, expected A's one")
            })
        })
    }),
    ("update_cannot_move_a_row_to_another_tenant", |fx| {
        Box::pin(async move {
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            denied(
                sqlx::query("UPDATE anumate.connectors SET tenant_id = $1")
                    .bind(fx.b.id)
                    .execute(&mut *tx)
                    .await,
                RLS_VIOLATION,
                "move connector",
            )
        })
    }),
    ("delete_cannot_reach_other_rows", |fx| {
        Box::pin(async move {
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            let n = sqlx::query("DELETE FROM anumate.connectors WHERE tenant_id = $1")
                .bind(fx.b.id)
                .execute(&mut *tx)
                .await
                .ctx("delete")?
                .rows_affected();
            ensure(n == 0, || format!("deleted {n} of B's connectors"))?;
            let n = sqlx::query("DELETE FROM anumate.users")
                .execute(&mut *tx)
                .await
                .ctx("delete all")?
                .rows_affected();
            ensure(n == 1, || {
                format!("an unqualified DELETE removed {n} users, expected A's one")
            })
        })
    }),
    ("upsert_on_other_tenants_key_inserts_or_is_rejected", |fx| {
        Box::pin(async move {
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            // B's id under A's tenant is a new key: no conflict, B's row untouched.
            let inserted: Option<bool> = sqlx::query_scalar(
                "INSERT INTO anumate.users (tenant_id, id, email) VALUES ($1, $2, $3)
             ON CONFLICT (tenant_id, id) DO UPDATE SET display_name = 'pwned' RETURNING (xmax = 0)",
            )
            .bind(fx.a.id)
            .bind(fx.b.user)
            .bind(&fx.b.email)
            .fetch_optional(&mut *tx)
            .await
            .ctx("upsert")?;
            ensure(inserted == Some(true), || {
                format!("upsert with B's key did not insert: {inserted:?}")
            })?;
            denied(
                sqlx::query(
                    "INSERT INTO anumate.users (tenant_id, id, email) VALUES ($1, $2, 'x@y')
             ON CONFLICT (tenant_id, id) DO UPDATE SET display_name = 'pwned'",
                )
                .bind(fx.b.id)
                .bind(fx.b.user)
                .execute(&mut *tx)
                .await,
                RLS_VIOLATION,
                "upsert into B",
            )
        })
    }),
    ("copy_to_exports_only_own_rows", |fx| {
        Box::pin(async move {
            let mut c = fx.app.acquire().await.ctx("acquire")?;
            let mut tx = c.begin().await.ctx("begin")?;
            sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
                .bind(fx.a.id.to_string())
                .execute(&mut *tx)
                .await
                .ctx("set")?;
            for stmt in [
                "COPY anumate.users TO STDOUT",
                "COPY (SELECT * FROM anumate.capsules) TO STDOUT",
            ] {
                use futures::TryStreamExt;
                let chunks: Vec<_> = tx
                    .copy_out_raw(stmt)
                    .await
                    .ctx(stmt)?
                    .try_collect()
                    .await
                    .ctx(stmt)?;
                let text: String = chunks
                    .iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect();
                ensure(!text.contains(&fx.b.id.to_string()), || {
                    format!("{stmt} exported B's rows")
                })?;
                ensure(text.contains(&fx.a.id.to_string()), || {
                    format!("{stmt} did not export A's rows")
                })?;
            }
            Ok(())
        })
    }),
    ("copy_from_is_refused_under_rls", |fx| {
        Box::pin(async move {
            let mut c = fx.app.acquire().await.ctx("acquire")?;
            let mut tx = c.begin().await.ctx("begin")?;
            sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
                .bind(fx.a.id.to_string())
                .execute(&mut *tx)
                .await
                .ctx("set")?;
            let r = async {
                let mut copy = tx
                    .copy_in_raw("COPY anumate.users (tenant_id, email) FROM STDIN")
                    .await?;
                copy.send(format!("{}\tcopied@b\n", fx.b.id).into_bytes())
                    .await?;
                copy.finish().await
            }
            .await;
            // PostgreSQL refuses COPY FROM into any table with row-level security.
            denied(r, "0A000", "COPY FROM with B's id")
        })
    }),
    ("join_reaches_no_other_rows", |fx| {
        Box::pin(async move {
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            let n = scalar_i64(&mut tx, "SELECT count(*) FROM anumate.runs r JOIN anumate.plans p ON p.id = r.plan_id
                                    JOIN anumate.users u ON true WHERE u.tenant_id = $1 OR p.tenant_id = $1", fx.b.id).await?;
            ensure(n == 0, || format!("join reached {n} of B's rows"))
        })
    }),
    ("subquery_reaches_no_other_rows", |fx| {
        Box::pin(async move {
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            let (exists, email): (bool, Option<String>) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM anumate.users WHERE id = $1), (SELECT email FROM anumate.users WHERE id = $1)")
            .bind(fx.b.user).fetch_one(&mut *tx).await.ctx("subquery")?;
            ensure(!exists && email.is_none(), || {
                format!("subquery saw B's user: {exists} {email:?}")
            })
        })
    }),
    ("cte_including_data_modifying_reaches_no_other_rows", |fx| {
        Box::pin(async move {
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            let n = scalar_i64(&mut tx, "WITH x AS (SELECT * FROM anumate.plans) SELECT count(*) FROM x WHERE tenant_id = $1", fx.b.id).await?;
            ensure(n == 0, || format!("CTE saw {n} of B's plans"))?;
            let n = scalar_i64(&mut tx, "WITH d AS (DELETE FROM anumate.plans WHERE tenant_id = $1 RETURNING 1) SELECT count(*) FROM d", fx.b.id).await?;
            ensure(n == 0, || {
                format!("data-modifying CTE deleted {n} of B's plans")
            })
        })
    }),
    ("returning_returns_no_other_rows", |fx| {
        Box::pin(async move {
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            let ids: Vec<Uuid> =
                sqlx::query_scalar("UPDATE anumate.teams SET name = name RETURNING tenant_id")
                    .fetch_all(&mut *tx)
                    .await
                    .ctx("update returning")?;
            ensure(ids == [fx.a.id], || {
                format!("UPDATE RETURNING gave {ids:?}")
            })?;
            let ids: Vec<Uuid> =
                sqlx::query_scalar("DELETE FROM anumate.teams WHERE id = $1 RETURNING tenant_id")
                    .bind(fx.b.team)
                    .fetch_all(&mut *tx)
                    .await
                    .ctx("delete returning")?;
            ensure(ids.is_empty(), || format!("DELETE RETURNING gave {ids:?}"))
        })
    }),
    ("view_shows_only_own_rows", |fx| {
        Box::pin(async move {
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            let runs: Vec<Uuid> = sqlx::query_scalar("SELECT run_id FROM anumate.run_overview")
                .fetch_all(&mut *tx)
                .await
                .ctx("view")?;
            ensure(runs == [fx.a.run], || format!("run_overview gave {runs:?}"))
        })
    }),
    ("functions_running_sql_see_only_own_rows", |fx| {
        Box::pin(async move {
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            let xml: String = sqlx::query_scalar(
                "SELECT query_to_xml('SELECT tenant_id FROM anumate.users', true, false, '')::text",
            )
            .fetch_one(&mut *tx)
            .await
            .ctx("query_to_xml")?;
            ensure(
                !xml.contains(&fx.b.id.to_string()) && xml.contains(&fx.a.id.to_string()),
                || format!("query_to_xml: {xml}"),
            )?;
            let r = sqlx::raw_sql(AssertSqlSafe(format!(
            "DO $$ DECLARE n bigint; BEGIN EXECUTE 'SELECT count(*) FROM anumate.users WHERE tenant_id = ''{}''' INTO n;
             IF n > 0 THEN RAISE EXCEPTION 'leak: %', n; END IF; END $$", fx.b.id)))
            .execute(&mut *tx).await;
            r.map(|_| ()).ctx("plpgsql EXECUTE")
        })
    }),
    (
        "foreign_key_to_other_tenants_row_fails_like_a_missing_row",
        |fx| {
            Box::pin(async move {
                let probe = |target: Uuid| async move {
                    let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                        .await
                        .ctx("begin")?;
                    match sqlx::query(
                        "INSERT INTO anumate.plans (tenant_id, capsule_id) VALUES ($1, $2)",
                    )
                    .bind(fx.a.id)
                    .bind(target)
                    .execute(&mut *tx)
                    .await
                    {
                        Ok(_) => Err(format!("plan referencing {target} was accepted")),
                        Err(e) => Ok((
                            sqlstate(&e),
                            e.to_string().replace(&target.to_string(), "<id>"),
                        )),
                    }
                };
                let other = probe(fx.b.capsule).await?;
                let missing = probe(Uuid::new_v4()).await?;
                ensure(other.0.as_deref() == Some("23503"), || {
                    format!("expected a foreign key violation: {other:?}")
                })?;
                ensure(other == missing, || {
                    format!(
                        "B's row answers differently from a missing one:\n  {other:?}\n  {missing:?}"
                    )
                })
            })
        },
    ),
    ("unique_values_of_other_tenants_do_not_conflict", |fx| {
        Box::pin(async move {
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            let n = sqlx::query("INSERT INTO anumate.users (tenant_id, email) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(fx.a.id).bind(&fx.b.email).execute(&mut *tx).await.ctx("user with B's email")?.rows_affected();
            ensure(n == 1, || "B's email conflicted".into())?;
            sqlx::query(
                "INSERT INTO anumate.connectors (tenant_id, kind, name) VALUES ($1, 'k', $2)",
            )
            .bind(fx.a.id)
            .bind(&fx.b.connector_name)
            .execute(&mut *tx)
            .await
            .ctx("connector with B's name")?;
            sqlx::query("INSERT INTO anumate.capability_tokens (tenant_id, token_sha256, expires_at) VALUES ($1, $2, now())")
            .bind(fx.a.id).bind(&fx.b.token).execute(&mut *tx).await.ctx("token with B's hash")?;
            Ok(())
        })
    }),
    ("row_locks_reach_no_other_rows", |fx| {
        Box::pin(async move {
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            let n: Vec<Uuid> =
                sqlx::query_scalar("SELECT id FROM anumate.runs WHERE id = $1 FOR UPDATE")
                    .bind(fx.b.run)
                    .fetch_all(&mut *tx)
                    .await
                    .ctx("for update")?;
            ensure(n.is_empty(), || "locked B's run".into())
        })
    }),
    ("no_tenant_set_sees_nothing_and_cannot_insert", |fx| {
        Box::pin(async move {
            let mut tx = fx.app.begin().await.ctx("begin")?;
            for t in TENANT_TABLES.iter().chain(&["anumate.tenants"]) {
                let sql = format!("SELECT count(*) FROM {t}");
                let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql.clone()))
                    .fetch_one(&mut *tx)
                    .await
                    .ctx(&sql)?;
                ensure(n == 0, || format!("{t}: {n} rows visible without a tenant"))?;
            }
            denied(
                sqlx::query(
                    "INSERT INTO audit.events (tenant_id, actor, action) VALUES ($1, 'a', 'b')",
                )
                .bind(fx.a.id)
                .execute(&mut *tx)
                .await,
                RLS_VIOLATION,
                "insert without a tenant",
            )
        })
    }),
    ("empty_tenant_sees_nothing_and_cannot_insert", |fx| {
        Box::pin(async move {
            let mut tx = fx.app.begin().await.ctx("begin")?;
            sqlx::query("SELECT set_config('app.current_tenant_id', '', true)")
                .execute(&mut *tx)
                .await
                .ctx("set empty")?;
            let n = scalar_i64(
                &mut tx,
                "SELECT count(*) FROM anumate.users WHERE tenant_id <> $1 OR true",
                fx.a.id,
            )
            .await?;
            ensure(n == 0, || format!("{n} users visible with an empty tenant"))?;
            denied(
                sqlx::query("INSERT INTO anumate.users (tenant_id, email) VALUES ($1, 'e@x')")
                    .bind(fx.a.id)
                    .execute(&mut *tx)
                    .await,
                RLS_VIOLATION,
                "insert with an empty tenant",
            )
        })
    }),
    (
        "tenant_setting_does_not_leak_to_the_next_transaction",
        |fx| {
            Box::pin(async move {
                let mut c = PgConnection::connect_with(&connect_options(
                    &fx.pg,
                    APP_ROLE,
                    fx.pg.app_password.expose(),
                    &fx.pg.database,
                ))
                .await
                .ctx("connect")?;
                let mut tx = c.begin().await.ctx("begin")?;
                sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
                    .bind(fx.a.id.to_string())
                    .execute(&mut *tx)
                    .await
                    .ctx("set")?;
                let n: i64 = sqlx::query_scalar("SELECT count(*) FROM anumate.users")
                    .fetch_one(&mut *tx)
                    .await
                    .ctx("count")?;
                ensure(n == 1, || format!("with A set: {n}"))?;
                tx.commit().await.ctx("commit")?;
                let (n, setting): (i64, Option<String>) = sqlx::query_as("SELECT (SELECT count(*) FROM anumate.users), current_setting('app.current_tenant_id', true)")
            .fetch_one(&mut c).await.ctx("after commit")?;
                ensure(
                    n == 0 && setting.as_deref().unwrap_or("").is_empty(),
                    || format!("after commit: {n} rows, setting {setting:?}"),
                )
            })
        },
    ),
    ("row_security_off_errors_instead_of_bypassing", |fx| {
        Box::pin(async move {
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            sqlx::query("SET LOCAL row_security = off")
                .execute(&mut *tx)
                .await
                .ctx("set row_security")?;
            denied(
                sqlx::query("SELECT count(*) FROM anumate.users")
                    .fetch_one(&mut *tx)
                    .await,
                PRIVILEGE,
                "select with row_security off",
            )
        })
    }),
    ("cannot_disable_rls", |fx| {
        Box::pin(async move {
            let mut tx = fx.app.begin().await.ctx("begin")?;
            denied(
                sqlx::query("ALTER TABLE anumate.users DISABLE ROW LEVEL SECURITY")
                    .execute(&mut *tx)
                    .await,
                PRIVILEGE,
                "disable RLS",
            )
        })
    }),
    ("cannot_unforce_rls", |fx| {
        Box::pin(async move {
            let mut tx = fx.app.begin().await.ctx("begin")?;
            denied(
                sqlx::query("ALTER TABLE anumate.users NO FORCE ROW LEVEL SECURITY")
                    .execute(&mut *tx)
                    .await,
                PRIVILEGE,
                "no force RLS",
            )
        })
    }),
    ("cannot_drop_or_create_policies", |fx| {
        Box::pin(async move {
            let mut tx = fx.app.begin().await.ctx("begin")?;
            denied(
                sqlx::query("DROP POLICY tenant_isolation ON anumate.users")
                    .execute(&mut *tx)
                    .await,
                PRIVILEGE,
                "drop policy",
            )?;
            let mut tx = fx.app.begin().await.ctx("begin")?;
            denied(
                sqlx::query("CREATE POLICY open ON anumate.users USING (true)")
                    .execute(&mut *tx)
                    .await,
                PRIVILEGE,
                "create policy",
            )
        })
    }),
    ("cannot_become_the_admin", |fx| {
        Box::pin(async move {
            let mut tx = fx.app.begin().await.ctx("begin")?;
            denied(
                sqlx::query("SET ROLE anumate_admin")
                    .execute(&mut *tx)
                    .await,
                PRIVILEGE,
                "SET ROLE",
            )?;
            let mut tx = fx.app.begin().await.ctx("begin")?;
            denied(
                sqlx::query("SET SESSION AUTHORIZATION anumate_admin")
                    .execute(&mut *tx)
                    .await,
                PRIVILEGE,
                "SET SESSION AUTHORIZATION",
            )
        })
    }),
    ("cannot_truncate", |fx| {
        Box::pin(async move {
            for t in ["anumate.users", "audit.events", "events.outbox"] {
                let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                    .await
                    .ctx("begin")?;
                denied(
                    sqlx::query(AssertSqlSafe(format!("TRUNCATE {t}")))
                        .execute(&mut *tx)
                        .await,
                    PRIVILEGE,
                    t,
                )?;
            }
            Ok(())
        })
    }),
    ("cannot_create_tables_anywhere", |fx| {
        Box::pin(async move {
            for sql in [
                "CREATE TABLE public.x (i int)",
                "CREATE TABLE anumate.x (i int)",
                "CREATE TEMP TABLE x (i int)",
                "CREATE SCHEMA mine",
            ] {
                let mut tx = fx.app.begin().await.ctx("begin")?;
                denied(sqlx::query(sql).execute(&mut *tx).await, PRIVILEGE, sql)?;
            }
            Ok(())
        })
    }),
    ("audit_events_are_append_only", |fx| {
        Box::pin(async move {
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            sqlx::query(
                "INSERT INTO audit.events (tenant_id, actor, action) VALUES ($1, 'a', 'b')",
            )
            .bind(fx.a.id)
            .execute(&mut *tx)
            .await
            .ctx("append")?;
            denied(
                sqlx::query("UPDATE audit.events SET action = 'forged'")
                    .execute(&mut *tx)
                    .await,
                PRIVILEGE,
                "update audit",
            )?;
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            denied(
                sqlx::query("DELETE FROM audit.events")
                    .execute(&mut *tx)
                    .await,
                PRIVILEGE,
                "delete audit",
            )
        })
    }),
    ("cannot_read_the_migrations_table", |fx| {
        Box::pin(async move {
            let mut tx = fx.app.begin().await.ctx("begin")?;
            denied(
                sqlx::query("SELECT * FROM public._sqlx_migrations")
                    .fetch_all(&mut *tx)
                    .await,
                PRIVILEGE,
                "read migrations",
            )
        })
    }),
    ("error_side_channel_sees_no_other_rows", |fx| {
        Box::pin(async move {
            // Policies filter before the query's own (non-leakproof) conditions run,
            // so a condition that fails on B's rows never sees one. The backup role,
            // which bypasses RLS, shows the probe would notice.
            const PROBE: &str = "SELECT count(*) FROM anumate.users
                                 WHERE 1 / (CASE WHEN tenant_id = $1 THEN 0 ELSE 1 END) = 1";
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            scalar_i64(&mut tx, PROBE, fx.b.id).await?;
            let mut backup = PgConnection::connect_with(&connect_options(
                &fx.pg,
                BACKUP_ROLE,
                fx.pg.backup_password.expose(),
                &fx.pg.database,
            ))
            .await
            .ctx("connect as backup")?;
            denied(
                sqlx::query_scalar::<_, i64>(PROBE)
                    .bind(fx.b.id)
                    .fetch_one(&mut backup)
                    .await,
                "22012",
                "the probe as the backup role",
            )
        })
    }),
    ("planner_statistics_do_not_leak_other_rows", |fx| {
        Box::pin(async move {
            // ANALYZE samples every tenant's rows; pg_stats must not show them to
            // a role under row-level security.
            let mut admin = PgConnection::connect_with(&connect_options(
                &fx.pg,
                ADMIN_ROLE,
                fx.pg.admin_password.expose(),
                &fx.pg.database,
            ))
            .await
            .ctx("connect as admin")?;
            sqlx::query("ANALYZE anumate.users")
                .execute(&mut admin)
                .await
                .ctx("analyze")?;
            let mut tx = begin_tenant_tx(&fx.app, TenantId(fx.a.id))
                .await
                .ctx("begin")?;
            let vals: Vec<Option<String>> = sqlx::query_scalar(
                "SELECT most_common_vals::text FROM pg_stats WHERE schemaname = 'anumate' AND tablename = 'users'",
            )
            .fetch_all(&mut *tx)
            .await
            .ctx("pg_stats")?;
            let seen = vals.iter().flatten().any(|v| v.contains(&fx.b.email));
            ensure(vals.is_empty() && !seen, || {
                format!("pg_stats shows users' statistics to the app: {vals:?}")
            })?;
            // Control: the statistics exist (the backup role, bypassing RLS, sees them).
            let mut backup = PgConnection::connect_with(&connect_options(
                &fx.pg,
                BACKUP_ROLE,
                fx.pg.backup_password.expose(),
                &fx.pg.database,
            ))
            .await
            .ctx("connect as backup")?;
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stats WHERE schemaname = 'anumate' AND tablename = 'users'",
            )
            .fetch_one(&mut backup)
            .await
            .ctx("pg_stats as backup")?;
            ensure(n > 0, || "ANALYZE left no statistics to probe".into())
        })
    }),
];

async fn isolation_as_the_app_role(pg: PgAccess) {
    seeded(&pg).await;
    let app = pool_as(&pg, APP_ROLE, pg.app_password.expose()).await;
    let a = tenant_with_rows(&pg, &app, "alpha").await;
    let b = tenant_with_rows(&pg, &app, "bravo").await;
    let fx = Fx { pg, app, a, b };
    let mut failures = Vec::new();
    for (name, case) in CASES {
        match case(&fx).await {
            Ok(()) => println!("  isolation {name} ... ok"),
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    // Nothing any case did survived: B still has exactly its rows.
    assert_eq!(rows_of(&fx.pg, fx.b.id).await, TENANT_TABLES.len() as i64);
    assert!(CASES.len() >= 25);
    assert!(
        failures.is_empty(),
        "{} of {} isolation cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}
