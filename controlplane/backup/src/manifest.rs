//! The manifest: what a backup set holds, written last, so a set without one is
//! incomplete by construction. It records the environment, controlplane's and each
//! server's version, start and end, every artifact's size, stored size and SHA-256,
//! the encryption recipients' fingerprints and, per service, what a restore must find
//! again (Postgres row counts from the dump's own snapshot, each stream's messages and
//! sequence numbers, the Vault canary, the Redis key count).
//!
//! Reading one is raw → validated, like the environment files: [`parse`] reports every
//! problem at once (a wrong format version, a duplicate artifact, a bad digest, an end
//! before the start) instead of the first.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use cp_core::names::CoreKind;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::id::{ArtifactName, BackupId};

/// The manifest format this build writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;

/// The object name of a set's manifest.
pub const MANIFEST: &str = "manifest.json";

/// A backup set's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`] when written.
    pub format: u32,
    /// The set's id.
    pub id: BackupId,
    /// The environment backed up.
    pub environment: String,
    /// `controlplane <version>` that wrote it.
    pub controlplane_version: String,
    /// When the run started.
    pub started: DateTime<Utc>,
    /// When the last artifact was written.
    pub finished: DateTime<Utc>,
    /// How artifacts are compressed.
    pub compression: Compression,
    /// How artifacts are encrypted; `None`: they are not.
    pub encryption: Option<Encryption>,
    /// Each service that was asked for, whether it succeeded or not.
    pub services: BTreeMap<CoreKind, ServiceRecord>,
}

/// Compression of every artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Compression {
    /// Always `zstd`.
    pub algorithm: String,
    /// Its level.
    pub level: i32,
}

/// Encryption of every artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// Always `age`.
    pub algorithm: String,
    /// The recipients' fingerprints (SHA-256 of the `age1...` key, first 16 hex
    /// digits): which identity a restore needs, without publishing the keys.
    pub recipients: Vec<String>,
}

/// One service's part of a set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRecord {
    /// Whether it was backed up.
    pub outcome: Outcome,
    /// The server's version, as it reported it.
    pub server_version: Option<String>,
    /// How long it took.
    pub duration_ms: u64,
    /// Its artifacts, in the order a restore uses them.
    pub artifacts: Vec<Artifact>,
    /// What a restore must find again.
    pub detail: Detail,
}

impl ServiceRecord {
    /// The sum of its artifacts' sizes (before compression).
    pub fn size(&self) -> u64 {
        self.artifacts.iter().map(|a| a.size).sum()
    }

    /// The sum of its artifacts' stored sizes.
    pub fn stored_size(&self) -> u64 {
        self.artifacts.iter().map(|a| a.stored_size).sum()
    }
}

/// Whether a service was backed up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum Outcome {
    /// Every artifact was written.
    Ok,
    /// It failed; the other services went on.
    Failed {
        /// Why, with its causes.
        error: String,
    },
}

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// Its name inside the set.
    pub name: ArtifactName,
    /// Bytes before compression.
    pub size: u64,
    /// Bytes stored (compressed, then encrypted).
    pub stored_size: u64,
    /// SHA-256 of the stored bytes (what `verify` checks without a key).
    pub sha256: String,
    /// SHA-256 of the bytes before compression (checked again on decryption).
    pub plain_sha256: String,
}

/// What a restore must find again, per service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Detail {
    /// Nothing recorded (a failed service).
    None,
    /// PostgreSQL.
    Postgres {
        /// The database.
        database: String,
        /// Every table with its exact row count, from the dump's own snapshot.
        tables: Vec<TableRows>,
    },
    /// JetStream.
    Nats {
        /// Every stream.
        streams: Vec<StreamRecord>,
    },
    /// OpenBao/Vault.
    Vault {
        /// A value encrypted by the transit canary key right before the snapshot.
        canary: Option<Canary>,
    },
    /// Redis.
    Redis {
        /// Keys in the RDB's databases (from `INFO keyspace` at the time of `SYNC`).
        keys: u64,
    },
}

/// A table's exact row count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TableRows {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Rows in the snapshot.
    pub rows: u64,
    /// The artifact holding its rows.
    pub artifact: ArtifactName,
}

/// A stream's state at snapshot time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamRecord {
    /// Stream name.
    pub name: String,
    /// Messages.
    pub messages: u64,
    /// First sequence.
    pub first_seq: u64,
    /// Last sequence.
    pub last_seq: u64,
    /// Its consumers' names.
    pub consumers: Vec<String>,
    /// The artifact holding it.
    pub artifact: ArtifactName,
}

/// A ciphertext a restored Vault must decrypt to the recorded digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Canary {
    /// The transit key.
    pub key: String,
    /// `vault:v1:...`.
    pub ciphertext: String,
    /// SHA-256 of the plaintext (base64 as transit returns it).
    pub plaintext_sha256: String,
}

impl Manifest {
    /// Services that failed.
    pub fn failed(&self) -> Vec<CoreKind> {
        self.services
            .iter()
            .filter(|(_, r)| matches!(r.outcome, Outcome::Failed { .. }))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Every artifact with its service.
    pub fn artifacts(&self) -> impl Iterator<Item = (CoreKind, &Artifact)> {
        self.services
            .iter()
            .flat_map(|(k, r)| r.artifacts.iter().map(move |a| (*k, a)))
    }

    /// Bytes before compression.
    pub fn size(&self) -> u64 {
        self.services.values().map(ServiceRecord::size).sum()
    }

    /// Bytes stored.
    pub fn stored_size(&self) -> u64 {
        self.services.values().map(ServiceRecord::stored_size).sum()
    }
}

/// A manifest that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of this shape.
    #[error("the manifest of {id} does not parse: {detail}")]
    Syntax {
        /// The set.
        id: String,
        /// What serde said.
        detail: String,
    },
    /// Parsed, but wrong in these ways (all of them).
    #[error("the manifest of {id} is invalid:\n{}", problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        /// The set.
        id: String,
        /// Every problem found.
        problems: Vec<String>,
    },
}

/// Reads the manifest of the set `id`: every problem at once.
pub fn parse(bytes: &[u8], id: &BackupId) -> Result<Manifest, ManifestError> {
    // The format first: a newer manifest may have fields this build does not know,
    // and "written by a newer controlplane" says more than "unknown field".
    let format = serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|v| v.get("format").and_then(serde_json::Value::as_u64));
    if let Some(f) = format
        && f > u64::from(MANIFEST_FORMAT)
    {
        return Err(ManifestError::Invalid {
            id: id.to_string(),
            problems: vec![format!(
                "format {f} was written by a newer controlplane (this one reads up to {MANIFEST_FORMAT}); upgrade controlplane"
            )],
        });
    }
    let m: Manifest = serde_json::from_slice(bytes).map_err(|e| ManifestError::Syntax {
        id: id.to_string(),
        detail: e.to_string(),
    })?;
    let problems = check(&m, id);
    if problems.is_empty() {
        Ok(m)
    } else {
        Err(ManifestError::Invalid {
            id: id.to_string(),
            problems,
        })
    }
}

fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Every semantic problem of a parsed manifest.
pub fn check(m: &Manifest, id: &BackupId) -> Vec<String> {
    let mut p = Vec::new();
    if m.format != MANIFEST_FORMAT {
        p.push(format!(
            "format {} is not one this build reads ({MANIFEST_FORMAT})",
            m.format
        ));
    }
    if &m.id != id {
        p.push(format!(
            "it names set {} but is stored as {id} (copied by hand?)",
            m.id
        ));
    }
    if m.environment.is_empty() {
        p.push("no environment".into());
    }
    if m.finished < m.started {
        p.push(format!(
            "finished ({}) before it started ({})",
            m.finished, m.started
        ));
    }
    if m.services.is_empty() {
        p.push("no services".into());
    }
    let mut names = BTreeSet::new();
    for (kind, a) in m.artifacts() {
        if !names.insert(a.name.clone()) {
            p.push(format!("artifact {} is listed twice", a.name));
        }
        if !a.name.as_str().starts_with(&format!("{kind}/")) {
            p.push(format!(
                "artifact {} of {kind} is not under `{kind}/`",
                a.name
            ));
        }
        for (what, d) in [("sha256", &a.sha256), ("plain_sha256", &a.plain_sha256)] {
            if !is_digest(d) {
                p.push(format!(
                    "artifact {}: {what} `{d}` is not a SHA-256 digest",
                    a.name
                ));
            }
        }
    }
    for (kind, r) in &m.services {
        let refs: Vec<&ArtifactName> = match &r.detail {
            Detail::Postgres { tables, .. } => tables.iter().map(|t| &t.artifact).collect(),
            Detail::Nats { streams } => streams.iter().map(|s| &s.artifact).collect(),
            _ => Vec::new(),
        };
        for a in refs {
            if !r.artifacts.iter().any(|x| &x.name == a) {
                p.push(format!(
                    "{kind}: refers to artifact {a}, which it does not list"
                ));
            }
        }
        if r.outcome == Outcome::Ok && r.artifacts.is_empty() {
            p.push(format!("{kind}: succeeded without an artifact"));
        }
    }
    p
}

/// The fingerprint of an age recipient as manifests record it.
pub fn recipient_fingerprint(recipient: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(recipient.trim().as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn sample(id: &BackupId) -> Manifest {
        let a = |n: &str| Artifact {
            name: ArtifactName::new(n).unwrap(),
            size: 10,
            stored_size: 5,
            sha256: "a".repeat(64),
            plain_sha256: "b".repeat(64),
        };
        Manifest {
            format: MANIFEST_FORMAT,
            id: id.clone(),
            environment: "dev".into(),
            controlplane_version: "controlplane 0.1.0".into(),
            started: id.started(),
            finished: id.started() + chrono::Duration::seconds(3),
            compression: Compression {
                algorithm: "zstd".into(),
                level: 3,
            },
            encryption: None,
            services: [(
                CoreKind::Redis,
                ServiceRecord {
                    outcome: Outcome::Ok,
                    server_version: Some("7.0.15".into()),
                    duration_ms: 12,
                    artifacts: vec![a("redis/dump.rdb")],
                    detail: Detail::Redis { keys: 3 },
                },
            )]
            .into(),
        }
    }

    #[test]
    fn a_manifest_round_trips() {
        let id = BackupId::with_suffix(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(), 1);
        let m = sample(&id);
        let text = serde_json::to_vec(&m).unwrap();
        assert_eq!(parse(&text, &id).unwrap(), m);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let id = BackupId::with_suffix(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(), 1);
        let other = BackupId::with_suffix(id.started(), 2);
        let mut m = sample(&id);
        m.finished = m.started - chrono::Duration::seconds(1);
        let r = m.services.get_mut(&CoreKind::Redis).unwrap();
        r.artifacts.push(r.artifacts[0].clone());
        r.artifacts[0].sha256 = "nope".into();
        let text = serde_json::to_vec(&m).unwrap();
        let e = parse(&text, &other).unwrap_err().to_string();
        for want in [
            "stored as 20260102T030405000Z-000002",
            "before it started",
            "artifact redis/dump.rdb is listed twice",
            "sha256 `nope` is not a SHA-256 digest",
        ] {
            assert!(e.contains(want), "{want} missing in:\n{e}");
        }
    }

    #[test]
    fn a_newer_format_says_so() {
        let id = BackupId::with_suffix(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap(), 1);
        let e = parse(br#"{"format": 7, "whatever": 1}"#, &id)
            .unwrap_err()
            .to_string();
        assert!(e.contains("newer controlplane"), "{e}");
    }
}
