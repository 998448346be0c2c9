//! What can go wrong bringing a platform up, each case saying what to do.

use std::path::PathBuf;

use cp_core::names::ServiceName;
use cp_core::render::RenderError;
use cp_runtime::exec::MissingBinary;
use cp_runtime::secrets::SecretError;
use cp_runtime::state::StateError;

/// A driver error.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A port is taken by something else.
    #[error("port {port} for {service} is already in use{}; stop it or set {setting}", holder.as_ref().map(|h| format!(" by {h}")).unwrap_or_default())]
    PortInUse {
        /// The service.
        service: ServiceName,
        /// The port.
        port: u16,
        /// What holds it, when known (`pid 812 (postgres)`).
        holder: Option<String>,
        /// The setting to change (`services.postgres.port`).
        setting: String,
    },
    /// A program is missing.
    #[error("cannot run {service}")]
    MissingBinary {
        /// The service.
        service: ServiceName,
        /// What is missing and how to install it.
        #[source]
        source: MissingBinary,
    },
    /// The container engine or cluster does not answer.
    #[error("the {what} is unreachable ({detail}); {hint}")]
    Unreachable {
        /// `Docker engine`, `Kubernetes API`.
        what: String,
        /// What happened.
        detail: String,
        /// What to do.
        hint: String,
    },
    /// A container image is neither present locally nor pullable.
    #[error(
        "image {image} for {service} is neither present locally nor pullable ({detail}); pull or load it where a registry is reachable (`docker pull {image}`, `docker load`), or set {setting}"
    )]
    ImageUnavailable {
        /// The service.
        service: ServiceName,
        /// The image.
        image: String,
        /// Why the pull failed.
        detail: String,
        /// The setting naming the image (`services.postgres.image`).
        setting: String,
    },
    /// A service did not become ready before the deadline.
    #[error("{service} did not become ready: {detail}{}", tail_text(log_tail))]
    NotReady {
        /// The service.
        service: ServiceName,
        /// The last probe error or exit status.
        detail: String,
        /// The last lines of its log.
        log_tail: Vec<String>,
    },
    /// A data directory written by another major version.
    #[error(
        "{service}'s data directory {path} was created by version {found}, but version {wanted} is configured; upgrade the data (e.g. pg_upgrade) or set services.{service}.version: \"{found}\""
    )]
    VersionMismatch {
        /// The service.
        service: ServiceName,
        /// The data directory.
        path: PathBuf,
        /// The version that wrote it.
        found: String,
        /// The version configured.
        wanted: String,
    },
    /// Vault is sealed and no key is available.
    #[error("vault is sealed and {detail}")]
    VaultSealed {
        /// Why no key is available and what to do.
        detail: String,
    },
    /// A plan step cannot be applied.
    #[error("cannot apply: {0}")]
    Blocked(String),
    /// A stateful service was initialised before and its data is gone: it is not
    /// re-created empty without `up --reinitialise <service>`.
    #[error("{service}: {reason}")]
    DataMissing {
        /// The service.
        service: ServiceName,
        /// What was initialised, what is gone, and what to do
        /// ([`cp_runtime::initialised::Record::missing_reason`]).
        reason: String,
    },
    /// Something the service needs around it is not right (a directory it cannot
    /// reach, a path too long for a socket), and what to do about it.
    #[error("cannot start {service}: {detail}")]
    Setup {
        /// The service.
        service: ServiceName,
        /// What is wrong and what to do.
        detail: String,
    },
    /// Preparing what the service needs (its directories, their owner, a leftover of
    /// an earlier run) failed.
    #[error("cannot start {service}")]
    Prepare {
        /// The service.
        service: ServiceName,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A program of the service could not be run or waited for.
    #[error("cannot start {service}: cannot run {}", program.display())]
    Spawn {
        /// The service.
        service: ServiceName,
        /// The program.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// This driver does not run the service (`logs` of an app on the process
    /// driver).
    #[error("{service} is not run by this driver: it {reason}")]
    Unsupported {
        /// The service.
        service: ServiceName,
        /// Why (`needs a container platform (docker or kubernetes)`).
        reason: String,
    },
    /// The state directory.
    #[error(transparent)]
    State(#[from] StateError),
    /// A secret.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// A request to the container engine or the cluster's API failed.
    #[error("{doing}")]
    Request {
        /// What was being done (`inspecting image postgres:17`).
        doing: String,
        /// What the engine or API said.
        #[source]
        source: BoxError,
    },
    /// The cluster's API refused a request for lack of permission.
    #[error(
        "{doing}: forbidden; grant this identity the RBAC permission (check with `kubectl auth can-i`)"
    )]
    Forbidden {
        /// What was being done.
        doing: String,
        /// The API's answer.
        #[source]
        source: BoxError,
    },
    /// No Kubernetes cluster is configured.
    // `detail` is text, not a source: kube's errors repeat themselves down their
    // chain, and their top line says it all.
    #[error(
        "no Kubernetes cluster configured: set KUBECONFIG or run inside a cluster; or use --set platform=process: {detail}"
    )]
    NoCluster {
        /// Why (kube's top line).
        detail: String,
    },
    /// A driver's templates cannot be loaded.
    #[error("cannot load the {which} templates")]
    Templates {
        /// `Kubernetes`, `monitoring`.
        which: &'static str,
        /// Why.
        #[source]
        source: RenderError,
    },
    /// An environment's objects cannot be rendered.
    #[error("cannot render the {which} of {env}")]
    Render {
        /// `Kubernetes objects`.
        which: &'static str,
        /// The environment.
        env: String,
        /// Why.
        #[source]
        source: RenderError,
    },
    /// A container, volume or network of the same name belongs to something else.
    #[error(
        "a {kind} named {name} exists but does not belong to this environment (it lacks controlplane's labels); remove it (`{remove} {name}`) or change the project name"
    )]
    Foreign {
        /// `container`, `volume`, `network`.
        kind: String,
        /// Its name.
        name: String,
        /// The command that removes it (`docker rm`).
        remove: String,
    },
    /// A file or directory could not be read or removed.
    #[error("cannot {action} {}", path.display())]
    File {
        /// `remove`, `read`.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing a log to the caller's output failed.
    #[error("cannot write the log")]
    WriteLog {
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A pod's log could not be read.
    #[error("cannot read the log of pod {pod}")]
    PodLog {
        /// The pod.
        pod: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// Files to upload into a container could not be packed.
    #[error("cannot pack {what}")]
    Pack {
        /// `configuration files`, `the redis ACL file`.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A step of bringing Vault up (its keys, init, unseal) failed for good.
    #[error("{step}")]
    Vault {
        /// `reading vault's unseal keys`, `initialising vault`, `unsealing vault`.
        step: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A cluster was asked for with no nodes.
    #[error("{service}: a cluster of no nodes")]
    EmptyCluster {
        /// The service.
        service: ServiceName,
    },
    /// The process driver was handed another state directory than it was made for.
    #[error(
        "using the process driver: the driver was made for {} but was handed the state directory {}",
        made_for.display(),
        given.display()
    )]
    WrongStateDir {
        /// The directory the driver was made for.
        made_for: PathBuf,
        /// The one it was handed.
        given: PathBuf,
    },
    /// A service's process could not be stopped.
    #[error("cannot stop {unit}")]
    Stop {
        /// The unit (`postgres`, `nats-1`).
        unit: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A plan step names a resource this driver does not have.
    #[error("applying {step}: the {driver} driver has no such resource")]
    NoSuchResource {
        /// The driver.
        driver: &'static str,
        /// The step.
        step: String,
    },
}

/// A cause from a client whose error types this crate does not name (bollard, kube,
/// the process driver's own).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

fn tail_text(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n  last lines of its log:");
    for l in lines {
        s.push_str("\n    ");
        s.push_str(l);
    }
    s
}
