//! The one HTTP client for a Vault-compatible server (OpenBao, HashiCorp Vault).
//!
//! Seeding, tenants, backups, readiness probes, initialisation and unsealing, and
//! `vault://` secret references all talk to Vault through [`Client`]: one place that
//! builds requests, reads Vault's `{"errors": [...]}` replies, retries the one transient
//! answer a fresh KV v2 mount gives, and counts round trips. Tokens travel only in the
//! `X-Vault-Token` header and never appear in an error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::probe::Endpoint;
use crate::secrets::Secret;

/// How long one request may take unless the caller says otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A request that could not be made or was refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No answer (connection refused, timeout).
    #[error("{method} /v1/{path}: vault at {addr} does not answer")]
    Unreachable {
        /// The method.
        method: Method,
        /// The API path (without `/v1/`).
        path: String,
        /// `http://host:port`.
        addr: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// Vault answered with an error status.
    #[error("{method} /v1/{path}: {errors} (HTTP {status})")]
    Refused {
        /// The method.
        method: Method,
        /// The API path.
        path: String,
        /// The status code.
        status: u16,
        /// Vault's error lines, joined (Vault never echoes a token or key in them).
        errors: String,
    },
    /// No token was available for a call that needs one.
    #[error("no Vault token: {hint}")]
    NoToken {
        /// Where a token would come from.
        hint: &'static str,
    },
}

impl RequestError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            RequestError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What a person can do about it, when there is something specific.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            RequestError::Unreachable { .. } => {
                Some("check that vault is up (`controlplane status`)")
            }
            RequestError::Refused { status: 403, .. } => Some(
                "the token lacks a capability: use a token with the `controlplane-seeder` policy or a root token",
            ),
            RequestError::Refused { status: 503, .. } => {
                Some("vault is sealed or not initialised: run `controlplane up`")
            }
            _ => None,
        }
    }
}

/// What a request answered: the status and the JSON body (`Null` when empty or not
/// JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The body.
    pub body: Value,
}

impl Answer {
    /// 2xx.
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// Vault's own error lines (`{"errors": [...]}`), joined; the status when none.
    pub fn errors(&self) -> String {
        match self.body.get("errors").and_then(Value::as_array) {
            Some(e) if !e.is_empty() => e
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join("; "),
            _ => format!("HTTP {}", self.status),
        }
    }
}

/// Vault answered, and said no (`try_read`, `try_write`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {errors}")]
pub struct Refusal {
    /// The HTTP status (`403`).
    pub status: u16,
    /// Vault's `errors`, joined.
    pub errors: String,
}

/// `/v1/sys/health` as OpenBao and Vault both answer it (read by hand: vaultrs's typed
/// reply does not parse OpenBao's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Initialised.
    pub initialized: bool,
    /// Sealed.
    pub sealed: bool,
    /// A standby node of an HA cluster (answers, forwards writes to the active node).
    pub standby: bool,
    /// Version.
    pub version: String,
}

/// A Vault client at one address, with or without a token.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    addr: String,
    token: Option<Secret>,
    ca: Option<std::path::PathBuf>,
    trips: AtomicU64,
}

impl Client {
    /// A client for `addr` (`http://host:port`), without a token.
    pub fn new(addr: &str) -> Self {
        Self::build(addr, None, None, REQUEST_TIMEOUT)
    }

    /// A client for the server at `ep`: plain HTTP, or HTTPS verified against the
    /// environment's CA when the endpoint has TLS.
    pub fn at(ep: &Endpoint) -> Self {
        Self::build(
            &ep.url(),
            None,
            ep.tls.as_ref().map(|t| t.ca.clone()),
            REQUEST_TIMEOUT,
        )
    }

    /// A client for `addr` using `token`.
    pub fn with_token(addr: &str, token: Secret) -> Self {
        Self::build(addr, Some(token), None, REQUEST_TIMEOUT)
    }

    /// A client for `addr` using `token`, trusting only the CA in `ca` (PEM) when
    /// given (an `https://` address of the environment's own OpenBao).
    pub fn with_token_ca(addr: &str, token: Secret, ca: Option<&std::path::Path>) -> Self {
        Self::build(
            addr,
            Some(token),
            ca.map(ToOwned::to_owned),
            REQUEST_TIMEOUT,
        )
    }

    /// The same client with a per-request timeout of `t`.
    #[must_use]
    pub fn timeout(self, t: Duration) -> Self {
        Self::build(&self.addr, self.token, self.ca, t)
    }

    fn build(
        addr: &str,
        token: Option<Secret>,
        ca: Option<std::path::PathBuf>,
        timeout: Duration,
    ) -> Self {
        let mut b = reqwest::Client::builder().timeout(timeout);
        if addr.starts_with("http://") {
            // Plain HTTP (loopback, a private network) needs no root certificates, and
            // loading the system's (hundreds of PEM files) at every build was most of
            // a no-op `up`'s time: every Vault client, per timeout, built its own.
            b = b.tls_certs_only(Vec::new());
        } else if let Some(path) = &ca {
            // The environment's own OpenBao: its CA only, host name checked.
            let certs = std::fs::read(path)
                .ok()
                .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).ok())
                .unwrap_or_default();
            b = b.tls_certs_only(certs);
        }
        Self {
            http: b.build().expect("an HTTP client builds"),
            addr: addr.trim_end_matches('/').to_owned(),
            token,
            ca,
            trips: AtomicU64::new(0),
        }
    }

    /// `http://host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Whether this client holds a token.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Requests sent so far.
    pub fn round_trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    /// A request builder for `path` (under `/v1/`) with the token, counting the trip.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.trips.fetch_add(1, Ordering::Relaxed);
        let url = format!("{}/v1/{}", self.addr, path.trim_start_matches('/'));
        let mut req = self.http.request(method, url);
        if let Some(t) = &self.token {
            req = req.header("X-Vault-Token", t.expose());
        }
        req
    }

    /// Sends one request and reads the answer, whatever its status. A KV v2 mount
    /// upgrades its storage just after it is created and answers "Upgrading from
    /// non-versioned to versioned data" meanwhile: that one answer is retried, polling,
    /// for up to 15 s.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, RequestError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let a = self.call_once(method.clone(), path, body).await?;
            let upgrading = a.status == StatusCode::BAD_REQUEST
                && a.errors()
                    .contains("Upgrading from non-versioned to versioned data");
            if !upgrading || std::time::Instant::now() >= deadline {
                return Ok(a);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn call_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, RequestError> {
        let mut req = self.request(method.clone(), path);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .await
            .map_err(|source| RequestError::Unreachable {
                method: method.clone(),
                path: path.trim_start_matches('/').to_owned(),
                addr: self.addr.clone(),
                source,
            })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        Ok(Answer { status, body })
    }

    fn refused(method: Method, path: &str, a: &Answer) -> RequestError {
        RequestError::Refused {
            method,
            path: path.trim_start_matches('/').to_owned(),
            status: a.status.as_u16(),
            errors: a.errors(),
        }
    }

    /// GETs `path`: `None` when it does not exist (404).
    pub async fn read(&self, path: &str) -> Result<Option<Value>, RequestError> {
        let a = self.call(Method::GET, path, None).await?;
        match a.status {
            StatusCode::NOT_FOUND => Ok(None),
            _ if a.ok() => Ok(Some(a.body)),
            _ => Err(Self::refused(Method::GET, path, &a)),
        }
    }

    /// LISTs `path`: the keys, empty when there is nothing.
    pub async fn list(&self, path: &str) -> Result<Vec<String>, RequestError> {
        let m = Method::from_bytes(b"LIST").expect("LIST is a valid method");
        let a = self.call(m.clone(), path, None).await?;
        if a.status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if !a.ok() {
            return Err(Self::refused(m, path, &a));
        }
        Ok(a.body["data"]["keys"]
            .as_array()
            .map(|k| {
                k.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// POSTs `body` to `path`; the answer's body.
    pub async fn write(&self, path: &str, body: &Value) -> Result<Value, RequestError> {
        let a = self.call(Method::POST, path, Some(body)).await?;
        if a.ok() {
            Ok(a.body)
        } else {
            Err(Self::refused(Method::POST, path, &a))
        }
    }

    /// PUTs `body` to `path` (the `sys/init` and `sys/unseal` endpoints want PUT).
    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, RequestError> {
        let a = self.call(Method::PUT, path, Some(body)).await?;
        if a.ok() {
            Ok(a.body)
        } else {
            Err(Self::refused(Method::PUT, path, &a))
        }
    }

    /// DELETEs `path` (absent is fine).
    pub async fn delete(&self, path: &str) -> Result<(), RequestError> {
        let a = self.call(Method::DELETE, path, None).await?;
        if a.ok() || a.status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(Self::refused(Method::DELETE, path, &a))
        }
    }

    /// POSTs without failing on a refusal: Vault's answer or its [`Refusal`] (tests
    /// use it to show what a token may not do).
    pub async fn try_write(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<Result<Value, Refusal>, RequestError> {
        let a = self.call(Method::POST, path, Some(body)).await?;
        Ok(if a.ok() {
            Ok(a.body)
        } else {
            Err(Refusal {
                status: a.status.as_u16(),
                errors: a.errors(),
            })
        })
    }

    /// GETs without failing on a refusal.
    pub async fn try_read(&self, path: &str) -> Result<Result<Value, Refusal>, RequestError> {
        let a = self.call(Method::GET, path, None).await?;
        Ok(if a.ok() {
            Ok(a.body)
        } else {
            Err(Refusal {
                status: a.status.as_u16(),
                errors: a.errors(),
            })
        })
    }

    /// Reads `/v1/sys/health`. Any HTTP answer is a health report (429 standby, 501
    /// uninitialised, 503 sealed are asked to answer 200 with the flags set); only no
    /// answer is an error.
    pub async fn health(&self) -> Result<Health, RequestError> {
        let path = "sys/health?standbyok=true&perfstandbyok=true&sealedcode=200&uninitcode=200";
        let a = self.call(Method::GET, path, None).await?;
        let b = &a.body;
        Ok(Health {
            initialized: b["initialized"].as_bool().unwrap_or(false),
            sealed: b["sealed"].as_bool().unwrap_or(true),
            standby: b["standby"].as_bool().unwrap_or(false),
            version: b["version"].as_str().unwrap_or("unknown").to_owned(),
        })
    }

    /// True when this node is initialised, unsealed and active (200 from a plain
    /// `/v1/sys/health`; a standby answers 429).
    pub async fn is_active(&self) -> Result<bool, RequestError> {
        let a = self.call(Method::GET, "sys/health", None).await?;
        Ok(a.status == StatusCode::OK)
    }

    /// The token is a root token (its policies include `root`).
    pub async fn token_is_root(&self) -> Result<bool, RequestError> {
        let me = self
            .read("auth/token/lookup-self")
            .await?
            .unwrap_or(Value::Null);
        Ok(me["data"]["policies"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x == "root")))
    }
}
