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

/// The longest display name, in characters.
pub const NAME_MAX: usize = 200;

/// Client input as an error message shows it: escaped (no control character reaches
/// a terminal or a log line) and cut to 40 characters.
pub fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(40)
        .collect::<String>()
        .escape_debug()
        .collect();
    if text.chars().count() > 40 {
        out.push_str("...");
    }
    format!("`{out}`")
}

/// A tenant's display name: 1 to [`NAME_MAX`] characters, not only spaces, no control
/// character (a NUL, a newline, an escape). Checked before anything is written.
pub fn check_name(name: &str) -> Result<(), SeedError> {
    let rule = if name.trim().is_empty() {
        Some("it is empty; give 1 to 200 characters, or leave it out to use the slug")
    } else if name.chars().count() > NAME_MAX {
        Some("it is longer than 200 characters")
    } else if name.chars().any(char::is_control) {
        Some("it contains a control character (a NUL, a newline, a tab or an escape)")
    } else {
        None
    };
    match rule {
        None => Ok(()),
        Some(rule) => Err(SeedError::from(SeedErrorKind::InvalidTenantName {
            name: shown(name),
            rule,
        })
        .hint("use 1 to 200 printable characters (e.g. `Acme Corp`)")),
    }
}

/// A tenant's id or slug as a client names it: a UUID or a valid slug. Anything else
/// (a path, a NUL, 5000 characters) names no tenant and never reaches the database.
pub fn is_key(id_or_slug: &str) -> bool {
    uuid::Uuid::parse_str(id_or_slug).is_ok() || check_slug(id_or_slug).is_ok()
}

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
        Err(SeedError::from(SeedErrorKind::InvalidSlug { slug: shown(slug) })
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
    if let Some(n) = name {
        check_name(n)?;
    }
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

/// The tenant with this id or slug, if any. A key that is neither a UUID nor a valid
/// slug names no tenant: `None` without asking the database.
pub async fn find(access: &Access, id_or_slug: &str) -> Result<Option<TenantRow>, SeedError> {
    if !is_key(id_or_slug) {
        return Ok(None);
    }
    postgres::find_tenant(pg(access)?, id_or_slug).await
}

/// Every tenant with the state of each of its parts.
pub async fn list(access: &Access, env: &Environment) -> Result<Vec<TenantState>, SeedError> {
    list_cached(access, env, None).await
}

/// What Vault held of each tenant, kept for a while: a long-running process (the
/// server, listing tenants on every request and page) reads each tenant's parts at
/// most once per `ttl`, not at every listing.
#[derive(Debug)]
pub struct PartsCache {
    ttl: std::time::Duration,
    parts: std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, TenantParts)>>,
}

impl PartsCache {
    /// An empty cache whose entries are fresh for `ttl`.
    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            ttl,
            parts: std::sync::Mutex::default(),
        }
    }

    fn key(env: &str, id: &str) -> String {
        format!("{env}/{id}")
    }

    /// The parts of tenant `id` of `env`, if read less than `ttl` ago.
    pub fn get(&self, env: &str, id: &str) -> Option<TenantParts> {
        let m = self.parts.lock().expect("parts cache lock");
        m.get(&Self::key(env, id))
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, p)| *p)
    }

    /// Keeps what was just read.
    pub fn put(&self, env: &str, id: &str, parts: TenantParts) {
        let mut m = self.parts.lock().expect("parts cache lock");
        let ttl = self.ttl;
        // Stale entries go, so deleted tenants do not accumulate.
        m.retain(|_, (at, _)| at.elapsed() < ttl);
        m.insert(Self::key(env, id), (std::time::Instant::now(), parts));
    }

    /// Forgets tenant `id` of `env` (it was just created, finished or deleted).
    pub fn forget(&self, env: &str, id: &str) {
        self.parts
            .lock()
            .expect("parts cache lock")
            .remove(&Self::key(env, id));
    }
}

/// [`list`], reading Vault only for tenants whose parts `cache` does not hold fresh.
pub async fn list_cached(
    access: &Access,
    env: &Environment,
    cache: Option<&PartsCache>,
) -> Result<Vec<TenantState>, SeedError> {
    let pg = pg(access)?;
    let rows = postgres::list_tenants(pg).await?;
    let mut client = None;
    let name = env.name.as_str();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id = row.id.to_string();
        let vault = match &access.vault {
            None => None,
            Some(v) => match cache.and_then(|c| c.get(name, &id)) {
                Some(p) => Some(p),
                None => {
                    if client.is_none() {
                        client = Some(vault::client(v)?);
                    }
                    let c = client.as_ref().expect("set above");
                    let p = vault::tenant_parts(c, env, &id).await?;
                    if let Some(cache) = cache {
                        cache.put(name, &id, p);
                    }
                    Some(p)
                }
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_refused_empty_overlong_or_with_control_characters_naming_the_rule() {
        check_name("Acme Corp").unwrap();
        check_name(&"é".repeat(NAME_MAX)).unwrap();
        for (name, rule) in [
            ("", "empty"),
            ("   ", "empty"),
            (&*"a".repeat(5000), "longer than 200"),
            ("acme\0corp", "control character"),
            ("acme\ncorp", "control character"),
            ("\u{1b}[31mred", "control character"),
        ] {
            let e = check_name(name).unwrap_err().to_string();
            assert!(e.contains(rule), "{name:?}: {e}");
            assert!(!e.contains('\0') && e.len() < 400, "{e}");
        }
    }

    #[test]
    fn hostile_slugs_are_refused_shown_short_and_escaped() {
        let e = check_slug(&format!("a\0{}", "b".repeat(5000)))
            .unwrap_err()
            .to_string();
        assert!(e.contains(r"`a\0bbb") && e.contains("...`"), "{e}");
        assert!(e.len() < 300, "{e}");
    }

    #[test]
    fn a_key_is_a_uuid_or_a_slug_and_nothing_else() {
        assert!(is_key("acme-corp"));
        assert!(is_key("0b6f8a4e-4d1c-4b7e-9a77-1f6c2d9e8b10"));
        for k in [
            "../../etc/passwd",
            "acme\0",
            "",
            "Acme",
            "a b",
            &"a".repeat(64),
        ] {
            assert!(!is_key(k), "{k:?}");
        }
    }

    #[test]
    fn the_parts_cache_answers_until_its_entries_are_stale_or_forgotten() {
        let parts = TenantParts {
            key: true,
            policy: true,
            kv: false,
        };
        let c = PartsCache::new(std::time::Duration::from_secs(60));
        assert_eq!(c.get("dev", "t1"), None);
        c.put("dev", "t1", parts);
        assert_eq!(c.get("dev", "t1"), Some(parts));
        assert_eq!(c.get("prod", "t1"), None, "per environment");
        c.forget("dev", "t1");
        assert_eq!(c.get("dev", "t1"), None);
        let stale = PartsCache::new(std::time::Duration::ZERO);
        stale.put("dev", "t1", parts);
        assert_eq!(stale.get("dev", "t1"), None);
    }
}
