//! Tenants across every service: create = tenant row + transit key `tenant-<id>` + KV
//! subtree `tenants/<id>/` + a policy for exactly those + a `tenant.created` CloudEvent
//! on SYSTEM_EVENTS; delete = transit key destroyed first (crypto-shred), then the KV
//! subtree, the policy and every row, then `tenant.deleted`.
//!
//! Order is what makes a crashed run safe to re-run: create writes the row first, so a
//! second `create` with the same slug finds its id and finishes the Vault parts; delete
//! destroys the key before the rows, so the tenant stays findable until the last step.

use serde::Serialize;
use serde_json::json;

use crate::events::{Event, Publisher};
use crate::postgres::{self, TenantRow};
use crate::vault::{self, TenantParts};
use crate::{Access, PgAccess, Report, SeedError, SeedErrorKind};
use cp_core::model::Environment;

/// A tenant slug: 1-63 characters, lowercase letters, digits and `-`, starting with a
/// letter or digit.
pub fn check_slug(slug: &str) -> Result<(), SeedError> {
    let ok = !slug.is_empty()
        && slug.len() <= 63
        && slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !slug.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(SeedError::from(SeedErrorKind::InvalidSlug {
            slug: slug.to_owned(),
        })
        .hint(
            "use 1-63 lowercase letters, digits and `-`, not starting with `-` (e.g. `acme-corp`)",
        ))
    }
}

fn pg(access: &Access) -> Result<&PgAccess, SeedError> {
    access.postgres.as_ref().ok_or_else(|| {
        SeedError::from(SeedErrorKind::TenantsNeedPostgres).hint("enable services.postgres")
    })
}

/// A tenant and the state of each of its parts.
#[derive(Debug, Clone, Serialize)]
pub struct TenantState {
    /// The row.
    #[serde(flatten)]
    pub row: TenantRow,
    /// Its Vault parts (`None` when the environment runs no Vault).
    pub vault: Option<TenantParts>,
}

impl TenantState {
    /// True when every part exists.
    pub fn complete(&self) -> bool {
        self.vault.is_none_or(|p| p.key && p.policy && p.kv)
    }
}

/// What `create` or `delete` did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The tenant.
    pub tenant: TenantRow,
    /// One report per service touched.
    pub reports: Vec<Report>,
}

impl Outcome {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        self.reports.iter().any(Report::changed)
    }
}

async fn publish(
    access: &Access,
    env: &Environment,
    event: Event,
    report: &mut Report,
) -> Result<(), SeedError> {
    let Some(nats) = &access.nats else {
        return Ok(());
    };
    let publisher = Publisher::connect(nats, env.name.as_str()).await?;
    let kind = event.short_kind().to_owned();
    publisher.publish(event).await?;
    report.change(format!("published {kind}"));
    report.trips(2);
    Ok(())
}

/// Creates tenant `slug` (or finishes creating it): its row, Vault key, KV subtree and
/// policy, then announces it. Re-running with the same slug changes nothing.
pub async fn create(
    access: &Access,
    env: &Environment,
    slug: &str,
    name: Option<&str>,
) -> Result<Outcome, SeedError> {
    check_slug(slug)?;
    let pg = pg(access)?;
    let mut rows = Report::new("postgres");
    let row = match postgres::find_tenant(pg, slug).await? {
        Some(row) => row,
        None => {
            let id = uuid::Uuid::new_v4();
            postgres::insert_tenant(pg, id, slug, name.unwrap_or(slug)).await?;
            rows.change(format!("inserted tenant {slug} ({id})"));
            postgres::find_tenant(pg, &id.to_string())
                .await?
                .ok_or_else(|| {
                    SeedError::from(SeedErrorKind::TenantVanished { id: id.to_string() })
                })?
        }
    };
    rows.trips(3);
    let mut reports = vec![rows];
    if let Some(v) = &access.vault {
        reports.push(vault::create_tenant(v, env, &row.id.to_string(), &row.slug).await?);
    }
    let mut events = Report::new("nats");
    if reports.iter().any(Report::changed) {
        let e = Event::new(
            "tenant.created",
            json!({"id": row.id, "slug": row.slug, "name": row.name}),
        )
        .tenant(row.id);
        publish(access, env, e, &mut events).await?;
    }
    reports.push(events);
    Ok(Outcome {
        tenant: row,
        reports,
    })
}

/// Deletes a tenant by id or slug: destroys its transit key (everything encrypted with
/// it becomes unreadable), its KV subtree and policy, then its rows. `None` when no
/// such tenant exists.
pub async fn delete(
    access: &Access,
    env: &Environment,
    id_or_slug: &str,
) -> Result<Option<Outcome>, SeedError> {
    let pg = pg(access)?;
    let Some(row) = postgres::find_tenant(pg, id_or_slug).await? else {
        return Ok(None);
    };
    let mut reports = Vec::new();
    if let Some(v) = &access.vault {
        reports.push(vault::delete_tenant(v, env, &row.id.to_string()).await?);
    }
    let mut rows = Report::new("postgres");
    let removed = postgres::delete_tenant_rows(pg, row.id).await?;
    rows.change(format!("deleted tenant {} and {removed} rows", row.slug));
    rows.trips(2);
    reports.push(rows);
    let mut events = Report::new("nats");
    let e = Event::new("tenant.deleted", json!({"id": row.id, "slug": row.slug})).tenant(row.id);
    publish(access, env, e, &mut events).await?;
    reports.push(events);
    Ok(Some(Outcome {
        tenant: row,
        reports,
    }))
}

/// Every tenant with the state of each of its parts.
pub async fn list(access: &Access, env: &Environment) -> Result<Vec<TenantState>, SeedError> {
    let pg = pg(access)?;
    let rows = postgres::list_tenants(pg).await?;
    let client = match &access.vault {
        Some(v) => Some(vault::client(v)?),
        None => None,
    };
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let vault = match &client {
            Some(c) => Some(vault::tenant_parts(c, env, &row.id.to_string()).await?),
            None => None,
        };
        out.push(TenantState { row, vault });
    }
    Ok(out)
}

/// The tenants layer as the planner sees it: for every tenant row, its transit key,
/// policy and KV entry in Vault. What is wanted follows the rows, so the desired
/// resources come back with what was observed.
pub mod layer {
    use cp_core::model::Environment;
    use cp_core::names::{CoreKind, ServiceName};
    use cp_core::plan::{
        Action, Layer, Observed, ObservedState, Plan, Resource, ResourceId, UpdateMode,
    };
    use cp_core::seedspec::{tenant_names, tenant_policy_hcl};
    use serde_json::{Value, json};

    use crate::vault::{self, VaultClient};
    use crate::{Access, Report, SeedError, SeedErrorKind};

    fn key_spec() -> Value {
        json!({"type": "aes256-gcm96", "exportable": false, "allow_plaintext_backup": false})
    }

    fn kv_path(env: &Environment, id: &str) -> String {
        format!(
            "{}/data/{}meta",
            env.vault.kv_mount,
            tenant_names(id).kv_prefix
        )
    }

    fn resource(kind: &str, name: String, spec: Value) -> Resource {
        Resource {
            id: ResourceId::new(Layer::Tenants, kind, name),
            service: Some(ServiceName::core(CoreKind::Vault)),
            spec,
            update: UpdateMode::InPlace,
        }
    }

    /// Wanted and observed parts of every tenant (reads only). Empty when the
    /// environment runs no PostgreSQL or no Vault.
    pub async fn observe(
        access: &Access,
        env: &Environment,
        report: &mut Report,
    ) -> Result<(Vec<Resource>, Vec<Observed>), SeedError> {
        let (Some(pg), Some(v)) = (&access.postgres, &access.vault) else {
            return Ok((Vec::new(), Vec::new()));
        };
        report.trips(1);
        let rows = crate::postgres::list_tenants(pg).await?;
        let c = vault::client(v)?;
        let mut desired = Vec::new();
        let mut observed = Vec::new();
        for row in rows {
            let id = row.id.to_string();
            let n = tenant_names(&id);
            let t = &env.vault;
            let want = [
                resource("transit-key", n.transit_key.clone(), key_spec()),
                resource(
                    "policy",
                    n.policy.clone(),
                    json!({"policy": tenant_policy_hcl(env, &id)}),
                ),
                resource(
                    "kv",
                    format!("{}/{}meta", t.kv_mount, n.kv_prefix),
                    json!({"tenant_id": id, "slug": row.slug}),
                ),
            ];
            let key = c
                .read(&format!("{}/keys/{}", t.transit_mount, n.transit_key))
                .await?;
            let policy = c.read(&format!("sys/policies/acl/{}", n.policy)).await?;
            let kv = c.read(&kv_path(env, &id)).await?;
            let found = [
                key.map(|k| {
                    let d = &k["data"];
                    json!({"type": d["type"], "exportable": d["exportable"], "allow_plaintext_backup": d["allow_plaintext_backup"]})
                }),
                policy.map(|p| json!({"policy": p["data"]["policy"]})),
                kv.map(|m| json!({"tenant_id": m["data"]["data"]["tenant_id"], "slug": m["data"]["data"]["slug"]})),
            ];
            for (r, f) in want.iter().zip(found) {
                if let Some(spec) = f {
                    observed.push(Observed {
                        id: r.id.clone(),
                        spec: Some(spec),
                        state: ObservedState::Present,
                    });
                }
            }
            desired.extend(want);
        }
        report.trips(c.round_trips());
        Ok((desired, observed))
    }

    /// Applies the layer's steps: a missing key is created (a destroyed key cannot
    /// come back: what it encrypted stays unreadable), a policy rewritten, a KV entry
    /// written. Blocked steps (a key's flags) are refused first.
    pub async fn apply(
        access: &Access,
        env: &Environment,
        plan: &Plan,
    ) -> Result<Report, SeedError> {
        let mut report = Report::new("tenants");
        let Some(v) = &access.vault else {
            return Ok(report);
        };
        if plan.is_empty() {
            return Ok(report);
        }
        let c: VaultClient = vault::client(v)?;
        for s in &plan.steps {
            let Some(r) = &s.desired else { continue };
            let t = &env.vault;
            match (&s.action, r.id.kind.as_str()) {
                (Action::Create, "transit-key") => {
                    c.write(&format!("{}/keys/{}", t.transit_mount, r.id.name), &r.spec)
                        .await?;
                    report.change(format!("created transit key {}", r.id.name));
                }
                (Action::Update { .. }, "transit-key") => {
                    return Err(SeedError::from(SeedErrorKind::IrreversibleKeyFlags {
                        key: r.id.name.clone(),
                    })
                    .hint("a key once exportable stays exportable: rotate the tenant's data to a new tenant and delete this one"));
                }
                (Action::Create | Action::Update { .. }, "policy") => {
                    c.write(&format!("sys/policies/acl/{}", r.id.name), &r.spec)
                        .await?;
                    report.change(format!("wrote policy {}", r.id.name));
                }
                (Action::Create | Action::Update { .. }, "kv") => {
                    let id = r.spec["tenant_id"].as_str().unwrap_or_default();
                    c.write(&kv_path(env, id), &json!({"data": r.spec})).await?;
                    report.change(format!("wrote {}", r.id.name));
                }
                _ => {}
            }
        }
        report.trips(c.round_trips());
        Ok(report)
    }
}
