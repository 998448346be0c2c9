//! The connection to the Docker Engine: connecting with version negotiation (bollard
//! speaks a newer API than many engines accept), bollard errors turned into errors a
//! user can act on, and image pulls with progress.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::models::ProgressDetail;
use bollard::query_parameters::CreateImageOptionsBuilder;
use cp_drivers::DriverError;
use futures::StreamExt;

/// How long connecting (and negotiating the API version) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The engine's default address when `DOCKER_HOST` is not set.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Progress of an image pull, summed over its layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullProgress {
    /// The image (`postgres:15`).
    pub image: String,
    /// The engine's last status line (`Downloading`, `Pull complete`).
    pub status: String,
    /// Bytes downloaded so far, over layers whose size is known.
    pub current: u64,
    /// Total bytes of those layers.
    pub total: u64,
    /// True on the last report.
    pub done: bool,
}

/// Receives pull progress (the CLI draws a bar with it).
pub type PullObserver = Arc<dyn Fn(&PullProgress) + Send + Sync>;

/// A connected, version-negotiated engine.
#[derive(Clone)]
pub(crate) struct Engine {
    pub(crate) docker: Docker,
    pub(crate) host: String,
    pub(crate) version: String,
    pub(crate) api_version: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("host", &self.host)
            .field("version", &self.version)
            .field("api_version", &self.api_version)
            .finish()
    }
}

/// `DOCKER_HOST`, or the default socket.
pub(crate) fn host_from_env() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.to_owned())
}

/// The error for an engine that does not answer at `host`.
pub(crate) fn unreachable(host: &str, detail: impl std::fmt::Display) -> DriverError {
    let docker_host = match std::env::var("DOCKER_HOST") {
        Ok(h) if !h.is_empty() => format!("DOCKER_HOST is {h}"),
        _ => format!("DOCKER_HOST is not set, so {DEFAULT_HOST} is used"),
    };
    DriverError::Unreachable {
        what: "Docker engine".into(),
        detail: format!("{host}: {detail}"),
        hint: format!(
            "start Docker (e.g. `sudo systemctl start docker`), check the address \
             ({docker_host}) and that you may use the socket (the `docker` group), \
             or use --platform process"
        ),
    }
}

/// True when the engine did not answer at all (as opposed to answering "no").
pub(crate) fn is_connection_error(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::HyperLegacyError { .. }
            | BollardError::HyperResponseError { .. }
            | BollardError::IOError { .. }
            | BollardError::SocketNotFoundError(_)
            | BollardError::RequestTimeoutError
            | BollardError::UnsupportedURISchemeError { .. }
    )
}

/// The HTTP status of an engine's "no".
pub(crate) fn status_of(e: &BollardError) -> Option<u16> {
    match e {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The engine's message, without bollard's prefix.
pub(crate) fn message_of(e: &BollardError) -> String {
    match e {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        BollardError::DockerStreamError { error } => error.clone(),
        e => e.to_string(),
    }
}

/// Why connecting to an engine failed.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// The client could not be made, or the engine refused or broke the connection.
    Client(BollardError),
    /// The engine did not answer in time.
    Timeout(Duration),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Client(e) => write!(f, "{e}"),
            ConnectError::Timeout(d) => write!(f, "no answer within {d:?}"),
        }
    }
}

impl ConnectError {
    /// A few words for a one-line notice: "no socket there", "connection refused".
    pub(crate) fn short(&self) -> String {
        let ConnectError::Client(e) = self else {
            return self.to_string();
        };
        if matches!(e, BollardError::SocketNotFoundError(_)) {
            return "no socket there".into();
        }
        // The first I/O error down the chain says it in a few words (a search, not a
        // printer: the chain is printed by `cp_runtime::error::chain`).
        let first: &(dyn std::error::Error + 'static) = e;
        let io = std::iter::successors(Some(first), |c| c.source())
            .find_map(|c| c.downcast_ref::<std::io::Error>());
        match io.map(|io| (io.kind(), io)) {
            Some((std::io::ErrorKind::NotFound, _)) => "no socket there".into(),
            Some((std::io::ErrorKind::ConnectionRefused, _)) => "connection refused".into(),
            Some((std::io::ErrorKind::PermissionDenied, _)) => {
                "permission denied: are you in the `docker` group?".into()
            }
            Some((_, io)) => io.to_string(),
            None => e.to_string().lines().next().unwrap_or_default().to_owned(),
        }
    }
}

/// `unix:///path` for a bare socket path; other addresses as given.
pub(crate) fn normalize_host(host: &str) -> String {
    if host.starts_with('/') {
        format!("unix://{host}")
    } else {
        host.to_owned()
    }
}

impl Engine {
    /// Connects to `host` (`unix:///path`, a bare socket path, `tcp://host:port`) and
    /// negotiates the API version.
    pub(crate) async fn connect(host: &str) -> Result<Self, DriverError> {
        Self::connect_within(host, CONNECT_TIMEOUT)
            .await
            .map_err(|e| unreachable(&normalize_host(host), e))
    }

    /// [`Engine::connect`] with every request of it bounded by `timeout` together: a
    /// missing socket fails at once, a socket nobody answers on within `timeout`.
    pub(crate) async fn connect_within(
        host: &str,
        timeout: Duration,
    ) -> Result<Self, ConnectError> {
        let host = normalize_host(host);
        let docker = Docker::connect_with_host(&host).map_err(ConnectError::Client)?;
        let answer = async {
            let docker = docker.negotiate_version().await?;
            let v = docker.version().await?;
            Ok::<_, BollardError>((docker, v))
        };
        let (docker, v) = tokio::time::timeout(timeout, answer)
            .await
            .map_err(|_| ConnectError::Timeout(timeout))?
            .map_err(ConnectError::Client)?;
        let api_version = docker.client_version().to_string();
        Ok(Self {
            docker,
            host,
            version: v.version.unwrap_or_else(|| "unknown".into()),
            api_version,
        })
    }

    /// Wraps an engine error with what was being done; an engine that stopped
    /// answering becomes [`DriverError::Unreachable`].
    pub(crate) fn err(&self, doing: impl Into<String>, e: BollardError) -> DriverError {
        if is_connection_error(&e) {
            return unreachable(&self.host, e);
        }
        DriverError::Request {
            doing: doing.into(),
            source: Box::new(EngineSaid(message_of(&e))),
        }
    }

    /// True when the image is present locally.
    pub(crate) async fn has_image(&self, image: &str) -> Result<bool, DriverError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(self.err(format!("inspecting image {image}"), e)),
        }
    }

    /// Pulls `image`, reporting progress; the error is the engine's reason.
    pub(crate) async fn pull(
        &self,
        image: &str,
        observer: Option<&PullObserver>,
    ) -> Result<(), PullError> {
        let (from, tag) = split_tag(image);
        let opts = CreateImageOptionsBuilder::new()
            .from_image(from)
            .tag(tag)
            .build();
        let mut stream = self.docker.create_image(Some(opts), None, None);
        let mut layers: HashMap<String, (u64, u64)> = HashMap::new();
        let mut last_log = Instant::now();
        let mut report = |status: String, layers: &HashMap<String, (u64, u64)>, done: bool| {
            let (current, total) = layers
                .values()
                .fold((0, 0), |(c, t), (lc, lt)| (c + lc, t + lt));
            let p = PullProgress {
                image: image.to_owned(),
                status,
                current,
                total,
                done,
            };
            match observer {
                Some(f) => f(&p),
                None if done || last_log.elapsed() >= Duration::from_secs(2) => {
                    last_log = Instant::now();
                    tracing::info!(
                        image,
                        current_mb = current / 1_000_000,
                        total_mb = total / 1_000_000,
                        "pulling image: {}",
                        p.status
                    );
                }
                None => {}
            }
        };
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(info) => info,
                Err(e) if is_connection_error(&e) => {
                    return Err(PullError::Engine(unreachable(&self.host, e)));
                }
                Err(e) => return Err(PullError::Refused(message_of(&e))),
            };
            if let Some(detail) = info.error_detail.and_then(|d| d.message) {
                return Err(PullError::Refused(detail));
            }
            if let (
                Some(id),
                Some(ProgressDetail {
                    current: Some(c),
                    total: Some(t),
                }),
            ) = (&info.id, &info.progress_detail)
            {
                layers.insert(
                    id.clone(),
                    (
                        u64::try_from(*c).unwrap_or(0),
                        u64::try_from(*t).unwrap_or(0),
                    ),
                );
            }
            report(info.status.unwrap_or_default(), &layers, false);
        }
        report("pulled".into(), &layers, true);
        Ok(())
    }
}

/// Why a pull failed.
#[derive(Debug)]
pub(crate) enum PullError {
    /// The engine stopped answering.
    Engine(DriverError),
    /// The engine (or registry) said no, and why.
    Refused(String),
}

/// `name:tag` (a registry port is not a tag; a digest stays whole).
fn split_tag(image: &str) -> (&str, &str) {
    if image.contains('@') {
        return (image, "");
    }
    match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, tag),
        _ => (image, "latest"),
    }
}

/// An engine's "no", as an error source.
#[derive(Debug)]
pub(crate) struct EngineSaid(pub(crate) String);

impl std::fmt::Display for EngineSaid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the Docker engine said: {}", self.0.trim())
    }
}

impl std::error::Error for EngineSaid {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_tags_but_not_registry_ports() {
        assert_eq!(split_tag("postgres:15"), ("postgres", "15"));
        assert_eq!(split_tag("openbao/openbao:2.7"), ("openbao/openbao", "2.7"));
        assert_eq!(
            split_tag("registry:5000/team/app"),
            ("registry:5000/team/app", "latest")
        );
        assert_eq!(split_tag("app@sha256:ab"), ("app@sha256:ab", ""));
    }
}
