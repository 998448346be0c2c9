//! controlplane's docker driver: an environment as containers on a Docker Engine,
//! through bollard (API version negotiated, so engines from 20.10 on work).
//!
//! - [`DockerDriver`] implements [`cp_drivers::Driver`]: one network per environment,
//!   named volumes per stateful service, one labelled container per service (core
//!   services, apps, extras and monitoring components alike), ports published on
//!   127.0.0.1 only.
//! - [`docker_usable`] tells the `auto` platform whether Docker can run an
//!   environment (the engine answers and has every image locally), and why not.
//!
//! Modules: `spec` (pure: what the environment needs, labels, specs), `client`
//! (connection, errors, pulls), `driver` (the contract), `ready` (readiness probes),
//! `archive` (files into containers), `usable` (`auto`).

mod archive;
mod client;
mod driver;
mod ready;
mod spec;
mod usable;

pub use client::{DEFAULT_HOST, PullObserver, PullProgress};
pub use driver::{DockerDriver, VAULT_KEYS_DIR};
pub use spec::{LABEL_ENVIRONMENT, LABEL_PROJECT, LABEL_SERVICE, LABEL_SPEC};
pub use usable::{Unusable, docker_usable, docker_usable_at};
