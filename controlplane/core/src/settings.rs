//! The secret settings of the core services, typed: one enum instead of key-path
//! strings scattered through drivers, seed and CLI. Each variant knows its key path
//! (what errors and generated-secret files name) and where its reference lives in the
//! model.

use std::fmt;

use crate::model::Environment;
use crate::names::CoreKind;
use crate::units::SecretRef;

/// A credential of a core service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SecretSetting {
    /// `services.postgres.superuser_password` (bootstrap superuser `postgres`).
    PostgresSuperuser,
    /// `services.postgres.admin_password` (owner role).
    PostgresAdmin,
    /// `services.postgres.app_password` (application role, RLS applies).
    PostgresApp,
    /// `services.postgres.readonly_password`.
    PostgresReadonly,
    /// `services.postgres.backup_password` (BYPASSRLS, for dumps).
    PostgresBackup,
    /// `services.redis.admin_password`.
    RedisAdmin,
    /// `services.redis.app_password`.
    RedisApp,
    /// `services.nats.admin_password`.
    NatsAdmin,
    /// `services.nats.app_password`.
    NatsApp,
    /// `services.vault.dev_root_token` (dev-mode Vault only).
    VaultDevRootToken,
}

impl SecretSetting {
    /// Every setting, in a fixed order.
    pub const ALL: [SecretSetting; 10] = [
        SecretSetting::PostgresSuperuser,
        SecretSetting::PostgresAdmin,
        SecretSetting::PostgresApp,
        SecretSetting::PostgresReadonly,
        SecretSetting::PostgresBackup,
        SecretSetting::RedisAdmin,
        SecretSetting::RedisApp,
        SecretSetting::NatsAdmin,
        SecretSetting::NatsApp,
        SecretSetting::VaultDevRootToken,
    ];

    /// The key path in an environment file.
    pub fn path(self) -> &'static str {
        match self {
            SecretSetting::PostgresSuperuser => "services.postgres.superuser_password",
            SecretSetting::PostgresAdmin => "services.postgres.admin_password",
            SecretSetting::PostgresApp => "services.postgres.app_password",
            SecretSetting::PostgresReadonly => "services.postgres.readonly_password",
            SecretSetting::PostgresBackup => "services.postgres.backup_password",
            SecretSetting::RedisAdmin => "services.redis.admin_password",
            SecretSetting::RedisApp => "services.redis.app_password",
            SecretSetting::NatsAdmin => "services.nats.admin_password",
            SecretSetting::NatsApp => "services.nats.app_password",
            SecretSetting::VaultDevRootToken => "services.vault.dev_root_token",
        }
    }

    /// The service it belongs to.
    pub fn service(self) -> CoreKind {
        match self {
            SecretSetting::PostgresSuperuser
            | SecretSetting::PostgresAdmin
            | SecretSetting::PostgresApp
            | SecretSetting::PostgresReadonly
            | SecretSetting::PostgresBackup => CoreKind::Postgres,
            SecretSetting::RedisAdmin | SecretSetting::RedisApp => CoreKind::Redis,
            SecretSetting::NatsAdmin | SecretSetting::NatsApp => CoreKind::Nats,
            SecretSetting::VaultDevRootToken => CoreKind::Vault,
        }
    }

    /// Its reference in `env`: `None` when the service is disabled (or, for the dev
    /// root token, when Vault is not in dev mode; an unset dev token is generated).
    pub fn reference(self, env: &Environment) -> Option<SecretRef> {
        let s = &env.services;
        match self {
            SecretSetting::PostgresSuperuser => {
                s.postgres.as_ref().map(|p| p.superuser_password.clone())
            }
            SecretSetting::PostgresAdmin => s.postgres.as_ref().map(|p| p.admin_password.clone()),
            SecretSetting::PostgresApp => s.postgres.as_ref().map(|p| p.app_password.clone()),
            SecretSetting::PostgresReadonly => {
                s.postgres.as_ref().map(|p| p.readonly_password.clone())
            }
            SecretSetting::PostgresBackup => s.postgres.as_ref().map(|p| p.backup_password.clone()),
            SecretSetting::RedisAdmin => s.redis.as_ref().map(|r| r.admin_password.clone()),
            SecretSetting::RedisApp => s.redis.as_ref().map(|r| r.app_password.clone()),
            SecretSetting::NatsAdmin => s.nats.as_ref().map(|n| n.admin_password.clone()),
            SecretSetting::NatsApp => s.nats.as_ref().map(|n| n.app_password.clone()),
            SecretSetting::VaultDevRootToken => s
                .vault
                .as_ref()
                .filter(|v| v.mode == crate::raw::VaultMode::Dev)
                .map(|v| v.dev_root_token.clone().unwrap_or(SecretRef::Generate)),
        }
    }
}

impl fmt::Display for SecretSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.path())
    }
}
