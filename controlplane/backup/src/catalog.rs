//! The catalog: every set a destination holds and its state, derived from what the
//! destination lists (the source of truth; the local copy in the state directory is
//! a cache rebuilt from it by every `backup list`). Pure: listing in, states out.
//!
//! A set is *incomplete* while it has no manifest (a run in progress or one that
//! died), *partial* when its manifest says a service failed, *complete* when every
//! service succeeded, *verified* when `backup verify` re-read it since, *drilled* when
//! a restore drill proved it restores, and *broken* when the last verification failed.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cp_core::names::CoreKind;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::id::BackupId;
use crate::manifest::{Manifest, ManifestError};

/// The object name of a set's verification record (written after the manifest; it
/// never makes a set complete).
pub const VERIFICATION: &str = "verification.json";

/// The last `backup verify` of a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Verification {
    /// When it ran.
    pub at: DateTime<Utc>,
    /// Every artifact read back with its digest, and decrypted.
    pub ok: bool,
    /// Whether a restore drill ran, and when (only set when it passed).
    pub drilled_at: Option<DateTime<Utc>>,
    /// What was wrong.
    pub problems: Vec<String>,
}

/// A set's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum SetState {
    /// No manifest: in progress, or a run that died (debris for `prune`).
    Incomplete,
    /// The manifest says these services failed.
    Partial {
        /// The failed services.
        failed: Vec<CoreKind>,
    },
    /// Every service backed up.
    Complete,
    /// Re-read and checked.
    Verified {
        /// When.
        at: DateTime<Utc>,
    },
    /// Restored into a scratch target and checked.
    Drilled {
        /// When.
        at: DateTime<Utc>,
    },
    /// The last verification failed.
    Broken {
        /// What was wrong.
        problems: Vec<String>,
    },
}

impl SetState {
    /// Its name in tables.
    pub fn name(&self) -> &'static str {
        match self {
            SetState::Incomplete => "incomplete",
            SetState::Partial { .. } => "partial",
            SetState::Complete => "complete",
            SetState::Verified { .. } => "verified",
            SetState::Drilled { .. } => "drilled",
            SetState::Broken { .. } => "broken",
        }
    }

    /// Every requested service is in it (complete, verified or drilled).
    pub fn is_full(&self) -> bool {
        matches!(
            self,
            SetState::Complete | SetState::Verified { .. } | SetState::Drilled { .. }
        )
    }

    /// Verified or drilled.
    pub fn is_verified(&self) -> bool {
        matches!(self, SetState::Verified { .. } | SetState::Drilled { .. })
    }
}

/// What a destination's listing says about one set.
#[derive(Debug, Clone, Default)]
pub struct Listed {
    /// Objects and their sizes (manifest and verification record included).
    pub objects: BTreeMap<String, u64>,
}

/// One set as `backup list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Entry {
    /// Its id.
    pub id: BackupId,
    /// When it started.
    pub started: DateTime<Utc>,
    /// Its state.
    pub state: SetState,
    /// Bytes stored (what the destination lists).
    pub stored_size: u64,
    /// Bytes before compression (from the manifest; 0 without one).
    pub size: u64,
    /// The services in it.
    pub services: Vec<CoreKind>,
    /// Each service's sizes and time (from the manifest; empty without one): what the
    /// console's backup charts draw.
    pub per_service: Vec<ServiceStat>,
    /// The environment its manifest names.
    pub environment: Option<String>,
    /// A manifest that did not parse (the set counts as incomplete).
    pub unreadable: Option<String>,
}

/// One service's part of a set, in numbers.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ServiceStat {
    /// The service.
    pub service: CoreKind,
    /// Whether it was backed up.
    pub ok: bool,
    /// Bytes before compression.
    pub size: u64,
    /// Bytes stored.
    pub stored_size: u64,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

/// A set's state from its manifest (parsed, or why not) and verification record.
pub fn state(
    manifest: Option<&Result<Manifest, ManifestError>>,
    verification: Option<&Verification>,
) -> SetState {
    let Some(Ok(m)) = manifest else {
        return SetState::Incomplete;
    };
    let failed = m.failed();
    if !failed.is_empty() {
        return SetState::Partial { failed };
    }
    match verification {
        Some(v) if !v.ok => SetState::Broken {
            problems: v.problems.clone(),
        },
        Some(Verification {
            drilled_at: Some(at),
            ..
        }) => SetState::Drilled { at: *at },
        Some(v) => SetState::Verified { at: v.at },
        None => SetState::Complete,
    }
}

/// The catalog entry of one set.
pub fn entry(
    id: &BackupId,
    listed: &Listed,
    manifest: Option<&Result<Manifest, ManifestError>>,
    verification: Option<&Verification>,
) -> Entry {
    let m = manifest.and_then(|m| m.as_ref().ok());
    Entry {
        id: id.clone(),
        started: id.started(),
        state: state(manifest, verification),
        stored_size: listed.objects.values().sum(),
        size: m.map_or(0, Manifest::size),
        services: m.map_or_else(Vec::new, |m| m.services.keys().copied().collect()),
        per_service: m.map_or_else(Vec::new, |m| {
            m.services
                .iter()
                .map(|(k, r)| ServiceStat {
                    service: *k,
                    ok: matches!(r.outcome, crate::manifest::Outcome::Ok),
                    size: r.size(),
                    stored_size: r.stored_size(),
                    duration_ms: r.duration_ms,
                })
                .collect()
        }),
        environment: m.map(|m| m.environment.clone()),
        unreadable: manifest.and_then(|m| m.as_ref().err().map(|e| cp_runtime::error::chain(e))),
    }
}

/// Groups object paths (relative to the destination's root) by set. Objects that are
/// not under a set id are not ours and are ignored.
pub fn group(paths: impl IntoIterator<Item = (String, u64)>) -> BTreeMap<BackupId, Listed> {
    let mut out: BTreeMap<BackupId, Listed> = BTreeMap::new();
    for (path, size) in paths {
        let Some((first, rest)) = path.split_once('/') else {
            continue;
        };
        let Ok(id) = BackupId::parse(first) else {
            continue;
        };
        out.entry(id)
            .or_default()
            .objects
            .insert(rest.to_owned(), size);
    }
    out
}

/// A human age: `3d 4h`, `12m`, `40s`.
pub fn age(from: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let s = (now - from).num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_group_by_set_and_strangers_are_ignored() {
        let g = group([
            ("20261201T021500000Z-000001/manifest.json".to_owned(), 10),
            ("20261201T021500000Z-000001/redis/dump.rdb".to_owned(), 90),
            (
                "20261202T021500000Z-000002/postgres/pre-data.sql".to_owned(),
                5,
            ),
            ("README.md".to_owned(), 1),
            ("notes/x".to_owned(), 1),
        ]);
        assert_eq!(g.len(), 2);
        let first = &g[&BackupId::parse("20261201T021500000Z-000001").unwrap()];
        assert_eq!(first.objects.values().sum::<u64>(), 100);
    }

    #[test]
    fn no_manifest_is_incomplete_whatever_else_is_there() {
        assert_eq!(state(None, None), SetState::Incomplete);
        let bad = ManifestError::Syntax {
            id: "x".into(),
            detail: "bad".into(),
        };
        assert_eq!(state(Some(&Err(bad)), None), SetState::Incomplete);
    }
}
