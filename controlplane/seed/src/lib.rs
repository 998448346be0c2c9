//! Seeding a running environment: PostgreSQL roles and migrations with row-level
//! security, JetStream streams, Vault mounts/keys/policies/AppRole, Redis ACL users,
//! tenants, and the CloudEvents the control plane publishes about itself.
//!
//! Architecture invariant: this crate is the only one that runs SQL against the
//! platform database or writes Vault/NATS/Redis configuration.
//!
//! Every step observes before it writes, so seeding twice changes nothing the second
//! time (and says so), and a run cut off midway is finished by the next one.

pub mod layers;
pub mod nats;
pub mod postgres;
pub mod redis;
pub mod tenants;
pub mod vault;

pub use cp_runtime::access::{Access, NatsAccess, PgAccess, RedisAccess, VaultAccess};
pub use cp_runtime::events;
pub use cp_runtime::secrets::Secret;

use cp_core::model::Environment;
use serde::Serialize;

/// What one seeding step did to one service.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// `postgres`, `nats`, `vault`, `redis`, `tenants`.
    pub service: &'static str,
    /// One line per change made (`created role anumate_app`); empty when nothing changed.
    pub changes: Vec<String>,
    /// Requests or statements sent to the service (the seed benchmark reports them).
    pub round_trips: u64,
}

impl Report {
    /// An empty report for `service`.
    pub fn new(service: &'static str) -> Self {
        Self {
            service,
            ..Self::default()
        }
    }

    /// Records a change.
    pub fn change(&mut self, what: impl Into<String>) {
        self.changes.push(what.into());
    }

    /// Counts `n` round trips.
    pub fn trips(&mut self, n: u64) {
        self.round_trips += n;
    }

    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }
}

/// A seeding step failed: which service, what happened, and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{service}: {message}{}", hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default())]
pub struct SeedError {
    /// The service (`postgres`, `nats`, ...).
    pub service: &'static str,
    /// What went wrong (never a secret value).
    pub message: String,
    /// What the user can do about it.
    pub hint: Option<String>,
    /// The service did not answer at all (not running, or not reachable from here):
    /// a plan defers the layer instead of failing.
    pub unreachable: bool,
}

impl SeedError {
    /// An error without a hint.
    pub fn new(service: &'static str, message: impl Into<String>) -> Self {
        Self {
            service,
            message: message.into(),
            hint: None,
            unreachable: false,
        }
    }

    /// Marks the error as "the service did not answer".
    #[must_use]
    pub fn unreachable(mut self) -> Self {
        self.unreachable = true;
        self
    }

    /// Adds what to do about it.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<cp_runtime::access::AccessError> for SeedError {
    fn from(e: cp_runtime::access::AccessError) -> Self {
        use cp_runtime::access::AccessError;
        let service = match &e {
            AccessError::Secret { setting, .. } => setting.service().as_str(),
            AccessError::NoEndpoint { service } => service.as_str(),
            AccessError::RootToken(_) => "vault",
        };
        SeedError::new(service, error_chain(&e))
    }
}

impl From<cp_runtime::events::EventError> for SeedError {
    fn from(e: cp_runtime::events::EventError) -> Self {
        SeedError::new("nats", error_chain(&e))
    }
}

impl From<cp_runtime::nats::ConnectError> for SeedError {
    fn from(e: cp_runtime::nats::ConnectError) -> Self {
        let hint = e.hint();
        let refused = e.source.kind() == async_nats::ConnectErrorKind::AuthorizationViolation;
        let err = SeedError::new("nats", error_chain(&e)).hint(hint);
        if refused { err } else { err.unreachable() }
    }
}

impl From<cp_runtime::vault::RequestError> for SeedError {
    fn from(e: cp_runtime::vault::RequestError) -> Self {
        let hint = e.hint();
        let mut err = SeedError::new("vault", error_chain(&e));
        err.unreachable = matches!(e, cp_runtime::vault::RequestError::Unreachable { .. });
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }
}

/// An error and its sources, joined with `: ` (for messages that end up as text).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

/// What `seed` did: one report per service, and whether the bootstrap root token was
/// revoked.
#[derive(Debug, Clone, Serialize)]
pub struct SeedOutcome {
    /// One report per seeded service, in a fixed order.
    pub reports: Vec<Report>,
    /// Outside dev, a root token used for seeding is revoked afterwards.
    pub revoked_root_token: bool,
}

impl SeedOutcome {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        self.reports.iter().any(Report::changed)
    }
}

/// Observes one layer and applies its plan: the report of what changed (`None` when
/// the environment does not use the layer).
pub async fn seed_layer(
    layer: cp_core::plan::Layer,
    access: &Access,
    env: &Environment,
    options: &nats::Options,
) -> Result<Option<Report>, SeedError> {
    if !layers::used(layer, env) {
        return Ok(None);
    }
    let mut observing = Report::new(layer_service(layer));
    let o = layers::observe(layer, access, env, &mut observing).await?;
    let mut report = layers::apply(layer, access, env, &o.plan, options).await?;
    report.service = layer_service(layer);
    report.trips(observing.round_trips);
    Ok(Some(report))
}

/// The name a layer's report carries (`postgres`, `nats`, `redis`, `vault`, `tenants`).
pub fn layer_service(layer: cp_core::plan::Layer) -> &'static str {
    use cp_core::plan::Layer;
    match layer {
        Layer::Database => "postgres",
        Layer::Streams => "nats",
        Layer::Cache => "redis",
        Layer::Vault => "vault",
        Layer::Tenants => "tenants",
        Layer::Platform => "platform",
        Layer::Backups => "backups",
    }
}

/// Seeds every enabled service: PostgreSQL (roles, privileges, migrations, grants),
/// NATS (streams), Redis (ACL users) and Vault (audit, mounts, keys, policies, AppRole)
/// at once, since none needs another, then every tenant's parts. Each layer is
/// observed, planned and applied step by step. Outside dev a root token is revoked
/// after a successful run. A `seed.completed` event is published when anything
/// changed.
pub async fn seed_all(access: &Access, env: &Environment) -> Result<SeedOutcome, SeedError> {
    use cp_core::plan::Layer;
    let o = nats::Options::default();
    let (pg, nats, redis, vault) = tokio::join!(
        seed_layer(Layer::Database, access, env, &o),
        seed_layer(Layer::Streams, access, env, &o),
        seed_layer(Layer::Cache, access, env, &o),
        seed_layer(Layer::Vault, access, env, &o),
    );
    let mut reports: Vec<Report> = [pg?, nats?, redis?, vault?].into_iter().flatten().collect();
    reports.extend(seed_layer(Layer::Tenants, access, env, &o).await?);
    finish(access, env, reports).await
}

/// What every seeding run ends with: outside dev the bootstrap root token is revoked;
/// a `seed.completed` event is published when anything changed.
pub async fn finish(
    access: &Access,
    env: &Environment,
    mut reports: Vec<Report>,
) -> Result<SeedOutcome, SeedError> {
    let mut revoked_root_token = false;
    if let Some(v) = &access.vault
        && env.tier != cp_core::model::Tier::Dev
    {
        revoked_root_token = vault::revoke_root(v).await?;
    }
    if reports.iter().any(Report::changed)
        && let Some(n) = &access.nats
    {
        let changes: Vec<String> = reports
            .iter()
            .flat_map(|r| r.changes.iter().map(move |c| format!("{}: {c}", r.service)))
            .collect();
        let publisher = events::Publisher::connect(n, env.name.as_str()).await?;
        publisher
            .publish(events::Event::new(
                "seed.completed",
                serde_json::json!({"changes": changes}),
            ))
            .await?;
        let mut r = Report::new("events");
        r.change("published seed.completed");
        r.trips(2);
        reports.push(r);
    }
    Ok(SeedOutcome {
        reports,
        revoked_root_token,
    })
}
