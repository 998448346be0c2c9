//! The drift view: what `up` would change in an environment right now, per layer and
//! resource, and since when each change has been seen. `controlplane drift` prints it
//! once; `serve` computes it on `drift.schedule` ([`crate::drift`]), exports its
//! gauges and shows it in the console.

use std::fmt;

use cp_core::plan::Layer;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One layer's drift.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct LayerDriftView {
    /// The layer.
    pub layer: Layer,
    /// Whether it was observed (`observed`), could not be (`deferred`: its service
    /// is down or was never brought up), or declares nothing (`absent`).
    pub observation: String,
    /// Changes `up` would make.
    pub pending: usize,
    /// Changes `up` refuses (an impossible change; the plan says why).
    pub blocked: usize,
    /// Why it could not be observed.
    pub deferred: Option<String>,
}

/// One resource that differs from the environment's files.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DriftedResource {
    /// The layer.
    pub layer: Layer,
    /// The resource (`policy tenant-acme`, `role app`).
    pub resource: String,
    /// What `up` would do (`create`, `update`, `replace`, `delete`, `start`,
    /// `blocked`), or `rotate`: a key or password past its rotation period, which
    /// `controlplane rotate` changes.
    pub action: String,
    /// When a check first saw it differ (RFC 3339).
    pub since: String,
}

/// What differs between an environment's files and what runs.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DriftView {
    /// The environment.
    pub environment: String,
    /// Whether `up` would change anything (or refuses something).
    pub drifted: bool,
    /// When the check ran (RFC 3339).
    pub checked_at: String,
    /// How long the plan took, in milliseconds.
    pub plan_ms: u64,
    /// Every layer of the plan.
    pub layers: Vec<LayerDriftView>,
    /// Every resource that differs.
    pub resources: Vec<DriftedResource>,
}

impl DriftView {
    /// Pending changes in all layers.
    pub fn pending(&self) -> usize {
        self.layers.iter().map(|l| l.pending).sum()
    }

    /// Blocked changes in all layers.
    pub fn blocked(&self) -> usize {
        self.layers.iter().map(|l| l.blocked).sum()
    }
}

impl fmt::Display for DriftView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.drifted {
            writeln!(
                f,
                "{}: drifted: {} change(s) pending, {} blocked (checked {}, {} ms)",
                self.environment,
                self.pending(),
                self.blocked(),
                self.checked_at,
                self.plan_ms
            )?;
        } else {
            writeln!(
                f,
                "{}: no drift (checked {}, {} ms)",
                self.environment, self.checked_at, self.plan_ms
            )?;
        }
        for l in &self.layers {
            if let Some(why) = &l.deferred {
                writeln!(f, "  {:<9} not observed: {why}", l.layer.as_str())?;
            }
        }
        for r in &self.resources {
            writeln!(
                f,
                "  {:<9} {:<8} {} (since {})",
                r.layer.as_str(),
                r.action,
                r.resource,
                r.since
            )?;
        }
        if self.drifted {
            writeln!(
                f,
                "`controlplane plan` shows the changes; `controlplane up` applies them"
            )?;
        }
        Ok(())
    }
}
