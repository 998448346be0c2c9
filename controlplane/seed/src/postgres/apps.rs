//! Apps' own PostgreSQL parts (`apps.<app>.uses.postgres`): a login role per app
//! that owns nothing, cannot bypass row-level security and may connect only to its
//! database; its database (owned by the platform's admin role, nothing for PUBLIC) or
//! a schema of the platform database; DML on its schema's tables, granted by default
//! for what the admin creates there.
//!
//! Schema changes for an app run as the owner (`anumate_admin`), as the platform's own
//! do: a role that owns its tables is not subject to their policies unless forced, and
//! could switch the forcing off again. The app's runtime role only reads and writes.
//!
//! Observe, compare, write: [`observe`] reads the roles and schemas,
//! [`cp_core::seedspec::app_postgres`] says what is wanted, and [`apply`] runs the
//! (idempotent) statements for each app a step names.

use std::collections::BTreeMap;

use cp_core::model::{AppPostgres, Environment};
use cp_core::plan::{Layer, Observed, ObservedState, Plan, ResourceId};
use cp_core::roles::{ADMIN, SUPERUSER};
use serde_json::json;
use sqlx::Row;

use super::layer::exec;
use super::{close, db_error, ident, literal, scram, superuser};
use crate::{PgAccess, Report, Secret, SeedError, SeedErrorKind};

use cp_core::seedspec::APP_PASSWORD_MATCHES as PASSWORD_MATCHES;

/// The apps that use PostgreSQL, with their parts.
fn apps(env: &Environment) -> Vec<(&str, &AppPostgres)> {
    env.apps
        .iter()
        .filter_map(|(n, a)| a.uses.postgres.as_ref().map(|p| (n.as_str(), p)))
        .collect()
}

/// Reads each app's role and schema (never writes).
pub async fn observe(
    pg: &PgAccess,
    env: &Environment,
    passwords: &BTreeMap<String, Secret>,
    report: &mut Report,
) -> Result<Vec<Observed>, SeedError> {
    let apps = apps(env);
    let mut out = Vec::new();
    if apps.is_empty() {
        return Ok(out);
    }
    let mut su = superuser(pg, "postgres", report).await?;
    for (_, p) in &apps {
        report.trips(1);
        let row = sqlx::query(
            "SELECT a.rolcanlogin, a.rolbypassrls, a.rolsuper, a.rolpassword,
                    (SELECT substr(c, length('search_path=') + 1)
                     FROM pg_db_role_setting s, unnest(s.setconfig) c
                     WHERE s.setrole = a.oid AND s.setdatabase = 0 AND c LIKE 'search_path=%') AS search_path
             FROM pg_authid a WHERE a.rolname = $1",
        )
        .bind(&p.role)
        .fetch_optional(&mut su)
        .await
        .map_err(|e| db_error("reading the apps' roles", SUPERUSER, pg, e))?;
        if let Some(row) = row {
            let stored: Option<String> = row.get("rolpassword");
            let ok = stored.as_deref().is_some_and(|v| {
                passwords
                    .get(&p.role)
                    .is_some_and(|want| scram::verify(v, want.expose()))
            });
            let superuser: bool = row.get("rolsuper");
            let login: bool = row.get("rolcanlogin");
            let bypass: bool = row.get::<bool, _>("rolbypassrls") || superuser;
            let search_path: Option<String> = row.get("search_path");
            let password = if ok { PASSWORD_MATCHES } else { "differs" };
            out.push(Observed {
                id: ResourceId::new(Layer::Database, "app-role", &p.role),
                spec: Some(json!({
                    "login": login,
                    "bypassrls": bypass,
                    "search_path": search_path,
                    "password": password,
                })),
                state: ObservedState::Present,
            });
        }
    }
    close(su).await;
    for (_, p) in &apps {
        report.trips(1);
        let mut su = superuser(pg, "postgres", report).await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&p.database)
                .fetch_one(&mut su)
                .await
                .map_err(|e| db_error("reading the databases", SUPERUSER, pg, e))?;
        close(su).await;
        if !exists {
            continue;
        }
        let mut db = superuser(pg, &p.database, report).await?;
        report.trips(1);
        let usage: Option<bool> = sqlx::query_scalar(
            "SELECT has_schema_privilege($2, n.oid, 'USAGE') AND has_database_privilege($2, current_database(), 'CONNECT')
             FROM pg_namespace n WHERE n.nspname = $1 AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2)",
        )
        .bind(&p.schema)
        .bind(&p.role)
        .fetch_optional(&mut db)
        .await
        .map_err(|e| db_error("reading the apps' schemas", SUPERUSER, pg, e))?;
        close(db).await;
        if let Some(usage) = usage {
            let users: Vec<String> = if usage {
                vec![p.role.clone()]
            } else {
                Vec::new()
            };
            out.push(Observed {
                id: ResourceId::new(
                    Layer::Database,
                    "app-schema",
                    format!("{}.{}", p.database, p.schema),
                ),
                spec: Some(json!({ "usage": users })),
                state: ObservedState::Present,
            });
        }
    }
    Ok(out)
}

/// Whether a step is one of the apps' (the platform layer's apply leaves them here).
pub fn is_app_step(kind: &str) -> bool {
    matches!(kind, "app-role" | "app-schema")
}

/// Brings the parts of every app a step of `plan` names to what is wanted. Each
/// app's statements are idempotent, so a run cut off midway is finished by the next.
pub async fn apply(
    pg: &PgAccess,
    env: &Environment,
    passwords: &BTreeMap<String, Secret>,
    plan: &Plan,
) -> Result<Report, SeedError> {
    let mut report = Report::new("postgres");
    for (app, p) in apps(env) {
        let named = plan.steps.iter().any(|s| {
            is_app_step(&s.id.kind)
                && (s.id.name == p.role || s.id.name == format!("{}.{}", p.database, p.schema))
        });
        if !named {
            continue;
        }
        let password = passwords.get(&p.role).ok_or_else(|| {
            SeedError::from(SeedErrorKind::NotRun {
                service: "postgres",
            })
            .hint(format!(
                "the password of app {app}'s role was not resolved (apps.{app}.uses.postgres.password)"
            ))
        })?;
        ensure(pg, p, password, &mut report).await?;
        report.change(format!(
            "app {app}: role {} on {} schema {} (DML only, subject to row-level security)",
            p.role,
            if p.own_database {
                format!("its own database {}", p.database)
            } else {
                format!("database {}", p.database)
            },
            p.schema
        ));
    }
    Ok(report)
}

async fn ensure(
    pg: &PgAccess,
    p: &AppPostgres,
    password: &Secret,
    report: &mut Report,
) -> Result<(), SeedError> {
    let role = ident(&p.role);
    let db = ident(&p.database);
    let schema = ident(&p.schema);
    let admin = ident(ADMIN);
    let verifier = literal(&scram::verifier(password.expose()));
    let attrs = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT";
    let mut su = superuser(pg, "postgres", report).await?;
    report.trips(1);
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(&p.role)
            .fetch_one(&mut su)
            .await
            .map_err(|e| db_error("reading the roles", SUPERUSER, pg, e))?;
    let verb = if exists { "ALTER" } else { "CREATE" };
    exec(
        &mut su,
        pg,
        &format!("creating or altering role {}", p.role),
        format!("{verb} ROLE {role} WITH {attrs} PASSWORD {verifier}"),
        report,
    )
    .await?;
    exec(
        &mut su,
        pg,
        &format!("setting the search_path of role {}", p.role),
        format!("ALTER ROLE {role} SET search_path TO {schema}"),
        report,
    )
    .await?;
    if p.own_database {
        report.trips(1);
        let have: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&p.database)
                .fetch_one(&mut su)
                .await
                .map_err(|e| db_error("reading the databases", SUPERUSER, pg, e))?;
        if !have {
            exec(
                &mut su,
                pg,
                &format!("creating database {}", p.database),
                format!("CREATE DATABASE {db} OWNER {admin} TEMPLATE template0"),
                report,
            )
            .await?;
        }
        exec(
            &mut su,
            pg,
            &format!("setting privileges on database {}", p.database),
            format!(
                "REVOKE ALL ON DATABASE {db} FROM PUBLIC; GRANT CONNECT ON DATABASE {db} TO {role}"
            ),
            report,
        )
        .await?;
    } else {
        exec(
            &mut su,
            pg,
            &format!("granting CONNECT on database {}", p.database),
            format!("GRANT CONNECT ON DATABASE {db} TO {role}"),
            report,
        )
        .await?;
    }
    close(su).await;
    let mut conn = superuser(pg, &p.database, report).await?;
    let mut sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {schema} AUTHORIZATION {admin};
         GRANT USAGE ON SCHEMA {schema} TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};
         GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role};
         ALTER DEFAULT PRIVILEGES FOR ROLE {admin} IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role};
         ALTER DEFAULT PRIVILEGES FOR ROLE {admin} IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {role};"
    );
    if p.own_database {
        // Nobody but the owner creates anything in the app's database.
        sql.push_str("\nREVOKE CREATE ON SCHEMA public FROM PUBLIC;");
    }
    let done = exec(
        &mut conn,
        pg,
        &format!("setting up schema {} in database {}", p.schema, p.database),
        sql,
        report,
    )
    .await;
    close(conn).await;
    done
}
