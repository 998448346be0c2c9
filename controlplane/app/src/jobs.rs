//! Jobs: every long operation (backup, verify and restore drill, restore, drift check,
//! rotation)
//! runs here, whichever front end asked. One registry of running and recent jobs
//! ([`Jobs`]), one event shape ([`ProgressEvent`]), the environment's locks taken
//! before a job starts (so a second request is refused at once, naming the holder),
//! the decision where a job runs ([`RunsOn`]: in this process, or as a Kubernetes Job
//! made from the rendered CronJob), and the schedules with missed-run detection
//! ([`schedule`]).
//!
//! A job's future is `Send` and spawned on the runtime (`tests::futures_are_send`
//! checks it at compile time); a watcher task turns a panic into a failed job.

pub mod schedule;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cp_backup::BackupId;
use cp_backup::run::{Progress, ServiceLine};
use cp_core::names::CoreKind;
use cp_runtime::state::{StateDir, StateLock};
use tokio::sync::watch;

use crate::driver::AnyDriver;
use crate::error::AppError;
use crate::session::{self, Mode, Prepared, Session, Target};
use crate::views::jobs::{
    ClusterJobView, Event, JobKind, JobResult, JobState, JobView, JobsView, LockView, LocksView,
    ProgressEvent, RunsOn, Trigger,
};
use crate::views::rfc3339;

/// Finished jobs kept in the registry (the oldest finished one goes first).
pub const MAX_JOBS: usize = 100;

/// How long a backup run as a Kubernetes Job may take.
const CLUSTER_JOB_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// What to run.
#[derive(Debug, Clone)]
pub enum JobRequest {
    /// A backup set of `services` (every `backup.services` when empty) at
    /// `destination` (the first when unset).
    Backup {
        /// The services.
        services: Vec<CoreKind>,
        /// A name of `backup.destinations`.
        destination: Option<String>,
    },
    /// Reads set `id` back; with `drill`, restores it into scratch targets too.
    Verify {
        /// The set.
        id: BackupId,
        /// A name of `backup.destinations`.
        destination: Option<String>,
        /// Also restore it into scratch targets and check them.
        drill: bool,
    },
    /// Replaces what `services` hold (every service the set holds when empty) with
    /// set `id`'s contents, in the environment or in `into`. The caller has
    /// confirmed.
    Restore {
        /// The set.
        id: BackupId,
        /// The services.
        services: Vec<CoreKind>,
        /// A name of `backup.destinations`.
        destination: Option<String>,
        /// Restore into this environment instead (`restore --into-env`).
        into: Option<Target>,
    },
    /// The whole-environment plan: what drifted.
    Drift,
    /// Rotates `target` (of `services`, every one when empty); with `only_due`,
    /// only what is older than its rotation period (the schedule's runs).
    Rotate {
        /// Keys, passwords or all.
        target: crate::views::rotate::RotateTarget,
        /// The services.
        services: Vec<CoreKind>,
        /// Only what is due.
        only_due: bool,
    },
    /// A PITR base backup, then the recovery window's retention.
    BaseBackup,
}

impl JobRequest {
    /// The kind of job it makes.
    pub fn kind(&self) -> JobKind {
        match self {
            JobRequest::Backup { .. } => JobKind::Backup,
            JobRequest::Verify { .. } => JobKind::Verify,
            JobRequest::Restore { .. } => JobKind::Restore,
            JobRequest::Drift => JobKind::Drift,
            JobRequest::Rotate { .. } => JobKind::Rotate,
            JobRequest::BaseBackup => JobKind::BaseBackup,
        }
    }
}

/// One job: its view, and a version bumped at every change.
#[derive(Debug)]
pub(crate) struct Job {
    view: Mutex<JobView>,
    changed: watch::Sender<u64>,
    error: Mutex<Option<Arc<AppError>>>,
}

impl Job {
    fn update(&self, f: impl FnOnce(&mut JobView)) {
        f(&mut self.view.lock().expect("job lock"));
        self.changed.send_modify(|v| *v += 1);
    }

    fn snapshot(&self) -> JobView {
        self.view.lock().expect("job lock").clone()
    }

    fn push(&self, event: Event) {
        self.update(|v| {
            let seq = v.events.len();
            v.events.push(ProgressEvent::new(seq, Some(&v.id), event));
        });
    }
}

/// A started job: follow its events, wait for its end.
#[derive(Debug, Clone)]
pub struct JobHandle(Arc<Job>);

impl JobHandle {
    /// Its id.
    pub fn id(&self) -> String {
        self.0.view.lock().expect("job lock").id.clone()
    }

    /// Its state now.
    pub fn view(&self) -> JobView {
        self.0.snapshot()
    }

    /// Calls `each` with every event from `from` on, as they come, until the job ends
    /// or `stop` resolves; returns the view at that moment.
    pub async fn follow(
        &self,
        mut from: usize,
        mut each: impl FnMut(&ProgressEvent),
        stop: impl std::future::Future<Output = ()>,
    ) -> JobView {
        let mut changed = self.0.changed.subscribe();
        tokio::pin!(stop);
        loop {
            let v = self.0.snapshot();
            for e in v.events.iter().skip(from) {
                each(e);
            }
            from = from.max(v.events.len());
            if v.state != JobState::Running {
                return v;
            }
            tokio::select! {
                r = changed.changed() => if r.is_err() { return self.0.snapshot() },
                () = &mut stop => return self.0.snapshot(),
            }
        }
    }

    /// Waits for the end.
    pub async fn wait(&self) -> JobView {
        self.follow(usize::MAX, |_| {}, std::future::pending())
            .await
    }

    /// Waits for the end: the view, or the error that failed the job as a whole
    /// (typed, for a front end to answer with its status or exit code).
    pub async fn outcome(&self) -> Result<JobView, Arc<AppError>> {
        let v = self.wait().await;
        match self.0.error.lock().expect("job lock").clone() {
            Some(e) => Err(e),
            None => Ok(v),
        }
    }
}

/// Where the registry keeps a job's running slot (one drift check per environment).
#[derive(Debug, Default)]
struct Registry {
    jobs: Mutex<BTreeMap<String, Arc<Job>>>,
    order: Mutex<Vec<String>>,
    drift_running: Mutex<BTreeMap<String, String>>,
    pub(crate) schedules: schedule::Status,
    pub(crate) drift: crate::drift::Watch,
}

/// The job service: one per process, shared by every request (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Jobs(Arc<Registry>);

/// Reports a backup's progress as job events.
struct JobProgress(Arc<Job>);

impl Progress for JobProgress {
    fn started(&self, service: CoreKind, _: &cp_backup::pipeline::Meter) {
        self.0.push(Event::Started { service });
    }

    fn finished(&self, line: &ServiceLine) {
        self.0.push(Event::Finished {
            service: line.service,
            line: line.clone(),
        });
    }
}

/// A Kubernetes Job's log, one event per line.
struct LogLines {
    job: Arc<Job>,
    partial: Vec<u8>,
}

impl std::io::Write for LogLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line).trim_end().to_owned();
            self.job.push(Event::Log { line });
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.partial.is_empty() {
            let line = String::from_utf8_lossy(&self.partial).trim_end().to_owned();
            self.partial.clear();
            self.job.push(Event::Log { line });
        }
        Ok(())
    }
}

/// What a job holds while it runs: released when it ends, however it ends.
#[derive(Debug)]
enum Held {
    /// The environment's backup lock.
    Backup(#[allow(dead_code)] StateLock),
    /// The drift slot of the environment in this process.
    Drift(Jobs, String),
    /// Nothing (a Kubernetes Job: the CronJob's concurrency policy serializes).
    Nothing,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Held::Drift(jobs, env) = self {
            jobs.0.drift_running.lock().expect("drift lock").remove(env);
        }
    }
}

/// What a job runs with, prepared before it starts.
enum Work {
    Backup {
        session: Session,
        services: Vec<CoreKind>,
        destination: Option<String>,
    },
    Cluster {
        session: Session,
        services: Vec<CoreKind>,
        destination: Option<String>,
    },
    Verify {
        session: Session,
        id: BackupId,
        destination: Option<String>,
        drill: bool,
    },
    Restore {
        source: Session,
        target: Option<Box<Session>>,
        id: BackupId,
        services: Vec<CoreKind>,
        destination: Option<String>,
    },
    Drift {
        session: Session,
    },
    Rotate {
        session: Session,
        target: crate::views::rotate::RotateTarget,
        services: Vec<CoreKind>,
        only_due: bool,
    },
    BaseBackup {
        session: Session,
    },
}

fn backups_enabled(p: &Prepared) -> Result<(), AppError> {
    if p.env.backup.is_none() {
        return Err(AppError::Usage(format!(
            "backups are not enabled in {}; set backup.enabled and backup.destinations in its environment file",
            p.env.name
        )));
    }
    Ok(())
}

/// Refuses, before any lock is taken or job made, a request naming a destination or
/// a service the environment's backups do not have (`Usage`: 422, exit 3). Returns
/// the destination the request will use (the first by name when it names none).
pub fn check_request(
    env: &cp_core::model::Environment,
    request: &JobRequest,
) -> Result<Option<String>, AppError> {
    let (services, destination): (&[CoreKind], Option<&str>) = match request {
        JobRequest::Backup {
            services,
            destination,
        } => (services.as_slice(), destination.as_deref()),
        JobRequest::Verify { destination, .. } | JobRequest::Restore { destination, .. } => {
            (&[][..], destination.as_deref())
        }
        JobRequest::Drift => return Ok(None),
        JobRequest::BaseBackup => {
            if env.backup.as_ref().is_none_or(|b| b.pitr.is_none()) {
                return Err(AppError::Usage(format!(
                    "point-in-time recovery is off in `{}`: set `backup.pitr.enabled: true`",
                    env.name
                )));
            }
            return Ok(None);
        }
        JobRequest::Rotate {
            target, services, ..
        } => {
            crate::rotate::check(env, *target, services)?;
            return Ok(None);
        }
    };
    let Some(b) = &env.backup else {
        return Err(AppError::Usage(format!(
            "backups are not enabled in {}; set backup.enabled and backup.destinations in its environment file",
            env.name
        )));
    };
    let known = || {
        b.destinations
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen = match destination {
        Some(d) if b.destinations.contains_key(d) => d.to_owned(),
        Some(d) => {
            return Err(AppError::Usage(format!(
                "`{d}` is not a backup destination of {}; use one of: {}",
                env.name,
                known()
            )));
        }
        None => b.destinations.keys().next().cloned().ok_or_else(|| {
            AppError::Usage(format!(
                "{} has no backup destination; set backup.destinations in its environment file",
                env.name
            ))
        })?,
    };
    if let Some(s) = services.iter().find(|s| !b.services.contains(*s)) {
        return Err(AppError::Usage(format!(
            "`{}` is not backed up in {}; backup.services is: {}",
            s.as_str(),
            env.name,
            b.services
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(Some(chosen))
}

fn state_of(p: &Prepared) -> Result<StateDir, AppError> {
    Ok(StateDir::open(p.state_path(), p.env.name.as_str())?)
}

impl Jobs {
    /// A new, empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts `request` on `target`'s environment. Everything that can be refused is
    /// refused here, before a job exists: invalid files or arguments, backups not
    /// enabled, and a lock held by someone else (naming the holder). The job then runs
    /// on the runtime; follow it with the returned handle.
    pub async fn start(
        &self,
        target: &Target,
        request: JobRequest,
        trigger: Trigger,
    ) -> Result<JobHandle, AppError> {
        let prepared = Prepared::new(target, None).await?;
        self.start_prepared(prepared, request, trigger).await
    }

    /// [`Jobs::start`] on an environment already prepared (its model kept by a
    /// long-running process).
    pub async fn start_prepared(
        &self,
        prepared: Prepared,
        request: JobRequest,
        trigger: Trigger,
    ) -> Result<JobHandle, AppError> {
        check_request(&prepared.env, &request)?;
        let kind = request.kind();
        let id = format!("job-{}", uuid::Uuid::new_v4().simple());
        let holder = format!("{kind} job {id} ({trigger})");
        let env = prepared.env.name.to_string();
        let on_cluster = matches!(prepared.driver(), AnyDriver::Kube(_));
        let (work, held, runs_on) = match request {
            JobRequest::Backup {
                services,
                destination,
            } => {
                backups_enabled(&prepared)?;
                if on_cluster {
                    let session = prepared.open(Mode::ReadOnly)?;
                    let runs_on = RunsOn::KubernetesJob {
                        cronjob: cp_core::render::context::BACKUP_JOB.to_owned(),
                        job: None,
                    };
                    let work = Work::Cluster {
                        session,
                        services,
                        destination,
                    };
                    (work, Held::Nothing, runs_on)
                } else {
                    let lock = cp_backup::run::lock(&state_of(&prepared)?, &holder)?;
                    let session = prepared.open(Mode::ReadOnly)?;
                    let work = Work::Backup {
                        session,
                        services,
                        destination,
                    };
                    (work, Held::Backup(lock), RunsOn::ThisProcess)
                }
            }
            JobRequest::Verify {
                id: set,
                destination,
                drill,
            } => {
                backups_enabled(&prepared)?;
                let lock = cp_backup::run::lock(&state_of(&prepared)?, &holder)?;
                let session = prepared.open(Mode::ReadOnly)?;
                let work = Work::Verify {
                    session,
                    id: set,
                    destination,
                    drill,
                };
                (work, Held::Backup(lock), RunsOn::ThisProcess)
            }
            JobRequest::Restore {
                id: set,
                services,
                destination,
                into,
            } => {
                backups_enabled(&prepared)?;
                let (source, target, lock) = match into {
                    None => {
                        let lock = cp_backup::run::lock(&state_of(&prepared)?, &holder)?;
                        (prepared.open(Mode::Mutating("restore"))?, None, lock)
                    }
                    Some(t) => {
                        let other = Prepared::new(&t, None).await?;
                        let lock = cp_backup::run::lock(&state_of(&other)?, &holder)?;
                        let target = other.open(Mode::Mutating("restore"))?;
                        (prepared.open(Mode::ReadOnly)?, Some(Box::new(target)), lock)
                    }
                };
                let work = Work::Restore {
                    source,
                    target,
                    id: set,
                    services,
                    destination,
                };
                (work, Held::Backup(lock), RunsOn::ThisProcess)
            }
            JobRequest::BaseBackup => {
                if on_cluster {
                    return Err(crate::pitr::kube_base_backup_refused(&prepared.env));
                }
                let lock = cp_backup::run::lock(&state_of(&prepared)?, &holder)?;
                let work = Work::BaseBackup {
                    session: prepared.open(Mode::ReadOnly)?,
                };
                (work, Held::Backup(lock), RunsOn::ThisProcess)
            }
            JobRequest::Drift => {
                {
                    let mut running = self.0.drift_running.lock().expect("drift lock");
                    if let Some(other) = running.get(&env) {
                        return Err(AppError::Busy {
                            what: format!("a drift check of {env}"),
                            holder: format!("job {other} of this process"),
                        });
                    }
                    running.insert(env.clone(), id.clone());
                }
                let held = Held::Drift(self.clone(), env.clone());
                let work = Work::Drift {
                    session: prepared.open(Mode::ReadOnly)?,
                };
                (work, held, RunsOn::ThisProcess)
            }
            JobRequest::Rotate {
                target,
                services,
                only_due,
            } => {
                // The environment lock, held by the session until the job ends: no
                // `up`, `seed` or second rotation changes the same credentials.
                let work = Work::Rotate {
                    session: prepared.open(Mode::Mutating("rotate"))?,
                    target,
                    services,
                    only_due,
                };
                (work, Held::Nothing, RunsOn::ThisProcess)
            }
        };
        let job = Arc::new(Job {
            view: Mutex::new(JobView {
                id: id.clone(),
                kind,
                environment: env.clone(),
                trigger,
                runs_on,
                state: JobState::Running,
                started_at: rfc3339(chrono::Utc::now()),
                finished_at: None,
                events: Vec::new(),
                result: None,
                error: None,
            }),
            changed: watch::channel(0).0,
            error: Mutex::new(None),
        });
        self.keep(&id, job.clone());
        let task = tokio::spawn(run(self.clone(), job.clone(), work, trigger, held));
        let watched = job.clone();
        tokio::spawn(async move {
            let outcome = match task.await {
                Ok(r) => r,
                Err(e) => Err(AppError::JobPanicked {
                    job: watched.snapshot().id,
                    detail: panic_text(e),
                }),
            };
            finish(&watched, outcome);
        });
        Ok(JobHandle(job))
    }

    fn keep(&self, id: &str, job: Arc<Job>) {
        let mut jobs = self.0.jobs.lock().expect("jobs lock");
        let mut order = self.0.order.lock().expect("jobs lock");
        while jobs.len() >= MAX_JOBS {
            let Some(pos) = order.iter().position(|k| {
                jobs.get(k)
                    .is_none_or(|j| j.snapshot().state != JobState::Running)
            }) else {
                break;
            };
            let k = order.remove(pos);
            jobs.remove(&k);
        }
        jobs.insert(id.to_owned(), job);
        order.push(id.to_owned());
    }

    /// Job `id`.
    pub fn get(&self, id: &str) -> Result<JobHandle, AppError> {
        self.0
            .jobs
            .lock()
            .expect("jobs lock")
            .get(id)
            .cloned()
            .map(JobHandle)
            .ok_or_else(|| {
                AppError::NotFound(format!(
                    "no job `{id}` in this process (jobs are kept in memory: the last {MAX_JOBS}, until it restarts)"
                ))
            })
    }

    /// Every job kept, newest first, of `env` when given.
    pub fn list(&self, env: Option<&str>) -> JobsView {
        let jobs = self.0.jobs.lock().expect("jobs lock");
        let order = self.0.order.lock().expect("jobs lock");
        JobsView {
            jobs: order
                .iter()
                .rev()
                .filter_map(|k| jobs.get(k))
                .map(|j| j.snapshot())
                .filter(|v| env.is_none_or(|e| v.environment == e))
                .collect(),
        }
    }

    /// What the drift checks found.
    pub fn drift(&self) -> &crate::drift::Watch {
        &self.0.drift
    }

    /// The running job of `kind` on `env`, if any.
    pub fn running(&self, env: &str, kind: JobKind) -> Option<JobView> {
        self.list(Some(env))
            .jobs
            .into_iter()
            .find(|j| j.kind == kind && j.state == JobState::Running)
    }
}

/// The environment's locks: who holds each, read from the lock files and the
/// kernel's lock table without taking them.
pub fn locks(target: &Target) -> LocksView {
    let dir = target.state_path();
    let locks = [session::ENV_LOCK, cp_backup::run::LOCK]
        .into_iter()
        .map(|name| {
            let holder = cp_runtime::state::holder(&dir, name);
            LockView {
                name: name.to_owned(),
                held: holder.is_some(),
                holder,
            }
        })
        .collect();
    LocksView {
        environment: target.env.clone(),
        locks,
    }
}

fn panic_text(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into()),
        Err(e) => e.to_string(),
    }
}

/// Records the outcome and logs it once, with the whole chain.
fn finish(job: &Job, outcome: Result<(JobResult, bool), AppError>) {
    job.update(|v| {
        v.finished_at = Some(rfc3339(chrono::Utc::now()));
        match outcome {
            Ok((result, ok)) => {
                v.state = if ok {
                    JobState::Succeeded
                } else {
                    JobState::Failed
                };
                v.result = Some(result);
            }
            Err(e) => {
                v.state = JobState::Failed;
                v.error = Some(e.chain());
                *job.error.lock().expect("job lock") = Some(Arc::new(e));
            }
        }
    });
    let v = job.snapshot();
    match v.state {
        JobState::Succeeded => {
            tracing::info!(env = %v.environment, job = %v.id, kind = %v.kind, trigger = %v.trigger, "job succeeded");
        }
        _ => {
            let why = v.error.clone().unwrap_or_else(|| failed_parts(&v));
            tracing::warn!(env = %v.environment, job = %v.id, kind = %v.kind, trigger = %v.trigger, error = %why, "job failed");
        }
    }
}

/// What failed inside a job that ran to its end.
pub fn failed_parts(v: &JobView) -> String {
    match &v.result {
        Some(JobResult::Backup(b)) => b
            .report
            .services
            .iter()
            .filter(|l| !l.ok)
            .map(|l| format!("{}: {}", l.service, l.error.as_deref().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("; "),
        Some(JobResult::Verify(r)) => r.report.problems.join("; "),
        Some(JobResult::Cluster(c)) => format!(
            "the Kubernetes Job {} failed; its log is in the events",
            c.job
        ),
        _ => String::new(),
    }
}

/// Runs one job to its result and whether it succeeded.
async fn run(
    jobs: Jobs,
    job: Arc<Job>,
    work: Work,
    trigger: Trigger,
    held: Held,
) -> Result<(JobResult, bool), AppError> {
    let _held = held;
    match work {
        Work::Backup {
            session,
            services,
            destination,
        } => {
            let progress = JobProgress(job.clone());
            let view =
                crate::backup::take(&session, &services, destination.as_deref(), &progress).await?;
            // A destination that lacks the set fails the job too (its line says why).
            let ok = view.report.ok();
            Ok((JobResult::Backup(view), ok))
        }
        Work::Cluster {
            session,
            services,
            destination,
        } => {
            let AnyDriver::Kube(k) = session.driver() else {
                unreachable!("a cluster job is made for a Kubernetes environment only")
            };
            let mut extra = Vec::new();
            for svc in &services {
                extra.extend(["--service".to_owned(), svc.as_str().to_owned()]);
            }
            if let Some(d) = &destination {
                extra.extend(["--destination".to_owned(), d.clone()]);
            }
            let mut log = LogLines {
                job: job.clone(),
                partial: Vec::new(),
            };
            let outcome = cp_driver_kube::job::run_from_cronjob(
                k.client(),
                &session.env().namespace,
                cp_core::render::context::BACKUP_JOB,
                &extra,
                CLUSTER_JOB_TIMEOUT,
                Duration::from_secs(2),
                &mut log,
            )
            .await
            .map_err(AppError::ClusterJob)?;
            std::io::Write::flush(&mut log).ok();
            job.update(|v| {
                if let RunsOn::KubernetesJob { job, .. } = &mut v.runs_on {
                    *job = Some(outcome.job.clone());
                }
            });
            let ok = outcome.succeeded;
            Ok((
                JobResult::Cluster(ClusterJobView {
                    job: outcome.job,
                    succeeded: ok,
                }),
                ok,
            ))
        }
        Work::Verify {
            session,
            id,
            destination,
            drill,
        } => {
            let view = crate::backup::verify(&session, &id, destination.as_deref(), drill).await?;
            let ok = view.ok;
            Ok((JobResult::Verify(view), ok))
        }
        Work::Restore {
            source,
            target,
            id,
            services,
            destination,
        } => {
            let into = target.as_deref().unwrap_or(&source);
            let view =
                crate::backup::restore(&source, into, &id, &services, destination.as_deref())
                    .await?;
            Ok((JobResult::Restore(view), true))
        }
        Work::Drift { session } => {
            let view = crate::drift::check(&session, &job, &jobs.0.drift, trigger).await?;
            Ok((JobResult::Drift(view), true))
        }
        Work::Rotate {
            session,
            target,
            services,
            only_due,
        } => {
            let view = crate::rotate::rotate(&session, target, &services, only_due).await?;
            Ok((JobResult::Rotate(view), true))
        }
        Work::BaseBackup { session } => {
            let view = crate::pitr::base_backup_locked(&session).await?;
            Ok((JobResult::BaseBackup(view), true))
        }
    }
}

/// Events of the drift check go through the job.
pub(crate) fn push(job: &Arc<Job>, event: Event) {
    job.push(event);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_send<T: Send>(_: &T) {}

    /// Every job's future is `Send`: the runtime may move it between threads, and
    /// no front end drives one with `block_on`. A compile-time check: this test
    /// does not compile when one is not.
    #[test]
    fn futures_are_send() {
        // Never called: it only has to compile.
        fn check(jobs: Jobs, job: Arc<Job>, work: Work, held: Held, t: &Target) {
            is_send(&run(jobs.clone(), job, work, Trigger::Cli, held));
            is_send(&jobs.start(t, JobRequest::Drift, Trigger::Cli));
        }
        let _ = check;
    }
}
