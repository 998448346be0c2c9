//! Grandfather-father-son retention, planned through the shared planner: the sets a
//! retention keeps become desired [`Resource`]s (each saying which rules keep it),
//! the sets that exist become [`Observed`], and [`cp_core::plan::plan`] with pruning
//! turns the difference into Delete steps. Pure and deterministic: the clock is an
//! argument, so a year of daily runs is simulated in a test.
//!
//! The rules, in the spirit of restic's `forget --keep-daily/weekly/monthly`:
//! - among full sets (complete, verified, drilled), the newest of each of the newest
//!   `daily` UTC days that have one, of each of the newest `weekly` ISO weeks, and of
//!   each of the newest `monthly` months. Buckets are counted among the sets that
//!   exist, not on the calendar, so a month of failed runs expires nothing;
//! - the newest verified set, always (a set proved restorable is never the one that
//!   goes because newer, unproved ones exist);
//! - the newest full set, always;
//! - sets newer than the newest full set (partial ones hold the newest data of the
//!   services that worked; an incomplete one may be a run in progress);
//! - nothing else: older incomplete sets are debris of runs that died, older partial
//!   sets are superseded, broken sets (failed verification) are not worth keeping once
//!   a newer full set exists.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, Utc};
use cp_core::model::Retention;
use cp_core::plan::{
    self, Action, Layer, Observed, ObservedState, Plan, Resource, ResourceId, UpdateMode,
};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use crate::catalog::SetState;
use crate::id::BackupId;

/// One set as retention sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its id (and so its start time).
    pub id: BackupId,
    /// Its state.
    pub state: SetState,
}

/// Why a set is kept.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "rule", content = "period")]
pub enum KeepReason {
    /// The newest of this day (`2026-12-01`).
    Daily(String),
    /// The newest of this ISO week (`2026-W49`).
    Weekly(String),
    /// The newest of this month (`2026-12`).
    Monthly(String),
    /// The newest verified set.
    NewestVerified,
    /// The newest full set.
    NewestFull,
    /// Newer than the newest full set (partial, or possibly still running).
    NewerThanNewestFull,
    /// Inside PostgreSQL's recovery window (`backup.pitr.recovery_window`): a restore
    /// of the whole environment to a moment in the window takes Redis and OpenBao
    /// from the newest set before it and JetStream from the nearest set after it.
    RecoveryWindow,
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepReason::Daily(d) => write!(f, "daily {d}"),
            KeepReason::Weekly(w) => write!(f, "weekly {w}"),
            KeepReason::Monthly(m) => write!(f, "monthly {m}"),
            KeepReason::NewestVerified => f.write_str("newest verified"),
            KeepReason::NewestFull => f.write_str("newest complete"),
            KeepReason::NewerThanNewestFull => f.write_str("newer than the newest complete set"),
            KeepReason::RecoveryWindow => f.write_str("inside the point-in-time recovery window"),
        }
    }
}

/// Why a set goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// A full set no rule keeps.
    Expired,
    /// No manifest, and a newer full set exists: a run that died.
    Debris,
    /// A partial set older than the newest full set.
    Superseded,
    /// Failed verification, and a newer full set exists.
    Broken,
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DropReason::Expired => "no retention rule keeps it",
            DropReason::Debris => {
                "incomplete (no manifest: a run that died) and older than the newest complete set"
            }
            DropReason::Superseded => "partial and older than the newest complete set",
            DropReason::Broken => "failed verification and older than the newest complete set",
        })
    }
}

/// What retention decided.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RetentionPlan {
    /// Kept sets, newest first, each with every rule that keeps it.
    pub keep: Vec<(BackupId, Vec<KeepReason>)>,
    /// Sets to delete, newest first, with why.
    pub delete: Vec<(BackupId, DropReason)>,
    /// The same as the planner's steps (one Delete per set that goes).
    #[serde(skip)]
    #[schemars(skip)]
    pub plan: Plan,
}

fn resource_id(id: &BackupId) -> ResourceId {
    ResourceId::new(Layer::Backups, "backup-set", id.as_str())
}

/// Plans retention over `sets` at `now`. Sets started after `now` (a clock that went
/// back) are kept, never judged. With point-in-time recovery on, every full set inside
/// its `recovery_window` is kept too, and the newest full set older than the window
/// (the one a restore to the window's first moment takes Redis and OpenBao from).
pub fn plan_retention(
    sets: &[Candidate],
    retention: Retention,
    recovery_window: Option<chrono::TimeDelta>,
    now: DateTime<Utc>,
) -> RetentionPlan {
    let mut sorted: Vec<&Candidate> = sets.iter().collect();
    sorted.sort_by(|a, b| b.id.cmp(&a.id));
    let mut keep: BTreeMap<BackupId, Vec<KeepReason>> = BTreeMap::new();
    let add = |keep: &mut BTreeMap<BackupId, Vec<KeepReason>>, id: &BackupId, r: KeepReason| {
        keep.entry(id.clone()).or_default().push(r);
    };

    let full: Vec<&Candidate> = sorted
        .iter()
        .copied()
        .filter(|c| c.state.is_full())
        .collect();
    let mut bucket =
        |n: u32, key: &dyn Fn(DateTime<Utc>) -> String, rule: fn(String) -> KeepReason| {
            let mut seen: Vec<String> = Vec::new();
            for c in &full {
                if seen.len() >= n as usize {
                    break;
                }
                let k = key(c.id.started());
                if !seen.contains(&k) {
                    seen.push(k.clone());
                    add(&mut keep, &c.id, rule(k));
                }
            }
        };
    bucket(
        retention.daily,
        &|t| t.format("%Y-%m-%d").to_string(),
        KeepReason::Daily,
    );
    bucket(
        retention.weekly,
        &|t| {
            let w = t.iso_week();
            format!("{}-W{:02}", w.year(), w.week())
        },
        KeepReason::Weekly,
    );
    bucket(
        retention.monthly,
        &|t| t.format("%Y-%m").to_string(),
        KeepReason::Monthly,
    );
    if let Some(v) = sorted.iter().find(|c| c.state.is_verified()) {
        add(&mut keep, &v.id, KeepReason::NewestVerified);
    }
    if let Some(w) = recovery_window {
        let start = now - w;
        for c in &full {
            add(&mut keep, &c.id, KeepReason::RecoveryWindow);
            if c.id.started() < start {
                break;
            }
        }
    }
    let newest_full = full.first().map(|c| c.id.clone());
    if let Some(id) = &newest_full {
        add(&mut keep, id, KeepReason::NewestFull);
    }
    let mut delete = Vec::new();
    let mut newer = Vec::new();
    for c in &sorted {
        if keep.contains_key(&c.id) {
            continue;
        }
        let newer_than_full = newest_full.as_ref().is_none_or(|f| c.id > *f);
        if newer_than_full || c.id.started() > now {
            newer.push(c.id.clone());
            continue;
        }
        let reason = match &c.state {
            SetState::Incomplete => DropReason::Debris,
            SetState::Partial { .. } => DropReason::Superseded,
            SetState::Broken { .. } => DropReason::Broken,
            _ => DropReason::Expired,
        };
        delete.push((c.id.clone(), reason));
    }
    for id in newer {
        keep.entry(id)
            .or_default()
            .push(KeepReason::NewerThanNewestFull);
    }
    for reasons in keep.values_mut() {
        reasons.sort();
        reasons.dedup();
    }

    // Through the shared planner: kept sets are wanted, every set exists.
    let desired: Vec<Resource> = keep
        .iter()
        .map(|(id, reasons)| Resource {
            id: resource_id(id),
            service: None,
            spec: json!({"kept_by": reasons.iter().map(ToString::to_string).collect::<Vec<_>>()}),
            update: UpdateMode::InPlace,
        })
        .collect();
    let observed: Vec<Observed> = sorted
        .iter()
        .map(|c| Observed {
            id: resource_id(&c.id),
            spec: None,
            state: ObservedState::Present,
        })
        .collect();
    let plan = plan::plan(&desired, &observed, true);
    debug_assert_eq!(
        plan.steps
            .iter()
            .filter(|s| s.action == Action::Delete)
            .count(),
        delete.len()
    );
    let mut keep: Vec<(BackupId, Vec<KeepReason>)> = keep.into_iter().collect();
    keep.sort_by(|a, b| b.0.cmp(&a.0));
    RetentionPlan { keep, delete, plan }
}

impl fmt::Display for RetentionPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (id, reasons) in &self.keep {
            let r: Vec<String> = reasons.iter().map(ToString::to_string).collect();
            writeln!(f, "  keep   {id}  ({})", r.join(", "))?;
        }
        for (id, reason) in &self.delete {
            writeln!(f, "- delete {id}  ({reason})")?;
        }
        write!(
            f,
            "{} kept, {} to delete",
            self.keep.len(),
            self.delete.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).unwrap()
    }

    fn c(t: DateTime<Utc>, state: SetState) -> Candidate {
        Candidate {
            id: BackupId::with_suffix(t, 0),
            state,
        }
    }

    #[test]
    fn every_kind_of_set_is_kept_or_dropped_for_a_reason() {
        let r = Retention {
            daily: 2,
            weekly: 1,
            monthly: 1,
        };
        let sets = vec![
            c(
                at(2026, 11, 1, 2),
                SetState::Verified {
                    at: at(2026, 11, 1, 3),
                },
            ),
            c(at(2026, 11, 20, 2), SetState::Complete),
            c(at(2026, 11, 30, 2), SetState::Incomplete),
            c(at(2026, 12, 1, 2), SetState::Complete),
            c(at(2026, 12, 1, 8), SetState::Partial { failed: vec![] }),
            c(at(2026, 12, 2, 2), SetState::Complete),
            c(at(2026, 12, 2, 9), SetState::Incomplete),
        ];
        let p = plan_retention(&sets, r, None, at(2026, 12, 2, 10));
        assert_eq!(
            p.to_string(),
            "  keep   20261202T090000000Z-000000  (newer than the newest complete set)
  keep   20261202T020000000Z-000000  (daily 2026-12-02, weekly 2026-W49, monthly 2026-12, newest complete)
  keep   20261201T020000000Z-000000  (daily 2026-12-01)
  keep   20261101T020000000Z-000000  (newest verified)
- delete 20261201T080000000Z-000000  (partial and older than the newest complete set)
- delete 20261130T020000000Z-000000  (incomplete (no manifest: a run that died) and older than the newest complete set)
- delete 20261120T020000000Z-000000  (no retention rule keeps it)
4 kept, 3 to delete"
        );
        assert_eq!(p.plan.counts().2, 3);
    }

    #[test]
    fn without_any_full_set_nothing_goes() {
        let sets = vec![
            c(at(2026, 12, 1, 2), SetState::Incomplete),
            c(at(2026, 12, 2, 2), SetState::Partial { failed: vec![] }),
        ];
        let p = plan_retention(
            &sets,
            Retention {
                daily: 1,
                weekly: 0,
                monthly: 0,
            },
            None,
            at(2026, 12, 3, 0),
        );
        assert!(p.delete.is_empty(), "{p}");
    }
}
