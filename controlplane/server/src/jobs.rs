//! The job routes: backups (list, trigger, verify, restore, schedule), drift, rotation, locks,
//! schedules and jobs (state and SSE events), and the console's backups page. Every
//! handler translates a request into one `cp_app::Jobs` call and its view into a
//! response: the registry, the locks, the schedules and where a job runs are the
//! application layer's.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cp_app::JobRequest;
use cp_app::Mode;
use cp_app::views::jobs::{JobKind, ScheduleView};
use cp_app::views::{
    BackupListView, DriftView, JobResult, JobStartedView, JobView, JobsView, LocksView,
    RestoreView, SchedulesView, Trigger, VerifyView,
};
use http::{Method, StatusCode};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::api::{J, target};
use crate::audit::Subject;
use crate::error::ApiError;
use crate::routes::{Access, Role, Route, Surface, TenantScope};
use crate::state::AppState;

const fn r(
    method: Method,
    path: &'static str,
    action: &'static str,
    least: Role,
    surface: Surface,
) -> Route {
    Route {
        method,
        path,
        action,
        access: Access::Role(least),
        // Backups hold every tenant's data, and a drift report names every tenant's
        // resources: a tenant-scoped principal has no business with them.
        tenant: TenantScope::Denied,
        surface,
    }
}

/// The job routes of the access table (`crate::routes::all` chains them).
pub const ROUTES: &[Route] = &[
    r(
        Method::GET,
        "/api/v1/environments/{env}/backups",
        "backups.list",
        Role::Viewer,
        Surface::Api,
    ),
    r(
        Method::POST,
        "/api/v1/environments/{env}/backups",
        "backup.trigger",
        Role::Editor,
        Surface::Api,
    ),
    r(
        Method::GET,
        "/api/v1/environments/{env}/backups/schedule",
        "backup.schedule",
        Role::Viewer,
        Surface::Api,
    ),
    r(
        Method::POST,
        "/api/v1/environments/{env}/backups/{backup}/verify",
        "backup.verify",
        Role::Editor,
        Surface::Api,
    ),
    r(
        Method::POST,
        "/api/v1/environments/{env}/backups/{backup}/restore",
        "backup.restore",
        Role::Admin,
        Surface::Api,
    ),
    r(
        Method::GET,
        "/api/v1/environments/{env}/drift",
        "drift.get",
        Role::Viewer,
        Surface::Api,
    ),
    r(
        Method::POST,
        "/api/v1/environments/{env}/drift",
        "drift.check",
        Role::Editor,
        Surface::Api,
    ),
    r(
        Method::POST,
        "/api/v1/environments/{env}/rotate",
        "rotate",
        Role::Admin,
        Surface::Api,
    ),
    r(
        Method::GET,
        "/api/v1/environments/{env}/schedules",
        "schedules.list",
        Role::Viewer,
        Surface::Api,
    ),
    r(
        Method::GET,
        "/api/v1/environments/{env}/locks",
        "locks.list",
        Role::Viewer,
        Surface::Api,
    ),
    r(
        Method::GET,
        "/api/v1/jobs",
        "jobs.list",
        Role::Viewer,
        Surface::Api,
    ),
    r(
        Method::GET,
        "/api/v1/jobs/{job}",
        "job.get",
        Role::Viewer,
        Surface::Api,
    ),
    r(
        Method::GET,
        "/api/v1/jobs/{job}/events",
        "job.events",
        Role::Viewer,
        Surface::Api,
    ),
    // The console.
    r(
        Method::GET,
        "/console/env/{env}/backups",
        "console.backups",
        Role::Viewer,
        Surface::Console,
    ),
    r(
        Method::POST,
        "/console/env/{env}/backups",
        "console.backup_trigger",
        Role::Editor,
        Surface::Console,
    ),
    r(
        Method::POST,
        "/console/env/{env}/backups/{backup}/verify",
        "console.backup_verify",
        Role::Editor,
        Surface::Console,
    ),
    r(
        Method::GET,
        "/console/jobs/{job}/events",
        "console.job_events",
        Role::Viewer,
        Surface::Console,
    ),
];

/// `POST .../backups`: what to back up (every `backup.services` by default) and where
/// (the first destination by default).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// Services (`postgres`, `redis`, `nats`, `vault`); empty or absent: all of
    /// `backup.services`.
    #[serde(default)]
    pub services: Vec<String>,
    /// A destination name of `backup.destinations`.
    #[serde(default)]
    pub destination: Option<String>,
}

/// `POST .../rotate`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// `keys`, `passwords` or `all`.
    pub target: cp_app::views::rotate::RotateTarget,
    /// Core services (`postgres`, `redis`, `vault`); empty or absent: every one.
    #[serde(default)]
    pub services: Vec<String>,
    /// Must be `true` when passwords are rotated: their current values stop working
    /// for new connections.
    #[serde(default)]
    pub confirm: bool,
}

/// `POST .../backups/{backup}/verify`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// Also restore the set into scratch targets and check it.
    #[serde(default)]
    pub restore_drill: bool,
    /// A destination name of `backup.destinations`.
    #[serde(default)]
    pub destination: Option<String>,
}

/// `POST .../backups/{backup}/restore`: the confirmation.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// Must repeat the `{backup}` id of the path: the restore replaces what the
    /// environment's services hold.
    #[serde(default)]
    pub confirm: Option<String>,
    /// Only these services (default: every service the set holds).
    #[serde(default)]
    pub services: Vec<String>,
    /// A destination name of `backup.destinations`.
    #[serde(default)]
    pub destination: Option<String>,
}

fn services(names: &[String]) -> Result<Vec<cp_core::names::CoreKind>, ApiError> {
    cp_app::backup::services(names).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("`services`: {}", e.chain()),
        )
    })
}

fn backup_id(text: &str) -> Result<cp_app::backup::SetId, ApiError> {
    cp_app::backup::id(text).map_err(|e| {
        ApiError::bad_request(format!(
            "`{text}` is not a backup id ({}); GET /api/v1/environments/{{env}}/backups lists them",
            e.chain()
        ))
    })
}

/// What a job request acts on, for the audit log; refuses (422) an unknown
/// destination or service before any job or lock exists.
fn subject_of(
    env: &cp_core::model::Environment,
    request: &JobRequest,
) -> Result<Subject, ApiError> {
    let destination = cp_app::jobs::check_request(env, request)?;
    let names = |s: &[cp_core::names::CoreKind]| -> Vec<String> {
        s.iter().map(|k| k.as_str().to_owned()).collect()
    };
    let (backup_id, services) = match request {
        JobRequest::Backup { services, .. } if services.is_empty() => (
            None,
            env.backup
                .as_ref()
                .map(|b| names(&b.services))
                .unwrap_or_default(),
        ),
        JobRequest::Backup { services, .. } => (None, names(services)),
        JobRequest::Verify { id, .. } => (Some(id.to_string()), Vec::new()),
        JobRequest::Restore { id, services, .. } => (Some(id.to_string()), names(services)),
        JobRequest::Drift => (None, Vec::new()),
        JobRequest::Rotate { services, .. } => (None, names(services)),
        JobRequest::BaseBackup => (None, vec!["postgres".to_owned()]),
    };
    Ok(Subject {
        env: Some(env.name.to_string()),
        backup_id,
        destination,
        services,
        ..Subject::default()
    })
}

/// Starts a backup of `env`: 422 for an unknown destination or service, 409 naming
/// the holder when one runs (started here, by a schedule, or by the CLI). Returns the
/// job's id and what it acts on.
pub async fn start_backup(
    state: &AppState,
    env: &str,
    req: TriggerRequest,
    trigger: Trigger,
) -> Result<(String, Subject), ApiError> {
    let request = JobRequest::Backup {
        services: services(&req.services)?,
        destination: req.destination,
    };
    let prepared = state.envs.prepare(env).await?;
    let mut subject = subject_of(&prepared.env, &request)?;
    let id = state
        .jobs
        .start_prepared(prepared, request, trigger)
        .await?
        .id();
    subject.job_id = Some(id.clone());
    Ok((id, subject))
}

/// The job routes' handlers (the console's pages are in `crate::console`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/environments/{env}/backups",
            get(list).post(trigger),
        )
        .route("/api/v1/environments/{env}/backups/schedule", get(schedule))
        .route(
            "/api/v1/environments/{env}/backups/{backup}/verify",
            post(verify),
        )
        .route(
            "/api/v1/environments/{env}/backups/{backup}/restore",
            post(restore),
        )
        .route(
            "/api/v1/environments/{env}/drift",
            get(drift).post(drift_check),
        )
        .route("/api/v1/environments/{env}/rotate", post(rotate))
        .route("/api/v1/environments/{env}/schedules", get(schedules))
        .route("/api/v1/environments/{env}/locks", get(locks))
        .route("/api/v1/jobs", get(jobs))
        .route("/api/v1/jobs/{job}", get(job))
        .route("/api/v1/jobs/{job}/events", get(events))
        .route("/console/jobs/{job}/events", get(events))
        .route(
            "/console/env/{env}/backups",
            get(console_page).post(console_trigger),
        )
        .route(
            "/console/env/{env}/backups/{backup}/verify",
            post(console_verify),
        )
}

// ---- API -------------------------------------------------------------------------

/// The sets at `env`'s destination.
pub async fn list_sets(
    state: &AppState,
    env: &str,
    destination: Option<&str>,
) -> Result<BackupListView, ApiError> {
    let s = state.envs.open(env, Mode::ReadOnly).await?;
    Ok(cp_app::backup::list(&s, destination).await?)
}

async fn list(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> Result<Json<BackupListView>, ApiError> {
    Ok(Json(list_sets(&state, &env, None).await?))
}

/// A JSON body that may be empty (then the default).
#[derive(Debug)]
pub struct OptJ<T>(pub T);

impl<T: serde::de::DeserializeOwned + Default, S: Send + Sync> axum::extract::FromRequest<S>
    for OptJ<T>
{
    type Rejection = ApiError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let empty = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v == "0")
            || (req.headers().get(http::header::CONTENT_TYPE).is_none()
                && !req.headers().contains_key(http::header::TRANSFER_ENCODING)
                && !req.headers().contains_key(http::header::CONTENT_LENGTH));
        if empty {
            return Ok(OptJ(T::default()));
        }
        J::<T>::from_request(req, state).await.map(|J(v)| OptJ(v))
    }
}

fn started(job: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        [(http::header::LOCATION, format!("/api/v1/jobs/{job}"))],
        Json(JobStartedView::of(job)),
    )
        .into_response()
}

async fn trigger(
    State(state): State<AppState>,
    Path(env): Path<String>,
    OptJ(body): OptJ<TriggerRequest>,
) -> Result<Response, ApiError> {
    let (job, subject) = start_backup(&state, &env, body, Trigger::Api).await?;
    let mut res = started(&job);
    res.extensions_mut().insert(subject);
    Ok(res)
}

/// Runs `request` on `env` as a job and waits for its result, with what it acted on
/// (an unknown destination or service is refused before the job starts).
async fn run_job(
    state: &AppState,
    env: &str,
    request: JobRequest,
    trigger: Trigger,
) -> Result<(JobView, Subject), ApiError> {
    let prepared = state.envs.prepare(env).await?;
    let mut subject = subject_of(&prepared.env, &request)?;
    let handle = state
        .jobs
        .start_prepared(prepared, request, trigger)
        .await?;
    subject.job_id = Some(handle.id());
    let v = handle
        .outcome()
        .await
        .map_err(|e| ApiError::from(e.as_ref()))?;
    Ok((v, subject))
}

/// Verifies set `backup` of `env`.
pub async fn verify_set(
    state: &AppState,
    env: &str,
    backup: &str,
    body: VerifyRequest,
    trigger: Trigger,
) -> Result<(VerifyView, Subject), ApiError> {
    let request = JobRequest::Verify {
        id: backup_id(backup)?,
        destination: body.destination,
        drill: body.restore_drill,
    };
    let (job, subject) = run_job(state, env, request, trigger).await?;
    match job.result {
        Some(JobResult::Verify(v)) => Ok((v, subject)),
        other => Err(ApiError::internal(format!(
            "a verify job returned {other:?}"
        ))),
    }
}

async fn verify(
    State(state): State<AppState>,
    Path((env, backup)): Path<(String, String)>,
    OptJ(body): OptJ<VerifyRequest>,
) -> Result<Response, ApiError> {
    let (v, subject) = verify_set(&state, &env, &backup, body, Trigger::Api).await?;
    let mut res = Json(v).into_response();
    res.extensions_mut().insert(subject);
    Ok(res)
}

async fn restore(
    State(state): State<AppState>,
    Path((env, backup)): Path<(String, String)>,
    OptJ(body): OptJ<RestoreRequest>,
) -> Result<Response, ApiError> {
    target(&state, &env)?;
    if body.confirm.as_deref() != Some(backup.as_str()) {
        return Err(ApiError::bad_request(format!(
            "a restore replaces what {env}'s services hold with the set's contents: confirm it by sending the backup id of the path in `confirm` ({{\"confirm\": \"{backup}\"}})"
        )));
    }
    let request = JobRequest::Restore {
        id: backup_id(&backup)?,
        services: services(&body.services)?,
        destination: body.destination,
        into: None,
    };
    let (job, mut subject) = run_job(&state, &env, request, Trigger::Api).await?;
    match job.result {
        Some(JobResult::Restore(v)) => {
            if subject.services.is_empty() {
                // Every service the set held: as the restore names them.
                subject.services = v
                    .restored
                    .iter()
                    .filter_map(|l| l.split([':', ' ']).next())
                    .filter(|w| cp_core::names::CoreKind::from_name(w).is_some())
                    .map(str::to_owned)
                    .collect();
            }
            let mut res = Json::<RestoreView>(v).into_response();
            res.extensions_mut().insert(subject);
            Ok(res)
        }
        other => Err(ApiError::internal(format!(
            "a restore job returned {other:?}"
        ))),
    }
}

async fn rotate(
    State(state): State<AppState>,
    Path(env): Path<String>,
    J(body): J<RotateRequest>,
) -> Result<Response, ApiError> {
    target(&state, &env)?;
    if body.target.passwords() && !body.confirm {
        return Err(ApiError::bad_request(format!(
            "rotating passwords ends their current values for new connections in {env}: confirm it with `\"confirm\": true`"
        )));
    }
    let request = JobRequest::Rotate {
        target: body.target,
        services: services(&body.services)?,
        only_due: false,
    };
    let (job, subject) = run_job(&state, &env, request, Trigger::Api).await?;
    match job.result {
        Some(JobResult::Rotate(v)) => {
            let mut res = Json(v).into_response();
            res.extensions_mut().insert(subject);
            Ok(res)
        }
        other => Err(ApiError::internal(format!(
            "a rotation job returned {other:?}"
        ))),
    }
}

async fn drift(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> Result<Json<DriftView>, ApiError> {
    target(&state, &env)?;
    let d = state.jobs.drift().get(&env);
    d.last.map(Json).ok_or_else(|| {
        ApiError::not_found(match d.last_error {
            Some(e) => format!("no drift check of {env} has succeeded yet; the last failed: {e}"),
            None => format!(
                "no drift check of {env} has run yet; POST /api/v1/environments/{env}/drift checks now"
            ),
        })
    })
}

async fn drift_check(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> Result<Response, ApiError> {
    let (job, subject) = run_job(&state, &env, JobRequest::Drift, Trigger::Api).await?;
    match job.result {
        Some(JobResult::Drift(v)) => {
            let mut res = Json::<DriftView>(v).into_response();
            res.extensions_mut().insert(subject);
            Ok(res)
        }
        other => Err(ApiError::internal(format!(
            "a drift job returned {other:?}"
        ))),
    }
}

/// The schedules of `env`.
pub fn schedules_of(state: &AppState, env: &str) -> Result<SchedulesView, ApiError> {
    let model = state.envs.model(env)?;
    Ok(state.jobs.schedules(target(state, env)?, &model)?)
}

/// The backup schedule of `env`, or 422 saying how to enable backups.
pub fn backup_schedule(state: &AppState, env: &str) -> Result<ScheduleView, ApiError> {
    schedules_of(state, env)?
        .schedules
        .into_iter()
        .find(|s| s.kind == JobKind::Backup)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!(
                    "backups are not enabled in {env}; set backup.enabled and backup.destinations in its environment file"
                ),
            )
        })
}

async fn schedule(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    Ok(Json(backup_schedule(&state, &env)?))
}

async fn schedules(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> Result<Json<SchedulesView>, ApiError> {
    Ok(Json(schedules_of(&state, &env)?))
}

async fn locks(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> Result<Json<LocksView>, ApiError> {
    Ok(Json(cp_app::jobs::locks(target(&state, &env)?)))
}

async fn jobs(State(state): State<AppState>) -> Json<JobsView> {
    Json(state.jobs.list(None))
}

async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.jobs.get(&id)?.view()))
}

/// The job's events as SSE: every event so far, each new one as it happens, then
/// `result` with the whole [`JobView`] and the end of the stream.
/// The stream ends early when the server stops or when the token (or console session)
/// it was opened with is revoked or expires.
async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    holder: Option<axum::Extension<crate::auth::Holder>>,
) -> Result<Response, ApiError> {
    let handle = state.jobs.get(&id)?;
    let mut shutdown = state.shutdown.subscribe();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let revoked = holder.map(|h| crate::auth::until_revoked(state.clone(), h.0));
    tokio::spawn(async move {
        let progress = tx.clone();
        let stop = async move {
            let revoked = async move {
                match revoked {
                    Some(r) => r.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => {}
                () = revoked => {}
            }
        };
        let v = handle
            .follow(
                0,
                |e| {
                    let ev = Event::default()
                        .event("progress")
                        .json_data(e)
                        .expect("an event serializes");
                    let _ = progress.send(ev);
                },
                stop,
            )
            .await;
        if v.state != cp_app::views::JobState::Running {
            let ev = Event::default()
                .event("result")
                .json_data(&v)
                .expect("a job serializes");
            let _ = tx.send(ev);
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

// ---- Console ---------------------------------------------------------------------

/// How many sets the backup charts draw.
pub const CHART_SETS: usize = 10;

/// Per service, its stored size and duration over the newest [`CHART_SETS`] sets that
/// backed it up, oldest first.
pub fn backup_charts(v: &cp_app::views::BackupListView) -> Vec<crate::console::charts::Chart> {
    use crate::console::charts::{SetPoint, backup_charts as draw};
    let mut by_service: std::collections::BTreeMap<String, Vec<SetPoint>> = Default::default();
    // Newest first in the list: walk it backwards so each service's points are oldest first.
    for s in v.sets.iter().rev() {
        for st in s.entry.per_service.iter().filter(|st| st.ok) {
            by_service
                .entry(st.service.as_str().to_owned())
                .or_default()
                .push(SetPoint {
                    id: s.entry.id.as_str().to_owned(),
                    stored_size: st.stored_size,
                    duration_ms: st.duration_ms,
                });
        }
    }
    by_service
        .into_iter()
        .flat_map(|(service, mut points)| {
            let from = points.len().saturating_sub(CHART_SETS);
            points.drain(..from);
            draw(&service, &points)
        })
        .collect()
}

/// An environment's backups on the console's overview.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupCard {
    /// Its last backup.
    pub last: cp_app::views::BackupSummaryView,
    /// Its last verified restore ("ID (when)").
    pub verified: Option<String>,
}

/// Per environment with backups: its last backup and last verified restore.
pub async fn backup_cards(state: &AppState) -> std::collections::BTreeMap<String, BackupCard> {
    let mut out = std::collections::BTreeMap::new();
    for t in state.envs.targets() {
        let Some(last) = state
            .envs
            .model(&t.env)
            .ok()
            .and_then(|m| cp_app::backup::summary(t, &m))
        else {
            continue;
        };
        let verified = list_sets(state, &t.env, None)
            .await
            .ok()
            .as_ref()
            .and_then(cp_app::backup::last_verified);
        out.insert(t.env.clone(), BackupCard { last, verified });
    }
    out
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    msg: Option<String>,
    error: Option<String>,
    job: Option<String>,
}

fn console_back(env: &str, key: &str, text: &str, job: Option<&str>) -> Response {
    let mut q = vec![(key, text)];
    if let Some(j) = job {
        q.push(("job", j));
    }
    let q = serde_urlencoded::to_string(q).unwrap_or_default();
    axum::response::Redirect::to(&format!("/console/env/{env}/backups?{q}")).into_response()
}

fn console_failed(env: &str, e: ApiError) -> Response {
    let (code, external) = (e.code, e.external.clone());
    let _ = e.into_response();
    let mut res = console_back(env, "error", &external, None);
    res.extensions_mut().insert(crate::error::ErrorCode(code));
    res.extensions_mut().insert(crate::console::Failed);
    res
}

async fn console_page(
    State(state): State<AppState>,
    axum::Extension(p): axum::Extension<crate::auth::Principal>,
    Path(env): Path<String>,
    axum::extract::Query(q): axum::extract::Query<PageQuery>,
    headers: http::HeaderMap,
) -> Response {
    let Some(s) = crate::console::session_of(&state, &headers) else {
        return axum::response::Redirect::to("/console/login").into_response();
    };
    let Ok(t) = target(&state, &env) else {
        return crate::console::error_page(
            StatusCode::NOT_FOUND,
            &format!("no environment `{env}` is served here"),
        );
    };
    let mut ctx = crate::console::page_ctx(&p, &s.csrf, &format!("{env}: backups"));
    ctx.insert("env", &env);
    ctx.insert("msg", &q.msg);
    ctx.insert("error", &q.error);
    let job = q
        .job
        .and_then(|j| state.jobs.get(&j).ok())
        .map(|h| h.view());
    ctx.insert("job", &job);
    let (sets, sets_error) = match list_sets(&state, &env, None).await {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(e.external)),
    };
    let last_verified = sets.as_ref().and_then(cp_app::backup::last_verified);
    ctx.insert("backup_charts", &sets.as_ref().map(backup_charts));
    // Each set with its stored size as the CLI writes it.
    let rows: Vec<serde_json::Value> = sets
        .iter()
        .flat_map(|v| &v.sets)
        .map(|s| {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            v["stored_shown"] = cp_app::views::units::size(s.entry.stored_size).into();
            v
        })
        .collect();
    ctx.insert("rows", &rows);
    // The recoverable window as people read it: times to the second, its span and
    // the archive's lag with their units.
    let pitr_shown = sets
        .as_ref()
        .and_then(|v| v.pitr.as_ref())
        .map(cp_app::pitr::WindowView::shown);
    ctx.insert("pitr_shown", &pitr_shown);
    ctx.insert("sets", &sets);
    ctx.insert("sets_error", &sets_error);
    ctx.insert("last_verified", &last_verified);
    let summary = state
        .envs
        .model(&env)
        .ok()
        .and_then(|m| cp_app::backup::summary(t, &m));
    ctx.insert("last_backup", &summary);
    ctx.insert("schedule", &backup_schedule(&state, &env).ok());
    crate::console::render(&state, "backups.html", &ctx)
}

async fn console_trigger(State(state): State<AppState>, Path(env): Path<String>) -> Response {
    match start_backup(&state, &env, TriggerRequest::default(), Trigger::Console).await {
        Ok((job, subject)) => {
            let mut res = console_back(
                &env,
                "msg",
                &format!("backup started (job {job})"),
                Some(&job),
            );
            res.extensions_mut().insert(subject);
            res
        }
        Err(e) => console_failed(&env, e),
    }
}

#[derive(Debug, Deserialize)]
struct VerifyForm {
    #[serde(default)]
    restore_drill: Option<String>,
}

async fn console_verify(
    State(state): State<AppState>,
    Path((env, backup)): Path<(String, String)>,
    axum::Form(f): axum::Form<VerifyForm>,
) -> Response {
    let body = VerifyRequest {
        restore_drill: f.restore_drill.is_some(),
        destination: None,
    };
    let (mut res, subject) = match verify_set(&state, &env, &backup, body, Trigger::Console).await {
        Ok((v, subject)) if v.ok => (
            console_back(
                &env,
                "msg",
                &format!(
                    "{backup}: verified, {} artifacts read back and checked",
                    v.report.artifacts
                ),
                None,
            ),
            subject,
        ),
        Ok((v, subject)) => (
            console_back(
                &env,
                "error",
                &format!("{backup}: {}", v.report.problems.join("; ")),
                None,
            ),
            subject,
        ),
        Err(e) => return console_failed(&env, e),
    };
    res.extensions_mut().insert(subject);
    res
}
