//! API v1 handlers and the operational endpoints. Each answers with a typed view:
//! the application layer's (`StatusView`, `PlanView`, `TenantsView`, ...) as the CLI
//! prints them, or the server's own (below) for what only the server knows (the
//! cache, the audit log, who is calling).

use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use cp_app::Mode;
use cp_app::views::{
    EnvironmentAlertsView, NatsView, PlanView, StatusView, TenantChangeView, TenantView,
    TenantsView,
};
use http::{HeaderValue, StatusCode, header};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::audit::{self, AuditPage, Filter, Subject};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::probe;
use crate::state::AppState;
use cp_app::views::DriftView;

/// `/healthz`: the process answers.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HealthView {
    /// Always `ok`.
    pub status: String,
}

/// `/readyz`: the server's own dependencies (not the managed services: one being down
/// is reported by the API, it does not make the server unready).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ReadyView {
    /// Whether the server can authenticate requests (its token store is readable).
    pub ready: bool,
    /// Whether mutations can be audited now (the audit log is writable); mutations
    /// are refused while it is not.
    pub audit_writable: bool,
    /// What is wrong, if anything.
    pub problems: Vec<String>,
}

/// One environment as the overview shows it, from the cache.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EnvironmentView {
    /// Its name.
    pub name: String,
    /// `dev`, `staging` or `production`, once loaded.
    pub tier: Option<String>,
    /// The driver, once probed.
    pub driver: Option<String>,
    /// Every service answered at the last probe.
    pub healthy: bool,
    /// Services healthy at the last probe.
    pub services_up: usize,
    /// Services this platform runs (skipped ones not counted).
    pub services_total: usize,
    /// Services this platform does not run (apps and extras need containers).
    pub services_skipped: usize,
    /// When it was last probed (RFC 3339).
    pub probed_at: Option<String>,
    /// Why the last probe failed.
    pub error: Option<String>,
    /// What the last successful drift check found.
    pub drift: Option<DriftView>,
    /// Why the last drift check failed, when it did.
    pub drift_error: Option<String>,
}

/// Every served environment.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct EnvironmentsView {
    /// In name order.
    pub environments: Vec<EnvironmentView>,
}

/// `POST .../tenants`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantCreateRequest {
    /// Unique slug (`acme-corp`: lowercase letters, digits and dashes).
    pub slug: String,
    /// Display name (defaults to the slug).
    #[serde(default)]
    pub name: Option<String>,
}

/// `DELETE .../tenants/{tenant}`: the confirmation.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantDeleteRequest {
    /// Must repeat the `{tenant}` of the path: its transit key is destroyed, so its
    /// encrypted data becomes unreadable for good, then its rows are deleted.
    pub confirm: String,
}

/// `?refresh=true` probes now instead of answering from the cache.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshQuery {
    /// Probe now.
    #[serde(default)]
    pub refresh: Option<bool>,
}

/// Audit log filters and page.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Exact actor (`token:ci`).
    pub actor: Option<String>,
    /// Exact action (`tenant.create`).
    pub action: Option<String>,
    /// `denied`, `allowed`, `succeeded` or `failed`.
    pub outcome: Option<audit::Outcome>,
    /// At or after (RFC 3339).
    pub since: Option<String>,
    /// Before (RFC 3339).
    pub until: Option<String>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<u64>,
}

/// A query string, refused as a JSON 400 when malformed.
#[derive(Debug)]
pub struct Q<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        serde_urlencoded::from_str(q)
            .map(Q)
            .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))
    }
}

/// A JSON body, refused as a JSON 4xx when malformed.
#[derive(Debug)]
pub struct J<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for J<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        use axum::extract::rejection::JsonRejection;
        if !crate::auth::is_json(req.headers()) {
            return Err(crate::auth::not_json());
        }
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(J(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(crate::auth::not_json()),
            Err(JsonRejection::JsonDataError(e)) => Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                e.body_text(),
            )),
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the body is larger than {} bytes", crate::auth::BODY_LIMIT),
                ))
            }
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/api/v1/whoami", get(whoami))
        .route("/api/v1/environments", get(environments))
        .route("/api/v1/environments/{env}", get(environment))
        .route("/api/v1/environments/{env}/services", get(services))
        .route("/api/v1/environments/{env}/plan", get(plan))
        .route("/api/v1/environments/{env}/streams", get(streams))
        .route("/api/v1/environments/{env}/alerts", get(alerts))
        .route("/api/v1/environments/{env}/history", get(history))
        .route(
            "/api/v1/environments/{env}/tenants",
            get(tenants).post(tenant_create),
        )
        .route(
            "/api/v1/environments/{env}/tenants/{tenant}",
            get(tenant_get).delete(tenant_delete),
        )
        .route("/api/v1/audit", get(audit_list))
}

async fn healthz() -> Json<HealthView> {
    Json(HealthView {
        status: "ok".into(),
    })
}

async fn readyz(State(state): State<AppState>) -> Response {
    let mut problems = Vec::new();
    let tokens_ok = match state.tokens.verify("cpt_readiness") {
        Ok(_) => true,
        Err(e) => {
            problems.push(cp_runtime::error::chain(&e));
            false
        }
    };
    let audit_writable = {
        let a = state.audit.clone();
        tokio::task::spawn_blocking(move || a.writable())
            .await
            .unwrap_or(false)
    };
    if !audit_writable {
        problems.push(format!(
            "the audit log {} is not writable: mutations are refused",
            state.audit.path().display()
        ));
    }
    let status = if tokens_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(ReadyView {
            ready: tokens_ok,
            audit_writable,
            problems,
        }),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    // The jobs' collector reads state files: off the async threads.
    let text = tokio::task::spawn_blocking(move || state.metrics.encode())
        .await
        .unwrap_or_default();
    let mut res = text.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    res
}

async fn openapi() -> Response {
    let mut res = crate::openapi::document_json().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

async fn whoami(Extension(p): Extension<Principal>) -> Json<Principal> {
    Json(p)
}

/// The served environment `env`, or 404.
pub(crate) fn target<'a>(state: &'a AppState, env: &str) -> Result<&'a cp_app::Target, ApiError> {
    state.targets.get(env).ok_or_else(|| {
        ApiError::not_found(format!(
            "no environment `{env}` is served here; GET /api/v1/environments lists them"
        ))
    })
}

/// The environment view of a cache entry.
pub(crate) fn environment_view(
    name: &str,
    e: &probe::Entry,
    d: cp_app::drift::EnvDrift,
) -> EnvironmentView {
    let st = e.status.as_ref();
    EnvironmentView {
        name: name.to_owned(),
        tier: e.tier.clone(),
        driver: st.map(|s| s.driver.clone()),
        healthy: e.error.is_none() && st.is_some_and(|s| s.healthy),
        services_up: st.map_or(0, |s| {
            s.services
                .iter()
                .filter(|v| matches!(v.health, cp_app::views::HealthView::Healthy))
                .count()
        }),
        services_total: st.map_or(0, |s| {
            s.services
                .iter()
                .filter(|v| !matches!(v.state, cp_app::views::StateView::Skipped(_)))
                .count()
        }),
        services_skipped: st.map_or(0, |s| {
            s.services
                .iter()
                .filter(|v| matches!(v.state, cp_app::views::StateView::Skipped(_)))
                .count()
        }),
        probed_at: e
            .probed_at
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        error: e.error.clone(),
        drift: d.last,
        drift_error: d.last_error,
    }
}

async fn environments(State(state): State<AppState>) -> Json<EnvironmentsView> {
    let all = state.cache.all().await;
    Json(EnvironmentsView {
        environments: all
            .iter()
            .map(|(n, e)| environment_view(n, e, state.jobs.drift().get(n)))
            .collect(),
    })
}

async fn environment(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> Result<Json<EnvironmentView>, ApiError> {
    target(&state, &env)?;
    let e = state.cache.get(&env).await.unwrap_or_default();
    Ok(Json(environment_view(
        &env,
        &e,
        state.jobs.drift().get(&env),
    )))
}

/// The cached status of `env`, probing first when asked or when never probed.
pub(crate) async fn cached_status(
    state: &AppState,
    env: &str,
    refresh: bool,
) -> Result<(StatusView, Option<chrono::DateTime<chrono::Utc>>), ApiError> {
    target(state, env)?;
    let mut e = state.cache.get(env).await.unwrap_or_default();
    if refresh || e.probed_at.is_none() {
        probe::probe(state, env).await;
        e = state.cache.get(env).await.unwrap_or_default();
    }
    match (e.status, e.error) {
        (Some(st), None) => Ok((st, e.probed_at)),
        (_, Some(err)) => Err(ApiError::new(StatusCode::BAD_GATEWAY, "probe_failed", err)),
        (None, None) => Err(ApiError::internal(
            "the probe recorded neither a status nor an error",
        )),
    }
}

async fn services(
    State(state): State<AppState>,
    Path(env): Path<String>,
    Q(q): Q<RefreshQuery>,
) -> Result<Response, ApiError> {
    let (st, at) = cached_status(&state, &env, q.refresh.unwrap_or(false)).await?;
    let mut res = Json(st).into_response();
    if let Some(at) = at {
        let age = (chrono::Utc::now() - at).num_seconds().max(0);
        res.headers_mut()
            .insert(header::AGE, HeaderValue::from(age as u64));
    }
    Ok(res)
}

async fn plan(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> Result<Json<PlanView>, ApiError> {
    let s = state.envs.open(&env, Mode::ReadOnly).await?;
    let saved = cp_app::plan::plan(&s).await?;
    Ok(Json(saved.plan))
}

async fn streams(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> Result<Json<NatsView>, ApiError> {
    let s = state.envs.open(&env, Mode::ReadOnly).await?;
    Ok(Json(cp_app::ops::nats(&s).await?))
}

pub(crate) async fn alerts_view(
    state: &AppState,
    env: &str,
) -> Result<EnvironmentAlertsView, ApiError> {
    let model = state.envs.model(env)?;
    let prometheus = prometheus_url(state, env).await;
    let (firing, firing_error) = match &prometheus {
        None => (None, None),
        Some(url) => {
            let p = cp_runtime::prometheus::Prometheus::at_url(url);
            match cp_app::ops::alerts_from(&model, &p).await {
                Ok(f) => (Some(f), None),
                Err(e) => (None, Some(e.chain())),
            }
        }
    };
    Ok(EnvironmentAlertsView {
        rules: cp_app::ops::alert_rules(&model),
        prometheus,
        firing,
        firing_error,
    })
}

/// The last day of `env`: the server's samples and, with a Prometheus, the alerts
/// that fired (what the console's charts draw).
pub(crate) async fn history_view(
    state: &AppState,
    env: &str,
) -> Result<cp_app::views::history::HistoryView, ApiError> {
    target(state, env)?;
    let until = chrono::Utc::now();
    let since = until - crate::history::WINDOW;
    let samples = state.history.since(env, since);
    let alerts = match prometheus_url(state, env).await {
        Some(url) => cp_app::history::alert_timeline(&url, since, until).await,
        None => cp_app::history::from_samples(&samples, until),
    };
    Ok(cp_app::views::history::HistoryView {
        environment: env.to_owned(),
        since,
        until,
        samples,
        alerts,
    })
}

/// Where `env`'s Prometheus answers: the one `serve --prometheus ENV=URL` names,
/// else the one the environment runs (its driver says where); `None` when it runs
/// none.
pub(crate) async fn prometheus_url(state: &AppState, env: &str) -> Option<String> {
    if let Some(url) = state.config.prometheus.get(env) {
        return Some(url.clone());
    }
    let model = state.envs.model(env).ok()?;
    model.monitoring.as_ref()?.prometheus.as_ref()?;
    let s = state.envs.open(env, Mode::ReadOnly).await.ok()?;
    cp_app::ops::prometheus(&s).ok().map(|p| p.url().to_owned())
}

async fn history(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> Result<Json<cp_app::views::history::HistoryView>, ApiError> {
    Ok(Json(history_view(&state, &env).await?))
}

async fn alerts(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> Result<Json<EnvironmentAlertsView>, ApiError> {
    Ok(Json(alerts_view(&state, &env).await?))
}

/// Every tenant the principal may see.
pub(crate) async fn visible_tenants(
    state: &AppState,
    env: &str,
    p: &Principal,
) -> Result<TenantsView, ApiError> {
    let s = state.envs.open(env, Mode::ReadOnly).await?;
    let mut v = cp_app::ops::tenants_cached(&s, Some(&state.tenant_parts)).await?;
    v.tenants.retain(|t| p.may_see_tenant(&t.id, &t.slug));
    Ok(v)
}

async fn tenants(
    State(state): State<AppState>,
    Path(env): Path<String>,
    Extension(p): Extension<Principal>,
) -> Result<Json<TenantsView>, ApiError> {
    Ok(Json(visible_tenants(&state, &env, &p).await?))
}

fn no_tenant(env: &str, tenant: &str) -> ApiError {
    ApiError::not_found(format!(
        "no tenant {} in {env}; a tenant is named by its id (a UUID) or its slug",
        cp_app::ops::shown(tenant)
    ))
}

async fn tenant_get(
    State(state): State<AppState>,
    Path((env, tenant)): Path<(String, String)>,
    Extension(p): Extension<Principal>,
) -> Result<Json<TenantView>, ApiError> {
    target(&state, &env)?;
    if !cp_app::ops::is_tenant_key(&tenant) {
        return Err(no_tenant(&env, &tenant));
    }
    let v = visible_tenants(&state, &env, &p).await?;
    v.tenants
        .into_iter()
        .find(|t| t.id == tenant || t.slug == tenant)
        .map(Json)
        .ok_or_else(|| no_tenant(&env, &tenant))
}

/// What a tenant change acted on, for the audit log.
fn tenant_subject(env: &str, v: &TenantChangeView) -> Subject {
    Subject {
        env: Some(env.to_owned()),
        tenant_id: Some(v.tenant.id.clone()),
        tenant_slug: Some(v.tenant.slug.clone()),
        ..Subject::default()
    }
}

/// Creates a tenant: its slug and name are checked before anything is opened.
pub(crate) async fn create_tenant(
    state: &AppState,
    env: &str,
    slug: &str,
    name: Option<&str>,
) -> Result<(TenantChangeView, Subject), ApiError> {
    target(state, env)?;
    cp_app::ops::check_tenant(slug, name)?;
    let s = state.envs.open(env, Mode::Mutating("tenant")).await?;
    let v = cp_app::ops::tenant_create(&s, slug, name).await?;
    state.tenant_parts.forget(env, &v.tenant.id);
    let subject = tenant_subject(env, &v);
    Ok((v, subject))
}

async fn tenant_create(
    State(state): State<AppState>,
    Path(env): Path<String>,
    J(body): J<TenantCreateRequest>,
) -> Result<Response, ApiError> {
    let (v, subject) = create_tenant(&state, &env, &body.slug, body.name.as_deref()).await?;
    let status = if v.changed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut res = (status, Json(v)).into_response();
    res.extensions_mut().insert(subject);
    Ok(res)
}

/// Deletes a tenant the principal may see, once confirmed, and revokes the tokens
/// scoped to it.
pub(crate) async fn delete_tenant(
    state: &AppState,
    env: &str,
    tenant: &str,
    confirm: &str,
    p: &Principal,
) -> Result<(TenantChangeView, Subject), ApiError> {
    target(state, env)?;
    if !cp_app::ops::is_tenant_key(tenant) {
        return Err(no_tenant(env, tenant));
    }
    if confirm != tenant {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "confirmation_required",
            format!(
                "deleting a tenant destroys its key and rows: repeat its id or slug in `confirm` (\"confirm\": \"{tenant}\")"
            ),
        ));
    }
    if p.tenant.is_some() {
        let v = visible_tenants(state, env, p).await?;
        if !v.tenants.iter().any(|t| t.id == tenant || t.slug == tenant) {
            return Err(no_tenant(env, tenant));
        }
    }
    let s = state.envs.open(env, Mode::Mutating("tenant")).await?;
    let v = cp_app::ops::tenant_delete(&s, tenant).await?;
    state.tenant_parts.forget(env, &v.tenant.id);
    let mut subject = tenant_subject(env, &v);
    match state.tokens.revoke_tenant(&v.tenant.id, &v.tenant.slug) {
        Ok(names) => subject.tokens_revoked = names,
        // The tenant is gone; its tokens name an id no tenant will have again, so
        // they see nothing. Say so in the log rather than failing the delete.
        Err(e) => {
            tracing::error!(error = %cp_runtime::error::chain(&e), tenant = %v.tenant.id, "the deleted tenant's tokens could not be revoked")
        }
    }
    Ok((v, subject))
}

async fn tenant_delete(
    State(state): State<AppState>,
    Path((env, tenant)): Path<(String, String)>,
    Extension(p): Extension<Principal>,
    J(body): J<TenantDeleteRequest>,
) -> Result<Response, ApiError> {
    let (v, subject) = delete_tenant(&state, &env, &tenant, &body.confirm, &p).await?;
    let mut res = Json(v).into_response();
    res.extensions_mut().insert(subject);
    Ok(res)
}

fn time(name: &str, v: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    v.map(|s| {
        chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| ApiError::bad_request(format!("`{name}` is not an RFC 3339 time ({e})")))
    })
    .transpose()
}

/// Reads a page of the audit log.
pub(crate) async fn audit_page(state: &AppState, q: AuditQuery) -> Result<AuditPage, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if limit == 0 || limit as usize > audit::MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "`limit` must be between 1 and {}",
            audit::MAX_PAGE
        )));
    }
    let filter = Filter {
        since: time("since", q.since.as_deref())?,
        until: time("until", q.until.as_deref())?,
        actor: q.actor,
        action: q.action,
        outcome: q.outcome,
    };
    state
        .audit
        .page(filter, limit as usize, q.cursor.unwrap_or(0))
        .await
        .map_err(|e| ApiError::internal(cp_runtime::error::chain(&e)))
}

async fn audit_list(
    State(state): State<AppState>,
    Q(q): Q<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    Ok(Json(audit_page(&state, q).await?))
}
