//! The server's shared state: configuration, the served environments, the token
//! store, the audit log, the status cache, metrics, the failed-auth limiter, console
//! sessions and the templates. Cloned per request (an `Arc`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::audit::AuditLog;
use crate::config::Config;
use crate::console::Sessions;
use crate::metrics::Metrics;
use crate::oidc::Oidc;
use crate::probe::Cache;
use crate::ratelimit::FailedAuth;
use crate::tokens::TokenStore;

/// Shared state.
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Inner>);

/// What [`AppState`] holds.
#[derive(Debug)]
pub struct Inner {
    /// The configuration.
    pub config: Config,
    /// The served environments by name.
    pub targets: BTreeMap<String, cp_app::Target>,
    /// Tokens.
    pub tokens: TokenStore,
    /// What token and JWT expiry are judged against (tests move it forward).
    pub clock: crate::clock::Clock,
    /// The audit log.
    pub audit: Arc<AuditLog>,
    /// Status of every environment.
    pub cache: Cache,
    /// Each environment's last day of health and drift, as the prober saw it.
    pub history: crate::history::History,
    /// What Vault held of each tenant, read at most once per probe interval however
    /// often tenants are listed.
    pub tenant_parts: cp_app::ops::PartsCache,
    /// Metrics.
    pub metrics: Metrics,
    /// OIDC, when configured.
    pub oidc: Option<Oidc>,
    /// Failed authentications per address.
    pub failed_auth: FailedAuth,
    /// Console sessions.
    pub sessions: Sessions,
    /// The console's templates.
    pub templates: tera::Tera,
    /// An HTTP client (Prometheus queries).
    pub http: reqwest::Client,
    /// The served environments, each model kept loaded.
    pub envs: Arc<cp_app::envs::Environments>,
    /// Jobs (backups, verifications, restores, drift checks) and their schedules.
    pub jobs: cp_app::Jobs,
    /// Set when the server begins to shut down: long-lived responses (the console's
    /// event streams) end, so the graceful shutdown does not wait on them.
    pub shutdown: tokio::sync::watch::Sender<bool>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Creates `dir` if needed, mode 0700 (the tokens and the audit log are in it).
pub fn ensure_private_dir(dir: &Path) -> Result<(), cp_runtime::state::StateError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| cp_runtime::state::StateError::Io {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.is_dir() {
        std::fs::create_dir_all(dir).map_err(io)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

impl AppState {
    /// The state for `config`. Creates the server's state directory when it can; a
    /// read-only one is not fatal (reads keep working, mutations are refused).
    pub fn new(config: Config) -> Self {
        if let Err(e) = ensure_private_dir(&config.server_dir) {
            tracing::warn!(error = %cp_runtime::error::chain(&e), "the server's state directory cannot be created; mutations will be refused");
        }
        let targets = config
            .targets
            .iter()
            .map(|t| (t.env.clone(), t.clone()))
            .collect();
        let envs = Arc::new(cp_app::envs::Environments::new(
            config.targets.iter().cloned(),
        ));
        let jobs = cp_app::Jobs::new();
        let clock = crate::clock::Clock::default();
        let inner = Inner {
            tokens: TokenStore::with_clock(&config.server_dir, clock.clone()),
            clock,
            audit: Arc::new(AuditLog::new(&config.server_dir)),
            history: crate::history::History::default(),
            cache: Cache::new(config.targets.iter().map(|t| t.env.clone())),
            tenant_parts: cp_app::ops::PartsCache::new(
                config
                    .probe_interval
                    .max(std::time::Duration::from_millis(100)),
            ),
            metrics: Metrics::new(cp_app::metrics::JobGauges::new(envs.clone(), jobs.clone())),
            oidc: config.oidc.clone().map(Oidc::new),
            failed_auth: FailedAuth::new(config.auth_failures_per_minute),
            sessions: Sessions::default(),
            templates: crate::console::templates(),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(5))
                .build()
                .expect("an HTTP client"),
            shutdown: tokio::sync::watch::channel(false).0,
            envs,
            jobs,
            targets,
            config,
        };
        Self(Arc::new(inner))
    }
}
