//! The engine: plan, then apply, the same way for every driver.
//!
//! `up` refuses a blocked plan before touching anything, applies shared steps (a
//! network) first, then starts services in dependency order with each level in
//! parallel, and waits until each answers a real request, all under one deadline.
//! Running services with nothing to change are still probed, so a second `up`
//! reports the truth quickly instead of trusting its last run.

use std::collections::BTreeMap;
use std::time::Duration;

use cp_core::Environment;
use cp_core::names::ServiceName;
use cp_core::plan::{self, Action, Plan, Step};
use cp_runtime::probe::Ready;
use serde::Serialize;
use tokio::time::Instant;

use crate::contract::{Context, Driver};
use crate::error::DriverError;

/// What happens during `up`, for progress display.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// The plan was made.
    Planned {
        /// Steps to take.
        steps: usize,
        /// Resources already as wanted.
        unchanged: usize,
    },
    /// A step is being applied.
    Applying {
        /// The service, if the step belongs to one.
        service: Option<ServiceName>,
        /// `+ container anumate-dev-postgres`.
        step: String,
    },
    /// Waiting for a service to answer.
    Waiting {
        /// The service.
        service: ServiceName,
    },
    /// A service answered.
    Ready {
        /// The service.
        service: ServiceName,
        /// Its version.
        version: String,
        /// Milliseconds since `up` began.
        elapsed_ms: u64,
    },
    /// A service failed.
    Failed {
        /// The service.
        service: ServiceName,
        /// Why.
        error: String,
    },
}

/// Receives [`Event`]s.
pub trait Progress: Send + Sync {
    /// One event.
    fn event(&self, event: Event);
}

/// Ignores events.
#[derive(Debug)]
pub struct Quiet;

impl Progress for Quiet {
    fn event(&self, _: Event) {}
}

/// The result of `up`.
#[derive(Debug, Serialize)]
pub struct UpReport {
    /// What was done.
    pub plan: Plan,
    /// Each service that answered, with its version.
    pub ready: BTreeMap<ServiceName, String>,
    /// Milliseconds from start to every service ready.
    pub elapsed_ms: u64,
}

/// Plans without changing anything: desired (pure) against observed (read-only).
pub async fn plan<D: Driver>(driver: &D, env: &Environment) -> Result<Plan, DriverError> {
    let desired = driver.desired(env)?;
    let observed = driver.observe(env).await?;
    Ok(plan::plan(&desired, &observed, true))
}

/// Brings the environment (or `services` and what they need) up and waits for it:
/// [`plan`], then [`apply`].
pub async fn up<D: Driver>(
    driver: &D,
    cx: Context<'_>,
    services: &[ServiceName],
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<UpReport, DriverError> {
    let desired = driver.desired(cx.env)?;
    let observed = driver.observe(cx.env).await?;
    let full = plan::plan(&desired, &observed, services.is_empty());
    apply(driver, cx, &full, services, timeout, progress).await
}

/// Applies `plan` (made by [`plan`], possibly saved and loaded again) and waits until
/// every service answers. With `services`, only their steps (and what they need) are
/// applied and nothing is removed; the rest of the plan is left for a later run.
pub async fn apply<D: Driver>(
    driver: &D,
    cx: Context<'_>,
    full: &Plan,
    services: &[ServiceName],
    timeout: Duration,
    progress: &dyn Progress,
) -> Result<UpReport, DriverError> {
    let start = Instant::now();
    let deadline = start + timeout;
    let desired = driver.desired(cx.env)?;
    let mut running: Vec<ServiceName> = desired.iter().filter_map(|r| r.service.clone()).collect();
    running.sort();
    running.dedup();
    let selected: Vec<ServiceName> = if services.is_empty() {
        running.clone()
    } else {
        cx.env
            .with_dependencies(services)
            .into_iter()
            .filter(|s| running.contains(s))
            .collect()
    };
    let plan = if services.is_empty() {
        full.clone()
    } else {
        let mut p = full.for_services(&selected);
        p.steps.retain(|s| !matches!(s.action, Action::Delete));
        p
    };
    if let Some(Step {
        action: Action::Blocked { reason, .. },
        id,
        ..
    }) = plan
        .steps
        .iter()
        .find(|s| matches!(s.action, Action::Blocked { .. }))
    {
        return Err(DriverError::Blocked(format!("{id}: {reason}")));
    }
    progress.event(Event::Planned {
        steps: plan.steps.len(),
        unchanged: plan.unchanged,
    });

    // Shared steps (networks, removals) first, one at a time.
    for step in plan.steps.iter().filter(|s| s.service.is_none()) {
        progress.event(Event::Applying {
            service: None,
            step: describe(step),
        });
        driver.apply(cx, step).await?;
    }

    let mut ready = BTreeMap::new();
    let mut first_error = None;
    for level in levels(cx.env, &selected) {
        let results = futures::future::join_all(level.iter().map(|svc| {
            let steps: Vec<&Step> = plan
                .steps
                .iter()
                .filter(|s| s.service.as_ref() == Some(svc))
                .collect();
            async move {
                for step in steps {
                    progress.event(Event::Applying {
                        service: Some(svc.clone()),
                        step: describe(step),
                    });
                    driver.apply(cx, step).await?;
                }
                progress.event(Event::Waiting {
                    service: svc.clone(),
                });
                driver.wait_ready(cx, svc, deadline).await
            }
        }))
        .await;
        for (svc, r) in level.iter().zip(results) {
            match r {
                Ok(Ready { version }) => {
                    progress.event(Event::Ready {
                        service: svc.clone(),
                        version: version.clone(),
                        elapsed_ms: ms(start.elapsed()),
                    });
                    ready.insert(svc.clone(), version);
                }
                Err(e) => {
                    progress.event(Event::Failed {
                        service: svc.clone(),
                        error: e.to_string(),
                    });
                    first_error.get_or_insert(e);
                }
            }
        }
        // Services of the next level need this one's; do not start them on a failure.
        if let Some(e) = first_error {
            return Err(e);
        }
    }
    Ok(UpReport {
        plan,
        ready,
        elapsed_ms: ms(start.elapsed()),
    })
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn describe(step: &Step) -> String {
    let verb = match &step.action {
        Action::Create => "create",
        Action::Start { .. } => "start",
        Action::Update { .. } => "update",
        Action::Replace { .. } => "replace",
        Action::Delete => "remove",
        Action::Blocked { .. } => "blocked",
    };
    format!("{verb} {}", step.id)
}

/// Groups services into levels: each level needs only services of earlier levels.
/// (Validation guarantees there is no cycle; a dependency outside `services` is
/// not waited for.)
pub fn levels(env: &Environment, services: &[ServiceName]) -> Vec<Vec<ServiceName>> {
    let deps = env.dependencies();
    let mut placed: Vec<ServiceName> = Vec::new();
    let mut out = Vec::new();
    let mut rest: Vec<ServiceName> = services.to_vec();
    while !rest.is_empty() {
        let (now, later): (Vec<ServiceName>, Vec<ServiceName>) = rest.into_iter().partition(|s| {
            deps.get(s)
                .map(|d| {
                    d.iter()
                        .all(|d| placed.contains(d) || !services.contains(d))
                })
                .unwrap_or(true)
        });
        if now.is_empty() {
            // Unreachable after validation; start the rest together rather than hang.
            out.push(later);
            break;
        }
        placed.extend(now.iter().cloned());
        out.push(now);
        rest = later;
    }
    out
}
