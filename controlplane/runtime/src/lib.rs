//! controlplane's runtime: the project on disk, state directories, secrets, and the
//! clients and readiness probes every driver, the seeder and the server share.

pub mod access;
pub mod error;
pub mod events;
pub mod exec;
pub mod initialised;
pub mod nats;
pub mod probe;
pub mod project;
pub mod prometheus;
pub mod resp;
pub mod secrets;
pub mod state;
pub mod tls;
pub mod vault;
