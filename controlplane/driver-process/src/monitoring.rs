//! The monitoring stack as local processes, from the Debian packages: Prometheus
//! (`prometheus`), Alertmanager (`prometheus-alertmanager`), postgres_exporter and
//! redis_exporter (`prometheus-postgres-exporter`, `prometheus-redis-exporter`),
//! node_exporter (`prometheus-node-exporter`: the host's memory, CPU and disks, which
//! the memory, CPU and disk alerts read off Kubernetes).
//! prometheus-nats-exporter has no Debian package: `controlplane exporter nats`
//! (this very binary) takes its place under the same service name, port and metric
//! names. Grafana has no Debian package either and is not run here (`status` says so).
//!
//! Configuration is rendered from the project's templates by the same renderer as
//! `controlplane render` (`prometheus.process.yaml`, `recording.yaml`, `alerts.yaml`,
//! `alertmanager.yaml` of `rendered/prometheus/<env>/`), so what runs is what the
//! committed output shows. One change on the way: Debian's Alertmanager 0.25 predates
//! `url_file`, so the webhook URL (a secret) is written in place of that line into
//! the driver's private copy (mode 0600); plans show `url: <monitoring.webhook_url>`.
//!
//! Every process listens on 127.0.0.1 only; Alertmanager's cluster listener (by
//! default on every interface) is switched off.
//!
//! Pure: computed from the model, the rendered files and the state directory's path.

use std::collections::BTreeMap;
use std::path::Path;

use cp_core::Environment;
use cp_core::model::Component;
use cp_core::names::CoreKind;
use cp_core::render::context::ALERTMANAGER_WEBHOOK_URL_FILE;
use cp_core::serverconf::REDIS_ADMIN_USER;
use cp_core::units::SecretRef;

use crate::service::{ConfigFile, FileSecret, Launch, Program, SecretVar};

/// A part of the monitoring stack this driver runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Monitor {
    /// Prometheus.
    Prometheus,
    /// Alertmanager.
    Alertmanager,
    /// postgres_exporter.
    PostgresExporter,
    /// redis_exporter.
    RedisExporter,
    /// `controlplane exporter nats`.
    NatsExporter,
    /// node_exporter.
    NodeExporter,
}

/// Why Grafana is not run on this platform.
pub(crate) const GRAFANA_SKIPPED: &str =
    "has no Debian package; Grafana runs on docker or kubernetes";

/// Where the process driver gets its rendered configuration: the project's
/// templates, as `controlplane render` renders them.
pub(crate) type Rendered = BTreeMap<String, String>;

impl Monitor {
    /// The service name (and directory).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Monitor::Prometheus => "prometheus",
            Monitor::Alertmanager => "alertmanager",
            Monitor::PostgresExporter => "postgres-exporter",
            Monitor::RedisExporter => "redis-exporter",
            Monitor::NatsExporter => "nats-exporter",
            Monitor::NodeExporter => "node-exporter",
        }
    }

    /// The key under `monitoring`.
    fn key(self) -> &'static str {
        match self {
            Monitor::Prometheus => "prometheus",
            Monitor::Alertmanager => "alertmanager",
            Monitor::PostgresExporter => "postgres_exporter",
            Monitor::RedisExporter => "redis_exporter",
            Monitor::NatsExporter => "nats_exporter",
            Monitor::NodeExporter => "node_exporter",
        }
    }

    /// The core service an exporter reads.
    pub(crate) fn target(self) -> Option<CoreKind> {
        match self {
            Monitor::PostgresExporter => Some(CoreKind::Postgres),
            Monitor::RedisExporter => Some(CoreKind::Redis),
            Monitor::NatsExporter => Some(CoreKind::Nats),
            Monitor::Prometheus | Monitor::Alertmanager | Monitor::NodeExporter => None,
        }
    }

    /// Readiness: the path that answers 2xx once it serves, and the metric whose
    /// `version` label says what runs.
    pub(crate) fn readiness(self) -> (&'static str, &'static str) {
        match self {
            Monitor::Prometheus => ("/-/ready", "prometheus_build_info"),
            Monitor::Alertmanager => ("/-/ready", "alertmanager_build_info"),
            Monitor::PostgresExporter => ("/metrics", "postgres_exporter_build_info"),
            Monitor::RedisExporter => ("/metrics", "redis_exporter_build_info"),
            Monitor::NatsExporter => ("/metrics", "controlplane_exporter_build_info"),
            Monitor::NodeExporter => ("/metrics", "node_exporter_build_info"),
        }
    }

    /// Its settings, when `env` runs it: enabled, and for an exporter, its service too.
    pub(crate) fn component(self, env: &Environment) -> Option<&Component> {
        let m = env.monitoring.as_ref()?;
        let c = match self {
            Monitor::Prometheus => &m.prometheus,
            Monitor::Alertmanager => &m.alertmanager,
            Monitor::PostgresExporter => &m.postgres_exporter,
            Monitor::RedisExporter => &m.redis_exporter,
            Monitor::NatsExporter => &m.nats_exporter,
            Monitor::NodeExporter => &m.node_exporter,
        };
        match self.target() {
            Some(k) if env.services.common(k).is_none() => None,
            _ => c.as_ref(),
        }
    }
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// Why the monitoring stack's configuration is not there.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The driver was made without templates.
    #[error(
        "the process driver was given no templates to render the monitoring configuration from"
    )]
    NoTemplates,
    /// The templates did not render.
    #[error("cannot render the monitoring configuration of {env}")]
    Render {
        /// The environment.
        env: String,
        /// Why (shared: one rendering serves every unit).
        #[source]
        source: std::sync::Arc<cp_core::render::RenderError>,
    },
    /// A file the stack needs was not rendered.
    #[error(
        "the templates render no prometheus/{env}/{name} (templates/prometheus/ or alerts/ is missing a file)"
    )]
    MissingFile {
        /// The environment.
        env: String,
        /// The file.
        name: String,
    },
}

/// The rendered file `name` of `env` (`prometheus/<env>/<name>`).
fn rendered(files: &Rendered, env: &Environment, name: &str) -> Result<String, ConfigError> {
    files
        .get(&format!("prometheus/{}/{name}", env.name))
        .cloned()
        .ok_or_else(|| ConfigError::MissingFile {
            env: env.name.to_string(),
            name: name.to_owned(),
        })
}

/// How `m` runs in `env`, its directory being `dir`; `Ok(None)` when `env` does not
/// run it. `files` are the environment's rendered `prometheus/<env>/` files.
pub(crate) fn launch(
    dir: &Path,
    env: &Environment,
    m: Monitor,
    files: &Rendered,
) -> Result<Option<Launch>, ConfigError> {
    let Some(c) = m.component(env) else {
        return Ok(None);
    };
    let listen = format!("127.0.0.1:{}", c.port);
    let mut l = Launch {
        version: None,
        program: Program::Path(String::new()),
        args: Vec::new(),
        files: Vec::new(),
        ports: vec![(c.port, format!("monitoring.{}.port", m.key()))],
        secrets: Vec::new(),
        env: Vec::new(),
        dirs: Vec::new(),
        tls: false,
    };
    let file = |name: &'static str, text: String| ConfigFile {
        name,
        text,
        secret: None,
    };
    match m {
        Monitor::Prometheus => {
            l.program = Program::Path("prometheus".into());
            l.args = vec![
                format!("--config.file={}", path_str(&dir.join("prometheus.yml"))),
                format!("--storage.tsdb.path={}", path_str(&dir.join("data"))),
                format!("--web.listen-address={listen}"),
            ];
            // The rule files sit beside the configuration, which names them
            // relative to itself, as in rendered/prometheus/<env>/.
            l.files = vec![
                file(
                    "prometheus.yml",
                    rendered(files, env, "prometheus.process.yaml")?,
                ),
                file("recording.yaml", rendered(files, env, "recording.yaml")?),
                file("alerts.yaml", rendered(files, env, "alerts.yaml")?),
            ];
            l.dirs = vec!["data"];
        }
        Monitor::Alertmanager => {
            l.program = Program::Path("prometheus-alertmanager".into());
            l.args = vec![
                format!("--config.file={}", path_str(&dir.join("alertmanager.yml"))),
                format!("--storage.path={}", path_str(&dir.join("data"))),
                format!("--web.listen-address={listen}"),
                // Off: it would listen on every interface (0.0.0.0:9094).
                "--cluster.listen-address=".into(),
            ];
            let text = rendered(files, env, "alertmanager.yaml")?;
            let webhook = env.monitoring.as_ref().and_then(|m| m.webhook_url.clone());
            l.files = vec![alertmanager_file(text, webhook)];
            l.dirs = vec!["data"];
        }
        Monitor::PostgresExporter => {
            let pg = env
                .services
                .postgres
                .as_ref()
                .expect("checked by component");
            l.program = Program::Path("prometheus-postgres-exporter".into());
            l.args = vec![format!("--web.listen-address={listen}")];
            // The read-only role, as on every platform (it exists once seeded; until
            // then the exporter reports pg_up 0).
            l.env = vec![
                (
                    "DATA_SOURCE_URI",
                    format!(
                        "127.0.0.1:{}/{}?sslmode=disable",
                        pg.common.port, pg.database
                    ),
                ),
                ("DATA_SOURCE_USER", cp_core::roles::READONLY.to_owned()),
            ];
            l.secrets = vec![SecretVar {
                var: "DATA_SOURCE_PASS".into(),
                setting: "services.postgres.readonly_password".into(),
                reference: pg.readonly_password.clone(),
            }];
        }
        Monitor::RedisExporter => {
            let r = env.services.redis.as_ref().expect("checked by component");
            l.program = Program::Path("prometheus-redis-exporter".into());
            l.args = vec![
                format!("-web.listen-address={listen}"),
                format!("-redis.addr=redis://127.0.0.1:{}", r.common.port),
                format!("-redis.user={REDIS_ADMIN_USER}"),
            ];
            l.secrets = vec![SecretVar {
                var: "REDIS_PASSWORD".into(),
                setting: "services.redis.admin_password".into(),
                reference: r.admin_password.clone(),
            }];
        }
        Monitor::NodeExporter => {
            l.program = Program::Path("prometheus-node-exporter".into());
            l.args = vec![format!("--web.listen-address={listen}")];
        }
        Monitor::NatsExporter => {
            let n = env.services.nats.as_ref().expect("checked by component");
            l.program = Program::Controlplane;
            // A new controlplane restarts its exporter.
            l.version = Some(env!("CARGO_PKG_VERSION").into());
            l.args = vec![
                "exporter".into(),
                "nats".into(),
                "--listen".into(),
                listen,
                "--monitor".into(),
                format!("http://127.0.0.1:{}", n.monitor_port),
            ];
        }
    }
    Ok(Some(l))
}

/// The placeholder a plan shows for the webhook URL.
const WEBHOOK_TOKEN: &str = "<monitoring.webhook_url>";

/// alertmanager.yaml with `url_file: <file>` turned into `url: <the URL>`, filled in
/// when written (see [`FileSecret`]).
fn alertmanager_file(text: String, webhook: Option<SecretRef>) -> ConfigFile {
    let line = format!("url_file: {ALERTMANAGER_WEBHOOK_URL_FILE}");
    match webhook {
        Some(reference) if text.contains(&line) => ConfigFile {
            name: "alertmanager.yml",
            text: text.replace(&line, &format!("url: {WEBHOOK_TOKEN}")),
            secret: Some(FileSecret {
                token: WEBHOOK_TOKEN,
                setting: "monitoring.webhook_url",
                reference,
            }),
        },
        _ => ConfigFile {
            name: "alertmanager.yml",
            text,
            secret: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_webhook_url_is_a_placeholder_until_written() {
        let text = format!(
            "receivers:\n  - name: webhook\n    webhook_configs:\n      - url_file: {ALERTMANAGER_WEBHOOK_URL_FILE}\n        send_resolved: true\n"
        );
        let f = alertmanager_file(text.clone(), Some(SecretRef::Generate));
        assert!(
            f.text.contains("- url: <monitoring.webhook_url>"),
            "{}",
            f.text
        );
        assert!(!f.text.contains("url_file"));
        let s = f.secret.as_ref().unwrap();
        assert_eq!(
            s.fill(&f.text, "http://127.0.0.1:9/hook?a=\"b\""),
            f.text.replace(
                "<monitoring.webhook_url>",
                "\"http://127.0.0.1:9/hook?a=\\\"b\\\"\""
            )
        );
        // Without a webhook, the file is what was rendered.
        assert_eq!(alertmanager_file(text.clone(), None).text, text);
    }
}
