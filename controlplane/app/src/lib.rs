//! controlplane's application layer: what every front end (the CLI, the server) needs
//! and nothing front-end specific. Opening an environment ([`session`]: load, state
//! directory, driver selection with its reason, the environment lock; [`envs`] keeps
//! a long-running process's models), the driver enum ([`driver`]), the
//! whole-environment plan ([`plan`]) and its executor ([`up`]), the other commands
//! ([`ops`], [`backup`], [`connect`]), jobs with their registry, locks and schedules
//! ([`jobs`]), the drift watch ([`drift`]), rotation ([`rotate`]) and the jobs' gauges ([`metrics`]), the
//! typed views they return ([`views`]), one error type with its kinds ([`error`]) and
//! one exit-code table ([`exit`]).

pub mod backup;
pub mod connect;
pub mod drift;
pub mod driver;
pub mod envs;
pub mod error;
pub mod exit;
pub mod history;
pub mod jobs;
pub mod metrics;
pub mod moment;
pub mod nats;
pub mod ops;
pub mod pitr;
pub mod plan;
pub mod rotate;
pub mod serve_tls;
pub mod session;
pub mod up;
pub mod views;

pub use error::{AppError, ErrorKind};
pub use exit::Exit;
pub use jobs::{JobHandle, JobRequest, Jobs};
pub use session::{Mode, Prepared, Session, Target};
