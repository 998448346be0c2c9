//! The validated environment model: what every other part of controlplane consumes.
//!
//! Built only by [`crate::load`] after every check has passed, so its invariants hold:
//! names are valid, ports do not clash, quantities and durations are parsed, secrets
//! are references (inline values only in dev), dependencies exist and have no cycle.
//! It serializes (secrets redacted) for `controlplane config --output json` and as the
//! template context; `resolved` turns it back into an environment file.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::names::{CoreKind, EnvName, ServiceName, StreamName};
pub use crate::raw::{
    DestinationKind, LogLevel, Platform, Severity, StreamDiscard, StreamRetention, StreamStorage,
    Tier, TlsMode, TlsVersion, VaultCapability, VaultMode,
};
use crate::units::{Cpu, Duration, Memory, SecretRef};

/// One environment, fully resolved.
#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    /// Its name (`dev`).
    pub name: EnvName,
    /// Project name (`anumate`).
    pub project: String,
    /// What kind of environment.
    pub tier: Tier,
    /// Where `up` runs it.
    pub platform: Platform,
    /// Kubernetes namespace / compose project.
    pub namespace: String,
    /// Domain for default ingress hosts.
    pub domain: String,
    /// The core services (absent when disabled).
    pub services: CoreServices,
    /// Enabled application services.
    pub apps: BTreeMap<ServiceName, App>,
    /// Enabled extra containers.
    pub extras: BTreeMap<ServiceName, Extra>,
    /// The monitoring stack, when enabled.
    pub monitoring: Option<Monitoring>,
    /// JetStream streams.
    pub streams: BTreeMap<StreamName, Stream>,
    /// Vault configuration for `seed`.
    pub vault: VaultConfig,
    /// Backups, when enabled.
    pub backup: Option<Backup>,
    /// The drift watch.
    pub drift: Drift,
    /// Rotation of transit keys and passwords.
    pub rotation: Rotation,
    /// Alert rules.
    pub alerts: Alerts,
    /// Dashboards.
    pub dashboards: Dashboards,
    /// Tier-policy rules accepted by the file (`accept:`), with their reasons.
    pub accept: Vec<crate::policy::Acceptance>,
    /// What the tier policy found and did not refuse: acceptances that applied and
    /// warnings (`validate` and `plan` show them).
    pub policy: Vec<crate::policy::Finding>,
    /// TLS on the platform's listeners.
    pub tls: Tls,
    /// The API server's settings.
    pub serve: Serve,
}

/// The API server (`controlplane serve`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Serve {
    /// The longest an API token of each role may live; `None`: no maximum.
    pub token_max_ttl: TokenMaxTtl,
}

/// A maximum lifetime per API token role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TokenMaxTtl {
    /// Viewer tokens.
    pub viewer: Option<Duration>,
    /// Editor tokens.
    pub editor: Option<Duration>,
    /// Admin tokens.
    pub admin: Option<Duration>,
}

/// TLS on the platform's listeners and the certificates they serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tls {
    /// Off, offered, or required.
    pub mode: TlsMode,
    /// The lowest version listeners accept.
    pub min_version: TlsVersion,
    /// How long an issued certificate is valid.
    pub lifetime: Duration,
    /// Renewed once this percentage of its lifetime has passed.
    pub renew_at_percent: u8,
    /// Where certificates come from.
    pub ca: TlsCa,
    /// On Kubernetes: an existing cert-manager `ClusterIssuer` that signs the
    /// services' certificates, instead of the OpenBao PKI `Issuer` rendered per
    /// environment.
    pub cluster_issuer: Option<String>,
    /// ACME `ClusterIssuer`s the environment manages on Kubernetes, by name.
    pub acme_issuers: BTreeMap<String, AcmeIssuer>,
}

/// An ACME `ClusterIssuer` the environment manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcmeIssuer {
    /// The account's contact address.
    pub email: String,
    /// The ACME directory URL.
    pub server: String,
    /// The ingress class solving HTTP-01 challenges.
    pub ingress_class: String,
}

/// Let's Encrypt's production ACME directory, the default `server`.
pub const LETSENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

impl Tls {
    /// Listeners serve TLS (`on` or `required`).
    pub fn enabled(&self) -> bool {
        self.mode != TlsMode::Off
    }

    /// Plaintext is refused.
    pub fn required(&self) -> bool {
        self.mode == TlsMode::Required
    }

    /// Seconds after issuance at which a certificate is renewed.
    pub fn renew_after_secs(&self) -> u64 {
        self.lifetime.as_secs() * u64::from(self.renew_at_percent) / 100
    }
}

/// Where certificates come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum TlsCa {
    /// A CA made by controlplane, kept 0600 in the state directory.
    Generate,
    /// OpenBao's PKI secrets engine.
    VaultPki,
    /// A CA certificate and key from secret references.
    Ref {
        /// The CA certificate (PEM).
        cert: SecretRef,
        /// The CA key (PEM).
        key: SecretRef,
    },
}

impl Environment {
    /// Every service name in this environment (core, apps, extras, monitoring).
    pub fn service_names(&self) -> Vec<ServiceName> {
        let mut names: Vec<ServiceName> = self
            .services
            .enabled()
            .into_iter()
            .map(ServiceName::core)
            .collect();
        names.extend(self.apps.keys().cloned());
        names.extend(self.extras.keys().cloned());
        if let Some(m) = &self.monitoring {
            names.extend(m.components().into_iter().map(|(n, _)| n));
        }
        names
    }
}

impl Environment {
    /// What each service needs started first: declared `depends_on` of apps and
    /// extras, plus the exporters' databases. Only services of this environment.
    pub fn dependencies(&self) -> BTreeMap<ServiceName, Vec<ServiceName>> {
        let mut deps: BTreeMap<ServiceName, Vec<ServiceName>> = self
            .service_names()
            .into_iter()
            .map(|n| (n, Vec::new()))
            .collect();
        for (n, a) in &self.apps {
            deps.insert(n.clone(), a.depends_on.clone());
        }
        for (n, e) in &self.extras {
            deps.insert(n.clone(), e.depends_on.clone());
        }
        for (exporter, target) in [
            ("postgres-exporter", CoreKind::Postgres),
            ("redis-exporter", CoreKind::Redis),
            ("nats-exporter", CoreKind::Nats),
        ] {
            let exporter = ServiceName::new(exporter).expect("static name");
            if let Some(d) = deps.get_mut(&exporter)
                && self.services.common(target).is_some()
            {
                d.push(ServiceName::core(target));
            }
        }
        deps
    }

    /// `services` and everything they need, transitively.
    pub fn with_dependencies(&self, services: &[ServiceName]) -> Vec<ServiceName> {
        let deps = self.dependencies();
        let mut out: Vec<ServiceName> = Vec::new();
        let mut todo: Vec<ServiceName> = services.to_vec();
        while let Some(s) = todo.pop() {
            if out.contains(&s) {
                continue;
            }
            if let Some(d) = deps.get(&s) {
                todo.extend(d.iter().cloned());
            }
            out.push(s);
        }
        out.sort();
        out
    }
}

/// The four core services; `None` when disabled.
#[derive(Debug, Clone, Serialize)]
pub struct CoreServices {
    /// PostgreSQL.
    pub postgres: Option<Postgres>,
    /// Redis.
    pub redis: Option<Redis>,
    /// NATS JetStream.
    pub nats: Option<Nats>,
    /// Vault / OpenBao.
    pub vault: Option<Vault>,
}

impl CoreServices {
    /// The enabled kinds, in start order.
    pub fn enabled(&self) -> Vec<CoreKind> {
        CoreKind::ALL
            .into_iter()
            .filter(|k| self.common(*k).is_some())
            .collect()
    }

    /// The shared settings of one service, when enabled.
    pub fn common(&self, kind: CoreKind) -> Option<&ServiceCommon> {
        match kind {
            CoreKind::Postgres => self.postgres.as_ref().map(|s| &s.common),
            CoreKind::Redis => self.redis.as_ref().map(|s| &s.common),
            CoreKind::Nats => self.nats.as_ref().map(|s| &s.common),
            CoreKind::Vault => self.vault.as_ref().map(|s| &s.common),
        }
    }
}

/// Settings every core service has.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceCommon {
    /// Server version (`15`).
    pub version: String,
    /// Container image.
    pub image: String,
    /// Listening port.
    pub port: u16,
    /// Replicas on Kubernetes.
    pub replicas: u32,
    /// Volume size on Kubernetes.
    pub storage: Memory,
    /// Requests and limits.
    pub resources: Resources,
}

/// PostgreSQL.
#[derive(Debug, Clone, Serialize)]
pub struct Postgres {
    /// Shared settings.
    #[serde(flatten)]
    pub common: ServiceCommon,
    /// Database name.
    pub database: String,
    /// Bootstrap superuser (`postgres`) password.
    pub superuser_password: SecretRef,
    /// Admin password.
    pub admin_password: SecretRef,
    /// App password.
    pub app_password: SecretRef,
    /// Read-only password.
    pub readonly_password: SecretRef,
    /// Backup password.
    pub backup_password: SecretRef,
    /// Extra server settings.
    pub settings: BTreeMap<String, String>,
}

/// Redis.
#[derive(Debug, Clone, Serialize)]
pub struct Redis {
    /// Shared settings.
    #[serde(flatten)]
    pub common: ServiceCommon,
    /// Admin ACL user's password.
    pub admin_password: SecretRef,
    /// App ACL user's password.
    pub app_password: SecretRef,
    /// `maxmemory`.
    pub maxmemory: Option<String>,
    /// `maxmemory-policy`.
    pub maxmemory_policy: Option<String>,
}

/// NATS with JetStream.
#[derive(Debug, Clone, Serialize)]
pub struct Nats {
    /// Shared settings.
    #[serde(flatten)]
    pub common: ServiceCommon,
    /// HTTP monitoring port.
    pub monitor_port: u16,
    /// Cluster (route) port (clusters of 3 or more).
    pub cluster_port: u16,
    /// Application user.
    pub app_user: String,
    /// Application user's password.
    pub app_password: SecretRef,
    /// Admin user's password.
    pub admin_password: SecretRef,
    /// JetStream memory limit.
    pub max_memory: Memory,
    /// JetStream file limit.
    pub max_file: Memory,
    /// JetStream `sync_interval`; `None` leaves the server's default (every 2 minutes).
    pub sync: Option<NatsSync>,
}

/// When JetStream flushes to disk.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NatsSync {
    /// Before acknowledging each write.
    Always,
    /// Every this often (acknowledged writes since the last flush can be lost).
    Interval(Duration),
}

impl std::fmt::Display for NatsSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NatsSync::Always => f.write_str("always"),
            NatsSync::Interval(d) => write!(f, "{d}"),
        }
    }
}

/// Vault / OpenBao.
#[derive(Debug, Clone, Serialize)]
pub struct Vault {
    /// Shared settings.
    #[serde(flatten)]
    pub common: ServiceCommon,
    /// Raft cluster port.
    pub cluster_port: u16,
    /// Storage mode.
    pub mode: VaultMode,
    /// Binary for the process driver.
    pub binary: String,
    /// Dev-mode root token (dev tier only).
    pub dev_root_token: Option<SecretRef>,
    /// Where unseal keys live.
    pub unseal: UnsealKeys,
}

/// Where Vault's unseal keys live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "from", content = "name")]
pub enum UnsealKeys {
    /// In the state directory, mode 0600 (dev only).
    State,
    /// Comma-separated in an environment variable; never written to disk.
    Env(String),
}

/// CPU and memory requests and limits.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Resources {
    /// Requests.
    pub requests: Amounts,
    /// Limits.
    pub limits: Amounts,
}

/// A CPU and memory pair; either may be unset.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Amounts {
    /// CPU.
    pub cpu: Option<Cpu>,
    /// Memory.
    pub memory: Option<Memory>,
}

/// An application service.
#[derive(Debug, Clone, Serialize)]
pub struct App {
    /// Image without tag.
    pub image: String,
    /// Tag.
    pub tag: String,
    /// HTTP port.
    pub port: u16,
    /// Metrics port.
    pub metrics_port: u16,
    /// Replicas (the HPA floor when autoscaling).
    pub replicas: u32,
    /// Requests and limits.
    pub resources: Resources,
    /// Autoscaling, when enabled.
    pub autoscaling: Option<Autoscaling>,
    /// PodDisruptionBudget, when enabled.
    pub disruption_budget: Option<DisruptionBudget>,
    /// Health endpoints.
    pub health: HealthPaths,
    /// Ingress, when enabled.
    pub ingress: Option<Ingress>,
    /// Log level.
    pub log_level: LogLevel,
    /// Plain environment.
    pub env: BTreeMap<String, String>,
    /// Secret environment: variable to reference.
    pub secrets: BTreeMap<String, SecretRef>,
    /// What it needs first.
    pub depends_on: Vec<ServiceName>,
    /// What of the platform it uses, with its own credentials.
    pub uses: AppUses,
    /// Its write-once storage volume, when it has one.
    pub worm_storage: Option<WormStorage>,
}

/// An app's write-once storage volume.
#[derive(Debug, Clone, Serialize)]
pub struct WormStorage {
    /// Mount path (absolute).
    pub path: String,
    /// Size on Kubernetes.
    pub size: Memory,
}

/// The platform services an app uses (each `None` when it does not).
#[derive(Debug, Clone, Default, Serialize)]
pub struct AppUses {
    /// Its database and role.
    pub postgres: Option<AppPostgres>,
    /// Its NATS user.
    pub nats: Option<AppNats>,
    /// Its Redis ACL user.
    pub redis: Option<AppRedis>,
    /// Its Vault AppRole and policy.
    pub vault: Option<AppVault>,
    /// Its OpenID Connect settings.
    pub oidc: Option<AppOidc>,
}

/// An app's database and login role.
#[derive(Debug, Clone, Serialize)]
pub struct AppPostgres {
    /// The database it connects to (its own, or the platform's).
    pub database: String,
    /// Whether `database` is its own (created for it) rather than the platform's.
    pub own_database: bool,
    /// The schema its tables live in (its role's `search_path`).
    pub schema: String,
    /// Its login role: no superuser, no BYPASSRLS, owns nothing.
    pub role: String,
    /// The role's password.
    pub password: SecretRef,
}

/// An app's NATS user.
#[derive(Debug, Clone, Serialize)]
pub struct AppNats {
    /// The user name (`app-<app>`).
    pub user: String,
    /// Subjects it may publish to.
    pub publish: Vec<String>,
    /// Subjects it may subscribe on (besides its own reply inbox).
    pub subscribe: Vec<String>,
    /// The user's password.
    pub password: SecretRef,
}

/// An app's Redis ACL user.
#[derive(Debug, Clone, Serialize)]
pub struct AppRedis {
    /// The user name (`app-<app>`).
    pub user: String,
    /// Its key and channel prefix.
    pub prefix: String,
    /// The user's password.
    pub password: SecretRef,
}

/// An app's Vault AppRole.
#[derive(Debug, Clone, Serialize)]
pub struct AppVault {
    /// The AppRole and its policy's name (`app-<app>`).
    pub role: String,
    /// KV paths (under the KV mount) it may read, with what is below them.
    pub paths: Vec<String>,
}

/// An app's OpenID Connect settings.
#[derive(Debug, Clone, Serialize)]
pub struct AppOidc {
    /// Issuer URL.
    pub issuer_url: String,
    /// Client id.
    pub client_id: String,
    /// Audience.
    pub audience: Option<String>,
}

/// Horizontal pod autoscaling.
#[derive(Debug, Clone, Serialize)]
pub struct Autoscaling {
    /// Floor.
    pub min_replicas: u32,
    /// Ceiling.
    pub max_replicas: u32,
    /// Target CPU utilisation percent.
    pub cpu_utilization: Option<u8>,
    /// Target memory utilisation percent.
    pub memory_utilization: Option<u8>,
}

/// PodDisruptionBudget.
#[derive(Debug, Clone, Serialize)]
pub struct DisruptionBudget {
    /// Pods that must stay available.
    pub min_available: u32,
}

/// Health endpoints.
#[derive(Debug, Clone, Serialize)]
pub struct HealthPaths {
    /// Liveness path.
    pub liveness: String,
    /// Readiness path.
    pub readiness: String,
    /// Seconds before the first probe.
    pub initial_delay_seconds: u32,
    /// Seconds between probes.
    pub period_seconds: u32,
}

/// Ingress.
#[derive(Debug, Clone, Serialize)]
pub struct Ingress {
    /// Host.
    pub host: String,
    /// Path prefix.
    pub path: String,
    /// Ingress class.
    pub class: String,
    /// TLS via cert-manager.
    pub tls: bool,
    /// cert-manager ClusterIssuer.
    pub cluster_issuer: Option<String>,
}

/// A generic extra container.
#[derive(Debug, Clone, Serialize)]
pub struct Extra {
    /// Image with tag.
    pub image: String,
    /// Command override.
    pub command: Option<Vec<String>>,
    /// Arguments override.
    pub args: Option<Vec<String>>,
    /// Named ports.
    pub ports: BTreeMap<String, u16>,
    /// Plain environment.
    pub env: BTreeMap<String, String>,
    /// Secret environment.
    pub secrets: BTreeMap<String, SecretRef>,
    /// Health check.
    pub health: Option<ExtraHealth>,
    /// Volumes: name to mount path.
    pub volumes: BTreeMap<String, String>,
    /// Volume size on Kubernetes.
    pub storage: Memory,
    /// Replicas on Kubernetes.
    pub replicas: u32,
    /// Requests and limits.
    pub resources: Resources,
    /// What it needs first.
    pub depends_on: Vec<ServiceName>,
    /// Port name serving `/metrics`.
    pub metrics_port: Option<String>,
}

/// Health check of an extra container.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum ExtraHealth {
    /// HTTP GET, 2xx is healthy.
    Http {
        /// Port name.
        port_name: String,
        /// Port number.
        port: u16,
        /// Path, starting with `/`.
        path: String,
    },
    /// TCP connect.
    Tcp {
        /// Port name.
        port_name: String,
        /// Port number.
        port: u16,
    },
    /// A command inside the container, exit 0 is healthy.
    Command {
        /// argv.
        argv: Vec<String>,
    },
}

/// The monitoring stack.
#[derive(Debug, Clone, Serialize)]
pub struct Monitoring {
    /// Scrape interval.
    pub scrape_interval: Duration,
    /// Rule evaluation interval.
    pub evaluation_interval: Duration,
    /// Prometheus.
    pub prometheus: Option<Component>,
    /// Alertmanager.
    pub alertmanager: Option<Component>,
    /// Grafana.
    pub grafana: Option<Component>,
    /// postgres_exporter.
    pub postgres_exporter: Option<Component>,
    /// redis_exporter.
    pub redis_exporter: Option<Component>,
    /// prometheus-nats-exporter (`-varz -connz -jsz=all -routez`).
    pub nats_exporter: Option<Component>,
    /// node_exporter (process platform and compose only; not one of
    /// [`Monitoring::components`], which Kubernetes and the docker driver run).
    pub node_exporter: Option<Component>,
    /// Alertmanager webhook.
    pub webhook_url: Option<SecretRef>,
    /// Alertmanager's notification timers.
    pub notify: Notify,
    /// Where the process platform's Prometheus scrapes `controlplane serve`.
    pub controlplane: Option<ScrapeTarget>,
    /// Grafana admin password.
    pub grafana_admin_password: SecretRef,
}

/// Alertmanager's route timers.
#[derive(Debug, Clone, Serialize)]
pub struct Notify {
    /// Wait before a new group's first notification.
    pub group_wait: Duration,
    /// Wait before notifying a change to a notified group.
    pub group_interval: Duration,
    /// Wait before repeating a notification still firing.
    pub repeat_interval: Duration,
}

/// A scrape target on 127.0.0.1.
#[derive(Debug, Clone, Serialize)]
pub struct ScrapeTarget {
    /// Its port.
    pub port: u16,
}

impl Monitoring {
    /// The enabled components with their service names.
    pub fn components(&self) -> Vec<(ServiceName, &Component)> {
        [
            ("prometheus", &self.prometheus),
            ("alertmanager", &self.alertmanager),
            ("grafana", &self.grafana),
            ("postgres-exporter", &self.postgres_exporter),
            ("redis-exporter", &self.redis_exporter),
            ("nats-exporter", &self.nats_exporter),
        ]
        .into_iter()
        .filter_map(|(n, c)| {
            c.as_ref()
                .map(|c| (ServiceName::new(n).expect("static names are valid"), c))
        })
        .collect()
    }
}

/// A monitoring component.
#[derive(Debug, Clone, Serialize)]
pub struct Component {
    /// Image with tag.
    pub image: String,
    /// Port.
    pub port: u16,
    /// Requests and limits.
    pub resources: Resources,
}

/// A JetStream stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stream {
    /// Subjects.
    pub subjects: Vec<String>,
    /// Retention policy.
    pub retention: StreamRetention,
    /// Maximum message age.
    pub max_age: Duration,
    /// Maximum bytes.
    pub max_bytes: Option<u64>,
    /// Maximum messages.
    pub max_msgs: Option<i64>,
    /// Storage backend.
    pub storage: StreamStorage,
    /// Replicas.
    pub replicas: u8,
    /// Discard policy.
    pub discard: StreamDiscard,
    /// Duplicate window.
    pub duplicate_window: Duration,
    /// Consumer lag alert threshold.
    pub max_consumer_lag: u64,
}

/// Vault configuration applied by `seed`.
#[derive(Debug, Clone, Serialize)]
pub struct VaultConfig {
    /// KV v2 mount.
    pub kv_mount: String,
    /// Transit mount.
    pub transit_mount: String,
    /// Global transit keys.
    pub keys: Vec<String>,
    /// Policies: name to rules.
    pub policies: BTreeMap<String, Vec<PolicyRule>>,
    /// The app's AppRole.
    pub app_role: AppRole,
    /// File audit device log path.
    pub audit_log: String,
    /// How the rendered SecretStore signs in (Kubernetes auth).
    pub kubernetes_auth: KubernetesAuth,
}

/// Vault's Kubernetes auth method, as the rendered SecretStore uses it.
#[derive(Debug, Clone, Serialize)]
pub struct KubernetesAuth {
    /// Mount path of the auth method (`kubernetes`).
    pub mount_path: String,
    /// Vault role bound to the SecretStore's ServiceAccount.
    pub role: String,
}

/// One policy rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyRule {
    /// API path.
    pub path: String,
    /// Capabilities.
    pub capabilities: Vec<VaultCapability>,
}

/// The app's AppRole.
#[derive(Debug, Clone, Serialize)]
pub struct AppRole {
    /// Role name.
    pub name: String,
    /// Attached policies.
    pub policies: Vec<String>,
    /// Token TTL.
    pub token_ttl: Duration,
    /// Token max TTL.
    pub token_max_ttl: Duration,
}

/// Backups.
#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    /// Cron schedule.
    pub schedule: Schedule,
    /// Services to back up.
    pub services: Vec<CoreKind>,
    /// GFS retention.
    pub retention: Retention,
    /// zstd level.
    pub compression_level: u8,
    /// age recipients.
    pub encrypt_to: Vec<String>,
    /// Where the age identity that decrypts backups comes from.
    pub identity: Option<SecretRef>,
    /// Where the Vault token with the backup policy comes from.
    pub vault_token: Option<SecretRef>,
    /// Destinations by name.
    pub destinations: BTreeMap<String, Destination>,
    /// Alert when the newest backup is older than this.
    pub max_age: Duration,
    /// Point-in-time recovery of PostgreSQL, when enabled.
    pub pitr: Option<Pitr>,
}

/// Point-in-time recovery of PostgreSQL: WAL archived continuously, base backups on a
/// schedule, both to one destination.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pitr {
    /// PostgreSQL's `archive_timeout` (the RPO bound).
    pub archive_timeout: Duration,
    /// When base backups run.
    pub base_schedule: Schedule,
    /// How far back a restore can reach.
    pub recovery_window: Duration,
    /// The destination's name (a key of `Backup::destinations`).
    pub destination: String,
}

/// A validated five-field cron schedule (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// The expression.
    pub cron: String,
    /// The longest gap between two consecutive runs.
    pub max_interval: Duration,
}

/// The drift watch of `controlplane serve`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// When the whole-environment plan runs.
    pub schedule: Schedule,
    /// How long drift lasts before `EnvironmentDrifted` fires.
    pub for_: Duration,
    /// Where a summary is posted when the drift state changes.
    pub webhook_url: Option<SecretRef>,
}

/// Rotation of transit keys and of the platform's passwords.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rotation {
    /// When `controlplane serve` rotates what is due.
    pub schedule: Schedule,
    /// A transit key whose newest version is older than this gets a new version.
    pub keys_every: Duration,
    /// How many of a key's newest versions stay decryptable (at least 1).
    pub keep_versions: u32,
    /// A password older than this is due.
    pub passwords_every: Duration,
}

/// GFS retention counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Retention {
    /// Daily backups kept.
    pub daily: u32,
    /// Weekly backups kept.
    pub weekly: u32,
    /// Monthly backups kept.
    pub monthly: u32,
}

/// A backup destination: one variant per kind, each with exactly the settings that
/// kind has (validation rejects the others).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Destination {
    /// A local directory.
    Local {
        /// The directory (relative to the project root unless absolute).
        path: String,
    },
    /// S3 or an S3-compatible store.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key prefix.
        prefix: String,
        /// Region.
        region: Option<String>,
        /// Endpoint URL (S3-compatible stores).
        endpoint: Option<String>,
        /// Access key id; unset uses the platform's credential chain.
        access_key_id: Option<SecretRef>,
        /// Secret access key.
        secret_access_key: Option<SecretRef>,
    },
    /// Google Cloud Storage.
    Gcs {
        /// Bucket.
        bucket: String,
        /// Key prefix.
        prefix: String,
        /// Service account key JSON; unset uses the platform's default credentials.
        service_account_key: Option<SecretRef>,
    },
    /// Azure Blob Storage.
    Azure {
        /// Storage account.
        account: String,
        /// Container.
        container: String,
        /// Key prefix.
        prefix: String,
        /// The account's access key; unset uses the platform's credentials.
        access_key: Option<SecretRef>,
    },
}

impl Destination {
    /// Its kind.
    pub fn kind(&self) -> DestinationKind {
        match self {
            Destination::Local { .. } => DestinationKind::Local,
            Destination::S3 { .. } => DestinationKind::S3,
            Destination::Gcs { .. } => DestinationKind::Gcs,
            Destination::Azure { .. } => DestinationKind::Azure,
        }
    }
}

/// Alert rules.
#[derive(Debug, Clone, Serialize)]
pub struct Alerts {
    /// Built-in rules, all of them (disabled ones have `enabled: false`).
    pub rules: BTreeMap<String, Rule>,
    /// Your own rules.
    pub custom: Vec<CustomRule>,
    /// Prefix of every alert's `runbook_url` (`<base>/<AlertName>.md`), without a
    /// trailing slash.
    pub runbook_base: String,
}

/// Settings of one built-in rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    /// Rendered at all.
    pub enabled: bool,
    /// Alert name (`HighErrorRate`).
    pub alert: String,
    /// Hold duration.
    #[serde(rename = "for")]
    pub for_: Duration,
    /// Severity.
    pub severity: Severity,
    /// Threshold (meaning depends on the rule).
    pub threshold: f64,
}

/// A rule of your own.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CustomRule {
    /// Alert name.
    pub alert: String,
    /// PromQL.
    pub expr: String,
    /// Hold duration.
    #[serde(rename = "for")]
    pub for_: Duration,
    /// Severity.
    pub severity: Severity,
    /// Summary.
    pub summary: String,
}

/// Dashboards.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboards {
    /// Rendered at all.
    pub enabled: bool,
    /// Refresh interval.
    pub refresh: Duration,
    /// Time range.
    pub time_range: Duration,
    /// Boards by name (enabled ones only) with hidden panels.
    pub boards: BTreeMap<String, Board>,
}

/// One dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct Board {
    /// Panel ids left out.
    pub hide_panels: Vec<String>,
}
