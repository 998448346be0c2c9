//! Where the core services answer and with which credentials, resolved once per run:
//! what seeding, backups, the server and the CLI's connect helpers all need, so none
//! of them depends on another to reach a service.

use cp_core::model::Environment;
use cp_core::names::CoreKind;
use cp_core::settings::SecretSetting;

use crate::probe::Endpoint;
use crate::secrets::{Secret, SecretError, SecretResolver};
use crate::state::StateDir;
use crate::vault::{Client, RequestError, RootTokenError};

/// Why access to a service could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// A credential could not be resolved.
    #[error("cannot resolve `{setting}`")]
    Secret {
        /// The setting.
        setting: SecretSetting,
        /// Why.
        #[source]
        source: SecretError,
    },
    /// An app's credential could not be resolved.
    #[error("cannot resolve `apps.{app}.uses.{service}.password`")]
    AppSecret {
        /// The app.
        app: String,
        /// The service.
        service: &'static str,
        /// Why.
        #[source]
        source: SecretError,
    },
    /// The driver knows no endpoint for an enabled service.
    #[error(
        "{service}: the driver reports no endpoint for this service; run `controlplane up` first"
    )]
    NoEndpoint {
        /// The service.
        service: CoreKind,
    },
    /// Vault's kept root token could not be read.
    #[error("vault: cannot read the kept root token")]
    RootToken(#[source] RootTokenError),
}

/// Resolves the credential `setting` of `env`.
pub async fn credential(
    env: &Environment,
    secrets: &SecretResolver,
    setting: SecretSetting,
) -> Result<Secret, AccessError> {
    let reference = setting
        .reference(env)
        .unwrap_or(cp_core::units::SecretRef::Generate);
    secrets
        .resolve(setting.path(), &reference)
        .await
        .map_err(|source| AccessError::Secret { setting, source })
}

/// The setting an app's credential for `service` comes from (and a generated one's
/// name in the state directory): `apps.<app>.uses.<service>.password`.
pub fn app_setting(app: &cp_core::names::ServiceName, service: &str) -> String {
    cp_core::appenv::setting(app, service)
}

/// Resolves the credential an app uses for `service`.
pub async fn app_credential(
    secrets: &SecretResolver,
    app: &cp_core::names::ServiceName,
    service: &'static str,
    reference: &cp_core::units::SecretRef,
) -> Result<Secret, AccessError> {
    secrets
        .resolve(&app_setting(app, service), reference)
        .await
        .map_err(|source| AccessError::AppSecret {
            app: app.to_string(),
            service,
            source,
        })
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

impl PgAccess {
    /// The password of one of the platform's roles (or the superuser).
    pub fn password(&self, role: &str) -> &Secret {
        match role {
            cp_core::roles::SUPERUSER => &self.superuser_password,
            cp_core::roles::ADMIN => &self.admin_password,
            cp_core::roles::APP => &self.app_password,
            cp_core::roles::READONLY => &self.readonly_password,
            _ => &self.backup_password,
        }
    }

    /// The setting a role's password comes from.
    pub fn setting(role: &str) -> SecretSetting {
        match role {
            cp_core::roles::SUPERUSER => SecretSetting::PostgresSuperuser,
            cp_core::roles::ADMIN => SecretSetting::PostgresAdmin,
            cp_core::roles::APP => SecretSetting::PostgresApp,
            cp_core::roles::READONLY => SecretSetting::PostgresReadonly,
            _ => SecretSetting::PostgresBackup,
        }
    }
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
    /// The passwords of apps' own ACL users (`apps.<app>.uses.redis`), by user name.
    pub app_users: std::collections::BTreeMap<String, Secret>,
}

/// Where NATS answers and its users' passwords.
#[derive(Debug, Clone)]
pub struct NatsAccess {
    /// Client endpoint.
    pub endpoint: Endpoint,
    /// The monitoring endpoint (`/varz`, `/jsz`).
    pub monitor: Endpoint,
    /// The admin user's password (user `admin`).
    pub admin_password: Secret,
    /// The app user's password.
    pub app_password: Secret,
}

/// Where Vault answers and the token controlplane uses.
#[derive(Debug, Clone)]
pub struct VaultAccess {
    /// `http://host:port`, or `https://` under TLS.
    pub addr: String,
    /// The environment's CA (PEM file) to verify an `https://` server against.
    pub ca: Option<std::path::PathBuf>,
    /// The token: the dev root token, the kept bootstrap root token, or `VAULT_TOKEN`.
    /// `None` when none is available (outside dev after the root token was revoked
    /// and no `VAULT_TOKEN` is set).
    pub token: Option<Secret>,
}

impl VaultAccess {
    /// A client with `token` (the environment's CA trusted under TLS).
    pub fn client_with(&self, token: Secret) -> Client {
        Client::with_token_ca(&self.addr, token, self.ca.as_deref())
    }

    /// A client with the token; [`RequestError::NoToken`] when there is none.
    pub fn client(&self) -> Result<Client, RequestError> {
        match &self.token {
            Some(t) => Ok(self.client_with(t.clone())),
            None => Err(RequestError::NoToken {
                hint: "outside dev the bootstrap root token is revoked after the first seed: export \
                       VAULT_TOKEN with a token holding the `controlplane-seeder` policy (or a root \
                       token from `bao operator generate-root`)",
            }),
        }
    }
}

/// Everything needed to reach the core services, resolved once by the caller. A
/// service that is not enabled in the environment is `None`.
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
    /// The passwords of apps' own PostgreSQL roles (`apps.<app>.uses.postgres`), by
    /// role.
    pub app_roles: std::collections::BTreeMap<String, Secret>,
}

impl Access {
    /// Resolves endpoints (from the driver, through `endpoint`) and secrets (from the
    /// environment's references; generated dev secrets come from `state`, Vault's kept
    /// root token from the driver's `vault_keys_dir` in it, else `VAULT_TOKEN`).
    pub async fn resolve(
        env: &Environment,
        endpoint: impl Fn(CoreKind) -> Option<Endpoint>,
        secrets: &SecretResolver,
        state: &StateDir,
        vault_keys_dir: &str,
    ) -> Result<Self, AccessError> {
        let s = &env.services;
        let ep = |service: CoreKind| endpoint(service).ok_or(AccessError::NoEndpoint { service });
        let cred = |setting| credential(env, secrets, setting);
        let postgres = match &s.postgres {
            None => None,
            Some(pg) => Some(PgAccess {
                endpoint: ep(CoreKind::Postgres)?,
                database: pg.database.clone(),
                superuser_password: cred(SecretSetting::PostgresSuperuser).await?,
                admin_password: cred(SecretSetting::PostgresAdmin).await?,
                app_password: cred(SecretSetting::PostgresApp).await?,
                readonly_password: cred(SecretSetting::PostgresReadonly).await?,
                backup_password: cred(SecretSetting::PostgresBackup).await?,
            }),
        };
        let redis = match &s.redis {
            None => None,
            Some(_) => {
                let mut app_users = std::collections::BTreeMap::new();
                for (name, app) in &env.apps {
                    if let Some(r) = &app.uses.redis {
                        app_users.insert(
                            r.user.clone(),
                            app_credential(secrets, name, "redis", &r.password).await?,
                        );
                    }
                }
                Some(RedisAccess {
                    endpoint: ep(CoreKind::Redis)?,
                    admin_password: cred(SecretSetting::RedisAdmin).await?,
                    app_password: cred(SecretSetting::RedisApp).await?,
                    app_users,
                })
            }
        };
        let nats = match &s.nats {
            None => None,
            Some(n) => {
                let client = ep(CoreKind::Nats)?;
                // A node of a local cluster has its monitoring port beside its client
                // port (`topology::nats_nodes`); one server, or a Service, the
                // configured one.
                let monitor_port = cp_core::topology::nats_nodes(env, n)
                    .iter()
                    .find(|node| node.index > 0 && node.client == client.port)
                    .map_or(n.monitor_port, |node| node.monitor);
                Some(NatsAccess {
                    monitor: Endpoint {
                        host: client.host.clone(),
                        port: monitor_port,
                        tls: client.tls.clone(),
                    },
                    endpoint: client,
                    admin_password: cred(SecretSetting::NatsAdmin).await?,
                    app_password: cred(SecretSetting::NatsApp).await?,
                })
            }
        };
        let vault = match &s.vault {
            None => None,
            Some(v) => {
                let ep = ep(CoreKind::Vault)?;
                let kept = crate::vault::root_token(v, secrets, state, vault_keys_dir)
                    .await
                    .map_err(AccessError::RootToken)?;
                let token = kept.or_else(|| {
                    std::env::var("VAULT_TOKEN")
                        .ok()
                        .filter(|t| !t.is_empty())
                        .map(Secret::new)
                });
                Some(VaultAccess {
                    addr: ep.url(),
                    ca: ep.tls.as_ref().map(|t| t.ca.clone()),
                    token,
                })
            }
        };
        let mut app_roles = std::collections::BTreeMap::new();
        if s.postgres.is_some() {
            for (name, app) in &env.apps {
                if let Some(p) = &app.uses.postgres {
                    app_roles.insert(
                        p.role.clone(),
                        app_credential(secrets, name, "postgres", &p.password).await?,
                    );
                }
            }
        }
        Ok(Self {
            postgres,
            redis,
            nats,
            vault,
            app_roles,
        })
    }
}

/// An app's platform-given environment where the driver's endpoints answer (the
/// process platform runs no apps: this is what an app started on this machine gets,
/// and what `controlplane app-env` prints), its credentials resolved and placed into
/// its URLs. Holds secrets: never log it.
pub async fn app_environment(
    env: &Environment,
    app: &cp_core::names::ServiceName,
    endpoint: impl Fn(CoreKind) -> Option<Endpoint>,
    secrets: &SecretResolver,
) -> Result<std::collections::BTreeMap<String, Secret>, AccessError> {
    use cp_core::appenv::{AppValue, Dial, app_env, fill};
    let mut out = std::collections::BTreeMap::new();
    let Some(a) = env.apps.get(app) else {
        return Ok(out);
    };
    let dial = |kind: CoreKind| {
        endpoint(kind).map(|e| Dial {
            host: e.host,
            port: e.port,
            ca: e.tls.map(|t| t.ca.display().to_string()),
        })
    };
    for (var, v) in app_env(app, a, &dial) {
        let value = match &v {
            AppValue::Plain { .. } => fill(&v, ""),
            AppValue::WithSecret {
                setting, reference, ..
            } => {
                let service: &'static str = match setting.rsplit('.').nth(1) {
                    Some("postgres") => "postgres",
                    Some("nats") => "nats",
                    Some("redis") => "redis",
                    _ => "vault",
                };
                let secret = app_credential(secrets, app, service, reference).await?;
                fill(&v, secret.expose())
            }
        };
        out.insert(var, Secret::new(value));
    }
    Ok(out)
}
