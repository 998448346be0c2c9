//! What can go wrong bringing a platform up, each case saying what to do.

use std::path::PathBuf;

use cp_core::names::ServiceName;
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
    /// Something the service needs around it is not right (a directory it cannot
    /// reach, a path too long for a socket), and what to do about it.
    #[error("cannot start {service}: {detail}")]
    Setup {
        /// The service.
        service: ServiceName,
        /// What is wrong and what to do.
        detail: String,
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
    /// Anything else, with what was being done.
    #[error("{context}")]
    Other {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl DriverError {
    /// Wraps an error with what was being done.
    pub fn other(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        DriverError::Other {
            context: context.into(),
            source: source.into(),
        }
    }
}

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
