//! The views of rotation: what `controlplane rotate` (and the scheduled rotation job)
//! changed: transit keys, passwords and certificates.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What to rotate. A new kind of credential is one more variant (and its arm in
/// `cp_app::rotate::rotate`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RotateTarget {
    /// Transit keys: the global keys, the backup canary's and every tenant's.
    Keys,
    /// The platform's passwords: PostgreSQL roles and Redis ACL users.
    Passwords,
    /// The servers' TLS certificates: renewed and reloaded without dropping
    /// connections (the scheduled run renews those past `tls.renew_at_percent`).
    Certificates,
    /// Everything above.
    All,
}

impl RotateTarget {
    /// Its name (`keys`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RotateTarget::Keys => "keys",
            RotateTarget::Passwords => "passwords",
            RotateTarget::Certificates => "certificates",
            RotateTarget::All => "all",
        }
    }

    /// Whether it takes in transit keys.
    pub fn keys(self) -> bool {
        matches!(self, RotateTarget::Keys | RotateTarget::All)
    }

    /// Whether it takes in certificates.
    pub fn certificates(self) -> bool {
        matches!(self, RotateTarget::Certificates | RotateTarget::All)
    }

    /// Whether it takes in passwords.
    pub fn passwords(self) -> bool {
        matches!(self, RotateTarget::Passwords | RotateTarget::All)
    }
}

impl fmt::Display for RotateTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One transit key rotated.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct KeyRotationView {
    /// The key.
    pub key: String,
    /// Whose: `platform`, `canary` or `tenant <id>`.
    pub owner: String,
    /// Its newest version before.
    pub from_version: u64,
    /// Its newest version now.
    pub to_version: u64,
    /// The oldest version that still decrypts now.
    pub min_decryption_version: u64,
    /// KV entries rewrapped to the new version (`<mount>/<path>#<field>`).
    pub rewrapped: Vec<String>,
}

/// One password rotated.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PasswordRotationView {
    /// The setting (`services.postgres.app_password`).
    pub setting: String,
    /// The service.
    pub service: String,
    /// The role or user.
    pub user: String,
    /// Where the new value was written (`state file`, `vault://...`).
    pub stored_in: String,
    /// What happens to clients.
    pub clients: String,
}

/// One server's certificate, renewed or left alone.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct CertificateRenewalView {
    /// The server (`postgres`, `vault-1`).
    pub service: String,
    /// A new certificate was issued and the server reloaded it.
    pub renewed: bool,
    /// Why: `due` (past `tls.renew_at_percent`), `forced`, `not due`, `not running`.
    pub reason: String,
    /// The serial served before (hex), when renewed.
    pub previous_serial: Option<String>,
    /// The serial of the certificate in place now (hex).
    pub serial: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// Milliseconds from issuing it until the listener served it (renewed only).
    pub reload_ms: Option<u64>,
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RotationView {
    /// The environment.
    pub environment: String,
    /// What was asked.
    pub target: RotateTarget,
    /// Only what was due (a scheduled run), or everything asked for.
    pub only_due: bool,
    /// Keys rotated.
    pub keys: Vec<KeyRotationView>,
    /// Passwords rotated.
    pub passwords: Vec<PasswordRotationView>,
    /// Certificates renewed (and those looked at and left alone).
    pub certificates: Vec<CertificateRenewalView>,
    /// What was left alone, and why (not due, not run here).
    pub skipped: Vec<String>,
}

impl fmt::Display for RotationView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.keys.is_empty()
            && self.passwords.is_empty()
            && !self.certificates.iter().any(|c| c.renewed)
        {
            writeln!(f, "{}: nothing rotated", self.environment)?;
        }
        for k in &self.keys {
            writeln!(
                f,
                "rotated transit key {} ({}): v{} -> v{}, decrypts from v{}{}",
                k.key,
                k.owner,
                k.from_version,
                k.to_version,
                k.min_decryption_version,
                if k.rewrapped.is_empty() {
                    String::new()
                } else {
                    format!(", rewrapped {} entries", k.rewrapped.len())
                }
            )?;
        }
        for p in &self.passwords {
            writeln!(
                f,
                "rotated {} ({} {}), stored in {}: {}",
                p.setting, p.service, p.user, p.stored_in, p.clients
            )?;
        }
        for c in &self.certificates {
            if c.renewed {
                writeln!(
                    f,
                    "renewed the certificate of {} ({}): serial {} -> {}, expires {}{}",
                    c.service,
                    c.reason,
                    c.previous_serial.as_deref().unwrap_or("none"),
                    c.serial,
                    c.expires_at,
                    c.reload_ms
                        .map(|ms| format!(", served after {ms} ms"))
                        .unwrap_or_default()
                )?;
            } else {
                writeln!(
                    f,
                    "  certificate of {}: {} (expires {})",
                    c.service, c.reason, c.expires_at
                )?;
            }
        }
        for s in &self.skipped {
            writeln!(f, "  skipped: {s}")?;
        }
        Ok(())
    }
}
