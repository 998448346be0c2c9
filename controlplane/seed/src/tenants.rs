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
use crate::{Access, PgAccess, Report, SeedError};
use cp_core::model::Environment;

const SERVICE: &str = "tenants";

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
        Err(SeedError::new(SERVICE, format!("`{slug}` is not a valid tenant slug"))
            .hint("use 1-63 lowercase letters, digits and `-`, not starting with `-` (e.g. `acme-corp`)"))
    }
}

fn pg(access: &Access) -> Result<&PgAccess, SeedError> {
    access.postgres.as_ref().ok_or_else(|| {
        SeedError::new(
            SERVICE,
            "tenants live in PostgreSQL, which this environment does not run",
        )
        .hint("enable services.postgres")
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
                    SeedError::new(
                        SERVICE,
                        format!("tenant {id} vanished right after it was inserted"),
                    )
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
