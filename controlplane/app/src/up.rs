//! The executor of a whole-environment plan: `up` applies exactly the steps the plan
//! shows (fresh, or saved with `plan --out` and checked again by [`check_saved`]),
//! layer by layer. A layer the plan deferred because its services were not running is
//! planned once they answer, as the plan said it would be; nothing is re-planned
//! behind the user's back.

use std::time::Duration;

use cp_core::envplan::{LayerState, SavedPlan};
use cp_core::names::ServiceName;
use cp_core::plan::{Action, Layer};
use cp_drivers::Driver;
use cp_drivers::engine::{self, Progress};
use cp_seed::{Access, layers};
use serde_json::json;

use crate::driver::{AnyDriver, CHOICE_FILE};
use crate::error::AppError;
use crate::session::Session;
use crate::views::{LayerOutcome, UpView};

/// How `up` runs.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Only these services and what they need (empty: everything).
    pub services: Vec<ServiceName>,
    /// Give up when services are not ready after this long.
    pub timeout: Duration,
    /// Seed after bring-up.
    pub seed: bool,
    /// First take a backup set of the stateful services the plan touches, and apply
    /// nothing if it fails (`up --backup`).
    pub backup: bool,
}

/// The running stateful services `plan` would change: a platform step on one of them
/// other than creating it (there is nothing to back up yet), or a seeded layer with
/// steps on its services.
pub fn touched(plan: &SavedPlan) -> Vec<cp_core::names::CoreKind> {
    use cp_core::names::CoreKind;
    let mut out: Vec<CoreKind> = Vec::new();
    for l in &plan.plan.layers {
        for st in &l.plan.steps {
            let kinds: Vec<CoreKind> = match l.layer {
                Layer::Platform => st
                    .service
                    .as_ref()
                    .and_then(|s| CoreKind::from_name(s.as_str()))
                    .filter(|_| !matches!(st.action, Action::Create))
                    .into_iter()
                    .collect(),
                Layer::Backups => Vec::new(),
                other => layers::services(other).to_vec(),
            };
            for k in kinds {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
    }
    out.sort();
    out
}

/// Receives what `up` does: the platform engine's events, and one line per seeded
/// change or planning note.
pub trait UpProgress: Progress {
    /// A line about a seeded layer.
    fn layer(&self, layer: Layer, line: &str);
}

/// Ignores everything.
#[derive(Debug)]
pub struct Quiet;

impl Progress for Quiet {
    fn event(&self, _: engine::Event) {}
}

impl UpProgress for Quiet {
    fn layer(&self, _: Layer, _: &str) {}
}

/// Checks that a saved plan still describes the world: same environment and version,
/// and nothing it was computed from has moved. Plans afresh (read-only) to compare.
pub async fn check_saved(s: &Session, saved: &SavedPlan, file: &str) -> Result<(), AppError> {
    if saved.plan.environment != s.env.name.as_str() {
        return Err(AppError::Usage(format!(
            "{file} is a plan for `{}`, not `{}`; pass --env {}",
            saved.plan.environment, s.env.name, saved.plan.environment
        )));
    }
    if saved.plan.format != cp_core::envplan::PLAN_FORMAT {
        return Err(AppError::Usage(format!(
            "{file} has plan format {}, this controlplane reads {}; make the plan again",
            saved.plan.format,
            cp_core::envplan::PLAN_FORMAT
        )));
    }
    let now = crate::plan::plan(s).await?;
    let mut moved = saved.moved(&now.basis);
    if saved.plan.driver != now.plan.driver {
        moved.insert(
            0,
            format!(
                "the platform driver was {} when planned and is {} now",
                saved.plan.driver, now.plan.driver
            ),
        );
    }
    if moved.is_empty() {
        Ok(())
    } else {
        Err(AppError::StalePlan {
            file: file.to_owned(),
            moved,
        })
    }
}

/// What `up --reinitialise <service>...` would lose, one line per service, for the
/// confirmation. Refuses (usage, nothing touched) a service that is not enabled, or
/// whose data is present and complete: re-initialising only ever replaces data that
/// is already gone (`plan` shows it as "data missing") or a Vault whose first
/// initialisation was interrupted. Read-only.
pub async fn reinitialise_preview(
    s: &Session,
    kinds: &[cp_core::names::CoreKind],
) -> Result<Vec<String>, AppError> {
    use cp_core::names::CoreKind;
    let vanished = s.driver.vanished(s.cx()).await?;
    let mut out = Vec::new();
    for &kind in kinds {
        if s.env.services.common(kind).is_none() {
            return Err(AppError::Usage(format!(
                "--reinitialise {kind}: {kind} is not enabled in {}",
                s.env.name
            )));
        }
        let svc = ServiceName::core(kind);
        if vanished.iter().any(|v| v.service == svc) {
            out.push(format!(
                "everything {kind} held (its data is already missing): it starts empty, and is seeded again"
            ));
        } else if kind == CoreKind::Vault && crate::plan::vault_interrupted(s)?.is_some() {
            out.push(
                "vault's interrupted first initialisation: its data directory and the keys it may have shown"
                    .into(),
            );
        } else {
            return Err(AppError::Usage(format!(
                "--reinitialise {kind}: {kind}'s data is present, so there is nothing to re-initialise \
                 (it only replaces data that is missing); to delete its data, use `controlplane down --volumes`"
            )));
        }
    }
    Ok(out)
}

/// Re-initialises `kinds` after the user confirmed [`reinitialise_preview`]: the
/// driver removes what is left of their data and forgets that they were initialised,
/// so the plan made next creates them empty. Returns what was removed.
pub async fn reinitialise(
    s: &Session,
    kinds: &[cp_core::names::CoreKind],
) -> Result<Vec<String>, AppError> {
    let mut removed = Vec::new();
    for &kind in kinds {
        removed.extend(
            s.driver
                .reinitialise(s.cx(), &ServiceName::core(kind))
                .await?,
        );
    }
    Ok(removed)
}

/// The layers `--service` touches: those whose services are all selected.
fn in_scope(layer: Layer, selected: &[ServiceName]) -> bool {
    selected.is_empty()
        || layers::services(layer)
            .iter()
            .all(|k| selected.contains(&ServiceName::core(*k)))
}

/// Applies `plan`: refuses blocked steps before touching anything, brings the platform
/// up (every service answering a real request), then seeds each layer with the plan's
/// steps (deferred layers planned now), tenants last.
pub async fn up(
    s: &Session,
    plan: &SavedPlan,
    opts: &UpOptions,
    progress: &dyn UpProgress,
) -> Result<UpView, AppError> {
    let selected = if opts.services.is_empty() {
        Vec::new()
    } else {
        s.env.with_dependencies(&opts.services)
    };
    let blocked: Vec<String> = plan
        .plan
        .layers
        .iter()
        .filter(|l| l.layer == Layer::Platform || in_scope(l.layer, &selected))
        .flat_map(|l| l.plan.steps.iter().map(move |st| (l.layer, st)))
        .filter_map(|(layer, st)| match &st.action {
            Action::Blocked { reason, .. } => Some(format!("{layer}: {}: {reason}", st.id)),
            _ => None,
        })
        .collect();
    if !blocked.is_empty() {
        return Err(AppError::Blocked { steps: blocked });
    }
    if opts.backup {
        let kinds: Vec<_> = touched(plan)
            .into_iter()
            .filter(|k| {
                s.env
                    .backup
                    .as_ref()
                    .is_some_and(|b| b.services.contains(k))
            })
            .collect();
        if !kinds.is_empty() {
            let view = crate::backup::backup(s, &kinds, None, &cp_backup::run::Quiet).await?;
            if !view.report.ok() {
                let failed: Vec<String> = view
                    .report
                    .services
                    .iter()
                    .filter(|l| !l.ok)
                    .map(|l| format!("{}: {}", l.service, l.error.clone().unwrap_or_default()))
                    .chain(view.report.destinations.iter().filter(|d| !d.ok).map(|d| {
                        format!(
                            "destination {}: {}",
                            d.destination,
                            d.error.clone().unwrap_or_default()
                        )
                    }))
                    .collect();
                return Err(AppError::BackupFirst {
                    id: view.report.id.to_string(),
                    failed,
                });
            }
            progress.layer(
                Layer::Backups,
                &format!(
                    "backed up {} as {} before applying",
                    kinds
                        .iter()
                        .map(|k| k.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    view.report.id
                ),
            );
        }
    }
    s.state
        .write(CHOICE_FILE, s.driver.name().as_bytes(), 0o644)?;
    let report = engine::apply(
        &s.driver,
        s.cx(),
        &plan.steps(Layer::Platform),
        &opts.services,
        opts.timeout,
        progress,
    )
    .await?;
    let mut view = UpView {
        environment: s.env.name.to_string(),
        driver: s.driver.name().to_owned(),
        platform_steps: report.plan.steps.len(),
        ready: report
            .ready
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        elapsed_ms: report.elapsed_ms,
        layers: Vec::new(),
        revoked_root_token: false,
    };
    if !opts.seed {
        return Ok(view);
    }
    if matches!(s.driver, AnyDriver::Kube(_)) {
        // The services answer inside the cluster only; seeding from here needs a
        // port-forward per service, which `up` does not open on its own.
        for layer in layers::SEEDED
            .into_iter()
            .filter(|l| layers::used(*l, &s.env))
        {
            view.layers.push(LayerOutcome {
                layer,
                planned: "skipped".into(),
                skipped: Some(
                    "services answer only inside the cluster: run `controlplane seed` with port-forwards, or from inside the cluster".into(),
                ),
                changes: Vec::new(),
            });
        }
        return Ok(view);
    }
    let access = s.access().await?;
    let first = [Layer::Database, Layer::Streams, Layer::Cache, Layer::Vault];
    let results = futures::future::join_all(
        first
            .iter()
            .map(|l| seed_layer(s, &access, plan, *l, &selected, progress)),
    )
    .await;
    let mut reports = Vec::new();
    for r in results {
        if let Some((outcome, report)) = r? {
            view.layers.push(outcome);
            reports.push(report);
        }
    }
    if let Some((outcome, report)) =
        seed_layer(s, &access, plan, Layer::Tenants, &selected, progress).await?
    {
        view.layers.push(outcome);
        reports.push(report);
    }
    let outcome = cp_seed::finish(&access, &s.env, reports).await?;
    view.revoked_root_token = outcome.revoked_root_token;
    if let Some(n) = &access.nats {
        let p = cp_seed::events::Publisher::connect(n, s.env.name.as_str())
            .await
            .map_err(cp_seed::SeedError::from)?;
        p.publish(cp_seed::events::Event::new(
            "up.completed",
            json!({"environment": s.env.name.as_str(), "changed": view.changed()}),
        ))
        .await
        .map_err(cp_seed::SeedError::from)?;
    }
    Ok(view)
}

async fn seed_layer(
    s: &Session,
    access: &Access,
    plan: &SavedPlan,
    layer: Layer,
    selected: &[ServiceName],
    progress: &dyn UpProgress,
) -> Result<Option<(LayerOutcome, cp_seed::Report)>, AppError> {
    if !layers::used(layer, &s.env) || !in_scope(layer, selected) {
        return Ok(None);
    }
    let state = plan.plan.layer(layer).map(|l| &l.observation);
    let (steps, planned) = match state {
        Some(LayerState::Observed) => (plan.steps(layer), "plan"),
        _ => {
            // Deferred when planned: its services answer now, so plan it.
            let mut r = cp_seed::Report::new(cp_seed::layer_service(layer));
            let o = layers::observe(layer, access, &s.env, &mut r).await?;
            if !o.plan.is_empty() {
                progress.layer(
                    layer,
                    &format!(
                        "planned now that it answers: {} step(s)",
                        o.plan.steps.len()
                    ),
                );
            }
            if o.plan.is_blocked() {
                let steps = o
                    .plan
                    .steps
                    .iter()
                    .filter_map(|st| match &st.action {
                        Action::Blocked { reason, .. } => {
                            Some(format!("{layer}: {}: {reason}", st.id))
                        }
                        _ => None,
                    })
                    .collect();
                return Err(AppError::Blocked { steps });
            }
            (o.plan, "up")
        }
    };
    let mut report = layers::apply(
        layer,
        access,
        &s.env,
        &steps,
        &cp_seed::nats::Options::default(),
    )
    .await?;
    report.service = cp_seed::layer_service(layer);
    for c in &report.changes {
        progress.layer(layer, c);
    }
    Ok(Some((
        LayerOutcome {
            layer,
            planned: planned.into(),
            skipped: None,
            changes: report.changes.clone(),
        },
        report,
    )))
}
