//! Choosing and building the driver for an environment: the environment's `platform`,
//! or for `auto` docker when an engine answers and the images are there, else processes
//! — saying which and why.

use std::path::Path;

use cp_core::Environment;
use cp_core::model::Platform;
use cp_core::names::ServiceName;
use cp_core::plan::{Observed, Resource, Step};
use cp_driver_process::ProcessDriver;
use cp_drivers::{Context, Driver, DriverError, DriverKind, ServiceStatus};
use cp_runtime::probe::{Endpoint, Ready};
use tokio::time::Instant;

/// Any of the drivers, chosen at run time.
pub(crate) enum AnyDriver {
    Process(ProcessDriver),
}

/// The driver for `env`, and why it was chosen.
pub(crate) async fn select(
    env: &Environment,
    state_dir: &Path,
) -> anyhow::Result<(AnyDriver, String)> {
    match env.platform {
        Platform::Process => Ok((
            AnyDriver::Process(ProcessDriver::new(state_dir)),
            "platform: process".into(),
        )),
        Platform::Auto => Ok((
            AnyDriver::Process(ProcessDriver::new(state_dir)),
            "auto: using local processes (the docker driver is not built into this binary yet)"
                .into(),
        )),
        Platform::Docker | Platform::Kubernetes => {
            anyhow::bail!(
                "platform `{}` is not available in this build; use --set platform=process",
                match env.platform {
                    Platform::Docker => "docker",
                    _ => "kubernetes",
                }
            )
        }
    }
}

macro_rules! each {
    ($self:ident, $d:ident => $e:expr) => {
        match $self {
            AnyDriver::Process($d) => $e,
        }
    };
}

impl Driver for AnyDriver {
    fn kind(&self) -> DriverKind {
        each!(self, d => d.kind())
    }

    fn desired(&self, env: &Environment) -> Result<Vec<Resource>, DriverError> {
        each!(self, d => d.desired(env))
    }

    async fn observe(&self, env: &Environment) -> Result<Vec<Observed>, DriverError> {
        each!(self, d => d.observe(env).await)
    }

    async fn apply(&self, cx: Context<'_>, step: &Step) -> Result<(), DriverError> {
        each!(self, d => d.apply(cx, step).await)
    }

    async fn wait_ready(
        &self,
        cx: Context<'_>,
        service: &ServiceName,
        deadline: Instant,
    ) -> Result<Ready, DriverError> {
        each!(self, d => d.wait_ready(cx, service, deadline).await)
    }

    fn endpoint(&self, env: &Environment, service: &ServiceName) -> Option<Endpoint> {
        each!(self, d => d.endpoint(env, service))
    }

    async fn status(&self, cx: Context<'_>) -> Result<Vec<ServiceStatus>, DriverError> {
        each!(self, d => d.status(cx).await)
    }

    async fn log_tail(
        &self,
        env: &Environment,
        service: &ServiceName,
        lines: usize,
    ) -> Result<Vec<String>, DriverError> {
        each!(self, d => d.log_tail(env, service, lines).await)
    }

    async fn logs(
        &self,
        env: &Environment,
        service: &ServiceName,
        tail: usize,
        follow: bool,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(), DriverError> {
        each!(self, d => d.logs(env, service, tail, follow, out).await)
    }

    async fn teardown(&self, cx: Context<'_>, volumes: bool) -> Result<Vec<String>, DriverError> {
        each!(self, d => d.teardown(cx, volumes).await)
    }
}
