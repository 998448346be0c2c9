//! The commands over an open session, each returning its typed view: status (with
//! connection URLs, passwords only when asked for, in dev), alerts, seed, migrations
//! and tenants. The CLI prints these views; the server returns them.

use std::collections::BTreeMap;

use cp_core::model::Tier;
use cp_core::names::CoreKind;
use cp_core::serverconf::NATS_ADMIN_USER;
use cp_drivers::Driver;
use cp_seed::{Access, postgres, tenants};

pub use cp_seed::tenants::{PartsCache, is_key as is_tenant_key, shown};

use crate::error::AppError;
use crate::session::Session;
use crate::views::{
    AlertRuleView, AlertRulesView, AlertView, AlertsView, ChangesView, MigrateView, MigrationView,
    MigrationsView, NatsView, SeedView, ServiceView, StatusView, StreamView, TenantChangeView,
    TenantView, TenantsView,
};

/// Whether connection URLs carry passwords. Only ever in dev, and only when asked
/// (`--show-secrets`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrets {
    /// No password anywhere in the output (the default).
    Hidden,
    /// Dev passwords in the URLs.
    Shown,
}

/// `status`: every service's state, version, uptime, endpoint, health, and how to
/// connect. Read-only.
pub async fn status(s: &Session, secrets: Secrets) -> Result<StatusView, AppError> {
    let statuses = s.driver.status(s.cx()).await?;
    let show = secrets == Secrets::Shown && s.env.tier == Tier::Dev;
    let access = if show { s.access().await.ok() } else { None };
    let mut services: Vec<ServiceView> = statuses.into_iter().map(ServiceView::from).collect();
    for v in &mut services {
        if let Some(kind) = CoreKind::from_name(&v.service) {
            v.connect = connect_urls(s, kind, access.as_ref());
        }
    }
    let healthy = services.iter().all(ServiceView::ok);
    Ok(StatusView {
        environment: s.env.name.to_string(),
        driver: s.driver.name().to_owned(),
        driver_reason: s.driver_reason.clone(),
        services,
        healthy,
        tls_ca: s
            .endpoint(CoreKind::Postgres)
            .into_iter()
            .chain(s.endpoint(CoreKind::Redis))
            .chain(s.endpoint(CoreKind::Nats))
            .chain(s.endpoint(CoreKind::Vault))
            .find_map(|e| e.tls)
            .filter(|t| t.ca.exists())
            .map(|t| t.ca.display().to_string()),
    })
}

/// `alerts`: the firing and pending alerts of the environment's Prometheus (the one
/// its driver runs, where its driver says it answers). Read-only. Alerts that name
/// another environment (by `namespace` or `env` label: a shared Prometheus) are left
/// out.
pub async fn alerts(s: &Session) -> Result<AlertsView, AppError> {
    alerts_from(&s.env, &prometheus(s)?).await
}

/// The Prometheus `s`'s environment runs, where its driver says it answers (what
/// `alerts` asks, and the server when `serve --prometheus` does not name one).
pub fn prometheus(s: &Session) -> Result<cp_runtime::prometheus::Prometheus, AppError> {
    let env = &s.env;
    if env
        .monitoring
        .as_ref()
        .is_none_or(|m| m.prometheus.is_none())
    {
        return Err(AppError::Usage(format!(
            "{} runs no Prometheus (monitoring.prometheus or monitoring is disabled)",
            env.name
        )));
    }
    let prometheus = cp_core::names::ServiceName::new("prometheus").expect("a valid name");
    let Some(ep) = s.driver.endpoint(env, &prometheus) else {
        return Err(AppError::Usage(format!(
            "the {} driver does not say where {}'s Prometheus answers",
            s.driver.name(),
            env.name
        )));
    };
    Ok(cp_runtime::prometheus::Prometheus::new(&ep))
}

/// What fires and what is pending for `env` in the Prometheus `p` (the CLI's `alerts`
/// and the server's alerts page and API ask through here).
pub async fn alerts_from(
    env: &cp_core::Environment,
    p: &cp_runtime::prometheus::Prometheus,
) -> Result<AlertsView, AppError> {
    let all = p.alerts().await.map_err(|source| AppError::Prometheus {
        what: format!(
            "cannot read {}'s alerts from Prometheus at {}; is it running? `controlplane --env {} status` shows it",
            env.name,
            p.url(),
            env.name
        ),
        source,
    })?;
    let ours = |a: &cp_runtime::prometheus::Alert| {
        a.labels
            .get("namespace")
            .is_none_or(|n| *n == env.namespace)
            && a.labels.get("env").is_none_or(|e| e == env.name.as_str())
    };
    let mut alerts: Vec<AlertView> = all
        .into_iter()
        .filter(ours)
        .map(|a| {
            let mut labels = a.labels;
            let alert = labels.remove("alertname").unwrap_or_default();
            let severity = labels.remove("severity");
            AlertView {
                alert,
                state: a.state,
                severity,
                since: a.active_at,
                summary: a.annotations.get("summary").cloned(),
                description: a.annotations.get("description").cloned(),
                labels,
                value: a.value,
            }
        })
        .collect();
    alerts.sort_by(|a, b| {
        let key = |v: &AlertView| {
            (
                v.state != "firing",
                v.severity.as_deref() != Some("critical"),
                v.alert.clone(),
                v.labels.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    Ok(AlertsView {
        environment: env.name.to_string(),
        prometheus: p.url().to_owned(),
        firing: alerts.iter().filter(|a| a.state == "firing").count(),
        pending: alerts.iter().filter(|a| a.state == "pending").count(),
        alerts,
    })
}

/// Connection URLs of a core service; `user:password@` only when `access` is given.
fn connect_urls(s: &Session, kind: CoreKind, access: Option<&Access>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(ep) = s.endpoint(kind) else {
        return out;
    };
    let cred = |user: &str, pw: Option<&cp_seed::Secret>| match pw {
        Some(p) => format!("{user}:{}@", p.expose()),
        None => format!("{user}@"),
    };
    let pg_tls = ep.tls.as_ref().map_or_else(String::new, |t| {
        format!("?sslmode=verify-full&sslrootcert={}", t.ca.display())
    });
    let nats_scheme = if ep.tls.is_some() { "tls" } else { "nats" };
    match kind {
        CoreKind::Postgres => {
            let Some(pg) = &s.env.services.postgres else {
                return out;
            };
            let a = access.and_then(|a| a.postgres.as_ref());
            out.insert(
                "app".into(),
                format!(
                    "postgres://{}{}/{}{pg_tls}",
                    cred(cp_core::roles::APP, a.map(|a| &a.app_password)),
                    ep.addr(),
                    pg.database
                ),
            );
            out.insert(
                "admin".into(),
                format!(
                    "postgres://{}{}/{}{pg_tls}",
                    cred(cp_core::roles::ADMIN, a.map(|a| &a.admin_password)),
                    ep.addr(),
                    pg.database
                ),
            );
        }
        CoreKind::Redis => {
            let a = access.and_then(|a| a.redis.as_ref());
            out.insert(
                "app".into(),
                format!(
                    "{}://{}{}",
                    if ep.tls.is_some() { "rediss" } else { "redis" },
                    cred(cp_core::roles::APP, a.map(|a| &a.app_password)),
                    ep.addr()
                ),
            );
        }
        CoreKind::Nats => {
            let Some(n) = &s.env.services.nats else {
                return out;
            };
            let a = access.and_then(|a| a.nats.as_ref());
            out.insert(
                "app".into(),
                format!(
                    "{nats_scheme}://{}{}",
                    cred(&n.app_user, a.map(|a| &a.app_password)),
                    ep.addr()
                ),
            );
            out.insert(
                "admin".into(),
                format!(
                    "{nats_scheme}://{}{}",
                    cred(NATS_ADMIN_USER, a.map(|a| &a.admin_password)),
                    ep.addr()
                ),
            );
            out.insert(
                "monitor".into(),
                format!("{}://{}:{}", ep.http_scheme(), ep.host, n.monitor_port),
            );
        }
        CoreKind::Vault => {
            out.insert("addr".into(), ep.url());
        }
    }
    out
}

/// `seed`: plans and applies every seeded layer.
pub async fn seed(s: &Session) -> Result<SeedView, AppError> {
    let access = s.access().await?;
    let outcome = cp_seed::seed_all(&access, &s.env).await?;
    Ok(SeedView {
        environment: s.env.name.to_string(),
        changed: outcome.changed(),
        reports: outcome.reports.into_iter().map(ChangesView::from).collect(),
        revoked_root_token: outcome.revoked_root_token,
    })
}

fn pg(a: &Access) -> Result<&cp_seed::PgAccess, AppError> {
    a.postgres.as_ref().ok_or_else(|| {
        AppError::Usage("this environment runs no PostgreSQL (services.postgres is not set)".into())
    })
}

/// `migrate status`.
pub async fn migrate_status(s: &Session) -> Result<MigrationsView, AppError> {
    let a = s.access().await?;
    let st = postgres::migrate_status(pg(&a)?).await?;
    Ok(MigrationsView {
        migrations: st
            .into_iter()
            .map(|m| MigrationView {
                version: m.version,
                state: match (m.applied, m.checksum_ok) {
                    (true, true) => "applied",
                    (true, false) if m.description == "(not in this build)" => "unknown",
                    (true, false) => "changed",
                    (false, _) => "pending",
                }
                .into(),
                description: m.description,
            })
            .collect(),
    })
}

/// `migrate up` (`steps: None`) or `migrate down --steps N`.
pub async fn migrate(s: &Session, down: Option<u32>) -> Result<MigrateView, AppError> {
    // Reverting drops what a running backup may be reading.
    let _backups = down
        .map(|_| s.exclude_backups("migrate down"))
        .transpose()?;
    let a = s.access().await?;
    let p = pg(&a)?;
    let r = match down {
        None => postgres::migrate_up(p).await?,
        Some(n) => postgres::migrate_down(p, n).await?,
    };
    Ok(MigrateView {
        changed: r.changed(),
        report: r.into(),
    })
}

fn tenant_view(
    row: &postgres::TenantRow,
    parts: Option<cp_seed::vault::TenantParts>,
) -> TenantView {
    TenantView {
        id: row.id.to_string(),
        slug: row.slug.clone(),
        name: row.name.clone(),
        created_at: row
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        key: parts.map(|p| p.key),
        policy: parts.map(|p| p.policy),
        kv: parts.map(|p| p.kv),
        complete: parts.is_none_or(|p| p.key && p.policy && p.kv),
    }
}

/// `tenant list`.
pub async fn tenants(s: &Session) -> Result<TenantsView, AppError> {
    tenants_cached(s, None).await
}

/// `tenant list` reading each tenant's Vault parts only when `cache` holds none fresh
/// (a long-running process lists tenants at every request).
pub async fn tenants_cached(
    s: &Session,
    cache: Option<&PartsCache>,
) -> Result<TenantsView, AppError> {
    let a = s.access().await?;
    let all = tenants::list_cached(&a, &s.env, cache).await?;
    Ok(TenantsView {
        tenants: all.iter().map(|t| tenant_view(&t.row, t.vault)).collect(),
    })
}

/// The tenant with this id or slug (`None` when there is none; a key that is neither a
/// UUID nor a slug names none, and the database is not asked).
pub async fn tenant_find(s: &Session, id_or_slug: &str) -> Result<Option<TenantView>, AppError> {
    if !tenants::is_key(id_or_slug) {
        return Ok(None);
    }
    let a = s.access().await?;
    Ok(tenants::find(&a, id_or_slug)
        .await?
        .map(|row| tenant_view(&row, None)))
}

/// A new tenant's slug and display name, checked before anything is opened or
/// written (`Usage`, naming the rule broken).
pub fn check_tenant(slug: &str, name: Option<&str>) -> Result<(), AppError> {
    tenants::check_slug(slug).map_err(|e| AppError::Usage(e.to_string()))?;
    if let Some(n) = name {
        tenants::check_name(n).map_err(|e| AppError::Usage(e.to_string()))?;
    }
    Ok(())
}

/// `tenant create SLUG [--name NAME]`.
pub async fn tenant_create(
    s: &Session,
    slug: &str,
    name: Option<&str>,
) -> Result<TenantChangeView, AppError> {
    check_tenant(slug, name)?;
    let a = s.access().await?;
    let o = tenants::create(&a, &s.env, slug, name).await?;
    Ok(TenantChangeView {
        changed: o.changed(),
        tenant: tenant_view(&o.tenant, None),
        reports: o.reports.into_iter().map(ChangesView::from).collect(),
    })
}

/// What deleting a tenant destroys, for the confirmation.
pub fn tenant_delete_warning(tenant: &str) -> Vec<String> {
    vec![
        format!(
            "tenant `{tenant}`: its transit key (everything encrypted with it becomes unreadable, for good)"
        ),
        format!("tenant `{tenant}`: its KV subtree and policy"),
        format!("tenant `{tenant}`: every row it owns in every table"),
    ]
}

/// `tenant delete ID|SLUG`: the caller has confirmed.
pub async fn tenant_delete(s: &Session, tenant: &str) -> Result<TenantChangeView, AppError> {
    let none = || {
        AppError::NotFound(format!(
            "no tenant {} in {}; `controlplane tenant list` shows them",
            tenants::shown(tenant),
            s.env.name
        ))
    };
    if !tenants::is_key(tenant) {
        return Err(none());
    }
    let _backups = s.exclude_backups("tenant delete")?;
    let a = s.access().await?;
    match tenants::delete(&a, &s.env, tenant).await? {
        None => Err(none()),
        Some(o) => Ok(TenantChangeView {
            changed: o.changed(),
            tenant: tenant_view(&o.tenant, None),
            reports: o.reports.into_iter().map(ChangesView::from).collect(),
        }),
    }
}

/// Whether `down` must be confirmed: outside dev always, and with `--volumes` anywhere
/// (data is deleted).
pub fn down_needs_confirmation(s: &Session, volumes: bool) -> bool {
    volumes || s.env.tier != Tier::Dev
}

/// What `down` would stop and delete, one line each, from the driver's own teardown
/// list (so it cannot differ from what `down` does). Read-only.
pub async fn down_preview(s: &Session, volumes: bool) -> Result<Vec<String>, AppError> {
    Ok(s.driver
        .teardown_preview(s.cx(), volumes)
        .await?
        .into_iter()
        .map(|r| {
            if r.holds_data {
                format!("{} (data: this cannot be undone)", r.what)
            } else {
                r.what
            }
        })
        .collect())
}

/// `down [--volumes]`: the caller has confirmed where needed.
pub async fn down(s: &Session, volumes: bool) -> Result<crate::views::DownView, AppError> {
    // Stopping a service under a running backup would leave that backup partial.
    let _backups = s.exclude_backups(if volumes { "down --volumes" } else { "down" })?;
    let removed = s.driver.teardown(s.cx(), volumes).await?;
    if volumes {
        // With the data gone, `auto` may choose afresh next time.
        let _ = std::fs::remove_file(s.state.join(crate::driver::CHOICE_FILE));
    }
    Ok(crate::views::DownView {
        environment: s.env.name.to_string(),
        removed,
        volumes,
    })
}

/// `nats`: the server's identity and every declared stream with what the server holds
/// of it (a stream the server lacks is `missing`). Read-only.
pub async fn nats(s: &Session) -> Result<NatsView, AppError> {
    let (client, n, a) = crate::nats::admin(s).await?;
    let info = client.server_info();
    let js = async_nats::jetstream::new(client.clone());
    let mut streams = Vec::new();
    for name in s.env.streams.keys() {
        let missing = StreamView {
            stream: name.to_string(),
            missing: true,
            declared: true,
            subjects: s.env.streams[name].subjects.clone(),
            messages: 0,
            bytes: 0,
            consumers: 0,
        };
        match js.get_stream(name.as_str()).await {
            Ok(mut st) => {
                let i = st.info().await.map_err(|e| {
                    cp_seed::SeedError::from(cp_seed::SeedErrorKind::Stream {
                        op: "read the info of",
                        stream: name.to_string(),
                        source: e.into(),
                    })
                })?;
                streams.push(StreamView {
                    missing: false,
                    messages: i.state.messages,
                    bytes: i.state.bytes,
                    consumers: i.state.consumer_count,
                    ..missing
                });
            }
            Err(_) => streams.push(missing),
        }
    }
    Ok(NatsView {
        server: info.server_name.clone(),
        version: info.version.clone(),
        jetstream: info.jetstream,
        client_url: format!("nats://{}@{}", n.app_user, a.endpoint.addr()),
        monitor_url: a.monitor.url(),
        streams,
    })
}

/// The alert rules the environment renders, with its own thresholds (pure: from the
/// model and the built-in catalogue).
pub fn alert_rules(env: &cp_core::Environment) -> AlertRulesView {
    use cp_core::catalog::{RULES, ThresholdUnit};
    let mut rules = Vec::new();
    for d in RULES {
        let Some(r) = env.alerts.rules.get(d.key) else {
            continue;
        };
        let unit = match d.unit {
            ThresholdUnit::Fraction => "fraction",
            ThresholdUnit::Seconds => "seconds",
            ThresholdUnit::Count => "count",
            ThresholdUnit::PerSecond => "per_second",
            ThresholdUnit::None => "none",
        };
        rules.push(AlertRuleView {
            key: d.key.to_owned(),
            alert: r.alert.clone(),
            enabled: r.enabled,
            threshold: (d.unit != ThresholdUnit::None).then_some(r.threshold),
            unit: unit.to_owned(),
            for_: r.for_.to_string(),
            severity: r.severity,
            expr: None,
        });
    }
    for c in &env.alerts.custom {
        rules.push(AlertRuleView {
            key: "custom".to_owned(),
            alert: c.alert.clone(),
            enabled: true,
            threshold: None,
            unit: "none".to_owned(),
            for_: c.for_.to_string(),
            severity: c.severity,
            expr: Some(c.expr.clone()),
        });
    }
    AlertRulesView {
        environment: env.name.to_string(),
        rules,
    }
}
