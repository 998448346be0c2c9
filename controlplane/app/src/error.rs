//! The application layer's one error type: what went wrong, with its cause, mapped to
//! one exit code ([`crate::exit::Exit`]) and, for the server, one HTTP status. Display
//! says what failed and what to do; it never includes a secret value.

use cp_backup::run::BackupError;
use cp_core::Diagnostics;

use crate::exit::Exit;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The environment files are invalid (every error, with its place).
    #[error("{0}")]
    Invalid(Diagnostics),
    /// A flag or argument is wrong.
    #[error("{0}")]
    Usage(String),
    /// A destructive command needs a confirmation it did not get.
    #[error(
        "{action} would delete:\n{}\nnothing was changed; run it again with --yes to confirm",
        what.iter().map(|w| format!("  - {w}")).collect::<Vec<_>>().join("\n")
    )]
    NeedsConfirmation {
        /// What the command does (`down --volumes on staging`).
        action: String,
        /// What it would delete.
        what: Vec<String>,
    },
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The project's files could not be read.
    #[error("{what}")]
    Project {
        /// What was being read.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The state directory (including a lock held by another run).
    #[error(transparent)]
    State(#[from] cp_runtime::state::StateError),
    /// A driver failed.
    #[error(transparent)]
    Driver(#[from] cp_drivers::DriverError),
    /// Seeding (a layer's observe or apply) failed.
    #[error(transparent)]
    Seed(#[from] cp_seed::SeedError),
    /// Endpoints or credentials could not be resolved.
    #[error(transparent)]
    Access(#[from] cp_runtime::access::AccessError),
    /// A backup command failed.
    #[error(transparent)]
    Backup(#[from] cp_backup::run::BackupError),
    /// `up --backup`: the backup before applying failed, so nothing was applied.
    #[error(
        "the backup before applying ({id}) did not complete, so nothing was applied:\n{}",
        failed.iter().map(|f| format!("  - {f}")).collect::<Vec<_>>().join("\n")
    )]
    BackupFirst {
        /// The set.
        id: String,
        /// What failed.
        failed: Vec<String>,
    },
    /// The environment's Prometheus could not be asked.
    #[error("{what}")]
    Prometheus {
        /// What was being asked, and what to check.
        what: String,
        /// Why.
        #[source]
        source: cp_runtime::prometheus::PromError,
    },
    /// A saved plan no longer matches the world.
    #[error(
        "the saved plan {file} no longer matches what exists, so nothing was applied:\n{}\nrun `controlplane plan --out {file}` again and review it",
        moved.iter().map(|m| format!("  - {m}")).collect::<Vec<_>>().join("\n")
    )]
    StalePlan {
        /// The file.
        file: String,
        /// What moved since it was made.
        moved: Vec<String>,
    },
    /// Something already runs that this request would collide with.
    #[error("{what} is already running ({holder}); wait for it to finish")]
    Busy {
        /// What runs (`a drift check of dev`).
        what: String,
        /// Who runs it.
        holder: String,
    },
    /// Vault's unseal keys (or root token) could not be read or kept.
    #[error("{what}")]
    VaultKeys {
        /// What was being done (`reading the source's Vault unseal keys`).
        what: String,
        /// Why.
        #[source]
        source: cp_runtime::vault::VaultError,
    },
    /// An operator's NATS command (`nats pub|sub|stream`) failed at the server.
    #[error("{what}")]
    Nats {
        /// What was being done (`publishing to events.test`).
        what: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A backup run as a Kubernetes Job could not be run or followed.
    #[error("the backup as a Kubernetes Job")]
    ClusterJob(#[source] cp_driver_kube::job::JobError),
    /// A job panicked: a bug, reported as such.
    #[error("job {job} panicked: {detail} (a bug: the log has the backtrace)")]
    JobPanicked {
        /// The job.
        job: String,
        /// The panic's message.
        detail: String,
    },
    /// The plan has steps that cannot be applied.
    #[error(
        "the plan has changes that cannot be applied, so nothing was changed:\n{}",
        steps.iter().map(|m| format!("  ! {m}")).collect::<Vec<_>>().join("\n")
    )]
    Blocked {
        /// Each blocked step and why.
        steps: Vec<String>,
    },
}

/// What kind of failure an [`AppError`] is: what the CLI exits with and what the
/// server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Invalid input: files, flags, a request body (exit 3, HTTP 4xx).
    Usage,
    /// Something named does not exist (exit 1, HTTP 404).
    NotFound,
    /// Someone else holds what this needs, or the world moved (exit 1, HTTP 409).
    Conflict,
    /// A service, a destination or a cluster did not answer or failed (exit 1,
    /// HTTP 503).
    Unavailable,
    /// A bug (exit 1, HTTP 500 with the request id; the log has the chain).
    Internal,
}

impl AppError {
    /// What holds the lock this request collided with: (`backup lock`, holder).
    pub fn holder(&self) -> Option<(String, String)> {
        use cp_runtime::state::StateError;
        match self {
            AppError::State(StateError::Busy { what, holder, .. })
            | AppError::Backup(BackupError::State(StateError::Busy { what, holder, .. })) => {
                Some((format!("{what} lock"), holder.clone()))
            }
            AppError::Busy { what, holder } => Some((what.clone(), holder.clone())),
            _ => None,
        }
    }

    /// A stable code for a failure of something outside this process (the API's
    /// `error` field).
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Backup(_) | AppError::BackupFirst { .. } | AppError::ClusterJob(_) => {
                "backup_failed"
            }
            AppError::Prometheus { .. } => "prometheus_failed",
            _ => "service_failed",
        }
    }

    /// Its kind. Every variant is classified here, without a catch-all, so a new
    /// one must say what it is.
    pub fn kind(&self) -> ErrorKind {
        use cp_runtime::state::StateError;
        match self {
            AppError::Invalid(_)
            | AppError::Usage(_)
            | AppError::NeedsConfirmation { .. }
            | AppError::Blocked { .. } => ErrorKind::Usage,
            AppError::NotFound(_) => ErrorKind::NotFound,
            AppError::Busy { .. } | AppError::StalePlan { .. } => ErrorKind::Conflict,
            AppError::State(StateError::Busy { .. }) => ErrorKind::Conflict,
            // This process's own files.
            AppError::State(_) | AppError::Project { .. } | AppError::VaultKeys { .. } => {
                ErrorKind::Internal
            }
            AppError::Backup(b) => match b {
                BackupError::Disabled { .. }
                | BackupError::ServiceNotInSet { .. }
                // A destination name the environment does not have: a wrong argument.
                | BackupError::Destination(cp_backup::dest::DestinationError::Unknown {
                    ..
                }) => ErrorKind::Usage,
                BackupError::NoSuchSet { .. } => ErrorKind::NotFound,
                BackupError::State(StateError::Busy { .. })
                | BackupError::Incomplete { .. }
                | BackupError::Damaged { .. } => ErrorKind::Conflict,
                // The environment's own settings or this process's state.
                BackupError::State(_)
                | BackupError::Recipient(_)
                | BackupError::Identity(_)
                | BackupError::Secret { .. } => ErrorKind::Internal,
                // A destination, a service, a manifest: which one and why.
                _ => ErrorKind::Unavailable,
            },
            AppError::Driver(_)
            | AppError::Seed(_)
            | AppError::Access(_)
            | AppError::BackupFirst { .. }
            | AppError::Prometheus { .. }
            | AppError::Nats { .. }
            | AppError::ClusterJob(_) => ErrorKind::Unavailable,
            AppError::JobPanicked { .. } => ErrorKind::Internal,
        }
    }

    /// Whether the error carries what PostgreSQL answered (its message names roles,
    /// constraints, SQLSTATEs): every PostgreSQL failure but an unreachable server and
    /// the tenant conflicts, whose messages are this program's own. A front end that
    /// answers strangers (the server) keeps such text in its log.
    pub fn database_detail(&self) -> bool {
        use cp_seed::SeedErrorKind as K;
        match self {
            AppError::Seed(s) => {
                s.service() == "postgres"
                    && !matches!(
                        s.kind,
                        K::PostgresUnreachable { .. }
                            | K::TenantSlugMismatch { .. }
                            | K::SlugTaken { .. }
                            | K::TenantRace { .. }
                    )
            }
            _ => false,
        }
    }

    /// The exit code this failure means.
    pub fn exit(&self) -> Exit {
        match self {
            AppError::Invalid(_) | AppError::Usage(_) | AppError::NeedsConfirmation { .. } => {
                Exit::Invalid
            }
            // A destination name the environment does not have (`backup list
            // --destination nope`): a wrong argument, like an unknown service.
            AppError::Backup(BackupError::Destination(
                cp_backup::dest::DestinationError::Unknown { .. },
            )) => Exit::Invalid,
            _ => Exit::Failure,
        }
    }

    /// The message and each cause once ([`cp_runtime::error::chain`]).
    pub fn chain(&self) -> String {
        cp_runtime::error::chain(self)
    }
}
