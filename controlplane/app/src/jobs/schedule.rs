//! Schedules: each environment's backups on `backup.schedule` (not on Kubernetes, where
//! the rendered CronJob runs them), its drift check on `drift.schedule` and its
//! rotation of what is due on `rotation.schedule`, the PITR watch (archive and
//! archiver read every 30 s for the metrics), run by the
//! process that calls [`Jobs::run_schedules`] (`serve`). A scheduled slot is a job like
//! any other. At start, backup slots that passed since the last recorded run are
//! reported ("missed N runs since T", logged, in the API and the console) and one
//! catch-up run is made; the drift check runs at once.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use cp_core::model::{Platform, Schedule};
use cp_runtime::state::StateDir;
use serde::{Deserialize, Serialize};

use super::{JobRequest, Jobs};
use crate::error::AppError;
use crate::session::{self, Target};
use crate::views::jobs::{
    JobKind, JobState, MissedView, ScheduleView, SchedulesView, TickView, Trigger,
};
use crate::views::rfc3339;

/// What the schedules of this process reported, per environment and kind.
#[derive(Debug, Default)]
pub(crate) struct Status(Mutex<BTreeMap<(String, JobKind), Sched>>);

#[derive(Debug, Default, Clone)]
struct Sched {
    running: bool,
    missed: Option<MissedView>,
    last_tick: Option<TickView>,
}

impl Status {
    fn update(&self, env: &str, kind: JobKind, f: impl FnOnce(&mut Sched)) {
        f(self
            .0
            .lock()
            .expect("schedules lock")
            .entry((env.to_owned(), kind))
            .or_default());
    }

    fn get(&self, env: &str, kind: JobKind) -> Sched {
        self.0
            .lock()
            .expect("schedules lock")
            .get(&(env.to_owned(), kind))
            .cloned()
            .unwrap_or_default()
    }
}

/// What is recorded per environment about its scheduled backups
/// (`backup/schedule.json` in the state directory).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ScheduleState {
    /// When the last scheduled run started.
    last_run: Option<DateTime<Utc>>,
}

const SCHEDULE_FILE: &str = "backup/schedule.json";

/// The last backup run recorded: the later of the last scheduled run and the newest
/// success in the metrics file (a CLI run counts).
fn last_backup_run(t: &Target) -> Option<DateTime<Utc>> {
    let dir = StateDir::open_existing(t.state_path()).ok().flatten()?;
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

fn record_backup_run(t: &Target, at: DateTime<Utc>) {
    let r = StateDir::open(t.state_path(), &t.env).and_then(|d| {
        d.write(
            SCHEDULE_FILE,
            &serde_json::to_vec_pretty(&ScheduleState { last_run: Some(at) }).expect("serializes"),
            0o600,
        )
    });
    if let Err(e) = r {
        tracing::warn!(env = %t.env, error = %cp_runtime::error::chain(&e), "the scheduled run could not be recorded");
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

/// How often the PITR watch reads the archive and the archiver's statistics.
pub const PITR_WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(30);

/// Records `t`'s PITR status for the metrics every [`PITR_WATCH_EVERY`]
/// ([`crate::pitr::watch`]), until the future is dropped.
async fn pitr_watch(t: &Target) {
    loop {
        match session::Prepared::new(t, None).await {
            Ok(p) => match p.open(session::Mode::ReadOnly) {
                Ok(s) => {
                    crate::pitr::watch(&s).await;
                }
                Err(e) => {
                    tracing::warn!(env = %t.env, error = %e.chain(), "the PITR watch cannot open the environment");
                }
            },
            Err(e) => {
                tracing::warn!(env = %t.env, error = %e.chain(), "the PITR watch cannot load the environment");
            }
        }
        tokio::time::sleep(PITR_WATCH_EVERY).await;
    }
}

impl Jobs {
    /// Runs one slot of `kind` on `t` as a job and waits for it; records the tick.
    async fn slot(&self, t: &Target, kind: JobKind, slot: DateTime<Utc>, trigger: Trigger) {
        let tick = |outcome: &str, detail: Option<String>, job: Option<String>| {
            self.0.schedules.update(&t.env, kind, |s| {
                s.last_tick = Some(TickView {
                    slot: rfc3339(slot),
                    outcome: outcome.to_owned(),
                    detail,
                    job,
                });
            });
        };
        let request = match kind {
            JobKind::Backup => {
                record_backup_run(t, Utc::now());
                JobRequest::Backup {
                    services: Vec::new(),
                    destination: None,
                }
            }
            JobKind::BaseBackup => JobRequest::BaseBackup,
            JobKind::Rotate => JobRequest::Rotate {
                target: crate::views::rotate::RotateTarget::All,
                services: Vec::new(),
                only_due: true,
            },
            _ => JobRequest::Drift,
        };
        let handle = match self.start(t, request, trigger).await {
            Ok(h) => h,
            Err(e) => {
                let outcome = if e.kind() == crate::error::ErrorKind::Conflict {
                    "skipped"
                } else {
                    "failed"
                };
                tracing::warn!(env = %t.env, kind = %kind, slot = %rfc3339(slot), reason = %e.chain(), "scheduled job {outcome}");
                if kind == JobKind::Drift {
                    self.0.drift.failed(&t.env, e.chain());
                }
                tick(outcome, Some(e.chain()), None);
                return;
            }
        };
        let v = handle.wait().await;
        let ok = v.state == JobState::Succeeded;
        let detail = (!ok).then(|| v.error.clone().unwrap_or_else(|| super::failed_parts(&v)));
        tick(if ok { "succeeded" } else { "failed" }, detail, Some(v.id));
    }

    /// Runs the schedules of every environment of `targets` until the future is
    /// dropped.
    pub async fn run_schedules(&self, targets: Vec<Target>) {
        let mut tasks = tokio::task::JoinSet::new();
        for t in targets {
            let env = match session::load(&t) {
                Ok(env) => env,
                Err(e) => {
                    tracing::warn!(env = %t.env, error = %e.chain(), "its files do not load; its schedules do not run");
                    continue;
                }
            };
            let drift = env.drift.schedule.clone();
            let (jobs, target) = (self.clone(), t.clone());
            tasks.spawn(async move { jobs.follow(&target, JobKind::Drift, drift).await });
            let rotation = env.rotation.schedule.clone();
            let (jobs, target) = (self.clone(), t.clone());
            tasks.spawn(async move { jobs.follow(&target, JobKind::Rotate, rotation).await });
            if env.backup.as_ref().is_some_and(|b| b.pitr.is_some())
                && !matches!(env.platform, Platform::Kubernetes)
            {
                let target = t.clone();
                tasks.spawn(async move { pitr_watch(&target).await });
                let base = env
                    .backup
                    .as_ref()
                    .and_then(|b| b.pitr.as_ref())
                    .map(|p| p.base_schedule.clone())
                    .expect("checked above");
                let (jobs, target) = (self.clone(), t.clone());
                tasks.spawn(async move { jobs.follow(&target, JobKind::BaseBackup, base).await });
            }
            if let Some(b) = env.backup.clone()
                && !matches!(env.platform, Platform::Kubernetes)
            {
                let (jobs, target) = (self.clone(), t.clone());
                tasks.spawn(async move {
                    jobs.catch_up(&target, &b.schedule).await;
                    jobs.follow(&target, JobKind::Backup, b.schedule).await;
                });
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Reports the backup slots missed since the last recorded run and runs one
    /// catch-up; a fresh environment with no run recorded waits for its first slot.
    async fn catch_up(&self, t: &Target, schedule: &Schedule) {
        let Some(last) = last_backup_run(t) else {
            return;
        };
        let now = Utc::now();
        match missed(schedule, last, now) {
            Ok(Some(m)) => {
                tracing::warn!(env = %t.env, missed = m.count, since = %m.since, "{}; running one catch-up now", m.message);
                self.0
                    .schedules
                    .update(&t.env, JobKind::Backup, |s| s.missed = Some(m));
                self.slot(t, JobKind::Backup, now, Trigger::CatchUp).await;
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(env = %t.env, error = %e, "the backup schedule cannot be followed");
            }
        }
    }

    /// Runs `kind` on every slot of `schedule` (the drift check also at once).
    async fn follow(&self, t: &Target, kind: JobKind, schedule: Schedule) {
        self.0.schedules.update(&t.env, kind, |s| s.running = true);
        if kind == JobKind::Drift {
            self.slot(t, kind, Utc::now(), Trigger::Schedule).await;
        }
        loop {
            let now = Utc::now();
            let next = match cp_backup::schedule::next_after(&schedule, now) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(env = %t.env, kind = %kind, error = %e, "the schedule cannot be followed");
                    self.0.schedules.update(&t.env, kind, |s| s.running = false);
                    return;
                }
            };
            tokio::time::sleep((next - now).to_std().unwrap_or_default()).await;
            self.slot(t, kind, next, Trigger::Schedule).await;
        }
    }

    /// The schedules of `t` (whose model is `env`) as the API and the console show
    /// them.
    pub fn schedules(
        &self,
        t: &Target,
        env: &cp_core::Environment,
    ) -> Result<SchedulesView, AppError> {
        let mut schedules = Vec::new();
        let view = |kind: JobKind, schedule: &Schedule, last_run: Option<DateTime<Utc>>| {
            let s = self.0.schedules.get(&t.env, kind);
            let (next_run, error) = match cp_backup::schedule::next_after(schedule, Utc::now()) {
                Ok(n) => (Some(rfc3339(n)), None),
                Err(e) => (None, Some(e.to_string())),
            };
            ScheduleView {
                environment: t.env.clone(),
                kind,
                cron: schedule.cron.clone(),
                running: s.running,
                next_run,
                last_run: last_run.map(rfc3339),
                missed: s.missed,
                last_tick: s.last_tick,
                error,
            }
        };
        if let Some(b) = &env.backup {
            schedules.push(view(JobKind::Backup, &b.schedule, last_backup_run(t)));
            if let Some(p) = &b.pitr {
                schedules.push(view(JobKind::BaseBackup, &p.base_schedule, None));
            }
        }
        let drift = self.0.drift.get(&t.env);
        schedules.push(view(
            JobKind::Drift,
            &env.drift.schedule,
            drift.last_success,
        ));
        schedules.push(view(JobKind::Rotate, &env.rotation.schedule, None));
        Ok(SchedulesView {
            environment: t.env.clone(),
            schedules,
        })
    }
}
