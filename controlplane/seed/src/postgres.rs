//! PostgreSQL seeding: the platform's roles (with the attributes and memberships that
//! make row-level security hold), the database and its privileges, the embedded sqlx
//! migrations from `migrations/` (run as the admin role, so it owns everything), the
//! tenant registry the control plane manages, and [`begin_tenant_tx`], the only way the
//! application binds a transaction to a tenant.
//!
//! Every step observes the catalog first and writes only what differs, so a second
//! `seed` reports no changes. Passwords never travel or get logged in clear: roles get
//! a SCRAM-SHA-256 verifier computed here ([`scram`]), and an existing verifier is
//! checked against the configured password locally.

pub mod apps;
pub mod layer;
pub mod scram;

use std::collections::BTreeMap;
use std::fmt;

use sqlx::migrate::{Migrate, MigrateError, Migration, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Postgres, Row, Transaction};

use crate::{PgAccess, Report, Secret, SeedError, SeedErrorKind};

/// The migrations, embedded at build time so the binary carries them.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Where sqlx records applied migrations.
pub const MIGRATIONS_TABLE: &str = "public._sqlx_migrations";

pub use cp_core::roles::{
    ADMIN as ADMIN_ROLE, APP as APP_ROLE, BACKUP as BACKUP_ROLE, READONLY as READONLY_ROLE,
};

/// The setting the policies read; set per transaction by [`begin_tenant_tx`].
pub const TENANT_SETTING: &str = "app.current_tenant_id";

/// Tables holding rows of a tenant, deleted children first by
/// [`delete_tenant_rows`]. A test checks this list against the catalog.
pub const TENANT_TABLES: &[&str] = &[
    "anumate.approvals",
    "anumate.capability_tokens",
    "anumate.runs",
    "anumate.plans",
    "anumate.capsules",
    "anumate.team_members",
    "anumate.teams",
    "anumate.roles",
    "anumate.users",
    "anumate.connectors",
    "audit.events",
    "events.outbox",
];

const SERVICE: &str = "postgres";

/// A tenant's id, as the application binds transactions to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantId(pub uuid::Uuid);

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<uuid::Uuid> for TenantId {
    fn from(id: uuid::Uuid) -> Self {
        Self(id)
    }
}

/// One row of `anumate.tenants`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TenantRow {
    /// The tenant id.
    pub id: uuid::Uuid,
    /// Unique, human-friendly name.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// When the row was created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// One embedded migration and whether the database has it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationStatus {
    /// The version (the file name's prefix).
    pub version: i64,
    /// The description (the file name's rest).
    pub description: String,
    /// Whether it is applied.
    pub applied: bool,
    /// False when the applied migration's checksum differs from the embedded file
    /// (someone edited an applied migration), or when the database has a migration
    /// this binary does not know. True for migrations not applied.
    pub checksum_ok: bool,
}

fn setting(role: &str) -> &'static str {
    PgAccess::setting(role).path()
}

/// Double-quotes an identifier.
fn ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Single-quotes a literal (standard_conforming_strings is on since PostgreSQL 9.1).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Connection options for `user` on `database`. Ignores `PG*` environment variables
/// and `.pgpass`: what is configured is what is used.
pub fn connect_options(
    pg: &PgAccess,
    user: &str,
    password: &str,
    database: &str,
) -> PgConnectOptions {
    // verify-full against the environment's CA when the endpoint has TLS.
    pg.endpoint
        .pg_options()
        .username(user)
        .password(password)
        .database(database)
        .application_name("controlplane")
}

/// Turns a sqlx error into a [`SeedError`] saying what was being done and what to do.
fn db_error(doing: &str, who: &str, pg: &PgAccess, e: sqlx::Error) -> SeedError {
    let addr = pg.endpoint.addr();
    let doing = doing.to_owned();
    let role = who.to_owned();
    let code = match &e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    };
    match (&e, code.as_deref()) {
        (sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut, _) => {
            SeedError::from(SeedErrorKind::PostgresUnreachable {
                doing,
                addr,
                source: e,
            })
            .hint("start it with `controlplane up` (or check services.postgres.port)")
        }
        (sqlx::Error::Database(_), Some("28P01")) => {
            SeedError::from(SeedErrorKind::PasswordRejected {
                doing,
                addr,
                role,
                source: e,
            })
            .hint(format!(
                "`{}` does not match the server; set it to the role's password, or run `controlplane seed` with the superuser password to reset it",
                setting(who)
            ))
        }
        (sqlx::Error::Database(_), Some("3D000")) => SeedError::from(SeedErrorKind::NoDatabase {
            doing,
            addr,
            source: e,
        })
        .hint("run `controlplane seed` to create it"),
        (sqlx::Error::Database(_), Some("42P01")) => SeedError::from(SeedErrorKind::Statement {
            doing,
            role,
            code: None,
            source: e,
        })
        .hint("the schema is missing or behind: run `controlplane migrate up` (or `controlplane seed`)"),
        (sqlx::Error::Database(_), _) => SeedError::from(SeedErrorKind::Statement {
            doing,
            role,
            code,
            source: e,
        })
        .hint("check the server log; `controlplane seed` repairs roles and privileges"),
        _ => SeedError::from(SeedErrorKind::Postgres {
            doing,
            role,
            addr,
            source: e,
        })
        .hint("check that PostgreSQL is up and reachable (`controlplane status`)"),
    }
}

fn migrate_error(doing: &str, pg: &PgAccess, e: MigrateError) -> SeedError {
    match e {
        MigrateError::Execute(inner) => db_error(doing, ADMIN_ROLE, pg, inner),
        MigrateError::ExecuteMigration(source, version) => {
            let description = embedded()
                .find(|m| m.version == version)
                .map(|m| m.description.to_string())
                .unwrap_or_default();
            SeedError::from(SeedErrorKind::Migration {
                doing: doing.to_owned(),
                version,
                description,
                source,
            })
            .hint(
                "the migration ran in a transaction and was rolled back; fix the cause (roles missing? run `controlplane seed`) and run it again",
            )
        }
        source => SeedError::from(SeedErrorKind::Migrate {
            doing: doing.to_owned(),
            source,
        })
        .hint("compare `controlplane migrate status` with the migrations/ folder this binary was built from"),
    }
}

async fn connect(
    pg: &PgAccess,
    user: &str,
    password: &str,
    database: &str,
    report: &mut Report,
) -> Result<PgConnection, SeedError> {
    report.trips(1);
    // The seeder's statements carry password verifiers: keep them out of the logs.
    let options = connect_options(pg, user, password, database).disable_statement_logging();
    PgConnection::connect_with(&options)
        .await
        .map_err(|e| db_error(&format!("connecting to database `{database}`"), user, pg, e))
}

/// Ends a session politely (the server otherwise logs an unexpected EOF). The work
/// is done by now, so a failure to say goodbye is not worth reporting.
async fn close(conn: PgConnection) {
    let _ = conn.close().await;
}

async fn superuser(
    pg: &PgAccess,
    database: &str,
    report: &mut Report,
) -> Result<PgConnection, SeedError> {
    connect(
        pg,
        "postgres",
        pg.superuser_password.expose(),
        database,
        report,
    )
    .await
}

/// Sets `role`'s password to `new` (a SCRAM verifier computed here, so the value is
/// never sent), as the superuser. Sessions already open as the role continue: the
/// server checks a password only when a session starts.
pub async fn set_password(pg: &PgAccess, role: &str, new: &Secret) -> Result<Report, SeedError> {
    let mut report = Report::new("postgres");
    let mut conn = superuser(pg, "postgres", &mut report).await?;
    let sql = format!(
        "ALTER ROLE {} WITH PASSWORD {}",
        ident(role),
        literal(&scram::verifier(new.expose()))
    );
    report.trips(1);
    let done = sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&mut conn)
        .await
        .map_err(|e| {
            db_error(
                &format!("setting the password of role `{role}`"),
                "postgres",
                pg,
                e,
            )
        });
    close(conn).await;
    done?;
    report.change(format!("set a new password for role {role}"));
    Ok(report)
}

async fn admin(pg: &PgAccess, report: &mut Report) -> Result<PgConnection, SeedError> {
    connect(
        pg,
        ADMIN_ROLE,
        pg.admin_password.expose(),
        &pg.database,
        report,
    )
    .await
}

/// A small pool of connections as the application role, for the server and tests.
pub async fn app_pool(pg: &PgAccess, max_connections: u32) -> Result<PgPool, SeedError> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(max_connections)
        .connect_with(connect_options(
            pg,
            APP_ROLE,
            pg.app_password.expose(),
            &pg.database,
        ))
        .await
        .map_err(|e| db_error("connecting the application pool", APP_ROLE, pg, e))
}

/// Begins a transaction bound to `tenant`: `set_config(..., true)` lasts until the
/// transaction ends, so nothing leaks to the next user of the pooled connection.
pub async fn begin_tenant_tx(
    pool: &PgPool,
    tenant: TenantId,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
        .bind(tenant.0.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Observes the database layer and applies what differs: roles, database,
/// privileges, migrations, grants. Idempotent: a second run reports no changes.
pub async fn seed(pg: &PgAccess) -> Result<Report, SeedError> {
    let mut observing = Report::new(SERVICE);
    let cat = layer::observe(pg, &mut observing).await?;
    let plan = layer::plan(&pg.database, &cat);
    let mut report = layer::apply(pg, &plan).await?;
    report.trips(observing.round_trips);
    Ok(report)
}

/// The up migrations embedded in this binary, in order.
fn embedded() -> impl Iterator<Item = &'static Migration> {
    MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
}

/// Locks, ensures the bookkeeping table, refuses a dirty database, and returns the
/// applied migrations (version → checksum).
async fn prepare(
    pg: &PgAccess,
    conn: &mut PgConnection,
    report: &mut Report,
) -> Result<BTreeMap<i64, Vec<u8>>, SeedError> {
    report.trips(4);
    conn.lock()
        .await
        .map_err(|e| migrate_error("locking the migrations", pg, e))?;
    conn.ensure_migrations_table(MIGRATIONS_TABLE)
        .await
        .map_err(|e| migrate_error("creating the migrations table", pg, e))?;
    if let Some(v) = conn
        .dirty_version(MIGRATIONS_TABLE)
        .await
        .map_err(|e| migrate_error("reading the migrations table", pg, e))?
    {
        return Err(SeedError::from(SeedErrorKind::MigrationFailed {
            version: v,
            table: MIGRATIONS_TABLE,
        })
        .hint(format!(
            "inspect the database, then delete that row (DELETE FROM {MIGRATIONS_TABLE} WHERE version = {v}) and run the migrations again"
        )));
    }
    report.trips(1);
    let applied = conn
        .list_applied_migrations(MIGRATIONS_TABLE)
        .await
        .map_err(|e| migrate_error("reading the migrations table", pg, e))?;
    Ok(applied
        .into_iter()
        .map(|m| (m.version, m.checksum.into_owned()))
        .collect())
}

fn check_applied(applied: &BTreeMap<i64, Vec<u8>>) -> Result<(), SeedError> {
    for (version, checksum) in applied {
        match embedded().find(|m| m.version == *version) {
            None => {
                return Err(
                    SeedError::from(SeedErrorKind::UnknownMigration { version: *version })
                        .hint("use the controlplane build that applied it (a newer one?)"),
                );
            }
            Some(m) if *m.checksum != **checksum => {
                return Err(SeedError::from(SeedErrorKind::MigrationChanged {
                    version: *version,
                    description: m.description.to_string(),
                })
                .hint("restore the applied file from version control and add a new migration for the change"));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Applies every pending migration, each in its own transaction (a crash leaves it
/// unapplied, and the next run applies it again), as the admin role.
pub async fn migrate_up(pg: &PgAccess) -> Result<Report, SeedError> {
    let mut report = Report::new(SERVICE);
    let mut conn = admin(pg, &mut report).await?;
    let applied = prepare(pg, &mut conn, &mut report).await?;
    check_applied(&applied)?;
    for m in embedded().filter(|m| !applied.contains_key(&m.version)) {
        report.trips(5);
        conn.apply(MIGRATIONS_TABLE, m)
            .await
            .map_err(|e| migrate_error("applying migrations", pg, e))?;
        report.change(format!("applied migration {} {}", m.version, m.description));
    }
    report.trips(2);
    conn.unlock()
        .await
        .map_err(|e| migrate_error("unlocking the migrations", pg, e))?;
    close(conn).await;
    Ok(report)
}

/// Reverts the last `steps` applied migrations, newest first, each in its own
/// transaction.
pub async fn migrate_down(pg: &PgAccess, steps: u32) -> Result<Report, SeedError> {
    let mut report = Report::new(SERVICE);
    let mut conn = admin(pg, &mut report).await?;
    let applied = prepare(pg, &mut conn, &mut report).await?;
    check_applied(&applied)?;
    for version in applied.keys().rev().take(steps as usize) {
        let down = MIGRATOR
            .iter()
            .find(|m| m.version == *version && m.migration_type.is_down_migration())
            .ok_or_else(|| {
                SeedError::from(SeedErrorKind::NoDownScript { version: *version })
                    .hint("add a `.down.sql` file for it; migrations here are reversible")
            })?;
        report.trips(4);
        conn.revert(MIGRATIONS_TABLE, down)
            .await
            .map_err(|e| migrate_error("reverting migrations", pg, e))?;
        report.change(format!(
            "reverted migration {} {}",
            down.version, down.description
        ));
    }
    report.trips(2);
    conn.unlock()
        .await
        .map_err(|e| migrate_error("unlocking the migrations", pg, e))?;
    close(conn).await;
    Ok(report)
}

/// Every embedded migration (and any applied one this binary does not know), with
/// whether it is applied and whether its checksum matches.
pub async fn migrate_status(pg: &PgAccess) -> Result<Vec<MigrationStatus>, SeedError> {
    let mut report = Report::new(SERVICE);
    let mut conn = admin(pg, &mut report).await?;
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(MIGRATIONS_TABLE)
        .fetch_one(&mut conn)
        .await
        .map_err(|e| db_error("looking for the migrations table", ADMIN_ROLE, pg, e))?;
    let applied: BTreeMap<i64, Vec<u8>> = if exists {
        conn.list_applied_migrations(MIGRATIONS_TABLE)
            .await
            .map_err(|e| migrate_error("reading the migrations table", pg, e))?
            .into_iter()
            .map(|m| (m.version, m.checksum.into_owned()))
            .collect()
    } else {
        BTreeMap::new()
    };
    let mut out: Vec<MigrationStatus> = embedded()
        .map(|m| {
            let got = applied.get(&m.version);
            MigrationStatus {
                version: m.version,
                description: m.description.to_string(),
                applied: got.is_some(),
                checksum_ok: got.is_none_or(|c| **c == *m.checksum),
            }
        })
        .collect();
    for version in applied
        .keys()
        .filter(|v| !embedded().any(|m| m.version == **v))
    {
        out.push(MigrationStatus {
            version: *version,
            description: "(not in this build)".into(),
            applied: true,
            checksum_ok: false,
        });
    }
    out.sort_by_key(|s| s.version);
    close(conn).await;
    Ok(out)
}

fn tenant_row(row: &sqlx::postgres::PgRow) -> TenantRow {
    TenantRow {
        id: row.get("id"),
        slug: row.get("slug"),
        name: row.get("name"),
        created_at: row.get("created_at"),
    }
}

/// Adds a tenant row (as the admin role). True when created, false when a tenant with
/// this id and slug already exists.
pub async fn insert_tenant(
    pg: &PgAccess,
    id: uuid::Uuid,
    slug: &str,
    name: &str,
) -> Result<bool, SeedError> {
    let mut report = Report::new(SERVICE);
    let mut conn = admin(pg, &mut report).await?;
    let existing = sqlx::query(
        "SELECT id, slug, name, created_at FROM anumate.tenants WHERE id = $1 OR slug = $2",
    )
    .bind(id)
    .bind(slug)
    .fetch_all(&mut conn)
    .await
    .map_err(|e| db_error("reading tenants", ADMIN_ROLE, pg, e))?;
    let existing: Vec<TenantRow> = existing.iter().map(tenant_row).collect();
    if let Some(row) = existing.iter().find(|r| r.id == id) {
        if row.slug == slug {
            return Ok(false);
        }
        return Err(SeedError::from(SeedErrorKind::TenantSlugMismatch {
            id: id.to_string(),
            slug: slug.to_string(),
            existing: row.slug.clone(),
        })
        .hint("use its existing slug, or another id"));
    }
    if let Some(row) = existing.first() {
        return Err(SeedError::from(SeedErrorKind::SlugTaken {
            slug: slug.to_string(),
            by: row.id.to_string(),
        })
        .hint("choose another slug"));
    }
    let inserted = sqlx::query(
        "INSERT INTO anumate.tenants (id, slug, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    )
    .bind(id)
    .bind(slug)
    .bind(name)
    .execute(&mut conn)
    .await
    .map_err(|e| db_error(&format!("creating tenant `{slug}`"), ADMIN_ROLE, pg, e))?;
    if inserted.rows_affected() == 0 {
        // Another run created it (or took the slug) between our read and our insert.
        return Err(SeedError::from(SeedErrorKind::TenantRace {
            id: id.to_string(),
            slug: slug.to_string(),
        })
        .hint("run the command again"));
    }
    close(conn).await;
    Ok(true)
}

/// The tenant with this id (when `id_or_slug` parses as a UUID) or slug.
pub async fn find_tenant(pg: &PgAccess, id_or_slug: &str) -> Result<Option<TenantRow>, SeedError> {
    let mut report = Report::new(SERVICE);
    let mut conn = admin(pg, &mut report).await?;
    let query = match uuid::Uuid::parse_str(id_or_slug) {
        Ok(id) => {
            sqlx::query("SELECT id, slug, name, created_at FROM anumate.tenants WHERE id = $1")
                .bind(id)
        }
        Err(_) => {
            sqlx::query("SELECT id, slug, name, created_at FROM anumate.tenants WHERE slug = $1")
                .bind(id_or_slug.to_owned())
        }
    };
    let row = query
        .fetch_optional(&mut conn)
        .await
        .map_err(|e| db_error("reading tenants", ADMIN_ROLE, pg, e))?;
    close(conn).await;
    Ok(row.as_ref().map(tenant_row))
}

/// Every tenant, oldest first.
pub async fn list_tenants(pg: &PgAccess) -> Result<Vec<TenantRow>, SeedError> {
    let mut report = Report::new(SERVICE);
    let mut conn = admin(pg, &mut report).await?;
    let rows = sqlx::query(
        "SELECT id, slug, name, created_at FROM anumate.tenants ORDER BY created_at, slug",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| db_error("listing tenants", ADMIN_ROLE, pg, e))?;
    close(conn).await;
    Ok(rows.iter().map(tenant_row).collect())
}

/// Deletes the tenant and its rows in every tenant table, in one transaction, and
/// returns how many rows went (the tenant's own row included; 0 when it did not
/// exist). The transaction is bound to the tenant, so even a wrong statement here
/// could not touch another tenant's rows.
pub async fn delete_tenant_rows(pg: &PgAccess, id: uuid::Uuid) -> Result<u64, SeedError> {
    let mut report = Report::new(SERVICE);
    let mut conn = admin(pg, &mut report).await?;
    let fail = |e| db_error(&format!("deleting tenant {id}"), ADMIN_ROLE, pg, e);
    let mut tx = conn.begin().await.map_err(fail)?;
    sqlx::query("SELECT set_config('app.current_tenant_id', $1, true)")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    let mut removed = 0;
    for table in TENANT_TABLES {
        removed += sqlx::query(AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE tenant_id = $1"
        )))
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(fail)?
        .rows_affected();
    }
    // Tables added later without joining TENANT_TABLES still go, by ON DELETE CASCADE.
    removed += sqlx::query("DELETE FROM anumate.tenants WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(fail)?
        .rows_affected();
    tx.commit().await.map_err(fail)?;
    close(conn).await;
    Ok(removed)
}
