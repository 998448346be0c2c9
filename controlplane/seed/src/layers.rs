//! The seeded layers behind one interface: for each of database, streams, cache
//! (Redis ACLs), Vault and tenants, `observe` reads what exists and plans it against
//! what the environment wants (never writing), and `apply` carries out a plan's steps.
//! The application layer builds the whole-environment plan from these and executes
//! exactly the steps it printed.

use cp_core::model::Environment;
use cp_core::names::CoreKind;
use cp_core::plan::{self, Layer, Observed, Plan, Resource};

use crate::{Access, Report, SeedError, SeedErrorKind, nats, postgres, redis, tenants, vault};

/// The layers the seeder manages, in the order `up` applies them (tenants last: they
/// need the database and Vault).
pub const SEEDED: [Layer; 5] = [
    Layer::Database,
    Layer::Streams,
    Layer::Cache,
    Layer::Vault,
    Layer::Tenants,
];

/// What one layer wants, what exists, and the plan between them.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// What the layer wants.
    pub desired: Vec<Resource>,
    /// What exists.
    pub observed: Vec<Observed>,
    /// The steps from one to the other.
    pub plan: Plan,
    /// What the steps do not show.
    pub notes: Vec<String>,
}

/// The services a layer needs answering before it can be observed.
pub fn services(layer: Layer) -> &'static [CoreKind] {
    match layer {
        Layer::Database => &[CoreKind::Postgres],
        Layer::Streams => &[CoreKind::Nats],
        Layer::Cache => &[CoreKind::Redis],
        Layer::Vault => &[CoreKind::Vault],
        Layer::Tenants => &[CoreKind::Postgres, CoreKind::Vault],
        Layer::Platform | Layer::Backups => &[],
    }
}

/// Whether the environment uses the layer at all.
pub fn used(layer: Layer, env: &Environment) -> bool {
    let s = &env.services;
    match layer {
        Layer::Database => s.postgres.is_some(),
        Layer::Streams => s.nats.is_some() && !env.streams.is_empty(),
        Layer::Cache => s.redis.is_some(),
        Layer::Vault => s.vault.is_some(),
        Layer::Tenants => s.postgres.is_some() && s.vault.is_some(),
        Layer::Platform => true,
        Layer::Backups => false,
    }
}

/// Reads the layer and plans it. Never writes.
pub async fn observe(
    layer: Layer,
    access: &Access,
    env: &Environment,
    report: &mut Report,
) -> Result<Observation, SeedError> {
    let missing = |service: &'static str| SeedError::from(SeedErrorKind::NotRun { service });
    Ok(match layer {
        Layer::Database => {
            let pg = access
                .postgres
                .as_ref()
                .ok_or_else(|| missing("postgres"))?;
            let cat = postgres::layer::observe(pg, report).await?;
            let mut notes = Vec::new();
            if !cat.migrations_complete {
                notes.push(
                    "privileges on tables are checked once the pending migrations have run \
                     (`up` does it in the same run)"
                        .to_owned(),
                );
            }
            let mut desired = postgres::layer::desired(&pg.database, cat.migrations_complete);
            let mut plan = postgres::layer::plan(&pg.database, &cat);
            let mut observed = cat.observed;
            // Apps' own roles and schemas (`apps.<app>.uses.postgres`).
            let app_desired = cp_core::seedspec::app_postgres(env);
            if !app_desired.is_empty() {
                let app_observed =
                    postgres::apps::observe(pg, env, &access.app_roles, report).await?;
                let app_plan = plan::plan(&app_desired, &app_observed, false);
                plan.steps.extend(app_plan.steps);
                plan.unchanged += app_plan.unchanged;
                desired.extend(app_desired);
                observed.extend(app_observed);
            }
            Observation {
                desired,
                plan,
                observed,
                notes,
            }
        }
        Layer::Streams => {
            let n = access.nats.as_ref().ok_or_else(|| missing("nats"))?;
            let desired = cp_core::seedspec::streams(env);
            let observed = nats::observe(n, env, report).await?;
            Observation {
                plan: plan::plan(&desired, &observed, false),
                desired,
                observed,
                notes: Vec::new(),
            }
        }
        Layer::Cache => {
            let r = access.redis.as_ref().ok_or_else(|| missing("redis"))?;
            let desired = redis::desired(env);
            let observed = redis::observe(r, env, report).await?;
            Observation {
                plan: plan::plan(&desired, &observed, false),
                desired,
                observed,
                notes: Vec::new(),
            }
        }
        Layer::Vault => {
            let v = access.vault.as_ref().ok_or_else(|| missing("vault"))?;
            let desired = vault::desired(env);
            let observed = vault::observe_layer(v, env, report).await?;
            Observation {
                plan: plan::plan(&desired, &observed, false),
                desired,
                observed,
                notes: Vec::new(),
            }
        }
        Layer::Tenants => {
            let (desired, observed) = tenants::layer::observe(access, env, report).await?;
            Observation {
                plan: plan::plan(&desired, &observed, false),
                desired,
                observed,
                notes: Vec::new(),
            }
        }
        Layer::Platform | Layer::Backups => {
            return Err(SeedErrorKind::NotSeeded { layer }.into());
        }
    })
}

/// Carries out `plan`'s steps on the layer. A blocked step fails the layer before
/// anything is touched.
pub async fn apply(
    layer: Layer,
    access: &Access,
    env: &Environment,
    plan: &Plan,
    options: &nats::Options,
) -> Result<Report, SeedError> {
    let missing = |service: &'static str| SeedError::from(SeedErrorKind::NotRun { service });
    match layer {
        Layer::Database => {
            let pg = access
                .postgres
                .as_ref()
                .ok_or_else(|| missing("postgres"))?;
            let (apps, platform): (Vec<_>, Vec<_>) = plan
                .steps
                .iter()
                .cloned()
                .partition(|s| postgres::apps::is_app_step(&s.id.kind));
            let mut report = postgres::layer::apply(
                pg,
                &Plan {
                    steps: platform,
                    unchanged: plan.unchanged,
                },
            )
            .await?;
            if !apps.is_empty() {
                let done = postgres::apps::apply(
                    pg,
                    env,
                    &access.app_roles,
                    &Plan {
                        steps: apps,
                        unchanged: 0,
                    },
                )
                .await?;
                report.changes.extend(done.changes);
                report.trips(done.round_trips);
            }
            Ok(report)
        }
        Layer::Streams => {
            let n = access.nats.as_ref().ok_or_else(|| missing("nats"))?;
            nats::apply(n, env, plan, options).await
        }
        Layer::Cache => {
            let r = access.redis.as_ref().ok_or_else(|| missing("redis"))?;
            redis::apply(r, env, plan).await
        }
        Layer::Vault => {
            let v = access.vault.as_ref().ok_or_else(|| missing("vault"))?;
            vault::apply_plan(v, env, plan).await
        }
        Layer::Tenants => tenants::layer::apply(access, env, plan).await,
        Layer::Platform | Layer::Backups => Err(SeedErrorKind::NotSeeded { layer }.into()),
    }
}
