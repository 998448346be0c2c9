//! What wraps every response: the request id (the client's `x-request-id` when it is
//! sane, else a new one; echoed in the response, in the access log line and the audit
//! entry), the access log (one JSON line per request), the request metrics, and the
//! security headers.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, HeaderValue, header};
use tracing::Instrument;

use crate::auth::{Actor, RouteTemplate};
use crate::metrics::{RequestLabels, RouteLabels};
use crate::state::AppState;

/// The request id header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

tokio::task_local! {
    /// The id of the request this task is answering (set by [`observe`] around the
    /// whole request), so an error answer can name it.
    static CURRENT: String;
}

/// The id of the request being answered, inside [`observe`].
pub fn current_request_id() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

/// The console's Content-Security-Policy: scripts and styles from this server only,
/// nothing inline, no framing, forms post only here.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn sane(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// The outermost middleware.
pub async fn observe(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let client = crate::auth::client_ip(&req);
    let span = tracing::info_span!("request", request_id = %id);
    let mut res = CURRENT
        .scope(id.clone(), next.run(req))
        .instrument(span.clone())
        .await;
    let elapsed = started.elapsed();
    let route = res
        .extensions()
        .get::<RouteTemplate>()
        .map_or(crate::metrics::UNMATCHED, |r| r.0);
    let method_label = crate::metrics::method_label(&method);
    let status = res.status().as_u16();
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.to_owned(),
            method: method_label.to_owned(),
            status: status.to_string(),
        })
        .inc();
    state
        .metrics
        .latency
        .get_or_create(&RouteLabels {
            route: route.to_owned(),
            method: method_label.to_owned(),
        })
        .observe(elapsed.as_secs_f64());
    let actor = res.extensions().get::<Actor>().map(|a| a.0.clone());
    span.in_scope(|| {
        tracing::info!(
            method = %method,
            path = %path,
            route,
            status,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            client = %client,
            actor = actor.as_deref().unwrap_or("-"),
            "request"
        );
    });
    let h = res.headers_mut();
    h.insert(REQUEST_ID, HeaderValue::from_str(&id).expect("a sane id"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    if !path.starts_with("/static/") {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if state.config.tls() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    res
}
