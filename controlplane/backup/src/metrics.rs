//! The backup metrics `controlplane serve` exports, in the names of ARCHITECTURE.md's
//! metrics contract, kept in a small state file (`backup/metrics.json`) that every run
//! updates: per service the last success time, whether the last run succeeded, its
//! duration and the size of the last successful backup.

use std::collections::BTreeMap;

use cp_core::names::CoreKind;
use cp_runtime::state::{StateDir, StateError};
use serde::{Deserialize, Serialize};

/// The file, inside the state directory.
pub const FILE: &str = "backup/metrics.json";

/// One service's series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceMetrics {
    /// `controlplane_backup_last_success_timestamp_seconds` (0 until the first success).
    pub last_success_timestamp_seconds: i64,
    /// `controlplane_backup_last_run_success` (1 or 0).
    pub last_run_success: u8,
    /// `controlplane_backup_duration_seconds` (the last run).
    pub duration_seconds: f64,
    /// `controlplane_backup_size_bytes` (the last successful backup, as stored).
    pub size_bytes: u64,
}

/// A series: its name, its help text and how to read its value.
type Series = (&'static str, &'static str, fn(&ServiceMetrics) -> String);

/// Every backed-up service's series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// By service.
    pub services: BTreeMap<CoreKind, ServiceMetrics>,
}

impl Metrics {
    /// Reads the file (empty when absent or unreadable: a metric is never invented).
    pub fn read(state: &StateDir) -> Metrics {
        state
            .read(FILE)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Records one run of `service`.
    pub fn record(
        &mut self,
        service: CoreKind,
        ok: bool,
        at_unix: i64,
        duration_seconds: f64,
        size: u64,
    ) {
        let m = self.services.entry(service).or_default();
        m.last_run_success = u8::from(ok);
        m.duration_seconds = duration_seconds;
        if ok {
            m.last_success_timestamp_seconds = at_unix;
            m.size_bytes = size;
        }
    }

    /// Writes the file atomically.
    pub fn write(&self, state: &StateDir) -> Result<(), StateError> {
        state.write(
            FILE,
            &serde_json::to_vec_pretty(self).expect("serializes"),
            0o644,
        )
    }

    /// The Prometheus text exposition for environment `env`, every service of
    /// `services` present from the start (a backup that never ran is too old, not
    /// absent).
    pub fn exposition(&self, env: &str, services: &[CoreKind]) -> String {
        let mut out = String::new();
        let series: [Series; 4] = [
            (
                "controlplane_backup_last_success_timestamp_seconds",
                "Unix time of the last successful backup (0: never).",
                |m| m.last_success_timestamp_seconds.to_string(),
            ),
            (
                "controlplane_backup_last_run_success",
                "1 when the last backup run succeeded.",
                |m| m.last_run_success.to_string(),
            ),
            (
                "controlplane_backup_duration_seconds",
                "Duration of the last backup run.",
                |m| m.duration_seconds.to_string(),
            ),
            (
                "controlplane_backup_size_bytes",
                "Stored size of the last successful backup.",
                |m| m.size_bytes.to_string(),
            ),
        ];
        for (name, help, value) in series {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for s in services {
                let m = self.services.get(s).cloned().unwrap_or_default();
                out.push_str(&format!(
                    "{name}{{env=\"{env}\",service=\"{s}\"}} {}\n",
                    value(&m)
                ));
            }
        }
        out
    }
}
