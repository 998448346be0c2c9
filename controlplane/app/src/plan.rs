//! The whole-environment plan: the platform layer from the driver, then every seeded
//! layer (database, streams, cache, Vault, tenants) from the seeder, each observed
//! when its services answer and deferred, with the reason and what `up` will do,
//! when they do not. Never writes anything, anywhere: the session is read-only, the
//! observers only read.

use std::collections::BTreeMap;

use cp_core::envplan::{Basis, EnvPlan, LayerPlan, SavedPlan};
use cp_core::names::{CoreKind, ServiceName};
use cp_core::plan::{self, Layer, ObservedState};
use cp_drivers::Driver;
use cp_seed::layers;

use crate::driver::AnyDriver;
use crate::error::AppError;
use crate::session::Session;

/// The platform layer's desired and observed resources, and which core services run.
struct Platform {
    plan: plan::Plan,
    desired: Vec<plan::Resource>,
    observed: Vec<plan::Observed>,
    running: BTreeMap<CoreKind, bool>,
}

async fn platform(s: &Session) -> Result<Platform, AppError> {
    let desired = s.driver.desired(&s.env)?;
    let observed = s.driver.observe(&s.env).await?;
    let mut unsafe_services: Vec<(ServiceName, String)> = s
        .driver
        .vanished(s.cx())
        .await?
        .into_iter()
        .map(|v| (v.service, v.reason))
        .collect();
    if let Some(reason) = vault_interrupted(s)? {
        unsafe_services.push((ServiceName::core(CoreKind::Vault), reason));
    }
    let state: BTreeMap<&plan::ResourceId, &ObservedState> =
        observed.iter().map(|o| (&o.id, &o.state)).collect();
    let mut running = BTreeMap::new();
    for kind in CoreKind::ALL {
        let svc = ServiceName::core(kind);
        let mine: Vec<&plan::Resource> = desired
            .iter()
            .filter(|r| r.service.as_ref() == Some(&svc))
            .collect();
        if mine.is_empty() {
            continue;
        }
        // Running when every resource of the service exists and none is stopped.
        let up = mine.iter().all(|r| {
            matches!(
                state.get(&r.id),
                Some(ObservedState::Running | ObservedState::Present)
            )
        });
        running.insert(kind, up);
    }
    let mut plan = plan::plan(&desired, &observed, true);
    for (service, reason) in unsafe_services {
        block(&mut plan, &desired, &service, &reason);
    }
    Ok(Platform {
        plan,
        desired,
        observed,
        running,
    })
}

/// Makes every platform step of `service` a blocked one with `reason`; when it has
/// none (it runs, unchanged), adds one for its first resource. `up` refuses the plan.
fn block(plan: &mut plan::Plan, desired: &[plan::Resource], service: &ServiceName, reason: &str) {
    let blocked = || plan::Action::Blocked {
        changes: Vec::new(),
        reason: reason.to_owned(),
    };
    let mut found = false;
    for st in plan
        .steps
        .iter_mut()
        .filter(|st| st.service.as_ref() == Some(service))
    {
        st.action = blocked();
        found = true;
    }
    if !found && let Some(r) = desired.iter().find(|r| r.service.as_ref() == Some(service)) {
        plan.unchanged = plan.unchanged.saturating_sub(1);
        plan.steps.push(plan::Step {
            id: r.id.clone(),
            service: r.service.clone(),
            action: blocked(),
            desired: Some(r.clone()),
        });
        plan.steps.sort_by(|a, b| a.id.cmp(&b.id));
    }
}

/// Why Vault cannot be brought up without a confirmation: a run asked it to
/// initialise and stopped before keeping the answer (its unseal keys and root
/// token), and no keys are at hand. `None` otherwise. Read-only.
pub(crate) fn vault_interrupted(s: &Session) -> Result<Option<String>, AppError> {
    use cp_core::model::{UnsealKeys, VaultMode};
    let Some(v) = s
        .env
        .services
        .vault
        .as_ref()
        .filter(|v| v.mode != VaultMode::Dev)
    else {
        return Ok(None);
    };
    let store = cp_runtime::vault::key_store(v, &s.state, s.driver.vault_keys_dir());
    let keys = store.unseal_keys().map_err(|source| AppError::VaultKeys {
        what: "reading vault's unseal keys".into(),
        source,
    })?;
    if !store.init_pending() || keys.is_some() {
        return Ok(None);
    }
    let head = "vault's first initialisation was interrupted: a run asked vault to \
                initialise and stopped before keeping the answer (its unseal keys and root \
                token), so nobody can unseal it";
    Ok(Some(match &v.unseal {
        UnsealKeys::State => format!(
            "{head}; nothing was stored in it yet. `controlplane up --reinitialise vault --yes` \
             removes it and initialises it again"
        ),
        UnsealKeys::Env(var) => format!(
            "{head}. Lost: that initialisation's unseal keys and root token (shown once on \
             the stderr of the run that stopped, if it got that far); nothing else, since \
             nothing is stored before they are kept. If you saved them, export {var}=<key>,<key>,... \
             and run up again; if not, `controlplane up --reinitialise vault --yes` removes \
             its data and initialises it again (new keys, shown once)"
        ),
    }))
}

/// Why the seeded layers that need Vault cannot be observed though its server runs:
/// not initialised, or sealed (until `up` initialises or unseals it). Read-only.
async fn vault_unready(s: &Session) -> Option<String> {
    use cp_core::model::VaultMode;
    s.env
        .services
        .vault
        .as_ref()
        .filter(|v| v.mode != VaultMode::Dev)?;
    let ep = s
        .driver
        .client_endpoint(&s.env, &ServiceName::core(CoreKind::Vault))
        .await?;
    match cp_runtime::vault::VaultApi::new(&ep).seal_status().await {
        Ok(st) if !st.initialized => Some("vault is not initialised".into()),
        Ok(st) if st.sealed => Some("vault is sealed".into()),
        Ok(_) => None,
        // Not answering: the layer's own observation says so.
        Err(_) => None,
    }
}

/// What `up` does about a layer whose services do not run yet.
fn then(layer: Layer) -> String {
    let what = match layer {
        Layer::Database => "roles, database privileges, migrations and grants",
        Layer::Streams => "the JetStream streams",
        Layer::Cache => "the Redis ACL users",
        Layer::Vault => "the audit device, mounts, keys, policies and AppRole",
        Layer::Tenants => "each tenant's key, policy and KV entry",
        Layer::Platform => "the platform",
        Layer::Backups => "backup retention",
    };
    format!("`up` starts its services, then plans and applies {what}")
}

/// A layer that cannot be observed now: recorded as such in the basis, so a saved
/// plan notices when it becomes observable.
fn defer(basis: &mut Basis, layer: Layer, reason: String, then: String) -> LayerPlan {
    basis.0.insert(
        layer,
        cp_core::envplan::LayerBasis {
            desired: Vec::new(),
            observed: None,
        },
    );
    LayerPlan::deferred(layer, reason, then)
}

/// Plans every layer of the session's environment. The result carries what it was
/// computed from, so it can be saved (`plan --out`) and checked again (`up --plan`).
pub async fn plan(s: &Session) -> Result<SavedPlan, AppError> {
    plan_for(s, true).await
}

/// The plan `up --no-seed` applies: the platform observed, every seeded layer
/// deferred unobserved (it would never be applied; observing it meant a connection
/// and queries per service, a no-op `up`'s largest cost after start-up).
pub async fn plan_platform(s: &Session) -> Result<SavedPlan, AppError> {
    plan_for(s, false).await
}

async fn plan_for(s: &Session, seeded: bool) -> Result<SavedPlan, AppError> {
    let p = platform(s).await?;
    let mut basis = Basis::default();
    basis.insert(Layer::Platform, p.desired.clone(), Some(p.observed.clone()));
    let mut out = vec![LayerPlan::observed(Layer::Platform, p.plan.clone())];

    let kube = matches!(s.driver, AnyDriver::Kube(_));
    // Access (endpoints and credentials) only when some seeded service runs, resolved
    // read-only: a secret that was never generated means nothing was brought up.
    // Resolved even for `up --no-seed`, which observes no seeded layer: a mutating
    // session generates the environment's `generate` secrets here, and a later `plan`
    // or `seed` needs them.
    let any_running = p.running.values().any(|up| *up);
    let access = if any_running && !kube {
        match s.access().await {
            Ok(a) => Ok(a),
            Err(e) => Err(cp_runtime::error::chain(&e)),
        }
    } else {
        Err(String::new())
    };
    let vault_unready =
        if kube || !seeded || !p.running.get(&CoreKind::Vault).copied().unwrap_or(false) {
            None
        } else {
            vault_unready(s).await
        };
    let mut database_complete = false;
    for layer in layers::SEEDED {
        if !layers::used(layer, &s.env) {
            out.push(LayerPlan::absent(layer));
            continue;
        }
        let stopped: Vec<&str> = layers::services(layer)
            .iter()
            .filter(|k| !p.running.get(k).copied().unwrap_or(false))
            .map(|k| k.as_str())
            .collect();
        if !seeded {
            out.push(defer(
                &mut basis,
                layer,
                "not seeded: `up --no-seed`".into(),
                "`controlplane seed` (or `up` without --no-seed) plans and applies it".into(),
            ));
            continue;
        }
        if kube {
            out.push(defer(
                &mut basis,
                layer,
                "its services answer only inside the cluster".into(),
                "`up` does not seed on Kubernetes: run `controlplane seed` with port-forwards, or from inside the cluster".into(),
            ));
            continue;
        }
        if !stopped.is_empty() {
            out.push(defer(
                &mut basis,
                layer,
                format!(
                    "{} {} not running",
                    stopped.join(" and "),
                    if stopped.len() == 1 { "is" } else { "are" }
                ),
                then(layer),
            ));
            continue;
        }
        if let Some(why) = &vault_unready
            && layers::services(layer).contains(&CoreKind::Vault)
        {
            out.push(defer(&mut basis, layer, why.clone(), then(layer)));
            continue;
        }
        if layer == Layer::Tenants && !database_complete {
            out.push(defer(
                &mut basis,
                layer,
                "the tenants table is created by pending migrations".into(),
                "`up` applies them, then plans each tenant's parts".into(),
            ));
            continue;
        }
        let access = match &access {
            Ok(a) => a,
            Err(why) => {
                out.push(defer(
                    &mut basis,
                    layer,
                    format!("its credentials cannot be resolved yet ({why})"),
                    then(layer),
                ));
                continue;
            }
        };
        let mut report = cp_seed::Report::new(cp_seed::layer_service(layer));
        match layers::observe(layer, access, &s.env, &mut report).await {
            Ok(o) => {
                if layer == Layer::Database {
                    database_complete = !o
                        .plan
                        .steps
                        .iter()
                        .any(|st| st.id.kind == "migration" || st.id.kind == "database");
                }
                basis.insert(layer, o.desired, Some(o.observed));
                let mut lp = LayerPlan::observed(layer, o.plan);
                lp.notes = o.notes;
                out.push(lp);
            }
            // Running but not answering yet (still starting): `up` waits for it.
            Err(e) if e.unreachable() => {
                out.push(defer(&mut basis, layer, e.message(), then(layer)));
            }
            Err(e) => return Err(e.into()),
        }
    }
    // What is due for rotation: passwords from the record, keys when Vault answers.
    let vault_ok = seeded
        && !kube
        && vault_unready.is_none()
        && p.running.get(&CoreKind::Vault).copied().unwrap_or(false);
    let keys_from = access.as_ref().ok().filter(|_| vault_ok);
    let due = if kube {
        Vec::new()
    } else {
        crate::rotate::due(s, keys_from).await.unwrap_or_else(|e| {
            tracing::debug!(error = %e.chain(), "what is due for rotation could not be read");
            Vec::new()
        })
    };
    let doc = EnvPlan::new(
        s.env.name.as_str(),
        s.driver.name(),
        &s.driver_reason,
        out,
        &basis,
    )
    .with_rotation_due(due);
    Ok(SavedPlan {
        controlplane_version: env!("CARGO_PKG_VERSION").to_owned(),
        plan: doc,
        basis,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cp_core::plan::{Action, Observed, ObservedState, Resource, ResourceId, UpdateMode};

    fn resource(name: &str) -> Resource {
        Resource {
            id: ResourceId::new(Layer::Platform, "process", name),
            service: Some(ServiceName::core(CoreKind::from_name(name).unwrap())),
            spec: serde_json::json!({"v": 1}),
            update: UpdateMode::Replace,
        }
    }

    #[test]
    fn a_service_whose_data_vanished_is_blocked_whether_it_has_a_step_or_not() {
        let desired = vec![resource("postgres"), resource("vault")];
        // Postgres is to be created; vault runs unchanged.
        let observed = vec![Observed {
            id: desired[1].id.clone(),
            spec: Some(desired[1].spec.clone()),
            state: ObservedState::Running,
        }];
        let mut p = plan::plan(&desired, &observed, true);
        assert_eq!((p.steps.len(), p.unchanged), (1, 1));
        for name in ["postgres", "vault"] {
            block(
                &mut p,
                &desired,
                &ServiceName::core(CoreKind::from_name(name).unwrap()),
                "data missing",
            );
        }
        assert_eq!(p.unchanged, 0);
        let blocked: Vec<&str> = p
            .steps
            .iter()
            .filter(
                |s| matches!(&s.action, Action::Blocked { reason, .. } if reason == "data missing"),
            )
            .map(|s| s.id.name.as_str())
            .collect();
        assert_eq!(blocked, ["postgres", "vault"]);
        assert!(p.is_blocked());
    }
}
