//! controlplane's exporters: metrics Prometheus scrapes from servers that serve none
//! of their own. `controlplane exporter nats` serves NATS and JetStream metrics from
//! nats-server's JSON monitoring endpoints ([`nats`]), because prometheus-nats-exporter
//! has no Debian package and the process platform runs only packaged binaries.
//!
//! The HTTP side ([`serve_nats`]) answers `GET /metrics` by asking NATS afresh (each
//! scrape sees the server as it is now, nothing is cached) and `GET /healthz` with
//! `ok` while the exporter itself runs.

pub mod nats;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::Value;

/// How long one request to the NATS monitoring endpoint may take: below
/// Prometheus's scrape timeout even at a one-second scrape interval.
const NATS_TIMEOUT: Duration = Duration::from_millis(800);

/// The OpenMetrics text exposition's content type.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The version every exporter reports as `controlplane_exporter_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why an exporter stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    /// The HTTP server failed.
    #[error("the exporter's HTTP server failed")]
    Serve {
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for {monitor}")]
    Client {
        /// The monitoring URL.
        monitor: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
}

struct Nats {
    http: reqwest::Client,
    monitor: String,
}

impl Nats {
    async fn get(&self, path: &str) -> Option<Value> {
        let url = format!("{}{path}", self.monitor);
        let r = self.http.get(&url).send().await.ok()?;
        if !r.status().is_success() {
            tracing::debug!(%url, status = %r.status(), "NATS monitoring refused");
            return None;
        }
        r.json().await.ok()
    }

    async fn scrape(&self) -> nats::Scrape {
        let (varz, jsz) = tokio::join!(self.get(nats::VARZ_PATH), self.get(nats::JSZ_QUERY));
        nats::Scrape {
            varz: varz.and_then(|v| match v {
                Value::Object(m) => Some(m),
                _ => None,
            }),
            jsz: jsz.and_then(|v| serde_json::from_value(v).ok()),
        }
    }
}

async fn metrics(State(n): State<Arc<Nats>>) -> impl IntoResponse {
    let text = nats::exposition(&n.scrape().await, VERSION);
    ([(CONTENT_TYPE, OPENMETRICS)], text)
}

async fn healthz() -> &'static str {
    "ok"
}

/// Serves NATS metrics on `listener` from the monitoring endpoint `monitor`
/// (`http://127.0.0.1:8222`) until `shutdown` completes.
pub async fn serve_nats(
    listener: tokio::net::TcpListener,
    monitor: &str,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ExporterError> {
    let monitor = monitor.trim_end_matches('/').to_owned();
    let http = reqwest::Client::builder()
        .timeout(NATS_TIMEOUT)
        .build()
        .map_err(|source| ExporterError::Client {
            monitor: monitor.clone(),
            source,
        })?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(Arc::new(Nats { http, monitor }));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ExporterError::Serve { source })
}
