//! One recovery point across services: which logical set each service comes from
//! when a whole environment is restored to a moment T. Pure: the caller lists the
//! sets' manifests, this decides.
//!
//! - Redis and OpenBao: the newest set that *finished* at or before T (every byte of
//!   it was read before T, so nothing in it is from after T).
//! - JetStream: the oldest set that *started* at or after T (every message stored at
//!   or before T is still in it, unless the stream's own limits or acks removed it
//!   between T and the snapshot); the restore then trims the messages stored after T.
//!   The oldest such set is the nearest: the least time for retention to drop a
//!   message from before T.
//! - PostgreSQL is not chosen here: it replays WAL to exactly T.

use chrono::{DateTime, Utc};
use cp_core::names::CoreKind;
use serde::Serialize;

use crate::BackupId;
use crate::manifest::{Manifest, Outcome};

/// A set as the chooser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetTimes {
    /// The set.
    pub id: BackupId,
    /// When its run started.
    pub started: DateTime<Utc>,
    /// When its last artifact was written.
    pub finished: DateTime<Utc>,
    /// The services backed up successfully in it.
    pub ok: Vec<CoreKind>,
}

impl SetTimes {
    /// From a manifest.
    pub fn of(m: &Manifest) -> Self {
        SetTimes {
            id: m.id.clone(),
            started: m.started,
            finished: m.finished,
            ok: m
                .services
                .iter()
                .filter(|(_, r)| r.outcome == Outcome::Ok)
                .map(|(k, _)| *k)
                .collect(),
        }
    }
}

/// Which side of T a service's set must be on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Finished at or before T (Redis, OpenBao).
    Before,
    /// Started at or after T, then trimmed to T (JetStream).
    After,
}

/// The side of T `service`'s set is taken from; `None` for PostgreSQL (WAL replay).
pub fn side(service: CoreKind) -> Option<Side> {
    match service {
        CoreKind::Postgres => None,
        CoreKind::Redis | CoreKind::Vault => Some(Side::Before),
        CoreKind::Nats => Some(Side::After),
    }
}

/// No set fits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MomentError {
    /// Nothing finished at or before T.
    #[error(
        "no backup set of {service} finished at or before {at}{}: choose a later time, or leave {service} out with --service",
        oldest.as_ref().map(|o| format!(" (the oldest finished at {o})")).unwrap_or_default()
    )]
    NoneBefore {
        /// The service.
        service: CoreKind,
        /// T.
        at: String,
        /// When the oldest usable set finished.
        oldest: Option<String>,
    },
    /// Nothing started at or after T.
    #[error(
        "no backup set of {service} started at or after {at}: its streams are trimmed back to T from a later snapshot; take one now (`controlplane backup --service {service}`, the live streams still hold those messages), then run the restore again"
    )]
    NoneAfter {
        /// The service.
        service: CoreKind,
        /// T.
        at: String,
    },
}

/// The set `service` is restored from for a restore to `at`.
pub fn choose(
    sets: &[SetTimes],
    service: CoreKind,
    at: DateTime<Utc>,
) -> Result<Option<&SetTimes>, MomentError> {
    let Some(side) = side(service) else {
        return Ok(None);
    };
    let usable = sets.iter().filter(|s| s.ok.contains(&service));
    match side {
        Side::Before => {
            let mut usable: Vec<&SetTimes> = usable.collect();
            usable.sort_by_key(|s| s.finished);
            usable
                .iter()
                .rev()
                .find(|s| s.finished <= at)
                .copied()
                .map(Some)
                .ok_or_else(|| MomentError::NoneBefore {
                    service,
                    at: at.to_rfc3339(),
                    oldest: usable.first().map(|s| s.finished.to_rfc3339()),
                })
        }
        Side::After => usable
            .filter(|s| s.started >= at)
            .min_by_key(|s| s.started)
            .map(Some)
            .ok_or_else(|| MomentError::NoneAfter {
                service,
                at: at.to_rfc3339(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(started: i64, finished: i64, ok: &[CoreKind]) -> SetTimes {
        let t = |s| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        SetTimes {
            id: BackupId::with_suffix(t(started), started as u32),
            started: t(started),
            finished: t(finished),
            ok: ok.to_vec(),
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    use CoreKind::{Nats, Postgres, Redis, Vault};

    #[test]
    fn redis_and_vault_come_from_the_newest_set_finished_by_t_and_streams_from_the_nearest_after() {
        let sets = [
            set(0, 5, &[Redis, Vault, Nats]),
            set(50, 55, &[Redis, Vault, Nats]),
            // Started before T but finished after it: neither side may use it.
            set(98, 102, &[Redis, Vault, Nats]),
            set(200, 205, &[Redis, Vault, Nats]),
            set(300, 305, &[Redis, Vault, Nats]),
        ];
        let t = at(100);
        assert_eq!(choose(&sets, Redis, t).unwrap(), Some(&sets[1]));
        assert_eq!(choose(&sets, Vault, t).unwrap(), Some(&sets[1]));
        assert_eq!(choose(&sets, Nats, t).unwrap(), Some(&sets[3]));
        assert_eq!(choose(&sets, Postgres, t).unwrap(), None);
        // Exactly at T counts on both sides.
        assert_eq!(choose(&sets, Redis, at(55)).unwrap(), Some(&sets[1]));
        assert_eq!(choose(&sets, Nats, at(200)).unwrap(), Some(&sets[3]));
    }

    #[test]
    fn a_set_where_the_service_failed_is_skipped() {
        let sets = [set(0, 5, &[Redis, Nats]), set(50, 55, &[Nats])];
        assert_eq!(choose(&sets, Redis, at(100)).unwrap(), Some(&sets[0]));
    }

    #[test]
    fn no_set_on_the_right_side_is_refused_with_what_to_do() {
        let sets = [set(50, 55, &[Redis, Nats])];
        let e = choose(&sets, Redis, at(10)).unwrap_err();
        assert!(e.to_string().contains("the oldest finished at"), "{e}");
        let e = choose(&sets, Nats, at(100)).unwrap_err();
        assert!(
            e.to_string().contains("controlplane backup --service nats"),
            "{e}"
        );
    }
}
