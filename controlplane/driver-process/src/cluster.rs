//! Clusters of local nodes (NATS, Vault with 3 or more replicas): readiness of the
//! whole cluster and which node clients use.
//!
//! Vault raft: node 0 is initialised (only when no keys are kept yet: a cluster
//! that has keys is never initialised again), the unseal material is kept as for a
//! single server (the state key store in dev; outside dev it comes from the secret
//! reference and is never written), every node is unsealed once its `retry_join`
//! has reached the cluster, and the cluster is ready when one node is active, every
//! other a standby, and (with a token) every node a raft voter. NATS: every node
//! answers JetStream requests, which needs a JetStream meta leader (a quorum).

use cp_drivers::DriverError;
use cp_runtime::probe::{self, Endpoint, Ready};
use cp_runtime::secrets::Secret;
use cp_runtime::vault::{Client, KeyStore, VaultApi};
use serde_json::Value;

use crate::service::Unit;

/// Where the nodes answer.
pub(crate) struct Node {
    pub(crate) unit: Unit,
    pub(crate) ep: Endpoint,
}

/// One attempt at a Vault cluster: what it did or why it is not ready yet.
pub(crate) enum VaultStep {
    /// Ready: the active node's version.
    Ready(Ready),
    /// Not yet, and why.
    Again(String),
    /// Will not become ready.
    Fail(DriverError),
    /// Node 0 found its initialisation interrupted (dev: reset the cluster).
    Interrupted(String),
}

/// One pass over a Vault cluster: initialise node 0 if no keys exist, unseal every
/// sealed node that has reached the cluster, then check the roles and voters.
pub(crate) async fn vault_attempt(nodes: &[Node], store: &dyn KeyStore) -> VaultStep {
    use cp_runtime::vault::VaultError;
    let keys = match store.unseal_keys() {
        Ok(k) => k,
        Err(e) => {
            return VaultStep::Fail(DriverError::Vault {
                step: "reading vault's unseal keys",
                source: e.into(),
            });
        }
    };
    let Some(first) = nodes.first() else {
        return VaultStep::Fail(DriverError::EmptyCluster {
            service: cp_core::names::ServiceName::core(cp_core::names::CoreKind::Vault),
        });
    };
    if keys.is_none() || store.init_pending() {
        // Never initialised (or interrupted): node 0 alone does it.
        let api = VaultApi::new(&first.ep);
        if let Err(e) = api.seal_status().await {
            return VaultStep::Again(e.to_string());
        }
        return match api.ensure_unsealed(store).await {
            Ok(_) => VaultStep::Again("initialised node 0".into()),
            Err(VaultError::Sealed { detail }) => {
                VaultStep::Fail(DriverError::VaultSealed { detail })
            }
            Err(e @ VaultError::InitInterrupted { .. }) => VaultStep::Interrupted(e.to_string()),
            Err(e @ VaultError::Api { .. }) => VaultStep::Again(e.to_string()),
            Err(e) => VaultStep::Fail(DriverError::Vault {
                step: "initialising vault",
                source: e.into(),
            }),
        };
    }
    let keys = keys.unwrap_or_default();
    let mut waiting = Vec::new();
    let mut active = None;
    for n in nodes {
        let api = VaultApi::new(&n.ep);
        let status = match api.seal_status().await {
            Ok(s) => s,
            Err(e) => {
                waiting.push(format!("{}: {e}", n.unit));
                continue;
            }
        };
        if !status.initialized {
            // Its retry_join has not reached the cluster yet.
            waiting.push(format!("{}: not joined yet", n.unit));
            continue;
        }
        if status.sealed {
            match api.unseal(&keys).await {
                Ok(_) => {}
                // A key refused is wrong; a node that took every key and still reads
                // sealed is joining raft (it unseals once it has the cluster's data).
                Err(VaultError::Sealed { detail }) if detail.contains("refused") => {
                    return VaultStep::Fail(DriverError::VaultSealed {
                        detail: format!("{}: {detail}", n.unit),
                    });
                }
                Err(e) => waiting.push(format!("{}: {e}", n.unit)),
            }
            waiting.push(format!("{}: just unsealed", n.unit));
            continue;
        }
        match probe::vault_health(&n.ep).await {
            Ok(h) if !h.sealed && !h.standby => active = Some((n, h.version)),
            Ok(h) if !h.sealed => {}
            Ok(_) => waiting.push(format!("{}: sealed", n.unit)),
            Err(e) => waiting.push(format!("{}: {}", n.unit, cp_runtime::error::chain(&e))),
        }
    }
    if !waiting.is_empty() {
        return VaultStep::Again(waiting.join("; "));
    }
    let Some((leader, version)) = active else {
        return VaultStep::Again("no node is active yet (a leader election)".into());
    };
    // Every node a voter: autopilot promotes a joined node after it has been stable
    // (server_stabilization_time, 10 s by default). Needs a token; outside dev
    // without one, every node unsealed and a standby is what can be checked.
    match store.root_token() {
        Ok(Some(token)) => match voters(&leader.ep, token, nodes.len()).await {
            Ok(()) => {}
            Err(why) => return VaultStep::Again(cp_runtime::error::chain(&why)),
        },
        Ok(None) => {}
        Err(e) => {
            return VaultStep::Fail(DriverError::Vault {
                step: "reading vault's root token",
                source: e.into(),
            });
        }
    }
    VaultStep::Ready(Ready { version })
}

/// Why a cluster's voters are not all there yet.
#[derive(Debug, thiserror::Error)]
enum VotersError {
    /// The configuration could not be read.
    #[error("raft configuration")]
    Read(#[source] cp_runtime::vault::RequestError),
    /// Not every server votes yet.
    #[error(
        "raft has {voting} voters of {servers} servers, {count} wanted (autopilot promotes a joined node once it is stable)"
    )]
    Missing {
        voting: usize,
        servers: usize,
        count: usize,
    },
}

/// Whether raft's configuration on `leader` lists `count` servers, every one a voter.
async fn voters(leader: &Endpoint, token: Secret, count: usize) -> Result<(), VotersError> {
    let c = Client::with_token_ca(
        &leader.url(),
        token,
        leader.tls.as_ref().map(|t| t.ca.as_path()),
    );
    let v = c
        .read("sys/storage/raft/configuration")
        .await
        .map_err(VotersError::Read)?
        .unwrap_or(Value::Null);
    let servers = v["data"]["config"]["servers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let voting = servers
        .iter()
        .filter(|s| s["voter"].as_bool() == Some(true))
        .count();
    if servers.len() == count && voting == count {
        Ok(())
    } else {
        Err(VotersError::Missing {
            voting,
            servers: servers.len(),
            count,
        })
    }
}

/// The active node among `nodes` (one request each), else the first that answers
/// as an unsealed standby, else `None`.
pub(crate) async fn vault_active(nodes: &[Endpoint]) -> Option<Endpoint> {
    let mut standby = None;
    for ep in nodes {
        let Ok(Ok(h)) = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            probe::vault_health(ep),
        )
        .await
        else {
            continue;
        };
        if h.sealed || !h.initialized {
            continue;
        }
        if !h.standby {
            return Some(ep.clone());
        }
        standby.get_or_insert_with(|| ep.clone());
    }
    standby
}
