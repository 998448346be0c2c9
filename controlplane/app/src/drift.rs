//! The drift watch: the whole-environment plan ([`crate::plan`]) turned into a
//! [`DriftView`] (per layer and resource, with since when each difference has been
//! seen), run as a job ([`crate::jobs`]) on `drift.schedule` by `serve` and once by
//! `controlplane drift`. What the last checks found is kept in [`Watch`]: the gauges
//! read it at scrape time ([`crate::metrics`]), the console shows it, and a change of
//! the drift state is posted to `drift.webhook_url` once (scheduled checks only).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use cp_core::envplan::LayerState;
use cp_core::plan::{Action, Layer};

use crate::error::AppError;
use crate::jobs::{Job as JobCell, push};
use crate::session::Session;
use crate::views::drift::{DriftView, DriftedResource, LayerDriftView};
use crate::views::jobs::{Event, Trigger};
use crate::views::rfc3339;

/// What the checks of one environment found.
#[derive(Debug, Clone, Default)]
pub struct EnvDrift {
    /// The last successful check.
    pub last: Option<DriftView>,
    /// When the last successful check ran.
    pub last_success: Option<DateTime<Utc>>,
    /// Why the last check failed, when it did.
    pub last_error: Option<String>,
    /// Checks failed in a row.
    pub failures: u32,
}

/// The drift of every environment checked in this process.
#[derive(Debug, Default)]
pub struct Watch(Mutex<BTreeMap<String, EnvDrift>>);

impl Watch {
    /// What the checks of `env` found.
    pub fn get(&self, env: &str) -> EnvDrift {
        self.0
            .lock()
            .expect("drift lock")
            .get(env)
            .cloned()
            .unwrap_or_default()
    }

    /// Every environment checked.
    pub fn all(&self) -> BTreeMap<String, EnvDrift> {
        self.0.lock().expect("drift lock").clone()
    }

    /// Records a successful check; true when the drift state changed (drifted or
    /// not, or which resources differ). The first check is a change only when it
    /// finds drift.
    fn record(&self, view: &DriftView) -> bool {
        let mut all = self.0.lock().expect("drift lock");
        let e = all.entry(view.environment.clone()).or_default();
        let key = |v: &DriftView| {
            v.resources
                .iter()
                .map(|r| (r.layer, r.resource.clone(), r.action.clone()))
                .collect::<Vec<_>>()
        };
        let changed = match &e.last {
            None => view.drifted,
            Some(prev) => prev.drifted != view.drifted || key(prev) != key(view),
        };
        e.last = Some(view.clone());
        e.last_success = Some(Utc::now());
        e.last_error = None;
        e.failures = 0;
        changed
    }

    /// Records a check that failed (or could not start).
    pub(crate) fn failed(&self, env: &str, error: String) {
        let mut all = self.0.lock().expect("drift lock");
        let e = all.entry(env.to_owned()).or_default();
        e.last_error = Some(error);
        e.failures += 1;
    }

    /// When each resource of `env` was first seen differing, by the last check.
    fn since(&self, env: &str) -> BTreeMap<(Layer, String, String), String> {
        self.get(env)
            .last
            .map(|v| {
                v.resources
                    .into_iter()
                    .map(|r| ((r.layer, r.resource, r.action), r.since))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn action(a: &Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Start { .. } => "start",
        Action::Update { .. } => "update",
        Action::Replace { .. } => "replace",
        Action::Delete => "delete",
        Action::Blocked { .. } => "blocked",
    }
}

/// Plans the environment of `session` and says what drifted, as a job's work.
pub(crate) async fn check(
    session: &Session,
    job: &Arc<JobCell>,
    watch: &Watch,
    trigger: Trigger,
) -> Result<DriftView, AppError> {
    let env = session.env().name.to_string();
    let started = Instant::now();
    let saved = match crate::plan::plan(session).await {
        Ok(p) => p,
        Err(e) => {
            watch.failed(&env, e.chain());
            return Err(e);
        }
    };
    let plan_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let now = rfc3339(Utc::now());
    let since = watch.since(&env);
    let mut layers = Vec::new();
    let mut resources = Vec::new();
    for l in &saved.plan.layers {
        let (observation, deferred) = match &l.observation {
            LayerState::Observed => ("observed", None),
            LayerState::Deferred { reason, .. } => ("deferred", Some(reason.clone())),
            LayerState::Absent => ("absent", None),
        };
        let blocked = l
            .plan
            .steps
            .iter()
            .filter(|s| matches!(s.action, Action::Blocked { .. }))
            .count();
        let pending = l.plan.steps.len() - blocked;
        for s in &l.plan.steps {
            let key = (l.layer, s.id.to_string(), action(&s.action).to_owned());
            let first = since.get(&key).cloned().unwrap_or_else(|| now.clone());
            resources.push(DriftedResource {
                layer: key.0,
                resource: key.1,
                action: key.2,
                since: first,
            });
        }
        push(
            job,
            Event::Checked {
                layer: l.layer,
                pending,
                blocked,
                deferred: deferred.clone(),
            },
        );
        layers.push(LayerDriftView {
            layer: l.layer,
            observation: observation.to_owned(),
            pending,
            blocked,
            deferred,
        });
    }
    // Keys and passwords past their rotation period: `controlplane rotate` (or the
    // rotation schedule) changes them.
    for d in &saved.plan.rotation_due {
        let layer = match d.name.as_str() {
            n if n.starts_with("services.postgres.") => Layer::Database,
            n if n.starts_with("services.redis.") => Layer::Cache,
            _ => Layer::Vault,
        };
        let key = (layer, format!("{} {}", d.kind, d.name), "rotate".to_owned());
        let first = since.get(&key).cloned().unwrap_or_else(|| now.clone());
        resources.push(DriftedResource {
            layer: key.0,
            resource: key.1,
            action: key.2,
            since: first,
        });
    }
    let view = DriftView {
        environment: env,
        drifted: !resources.is_empty(),
        checked_at: now,
        plan_ms,
        layers,
        resources,
    };
    let changed = watch.record(&view);
    if changed
        && trigger.scheduled()
        && let Some(url) = &session.env().drift.webhook_url
    {
        notify(session, url, &view).await;
    }
    Ok(view)
}

/// Posts `view` to the webhook. A failure is logged, never the check's failure: the
/// gauges and the alert still say what drifted.
async fn notify(session: &Session, url: &cp_core::units::SecretRef, view: &DriftView) {
    let url = match session.secrets().resolve("drift.webhook_url", url).await {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(env = %view.environment, error = %cp_runtime::error::chain(&e), "the drift webhook's URL cannot be resolved");
            return;
        }
    };
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    match client.post(url.expose()).json(view).send().await {
        Ok(r) if r.status().is_success() => {
            tracing::info!(env = %view.environment, drifted = view.drifted, "drift summary posted to the webhook");
        }
        Ok(r) => {
            tracing::warn!(env = %view.environment, status = %r.status(), "the drift webhook refused the summary");
        }
        Err(e) => {
            // reqwest's errors name the URL, which is a secret: say only what kind.
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "could not connect"
            } else {
                "failed"
            };
            tracing::warn!(env = %view.environment, "posting the drift summary to the webhook {kind}");
        }
    }
}
