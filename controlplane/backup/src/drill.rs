//! The restore drill: proves a set restores, without touching the live services.
//! PostgreSQL goes into a scratch database on the live server (every table's row
//! count checked against the manifest, then dropped); Redis, NATS and Vault go into
//! scratch servers started by the process driver on free loopback ports in a
//! temporary directory (each stream's messages and last sequence checked, the key
//! count checked, the Vault canary decrypted with a token of the backed-up Vault),
//! then torn down with their data.

use std::time::Duration;

use cp_core::model::{Environment, Tier, UnsealKeys};
use cp_core::names::{CoreKind, ServiceName};
use cp_core::units::SecretRef;
use cp_drivers::contract::{Context, Driver};
use cp_runtime::access::{Access, PgAccess};
use cp_runtime::secrets::{Secret, SecretResolver};
use cp_runtime::state::StateDir;

use crate::error::ServiceError;
use crate::manifest::{Detail, Manifest, Outcome};
use crate::set::SetReader;

/// How long the scratch servers may take to answer.
const SCRATCH_TIMEOUT: Duration = Duration::from_secs(90);

/// Why a drill failed.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// A service's restore or check failed.
    #[error("drill: {service}")]
    Service {
        /// The service.
        service: CoreKind,
        /// Why.
        #[source]
        source: ServiceError,
    },
    /// The scratch servers could not be started or stopped.
    #[error("drill: the scratch servers")]
    Scratch(#[source] cp_drivers::DriverError),
    /// The scratch directory.
    #[error("drill: cannot make a scratch directory")]
    Dir(#[source] std::io::Error),
    /// The scratch state directory.
    #[error("drill: the scratch state directory")]
    State(#[source] cp_runtime::state::StateError),
    /// The scratch servers' access.
    #[error("drill: reaching the scratch servers")]
    Access(#[source] cp_runtime::access::AccessError),
}

/// What the drill needs from the environment the set came from.
#[derive(Debug)]
pub struct Source<'a> {
    /// The environment.
    pub env: &'a Environment,
    /// Its PostgreSQL (the scratch database goes there).
    pub postgres: Option<&'a PgAccess>,
    /// Its Vault unseal keys (the snapshot opens only with them).
    pub unseal_keys: Vec<Secret>,
    /// A token valid in its Vault at backup time (decrypts the canary).
    pub vault_token: Option<Secret>,
}

fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .filter_map(|_| std::net::TcpListener::bind("127.0.0.1:0").ok())
        .collect();
    held.iter()
        .filter_map(|l| l.local_addr().ok().map(|a| a.port()))
        .collect()
}

/// The environment of the scratch servers: only `kinds` of the core services, on free
/// ports, dev-tier secrets (generated in the scratch directory), Vault's keys kept
/// there, no apps, extras, monitoring or backups.
fn scratch_env(env: &Environment, kinds: &[CoreKind]) -> Environment {
    let mut e = env.clone();
    e.tier = Tier::Dev;
    e.apps.clear();
    e.extras.clear();
    e.monitoring = None;
    e.backup = None;
    let p = free_ports(5);
    let s = &mut e.services;
    s.postgres = None;
    if !kinds.contains(&CoreKind::Redis) {
        s.redis = None;
    }
    if !kinds.contains(&CoreKind::Nats) {
        s.nats = None;
    }
    if !kinds.contains(&CoreKind::Vault) {
        s.vault = None;
    }
    if let Some(r) = &mut s.redis {
        r.common.port = p[0];
        r.admin_password = SecretRef::Generate;
        r.app_password = SecretRef::Generate;
    }
    if let Some(n) = &mut s.nats {
        n.common.port = p[1];
        n.monitor_port = p[2];
        n.admin_password = SecretRef::Generate;
        n.app_password = SecretRef::Generate;
    }
    if let Some(v) = &mut s.vault {
        v.common.port = p[3];
        v.cluster_port = p[4];
        v.unseal = UnsealKeys::State;
    }
    e
}

/// Restores `m` into scratch targets and checks it; one line per finding.
pub async fn drill(
    reader: &SetReader,
    m: &Manifest,
    source: &Source<'_>,
) -> Result<Vec<String>, DrillError> {
    let ok: Vec<CoreKind> = m
        .services
        .iter()
        .filter(|(_, r)| r.outcome == Outcome::Ok)
        .map(|(k, _)| *k)
        .collect();
    let mut lines = Vec::new();
    let fail = |service| move |source| DrillError::Service { service, source };
    if ok.contains(&CoreKind::Postgres) {
        let pg = source.postgres.ok_or_else(|| DrillError::Service {
            service: CoreKind::Postgres,
            source: ServiceError::Unavailable {
                service: CoreKind::Postgres,
                detail: "the drill needs the environment's PostgreSQL for its scratch database"
                    .into(),
            },
        })?;
        let line = crate::postgres::restore(
            reader,
            &m.services[&CoreKind::Postgres],
            pg,
            crate::postgres::Into::Scratch,
        )
        .await
        .map_err(fail(CoreKind::Postgres))?;
        lines.push(format!("postgres: {line}"));
    }
    let others: Vec<CoreKind> = ok
        .iter()
        .copied()
        .filter(|k| *k != CoreKind::Postgres)
        .collect();
    if others.is_empty() {
        return Ok(lines);
    }
    let tmp = tempfile::Builder::new()
        .prefix("cp-drill-")
        .tempdir()
        .map_err(DrillError::Dir)?;
    let root = tmp.path().join("drill");
    let env = scratch_env(source.env, &others);
    let driver = cp_driver_process::ProcessDriver::new(&root);
    let state = StateDir::open(&root, "drill").map_err(DrillError::State)?;
    let secrets = SecretResolver::new(Some(state.clone()));
    let cx = Context {
        env: &env,
        secrets: &secrets,
        state: &state,
    };
    let checked = async {
        cp_drivers::engine::up(&driver, cx, &[], SCRATCH_TIMEOUT, &cp_drivers::engine::Quiet)
            .await
            .map_err(DrillError::Scratch)?;
        let access = Access::resolve(
            &env,
            |k| driver.endpoint(&env, &ServiceName::core(k)),
            &secrets,
            &state,
            driver.vault_keys_dir(),
        )
        .await
        .map_err(DrillError::Access)?;
        let mut lines = Vec::new();
        if others.contains(&CoreKind::Redis) {
            let r = access.redis.as_ref().expect("enabled in the scratch environment");
            let n = crate::redis::restore(reader, &m.services[&CoreKind::Redis], r)
                .await
                .map_err(fail(CoreKind::Redis))?;
            lines.push(format!("redis: {n} keys, as recorded"));
        }
        if others.contains(&CoreKind::Nats) {
            let n = access.nats.as_ref().expect("enabled in the scratch environment");
            let streams = crate::nats::restore(reader, &m.services[&CoreKind::Nats], n)
                .await
                .map_err(fail(CoreKind::Nats))?;
            for s in streams {
                lines.push(format!(
                    "nats: {} has {} messages up to sequence {}, as recorded",
                    s.name, s.messages, s.last_seq
                ));
            }
        }
        if others.contains(&CoreKind::Vault) {
            let v = access.vault.as_ref().expect("enabled in the scratch environment");
            let c = v.client().map_err(|e| DrillError::Service {
                service: CoreKind::Vault,
                source: ServiceError::Vault {
                    doing: "reaching the scratch Vault".into(),
                    source: e,
                },
            })?;
            let rec = &m.services[&CoreKind::Vault];
            crate::vault::restore(reader, rec, &c, &source.unseal_keys)
                .await
                .map_err(fail(CoreKind::Vault))?;
            match (&rec.detail, &source.vault_token) {
                (Detail::Vault { canary: Some(canary) }, Some(token)) => {
                    let t = v.client_with(token.clone());
                    crate::vault::check_canary(&t, &source.env.vault.transit_mount, canary)
                        .await
                        .map_err(fail(CoreKind::Vault))?;
                    lines.push("vault: restored, unsealed with the environment's keys, the canary decrypts".into());
                }
                (Detail::Vault { canary: None }, _) => {
                    lines.push("vault: restored and unsealed (the set has no canary to decrypt)".into());
                }
                _ => lines.push("vault: restored and unsealed (no token to decrypt the canary with)".into()),
            }
        }
        Ok::<_, DrillError>(lines)
    }
    .await;
    let down = driver.teardown(cx, true).await;
    let checked = checked?;
    down.map_err(DrillError::Scratch)?;
    lines.extend(checked);
    Ok(lines)
}
