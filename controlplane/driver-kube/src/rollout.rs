//! When a StatefulSet or Deployment has rolled out, judged from its live object the
//! way `kubectl rollout status` does. Pure: no I/O.

use serde_json::Value;

/// What a workload still lacks to have rolled out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Pending {
    /// A StatefulSet or Deployment.
    #[error("{kind} {name} has not rolled out: {}{conditions}", missing.join(", "))]
    Workload {
        /// `StatefulSet`, `Deployment`.
        kind: String,
        /// Its name.
        name: String,
        /// What is missing (`updatedReplicas 1/2`).
        missing: Vec<String>,
        /// Its status conditions (`; conditions: ...`).
        conditions: String,
    },
    /// A CloudNativePG `Cluster`.
    #[error(
        "Cluster {name} is not ready: readyInstances {ready}/{want}, phase `{phase}`{conditions}"
    )]
    Cluster {
        /// Its name.
        name: String,
        /// Ready instances.
        ready: u64,
        /// Wanted instances.
        want: u64,
        /// The phase it reports.
        phase: String,
        /// Its status conditions (`; conditions: ...`).
        conditions: String,
    },
}

/// Whether a workload has rolled out: `Ok` when the controller has seen its newest
/// spec and every wanted replica is updated and ready; else what is still missing.
pub fn rolled_out(live: &Value) -> Result<(), Pending> {
    let kind = live["kind"].as_str().unwrap_or("workload");
    let name = live["metadata"]["name"].as_str().unwrap_or("?");
    if kind == CNPG_CLUSTER {
        return cluster_ready(live, name);
    }
    let want = live["spec"]["replicas"].as_u64().unwrap_or(1);
    let generation = live["metadata"]["generation"].as_u64().unwrap_or(0);
    let status = &live["status"];
    let observed = status["observedGeneration"].as_u64().unwrap_or(0);
    let updated = status["updatedReplicas"].as_u64().unwrap_or(0);
    let ready = status["readyReplicas"].as_u64().unwrap_or(0);
    let total = status["replicas"].as_u64().unwrap_or(0);
    let mut missing = Vec::new();
    if observed < generation {
        missing.push(format!(
            "the controller has not seen generation {generation} yet (observedGeneration {observed})"
        ));
    }
    if updated < want {
        missing.push(format!("updatedReplicas {updated}/{want}"));
    }
    if ready < want {
        missing.push(format!("readyReplicas {ready}/{want}"));
    }
    if kind == "Deployment" && total > updated {
        missing.push(format!(
            "{} old replicas pending termination",
            total - updated
        ));
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Pending::Workload {
        kind: kind.to_owned(),
        name: name.to_owned(),
        missing,
        conditions: conditions(status),
    })
}

/// A CloudNativePG `Cluster`'s kind.
pub const CNPG_CLUSTER: &str = "Cluster";

/// The phase CloudNativePG reports for a cluster whose instances all run.
pub const CNPG_HEALTHY: &str = "Cluster in healthy state";

/// A CloudNativePG `Cluster` is ready when the operator has seen its spec, every
/// instance is ready and it reports itself healthy (a primary elected, the replicas
/// streaming).
fn cluster_ready(live: &Value, name: &str) -> Result<(), Pending> {
    let want = live["spec"]["instances"].as_u64().unwrap_or(1);
    let status = &live["status"];
    let ready = status["readyInstances"].as_u64().unwrap_or(0);
    let phase = status["phase"].as_str().unwrap_or("no phase reported");
    if ready >= want && phase == CNPG_HEALTHY {
        return Ok(());
    }
    Err(Pending::Cluster {
        name: name.to_owned(),
        ready,
        want,
        phase: api_text(phase),
        conditions: conditions(status),
    })
}

/// `; conditions: Available=False (MinimumReplicasUnavailable: ...)`, or nothing.
/// Text the API server gave (a condition's reason or message, written by any
/// controller) as a message may quote it: control characters escaped, so a terminal
/// shows them instead of obeying them, and at most 300 characters.
fn api_text(text: &str) -> String {
    cp_core::diag::clip(&cp_core::diag::escape_control(text), 300).into_owned()
}

fn conditions(status: &Value) -> String {
    let Some(list) = status["conditions"].as_array().filter(|l| !l.is_empty()) else {
        return "; no status conditions reported".to_owned();
    };
    let parts: Vec<String> = list
        .iter()
        .map(|c| {
            let mut s = format!(
                "{}={}",
                api_text(c["type"].as_str().unwrap_or("?")),
                api_text(c["status"].as_str().unwrap_or("?"))
            );
            let reason = api_text(c["reason"].as_str().unwrap_or(""));
            let message = api_text(c["message"].as_str().unwrap_or(""));
            if !reason.is_empty() || !message.is_empty() {
                s.push_str(&format!(" ({reason}: {message})"));
            }
            s
        })
        .collect();
    format!("; conditions: {}", parts.join(", "))
}

/// The image tag of a workload's first container (`16.4` of `postgres:16.4`), as the
/// version `up` reports.
pub fn version(obj: &Value) -> String {
    let image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .or_else(|| obj["spec"]["imageName"].as_str())
        .unwrap_or("");
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) => tag.to_owned(),
        None if image.is_empty() => "unknown".to_owned(),
        None => "latest".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cloudnativepg_cluster_is_ready_when_every_instance_is_and_it_says_healthy() {
        let mut c = json!({"kind": "Cluster", "metadata": {"name": "postgres"},
            "spec": {"instances": 3, "imageName": "ghcr.io/cloudnative-pg/postgresql:15"},
            "status": {"readyInstances": 2, "phase": "Waiting for the instances to become active"}});
        let e = rolled_out(&c).unwrap_err().to_string();
        assert!(
            e.contains("readyInstances 2/3") && e.contains("Waiting for the instances"),
            "{e}"
        );
        c["status"] = json!({"readyInstances": 3, "phase": CNPG_HEALTHY});
        assert!(rolled_out(&c).is_ok());
        assert_eq!(version(&c), "15");
    }

    #[test]
    fn status_text_from_the_api_is_escaped_and_bounded() {
        let long = "x".repeat(5000);
        let d = json!({"kind": "Deployment", "metadata": {"name": "web", "generation": 1},
            "spec": {"replicas": 1},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 0,
                "conditions": [{"type": "Available", "status": "False",
                    "reason": "\u{1b}]0;owned\u{7}Bad", "message": long}]}});
        let e = rolled_out(&d).unwrap_err().to_string();
        assert!(!e.chars().any(|c| c.is_control()), "{e:?}");
        assert!(e.contains("\\x1b]0;owned"), "{e}");
        assert!(e.len() < 1000, "{} characters", e.len());
        let c = json!({"kind": "Cluster", "metadata": {"name": "postgres"},
            "spec": {"instances": 1},
            "status": {"readyInstances": 0, "phase": "\u{1b}[2J"}});
        let e = rolled_out(&c).unwrap_err().to_string();
        assert!(!e.chars().any(|c| c.is_control()), "{e:?}");
    }

    #[test]
    fn judges_rollout_like_kubectl() {
        let mut d = json!({"kind": "Deployment", "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "reg:5000/web:1.2"}]}}},
            "status": {"observedGeneration": 1, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 2,
                "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "not enough"}]}});
        assert_eq!(
            rolled_out(&d).unwrap_err().to_string(),
            "Deployment web has not rolled out: the controller has not seen generation 2 yet (observedGeneration 1), updatedReplicas 1/2, 2 old replicas pending termination; conditions: Available=False (MinimumReplicasUnavailable: not enough)"
        );
        d["status"] = json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "readyReplicas": 2});
        assert_eq!(rolled_out(&d), Ok(()));
        assert_eq!(version(&d), "1.2");
    }
}
