//! OpenBao/Vault: a raft snapshot (`GET /v1/sys/storage/raft/snapshot`) streamed into
//! an artifact, taken with a token whose policy (`controlplane-backup`, seeded) allows
//! exactly that and the canary below; restore with `snapshot-force`.
//!
//! The canary: right before the snapshot, a random value is encrypted with the transit
//! key `controlplane-backup-canary`; the manifest keeps the ciphertext and the
//! plaintext's digest. A restored Vault that decrypts it back proves the keyring came
//! back with the data (a drill does exactly that).
//!
//! A snapshot carries its cluster's keyring: after `snapshot-force` the server seals
//! itself and opens only with the unseal keys of the cluster the snapshot came from.
//! [`restore`] therefore takes those keys and unseals with them; the caller adopts
//! them as the target's keys from then on.

use base64::Engine as _;
use cp_core::names::CoreKind;
use cp_runtime::secrets::Secret;
use cp_runtime::vault::Client;
use futures::StreamExt;
use reqwest::Method;
use serde_json::json;
use sha2::Digest;

use crate::error::ServiceError;
use crate::manifest::{Canary, Detail, ServiceRecord};
use crate::set::{Part, SetReader, SetWriter, find};

const S: CoreKind = CoreKind::Vault;

pub use cp_core::seedspec::{BACKUP_POLICY, BACKUP_TOKEN_ROLE, CANARY_KEY, backup_policy_hcl};

/// Mints a short-lived backup token through the token role, with `parent` (dev's kept
/// root token or an operator's token): so even in dev, backups run least-privileged.
pub async fn mint_backup_token(parent: &Client) -> Result<Secret, ServiceError> {
    let v = parent
        .write(
            &format!("auth/token/create/{BACKUP_TOKEN_ROLE}"),
            &json!({"ttl": "1h", "display_name": "controlplane-backup"}),
        )
        .await
        .map_err(ServiceError::vault(
            "minting a backup token (is Vault seeded?)",
        ))?;
    v["auth"]["client_token"]
        .as_str()
        .map(Secret::new)
        .ok_or_else(|| ServiceError::VaultState("the token role answered without a token".into()))
}

async fn canary(c: &Client, transit: &str) -> Option<Canary> {
    let plain = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>());
    let v = c
        .write(
            &format!("{transit}/encrypt/{CANARY_KEY}"),
            &json!({"plaintext": plain}),
        )
        .await
        .ok()?;
    Some(Canary {
        key: CANARY_KEY.into(),
        ciphertext: v["data"]["ciphertext"].as_str()?.to_owned(),
        plaintext_sha256: hex::encode(sha2::Sha256::digest(plain.as_bytes())),
    })
}

/// Decrypts the canary with `c` and compares it with the recorded digest.
pub async fn check_canary(c: &Client, transit: &str, canary: &Canary) -> Result<(), ServiceError> {
    let v = c
        .write(
            &format!("{transit}/decrypt/{}", canary.key),
            &json!({"ciphertext": canary.ciphertext}),
        )
        .await
        .map_err(ServiceError::vault("decrypting the canary"))?;
    let plain = v["data"]["plaintext"].as_str().unwrap_or_default();
    if hex::encode(sha2::Sha256::digest(plain.as_bytes())) == canary.plaintext_sha256 {
        Ok(())
    } else {
        Err(ServiceError::VaultState(
            "the canary decrypts to another value: the keyring is not the one backed up".into(),
        ))
    }
}

/// Takes a raft snapshot with `c` (a token with the backup policy).
pub async fn backup(w: &SetWriter, c: &Client, transit: &str) -> Result<Part, ServiceError> {
    let version = c
        .call(Method::GET, "sys/seal-status", None)
        .await
        .ok()
        .and_then(|a| a.body["version"].as_str().map(str::to_owned));
    let canary = canary(c, transit).await;
    let resp = c
        .request(Method::GET, "sys/storage/raft/snapshot")
        .timeout(std::time::Duration::from_secs(3600))
        .send()
        .await
        .map_err(|source| ServiceError::Http {
            doing: "requesting a raft snapshot".into(),
            source,
        })?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        return Err(ServiceError::VaultState(format!(
            "GET sys/storage/raft/snapshot answered HTTP {status}: {} (the token needs the `{BACKUP_POLICY}` policy; raft storage only)",
            text.trim()
        )));
    }
    let mut a = w.artifact(S, "raft.snap");
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|source| ServiceError::Http {
            doing: "reading the raft snapshot".into(),
            source,
        })?;
        a.write(chunk).await?;
    }
    Ok(Part {
        server_version: version,
        artifacts: vec![a.finish().await?],
        detail: Detail::Vault { canary },
    })
}

/// Restores the snapshot into the server `c` talks to (its token must allow
/// `sys/storage/raft/snapshot-force`), then unseals it with `keys`, the unseal keys of
/// the cluster the snapshot came from.
pub async fn restore(
    r: &SetReader,
    rec: &ServiceRecord,
    c: &Client,
    keys: &[Secret],
) -> Result<(), ServiceError> {
    let a = find(&rec.artifacts, S, "raft.snap").ok_or_else(|| ServiceError::NotInSet {
        service: S,
        detail: "no raft.snap artifact".into(),
    })?;
    let src = r.open(a).await?;
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(src));
    let resp = c
        .request(Method::POST, "sys/storage/raft/snapshot-force")
        .timeout(std::time::Duration::from_secs(3600))
        .body(body)
        .send()
        .await
        .map_err(|source| ServiceError::Http {
            doing: "sending the snapshot".into(),
            source,
        })?;
    if !resp.status().is_success() {
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        return Err(ServiceError::VaultState(format!(
            "POST sys/storage/raft/snapshot-force answered HTTP {status}: {}",
            text.trim()
        )));
    }
    // The server reloads and, with another cluster's keyring, seals itself a moment
    // later (its seal status lags): unseal whenever it reports sealed, and call it
    // settled after five consecutive unsealed, active answers.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut settled = 0;
    let mut last = String::new();
    while settled < 5 {
        if std::time::Instant::now() > deadline {
            return Err(ServiceError::VaultState(format!(
                "the restored server did not settle (unsealed and active) within 30 s (last seen: {last})"
            )));
        }
        let h = c
            .health()
            .await
            .map_err(ServiceError::vault("waiting for the restored server"))?;
        let active = c
            .call(Method::GET, "sys/health", None)
            .await
            .map(|a| a.status.as_u16())
            .unwrap_or(0);
        last = format!("{h:?}, sys/health {active}");
        if h.sealed {
            settled = 0;
            for k in keys {
                c.call(Method::PUT, "sys/unseal", Some(&json!({"key": k.expose()})))
                    .await
                    .map_err(ServiceError::vault("unsealing after the restore"))?;
            }
            if c.health()
                .await
                .map_err(ServiceError::vault("reading the seal status"))?
                .sealed
            {
                return Err(ServiceError::VaultState(
                    "restored, but the given unseal keys do not open it: a restore needs the unseal keys of the environment the backup came from".into(),
                ));
            }
        } else if !h.standby && active == 200 {
            settled += 1;
        } else {
            settled = 0;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Ok(())
}
