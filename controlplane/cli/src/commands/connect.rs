//! The connect helpers: `psql`, `redis-cli`, `nats`, `vault-env`. Passwords travel to
//! the child in its environment, never on its command line.

use anyhow::Context as _;
use cp_app::{AppError, Exit, Session};
use cp_core::model::Tier;
use cp_core::names::CoreKind;
use cp_core::serverconf::REDIS_ADMIN_USER;
use cp_core::settings::SecretSetting;
use cp_drivers::Driver as _;

use super::Outcome;
use crate::cli::{Global, Output, PgRole};
use crate::output;

fn endpoint(s: &Session, kind: CoreKind) -> Result<cp_runtime::probe::Endpoint, AppError> {
    s.endpoint(kind)
        .ok_or_else(|| AppError::Usage(format!("{kind} is not part of {}", s.env.name)))
}

async fn credential(s: &Session, setting: SecretSetting) -> Result<cp_seed::Secret, AppError> {
    Ok(cp_runtime::access::credential(&s.env, &s.secrets, setting).await?)
}

fn exit_of(status: std::process::ExitStatus) -> Exit {
    if status.success() {
        Exit::Success
    } else {
        Exit::Failure
    }
}

pub(crate) async fn psql(s: &Session, role: PgRole, args: &[String]) -> Outcome {
    let Some(pg) = &s.env.services.postgres else {
        return Err(AppError::Usage(format!("postgres is disabled in {}", s.env.name)).into());
    };
    let ep = endpoint(s, CoreKind::Postgres)?;
    let (user, setting) = match role {
        PgRole::Admin => (cp_core::roles::ADMIN, SecretSetting::PostgresAdmin),
        PgRole::App => (cp_core::roles::APP, SecretSetting::PostgresApp),
        PgRole::Readonly => (cp_core::roles::READONLY, SecretSetting::PostgresReadonly),
        PgRole::Superuser => (cp_core::roles::SUPERUSER, SecretSetting::PostgresSuperuser),
    };
    let db = if role == PgRole::Superuser {
        "postgres"
    } else {
        pg.database.as_str()
    };
    let password = credential(s, setting).await?;
    let bin = cp_runtime::exec::find_postgres_binary("psql", &pg.common.version)
        .map_err(|e| AppError::Usage(e.to_string()))?;
    let status = cp_runtime::exec::command(&bin)
        .env("PGHOST", &ep.host)
        .env("PGPORT", ep.port.to_string())
        .env("PGUSER", user)
        .env("PGDATABASE", db)
        .env("PGPASSWORD", password.expose())
        .args(args)
        .status()
        .context("cannot run psql")?;
    Ok(exit_of(status))
}

pub(crate) async fn redis_cli(s: &Session, args: &[String]) -> Outcome {
    if s.env.services.redis.is_none() {
        return Err(AppError::Usage(format!("redis is disabled in {}", s.env.name)).into());
    }
    let ep = endpoint(s, CoreKind::Redis)?;
    let password = credential(s, SecretSetting::RedisAdmin).await?;
    let bin =
        cp_runtime::exec::find_binary("redis-cli").map_err(|e| AppError::Usage(e.to_string()))?;
    let status = cp_runtime::exec::command(&bin)
        .args([
            "-h",
            &ep.host,
            "-p",
            &ep.port.to_string(),
            "--user",
            REDIS_ADMIN_USER,
        ])
        .env("REDISCLI_AUTH", password.expose())
        .args(args)
        .status()
        .context("cannot run redis-cli")?;
    Ok(exit_of(status))
}

pub(crate) async fn nats_info(s: &Session, global: &Global) -> Outcome {
    let view = cp_app::ops::nats(s).await?;
    match global.output {
        Output::Json => output::json(&view)?,
        Output::Text => output::out(&view.to_string())?,
    }
    Ok(Exit::Success)
}

pub(crate) async fn vault_env(s: &Session) -> Outcome {
    let Some(v) = &s.env.services.vault else {
        return Err(AppError::Usage(format!("vault is disabled in {}", s.env.name)).into());
    };
    let ep = endpoint(s, CoreKind::Vault)?;
    let mut text = format!(
        "export VAULT_ADDR=http://{a}\nexport BAO_ADDR=http://{a}\n",
        a = ep.addr()
    );
    // A token is printed for dev only, where it exists to be used from a shell.
    match cp_runtime::vault::root_token(v, &s.secrets, &s.state, s.driver.vault_keys_dir()).await {
        Ok(Some(t)) if s.env.tier == Tier::Dev => {
            text.push_str(&format!(
                "export VAULT_TOKEN={t}\nexport BAO_TOKEN={t}\n",
                t = t.expose()
            ));
        }
        _ => eprintln!(
            "# no token is kept for {}: log in with `bao login` (or set VAULT_TOKEN)",
            s.env.name
        ),
    }
    output::out(&text)?;
    Ok(Exit::Success)
}
