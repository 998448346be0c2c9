//! Initialising and unsealing a Vault-compatible server (OpenBao, HashiCorp Vault)
//! through its HTTP API, and where the unseal keys live.
//!
//! Platform-neutral: it takes an [`Endpoint`] and a [`KeyStore`], never a process or
//! a container, so every driver brings Vault up the same way. Two stores:
//! [`StateKeys`] (dev: keys and the bootstrap root token in the state directory, mode
//! 0600) and [`EnvKeys`] (everywhere else: keys come from an environment variable and
//! are never written to disk; a fresh initialisation shows them once on stderr).
//!
//! An initialisation whose answer was lost (a crash between `PUT /v1/sys/init` and
//! keeping the keys) leaves a server nobody can ever unseal, and so holds no data. A
//! marker written before the request recognises that case
//! ([`VaultError::InitInterrupted`]) so the driver can wipe and start over instead of
//! asking for keys that do not exist.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cp_core::model::{UnsealKeys, Vault, VaultMode};
use cp_core::units::SecretRef;
use serde::{Deserialize, Serialize};

pub mod audit;
mod client;

pub use client::{Answer, Client, Health, REQUEST_TIMEOUT, Refusal, RequestError};

use crate::probe::Endpoint;
use crate::secrets::{Secret, SecretError, SecretResolver};
use crate::state::{StateDir, StateError};

/// Why Vault could not be initialised or unsealed.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// No answer, or an answer we did not expect.
    #[error("vault at {addr}: {detail}")]
    Api {
        /// Address.
        addr: String,
        /// What happened (never a key or token).
        detail: String,
    },
    /// It answered, and refused the request (a 4xx: a wrong key, a bad request).
    #[error("vault at {addr} refused {detail}")]
    Refused {
        /// Address.
        addr: String,
        /// What was refused and why (never a key or token).
        detail: String,
    },
    /// Sealed, and no key is available.
    #[error("vault is sealed and {detail}")]
    Sealed {
        /// Why no key is available and what to do.
        detail: String,
    },
    /// A previous run initialised Vault but never kept the keys.
    #[error(
        "vault at {addr} was initialised by a run that stopped before keeping its unseal keys; nobody can unseal it, so it holds no data"
    )]
    InitInterrupted {
        /// Address.
        addr: String,
    },
    /// The state directory.
    #[error("cannot keep vault's keys")]
    State(#[source] StateError),
    /// A file in the state directory does not parse.
    #[error(
        "{path} is corrupt ({detail}); move it aside (vault's data is then lost with it) or restore it"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// The answer to a fresh initialisation: the unseal keys and the root token.
/// Debug output is redacted.
#[derive(Clone)]
pub struct InitKeys {
    /// Unseal keys (base64).
    pub keys: Vec<Secret>,
    /// Key threshold.
    pub threshold: u8,
    /// The initial root token.
    pub root_token: Secret,
}

impl fmt::Debug for InitKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InitKeys")
            .field("keys", &self.keys.len())
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

/// Where unseal keys come from and where a fresh initialisation's keys go.
pub trait KeyStore: Send + Sync {
    /// The unseal keys, when this store has them.
    fn unseal_keys(&self) -> Result<Option<Vec<Secret>>, VaultError>;
    /// What to do when it has none, for [`VaultError::Sealed`] ("set X ...").
    fn missing_hint(&self) -> String;
    /// Key shares and threshold for a fresh initialisation.
    fn shares(&self) -> (u8, u8);
    /// Keeps (or shows once) the answer of a fresh initialisation.
    fn keep(&self, init: &InitKeys) -> Result<(), VaultError>;
    /// The root token, where it is kept (dev only).
    fn root_token(&self) -> Result<Option<Secret>, VaultError>;
    /// Notes that an initialisation is about to be requested.
    fn begin_init(&self) -> Result<(), VaultError>;
    /// Notes that its answer was kept.
    fn end_init(&self) -> Result<(), VaultError>;
    /// True when an initialisation was requested and its answer never kept.
    fn init_pending(&self) -> bool;
    /// The files [`KeyStore::forget`] would remove now (those that exist). Read-only.
    fn kept(&self) -> Vec<PathBuf>;
    /// Forgets everything kept (`down --volumes`): removes [`KeyStore::kept`];
    /// returns what was removed.
    fn forget(&self) -> Result<Vec<PathBuf>, VaultError> {
        let mut removed = Vec::new();
        for p in self.kept() {
            if remove_file(&p).map_err(VaultError::State)? {
                removed.push(p);
            }
        }
        Ok(removed)
    }
}

const INIT_FILE: &str = "init.json";
const PENDING_FILE: &str = "init.pending";

#[derive(Serialize, Deserialize)]
struct InitFile {
    keys_base64: Vec<String>,
    threshold: u8,
    root_token: String,
}

/// The initialisation journal both stores keep in the state directory. It holds no
/// key: only the fact that a request was sent.
#[derive(Debug, Clone)]
struct Journal {
    state: StateDir,
    dir: PathBuf,
}

impl Journal {
    fn pending(&self) -> PathBuf {
        self.dir.join(PENDING_FILE)
    }

    fn begin(&self) -> Result<(), VaultError> {
        self.state
            .write(self.pending(), b"initialisation requested\n", 0o600)
            .map_err(VaultError::State)
    }

    fn end(&self) -> Result<(), VaultError> {
        remove_file(&self.state.join(self.pending()))
            .map(|_| ())
            .map_err(VaultError::State)
    }

    fn is_pending(&self) -> bool {
        self.state.join(self.pending()).exists()
    }
}

fn remove_file(path: &Path) -> Result<bool, StateError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(StateError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Dev: the unseal key and root token in `<dir>/init.json` (mode 0600) of the state
/// directory.
#[derive(Debug, Clone)]
pub struct StateKeys {
    journal: Journal,
}

impl StateKeys {
    /// Keys kept in `dir` (relative to the state directory, e.g. `vault`).
    pub fn new(state: &StateDir, dir: impl Into<PathBuf>) -> Self {
        Self {
            journal: Journal {
                state: state.clone(),
                dir: dir.into(),
            },
        }
    }

    /// The file holding the keys.
    pub fn path(&self) -> PathBuf {
        self.journal.state.join(self.journal.dir.join(INIT_FILE))
    }

    fn read(&self) -> Result<Option<InitFile>, VaultError> {
        let rel = self.journal.dir.join(INIT_FILE);
        let Some(bytes) = self.journal.state.read(&rel).map_err(VaultError::State)? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| VaultError::Corrupt {
                path: self.path(),
                detail: e.to_string(),
            })
    }
}

impl KeyStore for StateKeys {
    fn unseal_keys(&self) -> Result<Option<Vec<Secret>>, VaultError> {
        Ok(self
            .read()?
            .map(|f| f.keys_base64.into_iter().map(Secret::new).collect()))
    }

    fn missing_hint(&self) -> String {
        format!(
            "its unseal key file {} is missing; restore it, or remove vault's data with `controlplane down --volumes` and run up again",
            self.path().display()
        )
    }

    fn shares(&self) -> (u8, u8) {
        // One key on a developer machine: it sits next to the data anyway.
        (1, 1)
    }

    fn keep(&self, init: &InitKeys) -> Result<(), VaultError> {
        let file = InitFile {
            keys_base64: init.keys.iter().map(|k| k.expose().to_owned()).collect(),
            threshold: init.threshold,
            root_token: init.root_token.expose().to_owned(),
        };
        let bytes = serde_json::to_vec_pretty(&file).expect("serializes");
        self.journal
            .state
            .write_private(self.journal.dir.join(INIT_FILE), &bytes)
            .map_err(VaultError::State)
    }

    fn root_token(&self) -> Result<Option<Secret>, VaultError> {
        Ok(self.read()?.map(|f| Secret::new(f.root_token)))
    }

    fn begin_init(&self) -> Result<(), VaultError> {
        self.journal.begin()
    }

    fn end_init(&self) -> Result<(), VaultError> {
        self.journal.end()
    }

    fn init_pending(&self) -> bool {
        self.journal.is_pending()
    }

    fn kept(&self) -> Vec<PathBuf> {
        [self.path(), self.journal.state.join(self.journal.pending())]
            .into_iter()
            .filter(|p| p.exists())
            .collect()
    }
}

/// Shows a fresh initialisation's keys to a person, once.
pub type Announce = Arc<dyn Fn(&InitKeys) + Send + Sync>;

/// Outside dev: unseal keys from a comma-separated environment variable, never
/// written to disk. A fresh initialisation's keys and root token are shown once
/// (on stderr unless told otherwise) and then exist only where the operator put them.
#[derive(Clone)]
pub struct EnvKeys {
    var: String,
    journal: Journal,
    announce: Announce,
}

impl fmt::Debug for EnvKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvKeys")
            .field("var", &self.var)
            .finish_non_exhaustive()
    }
}

impl EnvKeys {
    /// Keys from `var`; the journal (no keys) in `dir` of the state directory.
    pub fn new(var: impl Into<String>, state: &StateDir, dir: impl Into<PathBuf>) -> Self {
        let var = var.into();
        let shown = var.clone();
        Self {
            var,
            journal: Journal {
                state: state.clone(),
                dir: dir.into(),
            },
            announce: Arc::new(move |init| eprint!("{}", announcement(&shown, init))),
        }
    }

    /// Shows a fresh initialisation's keys with `announce` instead of on stderr.
    pub fn with_announce(mut self, announce: Announce) -> Self {
        self.announce = announce;
        self
    }
}

/// The text that shows a fresh initialisation's keys, with the warning.
pub fn announcement(var: &str, init: &InitKeys) -> String {
    let keys: Vec<&str> = init.keys.iter().map(Secret::expose).collect();
    let mut s = String::new();
    s.push_str("\n======================================================================\n");
    s.push_str("WARNING: vault was just initialised. Its unseal keys and root token are\n");
    s.push_str("shown ONCE, here, and stored NOWHERE. Save them in your secret manager now;\n");
    s.push_str("without them vault's data cannot be unsealed again.\n\n");
    for (i, k) in keys.iter().enumerate() {
        s.push_str(&format!("  Unseal key {}: {k}\n", i + 1));
    }
    s.push_str(&format!("  Root token:   {}\n\n", init.root_token.expose()));
    s.push_str(&format!(
        "Any {} of the {} keys unseal it: before the next `up`, export\n  {var}=<key>,<key>,...\n",
        init.threshold,
        keys.len()
    ));
    s.push_str("======================================================================\n");
    s
}

impl KeyStore for EnvKeys {
    fn unseal_keys(&self) -> Result<Option<Vec<Secret>>, VaultError> {
        let Ok(value) = std::env::var(&self.var) else {
            return Ok(None);
        };
        let keys: Vec<Secret> = value
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(Secret::new)
            .collect();
        Ok((!keys.is_empty()).then_some(keys))
    }

    fn missing_hint(&self) -> String {
        format!(
            "{} is not set; export {}=<key>,<key>,... with enough of the unseal keys shown when it was initialised",
            self.var, self.var
        )
    }

    fn shares(&self) -> (u8, u8) {
        // Vault's own defaults: no single person holds enough to unseal.
        (5, 3)
    }

    fn keep(&self, init: &InitKeys) -> Result<(), VaultError> {
        (self.announce)(init);
        Ok(())
    }

    fn root_token(&self) -> Result<Option<Secret>, VaultError> {
        Ok(None)
    }

    fn begin_init(&self) -> Result<(), VaultError> {
        self.journal.begin()
    }

    fn end_init(&self) -> Result<(), VaultError> {
        self.journal.end()
    }

    fn init_pending(&self) -> bool {
        self.journal.is_pending()
    }

    fn kept(&self) -> Vec<PathBuf> {
        let p = self.journal.state.join(self.journal.pending());
        if p.exists() { vec![p] } else { Vec::new() }
    }
}

/// The key store an environment's Vault uses: `unseal: state` or `unseal: env://NAME`;
/// `dir` is relative to the state directory (`vault`).
pub fn key_store(vault: &Vault, state: &StateDir, dir: impl Into<PathBuf>) -> Box<dyn KeyStore> {
    match &vault.unseal {
        UnsealKeys::State => Box::new(StateKeys::new(state, dir)),
        UnsealKeys::Env(var) => Box::new(EnvKeys::new(var.clone(), state, dir)),
    }
}

/// The token controlplane uses to configure Vault (seeding): the dev-mode root token,
/// or in dev with raft storage the bootstrap root token kept at initialisation;
/// `None` where no token is kept (outside dev: set `VAULT_TOKEN`).
pub async fn root_token(
    vault: &Vault,
    secrets: &SecretResolver,
    state: &StateDir,
    dir: impl Into<PathBuf>,
) -> Result<Option<Secret>, RootTokenError> {
    if vault.mode == VaultMode::Dev {
        let reference = vault.dev_root_token.clone().unwrap_or(SecretRef::Generate);
        return secrets
            .resolve(DEV_ROOT_TOKEN_SETTING, &reference)
            .await
            .map(Some)
            .map_err(RootTokenError::Secret);
    }
    key_store(vault, state, dir)
        .root_token()
        .map_err(RootTokenError::Vault)
}

/// The setting (and generated-secret name) of the dev-mode root token.
pub const DEV_ROOT_TOKEN_SETTING: &str = "services.vault.dev_root_token";

/// Why the root token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum RootTokenError {
    /// The dev root token reference.
    #[error(transparent)]
    Secret(SecretError),
    /// The kept keys.
    #[error(transparent)]
    Vault(VaultError),
}

/// `GET /v1/sys/seal-status`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SealStatus {
    /// Initialised.
    pub initialized: bool,
    /// Sealed.
    pub sealed: bool,
    /// Key threshold (0 before initialisation).
    #[serde(rename = "t", default)]
    pub threshold: u8,
    /// Key shares.
    #[serde(rename = "n", default)]
    pub shares: u8,
    /// Keys given so far.
    #[serde(default)]
    pub progress: u8,
    /// Server version.
    #[serde(default)]
    pub version: String,
    /// The cluster's id (once initialised and unsealed).
    #[serde(default)]
    pub cluster_id: Option<String>,
}

/// What [`VaultApi::ensure_unsealed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It was unsealed already.
    AlreadyUnsealed,
    /// It was sealed; the store's keys unsealed it.
    Unsealed,
    /// It was not initialised; it is now, and unsealed.
    Initialised,
}

const REQUEST: Duration = Duration::from_secs(3);
// `sys/init` waits for raft's first leader election (1-2 s with
// `performance_multiplier = 1`, 5-10 s at the default).
const INIT_REQUEST: Duration = Duration::from_secs(30);

/// Vault's system API at one endpoint: initialisation, unsealing, seal status.
#[derive(Debug)]
pub struct VaultApi {
    client: Client,
    init_client: Client,
}

impl VaultApi {
    /// The API at `ep` (plain HTTP: loopback or a private network).
    pub fn new(ep: &Endpoint) -> Self {
        Self {
            client: Client::at(ep).timeout(REQUEST),
            init_client: Client::at(ep).timeout(INIT_REQUEST),
        }
    }

    fn addr(&self) -> String {
        self.client.addr().trim_start_matches("http://").to_owned()
    }

    fn error(&self, what: &str, e: RequestError) -> VaultError {
        match e {
            RequestError::Refused { status, errors, .. } if (400..500).contains(&status) => {
                VaultError::Refused {
                    addr: self.addr(),
                    detail: format!("{what} (HTTP {status}): {errors}"),
                }
            }
            RequestError::Refused { status, errors, .. } => VaultError::Api {
                addr: self.addr(),
                detail: format!("{what} (HTTP {status}): {errors}"),
            },
            RequestError::Unreachable { source, .. } => VaultError::Api {
                addr: self.addr(),
                detail: format!("{what}: no answer ({source})"),
            },
            RequestError::NoToken { hint } => VaultError::Api {
                addr: self.addr(),
                detail: format!("{what}: {hint}"),
            },
        }
    }

    fn parse<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        v: serde_json::Value,
    ) -> Result<T, VaultError> {
        serde_json::from_value(v).map_err(|e| VaultError::Api {
            addr: self.addr(),
            detail: format!("{what}: bad reply ({e})"),
        })
    }

    /// `GET /v1/sys/seal-status`: one attempt.
    pub async fn seal_status(&self) -> Result<SealStatus, VaultError> {
        let v = self
            .client
            .read("sys/seal-status")
            .await
            .map_err(|e| self.error("seal-status", e))?
            .unwrap_or_default();
        self.parse("seal-status", v)
    }

    /// True when this node is initialised, unsealed and active (not a standby that
    /// cannot serve writes yet): `GET /v1/sys/health` answers 200.
    pub async fn is_active(&self) -> Result<bool, VaultError> {
        self.client
            .is_active()
            .await
            .map_err(|e| self.error("health", e))
    }

    /// `PUT /v1/sys/init`.
    pub async fn init(&self, shares: u8, threshold: u8) -> Result<InitKeys, VaultError> {
        #[derive(Deserialize)]
        struct Reply {
            keys_base64: Vec<String>,
            root_token: String,
        }
        let v = self
            .init_client
            .put(
                "sys/init",
                &serde_json::json!({"secret_shares": shares, "secret_threshold": threshold}),
            )
            .await
            .map_err(|e| self.error("init", e))?;
        let r: Reply = self.parse("init", v)?;
        Ok(InitKeys {
            keys: r.keys_base64.into_iter().map(Secret::new).collect(),
            threshold,
            root_token: Secret::new(r.root_token),
        })
    }

    /// Gives keys (`PUT /v1/sys/unseal`) until unsealed, starting from a clean
    /// progress. Fails when the keys run out first or one is wrong.
    pub async fn unseal(&self, keys: &[Secret]) -> Result<SealStatus, VaultError> {
        let reset = self
            .client
            .put("sys/unseal", &serde_json::json!({"reset": true}))
            .await
            .map_err(|e| self.error("unseal reset", e))?;
        let mut status: SealStatus = self.parse("unseal reset", reset)?;
        for (i, key) in keys.iter().enumerate() {
            if !status.sealed {
                break;
            }
            let v = self
                .client
                .put("sys/unseal", &serde_json::json!({"key": key.expose()}))
                .await
                .map_err(|e| match self.error("unseal", e) {
                    VaultError::Refused { detail, .. } => VaultError::Sealed {
                        detail: format!(
                            "unseal key {} of {} was refused ({detail}); check the keys given",
                            i + 1,
                            keys.len()
                        ),
                    },
                    e => e,
                })?;
            status = self.parse("unseal", v)?;
        }
        if status.sealed {
            return Err(VaultError::Sealed {
                detail: format!(
                    "the {} unseal key(s) given are not enough: it needs {}",
                    keys.len(),
                    status.threshold
                ),
            });
        }
        Ok(status)
    }

    /// Initialises (when needed) and unseals, with `store`'s keys. The server must
    /// answer; wait for that first.
    pub async fn ensure_unsealed(&self, store: &dyn KeyStore) -> Result<Outcome, VaultError> {
        let status = self.seal_status().await?;
        if !status.initialized {
            let (shares, threshold) = store.shares();
            store.begin_init()?;
            let init = self.init(shares, threshold).await?;
            store.keep(&init)?;
            store.end_init()?;
            self.unseal(&init.keys).await?;
            return Ok(Outcome::Initialised);
        }
        let keys = store.unseal_keys()?;
        if store.init_pending() {
            if keys.is_none() {
                return Err(VaultError::InitInterrupted { addr: self.addr() });
            }
            // The keys were kept after all (the run stopped just after).
            store.end_init()?;
        }
        if !status.sealed {
            return Ok(Outcome::AlreadyUnsealed);
        }
        let Some(keys) = keys else {
            return Err(VaultError::Sealed {
                detail: store.missing_hint(),
            });
        };
        self.unseal(&keys).await?;
        Ok(Outcome::Unsealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_keys_are_private_and_forgotten() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path(), "dev").unwrap();
        let store = StateKeys::new(&state, "vault");
        assert!(store.unseal_keys().unwrap().is_none());
        assert!(store.missing_hint().contains("init.json"));
        store.begin_init().unwrap();
        assert!(store.init_pending());
        store
            .keep(&InitKeys {
                keys: vec![Secret::new("k1")],
                threshold: 1,
                root_token: Secret::new("root"),
            })
            .unwrap();
        store.end_init().unwrap();
        assert!(!store.init_pending());
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(store.unseal_keys().unwrap().unwrap()[0].expose(), "k1");
        assert_eq!(store.root_token().unwrap().unwrap().expose(), "root");
        assert_eq!(store.kept(), vec![store.path()]);
        assert!(store.path().exists(), "kept() changed something");
        assert_eq!(store.forget().unwrap(), vec![store.path()]);
        assert!(store.unseal_keys().unwrap().is_none());
        assert!(store.kept().is_empty());
    }

    #[test]
    fn env_keys_never_touch_the_disk_and_announce_once() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path(), "prod").unwrap();
        let shown = Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = shown.clone();
        let store = EnvKeys::new("CP_TEST_SURELY_UNSET_UNSEAL_KEYS", &state, "vault")
            .with_announce(Arc::new(move |i: &InitKeys| {
                sink.lock()
                    .unwrap()
                    .push(announcement("CP_TEST_SURELY_UNSET_UNSEAL_KEYS", i));
            }));
        assert!(store.unseal_keys().unwrap().is_none());
        assert!(
            store
                .missing_hint()
                .contains("export CP_TEST_SURELY_UNSET_UNSEAL_KEYS=")
        );
        store
            .keep(&InitKeys {
                keys: vec![Secret::new("aaa"), Secret::new("bbb")],
                threshold: 2,
                root_token: Secret::new("s.root"),
            })
            .unwrap();
        let shown = shown.lock().unwrap();
        assert_eq!(shown.len(), 1);
        assert!(shown[0].contains("Unseal key 2: bbb") && shown[0].contains("s.root"));
        let files: Vec<_> = std::fs::read_dir(state.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, vec![std::ffi::OsString::from("state.json")]);
    }
}
