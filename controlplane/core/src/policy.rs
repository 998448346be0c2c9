//! The tier policy: what production (and, for server versions, every tier) must not
//! do without saying why, and the server-version data it checks against.
//!
//! Each rule has a stable id. An environment breaks a rule knowingly with an `accept:`
//! entry (`- rule: <id>` and `reason: <text>`, both required), like a lint suppression:
//! the finding is then not an error, and `validate` and `plan` show the acceptance with
//! its reason. [`violations`] is pure (the date is given); validation resolves the
//! acceptances.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::model::{Environment, NatsSync, Tier};
use crate::names::CoreKind;

/// A tier-policy rule: its id and what it asks.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Stable id, as `accept:` names it.
    pub id: &'static str,
    /// What it asks, in a sentence.
    pub asks: &'static str,
}

/// Every rule, by id.
pub const RULES: &[Rule] = &[
    Rule {
        id: "nats-sync-interval",
        asks: "production JetStream syncs to disk before acknowledging (services.nats.sync: always)",
    },
    Rule {
        id: "version-end-of-support",
        asks: "servers run a release their project still fixes (error in production, warning elsewhere)",
    },
    Rule {
        id: "postgres-durability",
        asks: "production PostgreSQL keeps fsync, full_page_writes and synchronous_commit on",
    },
    Rule {
        id: "postgres-ha",
        asks: "production PostgreSQL runs at least 3 instances",
    },
    Rule {
        id: "nats-ha",
        asks: "production NATS runs at least 3 nodes",
    },
    Rule {
        id: "vault-ha",
        asks: "production OpenBao runs at least 3 raft nodes",
    },
    Rule {
        id: "backup-encryption",
        asks: "production backups are encrypted (backup.encrypt_to)",
    },
];

/// The ids of [`RULES`].
pub fn rule_ids() -> Vec<&'static str> {
    RULES.iter().map(|r| r.id).collect()
}

/// An `accept:` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Acceptance {
    /// The rule's id.
    pub rule: String,
    /// Why.
    pub reason: String,
}

/// How bad a broken rule is when not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Refused.
    Error,
    /// Shown, not refused.
    Warning,
}

/// A broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The rule's id.
    pub rule: &'static str,
    /// The key path to blame.
    pub path: String,
    /// What was found.
    pub message: String,
    /// Error or warning when not accepted.
    pub severity: Severity,
}

/// What validation found and did not refuse: a broken rule that an `accept:` entry
/// covers (with its reason), or a warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule's id.
    pub rule: String,
    /// The key path.
    pub path: String,
    /// What was found.
    pub message: String,
    /// The acceptance's reason; `None` for a warning.
    pub accepted: Option<String>,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.accepted {
            Some(reason) => write!(
                f,
                "accepted [{}] {} ({}): {reason}",
                self.rule, self.message, self.path
            ),
            None => write!(
                f,
                "warning [{}] {} ({})",
                self.rule, self.message, self.path
            ),
        }
    }
}

/// One project's entry in `data/server-versions.yaml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerVersions {
    /// The version controlplane uses when an environment names none.
    pub default: String,
    /// Where the support dates come from.
    pub source: String,
    /// When they were last checked (YYYY-MM-DD).
    pub checked: String,
    /// Release line -> end of support: a date, `ended`, or `None` while supported.
    pub releases: BTreeMap<String, Option<String>>,
}

/// The compiled-in `data/server-versions.yaml`.
pub const SERVER_VERSIONS_YAML: &str = include_str!("../data/server-versions.yaml");

/// The server-version data, by service.
pub fn server_versions() -> &'static BTreeMap<String, ServerVersions> {
    static DATA: OnceLock<BTreeMap<String, ServerVersions>> = OnceLock::new();
    DATA.get_or_init(|| {
        serde_saphyr::from_str(SERVER_VERSIONS_YAML)
            .expect("data/server-versions.yaml parses (checked by a unit test)")
    })
}

/// The versions data of one kind of service.
pub fn versions_of(kind: CoreKind) -> &'static ServerVersions {
    server_versions()
        .get(&kind.to_string())
        .expect("data/server-versions.yaml lists every core service (checked by a unit test)")
}

/// When `version` of `kind` stopped being fixed, as of `today` (YYYY-MM-DD): `Some`
/// (the date, or `ended`) when past, `None` when supported or not listed. `15.4` is
/// looked up as `15`, `2.10.23` as `2.10`.
pub fn end_of_support(kind: CoreKind, version: &str, today: &str) -> Option<String> {
    let releases = &versions_of(kind).releases;
    let line = releases
        .keys()
        .filter(|line| version == *line || version.starts_with(&format!("{line}.")))
        .max_by_key(|line| line.len())?;
    match releases[line].as_deref() {
        None => None,
        Some("ended") => Some("ended".into()),
        Some(date) if date <= today => Some(date.to_owned()),
        Some(_) => None,
    }
}

/// `major.minor` of a version string, when it has both.
fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut it = version.split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// True when a NATS version can honour `sync_interval` (2.10 and later; 2.9 refuses
/// the field). A version that is not `major.minor...` is assumed to.
pub fn nats_supports_sync(version: &str) -> bool {
    major_minor(version).is_none_or(|v| v >= (2, 10))
}

/// A PostgreSQL boolean setting's value that turns it off.
fn is_off(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "off" | "false" | "no" | "0" | "f" | "n"
    )
}

/// Every rule `env` breaks, as of `today` (YYYY-MM-DD).
pub fn violations(env: &Environment, today: &str) -> Vec<Violation> {
    let production = env.tier == Tier::Production;
    let mut out = Vec::new();
    let s = &env.services;
    let commons = [
        (CoreKind::Postgres, s.postgres.as_ref().map(|p| &p.common)),
        (CoreKind::Redis, s.redis.as_ref().map(|r| &r.common)),
        (CoreKind::Nats, s.nats.as_ref().map(|n| &n.common)),
        (CoreKind::Vault, s.vault.as_ref().map(|v| &v.common)),
    ];
    for (kind, common) in commons {
        let Some(c) = common else { continue };
        if let Some(end) = end_of_support(kind, &c.version, today) {
            let data = versions_of(kind);
            let when = if end == "ended" {
                format!("no longer supported (checked {})", data.checked)
            } else {
                format!("past its end of support on {end}")
            };
            out.push(Violation {
                rule: "version-end-of-support",
                path: format!("services.{kind}.version"),
                message: format!(
                    "{kind} {} is {when}; supported releases: {} (source: {})",
                    c.version,
                    supported_lines(kind, today).join(", "),
                    data.source
                ),
                severity: if production {
                    Severity::Error
                } else {
                    Severity::Warning
                },
            });
        }
    }
    if !production {
        return out;
    }
    if let Some(n) = &s.nats
        && n.sync != Some(NatsSync::Always)
    {
        out.push(Violation {
            rule: "nats-sync-interval",
            path: "services.nats.sync".into(),
            message: format!(
                "JetStream acknowledges before it syncs to disk (sync: {}): acknowledged messages since the last flush are lost if the machine fails",
                n.sync
                    .as_ref()
                    .map_or_else(|| "the server's default of 2m".into(), ToString::to_string)
            ),
            severity: Severity::Error,
        });
    }
    if let Some(pg) = &s.postgres {
        for key in ["fsync", "full_page_writes", "synchronous_commit"] {
            if let Some(v) = pg.settings.get(key)
                && (is_off(v) || (key == "synchronous_commit" && v.trim() == "local"))
            {
                out.push(Violation {
                    rule: "postgres-durability",
                    path: format!("services.postgres.settings.{key}"),
                    message: format!(
                        "PostgreSQL {key} = {v}: committed transactions can be lost (or, for fsync and full_page_writes, the database corrupted) on a crash"
                    ),
                    severity: Severity::Error,
                });
            }
        }
    }
    let ha = [
        ("postgres-ha", CoreKind::Postgres, commons[0].1, "instances"),
        ("nats-ha", CoreKind::Nats, commons[2].1, "nodes"),
        ("vault-ha", CoreKind::Vault, commons[3].1, "raft nodes"),
    ];
    for (rule, kind, common, what) in ha {
        if let Some(c) = common
            && c.replicas < 3
        {
            out.push(Violation {
                rule,
                path: format!("services.{kind}.replicas"),
                message: format!(
                    "production {kind} runs {} {what}: one failure takes it down",
                    c.replicas
                ),
                severity: Severity::Error,
            });
        }
    }
    match &env.backup {
        Some(b) if !b.encrypt_to.is_empty() => {}
        Some(_) => out.push(Violation {
            rule: "backup-encryption",
            path: "backup.encrypt_to".into(),
            message: "production backups are written unencrypted".into(),
            severity: Severity::Error,
        }),
        None => out.push(Violation {
            rule: "backup-encryption",
            path: "backup".into(),
            message: "production takes no backups, so none are encrypted".into(),
            severity: Severity::Error,
        }),
    }
    out
}

/// The release lines of `kind` still supported on `today`.
pub fn supported_lines(kind: CoreKind, today: &str) -> Vec<String> {
    versions_of(kind)
        .releases
        .iter()
        .filter(|(line, _)| end_of_support(kind, line, today).is_none())
        .map(|(line, _)| line.clone())
        .collect()
}

/// Today's date in UTC as YYYY-MM-DD (what validation checks support dates against).
pub fn today() -> String {
    chrono::Utc::now()
        .date_naive()
        .format("%Y-%m-%d")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_file_lists_every_core_service_with_its_default_supported() {
        for kind in [
            CoreKind::Postgres,
            CoreKind::Redis,
            CoreKind::Nats,
            CoreKind::Vault,
        ] {
            let v = versions_of(kind);
            assert!(v.releases.contains_key(&v.default), "{kind}");
            assert_eq!(
                end_of_support(kind, &v.default, &v.checked),
                None,
                "{kind}'s default is supported on the day checked"
            );
            assert!(
                chrono::NaiveDate::parse_from_str(&v.checked, "%Y-%m-%d").is_ok(),
                "{kind}"
            );
            for (line, end) in &v.releases {
                assert!(
                    end.as_deref().is_none_or(|e| e == "ended"
                        || chrono::NaiveDate::parse_from_str(e, "%Y-%m-%d").is_ok()),
                    "{kind} {line}: {end:?}"
                );
            }
        }
    }

    #[test]
    fn end_of_support_follows_the_date_and_the_release_line() {
        assert_eq!(end_of_support(CoreKind::Postgres, "15", "2027-11-10"), None);
        assert_eq!(
            end_of_support(CoreKind::Postgres, "15.4", "2027-11-11").as_deref(),
            Some("2027-11-11")
        );
        assert_eq!(
            end_of_support(CoreKind::Postgres, "14", "2026-12-07").as_deref(),
            Some("2026-11-12")
        );
        assert_eq!(
            end_of_support(CoreKind::Nats, "2.9", "2026-12-07").as_deref(),
            Some("ended")
        );
        assert_eq!(end_of_support(CoreKind::Nats, "2.15.1", "2026-12-07"), None);
        // 2.1 is not 2.15's line, nor 2.10's.
        assert_eq!(end_of_support(CoreKind::Nats, "2.1", "2026-12-07"), None);
        assert_eq!(
            end_of_support(CoreKind::Redis, "unknown", "2026-12-07"),
            None
        );
    }

    #[test]
    fn nats_sync_needs_2_10() {
        assert!(!nats_supports_sync("2.9"));
        assert!(!nats_supports_sync("2.9.10"));
        assert!(nats_supports_sync("2.10"));
        assert!(nats_supports_sync("2.15.1"));
        assert!(nats_supports_sync("3.0"));
    }
}
