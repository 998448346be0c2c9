//! Choosing and building the driver for an environment: the environment's `platform`,
//! or for `auto` docker when an engine answers and has every image locally, else
//! processes, saying which and why. `kubernetes` uses the current kubeconfig (or the
//! in-cluster service account) and refuses, changing nothing, when there is none or
//! its API server does not answer.

use std::path::Path;

use cp_core::Environment;
use cp_core::model::Platform;
use cp_core::names::ServiceName;
use cp_core::plan::{Observed, Resource, Step};
use cp_driver_docker::DockerDriver;
use cp_driver_kube::KubeDriver;
use cp_driver_process::ProcessDriver;
use cp_drivers::{Context, Driver, DriverError, DriverKind, Removal, ServiceStatus, Vanished};
use cp_runtime::probe::{Endpoint, Ready};
use cp_runtime::project::Project;
use tokio::time::Instant;

use crate::error::AppError;

/// Any of the drivers, chosen at run time.
pub enum AnyDriver {
    /// Local processes.
    Process(ProcessDriver),
    /// Docker Engine.
    Docker(DockerDriver),
    /// Kubernetes.
    Kube(Box<KubeDriver>),
}

impl std::fmt::Debug for AnyDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AnyDriver({})", self.kind())
    }
}

/// Where image pull progress goes (docker).
pub type PullObserver = cp_driver_docker::PullObserver;

/// The driver for `env`, and why it was chosen.
pub async fn select(
    env: &Environment,
    state_dir: &Path,
    project: &Project,
    pulls: Option<PullObserver>,
) -> Result<(AnyDriver, String), AppError> {
    // The process driver renders the monitoring stack's configuration from the
    // project's templates, as `render` does: only when there is a stack to run
    // (parsing every template costs a no-op `up` milliseconds).
    let process = || -> Result<AnyDriver, AppError> {
        if env.monitoring.is_none() {
            return Ok(AnyDriver::Process(
                ProcessDriver::new(state_dir).with_project_root(&project.root),
            ));
        }
        let templates = project.templates().map_err(|source| AppError::Project {
            what: format!("cannot read the templates under {}", project.root.display()),
            source,
        })?;
        Ok(AnyDriver::Process(
            ProcessDriver::new(state_dir)
                .with_project_root(&project.root)
                .with_templates(&templates)?,
        ))
    };
    let docker = || async {
        let d = DockerDriver::connect().await?;
        Ok::<_, DriverError>(match &pulls {
            Some(p) => d.on_pull(p.clone()),
            None => d,
        })
    };
    match env.platform {
        Platform::Process => Ok((process()?, "platform: process".into())),
        Platform::Docker => {
            let d = docker().await?;
            let why = format!(
                "platform: docker (engine {} at {})",
                d.engine_version(),
                d.host()
            );
            Ok((AnyDriver::Docker(d), why))
        }
        // Once an environment was brought up, `auto` keeps that choice: its data
        // lives with that driver. `down --volumes` forgets it.
        Platform::Auto if recorded(state_dir).as_deref() == Some("process") => Ok((
            process()?,
            format!(
                "auto: using local processes, as when {} was brought up",
                env.name
            ),
        )),
        Platform::Auto if recorded(state_dir).as_deref() == Some("docker") => {
            let d = docker().await?;
            let why = format!("auto: using docker, as when {} was brought up", env.name);
            Ok((AnyDriver::Docker(d), why))
        }
        Platform::Auto => match cp_driver_docker::docker_usable(env).await {
            Ok(d) => {
                let why = format!(
                    "auto: using docker (engine {}, every image present)",
                    d.engine_version()
                );
                let d = match &pulls {
                    Some(p) => d.on_pull(p.clone()),
                    None => d,
                };
                Ok((AnyDriver::Docker(d), why))
            }
            Err(why_not) => Ok((
                process()?,
                format!("auto: using local processes: {why_not}"),
            )),
        },
        Platform::Kubernetes => {
            let templates = project.templates().map_err(|source| AppError::Project {
                what: format!("cannot read the templates under {}", project.root.display()),
                source,
            })?;
            let d = KubeDriver::connect(&templates).await?;
            Ok((
                AnyDriver::Kube(Box::new(d)),
                format!(
                    "platform: kubernetes (namespace {}, field manager {})",
                    env.namespace,
                    cp_driver_kube::FIELD_MANAGER
                ),
            ))
        }
    }
}

/// The file in the state directory recording which driver `auto` chose.
pub const CHOICE_FILE: &str = "driver";

fn recorded(state_dir: &Path) -> Option<String> {
    std::fs::read_to_string(state_dir.join(CHOICE_FILE))
        .ok()
        .map(|s| s.trim().to_owned())
}

impl AnyDriver {
    /// The name recorded for `auto` (`process`, `docker`, `kubernetes`).
    pub fn name(&self) -> &'static str {
        match self {
            AnyDriver::Process(_) => "process",
            AnyDriver::Docker(_) => "docker",
            AnyDriver::Kube(_) => "kubernetes",
        }
    }
}

macro_rules! each {
    ($self:ident, $d:ident => $e:expr) => {
        match $self {
            AnyDriver::Process($d) => $e,
            AnyDriver::Docker($d) => $e,
            AnyDriver::Kube($d) => $e,
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

    async fn client_endpoint(&self, env: &Environment, service: &ServiceName) -> Option<Endpoint> {
        each!(self, d => d.client_endpoint(env, service).await)
    }

    fn vault_keys_dir(&self) -> &'static str {
        each!(self, d => d.vault_keys_dir())
    }

    async fn renew_certificates(
        &self,
        cx: Context<'_>,
        services: &[cp_core::names::CoreKind],
        force: bool,
    ) -> Result<Option<Vec<cp_drivers::contract::CertRenewal>>, DriverError> {
        each!(self, d => d.renew_certificates(cx, services, force).await)
    }

    async fn status(&self, cx: Context<'_>) -> Result<Vec<ServiceStatus>, DriverError> {
        each!(self, d => d.status(cx).await)
    }

    async fn vanished(&self, cx: Context<'_>) -> Result<Vec<Vanished>, DriverError> {
        each!(self, d => d.vanished(cx).await)
    }

    async fn reinitialise(
        &self,
        cx: Context<'_>,
        service: &ServiceName,
    ) -> Result<Vec<String>, DriverError> {
        each!(self, d => d.reinitialise(cx, service).await)
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

    async fn teardown_preview(
        &self,
        cx: Context<'_>,
        volumes: bool,
    ) -> Result<Vec<Removal>, DriverError> {
        each!(self, d => d.teardown_preview(cx, volumes).await)
    }

    async fn teardown(&self, cx: Context<'_>, volumes: bool) -> Result<Vec<String>, DriverError> {
        each!(self, d => d.teardown(cx, volumes).await)
    }
}
