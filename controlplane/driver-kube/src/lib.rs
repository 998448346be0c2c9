//! controlplane's Kubernetes driver: server-side apply of an environment's rendered
//! overlay with field manager `controlplane`, rollout waits with a deadline, pruning
//! and teardown by the environment label.
//!
//! - [`objects`]: the environment's objects and their plan resources (pure).
//! - [`rollout`]: when a StatefulSet or Deployment has rolled out (pure).
//! - [`driver`]: [`KubeDriver`], the [`cp_drivers::Driver`] contract over the API.
//! - [`job`]: a Job from a CronJob, followed to its end (`controlplane backup` there).

pub mod driver;
pub mod job;
pub mod objects;
pub mod rollout;

pub use driver::{FIELD_MANAGER, KubeDriver};
