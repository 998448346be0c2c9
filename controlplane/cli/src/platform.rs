//! Choosing and building the driver for an environment: the environment's `platform`,
//! or for `auto` docker when an engine answers and the images are there, else processes
//! — saying which and why. `kubernetes` uses the current kubeconfig (or the in-cluster
//! service account) and refuses, changing nothing, when there is none or its API
//! server does not answer.

use std::path::Path;

use cp_core::Environment;
use cp_core::model::Platform;
use cp_core::names::ServiceName;
use cp_core::plan::{Observed, Resource, Step};
use cp_driver_docker::DockerDriver;
use cp_driver_kube::KubeDriver;
use cp_driver_process::ProcessDriver;
use cp_drivers::{Context, Driver, DriverError, DriverKind, Removal, ServiceStatus};
use cp_runtime::probe::{Endpoint, Ready};
use cp_runtime::project::Project;
use tokio::time::Instant;

/// Any of the drivers, chosen at run time.
pub(crate) enum AnyDriver {
    Process(ProcessDriver),
    Docker(DockerDriver),
    Kube(Box<KubeDriver>),
}

/// The driver for `env`, and why it was chosen.
pub(crate) async fn select(
    env: &Environment,
    state_dir: &Path,
    project: &Project,
) -> anyhow::Result<(AnyDriver, String)> {
    let process = || AnyDriver::Process(ProcessDriver::new(state_dir));
    match env.platform {
        Platform::Process => Ok((process(), "platform: process".into())),
        Platform::Docker => {
            let d = DockerDriver::connect().await?.on_pull(pull_progress());
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
            process(),
            format!(
                "auto: using local processes, as when {} was brought up",
                env.name
            ),
        )),
        Platform::Auto if recorded(state_dir).as_deref() == Some("docker") => {
            let d = DockerDriver::connect().await?.on_pull(pull_progress());
            let why = format!("auto: using docker, as when {} was brought up", env.name);
            Ok((AnyDriver::Docker(d), why))
        }
        Platform::Auto => match cp_driver_docker::docker_usable(env).await {
            Ok(d) => {
                let why = format!(
                    "auto: using docker (engine {}, every image present)",
                    d.engine_version()
                );
                Ok((AnyDriver::Docker(d.on_pull(pull_progress())), why))
            }
            Err(why_not) => Ok((process(), format!("auto: using local processes: {why_not}"))),
        },
        Platform::Kubernetes => {
            use anyhow::Context as _;
            let templates = project.templates().with_context(|| {
                format!("cannot read the templates under {}", project.root.display())
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
pub(crate) const CHOICE_FILE: &str = "driver";

fn recorded(state_dir: &Path) -> Option<String> {
    std::fs::read_to_string(state_dir.join(CHOICE_FILE))
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Image pulls reported as plain lines on stderr (one per image and status change).
fn pull_progress() -> cp_driver_docker::PullObserver {
    let last = std::sync::Mutex::new(std::collections::BTreeMap::<String, String>::new());
    std::sync::Arc::new(move |p: &cp_driver_docker::PullProgress| {
        let mut last = last.lock().expect("pull progress lock");
        if last.get(&p.image) != Some(&p.status) {
            last.insert(p.image.clone(), p.status.clone());
            eprintln!("pull {}: {} ({} bytes)", p.image, p.status, p.current);
        }
    })
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

    fn vault_keys_dir(&self) -> &'static str {
        each!(self, d => d.vault_keys_dir())
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
