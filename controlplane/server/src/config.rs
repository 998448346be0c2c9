//! What `controlplane serve` is told: where to listen, which environments to serve,
//! where its own state lives, OIDC, Prometheus, and how often to probe.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The default listen address: loopback only, so nothing is exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7700";

/// OIDC JWT validation against one issuer.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    /// The issuer (`iss` must equal it).
    pub issuer: String,
    /// The audience (`aud` must contain it).
    pub audience: String,
    /// Where the JWKS is; default: the issuer's discovery document's `jwks_uri`.
    pub jwks_url: Option<String>,
    /// The claim holding the role (`viewer`, `editor`, `admin`, or a list of them).
    pub role_claim: String,
    /// The claim holding the tenant a principal is scoped to, if any.
    pub tenant_claim: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

impl OidcConfig {
    /// Issuer and audience with the default claims and a minute of leeway.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_url: None,
            role_claim: "controlplane_role".into(),
            tenant_claim: "controlplane_tenant".into(),
            leeway: Duration::from_secs(60),
        }
    }
}

/// The server's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The environments served.
    pub targets: Vec<cp_app::Target>,
    /// The server's own state: tokens, audit log (`.controlplane/server/`).
    pub server_dir: PathBuf,
    /// OIDC, when configured.
    pub oidc: Option<OidcConfig>,
    /// Prometheus base URL per environment, for the firing alerts.
    pub prometheus: BTreeMap<String, String>,
    /// How often the background prober refreshes every environment's status.
    pub probe_interval: Duration,
    /// The URL people reach the console at; `https://` turns on HSTS and `Secure`
    /// cookies (TLS is terminated in front of the server, by an ingress or a proxy).
    pub public_url: Option<String>,
    /// Failed authentications allowed per client address per minute.
    pub auth_failures_per_minute: u32,
    /// Serve HTTPS with this certificate (none: plain HTTP, for loopback or behind a
    /// TLS proxy).
    pub https: Option<crate::tls::ServeTls>,
}

impl Config {
    /// A configuration with the defaults.
    pub fn new(targets: Vec<cp_app::Target>, server_dir: PathBuf) -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("a valid address"),
            targets,
            server_dir,
            oidc: None,
            prometheus: BTreeMap::new(),
            probe_interval: Duration::from_secs(5),
            public_url: None,
            auth_failures_per_minute: 10,
            https: None,
        }
    }

    /// Whether people reach the server over TLS.
    pub fn tls(&self) -> bool {
        self.https.is_some()
            || self
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
    }
}
