//! The one contract every platform driver implements: say what it needs (pure),
//! observe what exists (read-only), apply one step, wait until a service answers,
//! report status and logs, preview a teardown, and tear down.
//!
//! The engine ([`crate::engine`]) does the rest the same way for every driver:
//! planning, ordering, parallelism, deadlines, progress.

use std::future::Future;

use cp_core::Environment;
use cp_core::names::ServiceName;
use cp_core::plan::{Observed, Resource, Step};
use cp_runtime::probe::{Endpoint, Ready};
use cp_runtime::secrets::SecretResolver;
use cp_runtime::state::StateDir;
use serde::Serialize;
use tokio::time::Instant;

use crate::error::DriverError;

/// Which driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// Local processes.
    Process,
    /// Docker Engine.
    Docker,
    /// Kubernetes.
    Kubernetes,
}

impl std::fmt::Display for DriverKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DriverKind::Process => "process",
            DriverKind::Docker => "docker",
            DriverKind::Kubernetes => "kubernetes",
        })
    }
}

/// What a driver needs while applying.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The environment.
    pub env: &'a Environment,
    /// Resolves secret references when a value must be handed over.
    pub secrets: &'a SecretResolver,
    /// The environment's state directory.
    pub state: &'a StateDir,
}

/// The state of a service as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum ServiceState {
    /// Running.
    Running,
    /// Exists but is not running, and why.
    Stopped(String),
    /// Not created.
    Missing,
    /// This driver does not run it, and why ("needs a container platform").
    Skipped(String),
}

/// Health as the last probe saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "health", content = "detail")]
pub enum Health {
    /// Answered a real request.
    Healthy,
    /// Did not, and why.
    Unhealthy(String),
    /// Not probed (not running, or no probe).
    Unknown,
}

/// One service's status.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    /// The service.
    pub service: ServiceName,
    /// Running or not.
    pub state: ServiceState,
    /// Version it reports.
    pub version: Option<String>,
    /// Seconds since it started.
    pub uptime_secs: Option<u64>,
    /// Where it answers (`127.0.0.1:5432`).
    pub endpoint: Option<String>,
    /// Health.
    pub health: Health,
    /// Process id or container id.
    pub id: Option<String>,
}

/// One thing a teardown stops or removes, as `down` lists it before asking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// What, for a person: `process postgres (pid 812)`, `container anumate-dev-redis`,
    /// `volume anumate-dev-postgres-data`, `PersistentVolumeClaim data-postgres-0`.
    pub what: String,
    /// True when removing it deletes data (volumes, data directories, claims, keys).
    pub holds_data: bool,
}

impl Removal {
    /// Something that holds no data (a process, a container, a network).
    pub fn runtime(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            holds_data: false,
        }
    }

    /// Something whose removal deletes data.
    pub fn data(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            holds_data: true,
        }
    }
}

/// A stateful service this environment initialised whose data is gone now (a data
/// directory deleted, a volume or claim removed): `plan` shows it blocked and `up`
/// refuses it until `up --reinitialise <service>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vanished {
    /// The service.
    pub service: ServiceName,
    /// What was initialised, what is gone, and the ways on.
    pub reason: String,
}

/// One server's certificate, as a renewal left it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertRenewal {
    /// The server (`postgres`, `vault-1`).
    pub service: ServiceName,
    /// A new certificate was issued and the server reloaded it.
    pub renewed: bool,
    /// Why it was (or was not) renewed: `due`, `forced`, `not due`, `not running`.
    pub reason: String,
    /// The serial the server served before (hex), when renewed.
    pub previous_serial: Option<String>,
    /// The serial of the certificate in place now (hex).
    pub serial: String,
    /// Unix time it expires.
    pub not_after: i64,
    /// Milliseconds from issuing the certificate until the listener served it
    /// (renewed ones only; `None` when the listener could not be asked).
    pub reload_ms: Option<u64>,
}

/// A platform driver. Implementations live in one folder each.
pub trait Driver: Send + Sync {
    /// Which driver this is.
    fn kind(&self) -> DriverKind;

    /// What this environment needs on this platform. Pure: no I/O.
    fn desired(&self, env: &Environment) -> Result<Vec<Resource>, DriverError>;

    /// What exists now, of this environment. Never mutates anything.
    fn observe(
        &self,
        env: &Environment,
    ) -> impl Future<Output = Result<Vec<Observed>, DriverError>> + Send;

    /// Applies one step of a plan. Safe to repeat after a crash midway.
    fn apply(
        &self,
        cx: Context<'_>,
        step: &Step,
    ) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// Waits until `service` answers a real request, or `deadline` passes (then the
    /// error names the service and carries the tail of its log).
    fn wait_ready(
        &self,
        cx: Context<'_>,
        service: &ServiceName,
        deadline: Instant,
    ) -> impl Future<Output = Result<Ready, DriverError>> + Send;

    /// Where a service answers, for clients (seed, `psql`, `status`).
    fn endpoint(&self, env: &Environment, service: &ServiceName) -> Option<Endpoint>;

    /// Where clients reach a service now: [`Driver::endpoint`], or for a cluster the
    /// node best placed to serve them (the process driver's Vault cluster: the active
    /// node, asked over HTTP). Read-only.
    fn client_endpoint(
        &self,
        env: &Environment,
        service: &ServiceName,
    ) -> impl Future<Output = Option<Endpoint>> + Send {
        let ep = self.endpoint(env, service);
        async move { ep }
    }

    /// The state-directory folder where this driver keeps Vault's initialisation
    /// journal and, for dev, its keys and root token.
    fn vault_keys_dir(&self) -> &'static str {
        "vault"
    }

    /// The stateful services of `env` recorded as initialised
    /// ([`cp_runtime::initialised`]) whose data is gone now. Read-only. A driver
    /// that keeps no records reports none.
    fn vanished(
        &self,
        _cx: Context<'_>,
    ) -> impl Future<Output = Result<Vec<Vanished>, DriverError>> + Send {
        async { Ok(Vec::new()) }
    }

    /// Makes `service` start empty on the next `up` (after the user confirmed):
    /// stops it, removes what is left of its data (Vault: its kept keys and
    /// initialisation journal too) and forgets that it was initialised. Returns what
    /// was removed, for the report.
    fn reinitialise(
        &self,
        _cx: Context<'_>,
        service: &ServiceName,
    ) -> impl Future<Output = Result<Vec<String>, DriverError>> + Send {
        let service = service.clone();
        async move {
            Err(DriverError::Unsupported {
                service,
                reason: "this driver cannot re-initialise a service; remove its data with `controlplane down --volumes` (all services' data) and run up again".into(),
            })
        }
    }

    /// Renews the certificates of the running servers of `env` (of `services`, every
    /// one when empty) that are past `tls.renew_at_percent` of their lifetime, or every
    /// one when `force`, and has each server reload its certificate without dropping
    /// its connections (what `up` does for a due certificate). `None` when this driver
    /// does not issue the certificates its servers serve.
    fn renew_certificates(
        &self,
        _cx: Context<'_>,
        _services: &[cp_core::names::CoreKind],
        _force: bool,
    ) -> impl Future<Output = Result<Option<Vec<CertRenewal>>, DriverError>> + Send {
        async { Ok(None) }
    }

    /// The status of every service of the environment. Read-only.
    fn status(
        &self,
        cx: Context<'_>,
    ) -> impl Future<Output = Result<Vec<ServiceStatus>, DriverError>> + Send;

    /// The last `lines` lines of a service's log.
    fn log_tail(
        &self,
        env: &Environment,
        service: &ServiceName,
        lines: usize,
    ) -> impl Future<Output = Result<Vec<String>, DriverError>> + Send;

    /// Streams a service's log to `out`: the last `tail` lines, then new lines while
    /// `follow` (until the service stops or the caller drops the future).
    fn logs(
        &self,
        env: &Environment,
        service: &ServiceName,
        tail: usize,
        follow: bool,
        out: &mut (dyn std::io::Write + Send),
    ) -> impl Future<Output = Result<(), DriverError>> + Send;

    /// What `teardown(cx, volumes)` would stop and remove, without changing anything.
    /// Drivers compute this list in teardown too and then act on it, so the preview
    /// cannot drift from what teardown really removes.
    fn teardown_preview(
        &self,
        cx: Context<'_>,
        volumes: bool,
    ) -> impl Future<Output = Result<Vec<Removal>, DriverError>> + Send;

    /// Stops and removes everything of this environment; its data too when `volumes`.
    /// Returns what was removed (each a [`Removal::what`] of the preview), for the
    /// report.
    fn teardown(
        &self,
        cx: Context<'_>,
        volumes: bool,
    ) -> impl Future<Output = Result<Vec<String>, DriverError>> + Send;
}
