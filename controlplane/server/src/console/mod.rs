//! The web console: server-rendered HTML (Tera templates compiled into the binary),
//! one stylesheet and one small script served from `/static/` (no inline script or
//! style, so the CSP forbids both), no third-party asset. Login with a token (or an
//! OIDC JWT) starts a session held in memory, named by an HttpOnly, SameSite=Strict
//! cookie; every form carries the session's CSRF token (the login form a
//! double-submit one), checked by the authorization middleware. Pages refresh live
//! from `/console/events` (SSE), which streams the status cache at each change.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Path, Request, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Form, Router};
use cp_app::views::{HealthView, ServiceView, StateView};
use http::{HeaderValue, StatusCode, header};
use rand::RngCore;
use serde::{Deserialize, Serialize};

pub mod charts;

use crate::auth::{self, Principal};
use crate::routes::Role;
use crate::state::AppState;

/// The session cookie.
pub const SESSION_COOKIE: &str = "cp_session";
/// The login form's double-submit cookie.
pub const LOGIN_CSRF_COOKIE: &str = "cp_login_csrf";
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
const MAX_SESSIONS: usize = 10_000;

/// A console session.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    /// Who logged in.
    pub principal: Principal,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
    /// What it logged in with, checked at every request (`auth::still_valid`).
    pub credential: auth::Credential,
    expires: Instant,
}

/// Sessions by id.
#[derive(Debug, Default)]
pub struct Sessions(Mutex<HashMap<String, ConsoleSession>>);

impl Sessions {
    /// The live session `sid`.
    pub fn get(&self, sid: &str) -> Option<ConsoleSession> {
        let mut m = self.0.lock().expect("sessions lock");
        match m.get(sid) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                m.remove(sid);
                None
            }
            None => None,
        }
    }

    fn start(
        &self,
        principal: Principal,
        credential: auth::Credential,
    ) -> (String, ConsoleSession) {
        let mut m = self.0.lock().expect("sessions lock");
        if m.len() >= MAX_SESSIONS {
            let now = Instant::now();
            m.retain(|_, s| s.expires > now);
        }
        let sid = random();
        let s = ConsoleSession {
            principal,
            credential,
            csrf: random(),
            expires: Instant::now() + SESSION_TTL,
        };
        m.insert(sid.clone(), s.clone());
        (sid, s)
    }

    /// Ends session `sid`.
    pub fn end(&self, sid: &str) {
        self.0.lock().expect("sessions lock").remove(sid);
    }
}

fn random() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Constant-time string equality (CSRF tokens).
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../assets/base.html")),
    ("login.html", include_str!("../../assets/login.html")),
    ("overview.html", include_str!("../../assets/overview.html")),
    (
        "environment.html",
        include_str!("../../assets/environment.html"),
    ),
    ("alerts.html", include_str!("../../assets/alerts.html")),
    ("audit.html", include_str!("../../assets/audit.html")),
    ("error.html", include_str!("../../assets/error.html")),
    ("backups.html", include_str!("../../assets/backups.html")),
];
const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");
const ICON: &str = include_str!("../../assets/favicon.svg");

/// The compiled templates (a template error is a bug caught by every test).
pub fn templates() -> tera::Tera {
    let mut t = tera::Tera::new();
    t.autoescape_on(vec![".html"]);
    t.add_raw_templates(TEMPLATES.iter().copied())
        .expect("the console templates compile");
    t
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/static/{file}", get(asset))
        .route("/console/login", get(login_form).post(login))
        .route("/console/logout", post(logout))
        .route("/console", get(overview))
        .route("/console/events", get(events))
        .route("/console/env/{env}", get(environment))
        .route("/console/env/{env}/tenants", post(tenant_create))
        .route(
            "/console/env/{env}/tenants/{tenant}/delete",
            post(tenant_delete),
        )
        .route("/console/alerts", get(alerts))
        .route("/console/audit", get(audit))
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, ct) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        "favicon.svg" => (ICON, "image/svg+xml"),
        _ => return error_page(StatusCode::NOT_FOUND, "no such file"),
    };
    let mut res = body.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

#[derive(Serialize)]
struct User {
    actor: String,
    role: String,
    tenant: Option<String>,
    admin: bool,
    editor: bool,
}

fn user(p: &Principal) -> User {
    User {
        actor: p.actor.clone(),
        role: p.role.to_string(),
        tenant: p.tenant.clone(),
        admin: p.role >= Role::Admin,
        editor: p.role >= Role::Editor,
    }
}

pub(crate) fn render(state: &AppState, name: &str, ctx: &tera::Context) -> Response {
    match state.templates.render(name, ctx) {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            crate::error::ApiError::internal(format!("template {name}: {e:?}")).into_response()
        }
    }
}

/// A page for an error (the message is the external one).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    static T: std::sync::OnceLock<tera::Tera> = std::sync::OnceLock::new();
    let t = T.get_or_init(templates);
    let mut ctx = tera::Context::new();
    ctx.insert("status", &status.as_u16());
    ctx.insert("reason", status.canonical_reason().unwrap_or("Error"));
    ctx.insert("message", message);
    let html = t
        .render("error.html", &ctx)
        .unwrap_or_else(|_| "error".to_owned());
    (status, Html(html)).into_response()
}

pub(crate) fn page_ctx(p: &Principal, csrf: &str, title: &str) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert("user", &user(p));
    ctx.insert("csrf", csrf);
    ctx.insert("title", title);
    ctx
}

/// The session of a request (the middleware has checked it exists).
pub(crate) fn session_of(
    state: &AppState,
    req_headers: &http::HeaderMap,
) -> Option<ConsoleSession> {
    auth::cookie(req_headers, SESSION_COOKIE).and_then(|sid| state.sessions.get(sid))
}

fn cookie_header(state: &AppState, name: &str, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.config.tls() { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("a valid cookie")
}

async fn login_form(State(state): State<AppState>, headers: http::HeaderMap) -> Response {
    login_page(&state, &headers, None, StatusCode::OK)
}

fn login_page(
    state: &AppState,
    headers: &http::HeaderMap,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let csrf = auth::cookie(headers, LOGIN_CSRF_COOKIE)
        .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(random, str::to_owned);
    let mut ctx = tera::Context::new();
    ctx.insert("csrf", &csrf);
    ctx.insert("error", &error);
    ctx.insert("title", "Log in");
    let mut res = render(state, "login.html", &ctx);
    *res.status_mut() = status;
    res.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(state, LOGIN_CSRF_COOKIE, &csrf, 3600),
    );
    res
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

async fn login(State(state): State<AppState>, req: Request) -> Response {
    let ip = auth::client_ip(&req);
    let headers = req.headers().clone();
    let Ok(Form(f)) =
        <Form<LoginForm> as axum::extract::FromRequest<()>>::from_request(req, &()).await
    else {
        return login_page(
            &state,
            &headers,
            Some("send the login form"),
            StatusCode::BAD_REQUEST,
        );
    };
    let expected = auth::cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if expected.is_empty() || !same(&f.csrf, expected) {
        return login_page(
            &state,
            &headers,
            Some("the form's CSRF token is missing or stale; try again"),
            StatusCode::FORBIDDEN,
        );
    }
    if let Some(secs) = state.failed_auth.blocked(ip) {
        return login_page(
            &state,
            &headers,
            Some(&format!(
                "too many failed logins from this address; try again in {secs}s"
            )),
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    match auth::identify_with(&state, f.token.trim()).await {
        Ok((p, credential)) => {
            let actor = p.actor.clone();
            let (sid, _) = state.sessions.start(p.clone(), credential);
            let mut res = Redirect::to("/console").into_response();
            res.headers_mut().append(
                header::SET_COOKIE,
                cookie_header(&state, SESSION_COOKIE, &sid, SESSION_TTL.as_secs()),
            );
            res.extensions_mut().insert(p);
            res.extensions_mut().insert(auth::Actor(actor));
            res
        }
        Err(e) => {
            state.failed_auth.failed(ip);
            tracing::info!(reason = %e, "console login refused");
            let mut res = login_page(
                &state,
                &headers,
                Some("invalid token"),
                StatusCode::UNAUTHORIZED,
            );
            res.extensions_mut()
                .insert(crate::error::ErrorCode("invalid_credentials"));
            res
        }
    }
}

async fn logout(State(state): State<AppState>, headers: http::HeaderMap) -> Response {
    if let Some(sid) = auth::cookie(&headers, SESSION_COOKIE) {
        state.sessions.end(sid);
    }
    let mut res = Redirect::to("/console/login").into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        cookie_header(&state, SESSION_COOKIE, "", 0),
    );
    res
}

/// A service as the console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRow {
    /// The service.
    pub service: String,
    /// `ok`, `bad` or `unknown` (the CSS class).
    pub class: &'static str,
    /// `healthy`, `down: why`, `unknown`, `skipped: why`.
    pub health: String,
    /// The version.
    pub version: String,
    /// The uptime.
    pub uptime: String,
    /// The endpoint.
    pub endpoint: String,
}

/// Each environment's health and drift charts over the last day (from the server's
/// own history, the numbers `GET .../history` answers).
pub fn env_charts(state: &AppState) -> std::collections::BTreeMap<String, [charts::Chart; 2]> {
    let until = chrono::Utc::now();
    let since = until - crate::history::WINDOW;
    state
        .targets
        .keys()
        .map(|env| {
            let samples = state.history.since(env, since);
            (
                env.clone(),
                [
                    charts::health_chart(env, &samples, since, until),
                    charts::drift_chart(env, &samples, since, until),
                ],
            )
        })
        .collect()
}

/// The row of a service view.
pub fn row(s: &ServiceView) -> ServiceRow {
    let (class, health) = match (&s.state, &s.health) {
        (StateView::Skipped(w), _) => ("unknown", format!("skipped: {w}")),
        (StateView::Running, HealthView::Healthy) => ("ok", "healthy".to_owned()),
        (StateView::Running, HealthView::Unhealthy(w)) => ("bad", format!("down: {w}")),
        (StateView::Running, HealthView::Unknown) => ("unknown", "unknown".to_owned()),
        (StateView::Stopped(w), _) => ("bad", format!("down: stopped ({w})")),
        (StateView::Missing, _) => ("bad", "down: not created".to_owned()),
    };
    ServiceRow {
        service: s.service.clone(),
        class,
        health,
        version: s.version.clone().unwrap_or_else(|| "-".into()),
        uptime: cp_app::views::units::uptime(s.uptime_secs),
        endpoint: s.endpoint.clone().unwrap_or_else(|| "-".into()),
    }
}

/// One environment on the overview (and in the event stream).
#[derive(Debug, Clone, Serialize)]
pub struct EnvCard {
    /// Its name.
    pub name: String,
    /// Its tier.
    pub tier: String,
    /// `ok` or `bad`.
    pub class: &'static str,
    /// `4/4 healthy`, or why it cannot be probed.
    pub summary: String,
    /// The services this platform runs.
    pub services: Vec<ServiceRow>,
    /// The services it does not run here, and why (`needs a container platform`).
    pub skipped: String,
    /// The drift, in words.
    pub drift: String,
    /// When last probed.
    pub probed_at: String,
}

/// Every environment's card, from the cache.
pub async fn cards(state: &AppState) -> Vec<EnvCard> {
    let all = state.cache.all().await;
    all.iter()
        .map(|(name, e)| {
            let v = crate::api::environment_view(name, e, state.jobs.drift().get(name));
            let all: Vec<&ServiceView> = e
                .status
                .as_ref()
                .map(|s| s.services.iter().collect())
                .unwrap_or_default();
            let services: Vec<ServiceRow> = all
                .iter()
                .filter(|s| !matches!(s.state, StateView::Skipped(_)))
                .map(|s| row(s))
                .collect();
            let mut why: std::collections::BTreeMap<String, Vec<String>> = Default::default();
            for s in &all {
                if let StateView::Skipped(w) = &s.state {
                    why.entry(w.clone()).or_default().push(s.service.clone());
                }
            }
            let skipped = why
                .iter()
                .map(|(w, names)| format!("{} ({w})", names.join(", ")))
                .collect::<Vec<_>>()
                .join("; ");
            let summary = match (&v.error, v.probed_at.is_some()) {
                (Some(err), _) => format!("cannot probe: {err}"),
                (None, false) => "not probed yet".to_owned(),
                (None, true) => format!("{}/{} healthy", v.services_up, v.services_total),
            };
            let drift = match (&v.drift, &v.drift_error) {
                (Some(d), _) if !d.drifted => format!("no drift (checked {})", d.checked_at),
                (Some(d), _) => {
                    let what: Vec<String> = d
                        .resources
                        .iter()
                        .map(|r| {
                            format!(
                                "{} {} {} since {}",
                                r.layer.as_str(),
                                r.action,
                                r.resource,
                                r.since
                            )
                        })
                        .collect();
                    format!("drifted (checked {}): {}", d.checked_at, what.join("; "))
                }
                (None, Some(err)) => format!("drift check failed: {err}"),
                (None, None) => "not checked for drift yet".to_owned(),
            };
            EnvCard {
                name: name.clone(),
                tier: v.tier.clone().unwrap_or_else(|| "-".into()),
                class: if v.healthy { "ok" } else { "bad" },
                summary,
                services,
                skipped,
                drift,
                probed_at: v.probed_at.unwrap_or_else(|| "-".into()),
            }
        })
        .collect()
}

async fn overview(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    headers: http::HeaderMap,
) -> Response {
    let Some(s) = session_of(&state, &headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let mut ctx = page_ctx(&p, &s.csrf, "Overview");
    ctx.insert("envs", &cards(&state).await);
    ctx.insert("backups", &crate::jobs::backup_cards(&state).await);
    ctx.insert("charts", &env_charts(&state));
    render(&state, "overview.html", &ctx)
}

async fn events(
    State(state): State<AppState>,
    headers: http::HeaderMap,
) -> Sse<impl futures::Stream<Item = Result<Event, Infallible>>> {
    let rx = state.cache.subscribe();
    let stop = state.shutdown.subscribe();
    let sid = auth::cookie(&headers, SESSION_COOKIE)
        .unwrap_or_default()
        .to_owned();
    let stream = futures::stream::unfold(
        (state, rx, stop, true),
        move |(state, mut rx, mut stop, first)| {
            let sid = sid.clone();
            async move {
                if *stop.borrow() {
                    return None;
                }
                if !first {
                    let holder = auth::Holder::Session(sid.clone());
                    tokio::select! {
                        changed = rx.changed() => changed.ok()?,
                        // The server is stopping: end the stream (the browser reconnects).
                        _ = stop.wait_for(|s| *s) => return None,
                        // Revoked or expired while nothing changed: end it now, not at
                        // the next change.
                        () = auth::until_revoked(state.clone(), holder) => return None,
                    }
                }
                // A session whose token was revoked meanwhile hears nothing more.
                let s = state.sessions.get(&sid)?;
                if auth::still_valid(&state, &s.credential).is_err() {
                    state.sessions.end(&sid);
                    return None;
                }
                let data = serde_json::to_string(&cards(&state).await).expect("cards serialize");
                Some((
                    Ok(Event::default().event("status").data(data)),
                    (state, rx, stop, false),
                ))
            }
        },
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[derive(Debug, Default, Deserialize)]
struct Msg {
    msg: Option<String>,
    error: Option<String>,
}

async fn environment(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path(env): Path<String>,
    axum::extract::Query(m): axum::extract::Query<Msg>,
    headers: http::HeaderMap,
) -> Response {
    let Some(s) = session_of(&state, &headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let Ok(_) = crate::api::target(&state, &env) else {
        return error_page(
            StatusCode::NOT_FOUND,
            &format!("no environment `{env}` is served here"),
        );
    };
    let card = cards(&state).await.into_iter().find(|c| c.name == env);
    let mut ctx = page_ctx(&p, &s.csrf, &env);
    ctx.insert("env", &env);
    ctx.insert("card", &card);
    ctx.insert("charts", &env_charts(&state).remove(&env));
    ctx.insert("msg", &m.msg);
    ctx.insert("error", &m.error);
    let session = state.envs.open(&env, cp_app::Mode::ReadOnly).await;
    let (plan, streams, tenants) = match &session {
        Ok(sess) => {
            let (plan, streams, tenants) = tokio::join!(
                cp_app::plan::plan(sess),
                cp_app::ops::nats(sess),
                cp_app::ops::tenants_cached(sess, Some(&state.tenant_parts))
            );
            (
                plan.map(|p| p.plan.to_string())
                    .map_err(|e| shown_error(&e)),
                streams.map_err(|e| shown_error(&e)),
                tenants.map_err(|e| shown_error(&e)),
            )
        }
        Err(e) => {
            let why = shown_error(e);
            (Err(why.clone()), Err(why.clone()), Err(why))
        }
    };
    ctx.insert("plan", &plan.as_ref().ok());
    ctx.insert("plan_error", &plan.as_ref().err());
    // Each stream with its size as the CLI writes it.
    let shown_streams = streams.as_ref().ok().map(|n| {
        n.streams
            .iter()
            .map(|s| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                v["bytes_shown"] = cp_app::views::units::size(s.bytes).into();
                v
            })
            .collect::<Vec<_>>()
    });
    ctx.insert("streams", &shown_streams);
    ctx.insert("streams_error", &streams.as_ref().err());
    let visible = tenants.as_ref().ok().map(|v| {
        v.tenants
            .iter()
            .filter(|t| p.may_see_tenant(&t.id, &t.slug))
            .cloned()
            .collect::<Vec<_>>()
    });
    ctx.insert("tenants", &visible);
    ctx.insert("tenants_error", &tenants.as_ref().err());
    render(&state, "environment.html", &ctx)
}

/// An application error as a page shows it: what the API would answer (the
/// database's own words stay in the log).
fn shown_error(e: &cp_app::AppError) -> String {
    let api = crate::error::ApiError::from(e);
    if let Some(internal) = &api.internal {
        tracing::warn!(error = %internal, "a console page part failed");
    }
    api.external
}

fn back(env: &str, key: &str, text: &str) -> Response {
    let q = serde_urlencoded::to_string([(key, text)]).unwrap_or_default();
    Redirect::to(&format!("/console/env/{env}?{q}")).into_response()
}

#[derive(Deserialize)]
struct CreateForm {
    slug: String,
    #[serde(default)]
    name: String,
}

async fn tenant_create(
    State(state): State<AppState>,
    Path(env): Path<String>,
    Form(f): Form<CreateForm>,
) -> Response {
    let name = Some(f.name.trim()).filter(|n| !n.is_empty());
    let (mut res, subject) =
        match crate::api::create_tenant(&state, &env, f.slug.trim(), name).await {
            Ok((v, subject)) if v.changed => (
                back(&env, "msg", &format!("tenant {} created", v.tenant.slug)),
                subject,
            ),
            Ok((v, subject)) => (
                back(
                    &env,
                    "msg",
                    &format!("tenant {} already exists", v.tenant.slug),
                ),
                subject,
            ),
            Err(e) => return failed(&env, e),
        };
    res.extensions_mut().insert(subject);
    res
}

fn failed(env: &str, e: crate::error::ApiError) -> Response {
    let code = e.code;
    let external = e.external.clone();
    // Log it as the API would, then show the external message on the page.
    let _ = e.into_response();
    let mut res = back(env, "error", &external);
    res.extensions_mut().insert(crate::error::ErrorCode(code));
    // A redirect is not a success for the audit log: mark it failed.
    *res.status_mut() = StatusCode::SEE_OTHER;
    res.extensions_mut().insert(Failed);
    res
}

/// Marks a console response whose action failed (it still redirects).
#[derive(Debug, Clone, Copy)]
pub struct Failed;

#[derive(Deserialize)]
struct DeleteForm {
    #[serde(default)]
    confirm: String,
}

async fn tenant_delete(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    Path((env, tenant)): Path<(String, String)>,
    Form(f): Form<DeleteForm>,
) -> Response {
    match crate::api::delete_tenant(&state, &env, &tenant, f.confirm.trim(), &p).await {
        Ok((v, subject)) => {
            let mut res = back(&env, "msg", &format!("tenant {} deleted", v.tenant.slug));
            res.extensions_mut().insert(subject);
            res
        }
        Err(e) => failed(&env, e),
    }
}

#[derive(Serialize)]
struct EnvAlerts {
    env: String,
    view: Option<cp_app::views::EnvironmentAlertsView>,
    error: Option<String>,
    timeline: Option<charts::Chart>,
}

async fn alerts(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    headers: http::HeaderMap,
) -> Response {
    let Some(s) = session_of(&state, &headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let mut out = Vec::new();
    for env in state.targets.keys() {
        let timeline = crate::api::history_view(&state, env)
            .await
            .ok()
            .map(|h| charts::alert_timeline(env, &h.alerts, h.since, h.until));
        match crate::api::alerts_view(&state, env).await {
            Ok(v) => out.push(EnvAlerts {
                env: env.clone(),
                view: Some(v),
                error: None,
                timeline,
            }),
            Err(e) => out.push(EnvAlerts {
                env: env.clone(),
                view: None,
                error: Some(e.external),
                timeline,
            }),
        }
    }
    let mut ctx = page_ctx(&p, &s.csrf, "Alerts");
    ctx.insert("envs", &out);
    render(&state, "alerts.html", &ctx)
}

#[derive(Debug, Default, Deserialize)]
struct AuditForm {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    cursor: Option<u64>,
    #[serde(default)]
    csrf: Option<String>,
}

async fn audit(
    State(state): State<AppState>,
    Extension(p): Extension<Principal>,
    axum::extract::Query(f): axum::extract::Query<AuditForm>,
    headers: http::HeaderMap,
) -> Response {
    let Some(s) = session_of(&state, &headers) else {
        return Redirect::to("/console/login").into_response();
    };
    let _ = f.csrf;
    let q = crate::api::AuditQuery {
        actor: Some(f.actor.clone()).filter(|s| !s.is_empty()),
        action: Some(f.action.clone()).filter(|s| !s.is_empty()),
        outcome: crate::audit::Outcome::parse(&f.outcome),
        limit: Some(50),
        cursor: f.cursor,
        ..Default::default()
    };
    let mut ctx = page_ctx(&p, &s.csrf, "Audit log");
    match crate::api::audit_page(&state, q).await {
        Ok(page) => {
            #[derive(Serialize)]
            struct Row {
                time: String,
                actor: String,
                role: String,
                tenant: String,
                action: String,
                target: String,
                outcome: String,
                status: u16,
                detail: String,
                request_id: String,
            }
            let rows: Vec<Row> = page
                .entries
                .iter()
                .map(|e| Row {
                    time: e.time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    actor: e.actor.clone(),
                    role: e.role.map_or_else(|| "-".into(), |r| r.to_string()),
                    tenant: e.tenant.clone().unwrap_or_else(|| "-".into()),
                    action: e.action.clone(),
                    target: e.target.clone(),
                    outcome: format!("{:?}", e.outcome).to_lowercase(),
                    status: e.status,
                    detail: e.detail.clone().unwrap_or_default(),
                    request_id: e.request_id.clone(),
                })
                .collect();
            ctx.insert("rows", &rows);
            let next = page.next_cursor.map(|c| {
                serde_urlencoded::to_string([
                    ("actor", f.actor.as_str()),
                    ("action", f.action.as_str()),
                    ("outcome", f.outcome.as_str()),
                    ("cursor", &c.to_string()),
                ])
                .unwrap_or_default()
            });
            ctx.insert("next", &next);
            ctx.insert("audit_error", &None::<String>);
        }
        Err(e) => {
            ctx.insert("rows", &Vec::<()>::new());
            ctx.insert("next", &None::<String>);
            ctx.insert("audit_error", &Some(e.external));
        }
    }
    ctx.insert("f_actor", &f.actor);
    ctx.insert("f_action", &f.action);
    ctx.insert("f_outcome", &f.outcome);
    render(&state, "audit.html", &ctx)
}
