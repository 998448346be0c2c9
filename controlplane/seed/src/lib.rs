//! Seeding a running environment: PostgreSQL roles and migrations with row-level
//! security, JetStream streams, Vault mounts/keys/policies/AppRole, Redis ACL users,
//! tenants, and the CloudEvents the control plane publishes about itself.
//!
//! Architecture invariant: this crate is the only one that runs SQL against the
//! platform database or writes Vault/NATS/Redis configuration.
//!
//! Every step observes before it writes, so seeding twice changes nothing the second
//! time (and says so), and a run cut off midway is finished by the next one.

pub mod events;
pub mod nats;
pub mod postgres;
pub mod redis;
pub mod tenants;
pub mod vault;

use cp_core::model::Environment;
use cp_core::names::CoreKind;
use cp_runtime::probe::Endpoint;
use cp_runtime::secrets::{Secret, SecretResolver};
use cp_runtime::state::StateDir;
use serde::Serialize;

/// What one seeding step did to one service.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// `postgres`, `nats`, `vault`, `redis`, `tenants`.
    pub service: &'static str,
    /// One line per change made (`created role anumate_app`); empty when nothing changed.
    pub changes: Vec<String>,
    /// Requests or statements sent to the service (the seed benchmark reports them).
    pub round_trips: u64,
}

impl Report {
    /// An empty report for `service`.
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            ..Self::default()
        }
    }

    /// Records a change.
    pub fn change(&mut self, what: impl Into<String>) {
        self.changes.push(what.into());
    }

    /// Counts `n` round trips.
    pub fn trips(&mut self, n: u64) {
        self.round_trips += n;
    }

    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// A seeding step failed: which service, what happened, and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{service}: {message}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
pub struct SeedError {
    /// The service (`postgres`, `nats`, ...).
    pub service: &'static str,
    /// What went wrong (never a secret value).
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<String>,
}

impl SeedError {
    /// An error without a hint.
    pub fn new(service: &'static str, message: impl Into<String>) -> Self {
        Self {
            service,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds what to do about it.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// Where PostgreSQL answers and the passwords of the roles the seeder manages.
#[derive(Debug, Clone)]
pub struct PgAccess {
    /// Server endpoint.
    pub endpoint: Endpoint,
    /// The platform database.
    pub database: String,
    /// Bootstrap superuser password (user `postgres`).
    pub superuser_password: Secret,
    /// Password of the admin role (owner of schemas and tables).
    pub admin_password: Secret,
    /// Password of the application role.
    pub app_password: Secret,
    /// Password of the read-only role.
    pub readonly_password: Secret,
    /// Password of the backup role.
    pub backup_password: Secret,
}

/// Where Redis answers and its users' passwords.
#[derive(Debug, Clone)]
pub struct RedisAccess {
    /// Server endpoint.
    pub endpoint: Endpoint,
    /// The admin ACL user's password (user `admin`, written by the driver).
    pub admin_password: Secret,
    /// The app ACL user's password.
    pub app_password: Secret,
}

/// Where NATS answers and its users' passwords.
#[derive(Debug, Clone)]
pub struct NatsAccess {
    /// Client endpoint.
    pub endpoint: Endpoint,
    /// The admin user's password (user `admin`).
    pub admin_password: Secret,
    /// The app user's password.
    pub app_password: Secret,
}

/// Where Vault answers and the token the seeder uses.
#[derive(Debug, Clone)]
pub struct VaultAccess {
    /// `http://host:port`.
    pub addr: String,
    /// The token: the dev root token, the kept bootstrap root token, or `VAULT_TOKEN`.
    /// `None` when none is available (outside dev after the root token was revoked
    /// and no `VAULT_TOKEN` is set).
    pub token: Option<Secret>,
}

/// Everything the seeder needs to reach the services, resolved once by the caller.
/// A service that is not enabled in the environment is `None`.
#[derive(Debug, Clone)]
pub struct Access {
    /// PostgreSQL.
    pub postgres: Option<PgAccess>,
    /// Redis.
    pub redis: Option<RedisAccess>,
    /// NATS.
    pub nats: Option<NatsAccess>,
    /// Vault.
    pub vault: Option<VaultAccess>,
}

impl Access {
    /// Resolves endpoints (from the driver, through `endpoint`) and secrets (from the
    /// environment's references; generated dev secrets come from `state`, Vault's kept
    /// root token from the driver's `vault_keys_dir` in it).
    pub async fn resolve(
        env: &Environment,
        endpoint: impl Fn(CoreKind) -> Option<Endpoint>,
        secrets: &SecretResolver,
        state: &StateDir,
        vault_keys_dir: &str,
    ) -> Result<Self, SeedError> {
        let s = &env.services;
        let secret = |service: &'static str, setting: &'static str, r| async move {
            secrets
                .resolve(setting, r)
                .await
                .map_err(|e| SeedError::new(service, format!("cannot resolve `{setting}`: {e}")))
        };
        let missing = |service: &'static str| {
            SeedError::new(service, "the driver reports no endpoint for this service")
                .hint("run `controlplane up` first")
        };
        let postgres = match &s.postgres {
            None => None,
            Some(pg) => Some(PgAccess {
                endpoint: endpoint(CoreKind::Postgres).ok_or_else(|| missing("postgres"))?,
                database: pg.database.clone(),
                superuser_password: secret(
                    "postgres",
                    "services.postgres.superuser_password",
                    &pg.superuser_password,
                )
                .await?,
                admin_password: secret(
                    "postgres",
                    "services.postgres.admin_password",
                    &pg.admin_password,
                )
                .await?,
                app_password: secret(
                    "postgres",
                    "services.postgres.app_password",
                    &pg.app_password,
                )
                .await?,
                readonly_password: secret(
                    "postgres",
                    "services.postgres.readonly_password",
                    &pg.readonly_password,
                )
                .await?,
                backup_password: secret(
                    "postgres",
                    "services.postgres.backup_password",
                    &pg.backup_password,
                )
                .await?,
            }),
        };
        let redis = match &s.redis {
            None => None,
            Some(r) => Some(RedisAccess {
                endpoint: endpoint(CoreKind::Redis).ok_or_else(|| missing("redis"))?,
                admin_password: secret("redis", "services.redis.admin_password", &r.admin_password)
                    .await?,
                app_password: secret("redis", "services.redis.app_password", &r.app_password)
                    .await?,
            }),
        };
        let nats = match &s.nats {
            None => None,
            Some(n) => Some(NatsAccess {
                endpoint: endpoint(CoreKind::Nats).ok_or_else(|| missing("nats"))?,
                admin_password: secret("nats", "services.nats.admin_password", &n.admin_password)
                    .await?,
                app_password: secret("nats", "services.nats.app_password", &n.app_password).await?,
            }),
        };
        let vault = match &s.vault {
            None => None,
            Some(v) => {
                let ep = endpoint(CoreKind::Vault).ok_or_else(|| missing("vault"))?;
                let kept = cp_runtime::vault::root_token(v, secrets, state, vault_keys_dir)
                    .await
                    .map_err(|e| SeedError::new("vault", format!("cannot read the token: {e}")))?;
                let token = kept.or_else(|| {
                    std::env::var("VAULT_TOKEN")
                        .ok()
                        .filter(|t| !t.is_empty())
                        .map(Secret::new)
                });
                Some(VaultAccess {
                    addr: format!("http://{}", ep.addr()),
                    token,
                })
            }
        };
        Ok(Self {
            postgres,
            redis,
            nats,
            vault,
        })
    }
}

/// What `seed` did: one report per service, and whether the bootstrap root token was
/// revoked.
#[derive(Debug, Clone, Serialize)]
pub struct SeedOutcome {
    /// One report per seeded service, in a fixed order.
    pub reports: Vec<Report>,
    /// Outside dev, a root token used for seeding is revoked afterwards.
    pub revoked_root_token: bool,
}

impl SeedOutcome {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        self.reports.iter().any(Report::changed)
    }
}

/// Seeds every enabled service: PostgreSQL (roles, migrations), NATS (streams), Redis
/// (ACL users) and Vault (audit, mounts, keys, policies, AppRole), the four at once
/// since none needs another. Outside dev a root token is revoked after a successful
/// run. A `seed.completed` event is published when anything changed.
pub async fn seed_all(access: &Access, env: &Environment) -> Result<SeedOutcome, SeedError> {
    let (pg, nats, redis, vault) = tokio::join!(
        async {
            match &access.postgres {
                Some(p) => postgres::seed(p).await.map(Some),
                None => Ok(None),
            }
        },
        async {
            match &access.nats {
                Some(n) => nats::seed(n, env).await.map(Some),
                None => Ok(None),
            }
        },
        async {
            match &access.redis {
                Some(r) => redis::seed(r, env).await.map(Some),
                None => Ok(None),
            }
        },
        async {
            match &access.vault {
                Some(v) => vault::seed(v, env).await.map(Some),
                None => Ok(None),
            }
        },
    );
    let mut reports: Vec<Report> = [pg?, nats?, redis?, vault?].into_iter().flatten().collect();
    let mut revoked_root_token = false;
    if let Some(v) = &access.vault
        && env.tier != cp_core::model::Tier::Dev
    {
        revoked_root_token = vault::revoke_root(v).await?;
    }
    if reports.iter().any(Report::changed)
        && let Some(n) = &access.nats
    {
        let changes: Vec<String> = reports
            .iter()
            .flat_map(|r| r.changes.iter().map(move |c| format!("{}: {c}", r.service)))
            .collect();
        let publisher = events::Publisher::connect(n, env.name.as_str()).await?;
        publisher
            .publish(events::Event::new(
                "seed.completed",
                serde_json::json!({"changes": changes}),
            ))
            .await?;
        let mut r = Report::new("events");
        r.change("published seed.completed");
        r.trips(2);
        reports.push(r);
    }
    Ok(SeedOutcome {
        reports,
        revoked_root_token,
    })
}
