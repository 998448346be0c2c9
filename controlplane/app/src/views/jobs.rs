//! The views of jobs ([`crate::jobs`]): a job and its progress events, the started
//! answer, locks, schedules and missed runs. The CLI's `--output json` progress lines
//! and the server's SSE `progress` events are the same [`ProgressEvent`].

use std::fmt;

use cp_backup::run::ServiceLine;
use cp_core::names::CoreKind;
use cp_core::plan::Layer;
use schemars::JsonSchema;
use serde::Serialize;

use super::{BackupView, RestoreView, VerifyView};
use crate::views::drift::DriftView;

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    /// A backup set of the environment's services.
    Backup,
    /// Reads a set back (and, as a drill, restores it into scratch targets).
    Verify,
    /// Replaces what the services hold with a set's contents.
    Restore,
    /// The whole-environment plan, to see what drifted.
    Drift,
    /// Rotation of transit keys and passwords.
    Rotate,
    /// A PostgreSQL base backup for point-in-time recovery (`backup.pitr`).
    BaseBackup,
}

impl JobKind {
    /// Its name (`backup`, `drift`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Backup => "backup",
            JobKind::Verify => "verify",
            JobKind::Restore => "restore",
            JobKind::Drift => "drift",
            JobKind::Rotate => "rotate",
            JobKind::BaseBackup => "base-backup",
        }
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who started a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// The command line.
    Cli,
    /// The REST API.
    Api,
    /// The web console.
    Console,
    /// A slot of the environment's schedule.
    Schedule,
    /// The one run that catches up slots missed while no server ran the schedule.
    CatchUp,
}

impl Trigger {
    /// Its name (`api`, `catch-up`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cli => "cli",
            Trigger::Api => "api",
            Trigger::Console => "console",
            Trigger::Schedule => "schedule",
            Trigger::CatchUp => "catch-up",
        }
    }

    /// Started by a clock, not a person.
    pub fn scheduled(self) -> bool {
        matches!(self, Trigger::Schedule | Trigger::CatchUp)
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a job runs: the same decision whichever front end asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", tag = "where")]
pub enum RunsOn {
    /// In the process that started it.
    ThisProcess,
    /// As a Kubernetes Job made from the environment's rendered CronJob.
    KubernetesJob {
        /// The CronJob it was made from.
        cronjob: String,
        /// The Job's name, once created.
        job: Option<String>,
    },
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Still going.
    Running,
    /// It did everything it was asked.
    Succeeded,
    /// The run failed, or a part of it did (the result says which).
    Failed,
}

/// What happened in a job, one event at a time.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// A service's backup started.
    Started {
        /// The service.
        service: CoreKind,
    },
    /// A service's backup finished.
    Finished {
        /// The service.
        service: CoreKind,
        /// What it did.
        line: ServiceLine,
    },
    /// A line of a Kubernetes Job's log.
    Log {
        /// The line.
        line: String,
    },
    /// `up` applied a change to a seeded layer.
    Seeded {
        /// The layer.
        layer: Layer,
        /// The change.
        change: String,
    },
    /// A drift check planned a layer.
    Checked {
        /// The layer.
        layer: Layer,
        /// Changes `up` would make.
        pending: usize,
        /// Changes `up` refuses.
        blocked: usize,
        /// Why the layer could not be observed now.
        deferred: Option<String>,
    },
}

impl Event {
    /// The line a person reads (the CLI's text progress, the console's list).
    pub fn text(&self) -> String {
        match self {
            Event::Started { service } => format!("{service}: started"),
            Event::Finished { service, line } if line.ok => {
                format!(
                    "{service}: {} in {}",
                    super::units::size(line.size),
                    super::units::seconds(line.duration_ms)
                )
            }
            Event::Finished { service, line } => {
                format!("{service}: FAILED: {}", line.error.as_deref().unwrap_or(""))
            }
            Event::Log { line } => line.clone(),
            Event::Seeded { layer, change } => format!("{layer}: {change}"),
            Event::Checked {
                layer,
                deferred: Some(why),
                ..
            } => format!("{layer}: not observed now ({why})"),
            Event::Checked {
                layer,
                pending,
                blocked,
                ..
            } => format!("{layer}: {pending} change(s) pending, {blocked} blocked"),
        }
    }
}

/// One progress event: the CLI prints it as a JSON line (`--output json`) or its
/// `text`; the server sends it as an SSE `progress` event.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ProgressEvent {
    /// Its number in the job, from 0.
    pub seq: usize,
    /// When (RFC 3339).
    pub at: String,
    /// The job, when the event belongs to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
    /// The line a person reads.
    pub text: String,
}

impl ProgressEvent {
    /// Event `seq` of `job`, now.
    pub fn new(seq: usize, job: Option<&str>, event: Event) -> Self {
        ProgressEvent {
            seq,
            at: super::rfc3339(chrono::Utc::now()),
            job: job.map(str::to_owned),
            text: event.text(),
            event,
        }
    }
}

/// What a Kubernetes Job did.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ClusterJobView {
    /// The Job's name.
    pub job: String,
    /// Whether it succeeded.
    pub succeeded: bool,
}

/// What a finished job returned.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum JobResult {
    /// A backup in this process.
    Backup(BackupView),
    /// A verification.
    Verify(VerifyView),
    /// A restore.
    Restore(RestoreView),
    /// A drift check.
    Drift(DriftView),
    /// A rotation.
    Rotate(super::rotate::RotationView),
    /// A PITR base backup.
    BaseBackup(crate::pitr::BaseBackupView),
    /// A Kubernetes Job.
    Cluster(ClusterJobView),
}

/// A job.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JobView {
    /// Its id.
    pub id: String,
    /// What it does.
    pub kind: JobKind,
    /// The environment.
    pub environment: String,
    /// Who started it.
    pub trigger: Trigger,
    /// Where it runs.
    pub runs_on: RunsOn,
    /// Its state.
    pub state: JobState,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Progress, in order.
    pub events: Vec<ProgressEvent>,
    /// What it did, once ended.
    pub result: Option<JobResult>,
    /// Why it failed as a whole.
    pub error: Option<String>,
}

impl fmt::Display for JobView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {} of {} ({}, {}): {:?}",
            self.id, self.kind, self.environment, self.trigger, self.started_at, self.state
        )?;
        if let Some(e) = &self.error {
            writeln!(f, "  error: {e}")?;
        }
        Ok(())
    }
}

/// Every job this process knows (running and the most recent).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JobsView {
    /// Newest first.
    pub jobs: Vec<JobView>,
}

/// A job was started.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct JobStartedView {
    /// The job id.
    pub job: String,
    /// `GET` this for its state and result.
    pub href: String,
    /// Server-sent events: its progress, then the result.
    pub events: String,
}

impl JobStartedView {
    /// The links of job `id` on the server.
    pub fn of(id: &str) -> Self {
        JobStartedView {
            job: id.to_owned(),
            href: format!("/api/v1/jobs/{id}"),
            events: format!("/api/v1/jobs/{id}/events"),
        }
    }
}

/// One of an environment's locks.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LockView {
    /// `environment` (changes) or `backup` (backups, verifications, restores).
    pub name: String,
    /// Whether a process holds it now.
    pub held: bool,
    /// Who holds it and since when, as the holder wrote it.
    pub holder: Option<String>,
}

/// An environment's locks.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LocksView {
    /// The environment.
    pub environment: String,
    /// Each lock.
    pub locks: Vec<LockView>,
}

/// Slots of a schedule that passed with no run, found when the schedule started.
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

/// One schedule of an environment.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ScheduleView {
    /// The environment.
    pub environment: String,
    /// What it runs.
    pub kind: JobKind,
    /// The cron expression (five fields, UTC).
    pub cron: String,
    /// Whether this process runs it (a server started for tests or through the
    /// router alone does not; on Kubernetes the CronJob runs backups).
    pub running: bool,
    /// The next slot (RFC 3339).
    pub next_run: Option<String>,
    /// The last run recorded (RFC 3339).
    pub last_run: Option<String>,
    /// Runs missed while no process ran the schedule.
    pub missed: Option<MissedView>,
    /// The last slot this process handled.
    pub last_tick: Option<TickView>,
    /// Why the schedule cannot be followed.
    pub error: Option<String>,
}

/// Every schedule of an environment.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SchedulesView {
    /// The environment.
    pub environment: String,
    /// Backups (when enabled), then the drift watch.
    pub schedules: Vec<ScheduleView>,
}
