//! A minimal Redis (RESP2) client: enough for readiness probes and ACL seeding,
//! without pulling a full client library.

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::probe::Endpoint;

/// A byte stream to the server: TCP, or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A raw stream to `ep` (TLS verified against its CA when it has TLS), for what
/// speaks more than request and reply (`SYNC`).
pub async fn stream(ep: &Endpoint) -> Result<Box<dyn Io>, RespError> {
    let tcp = TcpStream::connect(ep.addr()).await?;
    tcp.set_nodelay(true)?;
    let Some(tls) = &ep.tls else {
        return Ok(Box::new(tcp));
    };
    let config = tls.config().map_err(RespError::Tls)?;
    let name = tls.name().map_err(RespError::Tls)?;
    let s = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await?;
    Ok(Box::new(s))
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`.
    Error(String),
    /// `:1`.
    Int(i64),
    /// `$n` bulk string; `None` for nil.
    Bulk(Option<Vec<u8>>),
    /// `*n` array; `None` for nil.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// A bulk or simple string as text.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// Redis client errors.
#[derive(Debug, thiserror::Error)]
pub enum RespError {
    /// Connection trouble.
    #[error("redis connection failed")]
    Io(#[from] std::io::Error),
    /// The server said no.
    #[error("redis refused `{command}`: {message}")]
    Server {
        /// The command name (never its arguments: they may hold a password).
        command: String,
        /// The error.
        message: String,
    },
    /// Not RESP.
    #[error("redis sent something that is not RESP: {0}")]
    Protocol(String),
    /// The TLS configuration could not be made.
    #[error("redis: TLS")]
    Tls(#[source] crate::tls::TlsError),
}

/// One connection.
pub struct Connection {
    stream: BufReader<Box<dyn Io>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `addr` (`127.0.0.1:6379`) in plaintext.
    pub async fn connect(addr: &str) -> Result<Self, RespError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(Box::new(stream)),
        })
    }

    /// Connects to `ep`: over TLS (tokio-rustls, the server verified against the
    /// environment's CA and its name) when the endpoint says so.
    pub async fn connect_to(ep: &Endpoint) -> Result<Self, RespError> {
        Ok(Self {
            stream: BufReader::new(stream(ep).await?),
        })
    }

    /// Sends a command and reads its reply; a server error becomes [`RespError::Server`].
    pub async fn command(&mut self, args: &[&str]) -> Result<Reply, RespError> {
        let mut buf = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
        self.stream.get_mut().write_all(&buf).await?;
        match self.read().await? {
            Reply::Error(message) => Err(RespError::Server {
                command: args.first().copied().unwrap_or("").to_owned(),
                message,
            }),
            r => Ok(r),
        }
    }

    fn read(
        &mut self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, RespError>> + Send + '_>>
    {
        Box::pin(async move {
            let mut line = String::new();
            if self.stream.read_line(&mut line).await? == 0 {
                return Err(RespError::Protocol("connection closed".into()));
            }
            let line = line.trim_end_matches("\r\n");
            let (kind, rest) = line.split_at(1.min(line.len()));
            let int = |s: &str| {
                s.parse::<i64>()
                    .map_err(|_| RespError::Protocol(line.to_owned()))
            };
            Ok(match kind {
                "+" => Reply::Simple(rest.into()),
                "-" => Reply::Error(rest.into()),
                ":" => Reply::Int(int(rest)?),
                "$" => {
                    let n = int(rest)?;
                    if n < 0 {
                        Reply::Bulk(None)
                    } else {
                        let mut data = vec![0; usize::try_from(n).unwrap_or(0) + 2];
                        self.stream.read_exact(&mut data).await?;
                        data.truncate(data.len() - 2);
                        Reply::Bulk(Some(data))
                    }
                }
                "*" => {
                    let n = int(rest)?;
                    if n < 0 {
                        Reply::Array(None)
                    } else {
                        let mut items = Vec::new();
                        for _ in 0..n {
                            items.push(self.read().await?);
                        }
                        Reply::Array(Some(items))
                    }
                }
                _ => return Err(RespError::Protocol(line.to_owned())),
            })
        })
    }
}
