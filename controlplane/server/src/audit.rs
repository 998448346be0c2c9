//! The audit log: one JSON line per event, appended to `audit.jsonl` (mode 0600) in the
//! server's state directory and fsynced before the request goes on, never rewritten.
//! It lives beside the server, not in any managed service, so it works while any of
//! them is down. Every mutation is recorded when it is denied, when it is allowed
//! (before it runs: a mutation whose `allowed` line cannot be written is refused),
//! and with its result (`succeeded` or `failed`).

use std::io::{BufRead, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::routes::Role;

/// The file in the server's state directory.
pub const FILE: &str = "audit.jsonl";

/// The largest page the API returns.
pub const MAX_PAGE: usize = 200;

/// What happened to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Refused: no or bad credentials, too little privilege, another tenant, a bad
    /// CSRF token, rate-limited.
    Denied,
    /// Authorized, about to run.
    Allowed,
    /// Ran and succeeded.
    Succeeded,
    /// Ran and failed.
    Failed,
}

impl Outcome {
    /// Parses the lowercase name.
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "denied" => Some(Outcome::Denied),
            "allowed" => Some(Outcome::Allowed),
            "succeeded" => Some(Outcome::Succeeded),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }
}

/// What a change acted on, as its handler knows it once it ran: the tenant's slug
/// and id, a backup's destination and job, a restore's set and services, the tokens
/// a change revoked. Handlers put it on their response; the authorization middleware
/// writes it into the entry of the result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Subject {
    /// The environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The tenant's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    /// The tenant's slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_slug: Option<String>,
    /// The job that does the work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The backup set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// The backup destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// The services backed up or restored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// The names of the tokens the change revoked (a deleted tenant's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens_revoked: Vec<String>,
}

/// One audit record.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AuditEntry {
    /// When (RFC 3339, UTC).
    #[schemars(with = "String")]
    pub time: DateTime<Utc>,
    /// The request's id (also in the response's `x-request-id` and the log).
    pub request_id: String,
    /// Who: `token:<name>`, `oidc:<subject>`, or `anonymous`.
    pub actor: String,
    /// Their role, when known.
    pub role: Option<Role>,
    /// The tenant they are scoped to, if any.
    pub tenant: Option<String>,
    /// The action (the route's operation id, `tenant.create`).
    pub action: String,
    /// What it acts on: the request's path (`/api/v1/environments/dev/tenants/acme`).
    pub target: String,
    /// What the change acted on, named (on `succeeded` entries, and `failed` ones
    /// when the handler knew).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Subject>,
    /// What happened.
    pub outcome: Outcome,
    /// The HTTP status answered (0 for `allowed`, which precedes the answer).
    pub status: u16,
    /// Why it was denied or failed.
    pub detail: Option<String>,
    /// The client's address.
    pub client: String,
}

/// A page of the audit log, newest first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AuditPage {
    /// The entries.
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<u64>,
}

/// Filters for reading the log.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Exact actor.
    pub actor: Option<String>,
    /// Exact action.
    pub action: Option<String>,
    /// Outcome.
    pub outcome: Option<Outcome>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
}

impl Filter {
    fn matches(&self, e: &AuditEntry) -> bool {
        self.actor.as_ref().is_none_or(|a| &e.actor == a)
            && self.action.as_ref().is_none_or(|a| &e.action == a)
            && self.outcome.is_none_or(|o| e.outcome == o)
            && self.since.is_none_or(|t| e.time >= t)
            && self.until.is_none_or(|t| e.time < t)
    }
}

/// Why the log could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("cannot {what} the audit log {path}")]
pub struct AuditError {
    /// `append to` or `read`.
    pub what: &'static str,
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// The append-only log.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    // One writer at a time, so lines never interleave.
    lock: std::sync::Mutex<()>,
}

impl AuditLog {
    /// The log in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join(FILE),
            lock: std::sync::Mutex::new(()),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry and fsyncs it (blocking: call from `spawn_blocking`).
    pub fn append_blocking(&self, e: &AuditEntry) -> Result<(), AuditError> {
        let err = |source| AuditError {
            what: "append to",
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(e).expect("audit entries serialize");
        line.push(b'\n');
        let _g = self.lock.lock().expect("audit lock");
        let existed = self.path.exists();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(err)?;
        f.write_all(&line).map_err(err)?;
        f.sync_data().map_err(err)?;
        if !existed {
            // A new file's directory entry must be durable too.
            if let Some(dir) = self.path.parent() {
                std::fs::File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(err)?;
            }
        }
        Ok(())
    }

    /// Appends one entry without blocking the runtime.
    pub async fn append(self: &std::sync::Arc<Self>, e: AuditEntry) -> Result<(), AuditError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.append_blocking(&e))
            .await
            .expect("the audit writer does not panic")
    }

    /// Whether the file can be opened for appending now (for `/readyz`).
    pub fn writable(&self) -> bool {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)
            .is_ok()
    }

    /// A page, newest first: `cursor` is the number of matching entries to skip.
    pub fn page_blocking(
        &self,
        filter: &Filter,
        limit: usize,
        cursor: u64,
    ) -> Result<AuditPage, AuditError> {
        let f = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(AuditPage {
                    entries: Vec::new(),
                    next_cursor: None,
                });
            }
            Err(source) => {
                return Err(AuditError {
                    what: "read",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let mut matching = Vec::new();
        for line in std::io::BufReader::new(f).lines() {
            let line = line.map_err(|source| AuditError {
                what: "read",
                path: self.path.clone(),
                source,
            })?;
            // A torn last line (a crash mid-write) is skipped, not fatal.
            if let Ok(e) = serde_json::from_str::<AuditEntry>(&line)
                && filter.matches(&e)
            {
                matching.push(e);
            }
        }
        matching.reverse();
        let skip = usize::try_from(cursor).unwrap_or(usize::MAX);
        let entries: Vec<AuditEntry> = matching.iter().skip(skip).take(limit).cloned().collect();
        let next = skip.saturating_add(entries.len());
        Ok(AuditPage {
            next_cursor: (next < matching.len()).then_some(next as u64),
            entries,
        })
    }

    /// A page without blocking the runtime.
    pub async fn page(
        self: &std::sync::Arc<Self>,
        filter: Filter,
        limit: usize,
        cursor: u64,
    ) -> Result<AuditPage, AuditError> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.page_blocking(&filter, limit, cursor))
            .await
            .expect("the audit reader does not panic")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(actor: &str, outcome: Outcome) -> AuditEntry {
        AuditEntry {
            time: Utc::now(),
            request_id: "r".into(),
            actor: actor.into(),
            role: None,
            tenant: None,
            action: "tenant.create".into(),
            target: "dev/tenants".into(),
            subject: None,
            outcome,
            status: 0,
            detail: None,
            client: "127.0.0.1".into(),
        }
    }

    #[test]
    fn appends_and_pages_newest_first_with_filters() {
        let tmp = tempfile::tempdir().unwrap();
        let log = AuditLog::new(tmp.path());
        for i in 0..5 {
            log.append_blocking(&entry(&format!("a{i}"), Outcome::Denied))
                .unwrap();
        }
        log.append_blocking(&entry("b", Outcome::Succeeded))
            .unwrap();
        let p = log.page_blocking(&Filter::default(), 4, 0).unwrap();
        let actors: Vec<&str> = p.entries.iter().map(|e| e.actor.as_str()).collect();
        assert_eq!(actors, ["b", "a4", "a3", "a2"]);
        assert_eq!(p.next_cursor, Some(4));
        let p2 = log.page_blocking(&Filter::default(), 4, 4).unwrap();
        assert_eq!(p2.entries.len(), 2);
        assert_eq!(p2.next_cursor, None);
        let denied = Filter {
            outcome: Some(Outcome::Denied),
            ..Filter::default()
        };
        assert_eq!(log.page_blocking(&denied, 50, 0).unwrap().entries.len(), 5);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(log.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
