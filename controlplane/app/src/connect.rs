//! What the connect helpers (`psql`, `redis-cli`, `vault-env`) need from an open
//! session: where the service answers, who to log in as, and the credential, as one
//! [`Invocation`] per tool. A front end runs it (passwords in the child's environment,
//! never on its command line); nothing here runs a program.

use cp_core::model::Tier;
use cp_core::names::CoreKind;
use cp_core::serverconf::REDIS_ADMIN_USER;
use cp_core::settings::SecretSetting;
use cp_drivers::Driver as _;

use crate::error::AppError;
use crate::session::Session;

/// A PostgreSQL role to connect as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgRole {
    /// The migration owner.
    Admin,
    /// The application's role (RLS applies).
    App,
    /// The read-only role.
    Readonly,
    /// The cluster's superuser (the `postgres` database).
    Superuser,
}

/// A program to run against a service: its path, arguments and environment (which
/// holds the password).
#[derive(Debug)]
pub struct Invocation {
    /// The program.
    pub program: std::path::PathBuf,
    /// Its arguments before the user's.
    pub args: Vec<String>,
    /// Its environment (credentials included).
    pub env: Vec<(String, String)>,
}

fn endpoint(s: &Session, kind: CoreKind) -> Result<cp_runtime::probe::Endpoint, AppError> {
    s.endpoint(kind)
        .ok_or_else(|| AppError::Usage(format!("{kind} is not part of {}", s.env().name)))
}

fn not_found(e: impl std::fmt::Display) -> AppError {
    AppError::Usage(e.to_string())
}

/// `psql` as `role` on the environment's database.
pub async fn psql(s: &Session, role: PgRole) -> Result<Invocation, AppError> {
    let env = s.env();
    let Some(pg) = &env.services.postgres else {
        return Err(AppError::Usage(format!(
            "postgres is disabled in {}",
            env.name
        )));
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
    let password = cp_runtime::access::credential(env, s.secrets(), setting).await?;
    let program =
        cp_runtime::exec::find_postgres_binary("psql", &pg.common.version).map_err(not_found)?;
    let mut env = vec![
        ("PGHOST".into(), ep.host.clone()),
        ("PGPORT".into(), ep.port.to_string()),
        ("PGUSER".into(), user.into()),
        ("PGDATABASE".into(), db.into()),
        ("PGPASSWORD".into(), password.expose().to_owned()),
    ];
    // verify-full against the environment's CA under TLS.
    env.extend(ep.libpq_tls_env());
    Ok(Invocation {
        program,
        args: Vec::new(),
        env,
    })
}

/// `redis-cli` as the admin user.
pub async fn redis_cli(s: &Session) -> Result<Invocation, AppError> {
    let env = s.env();
    if env.services.redis.is_none() {
        return Err(AppError::Usage(format!(
            "redis is disabled in {}",
            env.name
        )));
    }
    let ep = endpoint(s, CoreKind::Redis)?;
    let password =
        cp_runtime::access::credential(env, s.secrets(), SecretSetting::RedisAdmin).await?;
    let program = cp_runtime::exec::find_binary("redis-cli").map_err(not_found)?;
    let mut args = vec![
        "-h".into(),
        ep.host.clone(),
        "-p".into(),
        ep.port.to_string(),
        "--user".into(),
        REDIS_ADMIN_USER.into(),
    ];
    if let Some(t) = &ep.tls {
        // redis-cli verifies the server against the CA (and its name) with --tls.
        args.extend([
            "--tls".into(),
            "--cacert".into(),
            t.ca.to_string_lossy().into_owned(),
            "--sni".into(),
            t.server_name.clone(),
        ]);
    }
    Ok(Invocation {
        program,
        args,
        env: vec![("REDISCLI_AUTH".into(), password.expose().to_owned())],
    })
}

/// `vault-env`: the shell lines that point `bao`/`vault` at the environment's server;
/// a token only in dev, where it exists to be used from a shell. The second value
/// says why no token was given, when none was.
pub async fn vault_env(s: &Session) -> Result<(String, Option<String>), AppError> {
    let env = s.env();
    let Some(v) = &env.services.vault else {
        return Err(AppError::Usage(format!(
            "vault is disabled in {}",
            env.name
        )));
    };
    let ep = endpoint(s, CoreKind::Vault)?;
    let mut text = format!("export VAULT_ADDR={a}\nexport BAO_ADDR={a}\n", a = ep.url());
    if let Some(t) = &ep.tls {
        text.push_str(&format!(
            "export VAULT_CACERT={c}\nexport BAO_CACERT={c}\n",
            c = t.ca.display()
        ));
    }
    let token =
        cp_runtime::vault::root_token(v, s.secrets(), s.state(), s.driver().vault_keys_dir()).await;
    match token {
        Ok(Some(t)) if env.tier == Tier::Dev => {
            text.push_str(&format!(
                "export VAULT_TOKEN={t}\nexport BAO_TOKEN={t}\n",
                t = t.expose()
            ));
            Ok((text, None))
        }
        _ => Ok((
            text,
            Some(format!(
                "no token is kept for {}: log in with `bao login` (or set VAULT_TOKEN)",
                env.name
            )),
        )),
    }
}

/// `logs SERVICE`: the service's log to `out`.
pub async fn logs(
    s: &Session,
    service: &cp_core::names::ServiceName,
    tail: usize,
    follow: bool,
    out: &mut (dyn std::io::Write + Send),
) -> Result<(), AppError> {
    Ok(s.driver().logs(s.env(), service, tail, follow, out).await?)
}
