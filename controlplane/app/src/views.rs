//! The typed views every front end prints: `--output json` serialises them, the text
//! output is their `Display`, and the server returns the same structs. Each derives
//! `JsonSchema`; the schemas are committed under `docs/views/` and a test keeps them
//! fresh, so the JSON shapes are documented and stable (fields are only ever added).

use std::collections::BTreeMap;
use std::fmt;

use cp_drivers::{Health, ServiceState, ServiceStatus};
use schemars::JsonSchema;
use serde::Serialize;

pub use cp_core::envplan::EnvPlan as PlanView;

pub mod drift;
pub mod history;
pub mod jobs;
pub mod rotate;
pub mod units;

pub use drift::DriftView;
pub use jobs::{
    JobKind, JobResult, JobStartedView, JobState, JobView, JobsView, LocksView, ProgressEvent,
    SchedulesView, Trigger,
};

/// A time as every view writes it: RFC 3339, seconds, UTC.
pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A service's state as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum StateView {
    /// Running.
    Running,
    /// Exists but is not running, and why.
    Stopped(String),
    /// Not created.
    Missing,
    /// This platform does not run it, and why.
    Skipped(String),
}

/// Health as the last probe saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "health", content = "detail")]
pub enum HealthView {
    /// Answered a real request.
    Healthy,
    /// Did not, and why.
    Unhealthy(String),
    /// Not probed.
    Unknown,
}

/// One service in `status`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ServiceView {
    /// The service (`postgres`, `capsule-registry`, ...).
    pub service: String,
    /// Running or not.
    pub state: StateView,
    /// The version it reports.
    pub version: Option<String>,
    /// Seconds since it started.
    pub uptime_secs: Option<u64>,
    /// Where it answers (`127.0.0.1:5432`).
    pub endpoint: Option<String>,
    /// Health.
    pub health: HealthView,
    /// Process id or container id.
    pub id: Option<String>,
    /// How to connect (URLs per role); passwords only with `--show-secrets` in dev.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub connect: BTreeMap<String, String>,
}

impl From<ServiceStatus> for ServiceView {
    fn from(s: ServiceStatus) -> Self {
        Self {
            service: s.service.to_string(),
            state: match s.state {
                ServiceState::Running => StateView::Running,
                ServiceState::Stopped(w) => StateView::Stopped(w),
                ServiceState::Missing => StateView::Missing,
                ServiceState::Skipped(w) => StateView::Skipped(w),
            },
            version: s.version,
            uptime_secs: s.uptime_secs,
            endpoint: s.endpoint,
            health: match s.health {
                Health::Healthy => HealthView::Healthy,
                Health::Unhealthy(w) => HealthView::Unhealthy(w),
                Health::Unknown => HealthView::Unknown,
            },
            id: s.id,
            connect: BTreeMap::new(),
        }
    }
}

impl ServiceView {
    /// Running (or deliberately not run here) and not unhealthy.
    pub fn ok(&self) -> bool {
        matches!(self.state, StateView::Running | StateView::Skipped(_))
            && !matches!(self.health, HealthView::Unhealthy(_))
    }
}

/// `status`: every service of an environment.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StatusView {
    /// The environment.
    pub environment: String,
    /// The driver (`process`, `docker`, `kubernetes`).
    pub driver: String,
    /// Why that driver.
    pub driver_reason: String,
    /// Every service.
    pub services: Vec<ServiceView>,
    /// True when every service is running (or skipped here) and none is unhealthy.
    pub healthy: bool,
    /// The CA certificate (PEM file) the services' TLS certificates chain to, when
    /// the environment has TLS on and the CA exists: what clients trust.
    pub tls_ca: Option<String>,
}

/// Left-aligned columns, two spaces apart, trailing blanks trimmed.
pub fn table(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

impl fmt::Display for StatusView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows = vec![
            [
                "SERVICE", "STATE", "VERSION", "UPTIME", "ENDPOINT", "HEALTH",
            ]
            .map(String::from)
            .to_vec(),
        ];
        for s in &self.services {
            let state = match &s.state {
                StateView::Running => "running".to_owned(),
                StateView::Stopped(why) => format!("stopped ({why})"),
                StateView::Missing => "missing".to_owned(),
                StateView::Skipped(why) => format!("skipped ({why})"),
            };
            let health = match &s.health {
                HealthView::Healthy => "healthy".to_owned(),
                HealthView::Unhealthy(why) => format!("unhealthy: {why}"),
                HealthView::Unknown => "-".to_owned(),
            };
            rows.push(vec![
                s.service.clone(),
                state,
                s.version.clone().unwrap_or_else(|| "-".into()),
                units::uptime(s.uptime_secs),
                s.endpoint.clone().unwrap_or_else(|| "-".into()),
                health,
            ]);
        }
        f.write_str(&table(&rows))?;
        if let Some(ca) = &self.tls_ca {
            write!(f, "\nTLS: clients trust the CA certificate {ca}\n")?;
        }
        Ok(())
    }
}

/// What one layer's seeding did.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ChangesView {
    /// The service or layer (`postgres`, `nats`, `redis`, `vault`, `tenants`).
    pub service: String,
    /// One line per change made; empty when nothing changed.
    pub changes: Vec<String>,
    /// Requests or statements sent.
    pub round_trips: u64,
}

impl From<cp_seed::Report> for ChangesView {
    fn from(r: cp_seed::Report) -> Self {
        Self {
            service: r.service.to_owned(),
            changes: r.changes,
            round_trips: r.round_trips,
        }
    }
}

fn write_changes(f: &mut fmt::Formatter<'_>, reports: &[ChangesView]) -> fmt::Result {
    for r in reports {
        if r.changes.is_empty() {
            writeln!(
                f,
                "  {:<9} up to date ({} round trips)",
                r.service, r.round_trips
            )?;
        }
        for c in &r.changes {
            writeln!(f, "  {:<9} {c}", r.service)?;
        }
    }
    Ok(())
}

/// `seed`: what each layer changed.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SeedView {
    /// The environment.
    pub environment: String,
    /// Whether anything changed.
    pub changed: bool,
    /// One entry per layer.
    pub reports: Vec<ChangesView>,
    /// Outside dev, the bootstrap root token was revoked after seeding.
    pub revoked_root_token: bool,
}

impl fmt::Display for SeedView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed: {}",
            if self.changed {
                "applied"
            } else {
                "nothing to change"
            }
        )?;
        write_changes(f, &self.reports)?;
        if self.revoked_root_token {
            writeln!(
                f,
                "  vault     revoked the bootstrap root token; later seeds need VAULT_TOKEN \
                 (a token with the `controlplane-seeder` policy)"
            )?;
        }
        Ok(())
    }
}

/// One migration in `migrate status`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MigrationView {
    /// The version.
    pub version: i64,
    /// The description.
    pub description: String,
    /// `applied`, `pending`, `changed` (the applied file was edited) or `unknown` (the
    /// database has it, this build does not).
    pub state: String,
}

/// `migrate status`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MigrationsView {
    /// Every migration, oldest first.
    pub migrations: Vec<MigrationView>,
}

impl fmt::Display for MigrationsView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows = vec![vec!["VERSION".into(), "STATE".into(), "DESCRIPTION".into()]];
        for m in &self.migrations {
            rows.push(vec![
                m.version.to_string(),
                m.state.clone(),
                m.description.clone(),
            ]);
        }
        f.write_str(&table(&rows))
    }
}

/// `migrate up|down`: what changed.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MigrateView {
    /// Whether anything changed.
    pub changed: bool,
    /// What changed.
    pub report: ChangesView,
}

impl fmt::Display for MigrateView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "migrate: {}",
            if self.changed {
                "applied"
            } else {
                "nothing to change"
            }
        )?;
        write_changes(f, std::slice::from_ref(&self.report))
    }
}

/// One tenant and the state of its parts.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TenantView {
    /// The tenant id.
    pub id: String,
    /// Unique slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// Its transit key exists (`None`: the environment runs no Vault).
    pub key: Option<bool>,
    /// Its policy exists.
    pub policy: Option<bool>,
    /// Its KV subtree exists.
    pub kv: Option<bool>,
    /// Every part exists.
    pub complete: bool,
}

/// `tenant list`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TenantsView {
    /// Every tenant, oldest first.
    pub tenants: Vec<TenantView>,
}

impl fmt::Display for TenantsView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows = vec![
            ["ID", "SLUG", "KEY", "POLICY", "KV", "CREATED"]
                .map(String::from)
                .to_vec(),
        ];
        let yes = |b: Option<bool>| match b {
            None => "-",
            Some(true) => "ok",
            Some(false) => "MISSING",
        };
        for t in &self.tenants {
            rows.push(vec![
                t.id.clone(),
                t.slug.clone(),
                yes(t.key).into(),
                yes(t.policy).into(),
                yes(t.kv).into(),
                t.created_at.clone(),
            ]);
        }
        f.write_str(&table(&rows))
    }
}

/// `tenant create|delete`: the tenant and what changed.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TenantChangeView {
    /// The tenant.
    pub tenant: TenantView,
    /// Whether anything changed.
    pub changed: bool,
    /// One entry per service touched.
    pub reports: Vec<ChangesView>,
}

impl fmt::Display for TenantChangeView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} ({})", self.tenant.slug, self.tenant.id)?;
        write_changes(f, &self.reports)
    }
}

/// `down`: what was stopped and removed.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DownView {
    /// The environment.
    pub environment: String,
    /// What was removed.
    pub removed: Vec<String>,
    /// Whether data was deleted too.
    pub volumes: bool,
}

impl fmt::Display for DownView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.removed.is_empty() {
            writeln!(f, "{}: nothing was running", self.environment)?;
        }
        for r in &self.removed {
            writeln!(f, "removed {r}")?;
        }
        if !self.volumes {
            writeln!(f, "data kept; `down --volumes` deletes it")?;
        }
        Ok(())
    }
}

/// What `up` did to one seeded layer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LayerOutcome {
    /// The layer.
    pub layer: cp_core::plan::Layer,
    /// `plan` when its steps were observed before `up` started; `up` when it was
    /// deferred (its service was not running) and planned once it answered;
    /// `skipped` when `up` does not seed it here.
    pub planned: String,
    /// Why it was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// What changed.
    pub changes: Vec<String>,
}

/// `up`: what was applied, what answers.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct UpView {
    /// The environment.
    pub environment: String,
    /// The driver.
    pub driver: String,
    /// Platform steps applied.
    pub platform_steps: usize,
    /// Every service that answered, with its version.
    pub ready: BTreeMap<String, String>,
    /// Milliseconds until every service answered.
    pub elapsed_ms: u64,
    /// What each seeded layer did.
    pub layers: Vec<LayerOutcome>,
    /// Outside dev, the bootstrap root token was revoked after seeding.
    pub revoked_root_token: bool,
}

impl UpView {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        self.platform_steps > 0 || self.layers.iter().any(|l| !l.changes.is_empty())
    }
}

impl UpView {
    /// What a terminal shows after `up`'s live progress, which has printed every
    /// change as it was made: the skipped layers and the one-line result, so no change
    /// prints twice.
    pub fn summary(&self) -> UpSummary<'_> {
        UpSummary(self)
    }
}

/// [`UpView::summary`].
#[derive(Debug)]
pub struct UpSummary<'a>(&'a UpView);

impl fmt::Display for UpSummary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f, false)
    }
}

impl fmt::Display for UpView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, true)
    }
}

impl UpView {
    fn write(&self, f: &mut fmt::Formatter<'_>, changes: bool) -> fmt::Result {
        for l in &self.layers {
            if let Some(why) = &l.skipped {
                writeln!(f, "  {:<9} skipped: {why}", l.layer.as_str())?;
            }
            for c in l.changes.iter().filter(|_| changes) {
                writeln!(f, "  {:<9} {c}", l.layer.as_str())?;
            }
        }
        let seeded: usize = self.layers.iter().map(|l| l.changes.len()).sum();
        if self.changed() {
            write!(
                f,
                "{}: {} platform change(s) and {seeded} seed change(s) applied; {} service(s) answering after {} ms",
                self.environment,
                self.platform_steps,
                self.ready.len(),
                self.elapsed_ms
            )
        } else {
            write!(
                f,
                "{}: nothing to change; {} service(s) answering ({} ms)",
                self.environment,
                self.ready.len(),
                self.elapsed_ms
            )
        }
    }
}

/// One alert in `alerts`, as the environment's Prometheus holds it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AlertView {
    /// The alert's name (`ServiceDown`).
    pub alert: String,
    /// `firing`, or `pending` (its condition holds, its `for` has not elapsed).
    pub state: String,
    /// Its severity label (`critical`, `warning`).
    pub severity: Option<String>,
    /// Since when it is active (RFC 3339).
    pub since: Option<String>,
    /// Its summary annotation.
    pub summary: Option<String>,
    /// Its description annotation.
    pub description: Option<String>,
    /// Its other labels (`job`, `namespace`, `service`, ...).
    pub labels: BTreeMap<String, String>,
    /// The expression's value when it was last evaluated.
    pub value: String,
}

/// An environment's alert rules and, with a Prometheus configured for it
/// (`serve --prometheus ENV=URL`), what fires there: the server's alerts page and API.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EnvironmentAlertsView {
    /// The rendered rules with this environment's thresholds.
    pub rules: AlertRulesView,
    /// The Prometheus asked, if configured.
    pub prometheus: Option<String>,
    /// What fires and is pending (absent without a Prometheus, or when it failed):
    /// the view `controlplane alerts` prints.
    pub firing: Option<AlertsView>,
    /// Why Prometheus could not be asked.
    pub firing_error: Option<String>,
}

/// `alerts`: what fires and what is pending in the environment's Prometheus (the
/// console's alerts page shows the same).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AlertsView {
    /// The environment.
    pub environment: String,
    /// The Prometheus asked (`http://127.0.0.1:9091`).
    pub prometheus: String,
    /// How many fire.
    pub firing: usize,
    /// How many are pending.
    pub pending: usize,
    /// Firing first, then pending; critical before the rest; by name.
    pub alerts: Vec<AlertView>,
}

impl fmt::Display for AlertsView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.alerts.is_empty() {
            return write!(
                f,
                "{}: nothing firing or pending ({})",
                self.environment, self.prometheus
            );
        }
        let mut rows = vec![
            ["ALERT", "STATE", "SEVERITY", "SINCE", "WHERE", "SUMMARY"]
                .map(String::from)
                .to_vec(),
        ];
        for a in &self.alerts {
            let at = ["service", "job", "instance"]
                .iter()
                .find_map(|k| a.labels.get(*k))
                .cloned()
                .unwrap_or_else(|| "-".into());
            rows.push(vec![
                a.alert.clone(),
                a.state.clone(),
                a.severity.clone().unwrap_or_else(|| "-".into()),
                a.since.clone().unwrap_or_else(|| "-".into()),
                at,
                a.summary.clone().unwrap_or_default(),
            ]);
        }
        f.write_str(&table(&rows))?;
        write!(
            f,
            "{}: {} firing, {} pending ({})",
            self.environment, self.firing, self.pending, self.prometheus
        )
    }
}

/// `validate`: which environments are valid.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ValidateView {
    /// Always true (invalid files are reported as diagnostics instead).
    pub ok: bool,
    /// The environments checked.
    pub environments: Vec<String>,
    /// Tier-policy rules broken and accepted (`accept:`, with the reason), and
    /// warnings: nothing here makes an environment invalid.
    pub policy: Vec<PolicyView>,
}

/// A tier-policy finding that did not make the environment invalid.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PolicyView {
    /// The environment.
    pub environment: String,
    /// The rule's id (`nats-ha`).
    pub rule: String,
    /// The key path.
    pub path: String,
    /// What was found.
    pub message: String,
    /// The acceptance's reason; absent for a warning.
    pub accepted: Option<String>,
}

impl PolicyView {
    /// The findings of one loaded environment.
    pub fn of(env: &cp_core::Environment) -> Vec<Self> {
        env.policy
            .iter()
            .map(|f| Self {
                environment: env.name.to_string(),
                rule: f.rule.clone(),
                path: f.path.clone(),
                message: f.message.clone(),
                accepted: f.accepted.clone(),
            })
            .collect()
    }
}

impl fmt::Display for PolicyView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.accepted {
            Some(reason) => write!(
                f,
                "{}: accepted [{}] {} ({}); reason: {reason}",
                self.environment, self.rule, self.message, self.path
            ),
            None => write!(
                f,
                "{}: warning [{}] {} ({})",
                self.environment, self.rule, self.message, self.path
            ),
        }
    }
}

impl fmt::Display for ValidateView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.policy {
            writeln!(f, "{p}")?;
        }
        write!(f, "ok: {} valid", self.environments.join(", "))
    }
}

/// An error, as `--output json` prints it (on stdout, so a pipeline sees it).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ErrorView {
    /// Always false.
    pub ok: bool,
    /// What failed and what to do (the whole error chain).
    pub error: String,
    /// The exit code.
    pub exit_code: u8,
}

/// Invalid environment files, as `--output json` prints them: every problem, with
/// its place.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct InvalidView {
    /// Always false.
    pub ok: bool,
    /// Each problem: file, line, column, key path, what was wrong and what to do.
    #[schemars(with = "Vec<serde_json::Value>")]
    pub errors: cp_core::Diagnostics,
}

/// `render`: what was written.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RenderView {
    /// Always true.
    pub ok: bool,
    /// The output directory.
    pub dir: std::path::PathBuf,
    /// Files rendered.
    pub files: usize,
    /// Files that changed.
    pub changed: usize,
}

/// One file of `render --check` that differs from what the environments render.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RenderDriftView {
    /// Its path, relative to the output directory.
    pub path: String,
    /// `changed`, `missing` (would be written) or `stale` (would be deleted).
    pub kind: String,
    /// A unified diff, for `changed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// `render --check`: whether the committed output is up to date.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RenderCheckView {
    /// True when nothing differs.
    pub ok: bool,
    /// Each file that differs.
    pub drift: Vec<RenderDriftView>,
    /// The command that brings the output up to date, when something differs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// `token create`: the token, shown once.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TokenCreatedView {
    /// Its name.
    pub name: String,
    /// `viewer`, `editor` or `admin`.
    pub role: String,
    /// The tenant it is scoped to, if any.
    pub tenant: Option<String>,
    /// The bearer token (stored only hashed: it is never shown again).
    pub token: String,
}

/// `nats`: the server and the declared streams.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NatsView {
    /// The server's name.
    pub server: String,
    /// The version it reports.
    pub version: String,
    /// Whether JetStream is on.
    pub jetstream: bool,
    /// Where clients connect (no password).
    pub client_url: String,
    /// The monitoring endpoint.
    pub monitor_url: String,
    /// Every stream the environment declares.
    pub streams: Vec<StreamView>,
}

/// One declared stream and what the server holds of it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct StreamView {
    /// The stream.
    pub stream: String,
    /// Declared but absent on the server (`seed` creates it).
    pub missing: bool,
    /// The environment declares it (`nats stream ls` also lists streams it does not).
    pub declared: bool,
    /// The subjects it captures.
    pub subjects: Vec<String>,
    /// Messages held.
    pub messages: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Consumers.
    pub consumers: usize,
}

impl fmt::Display for NatsView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "server {} (NATS {}), JetStream {}",
            self.server,
            self.version,
            if self.jetstream { "on" } else { "off" }
        )?;
        writeln!(
            f,
            "client URL: {} (monitoring: {})",
            self.client_url, self.monitor_url
        )?;
        for st in &self.streams {
            if st.missing {
                writeln!(f, "  {:<18} missing (run `controlplane seed`)", st.stream)?;
            } else {
                writeln!(
                    f,
                    "  {:<18} {:>8} msgs {:>10} bytes {:>3} consumers",
                    st.stream, st.messages, st.bytes, st.consumers
                )?;
            }
        }
        Ok(())
    }
}

/// `nats pub`: what was published, as the admin.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NatsPublishView {
    /// The subject.
    pub subject: String,
    /// The payload's size.
    pub bytes: usize,
    /// The stream that stored it (acknowledged), when a stream captures the subject.
    pub stream: Option<String>,
    /// Its sequence in that stream.
    pub sequence: Option<u64>,
}

impl fmt::Display for NatsPublishView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "published {} bytes to {}", self.bytes, self.subject)?;
        match (&self.stream, self.sequence) {
            (Some(st), Some(seq)) => write!(f, " (stored in stream {st} as message {seq})"),
            _ => write!(
                f,
                " (no stream captures it: delivered to current subscribers only)"
            ),
        }
    }
}

/// `nats sub`: one message received (with `-o json`, one object per line).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NatsMessageView {
    /// The subject it was published to.
    pub subject: String,
    /// The payload, as UTF-8 (invalid bytes replaced).
    pub data: String,
    /// The payload's size.
    pub bytes: usize,
    /// The reply subject, if any.
    pub reply: Option<String>,
}

impl fmt::Display for NatsMessageView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.subject, self.data)
    }
}

/// `nats stream ls`: the server's streams and the declared ones it lacks.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NatsStreamsView {
    /// Each stream, the server's by name, then declared ones that are missing.
    pub streams: Vec<StreamView>,
}

impl fmt::Display for NatsStreamsView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for st in &self.streams {
            if st.missing {
                writeln!(f, "{:<18} missing (run `controlplane seed`)", st.stream)?;
            } else {
                writeln!(
                    f,
                    "{:<18} {:>8} msgs {:>10} bytes {:>3} consumers  {}{}",
                    st.stream,
                    st.messages,
                    st.bytes,
                    st.consumers,
                    st.subjects.join(" "),
                    if st.declared { "" } else { "  (not declared)" }
                )?;
            }
        }
        Ok(())
    }
}

/// `nats stream info NAME`: one stream's configuration and state.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct NatsStreamInfoView {
    /// Its name, subjects and counts.
    pub stream: StreamView,
    /// Its configuration, in the shape `plan` compares (retention, limits, storage,
    /// replicas, discard, duplicate window).
    pub config: serde_json::Value,
    /// The first sequence held.
    pub first_sequence: u64,
    /// The last sequence held.
    pub last_sequence: u64,
}

impl fmt::Display for NatsStreamInfoView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = &self.stream;
        writeln!(f, "stream {}: {}", st.stream, st.subjects.join(" "))?;
        writeln!(
            f,
            "  {} msgs ({}..{}), {} bytes, {} consumers",
            st.messages, self.first_sequence, self.last_sequence, st.bytes, st.consumers
        )?;
        if let Some(c) = self.config.as_object() {
            for (k, v) in c {
                if k != "subjects" {
                    writeln!(f, "  {k}: {v}")?;
                }
            }
        }
        Ok(())
    }
}

/// One built-in alert rule with this environment's settings.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AlertRuleView {
    /// The key under `alerts.rules` (`high_error_rate`), or `custom` for your own.
    pub key: String,
    /// The alert's name (`HighErrorRate`).
    pub alert: String,
    /// Rendered at all.
    pub enabled: bool,
    /// The threshold (its meaning is in `unit`); `None` for custom rules.
    pub threshold: Option<f64>,
    /// What the threshold counts: `fraction`, `seconds`, `count`, `per_second`, `none`.
    pub unit: String,
    /// How long the condition must hold (as written, `5m`).
    #[serde(rename = "for")]
    pub for_: String,
    /// `info`, `warning` or `critical`.
    pub severity: cp_core::raw::Severity,
    /// The PromQL of a custom rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expr: Option<String>,
}

/// The alert rules an environment renders, with its thresholds.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AlertRulesView {
    /// The environment.
    pub environment: String,
    /// Built-in rules (in render order), then custom ones.
    pub rules: Vec<AlertRuleView>,
}

impl fmt::Display for AlertRulesView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows = vec![
            ["ALERT", "ENABLED", "THRESHOLD", "FOR", "SEVERITY"]
                .map(String::from)
                .to_vec(),
        ];
        for r in &self.rules {
            rows.push(vec![
                r.alert.clone(),
                if r.enabled { "yes" } else { "no" }.into(),
                r.threshold.map_or_else(|| "-".into(), |t| t.to_string()),
                r.for_.clone(),
                format!("{:?}", r.severity).to_lowercase(),
            ]);
        }
        f.write_str(&table(&rows))
    }
}

/// The JSON Schema of every view, by name (`docs/views/<name>.schema.json`).
pub fn schemas() -> BTreeMap<&'static str, serde_json::Value> {
    let mut m = BTreeMap::new();
    m.insert("plan", schemars::schema_for!(PlanView).to_value());
    m.insert(
        "saved-plan",
        schemars::schema_for!(cp_core::envplan::SavedPlan).to_value(),
    );
    m.insert("status", schemars::schema_for!(StatusView).to_value());
    m.insert(
        "restore-to-time",
        schemars::schema_for!(crate::moment::MomentRestoreView).to_value(),
    );
    m.insert("up", schemars::schema_for!(UpView).to_value());
    m.insert("down", schemars::schema_for!(DownView).to_value());
    m.insert("seed", schemars::schema_for!(SeedView).to_value());
    m.insert("migrate", schemars::schema_for!(MigrateView).to_value());
    m.insert(
        "migrations",
        schemars::schema_for!(MigrationsView).to_value(),
    );
    m.insert("tenants", schemars::schema_for!(TenantsView).to_value());
    m.insert(
        "tenant-change",
        schemars::schema_for!(TenantChangeView).to_value(),
    );
    m.insert("validate", schemars::schema_for!(ValidateView).to_value());
    m.insert("nats", schemars::schema_for!(NatsView).to_value());
    m.insert(
        "nats-publish",
        schemars::schema_for!(NatsPublishView).to_value(),
    );
    m.insert(
        "nats-message",
        schemars::schema_for!(NatsMessageView).to_value(),
    );
    m.insert(
        "nats-streams",
        schemars::schema_for!(NatsStreamsView).to_value(),
    );
    m.insert(
        "nats-stream-info",
        schemars::schema_for!(NatsStreamInfoView).to_value(),
    );
    m.insert(
        "alert-rules",
        schemars::schema_for!(AlertRulesView).to_value(),
    );
    m.insert("alerts", schemars::schema_for!(AlertsView).to_value());
    m.insert("error", schemars::schema_for!(ErrorView).to_value());
    m.insert("backup", schemars::schema_for!(BackupView).to_value());
    m.insert(
        "backup-list",
        schemars::schema_for!(BackupListView).to_value(),
    );
    m.insert(
        "backup-verify",
        schemars::schema_for!(VerifyView).to_value(),
    );
    m.insert(
        "backup-list-all",
        schemars::schema_for!(BackupListAllView).to_value(),
    );
    m.insert("backup-prune", schemars::schema_for!(PruneView).to_value());
    m.insert("restore", schemars::schema_for!(RestoreView).to_value());
    m.insert("job", schemars::schema_for!(JobView).to_value());
    m.insert(
        "rotation",
        schemars::schema_for!(rotate::RotationView).to_value(),
    );
    m.insert("jobs", schemars::schema_for!(JobsView).to_value());
    m.insert(
        "job-started",
        schemars::schema_for!(JobStartedView).to_value(),
    );
    m.insert(
        "progress-event",
        schemars::schema_for!(ProgressEvent).to_value(),
    );
    m.insert("locks", schemars::schema_for!(LocksView).to_value());
    m.insert("schedules", schemars::schema_for!(SchedulesView).to_value());
    m.insert("drift", schemars::schema_for!(DriftView).to_value());
    m.insert(
        "history",
        schemars::schema_for!(history::HistoryView).to_value(),
    );
    m.insert("invalid", schemars::schema_for!(InvalidView).to_value());
    m.insert("render", schemars::schema_for!(RenderView).to_value());
    m.insert(
        "render-check",
        schemars::schema_for!(RenderCheckView).to_value(),
    );
    m.insert(
        "token-created",
        schemars::schema_for!(TokenCreatedView).to_value(),
    );
    m
}

/// `backup`: the set taken, per service.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BackupView {
    /// The environment.
    pub environment: String,
    /// What the run did.
    #[serde(flatten)]
    pub report: cp_backup::run::BackupReport,
}

impl fmt::Display for BackupView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.report;
        writeln!(f, "{} ({}, destination {})", r.id, r.state, r.destination)?;
        writeln!(
            f,
            "  {:<10} {:>10} {:>12} {:>9} {:>10}",
            "service", "size", "compressed", "time", "MB/s"
        )?;
        for s in &r.services {
            if s.ok {
                writeln!(
                    f,
                    "  {:<10} {:>10} {:>12} {:>9} {:>10.1}",
                    s.service.as_str(),
                    units::size(s.size),
                    units::size(s.stored_size),
                    units::seconds(s.duration_ms),
                    s.throughput_mb_s
                )?;
            } else {
                writeln!(
                    f,
                    "  {:<10} FAILED: {}",
                    s.service.as_str(),
                    s.error.as_deref().unwrap_or("")
                )?;
            }
        }
        if let Some(p) = &r.pruned {
            writeln!(
                f,
                "pruned: {} kept, {} deleted",
                p.plan.keep.len(),
                p.plan.delete.len()
            )?;
        }
        if r.destinations.len() > 1 || r.destinations.iter().any(|d| !d.ok) {
            for d in &r.destinations {
                match &d.error {
                    None => writeln!(f, "  destination {:<12} {}", d.destination, d.how)?,
                    Some(e) => writeln!(f, "  destination {:<12} FAILED: {e}", d.destination)?,
                }
            }
        }
        Ok(())
    }
}

/// An environment's last backup, as the console's pages show it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BackupSummaryView {
    /// How old the oldest service's last success is (`3h`), or `never`.
    pub age: String,
    /// `ok`, `last run failed`, `failed` or `none yet`.
    pub state: String,
    /// Whether every service's last run succeeded.
    pub ok: bool,
}

/// `backup list`: every set at the destination.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BackupListView {
    /// The destination.
    pub destination: String,
    /// Newest first.
    pub sets: Vec<BackupSetView>,
    /// Why the destination could not be listed (`backup list --destination all` goes
    /// on with the others).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Point-in-time recovery's window and archive lag (`backup.pitr` on).
    pub pitr: Option<crate::pitr::WindowView>,
}

/// `backup list --destination all`: each destination's sets, so a set's state is seen
/// per destination.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BackupListAllView {
    /// Each destination, by name.
    pub destinations: Vec<BackupListView>,
}

impl fmt::Display for BackupListAllView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.destinations.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            writeln!(f, "destination {}:", d.destination)?;
            match &d.error {
                Some(e) => writeln!(f, "  cannot list it: {e}")?,
                None => write!(f, "{d}")?,
            }
        }
        Ok(())
    }
}

/// One set in `backup list`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BackupSetView {
    /// The catalog entry.
    #[serde(flatten)]
    pub entry: cp_backup::catalog::Entry,
    /// How old it is (`3d 4h`).
    pub age: String,
}

impl fmt::Display for BackupListView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.sets.is_empty() {
            writeln!(f, "no backup sets at destination `{}`", self.destination)?;
            if let Some(p) = &self.pitr {
                write!(f, "{p}")?;
            }
            return Ok(());
        }
        writeln!(
            f,
            "{:<24} {:<11} {:>9} {:>12}  services",
            "id", "state", "age", "stored"
        )?;
        for s in &self.sets {
            let e = &s.entry;
            let mut state = e.state.name().to_owned();
            if let cp_backup::catalog::SetState::Partial { failed } = &e.state {
                let names: Vec<&str> = failed.iter().map(|k| k.as_str()).collect();
                state = format!("partial ({} failed)", names.join(", "));
            }
            let services: Vec<&str> = e.services.iter().map(|k| k.as_str()).collect();
            writeln!(
                f,
                "{:<24} {:<11} {:>9} {:>12}  {}",
                e.id.as_str(),
                state,
                s.age,
                units::size(e.stored_size),
                services.join(" ")
            )?;
        }
        if let Some(p) = &self.pitr {
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// `backup verify`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct VerifyView {
    /// What was checked.
    #[serde(flatten)]
    pub report: cp_backup::run::VerifyReport,
    /// No problem found.
    pub ok: bool,
}

impl fmt::Display for VerifyView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.report;
        for d in &r.drill {
            writeln!(f, "drill: {d}")?;
        }
        for p in &r.problems {
            writeln!(f, "FAILED: {p}")?;
        }
        if self.ok {
            writeln!(
                f,
                "{}: {} artifacts read back and checked",
                r.id, r.artifacts
            )
        } else {
            writeln!(f, "{}: {} problem(s)", r.id, r.problems.len())
        }
    }
}

/// `restore`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RestoreView {
    /// The set.
    pub id: String,
    /// The environment restored into.
    pub environment: String,
    /// One line per service.
    pub restored: Vec<String>,
}

impl fmt::Display for RestoreView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.restored {
            writeln!(f, "{r}")?;
        }
        writeln!(f, "{} restored into {}", self.id, self.environment)
    }
}

/// `backup prune`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PruneView {
    /// The destination.
    pub destination: String,
    /// What retention decided and whether it was applied.
    #[serde(flatten)]
    pub report: cp_backup::run::PruneReport,
}

impl fmt::Display for PruneView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.report.plan)?;
        if !self.report.applied && !self.report.plan.delete.is_empty() {
            writeln!(f, "(dry run: nothing was deleted)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_read_as_a_table_with_a_count_and_say_when_nothing_fires() {
        let alert = |name: &str, state: &str, job: &str| AlertView {
            alert: name.into(),
            state: state.into(),
            severity: Some("critical".into()),
            since: Some("2026-12-01T19:00:00Z".into()),
            summary: Some(format!("{job} is down in dev")),
            description: None,
            labels: BTreeMap::from([("job".to_owned(), job.to_owned())]),
            value: "0e+00".into(),
        };
        let mut v = AlertsView {
            environment: "dev".into(),
            prometheus: "http://127.0.0.1:9091".into(),
            firing: 1,
            pending: 1,
            alerts: vec![
                alert("ServiceDown", "firing", "redis"),
                alert("ServiceDown", "pending", "nats"),
            ],
        };
        let text = v.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ALERT"), "{text}");
        assert!(
            lines[1].starts_with("ServiceDown  firing   critical  2026-12-01T19:00:00Z  redis"),
            "{text}"
        );
        assert!(lines[2].contains("pending") && lines[2].ends_with("nats is down in dev"));
        assert_eq!(lines[3], "dev: 1 firing, 1 pending (http://127.0.0.1:9091)");
        v.alerts.clear();
        assert_eq!(
            v.to_string(),
            "dev: nothing firing or pending (http://127.0.0.1:9091)"
        );
        assert!(schemas().contains_key("alerts"));
    }
}
