//! What each process this driver runs is: the units (the four core services and the
//! monitoring stack), and for each its program, arguments, configuration files (core
//! services' from `cp_core::serverconf`, the monitoring stack's from the templates,
//! see [`crate::monitoring`]), ports with the settings that choose them, secrets
//! passed as environment variables, and the layout of its directory.
//!
//! Pure: computed from the model, rendered files and the state directory's path
//! only, so `desired()` can turn it into a spec without touching the disk.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use cp_core::Environment;
use cp_core::model::VaultMode;
use cp_core::names::{CoreKind, ServiceName};
use cp_core::serverconf::{self, Layout, NATS_ADMIN_PASSWORD_VAR, NATS_APP_PASSWORD_VAR};
use cp_core::topology;
use cp_core::units::SecretRef;
use serde_json::{Value, json};

use crate::monitoring::{self, Monitor, Rendered};

/// One process this driver runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Unit {
    /// A core service of one server.
    Core(CoreKind),
    /// Node `i` of a clustered core service (NATS or Vault with 3 or more replicas,
    /// see `cp_core::topology`): its own directory, record and status row
    /// (`nats-0`, `vault-2`).
    Node(CoreKind, u32),
    /// A part of the monitoring stack.
    Monitor(Monitor),
}

/// The core services that run as clusters of local nodes on this platform.
const CLUSTERED: [CoreKind; 2] = [CoreKind::Nats, CoreKind::Vault];

impl Unit {
    /// Every single-server unit, in start order (the nodes of a cluster stand in for
    /// their service, see [`Unit::of_env`]).
    pub(crate) const ALL: [Unit; 10] = [
        Unit::Core(CoreKind::Postgres),
        Unit::Core(CoreKind::Redis),
        Unit::Core(CoreKind::Nats),
        Unit::Core(CoreKind::Vault),
        Unit::Monitor(Monitor::Prometheus),
        Unit::Monitor(Monitor::Alertmanager),
        Unit::Monitor(Monitor::PostgresExporter),
        Unit::Monitor(Monitor::RedisExporter),
        Unit::Monitor(Monitor::NatsExporter),
        Unit::Monitor(Monitor::NodeExporter),
    ];

    /// Its name, which is also its directory and record name (`nats`, `nats-1`).
    pub(crate) fn name(self) -> Cow<'static, str> {
        match self {
            Unit::Core(k) => Cow::Borrowed(k.as_str()),
            Unit::Node(k, i) => Cow::Owned(node_name(k, i)),
            Unit::Monitor(m) => Cow::Borrowed(m.as_str()),
        }
    }

    /// Its row in `status` and the name errors give (`nats-1`).
    pub(crate) fn service(self) -> ServiceName {
        ServiceName::new(&self.name()).expect("unit names are valid service names")
    }

    /// The environment's service it belongs to (`nats` for `nats-1`): what plans and
    /// readiness are about.
    pub(crate) fn env_service(self) -> ServiceName {
        match self {
            Unit::Node(k, _) => Unit::Core(k).service(),
            u => u.service(),
        }
    }

    /// The core service it runs, if it is one (or a node of one).
    pub(crate) fn kind(self) -> Option<CoreKind> {
        match self {
            Unit::Core(k) | Unit::Node(k, _) => Some(k),
            Unit::Monitor(_) => None,
        }
    }

    /// The single-server unit of the same program (`Node(k, _)` → `Core(k)`).
    pub(crate) fn base(self) -> Unit {
        match self {
            Unit::Node(k, _) => Unit::Core(k),
            u => u,
        }
    }

    /// The unit of a name (`nats`, `nats-2`), if this driver runs such a thing.
    pub(crate) fn from_name(name: &str) -> Option<Unit> {
        if let Some(u) = Self::ALL.into_iter().find(|u| *u.name() == *name) {
            return Some(u);
        }
        CLUSTERED.into_iter().find_map(|k| {
            let i = name.strip_prefix(k.as_str())?.strip_prefix('-')?;
            // Canonical decimal only, so one node has one name.
            let n: u32 = i.parse().ok()?;
            (n.to_string() == i).then_some(Unit::Node(k, n))
        })
    }

    /// The units `env` runs, in start order: a clustered service as its nodes.
    pub(crate) fn of_env(env: &Environment) -> Vec<Unit> {
        Self::ALL
            .into_iter()
            .flat_map(|u| match u {
                Unit::Core(k) if nodes(env, k) > 1 => {
                    (0..nodes(env, k)).map(|i| Unit::Node(k, i)).collect()
                }
                u => vec![u],
            })
            .filter(|u| u.enabled_in(env))
            .collect()
    }

    /// The units recorded under `root` (the ones `env` runs or ran): every
    /// single-server unit and every node directory found.
    pub(crate) fn recorded(root: &Path) -> Vec<Unit> {
        let mut out: Vec<Unit> = Self::ALL.to_vec();
        if let Ok(dir) = std::fs::read_dir(root) {
            out.extend(dir.filter_map(|e| {
                let name = e.ok()?.file_name();
                Unit::from_name(name.to_str()?).filter(|u| matches!(u, Unit::Node(..)))
            }));
        }
        out.sort();
        out
    }

    /// Whether `env` runs it.
    pub(crate) fn enabled_in(self, env: &Environment) -> bool {
        match self {
            Unit::Core(k) => env.services.common(k).is_some() && nodes(env, k) <= 1,
            Unit::Node(k, i) => nodes(env, k) > 1 && i < nodes(env, k),
            Unit::Monitor(m) => m.component(env).is_some(),
        }
    }

    /// The port clients use, when `env` runs it (no rendering needed).
    pub(crate) fn port(self, env: &Environment) -> Option<u16> {
        match self {
            Unit::Core(k) => env.services.common(k).map(|c| c.port),
            Unit::Node(CoreKind::Nats, i) => {
                let n = env.services.nats.as_ref()?;
                topology::nats_nodes(env, n).get(idx(i)).map(|n| n.client)
            }
            Unit::Node(CoreKind::Vault, i) => {
                let v = env.services.vault.as_ref()?;
                topology::vault_nodes(env, v).get(idx(i)).map(|n| n.api)
            }
            Unit::Node(..) => None,
            Unit::Monitor(m) => m.component(env).map(|c| c.port),
        }
    }
}

fn idx(i: u32) -> usize {
    usize::try_from(i).unwrap_or(usize::MAX)
}

/// `nats-1`.
fn node_name(kind: CoreKind, i: u32) -> String {
    format!("{}-{i}", kind.as_str())
}

/// How many nodes of `kind` `env` runs on this platform: its replicas for NATS and
/// Vault (validation allows 1 or 3 and more), one for the others; 0 when disabled.
pub(crate) fn nodes(env: &Environment, kind: CoreKind) -> u32 {
    let Some(c) = env.services.common(kind) else {
        return 0;
    };
    if CLUSTERED.contains(&kind) {
        c.replicas.max(1)
    } else {
        1
    }
}

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// How to find the program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Program {
    /// A PostgreSQL program of a major version.
    Postgres {
        /// `postgres`, `initdb`.
        name: &'static str,
        /// `15`.
        major: String,
    },
    /// A program in PATH (or a path).
    Path(String),
    /// Vault/OpenBao: in PATH, preferring the real binary behind a pip wrapper.
    Vault(String),
    /// controlplane itself (`controlplane exporter nats`).
    Controlplane,
}

impl Program {
    /// The name people know it by (for the spec and messages).
    pub(crate) fn name(&self) -> &str {
        match self {
            Program::Postgres { name, .. } => name,
            Program::Path(n) | Program::Vault(n) => n,
            Program::Controlplane => "controlplane",
        }
    }
}

/// A file the service reads, written before it starts.
#[derive(Debug, Clone)]
pub(crate) struct ConfigFile {
    /// Relative to the service directory.
    pub(crate) name: &'static str,
    /// Contents (a secret, if any, as its placeholder: this is what plans show).
    pub(crate) text: String,
    /// A secret written into the file in place of a placeholder; the file is then
    /// private (0600).
    pub(crate) secret: Option<FileSecret>,
}

/// A secret a configuration file carries (for a server that cannot read it from
/// elsewhere).
#[derive(Debug, Clone)]
pub(crate) struct FileSecret {
    /// The placeholder in [`ConfigFile::text`].
    pub(crate) token: &'static str,
    /// The setting it comes from.
    pub(crate) setting: &'static str,
    /// The reference.
    pub(crate) reference: SecretRef,
}

impl FileSecret {
    /// `text` with the placeholder replaced by `value` as a YAML (JSON) string.
    pub(crate) fn fill(&self, text: &str, value: &str) -> String {
        text.replace(self.token, &Value::from(value).to_string())
    }
}

/// A secret handed over as an environment variable.
#[derive(Debug, Clone)]
pub(crate) struct SecretVar {
    /// The variable.
    pub(crate) var: String,
    /// The setting it comes from (and the generated secret's name).
    pub(crate) setting: String,
    /// The reference.
    pub(crate) reference: SecretRef,
}

/// One unit as a process.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// Configured version (core services; the monitoring stack runs what is
    /// installed).
    pub(crate) version: Option<String>,
    /// The program.
    pub(crate) program: Program,
    /// Its arguments (absolute paths, no secrets).
    pub(crate) args: Vec<String>,
    /// Configuration files.
    pub(crate) files: Vec<ConfigFile>,
    /// Ports, each with the setting that chooses it.
    pub(crate) ports: Vec<(u16, String)>,
    /// Secrets passed through the environment.
    pub(crate) secrets: Vec<SecretVar>,
    /// Other environment variables (never a secret).
    pub(crate) env: Vec<(&'static str, String)>,
    /// Directories it needs (relative to the service directory).
    pub(crate) dirs: Vec<&'static str>,
    /// It serves the environment's certificate (`<unit>/tls/`).
    pub(crate) tls: bool,
}

/// The data directory of each unit that keeps data, relative to its directory.
pub(crate) const DATA_DIRS: [(Unit, &str); 6] = [
    (Unit::Core(CoreKind::Postgres), "data"),
    (Unit::Core(CoreKind::Redis), "data"),
    (Unit::Core(CoreKind::Nats), "jetstream"),
    (Unit::Core(CoreKind::Vault), "data"),
    // The TSDB and Alertmanager's silences and notification log.
    (Unit::Monitor(Monitor::Prometheus), "data"),
    (Unit::Monitor(Monitor::Alertmanager), "data"),
];

pub(crate) fn data_dir_of(kind: CoreKind) -> &'static str {
    DATA_DIRS
        .iter()
        .find(|(u, _)| *u == Unit::Core(kind))
        .map(|(_, d)| *d)
        .expect("every kind has one")
}

/// The unit's directory: `<state>/<unit>` (`<state>/nats-1` for a node).
pub(crate) fn service_dir(root: &Path, unit: Unit) -> PathBuf {
    root.join(&*unit.name())
}

/// `postgres` on the data directory `data` with the configuration controlplane
/// writes into the service directory `dir` (the server's and a recovery's).
pub(crate) fn postgres_args(dir: &Path, data: &Path) -> Vec<String> {
    vec![
        "-D".into(),
        path_str(data),
        "-c".into(),
        format!("config_file={}", path_str(&dir.join("postgresql.conf"))),
        "-c".into(),
        format!("hba_file={}", path_str(&dir.join("pg_hba.conf"))),
        "-c".into(),
        format!("ident_file={}", path_str(&data.join("pg_ident.conf"))),
    ]
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

pub(crate) fn layout(root: &Path, unit: Unit, run: &str) -> Layout {
    let kind = unit.kind().expect("a core service's layout");
    let dir = service_dir(root, unit);
    Layout {
        bind: "127.0.0.1".into(),
        advertise: "127.0.0.1".into(),
        data_dir: path_str(&dir.join(data_dir_of(kind))),
        run_dir: path_str(&if run.is_empty() { dir } else { dir.join(run) }),
        client_networks: vec!["127.0.0.1/32".into()],
        // Servers are started in their service directory (see `lib.rs`).
        runs_in_run_dir: run.is_empty(),
    }
}

/// The TLS files of `unit` as its server reads them (`<unit>/tls/`), when the
/// environment has TLS on.
pub(crate) fn unit_tls(
    root: &Path,
    env: &Environment,
    unit: Unit,
) -> Option<serverconf::ServerTls> {
    serverconf::server_tls(env, &path_str(&service_dir(root, unit).join("tls")))
}

/// How `unit` runs in `env`, with its state under `root`; `Ok(None)` when `env` does
/// not run it. The monitoring stack's configuration comes from `rendered` (the
/// environment's rendered `prometheus/<env>/` files, or why there are none).
pub(crate) fn launch(
    root: &Path,
    env: &Environment,
    unit: Unit,
    rendered: &Result<Rendered, monitoring::ConfigError>,
) -> Result<Option<Launch>, monitoring::ConfigError> {
    match unit {
        Unit::Core(_) | Unit::Node(..) if !unit.enabled_in(env) => Ok(None),
        Unit::Core(kind) => Ok(core_launch(root, env, kind).map(|l| with_tls(root, env, unit, l))),
        Unit::Node(kind, i) => {
            Ok(node_launch(root, env, kind, i).map(|l| with_tls(root, env, unit, l)))
        }
        Unit::Monitor(m) if m.component(env).is_none() => Ok(None),
        Unit::Monitor(m) => {
            let files = rendered.as_ref().map_err(Clone::clone)?;
            monitoring::launch(&service_dir(root, unit), env, m, files)
        }
    }
}

/// `launch` with the environment's TLS in its server configuration, and the
/// certificate's state (`"certificate": "valid"`, which `observe` reports as due once
/// past the renewal point, so `plan` shows a renewal).
fn with_tls(root: &Path, env: &Environment, unit: Unit, mut launch: Launch) -> Launch {
    let Some(t) = unit_tls(root, env, unit) else {
        return launch;
    };
    let kind = unit.kind().expect("core units only");
    for f in &mut launch.files {
        let file = match (kind, f.name) {
            (CoreKind::Postgres, "postgresql.conf") => serverconf::ServerFile::PostgresqlConf,
            (CoreKind::Postgres, "pg_hba.conf") => serverconf::ServerFile::PgHbaConf,
            (CoreKind::Redis, "redis.conf") => serverconf::ServerFile::RedisConf,
            (CoreKind::Nats, "nats.conf") => serverconf::ServerFile::NatsConf,
            (CoreKind::Vault, "vault.hcl") => serverconf::ServerFile::VaultHcl,
            _ => continue,
        };
        f.text = serverconf::with_tls(env, file, &f.text, &t);
    }
    launch.tls = true;
    launch
}

/// How core service `kind` runs in `env`; `None` when disabled.
fn core_launch(root: &Path, env: &Environment, kind: CoreKind) -> Option<Launch> {
    let dir = service_dir(root, Unit::Core(kind));
    let s = &env.services;
    Some(match kind {
        CoreKind::Postgres => {
            let pg = s.postgres.as_ref()?;
            let l = layout(root, Unit::Core(kind), "run");
            let data = dir.join("data");
            // Our settings after the defaults initdb wrote, which stay untouched in
            // the data directory.
            let conf = format!(
                "include '{}'\n{}",
                path_str(&data.join("postgresql.conf")),
                serverconf::postgresql_conf(env, pg, &l)
            );
            let major = pg
                .common
                .version
                .split('.')
                .next()
                .unwrap_or(&pg.common.version)
                .to_owned();
            Launch {
                version: Some(pg.common.version.clone()),
                program: Program::Postgres {
                    name: "postgres",
                    major,
                },
                args: postgres_args(&dir, &data),
                files: vec![
                    ConfigFile {
                        name: "postgresql.conf",
                        text: conf,
                        secret: None,
                    },
                    ConfigFile {
                        name: "pg_hba.conf",
                        text: serverconf::pg_hba_conf(env, &l),
                        secret: None,
                    },
                ],
                ports: vec![(pg.common.port, "services.postgres.port".into())],
                secrets: vec![],
                env: vec![],
                dirs: vec!["run"],
                tls: false,
            }
        }
        CoreKind::Redis => {
            let r = s.redis.as_ref()?;
            let l = layout(root, Unit::Core(kind), "");
            Launch {
                version: Some(r.common.version.clone()),
                program: Program::Path("redis-server".into()),
                args: vec![path_str(&dir.join("redis.conf"))],
                files: vec![ConfigFile {
                    name: "redis.conf",
                    text: serverconf::redis_conf(env, r, &l),
                    secret: None,
                }],
                ports: vec![(r.common.port, "services.redis.port".into())],
                secrets: vec![],
                env: vec![],
                dirs: vec!["data"],
                tls: false,
            }
        }
        CoreKind::Nats => {
            let n = s.nats.as_ref()?;
            let l = layout(root, Unit::Core(kind), "");
            Launch {
                version: Some(n.common.version.clone()),
                program: Program::Path("nats-server".into()),
                args: vec!["-c".into(), path_str(&dir.join("nats.conf"))],
                files: vec![ConfigFile {
                    name: "nats.conf",
                    text: serverconf::nats_conf(env, n, &l),
                    secret: None,
                }],
                ports: vec![
                    (n.common.port, "services.nats.port".into()),
                    (n.monitor_port, "services.nats.monitor_port".into()),
                ],
                secrets: [
                    SecretVar {
                        var: NATS_APP_PASSWORD_VAR.into(),
                        setting: "services.nats.app_password".into(),
                        reference: n.app_password.clone(),
                    },
                    SecretVar {
                        var: NATS_ADMIN_PASSWORD_VAR.into(),
                        setting: "services.nats.admin_password".into(),
                        reference: n.admin_password.clone(),
                    },
                ]
                .into_iter()
                // Each app's NATS user (`serverconf::nats_app_users`).
                .chain(
                    serverconf::nats_app_users(env)
                        .into_iter()
                        .map(|u| SecretVar {
                            var: u.var,
                            setting: u.setting,
                            reference: u.uses.password.clone(),
                        }),
                )
                .collect(),
                env: vec![],
                dirs: vec!["jetstream"],
                tls: false,
            }
        }
        CoreKind::Vault => {
            let v = s.vault.as_ref()?;
            let l = layout(root, Unit::Core(kind), "");
            let program = Program::Vault(v.binary.clone());
            match serverconf::vault_hcl(env, v, &l) {
                Some(hcl) => Launch {
                    version: Some(v.common.version.clone()),
                    program,
                    args: vec![
                        "server".into(),
                        format!("-config={}", path_str(&dir.join("vault.hcl"))),
                    ],
                    files: vec![ConfigFile {
                        name: "vault.hcl",
                        text: hcl,
                        secret: None,
                    }],
                    ports: vec![
                        (v.common.port, "services.vault.port".into()),
                        (v.cluster_port, "services.vault.cluster_port".into()),
                    ],
                    secrets: vec![],
                    env: vec![],
                    dirs: vec!["data"],
                    tls: false,
                },
                None => {
                    debug_assert_eq!(v.mode, VaultMode::Dev);
                    let token = SecretVar {
                        var: "BAO_DEV_ROOT_TOKEN_ID".into(),
                        setting: cp_runtime::vault::DEV_ROOT_TOKEN_SETTING.into(),
                        reference: v.dev_root_token.clone().unwrap_or(SecretRef::Generate),
                    };
                    Launch {
                        version: Some(v.common.version.clone()),
                        program,
                        args: vec![
                            "server".into(),
                            "-dev".into(),
                            "-dev-no-store-token".into(),
                            format!("-dev-listen-address=127.0.0.1:{}", v.common.port),
                        ],
                        files: vec![],
                        ports: vec![
                            (v.common.port, "services.vault.port".into()),
                            // Dev mode puts its cluster listener on the next port.
                            (
                                v.common.port.saturating_add(1),
                                "services.vault.port (dev mode also listens on the port after it)"
                                    .into(),
                            ),
                        ],
                        // HashiCorp Vault reads the VAULT_ spelling.
                        secrets: vec![
                            token.clone(),
                            SecretVar {
                                var: "VAULT_DEV_ROOT_TOKEN_ID".into(),
                                ..token
                            },
                        ],
                        env: vec![],
                        dirs: vec![],
                        tls: false,
                    }
                }
            }
        }
    })
}

/// How node `i` of clustered service `kind` runs: the single server's launch with
/// this node's configuration (`serverconf::nats_node_conf` with routes to every
/// node, `serverconf::vault_node_hcl` with `retry_join` to every node), ports and
/// directory; `None` when `env` runs no such node.
fn node_launch(root: &Path, env: &Environment, kind: CoreKind, i: u32) -> Option<Launch> {
    let unit = Unit::Node(kind, i);
    let dir = service_dir(root, unit);
    let l = layout(root, unit, "");
    let mut base = core_launch(root, env, kind)?;
    match kind {
        CoreKind::Nats => {
            let n = env.services.nats.as_ref()?;
            let node = topology::nats_nodes(env, n).into_iter().nth(idx(i))?;
            let conf = serverconf::NatsNodeConf {
                name: serverconf::NodeName::Fixed(node.name.clone()),
                client: node.client,
                monitor: node.monitor,
                cluster: Some((node.cluster, serverconf::nats_local_routes(env, n))),
            };
            base.args = vec!["-c".into(), path_str(&dir.join("nats.conf"))];
            base.files = vec![ConfigFile {
                name: "nats.conf",
                text: serverconf::nats_node_conf(env, n, &l, &conf),
                secret: None,
            }];
            base.ports = vec![
                (node.client, format!("services.nats.port (+{i}, node {i})")),
                (
                    node.monitor,
                    format!("services.nats.monitor_port (+{i}, node {i})"),
                ),
                (
                    node.cluster,
                    format!("services.nats.cluster_port (+{i}, node {i})"),
                ),
            ];
        }
        CoreKind::Vault => {
            let v = env.services.vault.as_ref()?;
            let node = topology::vault_nodes(env, v).into_iter().nth(idx(i))?;
            let conf = serverconf::VaultNodeConf {
                identity: Some(serverconf::VaultIdentity {
                    node_id: node.name.clone(),
                    api_addr: format!("http://{}:{}", l.advertise, node.api),
                    cluster_addr: format!("http://{}:{}", l.advertise, node.cluster),
                }),
                api: node.api,
                cluster: node.cluster,
                join: serverconf::vault_local_join(env, v),
            };
            // Validation refuses dev mode in a cluster.
            let hcl = serverconf::vault_node_hcl(env, v, &l, &conf)?;
            base.args = vec![
                "server".into(),
                format!("-config={}", path_str(&dir.join("vault.hcl"))),
            ];
            base.files = vec![ConfigFile {
                name: "vault.hcl",
                text: hcl,
                secret: None,
            }];
            let step = 2 * i;
            base.ports = vec![
                (node.api, format!("services.vault.port (+{step}, node {i})")),
                (
                    node.cluster,
                    format!("services.vault.cluster_port (+{step}, node {i})"),
                ),
            ];
        }
        CoreKind::Postgres | CoreKind::Redis => return None,
    }
    Some(base)
}

/// The signal that stops a unit gracefully: PostgreSQL's fast shutdown (roll back
/// sessions, checkpoint, exit); SIGTERM for the others (Vault seals itself, about
/// 1 s; Redis saves its RDB; Prometheus closes its TSDB).
pub(crate) fn stop_signal(unit: Unit) -> nix::sys::signal::Signal {
    match unit {
        Unit::Core(CoreKind::Postgres) => nix::sys::signal::Signal::SIGINT,
        _ => nix::sys::signal::Signal::SIGTERM,
    }
}

/// A TLS unit's spec says its certificate is valid; `observe` says otherwise once it
/// is past its renewal point.
pub(crate) const CERT_VALID: &str = "valid";

impl Launch {
    /// The canonical spec: what a restart would change. Secret references only,
    /// never values; configuration files as lines so a plan shows which changed.
    pub(crate) fn spec(&self) -> Value {
        let files: serde_json::Map<String, Value> = self
            .files
            .iter()
            .map(|f| {
                (
                    f.name.to_owned(),
                    Value::from(f.text.lines().map(str::to_owned).collect::<Vec<_>>()),
                )
            })
            .collect();
        let ports: serde_json::Map<String, Value> = self
            .ports
            .iter()
            .map(|(p, setting)| (setting.clone(), Value::from(*p)))
            .collect();
        let mut env: serde_json::Map<String, Value> = self
            .secrets
            .iter()
            .map(|s| (s.var.to_owned(), Value::from(s.reference.to_string())))
            .collect();
        for f in &self.files {
            if let Some(s) = &f.secret {
                env.insert(s.token.to_owned(), Value::from(s.reference.to_string()));
            }
        }
        env.extend(
            self.env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::from(v.as_str()))),
        );
        let mut spec = json!({
            "binary": self.program.name(),
            "args": self.args,
            "ports": ports,
            "files": files,
            "env": env,
        });
        if let Some(v) = &self.version {
            spec["version"] = Value::from(v.as_str());
        }
        if self.tls {
            spec["certificate"] = Value::from(CERT_VALID);
        }
        spec
    }

    /// The port clients use.
    pub(crate) fn port(&self) -> u16 {
        self.ports[0].0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_read_back_and_only_canonical_ones() {
        assert_eq!(Unit::Node(CoreKind::Nats, 2).name(), "nats-2");
        assert_eq!(
            Unit::from_name("vault-1"),
            Some(Unit::Node(CoreKind::Vault, 1))
        );
        assert_eq!(Unit::from_name("nats"), Some(Unit::Core(CoreKind::Nats)));
        assert_eq!(Unit::from_name("nats-01"), None);
        assert_eq!(Unit::from_name("redis-0"), None);
        assert_eq!(Unit::Node(CoreKind::Nats, 2).env_service().as_str(), "nats");
    }
}
