//! What an environment needs on Docker, as plain data: names, labels and one
//! [`ContainerSpec`] per service. Pure: no I/O, no secret values (only references).
//!
//! The driver never relies on an image's own entrypoint script: core services get an
//! explicit entrypoint, command and user that work both with the official images
//! (`postgres:15`, `redis:7.0`, `nats:2.9`, `openbao/openbao:2.7`) and with the local
//! Debian images of `cargo xtask images`, which mimic their layout:
//!
//! | service  | runs as    | binary                                    | data volume at               |
//! |----------|------------|-------------------------------------------|------------------------------|
//! | postgres | `postgres` | `sh -c` → `/usr/lib/postgresql/<v>/bin/…` | `/var/lib/postgresql/data`   |
//! | redis    | `redis`    | `sh -c` (umask 077) → `redis-server`      | `/data`                      |
//! | nats     | image user | `/nats-server`                            | `/data`                      |
//! | vault    | `openbao`  | `/bin/bao`                                | `/openbao/file`              |
//!
//! Each image owns its data directory by the service's user, so a fresh named volume
//! mounted there inherits that owner (Docker copies the image directory's ownership
//! into an empty volume when the container is created). PostgreSQL's official
//! entrypoint (initdb, then drop to `postgres`) is replaced by a short script doing
//! the same: initdb with the superuser password from `POSTGRES_PASSWORD` on first
//! start, then `exec postgres`. Server configuration files come from
//! [`cp_core::serverconf`] and are uploaded into `/etc/controlplane/` before the
//! container starts (none holds a secret).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use cp_core::Environment;
use cp_core::model::{Component, ExtraHealth, Postgres, Vault, VaultMode};
use cp_core::names::{CoreKind, ServiceName};
use cp_core::plan::{Layer, Resource, ResourceId, UpdateMode};
use cp_core::serverconf::{self, Layout};
use cp_core::units::SecretRef;
use cp_runtime::vault::DEV_ROOT_TOKEN_SETTING;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Label: the project (`anumate`).
pub const LABEL_PROJECT: &str = "controlplane.dev/project";
/// Label: the environment (`dev`).
pub const LABEL_ENVIRONMENT: &str = "controlplane.dev/environment";
/// Label: the service (`postgres`); on containers and volumes.
pub const LABEL_SERVICE: &str = "controlplane.dev/service";
/// Label: the canonical desired spec a container was created from (references only,
/// never a secret value), read back by `observe` for plan diffs.
pub const LABEL_SPEC: &str = "controlplane.dev/spec";

/// Where configuration files go inside containers.
pub(crate) const CONFIG_DIR: &str = "/etc/controlplane";

/// Resource kinds, as the plan shows them.
pub(crate) const KIND_NETWORK: &str = "network";
pub(crate) const KIND_VOLUME: &str = "volume";
pub(crate) const KIND_CONTAINER: &str = "container";

/// `<project>-<env>`: the network's name and every other name's prefix.
pub(crate) fn prefix(env: &Environment) -> String {
    format!("{}-{}", env.project, env.name)
}

/// `<project>-<env>-<service>`.
pub(crate) fn container_name(env: &Environment, service: &ServiceName) -> String {
    format!("{}-{service}", prefix(env))
}

/// `<project>-<env>-<service>-<volume>`.
pub(crate) fn volume_name(env: &Environment, service: &ServiceName, volume: &str) -> String {
    format!("{}-{service}-{volume}", prefix(env))
}

/// The labels every object of this environment carries.
pub(crate) fn env_labels(env: &Environment) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_PROJECT.to_owned(), env.project.clone()),
        (LABEL_ENVIRONMENT.to_owned(), env.name.to_string()),
    ])
}

/// `label=K=V` filters selecting this environment's objects.
pub(crate) fn env_filter(env: &Environment) -> Vec<String> {
    env_labels(env)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

/// A port published on 127.0.0.1 (same number inside and outside).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PortSpec {
    /// The port.
    pub(crate) port: u16,
    /// The setting that chose it (`services.postgres.port`), for messages.
    pub(crate) setting: String,
}

/// A named volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VolumeSpec {
    /// Docker volume name.
    pub(crate) name: String,
    /// Mount path inside the container.
    pub(crate) path: String,
}

/// A non-secret file uploaded before the container starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileSpec {
    /// Absolute path inside the container.
    pub(crate) path: String,
    /// Content.
    pub(crate) content: String,
}

/// A secret handed over as an environment variable at apply time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SecretEnv {
    /// The setting's key path (`services.postgres.superuser_password`): names
    /// generated values and appears in messages.
    pub(crate) setting: String,
    /// The reference.
    pub(crate) reference: SecretRef,
    /// A value the secret is placed into (`cp_core::appenv::SECRET` marks where):
    /// an app's URL carrying its own credential. `None`: the secret as is.
    pub(crate) template: Option<String>,
}

/// How to tell a service answers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Probe {
    /// `SELECT 1` as the superuser.
    Postgres,
    /// `AUTH admin` + `PING`.
    Redis,
    /// JetStream account info as the admin user.
    Nats,
    /// Initialise and unseal (raft), then health; dev mode: health only.
    Vault {
        /// Dev mode (no init/unseal).
        dev: bool,
    },
    /// `GET` on a published port; 2xx is healthy.
    Http {
        /// Port.
        port: u16,
        /// Path.
        path: String,
    },
    /// A TCP peer answers on a published port.
    Tcp {
        /// Port.
        port: u16,
    },
    /// A command in the container exits 0.
    Command(Vec<String>),
    /// Running is all we can tell.
    Running,
}

/// Everything about one service's container.
#[derive(Debug, Clone)]
pub(crate) struct ContainerSpec {
    /// The service.
    pub(crate) service: ServiceName,
    /// The container's name.
    pub(crate) name: String,
    /// Image with tag.
    pub(crate) image: String,
    /// The setting naming the image, for messages.
    pub(crate) image_setting: String,
    /// Entrypoint override.
    pub(crate) entrypoint: Option<Vec<String>>,
    /// Command (arguments) override.
    pub(crate) cmd: Option<Vec<String>>,
    /// User to run as (`postgres`); `None`: the image's.
    pub(crate) user: Option<String>,
    /// Plain environment.
    pub(crate) env: BTreeMap<String, String>,
    /// Secret environment: variable to reference.
    pub(crate) secret_env: BTreeMap<String, SecretEnv>,
    /// Published ports.
    pub(crate) ports: Vec<PortSpec>,
    /// Named volumes.
    pub(crate) volumes: Vec<VolumeSpec>,
    /// Files uploaded before start.
    pub(crate) files: Vec<FileSpec>,
    /// Signal for a clean, quick stop.
    pub(crate) stop_signal: Option<String>,
    /// Extra capabilities.
    pub(crate) cap_add: Vec<String>,
    /// Readiness.
    pub(crate) probe: Probe,
    /// The port clients use (`endpoint`), when there is one.
    pub(crate) main_port: Option<u16>,
}

impl ContainerSpec {
    fn new(env: &Environment, service: ServiceName, image: String, image_setting: String) -> Self {
        Self {
            name: container_name(env, &service),
            service,
            image,
            image_setting,
            entrypoint: None,
            cmd: None,
            user: None,
            env: BTreeMap::new(),
            secret_env: BTreeMap::new(),
            ports: Vec::new(),
            volumes: Vec::new(),
            files: Vec::new(),
            stop_signal: None,
            cap_add: Vec::new(),
            probe: Probe::Running,
            main_port: None,
        }
    }

    fn port(&mut self, port: u16, setting: impl Into<String>) {
        self.ports.push(PortSpec {
            port,
            setting: setting.into(),
        });
    }

    fn secret(&mut self, var: &str, setting: impl Into<String>, reference: &SecretRef) {
        self.secret_env.insert(
            var.to_owned(),
            SecretEnv {
                setting: setting.into(),
                reference: reference.clone(),
                template: None,
            },
        );
    }

    fn volume(&mut self, env: &Environment, volume: &str, path: &str) {
        self.volumes.push(VolumeSpec {
            name: volume_name(env, &self.service, volume),
            path: path.to_owned(),
        });
    }

    fn file(&mut self, name: &str, content: String) {
        self.files.push(FileSpec {
            path: format!("{CONFIG_DIR}/{name}"),
            content,
        });
    }

    /// The canonical spec recorded in the container's label and compared by the
    /// planner. References only: never a secret value; files by digest.
    pub(crate) fn spec_json(&self, network: &str) -> Value {
        let secrets: BTreeMap<&String, String> = self
            .secret_env
            .iter()
            .map(|(k, s)| (k, s.reference.to_string()))
            .collect();
        let files: BTreeMap<&String, String> = self
            .files
            .iter()
            .map(|f| {
                (
                    &f.path,
                    format!(
                        "sha256:{}",
                        hex::encode(Sha256::digest(f.content.as_bytes()))
                    ),
                )
            })
            .collect();
        let volumes: BTreeMap<&String, &String> =
            self.volumes.iter().map(|v| (&v.path, &v.name)).collect();
        json!({
            "image": self.image,
            "entrypoint": self.entrypoint,
            "cmd": self.cmd,
            "user": self.user,
            "env": self.env,
            "secrets": secrets,
            "ports": self.ports.iter().map(|p| format!("127.0.0.1:{0}:{0}/tcp", p.port)).collect::<Vec<_>>(),
            "volumes": volumes,
            "files": files,
            "network": network,
            "alias": self.service,
            "restart": "unless-stopped",
            "stop_signal": self.stop_signal,
            "cap_add": self.cap_add,
        })
    }
}

/// Every container the environment needs, in service order.
pub(crate) fn containers(env: &Environment) -> Vec<ContainerSpec> {
    env.service_names()
        .into_iter()
        .filter_map(|s| container(env, &s))
        .collect()
}

/// The container of one service, if the environment has that service.
pub(crate) fn container(env: &Environment, service: &ServiceName) -> Option<ContainerSpec> {
    let s = &env.services;
    match CoreKind::from_name(service.as_str()) {
        Some(CoreKind::Postgres) => return s.postgres.as_ref().map(|pg| postgres(env, pg)),
        Some(CoreKind::Redis) => return s.redis.as_ref().map(|r| redis(env, r)),
        Some(CoreKind::Nats) => return s.nats.as_ref().map(|n| nats(env, n)),
        Some(CoreKind::Vault) => return s.vault.as_ref().map(|v| vault(env, v)),
        None => {}
    }
    if let Some(app) = env.apps.get(service) {
        return Some(app_container(env, service, app));
    }
    if let Some(extra) = env.extras.get(service) {
        return Some(extra_container(env, service, extra));
    }
    let monitoring = env.monitoring.as_ref()?;
    monitoring
        .components()
        .into_iter()
        .find(|(n, _)| n == service)
        .map(|(n, c)| monitoring_container(env, &n, c))
}

/// What the environment needs on Docker: the network, each service's volumes and
/// container.
pub(crate) fn desired(env: &Environment) -> Vec<Resource> {
    let network = prefix(env);
    let mut out = vec![Resource {
        id: ResourceId::new(Layer::Platform, KIND_NETWORK, &network),
        service: None,
        spec: json!({"driver": "bridge"}),
        update: UpdateMode::Replace,
    }];
    for c in containers(env) {
        for v in &c.volumes {
            out.push(Resource {
                id: ResourceId::new(Layer::Platform, KIND_VOLUME, &v.name),
                service: Some(c.service.clone()),
                // A volume never changes: its data is what matters.
                spec: json!({"driver": "local"}),
                update: UpdateMode::InPlace,
            });
        }
        out.push(Resource {
            id: ResourceId::new(Layer::Platform, KIND_CONTAINER, &c.name),
            service: Some(c.service.clone()),
            spec: c.spec_json(&network),
            update: UpdateMode::Replace,
        });
    }
    out
}

fn core_layout(data_dir: &str, run_dir: &str, advertise: &str) -> Layout {
    Layout {
        bind: "0.0.0.0".into(),
        advertise: advertise.into(),
        data_dir: data_dir.into(),
        run_dir: run_dir.into(),
        // Clients arrive through Docker's port proxy or from the environment's network;
        // every connection needs a password.
        client_networks: vec!["0.0.0.0/0".into(), "::/0".into()],
        runs_in_run_dir: false,
    }
}

fn core(env: &Environment, kind: CoreKind) -> ContainerSpec {
    let common = env
        .services
        .common(kind)
        .expect("called for enabled services");
    let mut c = ContainerSpec::new(
        env,
        ServiceName::core(kind),
        common.image.clone(),
        format!("services.{kind}.image", kind = kind.as_str()),
    );
    c.port(common.port, format!("services.{}.port", kind.as_str()));
    c.main_port = Some(common.port);
    c
}

/// The data directory of the PostgreSQL cluster: a subdirectory of the volume, as
/// the official image recommends (a mount point may hold `lost+found`).
/// PostgreSQL's data directory in its container (on its volume).
pub(crate) const PGDATA: &str = "/var/lib/postgresql/data/pgdata";

fn postgres(env: &Environment, pg: &Postgres) -> ContainerSpec {
    let mut c = core(env, CoreKind::Postgres);
    let layout = core_layout(PGDATA, "/tmp", "postgres");
    c.file(
        "postgresql.conf",
        serverconf::postgresql_conf(env, pg, &layout),
    );
    c.file("pg_hba.conf", serverconf::pg_hba_conf(env, &layout));
    let major = pg.common.version.split('.').next().unwrap_or("15");
    c.entrypoint = Some(vec!["sh".into(), "-c".into(), postgres_script(major)]);
    // `$0` of the script, so `ps` and error messages say what this is.
    c.cmd = Some(vec!["controlplane-postgres".into()]);
    c.user = Some("postgres".into());
    c.env.insert("PGDATA".into(), PGDATA.into());
    c.secret(
        "POSTGRES_PASSWORD",
        "services.postgres.superuser_password",
        &pg.superuser_password,
    );
    c.volume(env, "data", "/var/lib/postgresql/data");
    // Fast shutdown: SIGTERM would wait for every client to disconnect.
    c.stop_signal = Some("SIGINT".into());
    c.probe = Probe::Postgres;
    c
}

/// What the official image's entrypoint does, minus what we do not need: initdb on
/// first start (superuser password from the environment, never a file), include our
/// settings, then become the server.
fn postgres_script(major: &str) -> String {
    let bin = format!("/usr/lib/postgresql/{major}/bin");
    let include = format!("include '{CONFIG_DIR}/postgresql.conf'");
    let mut s = String::from("set -eu\n");
    let _ = writeln!(
        s,
        "if [ -s \"$PGDATA/PG_VERSION\" ] && [ \"$(cat \"$PGDATA/PG_VERSION\")\" != '{major}' ]; then"
    );
    let _ = writeln!(
        s,
        "  echo \"controlplane: $PGDATA was created by PostgreSQL $(cat \"$PGDATA/PG_VERSION\"), but this is {major}; upgrade the data (pg_upgrade) or set services.postgres.version\" >&2; exit 64"
    );
    s.push_str("fi\n");
    s.push_str("if [ ! -s \"$PGDATA/PG_VERSION\" ]; then\n");
    let _ = writeln!(
        s,
        "  printf '%s\\n' \"$POSTGRES_PASSWORD\" | {bin}/initdb -D \"$PGDATA\" -U postgres --pwfile=/dev/stdin --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null"
    );
    s.push_str("fi\n");
    let _ = writeln!(
        s,
        "grep -qxF \"{include}\" \"$PGDATA/postgresql.conf\" || echo \"{include}\" >> \"$PGDATA/postgresql.conf\""
    );
    s.push_str("unset POSTGRES_PASSWORD\n");
    let _ = writeln!(
        s,
        "exec {bin}/postgres -D \"$PGDATA\" -c hba_file={CONFIG_DIR}/pg_hba.conf"
    );
    s
}

/// Redis keeps its ACL file next to its data, so users added later (`ACL SAVE`)
/// survive a restart; the driver writes the admin user into it before start.
pub(crate) const REDIS_DATA: &str = "/data";

fn redis(env: &Environment, r: &cp_core::model::Redis) -> ContainerSpec {
    let mut c = core(env, CoreKind::Redis);
    let layout = core_layout(REDIS_DATA, REDIS_DATA, "redis");
    c.file("redis.conf", serverconf::redis_conf(env, r, &layout));
    // Under umask 0077, what Redis writes (`dump.rdb`, and `users.acl` at every
    // `ACL SAVE`) is 0600: both images have a POSIX shell, and `exec` keeps the pid.
    c.entrypoint = Some(vec![
        "sh".into(),
        "-c".into(),
        "umask 077 && exec redis-server \"$@\"".into(),
        "redis-server".into(),
    ]);
    c.cmd = Some(vec![format!("{CONFIG_DIR}/redis.conf")]);
    c.user = Some("redis".into());
    c.volume(env, "data", REDIS_DATA);
    c.probe = Probe::Redis;
    c
}

fn nats(env: &Environment, n: &cp_core::model::Nats) -> ContainerSpec {
    let mut c = core(env, CoreKind::Nats);
    let layout = core_layout("/data", "/data", "nats");
    c.file("nats-server.conf", serverconf::nats_conf(env, n, &layout));
    c.entrypoint = Some(vec!["/nats-server".into()]);
    c.cmd = Some(vec![
        "--config".into(),
        format!("{CONFIG_DIR}/nats-server.conf"),
    ]);
    c.port(n.monitor_port, "services.nats.monitor_port");
    c.secret(
        serverconf::NATS_APP_PASSWORD_VAR,
        "services.nats.app_password",
        &n.app_password,
    );
    c.secret(
        serverconf::NATS_ADMIN_PASSWORD_VAR,
        "services.nats.admin_password",
        &n.admin_password,
    );
    for u in serverconf::nats_app_users(env) {
        c.secret(&u.var, u.setting, &u.uses.password);
    }
    c.volume(env, "data", "/data");
    c.probe = Probe::Nats;
    c
}

fn vault(env: &Environment, v: &Vault) -> ContainerSpec {
    let mut c = core(env, CoreKind::Vault);
    c.entrypoint = Some(vec!["/bin/bao".into()]);
    c.user = Some("openbao".into());
    // Harmless with `disable_mlock`, and what the official image expects.
    c.cap_add = vec!["IPC_LOCK".into()];
    c.volume(env, "data", "/openbao/file");
    if v.mode == VaultMode::Dev {
        c.cmd = Some(vec![
            "server".into(),
            "-dev".into(),
            format!("-dev-listen-address=0.0.0.0:{}", v.common.port),
        ]);
        let token = v.dev_root_token.clone().unwrap_or(SecretRef::Generate);
        for var in ["BAO_DEV_ROOT_TOKEN_ID", "VAULT_DEV_ROOT_TOKEN_ID"] {
            c.secret(var, DEV_ROOT_TOKEN_SETTING, &token);
        }
        c.probe = Probe::Vault { dev: true };
    } else {
        let layout = core_layout("/openbao/file", "/openbao/file", "vault");
        let hcl = serverconf::vault_hcl(env, v, &layout).expect("raft mode has a config");
        c.file("openbao.hcl", hcl);
        c.cmd = Some(vec![
            "server".into(),
            format!("-config={CONFIG_DIR}/openbao.hcl"),
        ]);
        c.probe = Probe::Vault { dev: false };
    }
    c
}

fn app_container(
    env: &Environment,
    name: &ServiceName,
    app: &cp_core::model::App,
) -> ContainerSpec {
    let mut c = ContainerSpec::new(
        env,
        name.clone(),
        format!("{}:{}", app.image, app.tag),
        format!("apps.{name}.image"),
    );
    c.env.insert("LOG_LEVEL".into(), log_level(app.log_level));
    c.env
        .extend(app.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (var, r) in &app.secrets {
        c.secret(var, format!("apps.{name}.secrets.{var}"), r);
    }
    // What the app uses, on the environment's network (short names, as in compose).
    let ca = format!("{}/ca.crt", cp_core::render::context::TLS_DIR);
    let dial = cp_core::appenv::in_cluster_dial(env, &ca);
    for (var, v) in cp_core::appenv::app_env(name, app, &dial) {
        match v {
            cp_core::appenv::AppValue::Plain { value } => {
                c.env.insert(var, value);
            }
            cp_core::appenv::AppValue::WithSecret {
                template,
                setting,
                reference,
                ..
            } => {
                c.secret_env.insert(
                    var,
                    SecretEnv {
                        setting,
                        reference,
                        template: Some(template),
                    },
                );
            }
        }
    }
    if let Some(w) = &app.worm_storage {
        c.volume(env, "worm", &w.path);
    }
    c.port(app.port, format!("apps.{name}.port"));
    if app.metrics_port != app.port {
        c.port(app.metrics_port, format!("apps.{name}.metrics_port"));
    }
    c.main_port = Some(app.port);
    c.probe = Probe::Http {
        port: app.port,
        path: app.health.readiness.clone(),
    };
    c
}

fn log_level(l: cp_core::model::LogLevel) -> String {
    serde_json::to_value(l)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "info".into())
}

fn extra_container(
    env: &Environment,
    name: &ServiceName,
    x: &cp_core::model::Extra,
) -> ContainerSpec {
    let mut c = ContainerSpec::new(
        env,
        name.clone(),
        x.image.clone(),
        format!("extras.{name}.image"),
    );
    c.entrypoint.clone_from(&x.command);
    c.cmd.clone_from(&x.args);
    c.env
        .extend(x.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (var, r) in &x.secrets {
        c.secret(var, format!("extras.{name}.secrets.{var}"), r);
    }
    for (pname, port) in &x.ports {
        c.port(*port, format!("extras.{name}.ports.{pname}"));
    }
    for (vname, path) in &x.volumes {
        c.volume(env, vname, path);
    }
    c.probe = match &x.health {
        Some(ExtraHealth::Http { port, path, .. }) => Probe::Http {
            port: *port,
            path: path.clone(),
        },
        Some(ExtraHealth::Tcp { port, .. }) => Probe::Tcp { port: *port },
        Some(ExtraHealth::Command { argv }) => Probe::Command(argv.clone()),
        None => Probe::Running,
    };
    c.main_port = match &x.health {
        Some(ExtraHealth::Http { port, .. } | ExtraHealth::Tcp { port, .. }) => Some(*port),
        _ => x.ports.values().next().copied(),
    };
    c
}

fn monitoring_container(env: &Environment, name: &ServiceName, comp: &Component) -> ContainerSpec {
    let key = name.as_str().replace('-', "_");
    let mut c = ContainerSpec::new(
        env,
        name.clone(),
        comp.image.clone(),
        format!("monitoring.{key}.image"),
    );
    let port = comp.port;
    c.port(port, format!("monitoring.{key}.port"));
    c.main_port = Some(port);
    let listen = format!("--web.listen-address=:{port}");
    let http = |path: &str| Probe::Http {
        port,
        path: path.into(),
    };
    match name.as_str() {
        "prometheus" => {
            c.cmd = Some(vec![
                "--config.file=/etc/prometheus/prometheus.yml".into(),
                "--storage.tsdb.path=/prometheus".into(),
                listen,
            ]);
            c.volume(env, "data", "/prometheus");
            c.probe = http("/-/ready");
        }
        "alertmanager" => {
            c.cmd = Some(vec![
                "--config.file=/etc/alertmanager/alertmanager.yml".into(),
                "--storage.path=/alertmanager".into(),
                listen,
            ]);
            c.volume(env, "data", "/alertmanager");
            c.probe = http("/-/ready");
        }
        "grafana" => {
            c.env.insert("GF_SERVER_HTTP_PORT".into(), port.to_string());
            if let Some(m) = &env.monitoring {
                c.secret(
                    "GF_SECURITY_ADMIN_PASSWORD",
                    "monitoring.grafana_admin_password",
                    &m.grafana_admin_password,
                );
            }
            c.volume(env, "data", "/var/lib/grafana");
            c.probe = http("/api/health");
        }
        "postgres-exporter" => {
            c.cmd = Some(vec![listen]);
            if let Some(pg) = &env.services.postgres {
                c.env.insert(
                    "DATA_SOURCE_URI".into(),
                    format!(
                        "postgres:{}/{}?sslmode=disable",
                        pg.common.port, pg.database
                    ),
                );
                c.env.insert(
                    "DATA_SOURCE_USER".into(),
                    cp_core::roles::READONLY.to_owned(),
                );
                c.secret(
                    "DATA_SOURCE_PASS",
                    "services.postgres.readonly_password",
                    &pg.readonly_password,
                );
            }
            c.probe = http("/metrics");
        }
        "redis-exporter" => {
            c.env.insert(
                "REDIS_EXPORTER_WEB_LISTEN_ADDRESS".into(),
                format!(":{port}"),
            );
            if let Some(r) = &env.services.redis {
                c.env.insert(
                    "REDIS_ADDR".into(),
                    format!("redis://redis:{}", r.common.port),
                );
                c.env
                    .insert("REDIS_USER".into(), serverconf::REDIS_ADMIN_USER.into());
                c.secret(
                    "REDIS_PASSWORD",
                    "services.redis.admin_password",
                    &r.admin_password,
                );
            }
            c.probe = http("/metrics");
        }
        "nats-exporter" => {
            let mut cmd = vec![
                "-port".to_owned(),
                port.to_string(),
                "-varz".into(),
                "-connz".into(),
                "-jsz=all".into(),
                "-routez".into(),
            ];
            if let Some(n) = &env.services.nats {
                cmd.push(format!("http://nats:{}", n.monitor_port));
            }
            c.cmd = Some(cmd);
            c.probe = http("/metrics");
        }
        _ => c.probe = Probe::Tcp { port },
    }
    c
}

/// The images the environment needs, with the setting naming each.
pub(crate) fn images(env: &Environment) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for c in containers(env) {
        if !out.iter().any(|(i, _)| *i == c.image) {
            out.push((c.image, c.image_setting));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(sets: &[&str]) -> Environment {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../environments");
        let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
        cp_runtime::project::Project::new(root)
            .load("dev", &sets)
            .expect("dev loads")
            .env
    }

    #[test]
    fn names_labels_and_specs_hold_references_only() {
        let env = dev(&["services.postgres.superuser_password=hunter2-inline"]);
        let d = desired(&env);
        let ids: Vec<String> = d.iter().map(|r| r.id.to_string()).collect();
        assert_eq!(ids[0], "network anumate-dev");
        assert!(ids.contains(&"container anumate-dev-postgres".to_owned()));
        assert!(ids.contains(&"volume anumate-dev-postgres-data".to_owned()));
        assert!(ids.contains(&"container anumate-dev-jaeger".to_owned()));
        let pg = d
            .iter()
            .find(|r| r.id.name == "anumate-dev-postgres")
            .unwrap();
        let text = pg.spec.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(pg.spec["secrets"]["POSTGRES_PASSWORD"], "<redacted>");
        assert_eq!(pg.spec["ports"][0], "127.0.0.1:5432:5432/tcp");
        assert_eq!(pg.spec["user"], "postgres");
        assert!(
            pg.spec["files"]["/etc/controlplane/postgresql.conf"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
        let nats = container(&env, &ServiceName::new("nats").unwrap()).unwrap();
        assert_eq!(nats.ports.len(), 2);
        assert_eq!(nats.ports[1].setting, "services.nats.monitor_port");
        assert_eq!(
            nats.secret_env["NATS_APP_PASSWORD"].reference,
            SecretRef::Generate
        );
    }

    #[test]
    fn extras_are_generic() {
        let env = dev(&[
            "extras.echo.image=example/echo:1",
            "extras.echo.command=[/bin/echo-server]",
            "extras.echo.args=[--port, '7000']",
            "extras.echo.ports.http=7000",
            "extras.echo.health.http=http/healthz",
            "extras.echo.env.GREETING=hi",
            "extras.echo.secrets.TOKEN=generate",
            "extras.echo.volumes.state=/var/lib/echo",
        ]);
        let c = container(&env, &ServiceName::new("echo").unwrap()).unwrap();
        assert_eq!(c.name, "anumate-dev-echo");
        assert_eq!(c.entrypoint, Some(vec!["/bin/echo-server".to_owned()]));
        assert_eq!(c.cmd, Some(vec!["--port".to_owned(), "7000".to_owned()]));
        assert_eq!(c.ports[0].setting, "extras.echo.ports.http");
        assert_eq!(c.volumes[0].name, "anumate-dev-echo-state");
        assert_eq!(
            c.probe,
            Probe::Http {
                port: 7000,
                path: "/healthz".into()
            }
        );
        assert_eq!(c.secret_env["TOKEN"].setting, "extras.echo.secrets.TOKEN");
    }

    #[test]
    fn postgres_script_initialises_once_and_refuses_other_majors() {
        let s = postgres_script("15");
        assert!(s.contains("/usr/lib/postgresql/15/bin/initdb"));
        assert!(s.contains("--pwfile=/dev/stdin"));
        assert!(s.contains("exec /usr/lib/postgresql/15/bin/postgres"));
        assert!(s.contains("set services.postgres.version"));
    }
}
