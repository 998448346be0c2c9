//! OIDC bearer JWTs: validated against the configured issuer's JWKS (fetched from the
//! discovery document or a configured URL, cached, re-fetched at most once a minute
//! when a token names a `kid` not in it). Only asymmetric keys are accepted, the
//! token's `alg` must be of the key's family (and equal the key's own `alg` when it
//! has one), so `alg: none`, HS256 signed with a public key, and an unknown `kid` are
//! all refused. `iss`, `aud` and `exp` are required; `nbf` is checked when present;
//! clock skew is the configured leeway.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::config::OidcConfig;
use crate::routes::Role;

const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(60);

/// Why a JWT was refused (the client sees only "invalid token"; this goes to the log
/// and the audit detail).
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// Not a JWT, or a header we refuse (`alg: none` does not even parse).
    #[error("malformed token or unsupported algorithm: {0}")]
    Header(#[source] jsonwebtoken::errors::Error),
    /// No `kid` in the header.
    #[error("the token names no key (kid)")]
    NoKid,
    /// The `kid` is not in the issuer's JWKS.
    #[error("unknown key id `{0}`")]
    UnknownKid(String),
    /// The algorithm does not fit the key.
    #[error("algorithm {alg:?} does not match key `{kid}`")]
    AlgMismatch {
        /// The token's algorithm.
        alg: Algorithm,
        /// The key.
        kid: String,
    },
    /// Signature, issuer, audience or time checks failed.
    #[error("token rejected: {0}")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    /// The role claim is missing or names no role.
    #[error("the token carries no controlplane role in `{0}`")]
    NoRole(String),
    /// The JWKS could not be fetched.
    #[error("cannot fetch the issuer's keys from {url}: {detail}")]
    Jwks {
        /// Where.
        url: String,
        /// Why.
        detail: String,
    },
}

/// A validated identity.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `sub`.
    pub subject: String,
    /// The highest role the token carries.
    pub role: Role,
    /// The tenant it is scoped to.
    pub tenant: Option<String>,
    /// When the JWT expires (`exp`).
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Default)]
struct Keys {
    set: Option<JwkSet>,
    fetched: Option<Instant>,
}

/// The validator.
#[derive(Debug)]
pub struct Oidc {
    cfg: OidcConfig,
    http: reqwest::Client,
    keys: Mutex<Keys>,
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

fn family(jwk: &Jwk) -> Option<AlgorithmFamily> {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(AlgorithmFamily::Rsa),
        AlgorithmParameters::EllipticCurve(_) => Some(AlgorithmFamily::Ec),
        AlgorithmParameters::OctetKeyPair(_) => Some(AlgorithmFamily::Ed),
        // Shared secrets have no place in a public key set.
        _ => None,
    }
}

impl Oidc {
    /// A validator for `cfg`.
    pub fn new(cfg: OidcConfig) -> Self {
        Self {
            cfg,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("an HTTP client"),
            keys: Mutex::new(Keys::default()),
        }
    }

    async fn fetch(&self) -> Result<JwkSet, JwtError> {
        let url = match &self.cfg.jwks_url {
            Some(u) => u.clone(),
            None => {
                let d = format!(
                    "{}/.well-known/openid-configuration",
                    self.cfg.issuer.trim_end_matches('/')
                );
                let err = |e: reqwest::Error| JwtError::Jwks {
                    url: d.clone(),
                    detail: e.to_string(),
                };
                let disc: Discovery = self
                    .http
                    .get(&d)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .map_err(err)?
                    .json()
                    .await
                    .map_err(err)?;
                disc.jwks_uri
            }
        };
        let err = |e: reqwest::Error| JwtError::Jwks {
            url: url.clone(),
            detail: e.to_string(),
        };
        self.http
            .get(&url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(err)?
            .json()
            .await
            .map_err(err)
    }

    /// The key `kid`, fetching the set first if needed, or again (rate-limited) when
    /// the kid is unknown (the issuer may have rotated keys).
    async fn key(&self, kid: &str) -> Result<Jwk, JwtError> {
        let mut keys = self.keys.lock().await;
        if let Some(k) = keys.set.as_ref().and_then(|s| s.find(kid)) {
            return Ok(k.clone());
        }
        let may_fetch = keys
            .fetched
            .is_none_or(|t| t.elapsed() >= REFETCH_AT_MOST_EVERY);
        if may_fetch {
            keys.fetched = Some(Instant::now());
            keys.set = Some(self.fetch().await?);
        }
        keys.set
            .as_ref()
            .and_then(|s| s.find(kid))
            .cloned()
            .ok_or_else(|| JwtError::UnknownKid(kid.to_owned()))
    }

    /// Validates `token`.
    pub async fn validate(&self, token: &str) -> Result<Identity, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(JwtError::Header)?;
        let kid = header.kid.clone().ok_or(JwtError::NoKid)?;
        let jwk = self.key(&kid).await?;
        let mismatch = || JwtError::AlgMismatch {
            alg: header.alg,
            kid: kid.clone(),
        };
        let fam = family(&jwk).ok_or_else(mismatch)?;
        if header.alg.family() != fam {
            return Err(mismatch());
        }
        if let Some(ka) = jwk.common.key_algorithm
            && ka.to_string() != format!("{:?}", header.alg)
        {
            return Err(mismatch());
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(JwtError::Invalid)?;
        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.set_issuer(&[&self.cfg.issuer]);
        v.set_audience(&[&self.cfg.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = self.cfg.leeway.as_secs();
        v.validate_nbf = true;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &v)
            .map_err(JwtError::Invalid)?;
        let claims = data.claims;
        let role = match claims.get(&self.cfg.role_claim) {
            Some(serde_json::Value::String(s)) => Role::parse(s),
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().and_then(Role::parse))
                .max(),
            _ => None,
        }
        .ok_or_else(|| JwtError::NoRole(self.cfg.role_claim.clone()))?;
        Ok(Identity {
            subject: claims
                .get("sub")
                .and_then(|s| s.as_str())
                .unwrap_or_default()
                .to_owned(),
            role,
            tenant: claims
                .get(&self.cfg.tenant_claim)
                .and_then(|s| s.as_str())
                .map(str::to_owned),
            expires_at: claims
                .get("exp")
                .and_then(serde_json::Value::as_i64)
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0)),
        })
    }
}
