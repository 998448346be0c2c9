//! Rendering: Tera templates + validated environments -> files, byte-identical for the
//! same input.
//!
//! Templates come from the project (`templates/`, `alerts/`, `dashboards/`); their
//! directory decides where the output goes (see [`ROUTES`]). Every output is parsed
//! before it is accepted, so a template that produces broken YAML or JSON is an error
//! naming the template, not a file that fails later in CI. Kubernetes objects are
//! collected and laid out as a Kustomize base plus overlays ([`kustomize`]).

pub mod check;
pub mod context;
pub mod kustomize;
mod monitoring;

use std::collections::BTreeMap;

use serde_json::Value;
use tera::{Context, Kwargs, State, Tera};

use crate::catalog::BOARDS;
use crate::model::Environment;

/// Template sources by name (`templates/kubernetes/deployment.yaml`).
#[derive(Debug, Clone, Default)]
pub struct Templates {
    /// Name to source.
    pub files: BTreeMap<String, String>,
}

/// Rendered files by path relative to the output directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Path to contents.
    pub files: BTreeMap<String, String>,
}

/// A template failed to parse or render, or produced something unparsable.
#[derive(Debug, thiserror::Error)]
#[error("template `{template}`{}: {message}", env.as_ref().map(|e| format!(" (environment {e})")).unwrap_or_default())]
pub struct RenderError {
    /// The template.
    pub template: String,
    /// The environment being rendered, if any.
    pub env: Option<String>,
    /// What went wrong, with the template line where Tera knows it.
    pub message: String,
}

/// Where each template directory's output goes; `{env}` is the environment name.
/// Kubernetes templates are collected into the Kustomize layout instead.
pub const ROUTES: &[(&str, &str)] = &[
    ("templates/compose/", "compose/{env}/"),
    ("templates/prometheus/", "prometheus/{env}/"),
    ("alerts/", "prometheus/{env}/"),
    ("templates/grafana/", "grafana/{env}/provisioning/"),
    ("dashboards/", "grafana/{env}/dashboards/"),
];

const KUBERNETES: &str = "templates/kubernetes/";

/// Which series the memory, CPU, disk and restart alerts read: one catalogue entry
/// each in `alerts/`, two expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Series {
    /// node_exporter's and the scraped processes' own start times: the process
    /// platform and compose (`rendered/prometheus/<env>/`).
    Host,
    /// The kubelet's (cAdvisor, volume stats) and kube-state-metrics': the
    /// PrometheusRule.
    Kubernetes,
}

impl Series {
    fn as_str(self) -> &'static str {
        match self {
            Series::Host => "host",
            Series::Kubernetes => "kubernetes",
        }
    }
}

/// The environment-specific directories of the output (what `render` owns for `env`).
pub fn owned_dirs(env: &str) -> Vec<String> {
    let mut dirs: Vec<String> = ROUTES
        .iter()
        .map(|(_, out)| out.replace("{env}", env))
        .collect();
    dirs.push(format!("kubernetes/overlays/{env}/"));
    dirs.sort();
    dirs.dedup();
    dirs
}

fn tera_message(e: &tera::Error) -> String {
    // Tera's Display gives the report (with the template line); keep the chain too.
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

/// A template engine loaded with a project's templates.
pub struct Renderer {
    tera: Tera,
    names: Vec<String>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("templates", &self.names)
            .finish()
    }
}

fn json_filter(v: tera::Value, _: Kwargs, _: &State) -> tera::TeraResult<String> {
    serde_json::to_string(&v).map_err(|e| tera::Error::message(e.to_string()))
}

/// `value | compose`: JSON (a YAML flow scalar or sequence) with every `$` doubled, the
/// escape Compose reads as a literal `$`: a value from the environment files is never
/// interpolated from the shell of whoever runs `docker compose up`.
fn compose_filter(v: tera::Value, _: Kwargs, _: &State) -> tera::TeraResult<String> {
    serde_json::to_string(&v)
        .map(|s| s.replace('$', "$$"))
        .map_err(|e| tera::Error::message(e.to_string()))
}

/// `"5m" | secs` = 300.
fn secs_filter(v: &str, _: Kwargs, _: &State) -> tera::TeraResult<u64> {
    crate::units::Duration::parse(v)
        .map(|d| d.as_secs())
        .map_err(|e| tera::Error::message(e.to_string()))
}

/// `300 | duration` = `"5m"`.
fn duration_filter(v: i64, _: Kwargs, _: &State) -> tera::TeraResult<String> {
    Ok(crate::units::Duration::from_secs(u64::try_from(v).unwrap_or(0)).to_string())
}

impl Renderer {
    /// Parses every template; a syntax error names the template and its line.
    pub fn new(templates: &Templates) -> Result<Self, RenderError> {
        let mut tera = Tera::new();
        tera.autoescape_on(vec![".html"]);
        tera.register_filter("json", json_filter);
        tera.register_filter("compose", compose_filter);
        tera.register_filter("secs", secs_filter);
        tera.register_filter("duration", duration_filter);
        // Add one at a time so an error names the template it is in.
        for (name, source) in &templates.files {
            tera.add_raw_template(name, source)
                .map_err(|e| RenderError {
                    template: name.clone(),
                    env: None,
                    message: tera_message(&e),
                })?;
        }
        Ok(Self {
            tera,
            names: templates.files.keys().cloned().collect(),
        })
    }

    fn render_one(&self, name: &str, env_name: &str, ctx: &Context) -> Result<String, RenderError> {
        self.tera.render(name, ctx).map_err(|e| RenderError {
            template: name.into(),
            env: Some(env_name.into()),
            message: tera_message(&e),
        })
    }

    fn context(env: &Environment, is_base: bool) -> Context {
        Self::context_for(env, is_base, Series::Host)
    }

    /// The context with the rules' `series` set: `alerts/` templates pick the
    /// expressions of the memory, CPU, disk and restart alerts (and their tests'
    /// input series) by it.
    fn context_for(env: &Environment, is_base: bool, series: Series) -> Context {
        let mut value = context::build(env);
        value["is_base"] = Value::Bool(is_base);
        value["series"] = Value::String(series.as_str().into());
        Context::from_serialize(&value).expect("the context is a JSON object")
    }

    /// The Kubernetes objects of one environment (or of the base).
    pub fn kubernetes_objects(
        &self,
        env: &Environment,
        is_base: bool,
    ) -> Result<Vec<Value>, RenderError> {
        let ctx = Self::context(env, is_base);
        let mut objects = Vec::new();
        for name in self
            .names
            .iter()
            .filter(|n| n.starts_with(KUBERNETES) && !is_partial(n))
        {
            let text = self.render_one(name, env.name.as_str(), &ctx)?;
            let docs: Vec<Value> =
                serde_saphyr::from_str_multiple(&text).map_err(|e| RenderError {
                    template: name.clone(),
                    env: Some(env.name.to_string()),
                    message: format!("produced invalid YAML: {e}"),
                })?;
            for doc in docs.into_iter().filter(|d| !d.is_null()) {
                if kustomize::ObjectKey::of(&doc).is_none() {
                    return Err(RenderError {
                        template: name.clone(),
                        env: Some(env.name.to_string()),
                        message: "produced a document without apiVersion, kind and metadata.name"
                            .into(),
                    });
                }
                objects.push(doc);
            }
        }
        objects.extend(monitoring::kubernetes_objects(self, env)?);
        Ok(objects)
    }

    /// The CloudNativePG `Cluster` a restore of `env`'s PostgreSQL to `target` creates
    /// on Kubernetes: a new Cluster (its name says the target) bootstrapped by
    /// recovery from the environment's Barman Cloud archive, replaying WAL up to
    /// `target`; it archives under its own server name. As `kubectl kustomize` would
    /// apply it (the environment's namespace and label). `None` when the environment
    /// has no point-in-time recovery on Kubernetes.
    pub fn pitr_recovery_cluster(
        &self,
        env: &Environment,
        target: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Value>, RenderError> {
        let mut value = context::build(env);
        if value["cnpg"]["pitr"].is_null() {
            return Ok(None);
        }
        let name = pitr_recovery_name(target);
        value["is_base"] = Value::Bool(false);
        value["series"] = Value::String(Series::Host.as_str().into());
        value["recovery"] = serde_json::json!({
            "name": name,
            "server_name": format!("{}-{name}", env.name),
            // PostgreSQL's own timestamp form, in UTC, as recovery_target_time takes it.
            "target_time": target.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
        });
        let ctx = Context::from_serialize(&value).expect("the context is a JSON object");
        let template = format!("{KUBERNETES}postgres.yaml");
        let text = self.render_one(&template, env.name.as_str(), &ctx)?;
        let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text).map_err(|e| RenderError {
            template: template.clone(),
            env: Some(env.name.to_string()),
            message: format!("produced invalid YAML: {e}"),
        })?;
        let wanted = kustomize::index(
            &docs
                .into_iter()
                .filter(|d| d["kind"] == "Cluster")
                .collect::<Vec<_>>(),
        );
        Ok(
            kustomize::expected_overlay_output(env.name.as_str(), &env.namespace, &wanted)
                .into_iter()
                .next(),
        )
    }

    /// Everything for `envs`: per-environment files, the Kustomize base (from `base`)
    /// and one overlay per environment.
    pub fn render(&self, base: &Environment, envs: &[Environment]) -> Result<Output, RenderError> {
        let mut out = Output::default();
        let base_objects = kustomize::index(&self.kubernetes_objects(base, true)?);
        out.files.extend(kustomize::base_files(&base_objects));
        for env in envs {
            let objects = kustomize::index(&self.kubernetes_objects(env, false)?);
            out.files.extend(kustomize::overlay_files(
                env.name.as_str(),
                &env.namespace,
                &base_objects,
                &objects,
            ));
            out.files.extend(self.env_files(env)?);
        }
        Ok(out)
    }

    /// The non-Kubernetes files of one environment.
    pub fn env_files(&self, env: &Environment) -> Result<BTreeMap<String, String>, RenderError> {
        self.env_files_in(env, "")
    }

    /// The non-Kubernetes files of one environment whose output path starts with
    /// `prefix` (`prometheus/dev/`), rendering only those: what the process driver
    /// needs to run the monitoring stack, exactly as `render` writes it.
    pub fn env_files_in(
        &self,
        env: &Environment,
        prefix: &str,
    ) -> Result<BTreeMap<String, String>, RenderError> {
        self.files_with(env, prefix, &Self::context(env, false))
    }

    /// The rule files and their promtool tests (`prometheus/<env>/` from `alerts/`) as
    /// the Kubernetes PrometheusRule carries them: the memory, CPU, disk and restart
    /// alerts read the kubelet's and kube-state-metrics' series there instead of
    /// node_exporter's. Not written by `render` (the PrometheusRule is); the monitoring
    /// tests run promtool on them.
    pub fn kubernetes_rule_files(
        &self,
        env: &Environment,
    ) -> Result<BTreeMap<String, String>, RenderError> {
        let ctx = Self::context_for(env, false, Series::Kubernetes);
        let files = self.files_with(env, &format!("prometheus/{}/", env.name), &ctx)?;
        Ok(files
            .into_iter()
            .filter(|(k, _)| {
                let f = k.rsplit('/').next().unwrap_or(k);
                k.contains("/tests/") || f == "alerts.yaml" || f == "recording.yaml"
            })
            .collect())
    }

    fn files_with(
        &self,
        env: &Environment,
        prefix: &str,
        ctx: &Context,
    ) -> Result<BTreeMap<String, String>, RenderError> {
        let mut files = BTreeMap::new();
        for name in &self.names {
            if is_partial(name) {
                continue;
            }
            let Some((from, out_dir)) = ROUTES.iter().find(|(p, _)| name.starts_with(p)) else {
                continue;
            };
            let file = &name[from.len()..];
            if from.starts_with("dashboards") && !board_enabled(env, file) {
                continue;
            }
            let out = format!("{}{file}", out_dir.replace("{env}", env.name.as_str()));
            if !out.starts_with(prefix) {
                continue;
            }
            let text = self.render_one(name, env.name.as_str(), ctx)?;
            if text.trim().is_empty() {
                continue;
            }
            let text = canonical(name, env, text)?;
            files.insert(out, text);
        }
        Ok(files)
    }
}

/// The name of the Cluster a restore to `target` creates: `postgres-pitr-` and the
/// target's UTC time to the second (`postgres-pitr-20261207t173000`), a DNS label.
pub fn pitr_recovery_name(target: chrono::DateTime<chrono::Utc>) -> String {
    format!("postgres-pitr-{}", target.format("%Y%m%dt%H%M%S"))
}

fn is_partial(name: &str) -> bool {
    name.rsplit('/').next().is_some_and(|f| f.starts_with('_'))
}

/// Catalogue dashboards follow the environment's switches; your own always render.
fn board_enabled(env: &Environment, file: &str) -> bool {
    let stem = file.split('.').next().unwrap_or(file);
    if !env.dashboards.enabled {
        return false;
    }
    if BOARDS.iter().any(|b| b.name == stem) {
        env.dashboards.boards.contains_key(stem)
    } else {
        true
    }
}

/// Checks the output parses; JSON is re-emitted pretty so formatting is ours, not the
/// template's whitespace.
fn canonical(name: &str, env: &Environment, text: String) -> Result<String, RenderError> {
    let err = |message: String| RenderError {
        template: name.into(),
        env: Some(env.name.to_string()),
        message,
    };
    if name.ends_with(".json") {
        let v: Value =
            serde_json::from_str(&text).map_err(|e| err(format!("produced invalid JSON: {e}")))?;
        let mut pretty = serde_json::to_string_pretty(&v).expect("values serialize");
        pretty.push('\n');
        return Ok(pretty);
    }
    if name.ends_with(".yaml") || name.ends_with(".yml") {
        serde_saphyr::from_str_multiple::<Value, Vec<Value>>(&text)
            .map_err(|e| err(format!("produced invalid YAML: {e}")))?;
    }
    let mut text = text;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}
