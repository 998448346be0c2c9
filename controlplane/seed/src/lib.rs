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
pub mod rotate;
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

/// A seeding step failed: what failed (the [`SeedErrorKind`], which names the service
/// and carries the cause as its source) and what to do about it.
///
/// `Display` is `{service}: {what failed}` then, on a line of its own, the hint; the
/// cause is not repeated there: print the whole error with [`cp_runtime::error::chain`]
/// (`postgres: connecting to database `anumate`: cannot reach PostgreSQL at
/// 127.0.0.1:5432: Connection refused`, then the hint).
#[derive(Debug)]
pub struct SeedError {
    /// What failed.
    pub kind: SeedErrorKind,
    /// What the user can do about it.
    pub hint: Option<String>,
}

impl std::fmt::Display for SeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.service(), self.kind)?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SeedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        // The kind's own text is in this error's Display; its cause is the next link.
        std::error::Error::source(&self.kind)
    }
}

impl SeedError {
    /// The service (`postgres`, `nats`, `vault`, `redis`, `tenants`, `seed`).
    pub fn service(&self) -> &'static str {
        self.kind.service()
    }

    /// The service did not answer at all (not running, or not reachable from here):
    /// a plan defers the layer instead of failing.
    pub fn unreachable(&self) -> bool {
        use cp_runtime::vault::RequestError;
        match &self.kind {
            SeedErrorKind::PostgresUnreachable { .. } | SeedErrorKind::RedisConnect { .. } => true,
            SeedErrorKind::NatsConnect(e) => {
                e.source.kind() != async_nats::ConnectErrorKind::AuthorizationViolation
            }
            SeedErrorKind::Vault(e) => matches!(e, RequestError::Unreachable { .. }),
            _ => false,
        }
    }

    /// What went wrong and why, without the service's name and the hint (a deferred
    /// plan step's reason).
    pub fn message(&self) -> String {
        cp_runtime::error::chain(&self.kind)
    }

    /// Adds what to do about it.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl From<SeedErrorKind> for SeedError {
    fn from(kind: SeedErrorKind) -> Self {
        Self { kind, hint: None }
    }
}

/// A cause from a client whose error types vary by call (async-nats has one per
/// request kind).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What failed while seeding. Each variant names the service it happened at
/// ([`SeedErrorKind::service`]); its `Display` says what was being done, never the
/// cause, which is the `source`.
#[derive(Debug, thiserror::Error)]
pub enum SeedErrorKind {
    /// A layer's service is not part of the environment.
    #[error("the environment does not run this service")]
    NotRun {
        /// The service.
        service: &'static str,
    },
    /// A layer that the seeder does not own.
    #[error("not a seeded layer (the platform belongs to the drivers, backups to cp-backup)")]
    NotSeeded {
        /// The layer.
        layer: cp_core::plan::Layer,
    },
    /// Endpoints or credentials could not be resolved.
    #[error(transparent)]
    Access(cp_runtime::access::AccessError),
    /// Publishing a CloudEvent failed.
    #[error(transparent)]
    Events(cp_runtime::events::EventError),
    /// Connecting to NATS failed.
    #[error(transparent)]
    NatsConnect(cp_runtime::nats::ConnectError),
    /// A Vault request failed (the error names the path).
    #[error(transparent)]
    Vault(cp_runtime::vault::RequestError),

    // NATS.
    /// Listing the JetStream streams failed.
    #[error("cannot list JetStream streams")]
    ListStreams {
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A stream operation failed.
    #[error("cannot {op} stream {stream}")]
    Stream {
        /// `create`, `update`, `delete (to recreate)`, `recreate`, `read the info of`.
        op: &'static str,
        /// The stream.
        stream: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// Existing streams differ in what JetStream cannot change.
    #[error(
        "JetStream cannot change these on an existing stream, so nothing was changed:\n  {}",
        differences.join("\n  ")
    )]
    StreamImmutable {
        /// One line per difference (`stream X: retention is ... but ...`).
        differences: Vec<String>,
    },

    // Redis.
    /// Connecting to Redis failed.
    #[error("cannot connect to Redis at {addr}")]
    RedisConnect {
        /// `host:port`.
        addr: String,
        /// Why.
        #[source]
        source: cp_runtime::resp::RespError,
    },
    /// A Redis command failed.
    #[error("{step}")]
    Redis {
        /// What was being done.
        step: RedisStep,
        /// Why.
        #[source]
        source: cp_runtime::resp::RespError,
    },

    // Vault.
    /// A Vault resource kind the seeder does not know.
    #[error("unknown Vault resource kind `{kind}`")]
    UnknownVaultResource {
        /// The kind.
        kind: String,
    },
    /// The server has no file audit device.
    #[error("vault has no file audit device enabled")]
    NoAuditDevice,
    /// A Vault plan step cannot be applied.
    #[error("cannot apply the Vault configuration: {step}: {reason}")]
    VaultBlocked {
        /// The step.
        step: String,
        /// Why not.
        reason: String,
    },
    /// Vault answered a request without what it should hold.
    #[error("{request} answered without {missing}")]
    VaultAnswer {
        /// The request (`token create`).
        request: &'static str,
        /// What was missing (`a token`).
        missing: &'static str,
    },
    /// A transit key to rotate does not exist.
    #[error("transit key `{key}` does not exist; run `controlplane seed` first")]
    NoTransitKey {
        /// The key.
        key: String,
    },
    /// An entry encrypted with a key could not be rewrapped, so its oldest versions
    /// stay decryptable.
    #[error(
        "cannot rewrap {entry} with transit key `{key}`, so min_decryption_version was not raised"
    )]
    Rewrap {
        /// The key.
        key: String,
        /// The KV entry and field (`secret/tenants/<id>/meta#token`).
        entry: String,
        /// Why.
        #[source]
        source: cp_runtime::vault::RequestError,
    },
    /// An AppRole without a role id.
    #[error("AppRole `{role}` has no role id")]
    NoRoleId {
        /// The role.
        role: String,
    },

    // PostgreSQL.
    /// PostgreSQL did not answer.
    #[error("{doing}: cannot reach PostgreSQL at {addr}")]
    PostgresUnreachable {
        /// What was being done.
        doing: String,
        /// `host:port`.
        addr: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// PostgreSQL refused a role's password.
    #[error("{doing}: PostgreSQL at {addr} rejected the password of role `{role}`")]
    PasswordRejected {
        /// What was being done.
        doing: String,
        /// `host:port`.
        addr: String,
        /// The role.
        role: String,
        /// The server's answer.
        #[source]
        source: sqlx::Error,
    },
    /// The database to connect to does not exist.
    #[error("{doing}: the database does not exist on {addr}")]
    NoDatabase {
        /// What was being done.
        doing: String,
        /// `host:port`.
        addr: String,
        /// The server's answer.
        #[source]
        source: sqlx::Error,
    },
    /// A statement failed on the server.
    #[error("{doing} (as `{role}`){}", code.as_ref().map(|c| format!(" [SQLSTATE {c}]")).unwrap_or_default())]
    Statement {
        /// What was being done.
        doing: String,
        /// The role the statement ran as.
        role: String,
        /// The SQLSTATE, when shown (not for a missing relation, whose hint says more).
        code: Option<String>,
        /// The server's answer.
        #[source]
        source: sqlx::Error,
    },
    /// Anything else sqlx reports (a protocol or TLS failure).
    #[error("{doing} (as `{role}` at {addr})")]
    Postgres {
        /// What was being done.
        doing: String,
        /// The role.
        role: String,
        /// `host:port`.
        addr: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// A migration's SQL failed (its transaction was rolled back).
    #[error("{doing}: migration {version} ({description})")]
    Migration {
        /// What was being done (`applying migrations`).
        doing: String,
        /// The migration's version (its file is `{version}_{description}.up.sql`).
        version: i64,
        /// The migration's description.
        description: String,
        /// The server's answer.
        #[source]
        source: sqlx::Error,
    },
    /// The migrator failed outside a migration's SQL.
    #[error("{doing}")]
    Migrate {
        /// What was being done.
        doing: String,
        /// Why.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A migration is marked as failed in the migrations table.
    #[error("migration {version} is marked as failed in {table}")]
    MigrationFailed {
        /// The version.
        version: i64,
        /// The migrations table.
        table: &'static str,
    },
    /// The database has a migration this binary does not embed.
    #[error("the database has migration {version}, which this binary does not know")]
    UnknownMigration {
        /// The version.
        version: i64,
    },
    /// An applied migration's checksum differs from the embedded one.
    #[error("migration {version} ({description}) was changed after it was applied")]
    MigrationChanged {
        /// The version.
        version: i64,
        /// Its description.
        description: String,
    },
    /// A migration to revert has no down script.
    #[error("migration {version} has no down script")]
    NoDownScript {
        /// The version.
        version: i64,
    },
    /// A database resource kind the seeder does not know.
    #[error("unknown database resource kind `{kind}`")]
    UnknownDatabaseResource {
        /// The kind.
        kind: String,
    },
    /// A database plan step cannot be applied.
    #[error("{step}: {reason}")]
    DatabaseBlocked {
        /// The step.
        step: String,
        /// Why not.
        reason: String,
    },
    /// A grant on an object the seeder cannot name.
    #[error("cannot grant on `{object}`")]
    CannotGrant {
        /// The object.
        object: String,
    },

    // Tenants.
    /// A tenant id exists with another slug.
    #[error("tenant {id} already exists with slug `{existing}`, not `{slug}`")]
    TenantSlugMismatch {
        /// The tenant.
        id: String,
        /// The slug asked for.
        slug: String,
        /// The slug it has.
        existing: String,
    },
    /// A slug belongs to another tenant.
    #[error("the slug `{slug}` is already taken by tenant {by}")]
    SlugTaken {
        /// The slug.
        slug: String,
        /// The tenant that has it.
        by: String,
    },
    /// Another run created the tenant or took the slug meanwhile.
    #[error("tenant {id} or slug `{slug}` was created concurrently")]
    TenantRace {
        /// The tenant.
        id: String,
        /// The slug.
        slug: String,
    },
    /// A slug that is not a DNS label.
    #[error("{slug} is not a valid tenant slug")]
    InvalidSlug {
        /// The slug, shortened and escaped for display (`crate::tenants::shown`).
        slug: String,
    },
    /// A display name that breaks a rule (`crate::tenants::check_name`).
    #[error("the tenant name {name} is refused: {rule}")]
    InvalidTenantName {
        /// The name, shortened and escaped for display.
        name: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// Tenants need PostgreSQL.
    #[error("tenants live in PostgreSQL, which this environment does not run")]
    TenantsNeedPostgres,
    /// A tenant inserted a moment ago cannot be read back.
    #[error("tenant {id} vanished right after it was inserted")]
    TenantVanished {
        /// The tenant.
        id: String,
    },
    /// A tenant's transit key has flags that cannot be taken back.
    #[error(
        "transit key {key} has flags that cannot be taken back (exportable or plaintext backup)"
    )]
    IrreversibleKeyFlags {
        /// The key.
        key: String,
    },
}

impl SeedErrorKind {
    /// The service it happened at (`postgres`, `nats`, `vault`, `redis`, `tenants`,
    /// `seed`).
    pub fn service(&self) -> &'static str {
        use SeedErrorKind as K;
        use cp_runtime::access::AccessError;
        match self {
            K::NotRun { service } => service,
            K::NotSeeded { .. } => "seed",
            K::Access(e) => match e {
                AccessError::Secret { setting, .. } => setting.service().as_str(),
                AccessError::NoEndpoint { service } => service.as_str(),
                AccessError::RootToken(_) => "vault",
                AccessError::AppSecret { service, .. } => service,
            },
            K::Events(_)
            | K::NatsConnect(_)
            | K::ListStreams { .. }
            | K::Stream { .. }
            | K::StreamImmutable { .. } => "nats",
            K::RedisConnect { .. } | K::Redis { .. } => "redis",
            K::Vault(_)
            | K::UnknownVaultResource { .. }
            | K::NoAuditDevice
            | K::VaultBlocked { .. }
            | K::VaultAnswer { .. }
            | K::NoTransitKey { .. }
            | K::Rewrap { .. }
            | K::NoRoleId { .. } => "vault",
            K::PostgresUnreachable { .. }
            | K::PasswordRejected { .. }
            | K::NoDatabase { .. }
            | K::Statement { .. }
            | K::Postgres { .. }
            | K::Migration { .. }
            | K::Migrate { .. }
            | K::MigrationFailed { .. }
            | K::UnknownMigration { .. }
            | K::MigrationChanged { .. }
            | K::NoDownScript { .. }
            | K::UnknownDatabaseResource { .. }
            | K::DatabaseBlocked { .. }
            | K::CannotGrant { .. }
            | K::TenantSlugMismatch { .. }
            | K::SlugTaken { .. }
            | K::TenantRace { .. } => "postgres",
            K::InvalidSlug { .. }
            | K::InvalidTenantName { .. }
            | K::TenantsNeedPostgres
            | K::TenantVanished { .. }
            | K::IrreversibleKeyFlags { .. } => "tenants",
        }
    }
}

/// The Redis command that failed, as [`SeedErrorKind::Redis`] names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisStep {
    /// `AUTH` as the admin user.
    LogIn {
        /// The user.
        user: String,
    },
    /// `ACL GETUSER`.
    ReadUser {
        /// The user.
        name: String,
    },
    /// `ACL SETUSER`.
    SetUser {
        /// The user.
        name: String,
    },
    /// `COMMAND LIST`.
    ListCommands,
    /// `ACL CAT`.
    ListCategory {
        /// The category.
        category: String,
    },
    /// `CONFIG GET aclfile`.
    ReadAclFile,
    /// `ACL SAVE`.
    SaveAcl {
        /// The ACL file.
        file: String,
    },
}

impl std::fmt::Display for RedisStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RedisStep::LogIn { user } => write!(f, "cannot log in as `{user}`"),
            RedisStep::ReadUser { name } => write!(f, "cannot read ACL user `{name}`"),
            RedisStep::SetUser { name } => write!(f, "cannot set ACL user `{name}`"),
            RedisStep::ListCommands => f.write_str("cannot list commands"),
            RedisStep::ListCategory { category } => {
                write!(f, "cannot list ACL category `{category}`")
            }
            RedisStep::ReadAclFile => f.write_str("cannot read `aclfile`"),
            RedisStep::SaveAcl { file } => write!(f, "cannot save the ACL users to {file}"),
        }
    }
}

impl From<cp_runtime::access::AccessError> for SeedError {
    fn from(e: cp_runtime::access::AccessError) -> Self {
        SeedErrorKind::Access(e).into()
    }
}

impl From<cp_runtime::events::EventError> for SeedError {
    fn from(e: cp_runtime::events::EventError) -> Self {
        SeedErrorKind::Events(e).into()
    }
}

impl From<cp_runtime::nats::ConnectError> for SeedError {
    fn from(e: cp_runtime::nats::ConnectError) -> Self {
        let hint = e.hint();
        SeedError::from(SeedErrorKind::NatsConnect(e)).hint(hint)
    }
}

impl From<cp_runtime::vault::RequestError> for SeedError {
    fn from(e: cp_runtime::vault::RequestError) -> Self {
        let hint = e.hint();
        let err = SeedError::from(SeedErrorKind::Vault(e));
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_the_service_then_the_cause_and_keeps_the_hint_last() {
        let e = SeedError::from(SeedErrorKind::RedisConnect {
            addr: "127.0.0.1:1".into(),
            source: cp_runtime::resp::RespError::Io(std::io::Error::other("refused")),
        })
        .hint("is Redis up?");
        assert!(e.unreachable());
        assert_eq!(e.service(), "redis");
        assert_eq!(
            e.to_string(),
            "redis: cannot connect to Redis at 127.0.0.1:1\n  hint: is Redis up?"
        );
        assert_eq!(
            cp_runtime::error::chain(&e),
            "redis: cannot connect to Redis at 127.0.0.1:1: redis connection failed: refused\n  hint: is Redis up?"
        );
        assert_eq!(
            e.message(),
            "cannot connect to Redis at 127.0.0.1:1: redis connection failed: refused"
        );
    }

    #[test]
    fn a_refusal_is_not_unreachable() {
        let e = SeedError::from(SeedErrorKind::TenantRace {
            id: "1".into(),
            slug: "acme".into(),
        });
        assert!(!e.unreachable());
        assert_eq!(e.service(), "postgres");
    }
}
