//! The environment file format: raw, deserialized types that mirror the YAML exactly.
//!
//! These types are the single source of the JSON Schema (`controlplane schema`) and of
//! the structural checks: their doc comments are the reference users see in editors.
//! Every struct denies unknown keys and has no required fields, because a file is a
//! partial layer (`base.yaml` plus one environment file) merged before validation.
//! Semantic rules (port clashes, cron syntax, secrets policy) live in `validate`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One environment file: `environments/base.yaml` or `environments/<name>.yaml`.
/// The environment file is merged key by key over the base: mappings merge, lists and
/// scalars replace, and `null` removes an entry the base declared.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawEnvironment {
    /// Project name: prefixes Docker containers, networks and volumes and labels every
    /// Kubernetes object. Lowercase letters, digits and `-`.
    pub project: Option<String>,
    /// What kind of environment this is. Secrets policy follows it: plaintext secrets
    /// and development tokens are accepted only in `dev`.
    pub tier: Option<Tier>,
    /// Where `up` runs the services.
    pub platform: Option<Platform>,
    /// Kubernetes namespace (and compose project name). Defaults to `<project>-<env>`.
    pub namespace: Option<String>,
    /// Domain under which ingress hosts are built when an app gives no explicit host.
    pub domain: Option<String>,
    /// The four core stateful services.
    pub services: RawServices,
    /// Application services (Deployments / containers built from your images).
    pub apps: BTreeMap<String, Option<RawApp>>,
    /// Extra generic containers (RabbitMQ, Kong, Loki, Jaeger, ...): declared here,
    /// run and rendered like any other service, no code change needed.
    pub extras: BTreeMap<String, Option<RawExtra>>,
    /// The monitoring stack: Prometheus, Alertmanager, Grafana and exporters.
    pub monitoring: RawMonitoring,
    /// NATS JetStream streams, created or updated to match by `seed`.
    pub streams: BTreeMap<String, Option<RawStream>>,
    /// Vault / OpenBao configuration applied by `seed`.
    pub vault: RawVaultConfig,
    /// Backup schedule, retention and destinations.
    pub backup: RawBackup,
    /// The drift watch: how often `controlplane serve` compares what runs with these
    /// files, and whom it tells.
    pub drift: RawDrift,
    /// Rotation of the platform's transit keys and passwords (`controlplane rotate`,
    /// and on `rotation.schedule` by `controlplane serve`).
    pub rotation: RawRotation,
    /// Alert rules and their per-environment thresholds.
    pub alerts: RawAlerts,
    /// Grafana dashboards and which panels this environment shows.
    pub dashboards: RawDashboards,
    /// Tier-policy rules this environment knowingly breaks, each with why (like a lint
    /// suppression): `validate` and `plan` show every acceptance. Rules: see
    /// `controlplane validate`'s messages (`nats-sync-interval`, `version-end-of-support`,
    /// `postgres-durability`, `postgres-ha`, `nats-ha`, `vault-ha`, `backup-encryption`).
    pub accept: Vec<RawAccept>,
    /// TLS on the platform's listeners and the certificates they serve.
    pub tls: RawTls,
    /// The API server (`controlplane serve`) and its tokens.
    pub serve: RawServe,
}

/// The API server (`controlplane serve`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawServe {
    /// Its API tokens (`controlplane token create`).
    pub tokens: RawServeTokens,
}

/// The API server's tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawServeTokens {
    /// The longest a token of each role may live, e.g. `{admin: 24h, editor: 7d}`.
    /// `token create` refuses a longer `--ttl`, or none, for a role listed here (it
    /// does not shorten what was asked for). Roles not listed: no maximum.
    pub max_ttl: RawTokenMaxTtl,
}

/// A maximum lifetime per API token role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawTokenMaxTtl {
    /// Tokens that read (`30d`).
    pub viewer: Option<String>,
    /// Tokens that also create tenants.
    pub editor: Option<String>,
    /// Tokens that also delete tenants and read the audit log.
    pub admin: Option<String>,
}

/// One accepted tier-policy rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAccept {
    /// The rule's id, e.g. `nats-ha`.
    pub rule: String,
    /// Why this environment may break it (shown by `validate` and `plan`).
    pub reason: String,
}

/// TLS on every listener of the platform (PostgreSQL, Redis, NATS, OpenBao) and the
/// certificates controlplane issues for them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawTls {
    /// `off`, `on` (TLS offered, plaintext still accepted) or `required` (plaintext
    /// refused). `required` by default in staging and production; `off` is refused
    /// there. Dev defaults to `off`.
    pub mode: Option<TlsMode>,
    /// The lowest protocol version listeners accept: `"1.2"` or `"1.3"` (`"1.3"` by
    /// default outside dev).
    pub min_version: Option<TlsVersion>,
    /// How long an issued server certificate is valid, e.g. `30d` (the default outside
    /// dev; `90d` in dev).
    pub lifetime: Option<String>,
    /// When a certificate is renewed, as a percentage of its lifetime (default 67:
    /// two thirds).
    pub renew_at_percent: Option<u8>,
    /// Where certificates come from: `generate` (a CA made by controlplane, kept in the
    /// state directory), `vault-pki` (OpenBao's PKI engine) or `ref` (a CA certificate
    /// and key from secret references `ca_cert` and `ca_key`).
    pub ca: Option<TlsCa>,
    /// The CA certificate (PEM) for `ca: ref`, a secret reference.
    pub ca_cert: Option<String>,
    /// The CA private key (PEM) for `ca: ref`, a secret reference.
    pub ca_key: Option<String>,
    /// On Kubernetes, which cert-manager issuer signs the services' certificates: by
    /// default an `Issuer` using the environment's OpenBao PKI engine (Kubernetes
    /// auth); `cluster_issuer: <name>` uses an existing `ClusterIssuer` instead.
    pub issuer: RawTlsIssuer,
    /// ACME `ClusterIssuer`s this environment manages on Kubernetes, by name (the
    /// names Ingresses give in `ingress.cluster_issuer`), e.g.
    /// `letsencrypt-prod: {email: ops@example.com}`. Issuers not listed here are
    /// expected to exist in the cluster.
    pub acme_issuers: BTreeMap<String, RawAcmeIssuer>,
}

/// Which cert-manager issuer signs the services' certificates on Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawTlsIssuer {
    /// An existing `ClusterIssuer` by name, instead of the OpenBao PKI `Issuer`.
    pub cluster_issuer: Option<String>,
}

/// An ACME `ClusterIssuer` (Let's Encrypt) solving HTTP-01 challenges through an
/// ingress class.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawAcmeIssuer {
    /// The account's contact address (required).
    pub email: Option<String>,
    /// The ACME directory (default Let's Encrypt production,
    /// `https://acme-v02.api.letsencrypt.org/directory`).
    pub server: Option<String>,
    /// The ingress class that solves HTTP-01 challenges (default `nginx`).
    pub ingress_class: Option<String>,
}

/// TLS mode of the platform's listeners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// No TLS (dev only).
    Off,
    /// TLS offered beside plaintext.
    On,
    /// TLS only: plaintext connections are refused.
    Required,
}

/// A TLS protocol version.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum TlsVersion {
    /// TLS 1.2.
    #[serde(rename = "1.2")]
    V1_2,
    /// TLS 1.3.
    #[serde(rename = "1.3")]
    V1_3,
}

impl std::fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        })
    }
}

/// Where the platform's certificates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TlsCa {
    /// A CA generated by controlplane (rcgen), kept 0600 in the state directory.
    Generate,
    /// OpenBao's PKI secrets engine.
    VaultPki,
    /// A CA certificate and key from secret references (`ca_cert`, `ca_key`).
    Ref,
}

/// What kind of environment this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// A developer machine: generated secrets and dev tokens are allowed.
    Dev,
    /// A shared pre-production environment: secrets must be references.
    Staging,
    /// Production: secrets must be references, no dev tokens, no dev-mode Vault.
    Production,
}

/// Where `up` runs the services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Local processes started by controlplane (state under `.controlplane/<env>/`).
    Process,
    /// Containers through the Docker Engine API.
    Docker,
    /// Server-side apply of the rendered manifests to a Kubernetes cluster.
    Kubernetes,
    /// Docker when an engine answers and the images are present, else processes.
    Auto,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Platform::Process => "process",
            Platform::Docker => "docker",
            Platform::Kubernetes => "kubernetes",
            Platform::Auto => "auto",
        })
    }
}

/// The four core services.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawServices {
    /// PostgreSQL: the multi-tenant database (row-level security).
    pub postgres: RawPostgres,
    /// Redis: cache, rate limits and sessions.
    pub redis: RawRedis,
    /// NATS with JetStream: the event bus.
    pub nats: RawNats,
    /// Vault-compatible secrets server (OpenBao or HashiCorp Vault).
    pub vault: RawVault,
}

/// Defines a core service's struct: the settings every core service shares, then its own.
/// (serde's `flatten` cannot be combined with `deny_unknown_fields`, hence a macro.)
macro_rules! core_service {
    ($(#[$meta:meta])* $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            /// Run this service at all.
            pub enabled: Option<bool>,
            /// Server version, e.g. `"15"` for PostgreSQL 15. Checked against the binary
            /// or data directory found at bring-up.
            pub version: Option<String>,
            /// Container image (docker and kubernetes platforms), e.g. `postgres:15`.
            pub image: Option<String>,
            /// Port the service listens on (published on the host for process and docker).
            pub port: Option<u16>,
            /// Nodes. 1 by default. NATS and OpenBao run as clusters of 3 or more (on
            /// the process platform as local nodes on consecutive ports, on
            /// Kubernetes as StatefulSet pods); PostgreSQL with more than 1 instance as a
            /// CloudNativePG `Cluster` on Kubernetes; Redis runs 1. Anything else is
            /// refused rather than run as independent servers.
            pub replicas: Option<u32>,
            /// Persistent volume size on Kubernetes, e.g. `10Gi`.
            pub storage: Option<String>,
            /// CPU and memory requests and limits.
            pub resources: Option<RawResources>,
            $($(#[$fmeta])* pub $field: $ty,)*
        }
    };
}

core_service! {
    /// PostgreSQL.
    RawPostgres {
        /// Database name. The roles are fixed, because the migrations grant to them:
        /// `anumate_admin` (owner, runs migrations), `anumate_app` (DML only, subject to
        /// row-level security, owns nothing), `anumate_readonly`, and `anumate_backup`
        /// (BYPASSRLS, so dumps never silently miss rows).
        database: Option<String>,
        /// Password of the bootstrap superuser `postgres`, used only by controlplane
        /// to create the roles and the database (secret reference).
        superuser_password: Option<String>,
        /// Password of the admin role: a secret reference (`vault://path#key`,
        /// `env://NAME`, or `generate` in dev).
        admin_password: Option<String>,
        /// Password of the application role (secret reference).
        app_password: Option<String>,
        /// Password of the read-only role (secret reference).
        readonly_password: Option<String>,
        /// Password of the backup role (secret reference).
        backup_password: Option<String>,
        /// Extra `postgresql.conf` settings, e.g. `max_connections: "200"`.
        settings: BTreeMap<String, String>,
    }
}

core_service! {
    /// Redis.
    RawRedis {
        /// Password of the admin ACL user (secret reference).
        admin_password: Option<String>,
        /// Password of the application ACL user (secret reference).
        app_password: Option<String>,
        /// `maxmemory`, e.g. `256mb`.
        maxmemory: Option<String>,
        /// `maxmemory-policy`, e.g. `allkeys-lru`.
        maxmemory_policy: Option<String>,
    }
}

core_service! {
    /// NATS with JetStream.
    RawNats {
        /// HTTP monitoring port (`/healthz`, `/varz`, `/jsz`).
        monitor_port: Option<u16>,
        /// Cluster (route) port, used when `replicas` is 3 or more. Default 6222.
        cluster_port: Option<u16>,
        /// Application user: may publish and subscribe only on the platform's subjects.
        app_user: Option<String>,
        /// Password of the application user (secret reference).
        app_password: Option<String>,
        /// Password of the system/admin user (secret reference).
        admin_password: Option<String>,
        /// JetStream memory store limit, e.g. `256Mi`.
        max_memory: Option<String>,
        /// JetStream file store limit, e.g. `10Gi`.
        max_file: Option<String>,
        /// When JetStream flushes its files to disk (`sync_interval`): `always` (before
        /// acknowledging each write) or an interval like `2m` (the server's default:
        /// acknowledged messages written since the last flush are lost if the machine
        /// fails). `always` by default in staging and production; needs nats-server 2.10+.
        sync: Option<String>,
    }
}

core_service! {
    /// Vault-compatible secrets server.
    RawVault {
        /// Cluster (raft) port.
        cluster_port: Option<u16>,
        /// Storage mode: `raft` (initialised and unsealed by `up`) or `dev` (in-memory,
        /// root token given; dev tier only).
        mode: Option<VaultMode>,
        /// Binary the process driver runs: `bao` (OpenBao) or `vault` (HashiCorp Vault).
        binary: Option<String>,
        /// Root/bootstrap token in dev mode (secret reference; dev tier only).
        dev_root_token: Option<String>,
        /// Where unseal keys live. `state` keeps them in the state directory with mode
        /// 0600 (dev only); `env://NAME` reads comma-separated keys from the environment.
        unseal: Option<String>,
    }
}

/// Vault storage mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VaultMode {
    /// Integrated raft storage; initialised and unsealed by `up`.
    Raft,
    /// In-memory dev server; data is lost on restart. Dev tier only.
    Dev,
}

/// CPU and memory requests and limits, Kubernetes quantities (`50m`, `64Mi`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawResources {
    /// What the scheduler reserves.
    pub requests: Option<RawResourceAmounts>,
    /// The hard ceiling.
    pub limits: Option<RawResourceAmounts>,
}

/// A CPU and memory pair.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawResourceAmounts {
    /// CPU, e.g. `50m`, `0.5` or `2`.
    pub cpu: Option<String>,
    /// Memory, e.g. `64Mi`, `1Gi`.
    pub memory: Option<String>,
}

/// An application service.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawApp {
    /// Run this app at all.
    pub enabled: Option<bool>,
    /// Container image without tag, e.g. `ghcr.io/anumate/capsule-registry`.
    pub image: Option<String>,
    /// Image tag, e.g. `1.4.2` (production should pin a version, not `latest`).
    pub tag: Option<String>,
    /// HTTP port the app listens on.
    pub port: Option<u16>,
    /// Port serving Prometheus `/metrics` (defaults to `port`).
    pub metrics_port: Option<u16>,
    /// Replicas when autoscaling is off (and the HPA's floor when it is on).
    pub replicas: Option<u32>,
    /// CPU and memory requests and limits.
    pub resources: Option<RawResources>,
    /// Horizontal pod autoscaling.
    pub autoscaling: Option<RawAutoscaling>,
    /// PodDisruptionBudget.
    pub disruption_budget: Option<RawDisruptionBudget>,
    /// HTTP health endpoints.
    pub health: Option<RawHealthPaths>,
    /// Public HTTP ingress.
    pub ingress: Option<RawIngress>,
    /// Log level passed as `LOG_LEVEL`.
    pub log_level: Option<LogLevel>,
    /// Plain environment variables (not secrets).
    pub env: BTreeMap<String, String>,
    /// Secret environment variables: name to secret reference.
    pub secrets: BTreeMap<String, String>,
    /// Services this app needs before it starts (core services, extras, other apps).
    pub depends_on: Option<Vec<String>>,
    /// What of the platform the app uses: `seed` gives it its own credentials for
    /// each (a database role, a NATS user, a Redis ACL user, a Vault AppRole) with
    /// exactly these rights, and its environment gets the connection settings.
    pub uses: Option<RawAppUses>,
    /// Write-once storage for what the app must never overwrite (seed 003's signed
    /// artifacts): a volume mounted at `path` (given to the app as
    /// `WORM_STORAGE_PATH`); on Kubernetes a PersistentVolumeClaim of its own, the
    /// root filesystem staying read-only. Write-once is the app's discipline on this
    /// volume: see ARCHITECTURE.md, "Apps", for what the platform does and does not
    /// enforce.
    pub worm_storage: Option<RawWormStorage>,
}

/// An app's write-once storage volume.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawWormStorage {
    /// Where it is mounted, e.g. `/var/lib/anumate/capsule-content`.
    pub path: Option<String>,
    /// Its size on Kubernetes, e.g. `10Gi`.
    pub size: Option<String>,
}

/// The platform services an app uses.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawAppUses {
    /// Its own PostgreSQL database (or a schema of the platform database) and login
    /// role, subject to row-level security; gives `DATABASE_URL`.
    pub postgres: Option<RawAppPostgres>,
    /// A NATS user that may publish and subscribe exactly these subjects; gives
    /// `EVENTS_NATS_URL`.
    pub nats: Option<RawAppNats>,
    /// A Redis ACL user limited to a key prefix; gives `REDIS_URL`.
    pub redis: Option<RawAppRedis>,
    /// A Vault AppRole whose policy reads only the app's KV paths; gives `VAULT_ADDR`.
    pub vault: Option<RawAppVault>,
    /// OpenID Connect settings; gives `OIDC_*`.
    pub oidc: Option<RawAppOidc>,
}

/// An app's PostgreSQL database.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawAppPostgres {
    /// Its own database, e.g. `capsule_registry` (its tables live in a schema of the
    /// same name). Give this or `schema`.
    pub database: Option<String>,
    /// A schema of its own in the platform database instead of a database.
    pub schema: Option<String>,
    /// Its login role (default: the database or schema name).
    pub role: Option<String>,
    /// Password of the role (secret reference; `generate` by default in dev).
    pub password: Option<String>,
}

/// An app's NATS user.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawAppNats {
    /// Subjects it may publish to, e.g. `events.capsule.>`.
    pub publish: Vec<String>,
    /// Subjects it may subscribe on.
    pub subscribe: Vec<String>,
    /// Password of the user (secret reference; `generate` by default in dev).
    pub password: Option<String>,
}

/// An app's Redis ACL user.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawAppRedis {
    /// The key (and channel) prefix it may use (default `<app>:`).
    pub prefix: Option<String>,
    /// Password of the user (secret reference; `generate` by default in dev).
    pub password: Option<String>,
}

/// An app's Vault AppRole.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawAppVault {
    /// KV paths (under the KV mount, without `data/`) it may read, each with what is
    /// below it (default `[apps/<app>]`).
    pub paths: Option<Vec<String>>,
}

/// An app's OpenID Connect settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawAppOidc {
    /// The issuer, e.g. `https://anumate.eu.auth0.com/`.
    pub issuer_url: Option<String>,
    /// The client id.
    pub client_id: Option<String>,
    /// The audience tokens must carry.
    pub audience: Option<String>,
}

/// Log levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Developer detail.
    Debug,
    /// Normal operation.
    Info,
    /// Only what needs attention.
    Warn,
    /// Only failures.
    Error,
}

/// Horizontal pod autoscaling.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawAutoscaling {
    /// Render a HorizontalPodAutoscaler.
    pub enabled: Option<bool>,
    /// Lower bound of replicas.
    pub min_replicas: Option<u32>,
    /// Upper bound of replicas.
    pub max_replicas: Option<u32>,
    /// Target average CPU utilisation, percent of requests.
    pub cpu_utilization: Option<u8>,
    /// Target average memory utilisation, percent of requests.
    pub memory_utilization: Option<u8>,
}

/// PodDisruptionBudget.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawDisruptionBudget {
    /// Render a PodDisruptionBudget.
    pub enabled: Option<bool>,
    /// Pods that must stay available during voluntary disruptions.
    pub min_available: Option<u32>,
}

/// HTTP health endpoints of an app.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawHealthPaths {
    /// Liveness probe path, e.g. `/health`.
    pub liveness: Option<String>,
    /// Readiness probe path, e.g. `/ready`.
    pub readiness: Option<String>,
    /// Seconds before the first probe.
    pub initial_delay_seconds: Option<u32>,
    /// Seconds between probes.
    pub period_seconds: Option<u32>,
}

/// Public HTTP ingress of an app.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawIngress {
    /// Render an Ingress.
    pub enabled: Option<bool>,
    /// Host name, e.g. `registry.anumate.io`.
    pub host: Option<String>,
    /// Path prefix.
    pub path: Option<String>,
    /// Ingress class, e.g. `nginx`.
    pub class: Option<String>,
    /// Terminate TLS with a certificate from cert-manager.
    pub tls: Option<bool>,
    /// cert-manager ClusterIssuer for the certificate.
    pub cluster_issuer: Option<String>,
}

/// A generic extra container.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawExtra {
    /// Run this container at all.
    pub enabled: Option<bool>,
    /// Container image with tag, e.g. `rabbitmq:3.9-management`.
    pub image: Option<String>,
    /// Command override.
    pub command: Option<Vec<String>>,
    /// Arguments override.
    pub args: Option<Vec<String>>,
    /// Ports it listens on, by name (published on the host for process and docker).
    pub ports: BTreeMap<String, u16>,
    /// Plain environment variables.
    pub env: BTreeMap<String, String>,
    /// Secret environment variables: name to secret reference.
    pub secrets: BTreeMap<String, String>,
    /// How to tell it is up.
    pub health: Option<RawExtraHealth>,
    /// Persistent volumes: name to mount path.
    pub volumes: BTreeMap<String, String>,
    /// Persistent volume size on Kubernetes.
    pub storage: Option<String>,
    /// Replicas on Kubernetes.
    pub replicas: Option<u32>,
    /// CPU and memory requests and limits.
    pub resources: Option<RawResources>,
    /// Services it needs first.
    pub depends_on: Option<Vec<String>>,
    /// Scrape `/metrics` on this named port.
    pub metrics_port: Option<String>,
}

/// Health check of an extra container: exactly one of `http`, `tcp` or `command`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawExtraHealth {
    /// `GET` this path on the named port; any 2xx is healthy. Form `PORTNAME/path`,
    /// e.g. `management/api/health/checks/alarms`.
    pub http: Option<String>,
    /// Open a TCP connection to this named port.
    pub tcp: Option<String>,
    /// Run this command inside the container; exit 0 is healthy.
    pub command: Option<Vec<String>>,
}

/// The monitoring stack.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawMonitoring {
    /// Run and render the monitoring stack.
    pub enabled: Option<bool>,
    /// How often Prometheus scrapes, e.g. `15s`.
    pub scrape_interval: Option<String>,
    /// How often Prometheus evaluates rules, e.g. `30s`.
    pub evaluation_interval: Option<String>,
    /// Prometheus server.
    pub prometheus: Option<RawComponent>,
    /// Alertmanager.
    pub alertmanager: Option<RawComponent>,
    /// Grafana.
    pub grafana: Option<RawComponent>,
    /// postgres_exporter.
    pub postgres_exporter: Option<RawComponent>,
    /// redis_exporter.
    pub redis_exporter: Option<RawComponent>,
    /// prometheus-nats-exporter: turns nats-server's JSON monitoring (`/varz`, `/connz`,
    /// `/jsz`, `/routez`) into Prometheus metrics (default port 7777).
    pub nats_exporter: Option<RawComponent>,
    /// node_exporter: the host's memory, CPU, filesystems (default port 9100). Run on
    /// the process platform (Debian `prometheus-node-exporter`) and in compose, where
    /// the memory, CPU and disk alerts read it; on Kubernetes those alerts read the
    /// kubelet's and kube-state-metrics' series instead and it is not rendered.
    pub node_exporter: Option<RawComponent>,
    /// Where Alertmanager sends notifications: a webhook URL (secret reference allowed).
    pub webhook_url: Option<String>,
    /// How Alertmanager batches notifications.
    pub notify: Option<RawNotify>,
    /// `controlplane serve`'s `/metrics`, scraped as job `controlplane` by the process
    /// platform's Prometheus at `127.0.0.1:<port>` (serve's default address is
    /// `127.0.0.1:7700`).
    pub controlplane: Option<RawScrapeTarget>,
    /// Grafana admin password (secret reference).
    pub grafana_admin_password: Option<String>,
}

/// How Alertmanager groups and repeats notifications (its route's timers).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawNotify {
    /// How long to wait for more alerts of a new group before the first notification
    /// (default `30s`).
    pub group_wait: Option<String>,
    /// How long to wait before notifying about changes to a group already notified,
    /// resolutions included (default `5m`).
    pub group_interval: Option<String>,
    /// How long before a notification that is still firing is sent again (default
    /// `12h` in dev, `4h` elsewhere; critical alerts every `1h` at most).
    pub repeat_interval: Option<String>,
}

/// A scrape target on the local machine.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawScrapeTarget {
    /// Scrape it.
    pub enabled: Option<bool>,
    /// Its port on 127.0.0.1.
    pub port: Option<u16>,
}

/// A monitoring component.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawComponent {
    /// Run this component.
    pub enabled: Option<bool>,
    /// Container image with tag.
    pub image: Option<String>,
    /// Port (published on the host for process and docker).
    pub port: Option<u16>,
    /// CPU and memory requests and limits.
    pub resources: Option<RawResources>,
}

/// A JetStream stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawStream {
    /// Subjects the stream captures, e.g. `["events.capsule.>"]`.
    pub subjects: Option<Vec<String>>,
    /// Retention policy.
    pub retention: Option<StreamRetention>,
    /// Maximum age of a message, e.g. `7d`, `365d`.
    pub max_age: Option<String>,
    /// Maximum bytes kept, e.g. `1Gi`.
    pub max_bytes: Option<String>,
    /// Maximum messages kept.
    pub max_msgs: Option<i64>,
    /// Storage backend.
    pub storage: Option<StreamStorage>,
    /// Replicas (1 on a single server).
    pub replicas: Option<u8>,
    /// Which messages to drop when a limit is reached.
    pub discard: Option<StreamDiscard>,
    /// Window in which duplicate message ids are rejected, e.g. `2m`.
    pub duplicate_window: Option<String>,
    /// Alert when a consumer of this stream has more than this many pending messages.
    pub max_consumer_lag: Option<u64>,
}

/// JetStream retention policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamRetention {
    /// Keep messages until a limit is reached.
    Limits,
    /// Keep messages while a consumer is interested.
    Interest,
    /// Remove messages once acknowledged (a work queue).
    Workqueue,
}

/// JetStream storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamStorage {
    /// On disk.
    File,
    /// In memory.
    Memory,
}

/// JetStream discard policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamDiscard {
    /// Drop the oldest messages.
    Old,
    /// Refuse new messages.
    New,
}

/// Vault configuration applied by `seed`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawVaultConfig {
    /// Mount path of the KV v2 engine.
    pub kv_mount: Option<String>,
    /// Mount path of the transit engine.
    pub transit_mount: Option<String>,
    /// Global transit keys (`anumate-*`).
    pub keys: Option<Vec<String>>,
    /// Policies: name to rules.
    pub policies: BTreeMap<String, Option<Vec<RawPolicyRule>>>,
    /// The application's AppRole.
    pub app_role: Option<RawAppRole>,
    /// Path of the file audit device's log (relative paths are under the state dir).
    pub audit_log: Option<String>,
    /// How External Secrets Operator signs in to this Vault on Kubernetes. `vault://`
    /// references render as ExternalSecrets read through the SecretStore `vault`:
    /// the environment's Vault, the KV mount `kv_mount`, Vault's Kubernetes auth
    /// method as the namespace's ServiceAccount `external-secrets-vault`. The auth
    /// method and its role must exist in Vault (`seed` does not create them).
    pub kubernetes_auth: Option<RawKubernetesAuth>,
}

/// Vault's Kubernetes auth method, as the rendered SecretStore uses it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawKubernetesAuth {
    /// Mount path of the Kubernetes auth method. Default `kubernetes`.
    pub mount_path: Option<String>,
    /// Vault role bound to the ServiceAccount `external-secrets-vault` of the
    /// environment's namespace, with a policy that reads the KV mount. Default
    /// `external-secrets`.
    pub role: Option<String>,
}

/// One rule of a Vault policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawPolicyRule {
    /// API path, e.g. `secret/data/anumate/config/*`.
    pub path: Option<String>,
    /// Capabilities, e.g. `[read, list]`.
    pub capabilities: Option<Vec<VaultCapability>>,
}

/// A Vault policy capability.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum VaultCapability {
    /// Create new data.
    Create,
    /// Read data.
    Read,
    /// Change existing data.
    Update,
    /// Partially change existing data.
    Patch,
    /// Delete data.
    Delete,
    /// List keys.
    List,
    /// Explicitly forbid.
    Deny,
    /// Root-protected paths.
    Sudo,
}

/// The application's AppRole.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawAppRole {
    /// Role name.
    pub name: Option<String>,
    /// Policies attached to the role's tokens.
    pub policies: Option<Vec<String>>,
    /// Token TTL, e.g. `1h`.
    pub token_ttl: Option<String>,
    /// Token maximum TTL, e.g. `4h`.
    pub token_max_ttl: Option<String>,
}

/// Backup schedule, retention and destinations.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawBackup {
    /// Run scheduled backups.
    pub enabled: Option<bool>,
    /// Five-field cron schedule (UTC), e.g. `"0 2 * * *"`.
    pub schedule: Option<String>,
    /// Services to back up.
    pub services: Option<Vec<String>>,
    /// Grandfather-father-son retention.
    pub retention: Option<RawRetention>,
    /// zstd compression level (1-19).
    pub compression_level: Option<u8>,
    /// age recipients (`age1...`) to encrypt backups to; empty means unencrypted.
    pub encrypt_to: Option<Vec<String>>,
    /// Secret reference to the age identity (`AGE-SECRET-KEY-1...`) that decrypts
    /// encrypted backups at `verify` and `restore`, e.g. `env://ANUMATE_BACKUP_AGE_IDENTITY`.
    /// Never needed to take a backup.
    pub identity: Option<String>,
    /// Secret reference to a Vault token holding the `controlplane-backup` policy
    /// (raft snapshots only). In dev, when unset, one is minted from the kept root
    /// token through the `controlplane-backup` token role for each run.
    pub vault_token: Option<String>,
    /// Where backups are written.
    pub destinations: BTreeMap<String, Option<RawDestination>>,
    /// Alert when the newest successful backup is older than this, e.g. `26h`.
    /// Defaults to the schedule's interval plus a grace of half of it.
    pub max_age: Option<String>,
    /// Point-in-time recovery of PostgreSQL: continuous WAL archiving and base
    /// backups (see ARCHITECTURE.md, "PITR").
    pub pitr: Option<RawPitr>,
}

/// Point-in-time recovery of PostgreSQL.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawPitr {
    /// Archive WAL continuously and take base backups (default false).
    pub enabled: Option<bool>,
    /// PostgreSQL's `archive_timeout`: the longest a commit waits before its WAL
    /// segment is shipped, the RPO bound, e.g. `60s` (the default).
    pub archive_timeout: Option<String>,
    /// Five-field cron schedule (UTC) of base backups, e.g. `"0 3 * * *"` (the default).
    pub base_schedule: Option<String>,
    /// How far back a restore can reach, e.g. `7d` (the default): base backups and
    /// WAL older than the oldest base backup this needs are deleted.
    pub recovery_window: Option<String>,
    /// The destination (a name under `backup.destinations`) WAL and base backups go
    /// to; defaults to the only destination, or the first by name.
    pub destination: Option<String>,
}

/// The drift watch of `controlplane serve`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawDrift {
    /// Five-field cron schedule (UTC) of the drift check, e.g. `"*/10 * * * *"`
    /// (the default: every 10 minutes).
    pub schedule: Option<String>,
    /// How long drift must last before `EnvironmentDrifted` fires, e.g. `30m`
    /// (the default; `alerts.rules.environment_drifted.for` overrides it).
    #[serde(rename = "for")]
    pub for_: Option<String>,
    /// Secret reference to a URL that receives a JSON summary (the drift view) each
    /// time the drift state changes, e.g. `env://ANUMATE_DRIFT_WEBHOOK`.
    pub webhook_url: Option<String>,
}

/// Rotation of transit keys and of the platform's passwords.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawRotation {
    /// Five-field cron schedule (UTC) at which `controlplane serve` rotates what is
    /// due, e.g. `"0 3 * * *"` (the default: every day at 03:00).
    pub schedule: Option<String>,
    /// Vault transit keys: the global `anumate-*` keys, the backup canary's key and
    /// every tenant's key.
    pub transit_keys: RawRotateKeys,
    /// Passwords of the platform's PostgreSQL roles, Redis ACL users and NATS users.
    pub passwords: RawRotatePasswords,
}

/// How transit keys rotate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawRotateKeys {
    /// A key whose newest version is older than this gets a new version, e.g. `30d`
    /// (the default).
    pub every: Option<String>,
    /// How many of a key's newest versions stay decryptable (default 2): after a
    /// rotation, `min_decryption_version` is raised to `latest - keep_versions + 1`,
    /// once what the platform itself encrypted is rewrapped. Data your apps encrypt
    /// must be rewrapped by them within `keep_versions × every`.
    pub keep_versions: Option<u32>,
}

/// How passwords rotate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawRotatePasswords {
    /// A password older than this is due, e.g. `90d` (the default).
    pub every: Option<String>,
}

/// Grandfather-father-son retention: how many of each kind to keep.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawRetention {
    /// Newest backup of each of the last N days.
    pub daily: Option<u32>,
    /// Newest backup of each of the last N ISO weeks.
    pub weekly: Option<u32>,
    /// Newest backup of each of the last N months.
    pub monthly: Option<u32>,
}

/// A backup destination.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawDestination {
    /// Kind of destination.
    #[serde(rename = "type")]
    pub kind: Option<DestinationKind>,
    /// Directory for `local` (relative to the project root).
    pub path: Option<String>,
    /// Bucket for `s3` and `gcs`, container for `azure`.
    pub bucket: Option<String>,
    /// Key prefix inside the bucket (every kind but `local`).
    pub prefix: Option<String>,
    /// Region for `s3`.
    pub region: Option<String>,
    /// Endpoint URL for S3-compatible stores (MinIO, moto, R2), `s3` only.
    pub endpoint: Option<String>,
    /// Access key id (secret reference), `s3` only.
    pub access_key_id: Option<String>,
    /// Secret access key (secret reference): `s3`, or the storage account's access
    /// key for `azure`.
    pub secret_access_key: Option<String>,
    /// Storage account name, `azure` only.
    pub account: Option<String>,
    /// Service account key JSON (secret reference), `gcs` only; unset uses the
    /// platform's default credentials.
    pub service_account_key: Option<String>,
}

/// Kind of backup destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// A local directory.
    Local,
    /// S3 or an S3-compatible store.
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azure,
}

/// Alert rules.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawAlerts {
    /// Built-in rules, by name: change a threshold, duration or severity, or disable one.
    pub rules: RawAlertRules,
    /// Extra rules of your own, appended to the rendered rule file.
    pub custom: Option<Vec<RawCustomRule>>,
    /// Where runbooks live: every alert's `runbook_url` annotation is
    /// `<runbook_base>/<AlertName>.md` (custom rules' too). Default `docs/runbooks`,
    /// the repository's own folder; set a URL (e.g.
    /// `https://git.example.com/ops/platform/blob/main/docs/runbooks`) so a pager
    /// links somewhere clickable.
    pub runbook_base: Option<String>,
}

/// Built-in alert rules. Each takes `enabled`, `for`, `severity` and, where the rule
/// compares against a number, `threshold`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawAlertRules {
    /// A core service, app or extra stops answering its scrape (`up == 0`).
    pub service_down: Option<RawRule>,
    /// Share of HTTP requests answered 5xx, as a fraction (0.05 = 5%).
    pub high_error_rate: Option<RawRule>,
    /// p95 HTTP latency in seconds.
    pub high_latency_p95: Option<RawRule>,
    /// Container memory use as a fraction of its limit (0.9 = 90%).
    pub high_memory: Option<RawRule>,
    /// Container CPU use as a fraction of its limit (0.8 = 80%).
    pub high_cpu: Option<RawRule>,
    /// Share of PostgreSQL's `max_connections` in use (0.9 = 90%); at 1.0 new
    /// connections fail.
    pub database_connection_failures: Option<RawRule>,
    /// Connections Redis rejected per second (`maxclients` reached).
    pub redis_connection_failures: Option<RawRule>,
    /// Container restarts within the last hour.
    pub pod_restarting: Option<RawRule>,
    /// Free disk space as a fraction (0.1 = 10% free).
    pub disk_space_low: Option<RawRule>,
    /// Pending messages of a JetStream consumer.
    pub stream_consumer_lag: Option<RawRule>,
    /// A JetStream consumer with pending messages that delivers nothing.
    pub stream_processing_stalled: Option<RawRule>,
    /// Failed authentications per second.
    pub failed_auth_spike: Option<RawRule>,
    /// The Vault server is sealed.
    pub vault_sealed: Option<RawRule>,
    /// The last backup run failed.
    pub backup_failed: Option<RawRule>,
    /// The newest successful backup is older than the schedule allows
    /// (threshold in seconds; defaults to `backup.max_age`).
    pub backup_too_old: Option<RawRule>,
    /// What runs differs from the files (the drift watch of `controlplane serve`
    /// found changes pending or blocked; `for` defaults to `drift.for`).
    pub environment_drifted: Option<RawRule>,
    /// No drift check succeeded for three intervals of `drift.schedule` (threshold in
    /// seconds; defaults to that).
    pub drift_check_failing: Option<RawRule>,
    /// A transit key's newest version is older than `rotation.transit_keys.every`
    /// allows (threshold in seconds; defaults to `every` plus a day).
    pub key_rotation_overdue: Option<RawRule>,
    /// A server's certificate expires within the threshold (seconds; defaults to half
    /// of what is left of its life after `tls.renew_at_percent`): its renewal failed.
    pub certificate_expiring_soon: Option<RawRule>,
    /// WAL waits to be archived and nothing reached the PITR archive for longer than
    /// the threshold (seconds; defaults to five times `backup.pitr.archive_timeout`,
    /// at least 300).
    pub wal_archiving_stalled: Option<RawRule>,
    /// The PITR recoverable window is shorter than the threshold (seconds; defaults
    /// to `backup.pitr.recovery_window`), once PostgreSQL's backups have been
    /// configured for longer than that.
    pub pitr_window_short: Option<RawRule>,
}

/// Settings of one built-in rule.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawRule {
    /// Render this rule.
    pub enabled: Option<bool>,
    /// How long the condition must hold before the alert fires, e.g. `5m`.
    #[serde(rename = "for")]
    pub for_: Option<String>,
    /// Severity label.
    pub severity: Option<Severity>,
    /// The number the rule compares against (unit depends on the rule).
    pub threshold: Option<f64>,
}

/// Alert severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Look at it during working hours.
    Info,
    /// Look at it today.
    Warning,
    /// Wake someone up.
    Critical,
}

/// A rule of your own.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawCustomRule {
    /// Alert name (CamelCase).
    pub alert: Option<String>,
    /// PromQL expression.
    pub expr: Option<String>,
    /// Duration, e.g. `5m`.
    #[serde(rename = "for")]
    pub for_: Option<String>,
    /// Severity label.
    pub severity: Option<Severity>,
    /// One-line summary.
    pub summary: Option<String>,
}

/// Grafana dashboards.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawDashboards {
    /// Render dashboards at all.
    pub enabled: Option<bool>,
    /// Auto-refresh interval, e.g. `30s`.
    pub refresh: Option<String>,
    /// Default time range, e.g. `6h`.
    pub time_range: Option<String>,
    /// Dashboards to render, by name (`overview`, `postgres`, `redis`, `nats`,
    /// `vault`, `backups`, `apps`): each can be switched off or lose panels.
    pub boards: BTreeMap<String, Option<RawBoard>>,
}

/// One dashboard's settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawBoard {
    /// Render this dashboard.
    pub enabled: Option<bool>,
    /// Panel ids to leave out, e.g. `[connections]`.
    pub hide_panels: Option<Vec<String>>,
}
