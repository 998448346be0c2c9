//! Wiring of the bring-up commands: load the environment, open its state, choose the
//! driver, then hand over to `lifecycle` (generic over drivers) or a connect helper.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use cp_core::Environment;
use cp_core::names::{CoreKind, ServiceName};
use cp_core::serverconf::{NATS_ADMIN_USER, POSTGRES_SUPERUSER, REDIS_ADMIN_USER};
use cp_drivers::{Context, Driver};
use cp_runtime::project::Project;
use cp_runtime::secrets::{Secret, SecretResolver};
use cp_runtime::state::StateDir;

use super::lifecycle;
use crate::cli::{Command, Global, Output, PgRole};
use crate::platform::{self, AnyDriver};

/// Everything a bring-up command needs.
pub(crate) struct Session {
    pub(crate) env: Environment,
    pub(crate) state: StateDir,
    pub(crate) secrets: SecretResolver,
    pub(crate) driver: AnyDriver,
}

impl Session {
    pub(crate) fn cx(&self) -> Context<'_> {
        Context {
            env: &self.env,
            secrets: &self.secrets,
            state: &self.state,
        }
    }

    /// A core service's endpoint, or why it has none.
    pub(crate) fn endpoint(&self, kind: CoreKind) -> Result<cp_runtime::probe::Endpoint> {
        self.driver
            .endpoint(&self.env, &ServiceName::core(kind))
            .with_context(|| format!("{kind} is not part of {}", self.env.name))
    }

    pub(crate) async fn secret(&self, path: &str, r: &cp_core::units::SecretRef) -> Result<Secret> {
        Ok(self.secrets.resolve(path, r).await?)
    }
}

/// The state directory, made absolute: the services are started with other working
/// directories (initdb reads its password file by this path), and a relative
/// `--environments` or `--state-dir` must still name the same place.
fn state_path(global: &Global, project: &Project) -> PathBuf {
    let p = global
        .state_dir
        .clone()
        .unwrap_or_else(|| project.state_dir(&global.env));
    std::path::absolute(&p).unwrap_or(p)
}

/// Loads, opens state (creating it only when `create`), selects the driver.
pub(crate) async fn session(
    global: &Global,
    project: &Project,
    create: bool,
) -> Result<Result<Session, ExitCode>> {
    let env = match super::load(global, project, &global.env)? {
        Ok(e) => e,
        Err(code) => return Ok(Err(code)),
    };
    let path = state_path(global, project);
    // Choose the driver first: when its platform is unusable (no cluster configured),
    // nothing, not even the state directory, has been created.
    let (driver, why) = platform::select(&env, &path, project).await?;
    let state = if create {
        StateDir::open(&path, env.name.as_str())?
    } else {
        // Read-only commands must not create anything; a missing directory means
        // nothing was ever brought up, which observe reports as such.
        match StateDir::open_existing(&path)? {
            Some(s) => s,
            None => StateDir::phantom(&path),
        }
    };
    if global.output == Output::Text {
        eprintln!("{}: {why}", env.name);
    }
    let secrets = SecretResolver::new(Some(state.clone()));
    Ok(Ok(Session {
        env,
        state,
        secrets,
        driver,
    }))
}

pub(crate) async fn run(global: &Global, project: &Project, command: Command) -> Result<ExitCode> {
    let create = matches!(command, Command::Up { .. });
    let s = match session(global, project, create).await? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    match command {
        Command::Plan => lifecycle::plan(&s.driver, &s.env, global).await,
        Command::Up {
            services,
            timeout,
            no_seed,
        } => {
            let timeout = cp_core::units::Duration::parse(&timeout)
                .map(|d| Duration::from_secs(d.as_secs()))
                .map_err(|e| anyhow::anyhow!("--timeout: {e}; write e.g. 90s or 5m"))?;
            let known = s.env.service_names();
            let mut wanted = Vec::new();
            for name in &services {
                match known.iter().find(|k| k.as_str() == name) {
                    Some(k) => wanted.push(k.clone()),
                    None => {
                        let names: Vec<&str> = known.iter().map(ServiceName::as_str).collect();
                        eprintln!(
                            "error: no service `{name}` in {}; known: {}",
                            s.env.name,
                            names.join(", ")
                        );
                        return Ok(ExitCode::from(super::INVALID));
                    }
                }
            }
            let _lock = s.state.lock("up")?;
            let kind = match s.driver {
                AnyDriver::Process(_) => "process",
                AnyDriver::Docker(_) => "docker",
                AnyDriver::Kube(_) => "kubernetes",
            };
            s.state
                .write(platform::CHOICE_FILE, kind.as_bytes(), 0o644)?;
            lifecycle::up(&s.driver, s.cx(), &wanted, timeout, global).await?;
            if !no_seed {
                super::seed::after_up(&s, global).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Down { volumes } => {
            let _lock = s.state.lock("up")?;
            let code = lifecycle::down(&s.driver, s.cx(), volumes, global).await?;
            if volumes {
                // With the data gone, `auto` may choose afresh next time.
                let _ = std::fs::remove_file(s.state.join(platform::CHOICE_FILE));
            }
            Ok(code)
        }
        Command::Status { watch } => {
            let urls = connect_urls(&s).await;
            lifecycle::status(&s.driver, s.cx(), watch, global, &|svc| {
                urls.get(svc.as_str()).cloned()
            })
            .await
        }
        Command::Logs {
            service,
            follow,
            tail,
        } => lifecycle::logs(&s.driver, &s.env, &service, tail, follow).await,
        Command::Psql { role, args } => psql(&s, role, &args).await,
        Command::RedisCli { args } => redis_cli(&s, &args).await,
        Command::Nats => nats_info(&s, global).await,
        Command::VaultEnv => vault_env(&s).await,
        Command::Seed => super::seed::seed(&s, global).await,
        Command::Migrate { action } => super::seed::migrate(&s, global, action).await,
        Command::Tenant { action } => super::seed::tenant(&s, global, action).await,
        _ => unreachable!("not a bring-up command"),
    }
}

/// Connection URLs per core service for `status --output json`; credentials only in dev.
async fn connect_urls(s: &Session) -> std::collections::BTreeMap<String, serde_json::Value> {
    let dev = s.env.tier == cp_core::model::Tier::Dev;
    let mut out = std::collections::BTreeMap::new();
    let cred = |user: &str, pw: Option<&Secret>| match (dev, pw) {
        (true, Some(p)) => format!("{user}:{}@", p.expose()),
        _ => format!("{user}@"),
    };
    if let (Some(pg), Ok(ep)) = (&s.env.services.postgres, s.endpoint(CoreKind::Postgres)) {
        let app = if dev {
            s.secrets
                .resolve("services.postgres.app_password", &pg.app_password)
                .await
                .ok()
        } else {
            None
        };
        let admin = if dev {
            s.secrets
                .resolve("services.postgres.admin_password", &pg.admin_password)
                .await
                .ok()
        } else {
            None
        };
        out.insert(
            "postgres".into(),
            serde_json::json!({
                "app": format!("postgres://{}{}/{}", cred(&pg.app_role, app.as_ref()), ep.addr(), pg.database),
                "admin": format!("postgres://{}{}/{}", cred(&pg.admin_role, admin.as_ref()), ep.addr(), pg.database),
            }),
        );
    }
    if let (Some(r), Ok(ep)) = (&s.env.services.redis, s.endpoint(CoreKind::Redis)) {
        let app_user = s
            .env
            .services
            .postgres
            .as_ref()
            .map_or("anumate_app", |p| p.app_role.as_str());
        let app = if dev {
            s.secrets
                .resolve("services.redis.app_password", &r.app_password)
                .await
                .ok()
        } else {
            None
        };
        out.insert("redis".into(), serde_json::json!({"app": format!("redis://{}{}", cred(app_user, app.as_ref()), ep.addr())}));
    }
    if let (Some(n), Ok(ep)) = (&s.env.services.nats, s.endpoint(CoreKind::Nats)) {
        let app = if dev {
            s.secrets
                .resolve("services.nats.app_password", &n.app_password)
                .await
                .ok()
        } else {
            None
        };
        out.insert(
            "nats".into(),
            serde_json::json!({
                "app": format!("nats://{}{}", cred(&n.app_user, app.as_ref()), ep.addr()),
                "monitor": format!("http://{}:{}", ep.host, n.monitor_port),
            }),
        );
    }
    if let (Some(v), Ok(ep)) = (&s.env.services.vault, s.endpoint(CoreKind::Vault)) {
        let mut value = serde_json::json!({"addr": format!("http://{}", ep.addr())});
        if dev
            && let Ok(Some(t)) =
                cp_runtime::vault::root_token(v, &s.secrets, &s.state, s.driver.vault_keys_dir())
                    .await
        {
            value["token"] = serde_json::json!(t.expose());
        }
        out.insert("vault".into(), value);
    }
    out
}

async fn psql(s: &Session, role: PgRole, args: &[String]) -> Result<ExitCode> {
    let Some(pg) = &s.env.services.postgres else {
        bail!("postgres is disabled in {}", s.env.name)
    };
    let ep = s.endpoint(CoreKind::Postgres)?;
    let (user, path, r) = match role {
        PgRole::Admin => (
            pg.admin_role.as_str(),
            "services.postgres.admin_password",
            &pg.admin_password,
        ),
        PgRole::App => (
            pg.app_role.as_str(),
            "services.postgres.app_password",
            &pg.app_password,
        ),
        PgRole::Readonly => (
            pg.readonly_role.as_str(),
            "services.postgres.readonly_password",
            &pg.readonly_password,
        ),
        PgRole::Superuser => (
            POSTGRES_SUPERUSER,
            "services.postgres.superuser_password",
            &pg.superuser_password,
        ),
    };
    let db = if role == PgRole::Superuser {
        "postgres"
    } else {
        pg.database.as_str()
    };
    let password = s.secret(path, r).await?;
    let bin = cp_runtime::exec::find_postgres_binary("psql", &pg.common.version)?;
    // The password travels in the child's environment, never on its command line.
    let status = cp_runtime::exec::command(&bin)
        .env("PGHOST", &ep.host)
        .env("PGPORT", ep.port.to_string())
        .env("PGUSER", user)
        .env("PGDATABASE", db)
        .env("PGPASSWORD", password.expose())
        .args(args)
        .status()
        .context("cannot run psql")?;
    Ok(ExitCode::from(
        u8::try_from(status.code().unwrap_or(1)).unwrap_or(1),
    ))
}

async fn redis_cli(s: &Session, args: &[String]) -> Result<ExitCode> {
    let Some(r) = &s.env.services.redis else {
        bail!("redis is disabled in {}", s.env.name)
    };
    let ep = s.endpoint(CoreKind::Redis)?;
    let password = s
        .secret("services.redis.admin_password", &r.admin_password)
        .await?;
    let bin = cp_runtime::exec::find_binary("redis-cli")?;
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
    Ok(ExitCode::from(
        u8::try_from(status.code().unwrap_or(1)).unwrap_or(1),
    ))
}

async fn nats_info(s: &Session, global: &Global) -> Result<ExitCode> {
    let Some(n) = &s.env.services.nats else {
        bail!("nats is disabled in {}", s.env.name)
    };
    let ep = s.endpoint(CoreKind::Nats)?;
    let password = s
        .secret("services.nats.admin_password", &n.admin_password)
        .await?;
    let client = async_nats::ConnectOptions::with_user_and_password(
        NATS_ADMIN_USER.into(),
        password.expose().into(),
    )
    .connect(ep.addr())
    .await
    .with_context(|| format!("cannot connect to NATS at {}", ep.addr()))?;
    let info = client.server_info();
    let js = async_nats::jetstream::new(client.clone());
    let mut streams = Vec::new();
    for name in s.env.streams.keys() {
        match js.get_stream(name.as_str()).await {
            Ok(mut st) => {
                let i = st.info().await?;
                streams.push(serde_json::json!({
                    "stream": name, "messages": i.state.messages, "bytes": i.state.bytes,
                    "consumers": i.state.consumer_count, "subjects": i.config.subjects,
                }));
            }
            Err(_) => streams.push(serde_json::json!({"stream": name, "missing": true})),
        }
    }
    match global.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({"server": info.server_name, "version": info.version, "jetstream": info.jetstream, "streams": streams})
        ),
        Output::Text => {
            println!(
                "server {} (NATS {}), JetStream {}",
                info.server_name,
                info.version,
                if info.jetstream { "on" } else { "off" }
            );
            println!(
                "client URL: nats://{}@{} (monitoring: http://{}:{})",
                n.app_user,
                ep.addr(),
                ep.host,
                n.monitor_port
            );
            for st in streams {
                if st["missing"] == true {
                    println!(
                        "  {:<18} missing (run `controlplane seed`)",
                        st["stream"].as_str().unwrap_or("")
                    );
                } else {
                    println!(
                        "  {:<18} {:>8} msgs {:>10} bytes {:>3} consumers",
                        st["stream"].as_str().unwrap_or(""),
                        st["messages"],
                        st["bytes"],
                        st["consumers"]
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn vault_env(s: &Session) -> Result<ExitCode> {
    let Some(v) = &s.env.services.vault else {
        bail!("vault is disabled in {}", s.env.name)
    };
    let ep = s.endpoint(CoreKind::Vault)?;
    println!("export VAULT_ADDR=http://{}", ep.addr());
    println!("export BAO_ADDR=http://{}", ep.addr());
    match cp_runtime::vault::root_token(v, &s.secrets, &s.state, s.driver.vault_keys_dir()).await {
        Ok(Some(t)) if s.env.tier == cp_core::model::Tier::Dev => {
            println!("export VAULT_TOKEN={}", t.expose());
            println!("export BAO_TOKEN={}", t.expose());
        }
        _ => eprintln!(
            "# no token is kept for {}: log in with `bao login` (or set VAULT_TOKEN)",
            s.env.name
        ),
    }
    Ok(ExitCode::SUCCESS)
}
