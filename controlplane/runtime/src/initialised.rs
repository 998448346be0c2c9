//! What an environment initialised: one small file per stateful service in the state
//! directory (`initialised/<service>.json`), written once its data exists (PostgreSQL
//! after `initdb`, OpenBao once its keys are kept) and removed only with the data
//! (`down --volumes`) or on an explicit `up --reinitialise <service>`.
//!
//! A service whose record exists and whose data is gone lost its data: drivers refuse
//! to initialise it again, empty, behind the user's back ([`Record::missing_reason`]
//! says what happened and what to do). One file per service, so services started in
//! parallel never race on a shared file; each is written atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::state::{StateDir, StateError, write_atomic};

/// The folder of the records, relative to the state directory.
pub const DIR: &str = "initialised";

/// One service's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When its data was first seen initialised (RFC 3339, UTC).
    pub at: String,
    /// What identifies that data: PostgreSQL's system identifier, OpenBao's cluster
    /// id. `None` when it could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The volumes that hold it, by name, with their unique id (Kubernetes: each
    /// PersistentVolumeClaim's `uid`, so a claim deleted and made again empty under
    /// the same name is told apart).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, String>,
}

impl Record {
    /// The sentence a plan and an error show for a service whose data vanished:
    /// what was initialised, what is gone, and the two ways on.
    pub fn missing_reason(&self, service: &str, what: &str) -> String {
        let id = self
            .identity
            .as_ref()
            .map(|i| format!(" ({i})"))
            .unwrap_or_default();
        format!(
            "data missing: {service} was initialised at {}{id} and {what} is gone; \
             nothing was re-created. To recover, restore the newest verified backup set \
             (`controlplane backup list`, then `controlplane up --reinitialise {service} --yes` \
             and `controlplane restore <id> --service {service}`); to start it empty, losing \
             everything it held, `controlplane up --reinitialise {service} --yes`",
            self.at
        )
    }
}

fn path(root: &Path, service: &str) -> PathBuf {
    root.join(DIR).join(format!("{service}.json"))
}

/// The record of `service` in the state directory at `root`; `None` when it was never
/// initialised (or its data was removed with `down --volumes`). Read-only.
pub fn read(root: &Path, service: &str) -> Result<Option<Record>, StateError> {
    let p = path(root, service);
    match std::fs::read(&p) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| StateError::Corrupt {
                path: p,
                detail: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io { path: p, source }),
    }
}

/// Records that `service`'s data exists, with its identity. Keeps the first `at` of an
/// existing record; fills in (or corrects) the identity.
pub fn record(
    state: &StateDir,
    service: &str,
    identity: Option<String>,
) -> Result<Record, StateError> {
    let old = read(state.path(), service)?;
    let rec = Record {
        at: old.as_ref().map_or_else(
            || chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            |o| o.at.clone(),
        ),
        identity: identity.or_else(|| old.as_ref().and_then(|o| o.identity.clone())),
        volumes: old.as_ref().map(|o| o.volumes.clone()).unwrap_or_default(),
    };
    if old.as_ref() != Some(&rec) {
        let bytes = serde_json::to_vec_pretty(&rec).expect("serializes");
        write_atomic(&path(state.path(), service), &bytes, 0o600)?;
    }
    Ok(rec)
}

/// Records that `service`'s data exists on `volumes` (name → unique id). Keeps the
/// volumes of an existing record that has them: those are what was initialised, and
/// a volume that differs now is data lost, for `vanished` to report, not to record.
pub fn record_volumes(
    state: &StateDir,
    service: &str,
    volumes: BTreeMap<String, String>,
) -> Result<Record, StateError> {
    let old = read(state.path(), service)?;
    if let Some(o) = &old
        && !o.volumes.is_empty()
    {
        return Ok(o.clone());
    }
    let mut rec = record(state, service, None)?;
    rec.volumes = volumes;
    let bytes = serde_json::to_vec_pretty(&rec).expect("serializes");
    write_atomic(&path(state.path(), service), &bytes, 0o600)?;
    Ok(rec)
}

/// Forgets `service`'s record (its data was deleted on purpose); true when there was
/// one.
pub fn forget(root: &Path, service: &str) -> Result<bool, StateError> {
    let p = path(root, service);
    match std::fs::remove_file(&p) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StateError::Io { path: p, source }),
    }
}

/// PostgreSQL's database system identifier, read from `global/pg_control` in `data`
/// (its first field, a native-endian 64-bit integer: what `pg_controldata` prints as
/// "Database system identifier"). `None` when the file cannot be read.
pub fn pg_system_identifier(data: &Path) -> Option<String> {
    pg_identity(&std::fs::read(data.join("global/pg_control")).ok()?)
}

/// [`pg_system_identifier`] of the bytes of a `pg_control` file read otherwise (the
/// Docker driver reads it through the container).
pub fn pg_identity(pg_control: &[u8]) -> Option<String> {
    let first: [u8; 8] = pg_control.get(..8)?.try_into().ok()?;
    Some(format!("system identifier {}", u64::from_ne_bytes(first)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_keeps_its_first_time_and_is_forgotten_only_on_purpose() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path(), "dev").unwrap();
        assert_eq!(read(state.path(), "postgres").unwrap(), None);
        let first = record(&state, "postgres", None).unwrap();
        let again = record(&state, "postgres", Some("system identifier 7".into())).unwrap();
        assert_eq!(again.at, first.at);
        assert_eq!(again.identity.as_deref(), Some("system identifier 7"));
        // A later call without an identity keeps the one known.
        let third = record(&state, "postgres", None).unwrap();
        assert_eq!(third, again);
        let reason = third.missing_reason("postgres", "its data directory /x");
        assert!(
            reason.starts_with("data missing: postgres was initialised at ")
                && reason.contains("(system identifier 7)")
                && reason.contains("up --reinitialise postgres --yes"),
            "{reason}"
        );
        assert!(forget(state.path(), "postgres").unwrap());
        assert!(!forget(state.path(), "postgres").unwrap());
        assert_eq!(read(state.path(), "postgres").unwrap(), None);
    }

    #[test]
    fn a_corrupt_record_is_an_error_not_a_fresh_start() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path(), "dev").unwrap();
        std::fs::create_dir_all(state.join(DIR)).unwrap();
        std::fs::write(state.join("initialised/vault.json"), b"{").unwrap();
        let e = read(state.path(), "vault").unwrap_err();
        assert!(matches!(e, StateError::Corrupt { .. }), "{e}");
    }
}
