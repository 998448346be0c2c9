//! Production topologies: which clusters controlplane runs, and each node's name and
//! ports. One source for every platform: the process driver starts these nodes on
//! loopback, the server configuration generators (`serverconf`) give each its peers,
//! and the Kubernetes templates render the same topology as StatefulSet pods (or, for
//! PostgreSQL, as a CloudNativePG `Cluster`).
//!
//! What exists: NATS as a routed cluster of 3 or more nodes (JetStream replicated by
//! RAFT), OpenBao/Vault raft with `retry_join` across 3 or more nodes, PostgreSQL with
//! more than one instance as a CloudNativePG `Cluster` on Kubernetes. Redis runs one
//! node. Anything else is refused by validation (`validate.rs`), never rendered.

use crate::model::{Environment, Nats, Platform, Vault};

/// The fewest nodes a raft group (JetStream, OpenBao) keeps a quorum with after losing
/// one.
pub const MIN_CLUSTER: u32 = 3;

/// The most nodes a raft group (NATS, OpenBao) or a CloudNativePG cluster may have:
/// every write waits for a majority, so each node beyond this slows writes and adds
/// election traffic without a useful gain in fault tolerance. (It also bounds what
/// per-node output the generators expand: validation refuses more before anything
/// lists nodes.)
pub const MAX_CLUSTER: u32 = 9;

/// JetStream's largest stream replication factor.
pub const MAX_STREAM_REPLICAS: u8 = 5;

/// One NATS node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsNode {
    /// 0-based.
    pub index: u32,
    /// `server_name` (unique in the cluster; JetStream needs it).
    pub name: String,
    /// Client port.
    pub client: u16,
    /// HTTP monitoring port.
    pub monitor: u16,
    /// Cluster (route) port.
    pub cluster: u16,
}

/// One OpenBao/Vault node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultNode {
    /// 0-based.
    pub index: u32,
    /// raft `node_id`.
    pub name: String,
    /// API port.
    pub api: u16,
    /// Cluster (raft and request forwarding) port.
    pub cluster: u16,
}

/// Whether NATS runs as a cluster.
pub fn nats_clustered(n: &Nats) -> bool {
    n.common.replicas > 1
}

/// Whether Vault runs as a raft cluster.
pub fn vault_clustered(v: &Vault) -> bool {
    v.common.replicas > 1
}

/// Whether PostgreSQL runs as a CloudNativePG `Cluster` on Kubernetes: with more than
/// one instance (validation refuses that elsewhere), or with point-in-time recovery on
/// (`backup.pitr`), which on Kubernetes is the operator's Barman Cloud plugin archiving
/// WAL: a single instance is then a one-instance Cluster, not a StatefulSet.
pub fn postgres_cnpg(env: &Environment) -> bool {
    env.platform == Platform::Kubernetes
        && env.services.postgres.as_ref().is_some_and(|p| {
            p.common.replicas > 1 || env.backup.as_ref().is_some_and(|b| b.pitr.is_some())
        })
}

/// The NATS nodes. Node `i` listens on the configured ports plus `i` (the process
/// platform runs them side by side on loopback; in a pod every node uses the
/// configured ports). A single node keeps the name it always had.
pub fn nats_nodes(env: &Environment, n: &Nats) -> Vec<NatsNode> {
    let count = n.common.replicas.max(1);
    (0..count)
        .map(|i| {
            let step = u16::try_from(i).unwrap_or(u16::MAX);
            NatsNode {
                index: i,
                name: if count == 1 {
                    format!("{}-{}-nats", env.project, env.name)
                } else {
                    format!("{}-{}-nats-{i}", env.project, env.name)
                },
                client: n.common.port.saturating_add(step),
                monitor: n.monitor_port.saturating_add(step),
                cluster: n.cluster_port.saturating_add(step),
            }
        })
        .collect()
}

/// The Vault nodes. Node `i` listens on the configured API and cluster ports plus
/// `2 i` (so the default 8200/8201 pair is followed by 8202/8203, 8204/8205).
pub fn vault_nodes(env: &Environment, v: &Vault) -> Vec<VaultNode> {
    let count = v.common.replicas.max(1);
    (0..count)
        .map(|i| {
            let step = u16::try_from(2 * i).unwrap_or(u16::MAX);
            VaultNode {
                index: i,
                name: format!("{}-{}-vault-{i}", env.project, env.name),
                api: v.common.port.saturating_add(step),
                cluster: v.cluster_port.saturating_add(step),
            }
        })
        .collect()
}

/// The name of node `i` of a core service's StatefulSet pods (`nats-2`).
pub fn pod(service: &str, i: u32) -> String {
    format!("{service}-{i}")
}
