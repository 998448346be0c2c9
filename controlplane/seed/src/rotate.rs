//! Rotation inside running services: transit keys (a new version, what the platform
//! itself encrypted rewrapped, then `min_decryption_version` raised so only the
//! newest `keep_versions` decrypt) and the platform's passwords (a PostgreSQL role's
//! verifier; a Redis ACL user's second password, then the first one removed).
//!
//! What the platform encrypts with transit: string values of the form `vault:vN:…`
//! in a tenant's KV subtree (`<kv>/tenants/<id>/`), encrypted with the tenant's key;
//! those are rewrapped before the key's old versions stop decrypting. The backup
//! canary is not rewrapped on purpose: a set's canary is checked only against the
//! keyring restored from the same set's raft snapshot (`cp_backup::drill`), which
//! holds the key as it was when the set was taken, so a rewrapped canary would be
//! one the restored keyring cannot read. The global `anumate-*` keys encrypt only
//! what the apps keep; apps rewrap their own data within `keep_versions × every`
//! (`transit/rewrap`, the app policy allows it).

use cp_core::model::Environment;
use cp_core::seedspec;
use cp_runtime::secrets::Secret;
use serde_json::{Value, json};
use sha2::Digest;

use crate::vault::VaultClient;
use crate::{RedisAccess, RedisStep, Report, SeedError, SeedErrorKind};

/// Whose a transit key is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum KeyOwner {
    /// One of `vault.keys` (the apps').
    Platform,
    /// The backup canary's.
    Canary,
    /// A tenant's (`tenant-<id>`).
    Tenant(String),
}

/// A transit key as Vault reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyState {
    /// Its name.
    pub name: String,
    /// Whose it is.
    pub owner: KeyOwner,
    /// The newest version.
    pub latest_version: u64,
    /// The oldest version that still decrypts.
    pub min_decryption_version: u64,
    /// When the newest version was made (unix seconds), when Vault says.
    pub latest_created: Option<i64>,
}

/// What rotating one key did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyRotation {
    /// The key.
    pub name: String,
    /// Its newest version before and after.
    pub versions: (u64, u64),
    /// Its `min_decryption_version` before and after.
    pub min_decryption: (u64, u64),
    /// The KV entries rewrapped (`<mount>/<path>#<field>`).
    pub rewrapped: Vec<String>,
}

/// The transit keys the platform manages: `vault.keys`, the canary's, and each of
/// `tenants` (ids).
pub fn managed_keys(env: &Environment, tenants: &[String]) -> Vec<(String, KeyOwner)> {
    let mut keys: Vec<(String, KeyOwner)> = env
        .vault
        .keys
        .iter()
        .map(|k| (k.clone(), KeyOwner::Platform))
        .collect();
    keys.push((seedspec::CANARY_KEY.to_owned(), KeyOwner::Canary));
    for id in tenants {
        keys.push((
            seedspec::tenant_names(id).transit_key,
            KeyOwner::Tenant(id.clone()),
        ));
    }
    keys
}

/// Reads a key's versions; `None` when it does not exist.
pub async fn key_state(
    c: &VaultClient,
    env: &Environment,
    name: &str,
    owner: KeyOwner,
) -> Result<Option<KeyState>, SeedError> {
    let Some(k) = c
        .read(&format!("{}/keys/{name}", env.vault.transit_mount))
        .await?
    else {
        return Ok(None);
    };
    let d = &k["data"];
    let latest = d["latest_version"].as_u64().unwrap_or(1);
    let created = &d["keys"][latest.to_string()];
    // Symmetric keys list each version's creation as unix seconds; an RFC 3339
    // string is accepted too.
    let latest_created = created.as_i64().or_else(|| {
        created
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp())
    });
    Ok(Some(KeyState {
        name: name.to_owned(),
        owner,
        latest_version: latest,
        min_decryption_version: d["min_decryption_version"].as_u64().unwrap_or(1),
        latest_created,
    }))
}

/// Every managed key that exists (a tenant whose key is gone is skipped: it was
/// crypto-shredded).
pub async fn key_states(
    c: &VaultClient,
    env: &Environment,
    tenants: &[String],
) -> Result<Vec<KeyState>, SeedError> {
    let mut out = Vec::new();
    for (name, owner) in managed_keys(env, tenants) {
        if let Some(s) = key_state(c, env, &name, owner).await? {
            out.push(s);
        }
    }
    Ok(out)
}

/// Rotates `key`: a new version; for a tenant's key, every `vault:vN:` value in the
/// tenant's KV subtree rewrapped to it (check-and-set on the version read, so a
/// concurrent write is not lost); then `min_decryption_version` raised to
/// `latest - keep_versions + 1` (never lowered). Nothing is raised when a rewrap
/// failed: the error names the entry.
pub async fn rotate_key(
    c: &VaultClient,
    env: &Environment,
    key: &KeyState,
    keep_versions: u32,
) -> Result<KeyRotation, SeedError> {
    let transit = &env.vault.transit_mount;
    let name = &key.name;
    c.write(&format!("{transit}/keys/{name}/rotate"), &json!({}))
        .await?;
    let after = key_state(c, env, name, key.owner.clone())
        .await?
        .ok_or_else(|| SeedErrorKind::NoTransitKey { key: name.clone() })?;
    let mut rewrapped = Vec::new();
    if let KeyOwner::Tenant(id) = &key.owner {
        rewrapped = rewrap_tenant(c, env, id, name, after.latest_version).await?;
    }
    let wanted_min = after
        .latest_version
        .saturating_sub(u64::from(keep_versions.max(1)))
        + 1;
    let new_min = wanted_min.max(after.min_decryption_version);
    if new_min != after.min_decryption_version {
        c.write(
            &format!("{transit}/keys/{name}/config"),
            &json!({"min_decryption_version": new_min}),
        )
        .await?;
    }
    Ok(KeyRotation {
        name: name.clone(),
        versions: (key.latest_version, after.latest_version),
        min_decryption: (key.min_decryption_version, new_min),
        rewrapped,
    })
}

/// The version of a transit ciphertext (`vault:v3:…` is 3).
pub fn ciphertext_version(text: &str) -> Option<u64> {
    text.strip_prefix("vault:v")?
        .split_once(':')?
        .0
        .parse()
        .ok()
}

async fn rewrap_tenant(
    c: &VaultClient,
    env: &Environment,
    id: &str,
    key: &str,
    latest: u64,
) -> Result<Vec<String>, SeedError> {
    let kv = &env.vault.kv_mount;
    let transit = &env.vault.transit_mount;
    let prefix = seedspec::tenant_names(id).kv_prefix;
    let mut done = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        for k in c.list(&format!("{kv}/metadata/{prefix}{rel}")).await? {
            if k.ends_with('/') {
                stack.push(format!("{rel}{k}"));
                continue;
            }
            let path = format!("{prefix}{rel}{k}");
            let Some(entry) = c.read(&format!("{kv}/data/{path}")).await? else {
                continue;
            };
            let version = entry["data"]["metadata"]["version"].as_u64().unwrap_or(0);
            let Some(data) = entry["data"]["data"].as_object() else {
                continue;
            };
            let mut data = data.clone();
            let mut changed = Vec::new();
            for (field, value) in data.iter_mut() {
                let Some(text) = value.as_str() else { continue };
                if ciphertext_version(text).is_none_or(|v| v >= latest) {
                    continue;
                }
                let entry_name = format!("{kv}/{path}#{field}");
                let answer = c
                    .write(
                        &format!("{transit}/rewrap/{key}"),
                        &json!({"ciphertext": text}),
                    )
                    .await
                    .map_err(|source| SeedErrorKind::Rewrap {
                        key: key.to_owned(),
                        entry: entry_name.clone(),
                        source,
                    })?;
                if let Some(new) = answer["data"]["ciphertext"].as_str() {
                    *value = Value::String(new.to_owned());
                    changed.push(entry_name);
                }
            }
            if !changed.is_empty() {
                c.write(
                    &format!("{kv}/data/{path}"),
                    &json!({"options": {"cas": version}, "data": data}),
                )
                .await?;
                done.extend(changed);
            }
        }
    }
    Ok(done)
}

fn hash(password: &Secret) -> String {
    format!("#{}", hex::encode(sha2::Sha256::digest(password.expose())))
}

/// The first half of a Redis user's switch: `new` is added beside the password the
/// user has (`ACL SETUSER <user> #<sha256>`; the value itself is never sent), so
/// clients with either authenticate.
pub async fn redis_add_password(
    redis: &RedisAccess,
    user: &str,
    new: &Secret,
) -> Result<Report, SeedError> {
    redis_setuser(redis, user, &hash(new), "added a second password to").await
}

/// The second half: `old` is removed (`ACL SETUSER <user> !<sha256>`) and the ACL
/// file saved. Connections already authenticated stay so.
pub async fn redis_drop_password(
    redis: &RedisAccess,
    user: &str,
    old: &Secret,
) -> Result<Report, SeedError> {
    let h = hash(old);
    let rule = format!("!{}", &h[1..]);
    redis_setuser(redis, user, &rule, "removed the old password of").await
}

async fn redis_setuser(
    redis: &RedisAccess,
    user: &str,
    rule: &str,
    what: &str,
) -> Result<Report, SeedError> {
    let mut report = Report::new("redis");
    let mut c = crate::redis::connect_admin(redis, &mut report).await?;
    report.trips(1);
    c.command(&["ACL", "SETUSER", user, rule])
        .await
        .map_err(|source| {
            SeedError::from(SeedErrorKind::Redis {
                step: RedisStep::SetUser {
                    name: user.to_owned(),
                },
                source,
            })
        })?;
    crate::redis::persist(&mut c, &mut report).await?;
    report.change(format!("{what} Redis ACL user {user}"));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ciphertext_versions_are_read_from_the_prefix_only() {
        assert_eq!(ciphertext_version("vault:v3:abc"), Some(3));
        assert_eq!(ciphertext_version("vault:v12:a:b"), Some(12));
        assert_eq!(ciphertext_version("vault:vx:abc"), None);
        assert_eq!(ciphertext_version("plain text"), None);
        assert_eq!(ciphertext_version("vault:v3"), None);
    }
}
