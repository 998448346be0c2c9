//! `GET /api/v1/environments/{env}/history`: an environment's last day, as the
//! console's charts draw it: health and drift as the server sampled them, and the
//! alerts that fired (from the environment's Prometheus, else from the samples).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;

/// The last day of one environment.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct HistoryView {
    /// The environment.
    pub environment: String,
    /// The window's start (24 hours before `until`).
    pub since: DateTime<Utc>,
    /// The window's end (when the view was made).
    pub until: DateTime<Utc>,
    /// Health and drift as this server sampled them (at each change, and at least
    /// every few minutes while nothing changes), oldest first. Kept in memory: a
    /// restarted server starts a new history.
    pub samples: Vec<HealthSample>,
    /// What fired.
    pub alerts: AlertTimelineView,
}

/// One sample of an environment's health and drift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct HealthSample {
    /// When it was taken.
    pub at: DateTime<Utc>,
    /// Services answering and healthy (those this platform runs).
    pub services_up: usize,
    /// Services this platform runs.
    pub services_total: usize,
    /// Whether the last drift check had found drift (`None`: not checked yet).
    pub drifted: Option<bool>,
    /// The probe failed (the counts are then those of the last status seen).
    pub probe_failed: bool,
}

impl HealthSample {
    /// The same state as `other` (the time aside).
    pub fn same_state(&self, other: &Self) -> bool {
        (
            self.services_up,
            self.services_total,
            self.drifted,
            self.probe_failed,
        ) == (
            other.services_up,
            other.services_total,
            other.drifted,
            other.probe_failed,
        )
    }
}

/// The alerts that fired in the window.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct AlertTimelineView {
    /// The Prometheus asked (`serve --prometheus ENV=URL`, else the one the
    /// environment runs); `None`: the spans are this server's own, from its samples
    /// (`ServiceDown` while a service was down, `EnvironmentDrifted` while drifted).
    pub prometheus: Option<String>,
    /// Why it could not be asked.
    pub error: Option<String>,
    /// Each period an alert fired, by alert then start.
    pub spans: Vec<AlertSpan>,
}

/// One period during which an alert fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct AlertSpan {
    /// The alert's name.
    pub alert: String,
    /// First seen firing.
    pub from: DateTime<Utc>,
    /// Last seen firing.
    pub to: DateTime<Utc>,
}
