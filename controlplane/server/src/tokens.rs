//! API tokens: created by `controlplane token create` (printed once), stored only as
//! the SHA-256 of the token in `tokens.json` (mode 0600) in the server's state
//! directory, listed without their hashes, revoked by name. The server re-reads the
//! file when it changes, so a token created or revoked while it runs takes effect at
//! the next request.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use rand::RngCore;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::routes::Role;

/// Every token starts with this, so a leaked one is recognisable (and scanners can
/// find it).
pub const PREFIX: &str = "cpt_";

/// The file in the server's state directory.
pub const FILE: &str = "tokens.json";

/// Why the token store failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read or written.
    #[error("cannot use the token file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Writing failed.
    #[error("cannot write the token file")]
    Write(#[source] cp_runtime::state::StateError),
    /// The file does not parse.
    #[error("the token file {path} is corrupt ({detail}); move it aside and create tokens again")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A token of that name exists.
    #[error("a token named `{0}` exists; revoke it first or choose another name")]
    Exists(String),
    /// No token of that name.
    #[error("no token named `{0}`; `controlplane token list` shows them")]
    NoSuchToken(String),
    /// A name that is not `[a-z0-9._-]{1,64}`.
    #[error("`{0}` is not a token name: use 1 to 64 of a-z, 0-9, `.`, `_`, `-`")]
    BadName(String),
    /// Asked to live longer than its role's `serve.tokens.max_ttl` allows (refused,
    /// never shortened: a token that expires before its holder expects is worse).
    #[error(
        "{asked} is longer than {role} tokens may live in {env} (serve.tokens.max_ttl.{role}: {max}); pass --ttl {max} or less"
    )]
    TooLong {
        /// The role.
        role: Role,
        /// What was asked for (`never expiring`, `--ttl 30d`).
        asked: String,
        /// The maximum.
        max: String,
        /// The environment whose setting it is.
        env: String,
    },
}

/// Checks `ttl` (`None`: never expires) against `role`'s maximum from
/// `serve.tokens.max_ttl` in `env`: a longer one, or none when there is a maximum, is
/// refused ([`TokenError::TooLong`]), not clipped.
pub fn check_max_ttl(
    role: Role,
    ttl: Option<chrono::Duration>,
    max: &cp_core::model::TokenMaxTtl,
    env: &str,
) -> Result<(), TokenError> {
    let max = match role {
        Role::Viewer => &max.viewer,
        Role::Editor => &max.editor,
        Role::Admin => &max.admin,
    };
    let Some(max) = max else { return Ok(()) };
    let limit = i64::try_from(max.as_secs()).unwrap_or(i64::MAX);
    let asked = match ttl {
        Some(t) if t.num_seconds() <= limit => return Ok(()),
        Some(t) => format!(
            "--ttl {}",
            cp_core::units::Duration::from_secs(t.num_seconds().max(0) as u64)
        ),
        None => "a token that never expires".to_owned(),
    };
    Err(TokenError::TooLong {
        role,
        asked,
        max: max.to_string(),
        env: env.to_owned(),
    })
}

/// One stored token: never the token itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoredToken {
    /// Its unique name (the audit log's actor is `token:<name>`).
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The id of the one tenant it may see, if scoped (resolved from a slug when the
    /// token is made, so a tenant deleted and made again under the same slug is
    /// another tenant to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token as `token list` shows it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TokenInfo {
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The tenant it is scoped to.
    pub tenant: Option<String>,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// When it expires (RFC 3339), if ever.
    pub expires_at: Option<String>,
    /// Already expired.
    pub expired: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    format: u32,
    tokens: Vec<StoredToken>,
}

/// The hex SHA-256 of a token.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// The token file of a server state directory.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    cache: Mutex<Cache>,
    clock: Clock,
}

#[derive(Debug, Default)]
struct Cache {
    stamp: Option<(SystemTime, u64)>,
    tokens: Vec<StoredToken>,
}

impl TokenStore {
    /// The store in `dir` (nothing is read or created yet), on real time.
    pub fn new(dir: &Path) -> Self {
        Self::with_clock(dir, Clock::default())
    }

    /// The store in `dir`, judging expiry by `clock` (the server's).
    pub fn with_clock(dir: &Path, clock: Clock) -> Self {
        Self {
            path: dir.join(FILE),
            cache: Mutex::new(Cache::default()),
            clock,
        }
    }

    fn read(&self) -> Result<Vec<StoredToken>, TokenError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                let f: TokenFile =
                    serde_json::from_slice(&bytes).map_err(|e| TokenError::Corrupt {
                        path: self.path.clone(),
                        detail: e.to_string(),
                    })?;
                Ok(f.tokens)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(TokenError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    fn write(&self, tokens: Vec<StoredToken>) -> Result<(), TokenError> {
        let bytes =
            serde_json::to_vec_pretty(&TokenFile { format: 1, tokens }).expect("tokens serialize");
        crate::state::ensure_private_dir(self.path.parent().expect("a file in a directory"))
            .map_err(TokenError::Write)?;
        cp_runtime::state::write_atomic(&self.path, &bytes, 0o600).map_err(TokenError::Write)
    }

    /// Creates a token and returns it: the only time it exists outside the caller.
    pub fn create(
        &self,
        name: &str,
        role: Role,
        tenant: Option<String>,
        ttl: Option<chrono::Duration>,
    ) -> Result<String, TokenError> {
        if !valid_name(name) {
            return Err(TokenError::BadName(name.to_owned()));
        }
        let now = self.clock.now();
        let mut tokens = self.read()?;
        // Expired tokens leave the store at its next change (their names are free).
        tokens.retain(|t| t.expires_at.is_none_or(|e| e > now));
        if tokens.iter().any(|t| t.name == name) {
            return Err(TokenError::Exists(name.to_owned()));
        }
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let token = format!("{PREFIX}{}", hex::encode(raw));
        tokens.push(StoredToken {
            name: name.to_owned(),
            role,
            tenant,
            sha256: hash(&token),
            created_at: now,
            expires_at: ttl.map(|d| now + d),
        });
        self.write(tokens)?;
        Ok(token)
    }

    /// Every token, without hashes.
    pub fn list(&self) -> Result<Vec<TokenInfo>, TokenError> {
        let now = self.clock.now();
        let ts = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        Ok(self
            .read()?
            .into_iter()
            .map(|t| TokenInfo {
                expired: t.expires_at.is_some_and(|e| e <= now),
                name: t.name,
                role: t.role,
                tenant: t.tenant,
                created_at: ts(t.created_at),
                expires_at: t.expires_at.map(ts),
            })
            .collect())
    }

    /// Removes a token by name (a name no token can have is refused as such).
    pub fn revoke(&self, name: &str) -> Result<(), TokenError> {
        if !valid_name(name) {
            return Err(TokenError::BadName(name.to_owned()));
        }
        let mut tokens = self.read()?;
        let before = tokens.len();
        tokens.retain(|t| t.name != name);
        if tokens.len() == before {
            return Err(TokenError::NoSuchToken(name.to_owned()));
        }
        let now = self.clock.now();
        tokens.retain(|t| t.expires_at.is_none_or(|e| e > now));
        self.write(tokens)
    }

    /// Removes every token scoped to the tenant `id` (or, made before tokens were
    /// bound to ids, to its `slug`): the tenant was deleted. Returns their names.
    pub fn revoke_tenant(&self, id: &str, slug: &str) -> Result<Vec<String>, TokenError> {
        let tokens = self.read()?;
        let (gone, kept): (Vec<StoredToken>, Vec<StoredToken>) = tokens
            .into_iter()
            .partition(|t| t.tenant.as_deref().is_some_and(|t| t == id || t == slug));
        if !gone.is_empty() {
            self.write(kept)?;
        }
        Ok(gone.into_iter().map(|t| t.name).collect())
    }

    /// The stored token matching `token`, if it exists and has not expired. Re-reads
    /// the file when its modification time or size changed.
    pub fn verify(&self, token: &str) -> Result<Option<StoredToken>, TokenError> {
        if !token.starts_with(PREFIX) {
            return Ok(None);
        }
        self.by_hash(&hash(token))
    }

    /// The stored token whose hash is `sha256`, if it still exists and has not
    /// expired (a console session checks its token this way at every request).
    pub fn by_hash(&self, sha256: &str) -> Result<Option<StoredToken>, TokenError> {
        let stamp = match std::fs::metadata(&self.path) {
            Ok(m) => Some((m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(TokenError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let mut cache = self.cache.lock().expect("token cache lock");
        if cache.stamp != stamp || stamp.is_none() {
            cache.tokens = self.read()?;
            cache.stamp = stamp;
        }
        let now = self.clock.now();
        Ok(cache
            .tokens
            .iter()
            .find(|t| constant_time_eq(t.sha256.as_bytes(), sha256.as_bytes()))
            .filter(|t| t.expires_at.is_none_or(|e| e > now))
            .cloned())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_verified_until_revoked() {
        let tmp = tempfile::tempdir().unwrap();
        let store = TokenStore::new(tmp.path());
        let token = store
            .create("ci", Role::Editor, Some("acme".into()), None)
            .unwrap();
        assert!(token.starts_with(PREFIX) && token.len() == PREFIX.len() + 64);
        let file = std::fs::read_to_string(tmp.path().join(FILE)).unwrap();
        assert!(!file.contains(&token[PREFIX.len()..]), "{file}");
        assert!(file.contains(&hash(&token)), "{file}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(tmp.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let t = store.verify(&token).unwrap().unwrap();
        assert_eq!((t.role, t.tenant.as_deref()), (Role::Editor, Some("acme")));
        assert!(store.verify("cpt_0000").unwrap().is_none());
        assert!(matches!(
            store.create("ci", Role::Admin, None, None),
            Err(TokenError::Exists(_))
        ));
        store.revoke("ci").unwrap();
        assert!(store.verify(&token).unwrap().is_none());
        assert!(matches!(
            store.revoke("ci"),
            Err(TokenError::NoSuchToken(_))
        ));
    }

    #[test]
    fn revoking_a_tenant_removes_the_tokens_scoped_to_its_id_or_slug_only() {
        let tmp = tempfile::tempdir().unwrap();
        let store = TokenStore::new(tmp.path());
        let id = "0b6f8a4e-4d1c-4b7e-9a77-1f6c2d9e8b10";
        let by_id = store
            .create("by-id", Role::Viewer, Some(id.into()), None)
            .unwrap();
        let by_slug = store
            .create("by-slug", Role::Viewer, Some("acme".into()), None)
            .unwrap();
        let other = store
            .create("other", Role::Viewer, Some("globex".into()), None)
            .unwrap();
        let all = store.create("all", Role::Admin, None, None).unwrap();
        let mut gone = store.revoke_tenant(id, "acme").unwrap();
        gone.sort();
        assert_eq!(gone, ["by-id", "by-slug"]);
        assert!(store.verify(&by_id).unwrap().is_none());
        assert!(store.verify(&by_slug).unwrap().is_none());
        assert!(store.verify(&other).unwrap().is_some());
        assert!(store.verify(&all).unwrap().is_some());
        assert!(store.revoke_tenant(id, "acme").unwrap().is_empty());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let store = TokenStore::new(tmp.path());
        let token = store
            .create(
                "old",
                Role::Admin,
                None,
                Some(chrono::Duration::seconds(-1)),
            )
            .unwrap();
        assert!(store.verify(&token).unwrap().is_none());
        assert!(store.list().unwrap()[0].expired);
        // The next change of the store removes it, and its name is free again.
        store.create("new", Role::Viewer, None, None).unwrap();
        let names: Vec<String> = store.list().unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["new"]);
        store.create("old", Role::Viewer, None, None).unwrap();
    }

    #[test]
    fn a_token_longer_than_its_roles_max_ttl_is_refused_not_clipped() {
        let max = cp_core::model::TokenMaxTtl {
            admin: Some(cp_core::units::Duration::parse("24h").unwrap()),
            ..Default::default()
        };
        let h = chrono::Duration::hours;
        check_max_ttl(Role::Admin, Some(h(24)), &max, "production").unwrap();
        check_max_ttl(Role::Viewer, None, &max, "production").unwrap();
        let e = check_max_ttl(Role::Admin, Some(h(25)), &max, "production").unwrap_err();
        assert_eq!(
            e.to_string(),
            "--ttl 1d1h is longer than admin tokens may live in production (serve.tokens.max_ttl.admin: 24h); pass --ttl 24h or less"
        );
        let e = check_max_ttl(Role::Admin, None, &max, "production").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("a token that never expires is longer"),
            "{e}"
        );
    }
}
