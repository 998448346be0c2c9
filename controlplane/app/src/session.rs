//! Opening an environment for one command: load and validate it, find its state
//! directory, choose the driver (saying why), and, for commands that change anything,
//! take the environment's lock first. Read-only commands create nothing: the state
//! directory is opened only if it exists, and generated secrets are read, never made.

use std::path::{Path, PathBuf};

use cp_core::Environment;
use cp_core::names::{CoreKind, ServiceName};
use cp_drivers::{Context, Driver};
use cp_runtime::access::Access;
use cp_runtime::probe::Endpoint;
use cp_runtime::project::{LoadError, Project};
use cp_runtime::secrets::SecretResolver;
use cp_runtime::state::{StateDir, StateLock};

use crate::driver::{self, AnyDriver, PullObserver};
use crate::error::AppError;

/// The lock every command that changes an environment takes (`up`, `down`, `seed`,
/// `migrate`, `tenant`, `restore`).
pub const ENV_LOCK: &str = "environment";

/// Where to find the environment, as the global flags say.
#[derive(Debug, Clone)]
pub struct Target {
    /// The environment's name.
    pub env: String,
    /// The directory holding `base.yaml` and the environment files.
    pub environments: PathBuf,
    /// `--set PATH=VALUE` overrides.
    pub sets: Vec<String>,
    /// `--state-dir`, when given.
    pub state_dir: Option<PathBuf>,
}

impl Target {
    /// The project these files belong to.
    pub fn project(&self) -> Project {
        Project::new(&self.environments)
    }

    /// The state directory, made absolute: the services are started with other working
    /// directories (initdb reads its password file by this path), and a relative
    /// `--environments` or `--state-dir` must still name the same place.
    pub fn state_path(&self) -> PathBuf {
        let p = self
            .state_dir
            .clone()
            .unwrap_or_else(|| self.project().state_dir(&self.env));
        std::path::absolute(&p).unwrap_or(p)
    }
}

/// Whether a command may change anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `status`, `plan`, `logs`, connect helpers: nothing is created or written.
    ReadOnly,
    /// A command that changes the environment, named for whoever finds the lock taken.
    Mutating(&'static str),
}

/// Loads and validates one environment.
pub fn load(target: &Target) -> Result<Environment, AppError> {
    match target.project().load(&target.env, &target.sets) {
        Ok(l) => Ok(l.env),
        Err(LoadError::Invalid(d)) => Err(AppError::Invalid(d)),
        Err(LoadError::Dir { dir, source }) => Err(AppError::Project {
            what: format!(
                "cannot read the environments directory {}; pass --environments DIR or run from the project root",
                dir.display()
            ),
            source,
        }),
    }
}

/// Everything a command on one environment needs.
#[derive(Debug)]
pub struct Session {
    /// The project.
    pub(crate) project: Project,
    /// The validated environment.
    pub(crate) env: Environment,
    /// Its state directory (a phantom one for read-only commands on an environment
    /// that was never brought up).
    pub(crate) state: StateDir,
    /// Resolves secret references (read-only for read-only commands).
    pub(crate) secrets: SecretResolver,
    /// The driver.
    pub(crate) driver: AnyDriver,
    /// Why this driver (`auto: using local processes because ...`).
    pub(crate) driver_reason: String,
    /// The mode it was opened in.
    pub(crate) mode: Mode,
    _lock: Option<StateLock>,
}

/// An environment loaded and its driver chosen, nothing written yet: what a front end
/// checks its arguments against before a mutating session creates state or takes the
/// lock (invalid input touches nothing).
#[derive(Debug)]
pub struct Prepared {
    /// The validated environment.
    pub env: Environment,
    project: Project,
    path: PathBuf,
    driver: AnyDriver,
    driver_reason: String,
}

impl Prepared {
    /// The chosen driver.
    pub fn driver(&self) -> &AnyDriver {
        &self.driver
    }

    /// Why this driver (`auto: using local processes because ...`).
    pub fn driver_reason(&self) -> &str {
        &self.driver_reason
    }

    /// The state directory's path.
    pub fn state_path(&self) -> &Path {
        &self.path
    }

    /// Loads `target` and chooses its driver. Invalid files fail here; the driver is
    /// chosen before anything exists, so an unusable platform (no cluster configured)
    /// leaves nothing behind.
    pub async fn new(target: &Target, pulls: Option<PullObserver>) -> Result<Prepared, AppError> {
        Prepared::with_model(target, load(target)?, pulls).await
    }

    /// As [`Prepared::new`], with the environment already loaded (a long-running
    /// process keeps its models: [`crate::envs::Environments`]).
    pub async fn with_model(
        target: &Target,
        env: Environment,
        pulls: Option<PullObserver>,
    ) -> Result<Prepared, AppError> {
        let project = target.project();
        let path = target.state_path();
        let (driver, driver_reason) = driver::select(&env, &path, &project, pulls).await?;
        Ok(Prepared {
            env,
            project,
            path,
            driver,
            driver_reason,
        })
    }

    /// Opens the session: a mutating one creates the state directory and holds the
    /// environment's lock from here on; a read-only one creates nothing.
    pub fn open(self, mode: Mode) -> Result<Session, AppError> {
        let (state, lock) = match mode {
            Mode::Mutating(command) => {
                let state = StateDir::open(&self.path, self.env.name.as_str())?;
                let lock = state.lock(ENV_LOCK, command)?;
                (state, Some(lock))
            }
            Mode::ReadOnly => (
                StateDir::open_existing(&self.path)?
                    .unwrap_or_else(|| StateDir::phantom(&self.path)),
                None,
            ),
        };
        let secrets = match mode {
            Mode::Mutating(_) => SecretResolver::new(Some(state.clone())),
            Mode::ReadOnly => SecretResolver::read_only(Some(state.clone())),
        };
        Ok(Session {
            project: self.project,
            env: self.env,
            state,
            secrets,
            driver: self.driver,
            driver_reason: self.driver_reason,
            mode,
            _lock: lock,
        })
    }
}

impl Session {
    /// The validated environment.
    pub fn env(&self) -> &Environment {
        &self.env
    }

    /// The driver.
    pub fn driver(&self) -> &AnyDriver {
        &self.driver
    }

    /// The secret resolver.
    pub fn secrets(&self) -> &SecretResolver {
        &self.secrets
    }

    /// The state directory.
    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// The project.
    pub fn project(&self) -> &Project {
        &self.project
    }

    /// Why this driver (`auto: using local processes because ...`).
    pub fn driver_reason(&self) -> &str {
        &self.driver_reason
    }

    /// The mode it was opened in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Opens `target` in `mode` ([`Prepared::new`], then [`Prepared::open`]).
    pub async fn open(
        target: &Target,
        mode: Mode,
        pulls: Option<PullObserver>,
    ) -> Result<Session, AppError> {
        Prepared::new(target, pulls).await?.open(mode)
    }

    /// The driver context.
    pub fn cx(&self) -> Context<'_> {
        Context {
            env: &self.env,
            secrets: &self.secrets,
            state: &self.state,
        }
    }

    /// The state directory's path.
    pub fn state_path(&self) -> &Path {
        self.state.path()
    }

    /// For a command that stops services or deletes data (`down`, `migrate down`,
    /// `tenant delete`): refuses while a backup of this environment runs, naming it
    /// (`Busy`, exit 1), and keeps a backup from starting until the lock returned is
    /// dropped. A backup run as a Kubernetes Job holds no local lock and is not seen.
    pub fn exclude_backups(&self, command: &str) -> Result<StateLock, AppError> {
        Ok(cp_backup::run::lock(&self.state, command)?)
    }

    /// Where a core service answers, if the environment runs it.
    pub fn endpoint(&self, kind: CoreKind) -> Option<Endpoint> {
        self.driver.endpoint(&self.env, &ServiceName::core(kind))
    }

    /// Endpoints and credentials of every enabled core service.
    pub async fn access(&self) -> Result<Access, AppError> {
        // Asked once per kind before resolving: a cluster's best node takes a request.
        let mut endpoints = std::collections::BTreeMap::new();
        for kind in CoreKind::ALL {
            if let Some(ep) = self
                .driver
                .client_endpoint(&self.env, &ServiceName::core(kind))
                .await
            {
                endpoints.insert(kind, ep);
            }
        }
        Ok(Access::resolve(
            &self.env,
            |k| endpoints.get(&k).cloned(),
            &self.secrets,
            &self.state,
            self.driver.vault_keys_dir(),
        )
        .await?)
    }
}
