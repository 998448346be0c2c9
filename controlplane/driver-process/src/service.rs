//! What each process this driver runs is: the units (the four core services and the
//! monitoring stack), and for each its program, arguments, configuration files (core
//! services' from `cp_core::serverconf`, the monitoring stack's from the templates,
//! see [`crate::monitoring`]), ports with the settings that choose them, secrets
//! passed as environment variables, and the layout of its directory.
//!
//! Pure: computed from the model, rendered files and the state directory's path
//! only, so `desired()` can turn it into a spec without touching the disk.

use std::path::{Path, PathBuf};

use cp_core::Environment;
use cp_core::model::VaultMode;
use cp_core::names::{CoreKind, ServiceName};
use cp_core::serverconf::{self, Layout, NATS_ADMIN_PASSWORD_VAR, NATS_APP_PASSWORD_VAR};
use cp_core::units::SecretRef;
use serde_json::{Value, json};

use crate::monitoring::{self, Monitor, Rendered};

/// One process this driver runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Unit {
    /// A core service.
    Core(CoreKind),
    /// A part of the monitoring stack.
    Monitor(Monitor),
}

impl Unit {
    /// Every unit, in start order.
    pub(crate) const ALL: [Unit; 9] = [
        Unit::Core(CoreKind::Postgres),
        Unit::Core(CoreKind::Redis),
        Unit::Core(CoreKind::Nats),
        Unit::Core(CoreKind::Vault),
        Unit::Monitor(Monitor::Prometheus),
        Unit::Monitor(Monitor::Alertmanager),
        Unit::Monitor(Monitor::PostgresExporter),
        Unit::Monitor(Monitor::RedisExporter),
        Unit::Monitor(Monitor::NatsExporter),
    ];

    /// Its service name, which is also its directory and record name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Unit::Core(k) => k.as_str(),
            Unit::Monitor(m) => m.as_str(),
        }
    }

    /// Its service name.
    pub(crate) fn service(self) -> ServiceName {
        ServiceName::new(self.as_str()).expect("static names are valid")
    }

    /// The unit of a service name, if this driver runs such a thing.
    pub(crate) fn from_name(name: &str) -> Option<Unit> {
        Self::ALL.into_iter().find(|u| u.as_str() == name)
    }

    /// Whether `env` runs it.
    pub(crate) fn enabled_in(self, env: &Environment) -> bool {
        match self {
            Unit::Core(k) => env.services.common(k).is_some(),
            Unit::Monitor(m) => m.component(env).is_some(),
        }
    }

    /// The port clients use, when `env` runs it (no rendering needed).
    pub(crate) fn port(self, env: &Environment) -> Option<u16> {
        match self {
            Unit::Core(k) => env.services.common(k).map(|c| c.port),
            Unit::Monitor(m) => m.component(env).map(|c| c.port),
        }
    }
}

impl std::fmt::Display for Unit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
    pub(crate) var: &'static str,
    /// The setting it comes from (and the generated secret's name).
    pub(crate) setting: &'static str,
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

fn data_dir_of(kind: CoreKind) -> &'static str {
    DATA_DIRS
        .iter()
        .find(|(u, _)| *u == Unit::Core(kind))
        .map(|(_, d)| *d)
        .expect("every kind has one")
}

/// The unit's directory: `<state>/<service>`.
pub(crate) fn service_dir(root: &Path, unit: Unit) -> PathBuf {
    root.join(unit.as_str())
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn layout(root: &Path, kind: CoreKind, run: &str) -> Layout {
    let dir = service_dir(root, Unit::Core(kind));
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

/// How `unit` runs in `env`, with its state under `root`; `Ok(None)` when `env` does
/// not run it. The monitoring stack's configuration comes from `rendered` (the
/// environment's rendered `prometheus/<env>/` files, or why there are none).
pub(crate) fn launch(
    root: &Path,
    env: &Environment,
    unit: Unit,
    rendered: &Result<Rendered, String>,
) -> Result<Option<Launch>, String> {
    match unit {
        Unit::Core(kind) => Ok(core_launch(root, env, kind)),
        Unit::Monitor(m) if m.component(env).is_none() => Ok(None),
        Unit::Monitor(m) => {
            let files = rendered.as_ref().map_err(Clone::clone)?;
            monitoring::launch(&service_dir(root, unit), env, m, files)
        }
    }
}

/// How core service `kind` runs in `env`; `None` when disabled.
fn core_launch(root: &Path, env: &Environment, kind: CoreKind) -> Option<Launch> {
    let dir = service_dir(root, Unit::Core(kind));
    let s = &env.services;
    Some(match kind {
        CoreKind::Postgres => {
            let pg = s.postgres.as_ref()?;
            let l = layout(root, kind, "run");
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
                args: vec![
                    "-D".into(),
                    path_str(&data),
                    "-c".into(),
                    format!("config_file={}", path_str(&dir.join("postgresql.conf"))),
                    "-c".into(),
                    format!("hba_file={}", path_str(&dir.join("pg_hba.conf"))),
                    "-c".into(),
                    format!("ident_file={}", path_str(&data.join("pg_ident.conf"))),
                ],
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
            }
        }
        CoreKind::Redis => {
            let r = s.redis.as_ref()?;
            let l = layout(root, kind, "");
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
            }
        }
        CoreKind::Nats => {
            let n = s.nats.as_ref()?;
            let l = layout(root, kind, "");
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
                secrets: vec![
                    SecretVar {
                        var: NATS_APP_PASSWORD_VAR,
                        setting: "services.nats.app_password",
                        reference: n.app_password.clone(),
                    },
                    SecretVar {
                        var: NATS_ADMIN_PASSWORD_VAR,
                        setting: "services.nats.admin_password",
                        reference: n.admin_password.clone(),
                    },
                ],
                env: vec![],
                dirs: vec!["jetstream"],
            }
        }
        CoreKind::Vault => {
            let v = s.vault.as_ref()?;
            let l = layout(root, kind, "");
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
                },
                None => {
                    debug_assert_eq!(v.mode, VaultMode::Dev);
                    let token = SecretVar {
                        var: "BAO_DEV_ROOT_TOKEN_ID",
                        setting: cp_runtime::vault::DEV_ROOT_TOKEN_SETTING,
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
                                var: "VAULT_DEV_ROOT_TOKEN_ID",
                                ..token
                            },
                        ],
                        env: vec![],
                        dirs: vec![],
                    }
                }
            }
        }
    })
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
        spec
    }

    /// The port clients use.
    pub(crate) fn port(&self) -> u16 {
        self.ports[0].0
    }
}
