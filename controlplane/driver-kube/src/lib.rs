//! controlplane's Kubernetes driver: server-side apply of an environment's rendered
//! overlay with field manager `controlplane`, rollout waits with a deadline, pruning
//! and teardown by the environment label.
//!
//! - [`objects`]: the environment's objects and their plan resources (pure).
//! - [`rollout`]: when a StatefulSet or Deployment has rolled out (pure).
//! - [`driver`]: [`KubeDriver`], the [`cp_drivers::Driver`] contract over the API.

pub mod driver;
pub mod objects;
pub mod rollout;

pub use driver::{FIELD_MANAGER, KubeDriver};
