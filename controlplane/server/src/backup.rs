//! Backups in `serve`, in one file of the server: the access-table entries
//! ([`ROUTES`]), the handlers ([`router`]), the jobs a trigger starts (progress by
//! SSE), the schedules of the served environments ([`run_schedules`], started by
//! `crate::serve_on` beside the prober) and the `controlplane_backup_*` gauges of
//! ARCHITECTURE.md's metrics contract ([`exposition`], read from each environment's
//! `backup/metrics.json` at scrape time, so CLI runs show too).
//!
//! Every backup goes through `cp_app::backup` over a `cp_app::Session`, as the CLI's
//! do. The session is read-only, as the CLI's `backup` is: what serializes backups is
//! the environment's `backup` lock, which `cp_app::backup::backup` takes; holding the
//! environment lock as well would refuse tenant changes for a backup's duration.
//! A trigger answers 409 naming the holder when that lock is taken (by the CLI, a
//! schedule or another trigger); a schedule slot that finds it taken is reported as
//! skipped, with the holder.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, SecondsFormat, Utc};
use cp_app::views::{BackupListView, BackupView, RestoreView, VerifyView};
use cp_app::{Mode, Session};
use cp_backup::run::{Progress, ServiceLine};
use cp_core::model::Schedule;
use cp_core::names::CoreKind;
use http::{Method, StatusCode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::api::{J, target};
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
        // Backups hold every tenant's data: a tenant-scoped principal has no business
        // with them.
        tenant: TenantScope::Denied,
        surface,
    }
}

/// The backup routes of the access table (`crate::routes::all` chains them).
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

/// The view names the OpenAPI components and the console templates use.
pub const VIEWS: &[&str] = &[
    "BackupListView",
    "JobView",
    "VerifyView",
    "RestoreView",
    "ScheduleView",
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

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Still going.
    Running,
    /// Every service was backed up.
    Succeeded,
    /// The run failed, or some service did (the result says which).
    Failed,
}

/// One progress event of a job.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JobEvent {
    /// Its number in the job, from 0.
    pub seq: usize,
    /// When (RFC 3339).
    pub at: String,
    /// `started` or `finished`.
    pub event: String,
    /// The service.
    pub service: CoreKind,
    /// The service's line, once finished.
    pub line: Option<ServiceLine>,
}

/// A backup job.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JobView {
    /// Its id.
    pub id: String,
    /// The environment.
    pub environment: String,
    /// `api`, `console`, `schedule` or `catch-up`.
    pub trigger: String,
    /// Its state.
    pub state: JobState,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Progress, in order.
    pub events: Vec<JobEvent>,
    /// What the backup did, once ended.
    pub result: Option<BackupView>,
    /// Why it failed as a whole.
    pub error: Option<String>,
}

/// `POST .../backups`: the job started.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JobStartedView {
    /// The job id.
    pub job: String,
    /// `GET` this for its state and result.
    pub href: String,
    /// Server-sent events: each service's progress, then the result.
    pub events: String,
}

/// Slots of the schedule that passed with no run, found when `serve` started.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MissedView {
    /// How many slots passed.
    pub count: usize,
    /// Since the last recorded run (RFC 3339).
    pub since: String,
    /// "missed N runs since T", as logged.
    pub message: String,
}

/// The outcome of the last scheduled slot.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TickView {
    /// The slot (RFC 3339).
    pub slot: String,
    /// `succeeded`, `failed` or `skipped`.
    pub outcome: String,
    /// Why skipped or failed (a skipped slot names the lock's holder).
    pub detail: Option<String>,
    /// The job that ran it.
    pub job: Option<String>,
}

/// `GET .../backups/schedule`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ScheduleView {
    /// The environment.
    pub environment: String,
    /// `backup.schedule` (five fields, UTC).
    pub cron: String,
    /// Whether this server runs it (a server started for tests or through the router
    /// alone does not).
    pub running: bool,
    /// The next slot (RFC 3339).
    pub next_run: Option<String>,
    /// The last run recorded (RFC 3339): a scheduled run, or any successful backup.
    pub last_run: Option<String>,
    /// Runs missed while no server ran the schedule.
    pub missed: Option<MissedView>,
    /// The last slot this server handled.
    pub last_tick: Option<TickView>,
    /// Why the schedule cannot be followed.
    pub error: Option<String>,
}

#[derive(Debug)]
struct Job {
    view: Mutex<JobView>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Job {
    fn update(&self, f: impl FnOnce(&mut JobView)) {
        f(&mut self.view.lock().expect("job lock"));
        self.changed.send_modify(|v| *v += 1);
    }

    fn snapshot(&self) -> JobView {
        self.view.lock().expect("job lock").clone()
    }
}

struct JobProgress(Arc<Job>);

impl Progress for JobProgress {
    fn started(&self, service: CoreKind, _: &cp_backup::pipeline::Meter) {
        self.0.update(|v| {
            let seq = v.events.len();
            v.events.push(JobEvent {
                seq,
                at: now(),
                event: "started".into(),
                service,
                line: None,
            });
        });
    }

    fn finished(&self, line: &ServiceLine) {
        self.0.update(|v| {
            let seq = v.events.len();
            v.events.push(JobEvent {
                seq,
                at: now(),
                event: "finished".into(),
                service: line.service,
                line: Some(line.clone()),
            });
        });
    }
}

#[derive(Debug, Default)]
struct Schedules {
    running: bool,
    missed: Option<MissedView>,
    last_tick: Option<TickView>,
}

/// The server's backup state: jobs (the last [`MAX_JOBS`] kept), the running job per
/// environment, and what the schedules reported.
#[derive(Debug, Default)]
pub struct Backups {
    jobs: Mutex<BTreeMap<String, Arc<Job>>>,
    running: Mutex<BTreeMap<String, String>>,
    schedules: Mutex<BTreeMap<String, Schedules>>,
}

/// Finished jobs kept for `GET /api/v1/jobs/{job}`.
pub const MAX_JOBS: usize = 100;

fn now() -> String {
    rfc3339(Utc::now())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn chain(e: &dyn std::error::Error) -> String {
    crate::state::cp_seed_chain(e)
}

fn busy(env: &str, holder: &str) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "busy",
        format!(
            "a backup of {env} is already running ({holder}); wait for it to finish (GET /api/v1/environments/{env}/backups lists the sets)"
        ),
    )
}

/// The backup settings of `env`, or 422 saying how to enable them.
fn settings(t: &cp_app::Target) -> Result<cp_core::model::Backup, ApiError> {
    let env = cp_app::session::load(t)?;
    env.backup.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!(
                "backups are not enabled in {}; set backup.enabled and backup.destinations in its environment file",
                t.env
            ),
        )
    })
}

fn services(names: &[String]) -> Result<Vec<CoreKind>, ApiError> {
    cp_app::backup::services(names).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid",
            format!("`services`: {e}"),
        )
    })
}

fn backup_id(text: &str) -> Result<cp_backup::BackupId, ApiError> {
    cp_app::backup::id(text).map_err(|e| {
        ApiError::bad_request(format!(
            "`{text}` is not a backup id ({e}); GET /api/v1/environments/{{env}}/backups lists them"
        ))
    })
}

impl AppState {
    /// Starts a backup job of `env`: 409 naming the holder when a backup runs
    /// (started here, by a schedule, or by the CLI).
    pub fn start_backup(
        &self,
        env: &str,
        req: TriggerRequest,
        trigger: &str,
    ) -> Result<String, ApiError> {
        let t = target(self, env)?.clone();
        settings(&t)?;
        let kinds = services(&req.services)?;
        let id = format!("job-{}", uuid::Uuid::new_v4().simple());
        {
            let mut running = self.backups.running.lock().expect("running lock");
            if let Some(job) = running.get(env) {
                return Err(busy(env, &format!("job {job} of this server")));
            }
            // Another process (the CLI, the CronJob) holds the lock: say who. The
            // probe lets go at once; a run that takes it in between makes the job fail
            // with the same holder in its error.
            let state = cp_runtime::state::StateDir::open(t.state_path(), env)
                .map_err(|e| ApiError::internal(chain(&e)))?;
            match cp_backup::run::lock(&state, "serve (checking the backup lock)") {
                Ok(l) => drop(l),
                Err(cp_backup::run::BackupError::State(cp_runtime::state::StateError::Busy {
                    holder,
                    ..
                })) => return Err(busy(env, &holder)),
                Err(e) => return Err(ApiError::internal(chain(&e))),
            }
            running.insert(env.to_owned(), id.clone());
        }
        let job = Arc::new(Job {
            view: Mutex::new(JobView {
                id: id.clone(),
                environment: env.to_owned(),
                trigger: trigger.to_owned(),
                state: JobState::Running,
                started_at: now(),
                finished_at: None,
                events: Vec::new(),
                result: None,
                error: None,
            }),
            changed: tokio::sync::watch::channel(0).0,
        });
        {
            let mut jobs = self.backups.jobs.lock().expect("jobs lock");
            while jobs.len() >= MAX_JOBS {
                let oldest = jobs
                    .iter()
                    .filter(|(_, j)| j.snapshot().state != JobState::Running)
                    .min_by_key(|(_, j)| j.snapshot().started_at)
                    .map(|(k, _)| k.clone());
                match oldest {
                    Some(k) => jobs.remove(&k),
                    None => break,
                };
            }
            jobs.insert(id.clone(), job.clone());
        }
        let state = self.clone();
        let env = env.to_owned();
        tokio::spawn(async move {
            let progress = JobProgress(job.clone());
            let r = on_this_runtime(move || async move {
                let s = Session::open(&t, Mode::ReadOnly, None).await?;
                cp_app::backup::backup(&s, &kinds, req.destination.as_deref(), &progress).await
            })
            .await;
            job.update(|v| {
                v.finished_at = Some(now());
                match r {
                    Ok(view) => {
                        v.state = if view.report.state == "complete" {
                            JobState::Succeeded
                        } else {
                            JobState::Failed
                        };
                        v.result = Some(view);
                    }
                    Err(e) => {
                        v.state = JobState::Failed;
                        v.error = Some(chain(&e));
                    }
                }
            });
            let v = job.snapshot();
            match v.state {
                JobState::Succeeded => {
                    tracing::info!(env = %env, job = %v.id, trigger = %v.trigger, "backup succeeded");
                }
                _ => {
                    let why = v.error.clone().unwrap_or_else(|| {
                        v.result.as_ref().map_or_else(String::new, |r| {
                            r.report
                                .services
                                .iter()
                                .filter(|l| !l.ok)
                                .map(|l| {
                                    format!("{}: {}", l.service, l.error.as_deref().unwrap_or(""))
                                })
                                .collect::<Vec<_>>()
                                .join("; ")
                        })
                    });
                    tracing::warn!(env = %env, job = %v.id, trigger = %v.trigger, error = %why, "backup failed");
                }
            }
            state
                .backups
                .running
                .lock()
                .expect("running lock")
                .remove(&env);
        });
        Ok(id)
    }

    fn job(&self, id: &str) -> Result<Arc<Job>, ApiError> {
        self.backups
            .jobs
            .lock()
            .expect("jobs lock")
            .get(id)
            .cloned()
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "no job `{id}` on this server (jobs are kept in memory: the last {MAX_JOBS}, until the server restarts)"
                ))
            })
    }

    /// The state of job `id`.
    pub fn job_view(&self, id: &str) -> Result<JobView, ApiError> {
        Ok(self.job(id)?.snapshot())
    }
}

/// The backup handlers (the console's pages are in `crate::console`).
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

// ---- Console ---------------------------------------------------------------------

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

/// The last backup per service and overall, from the metrics file, for the pages.
#[derive(Debug, Serialize)]
struct LastBackup {
    age: String,
    state: String,
    class: String,
}

/// "last backup" of `env` (age of the oldest service's last success, and whether
/// the last run of every service succeeded), for the overview and the backups page.
pub(crate) fn last_backup(state: &AppState, env: &str) -> Option<serde_json::Value> {
    let t = state.targets.get(env)?;
    let e = cp_app::session::load(t).ok()?;
    let b = e.backup.as_ref()?;
    let m = cp_runtime::state::StateDir::open_existing(t.state_path())
        .ok()
        .flatten()
        .map(|d| cp_backup::metrics::Metrics::read(&d))
        .unwrap_or_default();
    let per: Vec<_> = b
        .services
        .iter()
        .map(|s| m.services.get(s).cloned().unwrap_or_default())
        .collect();
    let oldest = per
        .iter()
        .map(|m| m.last_success_timestamp_seconds)
        .min()
        .unwrap_or(0);
    let ok = per.iter().all(|m| m.last_run_success == 1);
    let v = if oldest == 0 {
        LastBackup {
            age: "never".into(),
            state: if per.iter().any(|m| m.duration_seconds > 0.0) {
                "failed".into()
            } else {
                "none yet".into()
            },
            class: "down".into(),
        }
    } else {
        let at = DateTime::from_timestamp(oldest, 0).unwrap_or_default();
        LastBackup {
            age: cp_backup::catalog::age(at, Utc::now()),
            state: if ok {
                "ok".into()
            } else {
                "last run failed".into()
            },
            class: if ok { "up".into() } else { "down".into() },
        }
    };
    serde_json::to_value(v).ok()
}

/// Per environment with backups: its last backup and last verified restore.
pub(crate) async fn overview(state: &AppState) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for env in state.targets.keys() {
        let Some(last) = last_backup(state, env) else {
            continue;
        };
        let verified = last_verified(list_sets(state, env, None).await.ok().as_ref());
        out.insert(
            env.clone(),
            serde_json::json!({"last": last, "verified": verified}),
        );
    }
    out
}

fn last_verified(sets: Option<&BackupListView>) -> Option<String> {
    sets.and_then(|v| {
        v.sets.iter().find_map(|s| match &s.entry.state {
            cp_backup::catalog::SetState::Verified { at }
            | cp_backup::catalog::SetState::Drilled { at } => {
                Some(format!("{} ({})", s.entry.id.as_str(), rfc3339(*at)))
            }
            _ => None,
        })
    })
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
    if target(&state, &env).is_err() {
        return crate::console::error_page(
            StatusCode::NOT_FOUND,
            &format!("no environment `{env}` is served here"),
        );
    }
    let mut ctx = crate::console::page_ctx(&p, &s.csrf, &format!("{env}: backups"));
    ctx.insert("env", &env);
    ctx.insert("msg", &q.msg);
    ctx.insert("error", &q.error);
    let job = q.job.and_then(|j| state.job_view(&j).ok());
    ctx.insert("job", &job);
    let (sets, sets_error) = match list_sets(&state, &env, None).await {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(e.external)),
    };
    let last_verified = last_verified(sets.as_ref());
    ctx.insert("sets", &sets);
    ctx.insert("sets_error", &sets_error);
    ctx.insert("last_verified", &last_verified);
    ctx.insert("last_backup", &last_backup(&state, &env));
    ctx.insert("schedule", &schedule_view(&state, &env).ok());
    crate::console::render(&state, "backups.html", &ctx)
}

async fn console_trigger(State(state): State<AppState>, Path(env): Path<String>) -> Response {
    match state.start_backup(&env, TriggerRequest::default(), "console") {
        Ok(job) => console_back(
            &env,
            "msg",
            &format!("backup started (job {job})"),
            Some(&job),
        ),
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
    match verify_set(&state, &env, &backup, body).await {
        Ok(v) if v.ok => console_back(
            &env,
            "msg",
            &format!(
                "{backup}: verified, {} artifacts read back and checked",
                v.report.artifacts
            ),
            None,
        ),
        Ok(v) => console_back(
            &env,
            "error",
            &format!("{backup}: {}", v.report.problems.join("; ")),
            None,
        ),
        Err(e) => console_failed(&env, e),
    }
}

/// The sets at `env`'s destination.
pub async fn list_sets(
    state: &AppState,
    env: &str,
    destination: Option<&str>,
) -> Result<BackupListView, ApiError> {
    let t = target(state, env)?;
    settings(t)?;
    let s = Session::open(t, Mode::ReadOnly, None).await?;
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

async fn trigger(
    State(state): State<AppState>,
    Path(env): Path<String>,
    OptJ(body): OptJ<TriggerRequest>,
) -> Result<Response, ApiError> {
    let job = state.start_backup(&env, body, "api")?;
    Ok((
        StatusCode::ACCEPTED,
        [(http::header::LOCATION, format!("/api/v1/jobs/{job}"))],
        Json(JobStartedView {
            href: format!("/api/v1/jobs/{job}"),
            events: format!("/api/v1/jobs/{job}/events"),
            job,
        }),
    )
        .into_response())
}

/// Verifies set `backup` of `env`.
pub async fn verify_set(
    state: &AppState,
    env: &str,
    backup: &str,
    body: VerifyRequest,
) -> Result<VerifyView, ApiError> {
    let t = target(state, env)?;
    settings(t)?;
    let id = backup_id(backup)?;
    let t = t.clone();
    Ok(on_this_runtime(move || async move {
        let s = Session::open(&t, Mode::ReadOnly, None).await?;
        cp_app::backup::verify(&s, &id, body.destination.as_deref(), body.restore_drill).await
    })
    .await?)
}

async fn verify(
    State(state): State<AppState>,
    Path((env, backup)): Path<(String, String)>,
    OptJ(body): OptJ<VerifyRequest>,
) -> Result<Json<VerifyView>, ApiError> {
    Ok(Json(verify_set(&state, &env, &backup, body).await?))
}

async fn restore(
    State(state): State<AppState>,
    Path((env, backup)): Path<(String, String)>,
    OptJ(body): OptJ<RestoreRequest>,
) -> Result<Json<RestoreView>, ApiError> {
    let t = target(&state, &env)?;
    if body.confirm.as_deref() != Some(backup.as_str()) {
        return Err(ApiError::bad_request(format!(
            "a restore replaces what {env}'s services hold with the set's contents: confirm it by sending the backup id of the path in `confirm` ({{\"confirm\": \"{backup}\"}})"
        )));
    }
    settings(t)?;
    let id = backup_id(&backup)?;
    let kinds = services(&body.services)?;
    let t = t.clone();
    let view = on_this_runtime(move || async move {
        let s = Session::open(&t, Mode::Mutating("restore"), None).await?;
        cp_app::backup::restore(&s, &s, &id, &kinds, body.destination.as_deref()).await
    })
    .await?;
    Ok(Json(view))
}

/// Runs `f` to completion on a blocking thread of the current runtime. The backup
/// and restore futures of `cp_app` hold borrows across awaits that the compiler
/// cannot prove `Send` for every lifetime, so they cannot be `tokio::spawn`ed or
/// awaited in a handler; driven by `block_on` on a blocking thread, they need not be,
/// and still use the runtime's I/O and timers.
/// The future is made on that thread from `make`, which is `Send`.
async fn on_this_runtime<T, F, Fut>(make: F) -> Result<T, cp_app::AppError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, cp_app::AppError>>,
{
    let handle = tokio::runtime::Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let _ = tx.send(handle.block_on(make()));
    });
    rx.await.unwrap_or_else(|_| {
        Err(cp_app::AppError::Usage(
            "the backup task ended without an answer (it panicked; the server's log says why)"
                .into(),
        ))
    })
}

async fn job(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(state.job_view(&id)?))
}

/// The job's events as SSE: every event so far, each new one as it happens, then
/// `result` with the whole [`JobView`] and the end of the stream.
async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let job = state.job(&id)?;
    let mut changed = job.changed.subscribe();
    let mut shutdown = state.shutdown.subscribe();
    let stream = async_stream(move |tx| async move {
        let mut sent = 0;
        loop {
            let v = job.snapshot();
            for e in &v.events[sent..] {
                let ev = Event::default()
                    .event("progress")
                    .json_data(e)
                    .expect("an event serializes");
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
            sent = v.events.len();
            if v.state != JobState::Running {
                let ev = Event::default()
                    .event("result")
                    .json_data(&v)
                    .expect("a job serializes");
                let _ = tx.send(ev).await;
                return;
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return },
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// A stream fed by a task through a channel.
fn async_stream<F, Fut>(f: F) -> impl futures::Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}

// ---- Schedules -------------------------------------------------------------------

/// What serve records per environment about its scheduled runs
/// (`backup/schedule.json` in the environment's state directory).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ScheduleState {
    /// When the last scheduled run started.
    last_run: Option<DateTime<Utc>>,
}

const SCHEDULE_FILE: &str = "backup/schedule.json";

/// The last run recorded: the later of serve's last scheduled run and the newest
/// success in the metrics file (a CLI run counts).
fn last_run(t: &cp_app::Target) -> Option<DateTime<Utc>> {
    let dir = cp_runtime::state::StateDir::open_existing(t.state_path())
        .ok()
        .flatten()?;
    let scheduled = dir
        .read(SCHEDULE_FILE)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<ScheduleState>(&b).ok())
        .and_then(|s| s.last_run);
    let succeeded = cp_backup::metrics::Metrics::read(&dir)
        .services
        .values()
        .map(|m| m.last_success_timestamp_seconds)
        .filter(|t| *t > 0)
        .max()
        .and_then(|s| DateTime::from_timestamp(s, 0));
    scheduled.max(succeeded)
}

fn record_run(t: &cp_app::Target, at: DateTime<Utc>) {
    let r = cp_runtime::state::StateDir::open(t.state_path(), &t.env).and_then(|d| {
        d.write(
            SCHEDULE_FILE,
            &serde_json::to_vec_pretty(&ScheduleState { last_run: Some(at) }).expect("serializes"),
            0o644,
        )
    });
    if let Err(e) = r {
        tracing::warn!(env = %t.env, error = %chain(&e), "the scheduled run could not be recorded");
    }
}

/// The slots of `schedule` after `since` up to `now` (at most `cap`).
pub fn slots_between(
    schedule: &Schedule,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    cap: usize,
) -> Result<Vec<DateTime<Utc>>, cp_backup::schedule::ScheduleError> {
    let mut out = Vec::new();
    let mut t = since;
    while out.len() < cap {
        let next = cp_backup::schedule::next_after(schedule, t)?;
        if next > now {
            break;
        }
        out.push(next);
        t = next;
    }
    Ok(out)
}

/// The missed-runs report for slots since `last` (none when nothing was missed).
pub fn missed(
    schedule: &Schedule,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<MissedView>, cp_backup::schedule::ScheduleError> {
    const CAP: usize = 10_000;
    let n = slots_between(schedule, last, now, CAP)?.len();
    Ok((n > 0).then(|| {
        let more = if n == CAP { " or more" } else { "" };
        let plural = if n == 1 { "" } else { "s" };
        MissedView {
            count: n,
            since: rfc3339(last),
            message: format!(
                "missed {n}{more} scheduled backup run{plural} since {} (no server ran `{}`)",
                rfc3339(last),
                schedule.cron
            ),
        }
    }))
}

/// Runs one slot: a job like a trigger's, waited for. Returns whether it succeeded.
async fn run_slot(
    state: &AppState,
    t: &cp_app::Target,
    slot: DateTime<Utc>,
    trigger: &str,
) -> bool {
    let tick = |outcome: &str, detail: Option<String>, job: Option<String>| {
        state
            .backups
            .schedules
            .lock()
            .expect("schedules lock")
            .entry(t.env.clone())
            .or_default()
            .last_tick = Some(TickView {
            slot: rfc3339(slot),
            outcome: outcome.to_owned(),
            detail,
            job,
        });
    };
    record_run(t, Utc::now());
    let id = match state.start_backup(&t.env, TriggerRequest::default(), trigger) {
        Ok(id) => id,
        Err(e) => {
            tracing::warn!(env = %t.env, slot = %rfc3339(slot), reason = %e.external, "scheduled backup skipped");
            let outcome = if e.status == StatusCode::CONFLICT {
                "skipped"
            } else {
                "failed"
            };
            tick(outcome, Some(e.external), None);
            return false;
        }
    };
    let Ok(job) = state.job(&id) else {
        return false;
    };
    let mut changed = job.changed.subscribe();
    loop {
        let v = job.snapshot();
        if v.state != JobState::Running {
            let ok = v.state == JobState::Succeeded;
            let detail = (!ok).then(|| {
                v.error.clone().unwrap_or_else(|| {
                    "some services failed; GET /api/v1/jobs/{job} says which".replace("{job}", &id)
                })
            });
            tick(if ok { "succeeded" } else { "failed" }, detail, Some(id));
            return ok;
        }
        if changed.changed().await.is_err() {
            return false;
        }
    }
}

/// The schedule of every served environment with backups, until the future is
/// dropped. At start, slots that passed since the last recorded run are reported
/// ("missed N runs since T", logged and in the API and console) and one catch-up
/// run is made; a fresh environment with no run recorded waits for its first slot.
pub async fn run_schedules(state: AppState) {
    let mut tasks = tokio::task::JoinSet::new();
    for t in state.targets.values() {
        let Ok(env) = cp_app::session::load(t) else {
            tracing::warn!(env = %t.env, "its files do not load; its backup schedule does not run");
            continue;
        };
        let Some(b) = env.backup.clone() else {
            continue;
        };
        if matches!(env.platform, cp_core::model::Platform::Kubernetes) {
            // The rendered CronJob runs it in the cluster.
            continue;
        }
        let (state, t) = (state.clone(), t.clone());
        tasks.spawn(async move {
            state
                .backups
                .schedules
                .lock()
                .expect("schedules lock")
                .entry(t.env.clone())
                .or_default()
                .running = true;
            let now = Utc::now();
            if let Some(last) = last_run(&t) {
                match missed(&b.schedule, last, now) {
                    Ok(Some(m)) => {
                        tracing::warn!(env = %t.env, missed = m.count, since = %m.since, "{}; running one catch-up now", m.message);
                        state
                            .backups
                            .schedules
                            .lock()
                            .expect("schedules lock")
                            .entry(t.env.clone())
                            .or_default()
                            .missed = Some(m);
                        run_slot(&state, &t, now, "catch-up").await;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!(env = %t.env, error = %e, "the backup schedule cannot be followed");
                        return;
                    }
                }
            }
            let r = cp_backup::schedule::run_schedule(
                &b.schedule,
                || {
                    let (state, t) = (state.clone(), t.clone());
                    async move {
                        let slot = Utc::now();
                        run_slot(&state, &t, slot, "schedule").await
                    }
                },
                |_| {},
            )
            .await;
            if let Err(e) = r {
                tracing::error!(env = %t.env, error = %e, "the backup schedule cannot be followed");
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// The schedule of `env` as the API and console show it.
pub fn schedule_view(state: &AppState, env: &str) -> Result<ScheduleView, ApiError> {
    let t = target(state, env)?;
    let b = settings(t)?;
    let s = state.backups.schedules.lock().expect("schedules lock");
    let s = s.get(env);
    let (next_run, error) = match cp_backup::schedule::next_after(&b.schedule, Utc::now()) {
        Ok(n) => (Some(rfc3339(n)), None),
        Err(e) => (None, Some(e.to_string())),
    };
    Ok(ScheduleView {
        environment: env.to_owned(),
        cron: b.schedule.cron.clone(),
        running: s.is_some_and(|s| s.running),
        next_run,
        last_run: last_run(t).map(rfc3339),
        missed: s.and_then(|s| s.missed.clone()),
        last_tick: s.and_then(|s| s.last_tick.clone()),
        error,
    })
}

async fn schedule(
    State(state): State<AppState>,
    Path(env): Path<String>,
) -> Result<Json<ScheduleView>, ApiError> {
    Ok(Json(schedule_view(&state, &env)?))
}

// ---- Metrics ---------------------------------------------------------------------

/// The `controlplane_backup_*` gauges of every served environment with backups, read
/// from its `backup/metrics.json` now (so runs of the CLI or the CronJob count), each
/// service of `backup.services` present from the start (0 until its first success).
/// One HELP and TYPE per family, the environments' samples together, as OpenMetrics
/// wants.
pub fn exposition(state: &AppState) -> String {
    let mut families: BTreeMap<String, (Vec<String>, Vec<String>)> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for t in state.targets.values() {
        let Ok(env) = cp_app::session::load(t) else {
            continue;
        };
        let Some(b) = &env.backup else {
            continue;
        };
        let m = cp_runtime::state::StateDir::open_existing(t.state_path())
            .ok()
            .flatten()
            .map(|d| cp_backup::metrics::Metrics::read(&d))
            .unwrap_or_default();
        let text = m.exposition(&t.env, &b.services);
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line
                .strip_prefix("# HELP ")
                .or_else(|| line.strip_prefix("# TYPE "))
            {
                current = rest.split(' ').next().unwrap_or("").to_owned();
                let f = families.entry(current.clone()).or_insert_with(|| {
                    order.push(current.clone());
                    Default::default()
                });
                if f.0.len() < 2 {
                    f.0.push(line.to_owned());
                }
            } else if !line.is_empty() {
                families
                    .entry(current.clone())
                    .or_default()
                    .1
                    .push(line.to_owned());
            }
        }
    }
    let mut out = String::new();
    for name in order {
        let (head, samples) = &families[&name];
        for l in head.iter().chain(samples) {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}
