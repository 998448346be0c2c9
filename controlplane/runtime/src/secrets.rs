//! Resolving secret references to values, at the moment a value is needed.
//!
//! `env://NAME` reads the process environment; `vault://path#key` reads a KV v2 secret
//! from the Vault named by `VAULT_ADDR`/`VAULT_TOKEN`; `generate` (dev only) creates
//! a random value once and keeps it in the state directory's `secrets.json` (0600).
//! Values are wrapped in [`Secret`], whose Debug and Display never show them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use cp_core::units::SecretRef;
use rand::Rng;

use crate::state::{StateDir, StateError};

/// A secret value. Printing it shows `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must hand it over (a connection, a child
    /// process's environment). Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a secret could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// `env://NAME` and NAME is not set.
    #[error(
        "{name} refers to env://{var}, which is not set; export {var} before running controlplane"
    )]
    EnvMissing {
        /// The setting.
        name: String,
        /// The variable.
        var: String,
    },
    /// `generate` without a state directory.
    #[error("{name} is `generate`, which needs a state directory to keep the value in")]
    NoState {
        /// The setting.
        name: String,
    },
    /// The state directory failed.
    #[error("cannot keep the generated secret {name}")]
    State {
        /// The setting.
        name: String,
        /// Why.
        #[source]
        source: StateError,
    },
    /// `generate`, the value was never generated, and this resolver may not write
    /// (read-only commands create nothing).
    #[error(
        "{name} is `generate` and has not been generated yet (nothing was brought up here); `controlplane up` creates it"
    )]
    NotGenerated {
        /// The setting.
        name: String,
    },
    /// `vault://` without `VAULT_ADDR`/`VAULT_TOKEN`.
    #[error("{name} refers to {reference}, but VAULT_ADDR and VAULT_TOKEN are not both set")]
    VaultNotConfigured {
        /// The setting.
        name: String,
        /// The reference.
        reference: String,
    },
    /// Vault answered, but without the value.
    #[error("{name}: cannot read {reference} from Vault: {detail}")]
    VaultRead {
        /// The setting.
        name: String,
        /// The reference.
        reference: String,
        /// What went wrong (never the value).
        detail: String,
    },
}

/// Why a new value cannot be written where a setting's value lives.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// `env://NAME`: the variable is the operator's, not ours.
    #[error(
        "{name} refers to env://{var}: controlplane cannot change an environment variable; generate a new value, update {var} where it is set, and re-run with it exported (or move the setting to a vault:// reference)"
    )]
    EnvReference {
        /// The setting.
        name: String,
        /// The variable.
        var: String,
    },
    /// A plaintext value in the environment file.
    #[error(
        "{name} is written in the environment file: change it there (or make it `generate` or a vault:// reference, which rotate can write)"
    )]
    InFile {
        /// The setting.
        name: String,
    },
    /// The new value could not be stored.
    #[error("{name}: cannot store the new value")]
    Store {
        /// The setting.
        name: String,
        /// Why.
        #[source]
        source: SecretError,
    },
}

/// Whether `reference`'s value can be written by controlplane: `generate` (the state
/// file) and `vault://` (the KV entry) can; `env://` and plaintext cannot, and the error
/// says what the operator must do instead.
pub fn check_writable(name: &str, reference: &SecretRef) -> Result<(), WriteError> {
    match reference {
        SecretRef::Generate | SecretRef::Vault { .. } => Ok(()),
        SecretRef::Env { name: var } => Err(WriteError::EnvReference {
            name: name.into(),
            var: var.clone(),
        }),
        SecretRef::Plain(_) => Err(WriteError::InFile { name: name.into() }),
    }
}

/// A new random value: 32 alphanumeric characters, as `generate` makes.
pub fn new_value() -> Secret {
    Secret::new(
        rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(32)
            .map(char::from)
            .collect::<String>(),
    )
}

/// Resolves references for one environment.
#[derive(Debug)]
pub struct SecretResolver {
    state: Option<StateDir>,
    read_only: bool,
    generated: Mutex<Option<BTreeMap<String, String>>>,
}

const SECRETS_FILE: &str = "secrets.json";

impl SecretResolver {
    /// A resolver keeping generated secrets in `state` (none: `generate` fails).
    pub fn new(state: Option<StateDir>) -> Self {
        Self {
            state,
            read_only: false,
            generated: Mutex::new(None),
        }
    }

    /// A resolver that reads generated secrets but never creates one: a `generate`
    /// setting with no kept value is [`SecretError::NotGenerated`]. For read-only
    /// commands (`status`, `plan`), which must leave the state directory as they found
    /// it.
    pub fn read_only(state: Option<StateDir>) -> Self {
        Self {
            read_only: true,
            ..Self::new(state)
        }
    }

    /// Whether this resolver may create generated secrets.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// The value of `reference`; `name` is the setting's key path, used to store
    /// generated values and in messages.
    pub async fn resolve(&self, name: &str, reference: &SecretRef) -> Result<Secret, SecretError> {
        match reference {
            SecretRef::Plain(v) => Ok(Secret::new(v.clone())),
            SecretRef::Env { name: var } => {
                std::env::var(var)
                    .map(Secret::new)
                    .map_err(|_| SecretError::EnvMissing {
                        name: name.into(),
                        var: var.clone(),
                    })
            }
            SecretRef::Generate => self.generated(name),
            SecretRef::Vault { path, key } => self.read_vault(name, reference, path, key).await,
        }
    }

    /// Generated secrets: read once from `secrets.json`, created on first use.
    fn generated(&self, name: &str) -> Result<Secret, SecretError> {
        let state = self
            .state
            .as_ref()
            .ok_or_else(|| SecretError::NoState { name: name.into() })?;
        let err = |source| SecretError::State {
            name: name.into(),
            source,
        };
        let mut guard = self.generated.lock().expect("not poisoned");
        if guard.is_none() {
            let map = match state.read(SECRETS_FILE).map_err(err)? {
                Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                    err(StateError::Corrupt {
                        path: state.join(SECRETS_FILE),
                        detail: e.to_string(),
                    })
                })?,
                None => BTreeMap::new(),
            };
            *guard = Some(map);
        }
        let map = guard.as_mut().expect("loaded above");
        if let Some(v) = map.get(name) {
            return Ok(Secret::new(v.clone()));
        }
        if self.read_only {
            return Err(SecretError::NotGenerated { name: name.into() });
        }
        let value: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(32)
            .map(char::from)
            .collect();
        map.insert(name.to_owned(), value.clone());
        let bytes = serde_json::to_vec_pretty(map).expect("serializes");
        state.write_private(SECRETS_FILE, &bytes).map_err(err)?;
        Ok(Secret::new(value))
    }

    /// Writes `value` where `reference`'s value lives: `secrets.json` for `generate`,
    /// the KV v2 entry (other keys kept, check-and-set on the version read) for
    /// `vault://`. `env://` and plaintext are refused ([`check_writable`]).
    pub async fn write(
        &self,
        name: &str,
        reference: &SecretRef,
        value: &Secret,
    ) -> Result<(), WriteError> {
        check_writable(name, reference)?;
        let store = |source| WriteError::Store {
            name: name.into(),
            source,
        };
        match reference {
            SecretRef::Generate => {
                if self.read_only {
                    return Err(store(SecretError::NotGenerated { name: name.into() }));
                }
                // Load the file (and fail as `resolve` would) before changing it.
                self.generated(name).map_err(store)?;
                let state = self.state.as_ref().expect("generated() checked it");
                let mut guard = self.generated.lock().expect("not poisoned");
                let map = guard.as_mut().expect("loaded by generated()");
                map.insert(name.to_owned(), value.expose().to_owned());
                let bytes = serde_json::to_vec_pretty(map).expect("serializes");
                state.write_private(SECRETS_FILE, &bytes).map_err(|source| {
                    store(SecretError::State {
                        name: name.into(),
                        source,
                    })
                })
            }
            SecretRef::Vault { path, key } => self
                .write_vault(name, reference, path, key, value)
                .await
                .map_err(store),
            SecretRef::Env { .. } | SecretRef::Plain(_) => {
                unreachable!("check_writable refused it")
            }
        }
    }

    async fn write_vault(
        &self,
        name: &str,
        reference: &SecretRef,
        path: &str,
        key: &str,
        value: &Secret,
    ) -> Result<(), SecretError> {
        let (Ok(addr), Ok(token)) = (std::env::var("VAULT_ADDR"), std::env::var("VAULT_TOKEN"))
        else {
            return Err(SecretError::VaultNotConfigured {
                name: name.into(),
                reference: reference.to_string(),
            });
        };
        let err = |detail: String| SecretError::VaultRead {
            name: name.into(),
            reference: reference.to_string(),
            detail,
        };
        let (mount, rest) = path.split_once('/').unwrap_or((path, ""));
        let client = crate::vault::Client::with_token(&addr, Secret::new(token));
        let current = client
            .read(&format!("{mount}/data/{rest}"))
            .await
            .map_err(|e| err(e.to_string()))?;
        let (mut data, version) = match &current {
            Some(body) => (
                body["data"]["data"].clone(),
                body["data"]["metadata"]["version"].as_u64().unwrap_or(0),
            ),
            None => (serde_json::json!({}), 0),
        };
        if !data.is_object() {
            data = serde_json::json!({});
        }
        data[key] = serde_json::Value::String(value.expose().to_owned());
        client
            .write(
                &format!("{mount}/data/{rest}"),
                &serde_json::json!({"options": {"cas": version}, "data": data}),
            )
            .await
            .map_err(|e| err(format!("writing the new value: {e}")))?;
        Ok(())
    }

    async fn read_vault(
        &self,
        name: &str,
        reference: &SecretRef,
        path: &str,
        key: &str,
    ) -> Result<Secret, SecretError> {
        let (Ok(addr), Ok(token)) = (std::env::var("VAULT_ADDR"), std::env::var("VAULT_TOKEN"))
        else {
            return Err(SecretError::VaultNotConfigured {
                name: name.into(),
                reference: reference.to_string(),
            });
        };
        let read_err = |detail: String| SecretError::VaultRead {
            name: name.into(),
            reference: reference.to_string(),
            detail,
        };
        // KV v2: `<mount>/<path>` is read at `<mount>/data/<path>`.
        let (mount, rest) = path.split_once('/').unwrap_or((path, ""));
        // VAULT_CACERT, as the Vault CLI reads it: the CA of an `https://` server.
        let ca = std::env::var_os("VAULT_CACERT").map(std::path::PathBuf::from);
        let client = crate::vault::Client::with_token_ca(&addr, Secret::new(token), ca.as_deref());
        let body = client
            .read(&format!("{mount}/data/{rest}"))
            .await
            .map_err(|e| read_err(e.to_string()))?
            .ok_or_else(|| read_err("no such secret".into()))?;
        body["data"]["data"][key]
            .as_str()
            .map(Secret::new)
            .ok_or_else(|| read_err(format!("the secret has no string key `{key}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn generated_secrets_persist_and_never_print() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path(), "dev").unwrap();
        let r = SecretResolver::new(Some(state.clone()));
        let a = r
            .resolve("services.postgres.admin_password", &SecretRef::Generate)
            .await
            .unwrap();
        assert_eq!(a.expose().len(), 32);
        assert_eq!(format!("{a} {a:?}"), "<redacted> <redacted>");
        let again = SecretResolver::new(Some(state));
        let b = again
            .resolve("services.postgres.admin_password", &SecretRef::Generate)
            .await
            .unwrap();
        assert_eq!(a, b);
        let e = again
            .resolve(
                "x",
                &SecretRef::Env {
                    name: "CP_TEST_SURELY_UNSET_VAR".into(),
                },
            )
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("export CP_TEST_SURELY_UNSET_VAR"),
            "{e}"
        );
    }
}
