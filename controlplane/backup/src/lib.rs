//! controlplane's backups: one set per run, holding PostgreSQL, OpenBao/Vault,
//! JetStream and Redis artifacts streamed through zstd, age and SHA-256 into an object
//! store, with the manifest written last. The pure parts (ids, manifest, catalog
//! states, retention, schedule) do no I/O; the services' modules, the pipeline and
//! the destinations do, behind them.

pub mod catalog;
pub mod dest;
pub mod drill;
pub mod error;
pub mod id;
pub mod local;
pub mod manifest;
pub mod moment;
pub mod nats;
pub mod pipeline;
pub mod pitr;
pub mod postgres;
pub mod redis;
pub mod retention;
pub mod schedule;
pub mod set;
pub mod vault;

pub use id::{ArtifactName, BackupId};
pub mod metrics;
pub mod run;
