//! What each core service is as a local process: program, arguments, configuration
//! files (all from `cp_core::serverconf`), ports with the settings that choose them,
//! secrets passed as environment variables, and the layout of its directory.
//!
//! Pure: computed from the model and the state directory's path only, so `desired()`
//! can turn it into a spec without touching the disk.

use std::path::{Path, PathBuf};

use cp_core::Environment;
use cp_core::model::VaultMode;
use cp_core::names::CoreKind;
use cp_core::serverconf::{self, Layout, NATS_ADMIN_PASSWORD_VAR, NATS_APP_PASSWORD_VAR};
use cp_core::units::SecretRef;
use serde_json::{Value, json};

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
}

impl Program {
    /// The name people know it by (for the spec and messages).
    pub(crate) fn name(&self) -> &str {
        match self {
            Program::Postgres { name, .. } => name,
            Program::Path(n) | Program::Vault(n) => n,
        }
    }
}

/// A file the service reads, written before it starts.
#[derive(Debug, Clone)]
pub(crate) struct ConfigFile {
    /// Relative to the service directory.
    pub(crate) name: &'static str,
    /// Contents.
    pub(crate) text: String,
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

/// One core service as a process.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// Configured version.
    pub(crate) version: String,
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
    /// Directories it needs (relative to the service directory).
    pub(crate) dirs: Vec<&'static str>,
}

/// The data directory name of each service, relative to its directory.
pub(crate) const DATA_DIRS: [(CoreKind, &str); 4] = [
    (CoreKind::Postgres, "data"),
    (CoreKind::Redis, "data"),
    (CoreKind::Nats, "jetstream"),
    (CoreKind::Vault, "data"),
];

fn data_dir_of(kind: CoreKind) -> &'static str {
    DATA_DIRS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, d)| *d)
        .expect("every kind has one")
}

/// The service directory: `<state>/<service>`.
pub(crate) fn service_dir(root: &Path, kind: CoreKind) -> PathBuf {
    root.join(kind.as_str())
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn layout(root: &Path, kind: CoreKind, run: &str) -> Layout {
    let dir = service_dir(root, kind);
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

/// How `kind` runs in `env`, with its state under `root`; `None` when disabled.
pub(crate) fn launch(root: &Path, env: &Environment, kind: CoreKind) -> Option<Launch> {
    let dir = service_dir(root, kind);
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
                version: pg.common.version.clone(),
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
                    },
                    ConfigFile {
                        name: "pg_hba.conf",
                        text: serverconf::pg_hba_conf(env, &l),
                    },
                ],
                ports: vec![(pg.common.port, "services.postgres.port".into())],
                secrets: vec![],
                dirs: vec!["run"],
            }
        }
        CoreKind::Redis => {
            let r = s.redis.as_ref()?;
            let l = layout(root, kind, "");
            Launch {
                version: r.common.version.clone(),
                program: Program::Path("redis-server".into()),
                args: vec![path_str(&dir.join("redis.conf"))],
                files: vec![ConfigFile {
                    name: "redis.conf",
                    text: serverconf::redis_conf(env, r, &l),
                }],
                ports: vec![(r.common.port, "services.redis.port".into())],
                secrets: vec![],
                dirs: vec!["data"],
            }
        }
        CoreKind::Nats => {
            let n = s.nats.as_ref()?;
            let l = layout(root, kind, "");
            Launch {
                version: n.common.version.clone(),
                program: Program::Path("nats-server".into()),
                args: vec!["-c".into(), path_str(&dir.join("nats.conf"))],
                files: vec![ConfigFile {
                    name: "nats.conf",
                    text: serverconf::nats_conf(env, n, &l),
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
                dirs: vec!["jetstream"],
            }
        }
        CoreKind::Vault => {
            let v = s.vault.as_ref()?;
            let l = layout(root, kind, "");
            let program = Program::Vault(v.binary.clone());
            match serverconf::vault_hcl(env, v, &l) {
                Some(hcl) => Launch {
                    version: v.common.version.clone(),
                    program,
                    args: vec![
                        "server".into(),
                        format!("-config={}", path_str(&dir.join("vault.hcl"))),
                    ],
                    files: vec![ConfigFile {
                        name: "vault.hcl",
                        text: hcl,
                    }],
                    ports: vec![
                        (v.common.port, "services.vault.port".into()),
                        (v.cluster_port, "services.vault.cluster_port".into()),
                    ],
                    secrets: vec![],
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
                        version: v.common.version.clone(),
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
                        dirs: vec![],
                    }
                }
            }
        }
    })
}

/// The signal that stops a service gracefully: PostgreSQL's fast shutdown (roll
/// back sessions, checkpoint, exit); SIGTERM for the others (Vault seals itself,
/// about 1 s; Redis saves its RDB).
pub(crate) fn stop_signal(kind: CoreKind) -> nix::sys::signal::Signal {
    match kind {
        CoreKind::Postgres => nix::sys::signal::Signal::SIGINT,
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
        let env: serde_json::Map<String, Value> = self
            .secrets
            .iter()
            .map(|s| (s.var.to_owned(), Value::from(s.reference.to_string())))
            .collect();
        json!({
            "binary": self.program.name(),
            "version": self.version,
            "args": self.args,
            "ports": ports,
            "files": files,
            "env": env,
        })
    }

    /// The port clients use.
    pub(crate) fn port(&self) -> u16 {
        self.ports[0].0
    }
}
