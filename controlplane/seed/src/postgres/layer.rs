//! The database layer as the planner sees it: roles (attributes, password, memberships),
//! the database (owner, privileges), schema `public`, ownership by the confined roles,
//! migrations, and the privileges our roles hold on each object.
//!
//! [`desired`] is pure, [`observe`] only reads the catalog (as the superuser), and
//! [`apply`] carries out one plan's steps in dependency order. The privileges the
//! migrations grant are not restated here: `migrations/privileges.json` is what a fresh
//! database holds after every migration, kept fresh by a test, so a dropped or extra
//! grant shows up in `plan` and `up` repairs it.

use std::collections::{BTreeMap, BTreeSet};

use cp_core::names::{CoreKind, ServiceName};
use cp_core::plan::{
    self, Action, Layer, Observed, ObservedState, Plan, Resource, ResourceId, UpdateMode,
};
use cp_core::roles::{ADMIN, APP, BACKUP, MANAGED, READONLY, SEARCH_PATH, SUPERUSER};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sqlx::postgres::PgConnection;
use sqlx::{AssertSqlSafe, Connection, Row};

use super::{MIGRATIONS_TABLE, close, db_error, embedded, ident, literal, scram, superuser};
use crate::{PgAccess, Report, SeedError, SeedErrorKind};

const SERVICE: &str = "postgres";

/// The privileges a fresh database holds after every migration (see the module doc).
const PRIVILEGES_SNAPSHOT: &str = include_str!("../../../../migrations/privileges.json");

/// One privilege entry: a grantee's privileges on one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Grant {
    /// `schema anumate`, `table anumate.tenants`, `column anumate.x.y`, `function f(uuid)`,
    /// `sequence s`.
    pub object: String,
    /// The role (or `PUBLIC`).
    pub grantee: String,
    /// Privilege keywords, sorted (`INSERT`, `SELECT`).
    pub privileges: Vec<String>,
}

/// The committed expected privileges.
pub fn expected_grants() -> Vec<Grant> {
    serde_json::from_str(PRIVILEGES_SNAPSHOT).expect("migrations/privileges.json parses")
}

/// What one of our roles must be.
struct RoleSpec {
    name: &'static str,
    bypassrls: bool,
    member_of: &'static [&'static str],
}

const ROLES: [RoleSpec; 4] = [
    RoleSpec {
        name: ADMIN,
        bypassrls: false,
        member_of: &[],
    },
    RoleSpec {
        name: APP,
        bypassrls: false,
        member_of: &[],
    },
    RoleSpec {
        name: READONLY,
        bypassrls: false,
        member_of: &[],
    },
    RoleSpec {
        name: BACKUP,
        bypassrls: true,
        member_of: &["pg_read_all_data"],
    },
];

/// `matches <setting>`: a role's password as the plan shows it (never the value).
fn password_matches(role: &str) -> String {
    format!("matches {}", PgAccess::setting(role).path())
}

fn service() -> Option<ServiceName> {
    Some(ServiceName::core(CoreKind::Postgres))
}

fn resource(kind: &str, name: impl Into<String>, spec: Value, update: UpdateMode) -> Resource {
    Resource {
        id: ResourceId::new(Layer::Database, kind, name),
        service: service(),
        spec,
        update,
    }
}

/// A migration's resource name: its version, zero-padded so names sort as versions.
fn migration_name(version: i64, description: &str) -> String {
    format!("{version:014} {description}")
}

fn grant_name(g: &Grant) -> String {
    format!("{} on {}", g.grantee, g.object)
}

/// Everything the database layer wants (pure). Grants are wanted only once every
/// migration is applied (`with_grants`); until then the migrations grant them.
pub fn desired(database: &str, with_grants: bool) -> Vec<Resource> {
    let mut out = Vec::new();
    for r in &ROLES {
        out.push(resource(
            "role",
            r.name,
            json!({
                "login": true, "superuser": false, "createrole": false, "createdb": false,
                "replication": false, "bypassrls": r.bypassrls, "inherit": true,
                "password": password_matches(r.name),
                "member_of": r.member_of,
                "search_path": SEARCH_PATH,
            }),
            UpdateMode::InPlace,
        ));
    }
    let mut privileges: Vec<String> = [APP, READONLY, BACKUP]
        .iter()
        .map(|r| format!("{r}:CONNECT"))
        .collect();
    privileges.sort();
    out.push(resource(
        "database",
        database,
        json!({"owner": ADMIN, "privileges": privileges}),
        UpdateMode::InPlace,
    ));
    out.push(resource(
        "schema",
        "public",
        json!({"public_may_create": false}),
        UpdateMode::InPlace,
    ));
    out.push(resource(
        "ownership",
        "objects owned by the app, read-only and backup roles",
        json!({"owned": {}}),
        UpdateMode::InPlace,
    ));
    for m in embedded() {
        out.push(resource(
            "migration",
            migration_name(m.version, &m.description),
            json!({"checksum": hex::encode(&*m.checksum), "state": "applied"}),
            UpdateMode::Immutable(
                "an applied migration is never changed: restore the applied file from version \
                 control and add a new migration for the change (a failed one: inspect the \
                 database, then delete its row from public._sqlx_migrations and run up again)"
                    .into(),
            ),
        ));
    }
    if with_grants {
        for g in expected_grants() {
            out.push(resource(
                "grant",
                grant_name(&g),
                json!({"privileges": g.privileges}),
                UpdateMode::InPlace,
            ));
        }
    }
    out
}

/// The catalog read by [`observe`]: everything the plan compares, plus what the
/// executor needs to know.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// The observed resources.
    pub observed: Vec<Observed>,
    /// The database exists.
    pub database_exists: bool,
    /// Versions applied (with their checksums) and a failed one.
    pub applied: BTreeMap<i64, Vec<u8>>,
    /// Every embedded migration is applied.
    pub migrations_complete: bool,
}

fn present(kind: &str, name: impl Into<String>, spec: Value) -> Observed {
    Observed {
        id: ResourceId::new(Layer::Database, kind, name),
        spec: Some(spec),
        state: ObservedState::Present,
    }
}

/// Reads roles, database, privileges, ownership, migrations and grants. Never writes
/// (not even the migrations table).
pub async fn observe(pg: &PgAccess, report: &mut Report) -> Result<Catalog, SeedError> {
    let mut cat = Catalog::default();
    let mut su = superuser(pg, "postgres", report).await?;
    observe_roles(pg, &mut su, report, &mut cat).await?;
    observe_database(pg, &mut su, report, &mut cat).await?;
    close(su).await;
    if cat.database_exists {
        let mut su = superuser(pg, &pg.database, report).await?;
        observe_in_database(pg, &mut su, report, &mut cat).await?;
        close(su).await;
    }
    Ok(cat)
}

async fn observe_roles(
    pg: &PgAccess,
    su: &mut PgConnection,
    report: &mut Report,
    cat: &mut Catalog,
) -> Result<(), SeedError> {
    report.trips(1);
    let rows = sqlx::query(
        "SELECT a.rolname::text AS rolname, a.rolsuper, a.rolinherit, a.rolcreaterole, a.rolcreatedb,
                a.rolcanlogin, a.rolreplication, a.rolbypassrls, a.rolpassword,
                ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                      WHERE m.member = a.oid ORDER BY 1) AS member_of,
                (SELECT substr(c, length('search_path=') + 1)
                 FROM pg_db_role_setting s, unnest(s.setconfig) c
                 WHERE s.setrole = a.oid AND s.setdatabase = 0 AND c LIKE 'search_path=%') AS search_path
         FROM pg_authid a WHERE a.rolname = ANY($1)",
    )
    .bind(MANAGED.as_slice())
    .fetch_all(&mut *su)
    .await
    .map_err(|e| db_error("reading the roles", SUPERUSER, pg, e))?;
    for row in rows {
        let name: String = row.get("rolname");
        let stored: Option<String> = row.get("rolpassword");
        let password = if stored
            .as_deref()
            .is_some_and(|v| scram::verify(v, pg.password(&name).expose()))
        {
            password_matches(&name)
        } else if stored.is_none() {
            "not set".to_owned()
        } else {
            format!("differs from {}", PgAccess::setting(&name).path())
        };
        let member_of: Vec<String> = row.get("member_of");
        let search_path: Option<String> = row.get("search_path");
        cat.observed.push(present(
            "role",
            name,
            json!({
                "login": row.get::<bool, _>("rolcanlogin"),
                "superuser": row.get::<bool, _>("rolsuper"),
                "createrole": row.get::<bool, _>("rolcreaterole"),
                "createdb": row.get::<bool, _>("rolcreatedb"),
                "replication": row.get::<bool, _>("rolreplication"),
                "bypassrls": row.get::<bool, _>("rolbypassrls"),
                "inherit": row.get::<bool, _>("rolinherit"),
                "password": password,
                "member_of": member_of,
                "search_path": search_path.unwrap_or_else(|| "not set".to_owned()),
            }),
        ));
    }
    Ok(())
}

async fn observe_database(
    pg: &PgAccess,
    su: &mut PgConnection,
    report: &mut Report,
    cat: &mut Catalog,
) -> Result<(), SeedError> {
    report.trips(1);
    let row = sqlx::query(
        "SELECT pg_get_userbyid(d.datdba)::text AS owner,
                ARRAY(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END
                             || ':' || a.privilege_type
                      FROM aclexplode(COALESCE(d.datacl, acldefault('d', d.datdba))) a
                      WHERE a.grantee <> d.datdba ORDER BY 1) AS grants
         FROM pg_database d WHERE d.datname = $1",
    )
    .bind(&pg.database)
    .fetch_optional(&mut *su)
    .await
    .map_err(|e| db_error("reading the database", SUPERUSER, pg, e))?;
    if let Some(row) = row {
        cat.database_exists = true;
        let grants: Vec<String> = row.get("grants");
        // Only PUBLIC and our roles are judged; grants to other roles are the operator's.
        let ours: Vec<String> = grants
            .into_iter()
            .filter(|g| {
                g.starts_with("PUBLIC:") || MANAGED.iter().any(|r| g.starts_with(&format!("{r}:")))
            })
            .collect();
        cat.observed.push(present(
            "database",
            pg.database.clone(),
            json!({"owner": row.get::<String, _>("owner"), "privileges": ours}),
        ));
    }
    Ok(())
}

async fn observe_in_database(
    pg: &PgAccess,
    su: &mut PgConnection,
    report: &mut Report,
    cat: &mut Catalog,
) -> Result<(), SeedError> {
    report.trips(1);
    let public_creates: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace n,
                        aclexplode(COALESCE(n.nspacl, acldefault('n', n.nspowner))) a
                        WHERE n.nspname = 'public' AND a.grantee = 0 AND a.privilege_type = 'CREATE')",
    )
    .fetch_one(&mut *su)
    .await
    .map_err(|e| db_error("reading the privileges of schema public", SUPERUSER, pg, e))?;
    cat.observed.push(present(
        "schema",
        "public",
        json!({"public_may_create": public_creates}),
    ));

    report.trips(1);
    let owners: Vec<(String, i64)> = sqlx::query_as(
        "SELECT r.rolname::text, count(d.objid)
         FROM pg_roles r JOIN pg_shdepend d ON d.refobjid = r.oid AND d.deptype = 'o'
         WHERE r.rolname = ANY($1)
           AND d.dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
         GROUP BY 1 ORDER BY 1",
    )
    .bind([APP, READONLY, BACKUP])
    .fetch_all(&mut *su)
    .await
    .map_err(|e| db_error("reading what our roles own", SUPERUSER, pg, e))?;
    let owned: serde_json::Map<String, Value> =
        owners.into_iter().map(|(r, n)| (r, json!(n))).collect();
    cat.observed.push(present(
        "ownership",
        "objects owned by the app, read-only and backup roles",
        json!({"owned": owned}),
    ));

    // Migrations, read without creating the bookkeeping table.
    report.trips(1);
    let has_table: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(MIGRATIONS_TABLE)
        .fetch_one(&mut *su)
        .await
        .map_err(|e| db_error("looking for the migrations table", SUPERUSER, pg, e))?;
    if has_table {
        report.trips(1);
        let rows: Vec<(i64, String, bool, Vec<u8>)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT version, description, success, checksum FROM {MIGRATIONS_TABLE} ORDER BY version"
        )))
        .fetch_all(&mut *su)
        .await
        .map_err(|e| db_error("reading the migrations table", SUPERUSER, pg, e))?;
        for (version, description, success, checksum) in rows {
            let state = if success { "applied" } else { "failed" };
            cat.observed.push(present(
                "migration",
                migration_name(version, &description),
                json!({"checksum": hex::encode(&checksum), "state": state}),
            ));
            cat.applied.insert(version, checksum);
        }
    }
    cat.migrations_complete = embedded().all(|m| cat.applied.contains_key(&m.version));
    if cat.migrations_complete {
        for g in read_grants(pg, su, report).await? {
            cat.observed.push(present(
                "grant",
                grant_name(&g),
                json!({"privileges": g.privileges}),
            ));
        }
    }
    Ok(())
}

/// The privileges PUBLIC and our roles hold on everything in the schemas the admin
/// owns (schemas, tables, views, sequences, columns, functions), owners excluded.
pub async fn read_grants(
    pg: &PgAccess,
    su: &mut PgConnection,
    report: &mut Report,
) -> Result<Vec<Grant>, SeedError> {
    report.trips(1);
    let rows: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "WITH ours AS (
           SELECT n.oid, n.nspname FROM pg_namespace n
           WHERE n.nspowner = (SELECT oid FROM pg_roles WHERE rolname = $1)
         ),
         grantees AS (SELECT 0::oid AS oid UNION SELECT oid FROM pg_roles WHERE rolname = ANY($2)),
         acl AS (
           SELECT 'schema ' || quote_ident(o.nspname) AS object, n.nspowner AS owner,
                  aclexplode(COALESCE(n.nspacl, acldefault('n', n.nspowner))) AS a
           FROM ours o JOIN pg_namespace n ON n.oid = o.oid
           UNION ALL
           SELECT CASE WHEN c.relkind = 'S' THEN 'sequence ' ELSE 'table ' END
                    || quote_ident(o.nspname) || '.' || quote_ident(c.relname),
                  c.relowner,
                  aclexplode(COALESCE(c.relacl, acldefault((CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END)::\"char\", c.relowner)))
           FROM pg_class c JOIN ours o ON o.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
           UNION ALL
           SELECT 'column ' || quote_ident(o.nspname) || '.' || quote_ident(c.relname) || '.' || quote_ident(at.attname),
                  c.relowner, aclexplode(at.attacl)
           FROM pg_attribute at JOIN pg_class c ON c.oid = at.attrelid JOIN ours o ON o.oid = c.relnamespace
           WHERE at.attacl IS NOT NULL AND NOT at.attisdropped
           UNION ALL
           SELECT 'function ' || p.oid::regprocedure::text, p.proowner,
                  aclexplode(COALESCE(p.proacl, acldefault('f', p.proowner)))
           FROM pg_proc p JOIN ours o ON o.oid = p.pronamespace
         )
         SELECT object,
                CASE WHEN (a).grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid((a).grantee)::text END,
                array_agg(DISTINCT (a).privilege_type::text ORDER BY (a).privilege_type::text)
         FROM acl
         WHERE (a).grantee <> owner AND (a).grantee IN (SELECT oid FROM grantees)
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .bind(ADMIN)
    .bind(MANAGED.as_slice())
    .fetch_all(&mut *su)
    .await
    .map_err(|e| db_error("reading privileges", SUPERUSER, pg, e))?;
    Ok(rows
        .into_iter()
        .map(|(object, grantee, privileges)| Grant {
            object,
            grantee,
            privileges,
        })
        .collect())
}

/// The layer's plan from a catalog read. Every grant difference is planned, extra
/// grants included (a privilege the migrations never gave is removed).
pub fn plan(database: &str, cat: &Catalog) -> Plan {
    let desired = desired(database, cat.migrations_complete);
    let (grants, rest): (Vec<Observed>, Vec<Observed>) = cat
        .observed
        .iter()
        .cloned()
        .partition(|o| o.id.kind == "grant");
    let (want_grants, want_rest): (Vec<Resource>, Vec<Resource>) =
        desired.into_iter().partition(|r| r.id.kind == "grant");
    let mut p = plan::plan(&want_rest, &rest, false);
    p.extend(plan::plan(&want_grants, &grants, true));
    // A migration the database has and this binary does not know is blocked: running
    // an older build against a newer schema would silently misreport everything.
    let known: BTreeSet<String> = embedded()
        .map(|m| migration_name(m.version, &m.description))
        .collect();
    for o in rest
        .iter()
        .filter(|o| o.id.kind == "migration" && !known.contains(&o.id.name))
    {
        p.steps.push(plan::Step {
            id: o.id.clone(),
            service: service(),
            action: Action::Blocked {
                changes: Vec::new(),
                reason: "the database has this migration and this build does not know it: use the \
                         controlplane build that applied it (a newer one?)"
                    .into(),
            },
            desired: None,
        });
    }
    p.steps.sort_by(|a, b| a.id.cmp(&b.id));
    p
}

/// The order steps are applied in: roles, the database, what is inside it, migrations
/// (by version), then grants.
fn order(step: &plan::Step) -> u8 {
    match step.id.kind.as_str() {
        "role" => 0,
        "database" => 1,
        "schema" => 2,
        "ownership" => 3,
        "migration" => 4,
        // Column privileges after table privileges: revoking a table privilege also
        // revokes that privilege on every column.
        _ if step.id.name.contains(" on column ") => 6,
        _ => 5,
    }
}

/// Runs one statement as the superuser, counted as a round trip; an error names what
/// it was doing.
pub(super) async fn exec(
    su: &mut PgConnection,
    pg: &PgAccess,
    doing: &str,
    sql: String,
    report: &mut Report,
) -> Result<(), SeedError> {
    report.trips(1);
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&mut *su)
        .await
        .map(drop)
        .map_err(|e| db_error(doing, SUPERUSER, pg, e))
}

/// Applies `plan`'s steps. Blocked steps are refused before anything is touched. After
/// pending migrations run, the privileges they left are checked and repaired in the
/// same run (the plan said so: grants are planned once migrations are complete).
pub async fn apply(pg: &PgAccess, plan: &Plan) -> Result<Report, SeedError> {
    let mut report = Report::new(SERVICE);
    if let Some(s) = plan
        .steps
        .iter()
        .find(|s| matches!(s.action, Action::Blocked { .. }))
    {
        let Action::Blocked { reason, .. } = &s.action else {
            unreachable!()
        };
        return Err(SeedError::from(SeedErrorKind::DatabaseBlocked {
            step: s.id.to_string(),
            reason: reason.clone(),
        })
        .hint("nothing was changed; fix the cause and run `controlplane plan` again"));
    }
    let mut steps: Vec<&plan::Step> = plan.steps.iter().collect();
    steps.sort_by(|a, b| (order(a), &a.id.name).cmp(&(order(b), &b.id.name)));
    let mut su = superuser(pg, "postgres", &mut report).await?;
    let mut in_db: Option<PgConnection> = None;
    let mut held: Option<BTreeMap<String, Vec<String>>> = None;
    let mut migrated = false;
    for step in steps {
        match step.id.kind.as_str() {
            "role" => apply_role(pg, &mut su, step, &mut report).await?,
            "database" => apply_database(pg, &mut su, step, &mut report).await?,
            "schema" | "ownership" | "grant" => {
                if in_db.is_none() {
                    in_db = Some(superuser(pg, &pg.database, &mut report).await?);
                }
                let c = in_db.as_mut().expect("connected above");
                match step.id.kind.as_str() {
                    "schema" => {
                        exec(
                            c,
                            pg,
                            "revoking CREATE on schema public",
                            "REVOKE CREATE ON SCHEMA public FROM PUBLIC".into(),
                            &mut report,
                        )
                        .await?;
                        report.change("revoked CREATE on schema public from PUBLIC");
                    }
                    "ownership" => apply_ownership(pg, c, step, &mut report).await?,
                    _ => {
                        if held.is_none() {
                            held = Some(grants_by_name(read_grants(pg, c, &mut report).await?));
                        }
                        let held = held.as_ref().expect("read above");
                        apply_grant(pg, c, step, held, &mut report).await?;
                    }
                }
            }
            "migration" => {
                if !migrated {
                    let r = super::migrate_up(pg).await?;
                    report.trips(r.round_trips);
                    report.changes.extend(r.changes);
                    migrated = true;
                }
            }
            other => {
                return Err(SeedErrorKind::UnknownDatabaseResource {
                    kind: other.to_owned(),
                }
                .into());
            }
        }
    }
    close(su).await;
    if let Some(c) = in_db {
        close(c).await;
    }
    if migrated {
        // The grants were not planned while migrations were pending: plan them now.
        let cat = observe(pg, &mut report).await?;
        let grants = Plan {
            steps: self::plan(&pg.database, &cat)
                .steps
                .into_iter()
                .filter(|s| s.id.kind == "grant")
                .collect(),
            unchanged: 0,
        };
        if !grants.is_empty() {
            let mut c = superuser(pg, &pg.database, &mut report).await?;
            let held = grants_by_name(read_grants(pg, &mut c, &mut report).await?);
            let mut steps: Vec<&plan::Step> = grants.steps.iter().collect();
            steps.sort_by(|a, b| (order(a), &a.id.name).cmp(&(order(b), &b.id.name)));
            for s in steps {
                apply_grant(pg, &mut c, s, &held, &mut report).await?;
            }
            close(c).await;
        }
    }
    Ok(report)
}

fn attr_keyword(name: &str, on: bool) -> String {
    let k = name.to_uppercase();
    if on { k } else { format!("NO{k}") }
}

async fn apply_role(
    pg: &PgAccess,
    su: &mut PgConnection,
    step: &plan::Step,
    report: &mut Report,
) -> Result<(), SeedError> {
    let name = step.id.name.as_str();
    let Some(want) = step.desired.as_ref().map(|r| &r.spec) else {
        return Ok(());
    };
    let attrs = [
        "login",
        "superuser",
        "createrole",
        "createdb",
        "replication",
        "bypassrls",
        "inherit",
    ];
    let verifier = || literal(&scram::verifier(pg.password(name).expose()));
    let doing = format!("creating or altering role {name}");
    match &step.action {
        Action::Create => {
            let all: Vec<String> = attrs
                .iter()
                .map(|a| attr_keyword(a, want[a] == true))
                .collect();
            exec(
                su,
                pg,
                &doing,
                format!(
                    "CREATE ROLE {} WITH {} PASSWORD {}",
                    ident(name),
                    all.join(" "),
                    verifier()
                ),
                report,
            )
            .await?;
            report.change(format!("created role {name}"));
            set_search_path(pg, su, name, report).await?;
            for g in want["member_of"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                exec(
                    su,
                    pg,
                    &format!("granting {g} to {name}"),
                    format!("GRANT {} TO {}", ident(g), ident(name)),
                    report,
                )
                .await?;
                report.change(format!("granted {g} to {name}"));
            }
        }
        Action::Update { changes } => {
            let differing: Vec<String> = attrs
                .iter()
                .filter(|a| changes.iter().any(|c| c.path == format!("/{a}")))
                .map(|a| attr_keyword(a, want[*a] == true))
                .collect();
            if !differing.is_empty() {
                exec(
                    su,
                    pg,
                    &doing,
                    format!("ALTER ROLE {} WITH {}", ident(name), differing.join(" ")),
                    report,
                )
                .await?;
                report.change(format!("set {} on role {name}", differing.join(" ")));
            }
            if changes.iter().any(|c| c.path == "/password") {
                exec(
                    su,
                    pg,
                    &doing,
                    format!("ALTER ROLE {} WITH PASSWORD {}", ident(name), verifier()),
                    report,
                )
                .await?;
                report.change(format!(
                    "set the password of role {name} (from {})",
                    PgAccess::setting(name).path()
                ));
            }
            if changes.iter().any(|c| c.path == "/search_path") {
                set_search_path(pg, su, name, report).await?;
            }
            if changes.iter().any(|c| c.path.starts_with("/member_of")) {
                // Read the memberships afresh: the change lists positions, not names.
                report.trips(1);
                let have: Vec<String> = sqlx::query_scalar(
                    "SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
                     JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = $1",
                )
                .bind(name)
                .fetch_all(&mut *su)
                .await
                .map_err(|e| db_error("reading role memberships", SUPERUSER, pg, e))?;
                let want: BTreeSet<&str> = want["member_of"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let have: BTreeSet<&str> = have.iter().map(String::as_str).collect();
                for g in want.difference(&have) {
                    exec(
                        su,
                        pg,
                        &format!("granting {g} to {name}"),
                        format!("GRANT {} TO {}", ident(g), ident(name)),
                        report,
                    )
                    .await?;
                    report.change(format!("granted {g} to {name}"));
                }
                // A role the platform relies on being confined must not inherit
                // anything else (granting it anumate_admin would defeat RLS).
                for g in have.difference(&want) {
                    exec(
                        su,
                        pg,
                        &format!("revoking {g} from {name}"),
                        format!("REVOKE {} FROM {}", ident(g), ident(name)),
                        report,
                    )
                    .await?;
                    report.change(format!("revoked membership of {name} in {g}"));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Sets the role's `search_path` to the platform's schemas (see
/// [`cp_core::roles::SEARCH_PATH`]): role-wide, so it holds in every database the role
/// opens and needs no database to exist yet.
async fn set_search_path(
    pg: &PgAccess,
    su: &mut PgConnection,
    name: &str,
    report: &mut Report,
) -> Result<(), SeedError> {
    let path: Vec<String> = SEARCH_PATH.split(", ").map(ident).collect();
    exec(
        su,
        pg,
        &format!("setting the search_path of role {name}"),
        format!(
            "ALTER ROLE {} SET search_path TO {}",
            ident(name),
            path.join(", ")
        ),
        report,
    )
    .await?;
    report.change(format!("set search_path {SEARCH_PATH} on role {name}"));
    Ok(())
}

async fn apply_database(
    pg: &PgAccess,
    su: &mut PgConnection,
    step: &plan::Step,
    report: &mut Report,
) -> Result<(), SeedError> {
    let db = &pg.database;
    let ours = [APP, READONLY, BACKUP];
    let roles = ours.map(ident).join(", ");
    let privileges = format!(
        "REVOKE ALL ON DATABASE {d} FROM PUBLIC, {roles}; GRANT CONNECT ON DATABASE {d} TO {roles}",
        d = ident(db)
    );
    match &step.action {
        Action::Create => {
            // template0: the platform database starts from nothing a superuser may have
            // added to template1.
            exec(
                su,
                pg,
                &format!("creating database {db}"),
                format!(
                    "CREATE DATABASE {} OWNER {} TEMPLATE template0",
                    ident(db),
                    ident(ADMIN)
                ),
                report,
            )
            .await?;
            report.change(format!("created database {db} owned by {ADMIN}"));
            exec(
                su,
                pg,
                &format!("setting privileges on database {db}"),
                privileges,
                report,
            )
            .await?;
        }
        Action::Update { changes } => {
            if changes.iter().any(|c| c.path == "/owner") {
                exec(
                    su,
                    pg,
                    &format!("changing the owner of database {db}"),
                    format!("ALTER DATABASE {} OWNER TO {}", ident(db), ident(ADMIN)),
                    report,
                )
                .await?;
                report.change(format!("changed the owner of database {db} to {ADMIN}"));
            }
            if changes.iter().any(|c| c.path.starts_with("/privileges")) {
                exec(
                    su,
                    pg,
                    &format!("setting privileges on database {db}"),
                    privileges,
                    report,
                )
                .await?;
            } else {
                return Ok(());
            }
        }
        _ => return Ok(()),
    }
    report.change(format!(
        "set privileges on database {db}: CONNECT for {}, nothing for PUBLIC",
        ours.join(", ")
    ));
    Ok(())
}

async fn apply_ownership(
    pg: &PgAccess,
    c: &mut PgConnection,
    step: &plan::Step,
    report: &mut Report,
) -> Result<(), SeedError> {
    // Only the admin owns things: an object owned by another of our roles (made by
    // hand, say) would let that role change its policies or grants.
    let Action::Update { changes } = &step.action else {
        return Ok(());
    };
    for ch in changes {
        let Some(role) = ch.path.strip_prefix("/owned/") else {
            continue;
        };
        if !MANAGED.contains(&role) {
            continue;
        }
        exec(
            c,
            pg,
            &format!("reassigning what {role} owns"),
            format!("REASSIGN OWNED BY {} TO {}", ident(role), ident(ADMIN)),
            report,
        )
        .await?;
        let n = ch.before.as_ref().and_then(Value::as_i64).unwrap_or(0);
        report.change(format!(
            "reassigned {n} object(s) owned by {role} to {ADMIN}"
        ));
    }
    Ok(())
}

/// `table anumate.x` → (`TABLE`, `anumate.x`); `column anumate.x.col` → (`TABLE`,
/// `anumate.x`, `col`). Names are already quoted by the catalog query.
fn grant_target(object: &str) -> Option<(&'static str, String, Option<String>)> {
    let (kind, name) = object.split_once(' ')?;
    Some(match kind {
        "schema" => ("SCHEMA", name.to_owned(), None),
        "table" => ("TABLE", name.to_owned(), None),
        "sequence" => ("SEQUENCE", name.to_owned(), None),
        "function" => ("FUNCTION", name.to_owned(), None),
        "column" => {
            let (table, col) = name.rsplit_once('.')?;
            ("TABLE", table.to_owned(), Some(col.to_owned()))
        }
        _ => return None,
    })
}

fn grants_by_name(grants: Vec<Grant>) -> BTreeMap<String, Vec<String>> {
    grants
        .into_iter()
        .map(|g| (grant_name(&g), g.privileges))
        .collect()
}

async fn apply_grant(
    pg: &PgAccess,
    c: &mut PgConnection,
    step: &plan::Step,
    held: &BTreeMap<String, Vec<String>>,
    report: &mut Report,
) -> Result<(), SeedError> {
    let Some((grantee, object)) = step.id.name.split_once(" on ") else {
        return Ok(());
    };
    let Some((kind, target, column)) = grant_target(object) else {
        return Err(SeedErrorKind::CannotGrant {
            object: object.to_string(),
        }
        .into());
    };
    let who = if grantee == "PUBLIC" {
        "PUBLIC".to_owned()
    } else {
        ident(grantee)
    };
    let cols = column
        .as_ref()
        .map(|c| format!(" ({c})"))
        .unwrap_or_default();
    let want: BTreeSet<String> = step
        .desired
        .as_ref()
        .and_then(|r| r.spec["privileges"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let have: BTreeSet<String> = held
        .get(&step.id.name)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let revoke: Vec<String> = have
        .difference(&want)
        .map(|p| format!("{p}{cols}"))
        .collect();
    let grant: Vec<String> = want
        .difference(&have)
        .map(|p| format!("{p}{cols}"))
        .collect();
    let mut sql = String::new();
    if !revoke.is_empty() {
        sql.push_str(&format!(
            "REVOKE {} ON {kind} {target} FROM {who};",
            revoke.join(", ")
        ));
    }
    if !grant.is_empty() {
        sql.push_str(&format!(
            " GRANT {} ON {kind} {target} TO {who};",
            grant.join(", ")
        ));
    }
    if sql.is_empty() {
        return Ok(());
    }
    // One transaction: a reader never sees half of the change.
    report.trips(1);
    let mut tx = c
        .begin()
        .await
        .map_err(|e| db_error("setting privileges", SUPERUSER, pg, e))?;
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            db_error(
                &format!("setting privileges of {grantee} on {object}"),
                SUPERUSER,
                pg,
                e,
            )
        })?;
    tx.commit()
        .await
        .map_err(|e| db_error("setting privileges", SUPERUSER, pg, e))?;
    let mut what = Vec::new();
    if !grant.is_empty() {
        what.push(format!(
            "granted {} on {object} to {grantee}",
            grant.join(", ")
        ));
    }
    if !revoke.is_empty() {
        what.push(format!(
            "revoked {} on {object} from {grantee}",
            revoke.join(", ")
        ));
    }
    report.change(what.join("; "));
    Ok(())
}
