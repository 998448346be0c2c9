//! Readiness of a container: it must be running (not exited, not restarting) and
//! answer a real request through its port published on 127.0.0.1, with the same
//! probes every driver uses ([`cp_runtime::probe`]); Vault is initialised and
//! unsealed first ([`cp_runtime::vault`]). Extras answer their declared health check.

use std::path::PathBuf;
use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerInspectResponse, ContainerStateStatusEnum};
use cp_core::serverconf;
use cp_drivers::{Context, DriverError};
use cp_runtime::probe::{self, Endpoint, Ready};
use cp_runtime::secrets::Secret;
use cp_runtime::vault::{self, VaultApi, VaultError};
use futures::StreamExt;
use tokio::io::AsyncReadExt;

use crate::driver::{DockerDriver, VAULT_KEYS_DIR};
use crate::spec::{ContainerSpec, Probe};

/// One attempt's verdict.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// It answered.
    Ready(Ready),
    /// Not yet, and why; try again until the deadline.
    Retry(String),
    /// Trying again cannot help.
    Fatal(DriverError),
    /// Its data can never be used (a Vault whose keys were lost mid-initialisation):
    /// remove it and start over.
    Wipe(String),
}

/// The credentials a probe logs in with, resolved once per wait.
#[derive(Debug, Default)]
pub(crate) struct ProbeSecrets {
    password: Option<Secret>,
}

impl ProbeSecrets {
    pub(crate) async fn resolve(cx: Context<'_>, c: &ContainerSpec) -> Result<Self, DriverError> {
        let s = &cx.env.services;
        let reference = match c.probe {
            Probe::Postgres => s.postgres.as_ref().map(|p| {
                (
                    "services.postgres.superuser_password",
                    &p.superuser_password,
                )
            }),
            Probe::Redis => s
                .redis
                .as_ref()
                .map(|r| ("services.redis.admin_password", &r.admin_password)),
            Probe::Nats => s
                .nats
                .as_ref()
                .map(|n| ("services.nats.admin_password", &n.admin_password)),
            _ => None,
        };
        let password = match reference {
            Some((setting, r)) => Some(cx.secrets.resolve(setting, r).await?),
            None => None,
        };
        Ok(Self { password })
    }
}

/// Why the container cannot become ready, if it cannot: gone, exited, restarting
/// (or restarted since the first look, recorded in `restarts`).
pub(crate) fn not_running(
    info: Option<&ContainerInspectResponse>,
    restarts: &mut Option<i64>,
) -> Option<String> {
    let Some(info) = info else {
        return Some("its container is gone".into());
    };
    let state = info.state.clone().unwrap_or_default();
    let exit = state.exit_code.unwrap_or(0);
    let oom = if state.oom_killed == Some(true) {
        " (killed: out of memory)"
    } else {
        ""
    };
    let count = info.restart_count.unwrap_or(0);
    match state.status {
        Some(ContainerStateStatusEnum::RUNNING) => {
            let first = *restarts.get_or_insert(count);
            (count > first).then(|| format!("its container restarted (exit code {exit}){oom}"))
        }
        Some(ContainerStateStatusEnum::RESTARTING) => Some(format!(
            "its container keeps exiting (exit code {exit}){oom}; Docker is restarting it"
        )),
        Some(ContainerStateStatusEnum::CREATED) => {
            Some("its container was created but never started".into())
        }
        Some(ContainerStateStatusEnum::PAUSED) => Some("its container is paused".into()),
        Some(s) => Some(format!("its container {s} (exit code {exit}){oom}")),
        None => Some("its container has no state".into()),
    }
}

/// Why a container is not ready (yet).
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotReady {
    /// Its probe's credentials could not be resolved.
    #[error(transparent)]
    Secrets(DriverError),
    /// A service probe failed.
    #[error(transparent)]
    Probe(probe::ProbeError),
    /// No HTTP client could be made.
    #[error("cannot make an HTTP client")]
    Client(#[source] reqwest::Error),
    /// An HTTP probe got no answer.
    #[error("GET {url}: no answer")]
    NoAnswer {
        /// The URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// An HTTP probe got an error status.
    #[error("GET {url} answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: reqwest::StatusCode,
    },
    /// A TCP probe's connection did not complete in time.
    #[error("{addr}: no answer within {timeout:?}")]
    TcpTimeout {
        /// `127.0.0.1:port`.
        addr: String,
        /// The timeout.
        timeout: Duration,
    },
    /// A TCP probe's connection failed.
    #[error("{addr}")]
    Tcp {
        /// `127.0.0.1:port`.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Docker's proxy closed the connection: nothing listens in the container yet.
    #[error("{addr}: the connection was closed (nothing listens yet)")]
    Closed {
        /// `127.0.0.1:port`.
        addr: String,
    },
    /// A probe command could not be run or inspected.
    #[error("cannot {action} {argv:?}")]
    Exec {
        /// `run`, `inspect`.
        action: &'static str,
        /// The command.
        argv: Vec<String>,
        /// Why.
        #[source]
        source: bollard::errors::Error,
    },
    /// A probe command did not finish in time.
    #[error("{argv:?} did not finish within {timeout:?}")]
    ExecTimeout {
        /// The command.
        argv: Vec<String>,
        /// The timeout.
        timeout: Duration,
    },
    /// A probe command failed.
    #[error("{argv:?} exited with {}: {output}", code.map_or("no code".into(), |c| c.to_string()))]
    ExecFailed {
        /// The command.
        argv: Vec<String>,
        /// Its exit code.
        code: Option<i64>,
        /// What it printed.
        output: String,
    },
}

/// One readiness attempt, initialising and unsealing Vault when needed.
pub(crate) async fn attempt(
    d: &DockerDriver,
    cx: Context<'_>,
    c: &ContainerSpec,
    secrets: &ProbeSecrets,
) -> Attempt {
    if c.probe == (Probe::Vault { dev: false })
        && let Some(a) = unseal(cx, c).await
    {
        return a;
    }
    match check(d, c, secrets).await {
        Ok(r) => Attempt::Ready(r),
        Err(e) => Attempt::Retry(cp_runtime::error::chain(&e)),
    }
}

/// One probe, changing nothing (for `status`).
pub(crate) async fn check_once(
    d: &DockerDriver,
    cx: Context<'_>,
    c: &ContainerSpec,
) -> Result<Ready, NotReady> {
    let secrets = ProbeSecrets::resolve(cx, c)
        .await
        .map_err(NotReady::Secrets)?;
    check(d, c, &secrets).await
}

fn endpoint(c: &ContainerSpec) -> Endpoint {
    Endpoint::local(c.main_port.unwrap_or_default())
}

/// Initialises (first start) and unseals a raft Vault; `None` when it is unsealed
/// and active.
async fn unseal(cx: Context<'_>, c: &ContainerSpec) -> Option<Attempt> {
    let v = cx.env.services.vault.as_ref()?;
    let store = vault::key_store(v, cx.state, VAULT_KEYS_DIR);
    let api = VaultApi::new(&endpoint(c));
    match api.ensure_unsealed(store.as_ref()).await {
        Ok(_) => {}
        Err(e @ VaultError::InitInterrupted { .. }) => return Some(Attempt::Wipe(e.to_string())),
        Err(VaultError::Sealed { detail }) => {
            return Some(Attempt::Fatal(DriverError::VaultSealed { detail }));
        }
        Err(e @ (VaultError::State(_) | VaultError::Corrupt { .. })) => {
            return Some(Attempt::Fatal(DriverError::Vault {
                step: "keeping vault's unseal keys",
                source: e.into(),
            }));
        }
        // Not answering yet, or not ready for the request (raft still electing).
        Err(e) => return Some(Attempt::Retry(e.to_string())),
    }
    match api.is_active().await {
        Ok(true) => None,
        Ok(false) => Some(Attempt::Retry(
            "vault is unsealed but not active yet (raft is electing a leader)".into(),
        )),
        Err(e) => Some(Attempt::Retry(e.to_string())),
    }
}

/// The files [`forget_vault_keys`] would remove now. Read-only.
pub(crate) fn vault_key_files(cx: Context<'_>) -> Vec<PathBuf> {
    cx.env.services.vault.as_ref().map_or_else(Vec::new, |v| {
        vault::key_store(v, cx.state, VAULT_KEYS_DIR).kept()
    })
}

/// Forgets the docker Vault's kept keys (its data is gone).
pub(crate) fn forget_vault_keys(cx: Context<'_>) -> Result<Vec<PathBuf>, DriverError> {
    let Some(v) = cx.env.services.vault.as_ref() else {
        return Ok(Vec::new());
    };
    vault::key_store(v, cx.state, VAULT_KEYS_DIR)
        .forget()
        .map_err(|e| DriverError::Vault {
            step: "forgetting vault's unseal keys",
            source: e.into(),
        })
}

/// The probe itself.
async fn check(
    d: &DockerDriver,
    c: &ContainerSpec,
    secrets: &ProbeSecrets,
) -> Result<Ready, NotReady> {
    let ep = endpoint(c);
    let pw = secrets.password.as_ref();
    match &c.probe {
        Probe::Postgres => probe::postgres(&ep, serverconf::POSTGRES_SUPERUSER, pw, "postgres")
            .await
            .map_err(NotReady::Probe),
        Probe::Redis => probe::redis(&ep, Some(serverconf::REDIS_ADMIN_USER), pw)
            .await
            .map_err(NotReady::Probe),
        Probe::Nats => probe::nats(&ep, Some(serverconf::NATS_ADMIN_USER), pw)
            .await
            .map_err(NotReady::Probe),
        Probe::Vault { .. } => probe::vault(&ep).await.map_err(NotReady::Probe),
        Probe::Http { port, path } => http(*port, path).await.map(|()| tag_version(c)),
        Probe::Tcp { port } => tcp(*port).await.map(|()| tag_version(c)),
        Probe::Command(argv) => command(d, &c.name, argv).await.map(|()| tag_version(c)),
        Probe::Running => Ok(tag_version(c)),
    }
}

/// A generic container's "version": its image tag.
fn tag_version(c: &ContainerSpec) -> Ready {
    let version = match c.image.rsplit_once(':') {
        Some((_, tag)) if !tag.contains('/') => tag.to_owned(),
        _ => "latest".to_owned(),
    };
    Ready { version }
}

const HTTP_TIMEOUT: Duration = Duration::from_secs(3);

async fn http(port: u16, path: &str) -> Result<(), NotReady> {
    let url = format!("http://127.0.0.1:{port}{path}");
    let client = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .map_err(NotReady::Client)?;
    let resp = match client.get(&url).send().await {
        Ok(r) => r,
        Err(source) => return Err(NotReady::NoAnswer { url, source }),
    };
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(NotReady::Status {
            url,
            status: resp.status(),
        })
    }
}

/// A TCP peer answers. Through Docker's port proxy a connection always succeeds, and
/// the proxy closes it at once when nothing listens in the container; so a peer is
/// there when the connection stays open (or the server speaks first).
async fn tcp(port: u16) -> Result<(), NotReady> {
    let addr = format!("127.0.0.1:{port}");
    let mut s =
        match tokio::time::timeout(HTTP_TIMEOUT, tokio::net::TcpStream::connect(&addr)).await {
            Err(_) => {
                return Err(NotReady::TcpTimeout {
                    addr,
                    timeout: HTTP_TIMEOUT,
                });
            }
            Ok(Err(source)) => return Err(NotReady::Tcp { addr, source }),
            Ok(Ok(s)) => s,
        };
    let mut buf = [0u8; 1];
    match tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await {
        Err(_) | Ok(Ok(1..)) => Ok(()),
        Ok(Ok(0)) => Err(NotReady::Closed { addr }),
        Ok(Err(source)) => Err(NotReady::Tcp { addr, source }),
    }
}

/// A command in the container exits 0.
async fn command(d: &DockerDriver, name: &str, argv: &[String]) -> Result<(), NotReady> {
    let exec_err = |action: &'static str| {
        move |source| NotReady::Exec {
            action,
            argv: argv.to_vec(),
            source,
        }
    };
    let docker = &d.engine.docker;
    let exec = docker
        .create_exec(
            name,
            CreateExecOptions {
                cmd: Some(argv.to_vec()),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(exec_err("run"))?;
    let mut output = String::new();
    if let StartExecResults::Attached {
        output: mut out, ..
    } = docker
        .start_exec(&exec.id, None)
        .await
        .map_err(exec_err("run"))?
    {
        let read = async {
            while let Some(Ok(chunk)) = out.next().await {
                output.push_str(&chunk.to_string());
            }
        };
        if tokio::time::timeout(HTTP_TIMEOUT, read).await.is_err() {
            return Err(NotReady::ExecTimeout {
                argv: argv.to_vec(),
                timeout: HTTP_TIMEOUT,
            });
        }
    }
    let inspect = docker
        .inspect_exec(&exec.id)
        .await
        .map_err(exec_err("inspect"))?;
    match inspect.exit_code {
        Some(0) => Ok(()),
        code => Err(NotReady::ExecFailed {
            argv: argv.to_vec(),
            code,
            output: output.trim().to_owned(),
        }),
    }
}
