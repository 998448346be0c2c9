//! HTTPS for `controlplane serve`: a listener that completes each connection's TLS
//! handshake (in its own task, with a deadline, so a slow or plaintext client holds up
//! no one) before axum sees it. A plaintext request is refused: its handshake fails and
//! the connection is closed. The configuration is rebuilt every minute, so a renewed
//! certificate (issued from the environment's CA at its renewal point, or a new
//! `--tls-cert` file) is served to new connections without a restart.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Where serve's certificate comes from.
#[derive(Debug, Clone)]
pub enum ServeTls {
    /// A certificate chain and key given (`--tls-cert`, `--tls-key`), reread every
    /// minute; TLS 1.2 or later.
    Files {
        /// The certificate chain (PEM).
        cert: PathBuf,
        /// Its key (PEM).
        key: PathBuf,
    },
    /// Issued from the environment's CA and renewed at its renewal point
    /// ([`cp_app::serve_tls`]); the environment's `tls.min_version`.
    Environment {
        /// The environment.
        target: cp_app::Target,
        /// Names besides `localhost` and `127.0.0.1` (the listen address).
        names: Vec<String>,
    },
}

impl ServeTls {
    /// The rustls configuration for now (issuing or renewing the certificate first).
    pub fn config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let chain = |e: &dyn std::error::Error| cp_runtime::error::chain(e);
        match self {
            ServeTls::Files { cert, key } => {
                cp_runtime::tls::server_config(cert, key, cp_core::model::TlsVersion::V1_2)
                    .map_err(|e| TlsError::Config(chain(&e)))
            }
            ServeTls::Environment { target, names } => {
                let c = cp_app::serve_tls::certificate(target, names)
                    .map_err(|e| TlsError::Config(e.chain()))?;
                cp_runtime::tls::server_config(&c.cert, &c.key, c.min_version)
                    .map_err(|e| TlsError::Config(chain(&e)))
            }
        }
    }
}

/// Why serve cannot listen with TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate or key could not be issued, read or used (the causes, chained).
    #[error("{0}")]
    Config(String),
    /// The listening socket has no address.
    #[error("reading the listening address")]
    Addr(#[source] std::io::Error),
}

/// How long a client has to complete its handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);
/// How often the configuration is rebuilt (a renewed certificate picked up).
const REFRESH: Duration = Duration::from_secs(60);

/// Accepted connections, their handshakes done.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves TLS on `tcp` with `tls`; fails when the first configuration cannot be made.
pub fn listen(tcp: TcpListener, tls: ServeTls) -> Result<TlsListener, TlsError> {
    let addr = tcp.local_addr().map_err(TlsError::Addr)?;
    let current = Arc::new(RwLock::new(Arc::new(tls.config()?)));
    let (tx, rx) = mpsc::channel(64);
    let task = tokio::spawn(async move {
        let mut refresh = tokio::time::interval(REFRESH);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        refresh.tick().await;
        loop {
            tokio::select! {
                _ = refresh.tick() => match tls.config() {
                    Ok(c) => *current.write().expect("tls config lock") = Arc::new(c),
                    Err(e) => tracing::warn!(error = %e, "serve's TLS configuration could not be rebuilt; the last one stays"),
                },
                r = tcp.accept() => {
                    let (stream, peer) = match r {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::debug!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let acceptor =
                        TlsAcceptor::from(current.read().expect("tls config lock").clone());
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => {
                                let _ = tx.send((s, peer)).await;
                            }
                            Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    });
                }
            }
        }
    });
    Ok(TlsListener { rx, addr, task })
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}
