//! `controlplane serve`: the second front end over the application layer (`cp_app`).
//! A REST API (v1) and a server-rendered web console over the same typed views the
//! CLI prints; bearer tokens stored hashed ([`tokens`]) and optional OIDC JWTs
//! ([`oidc`]); roles viewer < editor < admin and tenant scopes enforced per route in
//! one table ([`routes`]) by one middleware ([`auth`]); every mutation audited,
//! allowed or denied ([`audit`]); a status cache refreshed by a background prober
//! ([`probe`]); `/metrics` ([`metrics`]); an OpenAPI 3.1 document generated from the
//! code ([`openapi`]); request ids, JSON access logs and security headers
//! ([`layers`]). Jobs (backups, drift checks) are the application layer's
//! (`cp_app::jobs`); their routes are in [`jobs`].

pub mod api;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod console;
pub mod error;
pub mod history;
pub mod jobs;
pub mod layers;
pub mod metrics;
pub mod oidc;
pub mod openapi;
pub mod probe;
pub mod ratelimit;
pub mod routes;
pub mod state;
pub mod tls;
pub mod tokens;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;

pub use config::{Config, OidcConfig};
pub use routes::Role;
pub use state::AppState;

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// serve's TLS configuration could not be made.
    #[error("cannot serve HTTPS")]
    Tls(#[source] tls::TlsError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}; is another server using it? pass --listen ADDR")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("the server stopped")]
    Serve(#[source] std::io::Error),
}

/// The whole application: API, console, operational endpoints; authorization on every
/// route, the observing layer around everything.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(api::router())
        .merge(console::router())
        .merge(jobs::router())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .fallback(|| async {
            error::ApiError::not_found("no such route; GET /openapi.json lists the API")
        });
    outer_layers(routes, state)
}

/// What wraps every route: the body limit, a panic turned into a 500 (inside the
/// observing layer, so the answer carries the request id and the log line says
/// which request), and the observing layer (request id, access log, metrics,
/// security headers).
pub fn outer_layers(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .layer(DefaultBodyLimit::max(auth::BODY_LIMIT))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                use axum::response::IntoResponse;
                error::ApiError::internal("a handler panicked").into_response()
            },
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            layers::observe,
        ))
        .with_state(state)
}

/// JSON logs on stderr, one object per line, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
}

/// Serves on `listener` until SIGINT or SIGTERM, with the background prober.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: AppState,
) -> Result<(), ServeError> {
    serve_any(Listening::Plain(listener), state).await
}

/// A plain or a TLS listener.
enum Listening {
    Plain(tokio::net::TcpListener),
    Tls(tls::TlsListener),
}

async fn serve_any(listener: Listening, state: AppState) -> Result<(), ServeError> {
    use axum::serve::{Listener as _, ListenerExt as _};
    use std::future::IntoFuture as _;
    let (addr, scheme) = match &listener {
        Listening::Plain(l) => (l.local_addr().map_err(ServeError::Serve)?, "http"),
        Listening::Tls(l) => (l.local_addr().map_err(ServeError::Serve)?, "https"),
    };
    tracing::info!(addr = %addr, url = %format!("{scheme}://{addr}/console"), environments = ?state.targets.keys().collect::<Vec<_>>(), "listening");
    let prober = tokio::spawn(probe::run(state.clone()));
    let schedules = {
        let (jobs, targets) = (state.jobs.clone(), state.envs.targets().cloned().collect());
        tokio::spawn(async move { jobs.run_schedules(targets).await })
    };
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let stopping = state.shutdown.subscribe();
    let signalled = {
        let state = state.clone();
        async move {
            shutdown().await;
            tracing::info!("stopping: finishing the requests in flight");
            state.shutdown.send_replace(true);
        }
    };
    let served: std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<()>> + Send>> =
        match listener {
            Listening::Plain(l) => Box::pin(
                axum::serve(l, app)
                    .with_graceful_shutdown(signalled)
                    .into_future(),
            ),
            // `tap_io` for the connect info (the client's address) axum gives a tapped
            // listener's `Addr`.
            Listening::Tls(l) => Box::pin(
                axum::serve(l.tap_io(|_| {}), app)
                    .with_graceful_shutdown(signalled)
                    .into_future(),
            ),
        };
    // Requests in flight get a few seconds to finish, then the process goes anyway.
    let deadline = async move {
        let mut stopping = stopping;
        let _ = stopping.wait_for(|s| *s).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    let r = tokio::select! {
        r = served => r.map_err(ServeError::Serve),
        () = deadline => {
            tracing::warn!("requests still in flight after the grace period; stopping anyway");
            Ok(())
        }
    };
    prober.abort();
    schedules.abort();
    tracing::info!("stopped");
    r
}

/// How long requests in flight may take to finish once a shutdown is asked for.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Binds `config.listen` and serves.
pub async fn serve(config: Config) -> Result<(), ServeError> {
    let addr = config.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let listening = match config.https.clone() {
        None => Listening::Plain(listener),
        Some(t) => Listening::Tls(tls::listen(listener, t).map_err(ServeError::Tls)?),
    };
    serve_any(listening, AppState::new(config)).await
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
