//! Readiness probes: a service is up only when it answers a real request
//! (`SELECT 1`, `PING`, JetStream account info, Vault health unsealed).
//!
//! Each probe makes one attempt with its own short timeout; [`wait_for`] repeats an
//! attempt until it succeeds or a deadline passes, returning the last error, so no
//! caller ever sleeps a fixed time hoping a server is ready.

use std::future::Future;
use std::time::Duration;

use sqlx::{ConnectOptions, Connection};
use tokio::time::Instant;

use crate::resp;
use crate::secrets::Secret;

/// Where a service answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS: the CA to verify the server against and the name to check; `None`:
    /// plaintext.
    pub tls: Option<crate::tls::ClientTls>,
}

impl Endpoint {
    /// `127.0.0.1:port`.
    pub fn local(port: u16) -> Self {
        Self {
            host: "127.0.0.1".into(),
            port,
            tls: None,
        }
    }

    /// `host:port` without TLS.
    pub fn plain(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            tls: None,
        }
    }

    /// The same endpoint over TLS, verified against `ca` with the host as the name.
    #[must_use]
    pub fn with_tls(mut self, ca: std::path::PathBuf) -> Self {
        self.tls = Some(crate::tls::ClientTls {
            ca,
            server_name: self.host.clone(),
        });
        self
    }

    /// `http` or `https`.
    pub fn http_scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// `http(s)://host:port`.
    pub fn url(&self) -> String {
        format!("{}://{}", self.http_scheme(), self.addr())
    }

    /// libpq's environment for this endpoint's TLS (`psql`, `pg_dump`, `pg_restore`):
    /// `PGSSLMODE=verify-full` and the CA, or nothing in plaintext.
    pub fn libpq_tls_env(&self) -> Vec<(String, String)> {
        match &self.tls {
            Some(t) => vec![
                ("PGSSLMODE".into(), "verify-full".into()),
                ("PGSSLROOTCERT".into(), t.ca.to_string_lossy().into_owned()),
            ],
            None => Vec::new(),
        }
    }

    /// sqlx options for this endpoint: `verify-full` against the CA under TLS.
    pub fn pg_options(&self) -> sqlx::postgres::PgConnectOptions {
        let o = sqlx::postgres::PgConnectOptions::new_without_pgpass()
            .host(&self.host)
            .port(self.port);
        match &self.tls {
            Some(t) => o
                .ssl_mode(sqlx::postgres::PgSslMode::VerifyFull)
                .ssl_root_cert(t.ca.clone()),
            None => o,
        }
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No answer in time.
    #[error("no answer from {addr} within {timeout:?}")]
    Timeout {
        /// Address.
        addr: String,
        /// The per-attempt timeout.
        timeout: Duration,
    },
    /// PostgreSQL refused or failed.
    #[error("postgres at {addr}")]
    Postgres {
        /// Address.
        addr: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
    /// Redis refused or failed.
    #[error("redis at {addr}")]
    Redis {
        /// Address.
        addr: String,
        /// Why.
        #[source]
        source: resp::RespError,
    },
    /// NATS refused or failed.
    #[error("nats at {addr}")]
    Nats {
        /// Address.
        addr: String,
        /// Why.
        #[source]
        source: NatsNotReady,
    },
    /// Vault refused or failed, or is not initialised/unsealed.
    #[error("vault at {addr}")]
    Vault {
        /// Address.
        addr: String,
        /// Why.
        #[source]
        source: VaultNotReady,
    },
    /// An HTTP server (Prometheus, Alertmanager, an exporter) refused or failed.
    #[error("{addr}")]
    Http {
        /// Address.
        addr: String,
        /// Why.
        #[source]
        source: HttpError,
    },
}

/// Why NATS is not ready.
#[derive(Debug, thiserror::Error)]
pub enum NatsNotReady {
    /// Connecting failed (its text says why).
    #[error(transparent)]
    Connect(async_nats::ConnectError),
    /// `$JS.API.INFO` got no answer.
    #[error("JetStream did not answer")]
    Request(#[source] async_nats::RequestError),
    /// The answer is not JSON.
    #[error("JetStream sent a bad reply")]
    Reply(#[source] serde_json::Error),
    /// The answer is an error (JetStream disabled for the account).
    #[error("JetStream is not available: {error}")]
    Unavailable {
        /// The reply's `error` object.
        error: serde_json::Value,
    },
}

/// Why Vault is not ready.
#[derive(Debug, thiserror::Error)]
pub enum VaultNotReady {
    /// No answer (connection refused, timeout).
    #[error("no answer")]
    NoAnswer(#[source] reqwest::Error),
    /// The health request failed otherwise.
    #[error(transparent)]
    Request(crate::vault::RequestError),
    /// Not initialised.
    #[error("not initialised")]
    NotInitialised,
    /// Sealed.
    #[error("sealed")]
    Sealed,
}

/// Why an HTTP probe failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// No HTTP client could be made.
    #[error("cannot make an HTTP client")]
    Client(#[source] reqwest::Error),
    /// No answer.
    #[error("GET {path}: no answer")]
    NoAnswer {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// An answer other than 2xx.
    #[error("GET {path} answered {status}: {body}")]
    Status {
        /// The path.
        path: String,
        /// The status.
        status: reqwest::StatusCode,
        /// What it said.
        body: String,
    },
}

/// What a ready service told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// Server version as it reports it.
    pub version: String,
}

const ATTEMPT: Duration = Duration::from_secs(3);

async fn attempt<T, E>(addr: &str, f: impl Future<Output = Result<T, E>>) -> Result<T, ProbeError>
where
    ProbeError: From<(String, E)>,
{
    match tokio::time::timeout(ATTEMPT, f).await {
        Ok(r) => r.map_err(|e| ProbeError::from((addr.to_owned(), e))),
        Err(_) => Err(ProbeError::Timeout {
            addr: addr.to_owned(),
            timeout: ATTEMPT,
        }),
    }
}

impl From<(String, sqlx::Error)> for ProbeError {
    fn from((addr, source): (String, sqlx::Error)) -> Self {
        ProbeError::Postgres { addr, source }
    }
}

impl From<(String, resp::RespError)> for ProbeError {
    fn from((addr, source): (String, resp::RespError)) -> Self {
        ProbeError::Redis { addr, source }
    }
}

impl From<(String, NatsNotReady)> for ProbeError {
    fn from((addr, source): (String, NatsNotReady)) -> Self {
        ProbeError::Nats { addr, source }
    }
}

/// Connects as `user` and runs `SELECT 1`; returns `server_version`.
pub async fn postgres(
    ep: &Endpoint,
    user: &str,
    password: Option<&Secret>,
    database: &str,
) -> Result<Ready, ProbeError> {
    let addr = ep.addr();
    let mut opts = ep
        .pg_options()
        .username(user)
        .database(database)
        .log_statements(tracing::log::LevelFilter::Trace);
    if let Some(p) = password {
        opts = opts.password(p.expose());
    }
    attempt(&addr, async {
        let mut conn = opts.connect().await?;
        let one: i32 = sqlx::query_scalar("SELECT 1").fetch_one(&mut conn).await?;
        debug_assert_eq!(one, 1);
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut conn)
            .await?;
        let _ = conn.close().await;
        Ok::<_, sqlx::Error>(Ready { version })
    })
    .await
}

/// Authenticates (when given a user or password) and sends `PING`; returns
/// `redis_version` from `INFO server`.
pub async fn redis(
    ep: &Endpoint,
    user: Option<&str>,
    password: Option<&Secret>,
) -> Result<Ready, ProbeError> {
    let addr = ep.addr();
    attempt(&addr, async {
        let mut c = resp::Connection::connect_to(ep).await?;
        match (user, password) {
            (Some(u), Some(p)) => {
                c.command(&["AUTH", u, p.expose()]).await?;
            }
            (None, Some(p)) => {
                c.command(&["AUTH", p.expose()]).await?;
            }
            _ => {}
        }
        let pong = c.command(&["PING"]).await?;
        if pong != resp::Reply::Simple("PONG".into()) {
            return Err(resp::RespError::Protocol(format!("PING answered {pong:?}")));
        }
        let info = c
            .command(&["INFO", "server"])
            .await?
            .text()
            .unwrap_or_default();
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("unknown")
            .trim()
            .to_owned();
        Ok(Ready { version })
    })
    .await
}

/// Connects and asks JetStream for the account info (`$JS.API.INFO`), parsed
/// leniently (async-nats's typed reply does not parse NATS 2.9's); returns the
/// server version.
pub async fn nats(
    ep: &Endpoint,
    user: Option<&str>,
    password: Option<&Secret>,
) -> Result<Ready, ProbeError> {
    let addr = ep.addr();
    attempt(&addr, async {
        let mut opts = nats_tls(
            async_nats::ConnectOptions::new().connection_timeout(ATTEMPT),
            ep,
        );
        if let (Some(u), Some(p)) = (user, password) {
            opts = opts.user_and_password(u.to_owned(), p.expose().to_owned());
        }
        let client = opts.connect(&addr).await.map_err(NatsNotReady::Connect)?;
        let reply = client
            .request("$JS.API.INFO", "".into())
            .await
            .map_err(NatsNotReady::Request)?;
        let info: serde_json::Value =
            serde_json::from_slice(&reply.payload).map_err(NatsNotReady::Reply)?;
        if let Some(err) = info.get("error") {
            return Err(NatsNotReady::Unavailable { error: err.clone() });
        }
        let version = client.server_info().version.clone();
        drop(client);
        Ok::<_, NatsNotReady>(Ready { version })
    })
    .await
}

/// `opts` verifying the server against `ep`'s CA when it has TLS.
pub fn nats_tls(opts: async_nats::ConnectOptions, ep: &Endpoint) -> async_nats::ConnectOptions {
    match &ep.tls {
        Some(t) => opts.require_tls(true).add_root_certificates(t.ca.clone()),
        None => opts,
    }
}

/// Vault's health, as [`crate::vault::Client::health`] reads it.
pub type VaultHealth = crate::vault::Health;

/// Reads Vault's health. Any HTTP answer is a health report (501 uninitialised, 503
/// sealed); only no answer is an error.
pub async fn vault_health(ep: &Endpoint) -> Result<VaultHealth, ProbeError> {
    crate::vault::Client::at(ep)
        .timeout(ATTEMPT)
        .health()
        .await
        .map_err(|e| ProbeError::Vault {
            addr: ep.addr(),
            source: match e {
                crate::vault::RequestError::Unreachable { source, .. } => {
                    VaultNotReady::NoAnswer(source)
                }
                other => VaultNotReady::Request(other),
            },
        })
}

/// Ready means initialised and unsealed.
pub async fn vault(ep: &Endpoint) -> Result<Ready, ProbeError> {
    let h = vault_health(ep).await?;
    let fail = |source: VaultNotReady| ProbeError::Vault {
        addr: ep.addr(),
        source,
    };
    if !h.initialized {
        return Err(fail(VaultNotReady::NotInitialised));
    }
    if h.sealed {
        return Err(fail(VaultNotReady::Sealed));
    }
    Ok(Ready { version: h.version })
}

/// An HTTP server with a `/metrics` page: ready when `GET ready_path` answers 2xx;
/// its version is the `version` label of `build_info` on `/metrics` (`unknown` when
/// it has none).
pub async fn http_metrics(
    ep: &Endpoint,
    ready_path: &str,
    build_info: &str,
) -> Result<Ready, ProbeError> {
    let addr = ep.addr();
    let fail = |source: HttpError| ProbeError::Http {
        addr: addr.clone(),
        source,
    };
    // Plain HTTP: no root certificates to load (a TLS client's build reads them all).
    let http = reqwest::Client::builder()
        .timeout(ATTEMPT)
        .tls_certs_only(Vec::new())
        .build()
        .map_err(|e| fail(HttpError::Client(e)))?;
    get_ok(&http, &addr, ready_path).await.map_err(fail)?;
    let page = get_ok(&http, &addr, "/metrics").await.map_err(fail)?;
    Ok(Ready {
        version: crate::prometheus::build_version(&page, build_info)
            .unwrap_or_else(|| "unknown".into()),
    })
}

/// `GET http://addr/path`: the body of a 2xx answer, else what it said.
async fn get_ok(http: &reqwest::Client, addr: &str, path: &str) -> Result<String, HttpError> {
    let r = http
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .map_err(|source| HttpError::NoAnswer {
            path: path.to_owned(),
            source,
        })?;
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(HttpError::Status {
            path: path.to_owned(),
            status,
            body: body.trim().to_owned(),
        });
    }
    Ok(body)
}

/// Repeats `f` every `poll` until it succeeds or `deadline` passes; returns the last
/// error on timeout. `poll` is a polling interval, not a guess at readiness.
pub async fn wait_for<T, E, F, Fut>(deadline: Instant, poll: Duration, mut f: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() + poll >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(poll).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn probes_fail_fast_on_closed_ports() {
        // Bind then drop to get a port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ep = Endpoint::local(port);
        assert!(redis(&ep, None, None).await.is_err());
        assert!(postgres(&ep, "x", None, "x").await.is_err());
        assert!(nats(&ep, None, None).await.is_err());
        assert!(vault_health(&ep).await.is_err());
        let start = Instant::now();
        let r: Result<(), ProbeError> = wait_for(
            start + Duration::from_millis(200),
            Duration::from_millis(20),
            || redis(&ep, None, None),
        )
        .await
        .map(|_| ());
        assert!(r.is_err());
        assert!(start.elapsed() < Duration::from_secs(2));
    }
}
