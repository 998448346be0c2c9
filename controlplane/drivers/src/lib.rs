//! Platform drivers behind one contract ([`contract::Driver`]) and the engine that
//! plans and applies with any of them.
//!
//! Each driver is its own crate (one folder): `cp-driver-process` (local supervised
//! processes), `cp-driver-docker` (Docker Engine through bollard), `cp-driver-kube`
//! (server-side apply with kube).

pub mod contract;
pub mod engine;
pub mod error;
pub mod reinit;

pub use contract::{
    Context, Driver, DriverKind, Health, Removal, ServiceState, ServiceStatus, Vanished,
};
pub use error::DriverError;
