//! Seeding a running environment: PostgreSQL roles and migrations with row-level
//! security, JetStream streams, Vault mounts/keys/policies/AppRole, Redis ACL users,
//! tenants, and the CloudEvents the control plane publishes about itself.
//!
//! Architecture invariant: this crate is the only one that runs SQL against the
//! platform database or writes Vault/NATS/Redis configuration.

pub mod events;
pub mod nats;
pub mod postgres;
pub mod redis;
pub mod tenants;
pub mod vault;
