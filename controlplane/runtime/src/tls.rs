//! The environment's TLS material (`tls.ca: generate`) and the TLS configurations of
//! controlplane's own clients and server.
//!
//! A CA made with rcgen is kept in the state directory (`tls/ca.key`, 0600, and
//! `tls/ca.crt`, 0600 like everything there); each service gets a server certificate
//! issued from it (`<service>/tls/server.crt`, `server.key`, and a copy of `ca.crt`
//! for the server's own peer checks), valid for the environment's `tls.lifetime` and
//! renewed once `tls.renew_at_percent` of it has passed. The certificate's names are
//! where clients reach the service (`127.0.0.1`, `localhost`, the service's name):
//! every client verifies the chain to the environment's CA *and* the host name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cp_core::model::{Tls, TlsVersion};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::state::{StateDir, StateError};

/// The state directory's TLS folder (relative).
pub const DIR: &str = "tls";
/// The CA certificate, relative to the state directory.
pub const CA_CERT: &str = "tls/ca.crt";
/// The CA key, relative to the state directory.
pub const CA_KEY: &str = "tls/ca.key";
/// A service's files, relative to its own directory.
pub const SERVER_CERT: &str = "tls/server.crt";
/// A service's key, relative to its own directory.
pub const SERVER_KEY: &str = "tls/server.key";
/// The CA copy a server reads (NATS routes, OpenBao's client CA).
pub const SERVER_CA: &str = "tls/ca.crt";

/// Why TLS material could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The state directory.
    #[error(transparent)]
    State(#[from] StateError),
    /// rcgen refused.
    #[error("cannot make a certificate")]
    Generate(#[source] rcgen::Error),
    /// A PEM file could not be read.
    #[error("cannot read the PEM file {path}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration refused")]
    Rustls(#[source] rustls::Error),
    /// The address is not a valid TLS server name.
    #[error("`{0}` is not a host name or address a certificate can name")]
    ServerName(String),
}

/// What a certificate says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Serial number, hex.
    pub serial: String,
    /// Unix time it became valid.
    pub not_before: i64,
    /// Unix time it expires.
    pub not_after: i64,
}

impl CertInfo {
    /// Reads the first certificate of a PEM file; `None` when absent or unreadable.
    pub fn read(path: &Path) -> Option<Self> {
        let der = CertificateDer::from_pem_file(path).ok()?;
        Self::of_der(&der)
    }

    /// From a DER certificate (one a server presented).
    pub fn of_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        Some(Self {
            serial: cert.tbs_certificate.raw_serial_as_string().replace(':', ""),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// Unix time at which it is due for renewal under `tls`.
    pub fn renew_at(&self, tls: &Tls) -> i64 {
        let life = (self.not_after - self.not_before).max(0);
        self.not_before + life * i64::from(tls.renew_at_percent) / 100
    }

    /// Due for renewal at `now` (unix seconds), or issued for another lifetime.
    pub fn due(&self, tls: &Tls, now: i64) -> bool {
        let life = self.not_after - self.not_before;
        now >= self.renew_at(tls) || life != tls.lifetime.as_secs() as i64
    }
}

/// The environment's CA: its certificate (PEM) and key.
pub struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// The CA certificate's path in `state` (what `status` prints and clients trust).
pub fn ca_path(state_root: &Path) -> PathBuf {
    state_root.join(CA_CERT)
}

impl Ca {
    /// Loads the kept CA, or makes one (ten years, ECDSA P-256) and keeps it 0600.
    pub fn ensure(state: &StateDir, env_name: &str) -> Result<Self, TlsError> {
        if let (Some(cert), Some(key)) = (state.read(CA_CERT)?, state.read(CA_KEY)?) {
            let cert_pem = String::from_utf8_lossy(&cert).into_owned();
            let key =
                KeyPair::from_pem(&String::from_utf8_lossy(&key)).map_err(TlsError::Generate)?;
            let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(TlsError::Generate)?;
            return Ok(Self { cert_pem, issuer });
        }
        let key = KeyPair::generate().map_err(TlsError::Generate)?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("controlplane {env_name} CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(3650);
        let cert = params.self_signed(&key).map_err(TlsError::Generate)?;
        let cert_pem = cert.pem();
        // Key first: a certificate without its key would be kept and unusable.
        state.write_private(CA_KEY, key.serialize_pem().as_bytes())?;
        state.write_private(CA_CERT, cert_pem.as_bytes())?;
        Ok(Self {
            cert_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a server certificate for `names` (host names or IP addresses), valid
    /// for `lifetime_secs` from now; returns (certificate PEM, key PEM).
    pub fn issue(
        &self,
        common_name: &str,
        names: &[String],
        lifetime_secs: u64,
    ) -> Result<(String, String), TlsError> {
        let key = KeyPair::generate().map_err(TlsError::Generate)?;
        let mut params = CertificateParams::new(names.to_vec()).map_err(TlsError::Generate)?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name.to_owned());
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        // Servers, and NATS/OpenBao nodes that dial each other.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now;
        params.not_after = now + time::Duration::seconds(lifetime_secs as i64);
        let mut serial = [0u8; 16];
        rand::fill(&mut serial);
        serial[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(TlsError::Generate)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// The names a service's certificate carries: where its clients reach it.
pub fn server_names(service: &str, extra: &[String]) -> Vec<String> {
    let mut names = vec![
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        service.to_owned(),
    ];
    names.extend(extra.iter().cloned());
    names.dedup();
    names
}

/// What [`ensure_server_cert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ensured {
    /// The certificate now in place.
    pub info: CertInfo,
    /// A new certificate was issued (first time, due, or a lifetime change).
    pub issued: bool,
}

/// Makes sure the service directory `service_dir` (relative to the state directory)
/// holds a certificate for `names` not yet due for renewal; issues one otherwise.
/// Files are 0600; the caller hands ownership to the server's user when it runs as
/// another one.
pub fn ensure_server_cert(
    state: &StateDir,
    env_name: &str,
    tls: &Tls,
    service_dir: &str,
    names: &[String],
    now: i64,
) -> Result<Ensured, TlsError> {
    let dir = Path::new(service_dir);
    let cert_path = state.join(dir.join(SERVER_CERT));
    if let Some(info) = CertInfo::read(&cert_path)
        && !info.due(tls, now)
        && state.join(dir.join(SERVER_KEY)).exists()
        && state.read(dir.join(SERVER_CA))?.as_deref() == state.read(CA_CERT)?.as_deref()
    {
        return Ok(Ensured {
            info,
            issued: false,
        });
    }
    issue_server_cert(state, env_name, tls, service_dir, names)
}

/// Issues a new certificate for `names` into `service_dir` whatever the one there
/// (`rotate certificates` forcing a renewal); see [`ensure_server_cert`].
pub fn issue_server_cert(
    state: &StateDir,
    env_name: &str,
    tls: &Tls,
    service_dir: &str,
    names: &[String],
) -> Result<Ensured, TlsError> {
    let dir = Path::new(service_dir);
    let cert_path = state.join(dir.join(SERVER_CERT));
    let ca = Ca::ensure(state, env_name)?;
    let (cert, key) = ca.issue(service_dir, names, tls.lifetime.as_secs())?;
    state.write_private(dir.join(SERVER_KEY), key.as_bytes())?;
    state.write_private(dir.join(SERVER_CA), ca.cert_pem().as_bytes())?;
    // The certificate last: what renewal checks is complete once it is there.
    state.write_private(dir.join(SERVER_CERT), cert.as_bytes())?;
    let info = CertInfo::read(&cert_path).ok_or_else(|| TlsError::Pem {
        path: cert_path.clone(),
        source: rustls::pki_types::pem::Error::NoItemsFound,
    })?;
    Ok(Ensured { info, issued: true })
}

/// How a client reaches a TLS listener: the CA it trusts and the name it checks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientTls {
    /// The environment's CA certificate (PEM).
    pub ca: PathBuf,
    /// The name the server's certificate must carry (`127.0.0.1`, a host name).
    pub server_name: String,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn versions(min: TlsVersion) -> &'static [&'static rustls::SupportedProtocolVersion] {
    match min {
        TlsVersion::V1_2 => rustls::ALL_VERSIONS,
        TlsVersion::V1_3 => TLS13_ONLY,
    }
}

/// The root store holding the certificates of `ca` (PEM).
pub fn roots(ca: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let pem_err = |source| TlsError::Pem {
        path: ca.to_owned(),
        source,
    };
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).map_err(pem_err)? {
        roots.add(c.map_err(pem_err)?).map_err(TlsError::Rustls)?;
    }
    Ok(roots)
}

impl ClientTls {
    /// A rustls client configuration trusting only the environment's CA.
    pub fn config(&self) -> Result<rustls::ClientConfig, TlsError> {
        Ok(rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .map_err(TlsError::Rustls)?
            .with_root_certificates(roots(&self.ca)?)
            .with_no_client_auth())
    }

    /// The server name to verify.
    pub fn name(&self) -> Result<ServerName<'static>, TlsError> {
        ServerName::try_from(self.server_name.clone())
            .map_err(|_| TlsError::ServerName(self.server_name.clone()))
    }

    /// The CA certificate's PEM text.
    pub fn ca_pem(&self) -> Result<Vec<u8>, TlsError> {
        std::fs::read(&self.ca).map_err(|e| TlsError::Pem {
            path: self.ca.clone(),
            source: rustls::pki_types::pem::Error::Io(e),
        })
    }
}

/// A rustls server configuration serving `cert`/`key` (PEM files) at `min` or later.
pub fn server_config(
    cert: &Path,
    key: &Path,
    min: TlsVersion,
) -> Result<rustls::ServerConfig, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Pem {
            path: cert.to_owned(),
            source,
        })?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Pem {
        path: key.to_owned(),
        source,
    })?;
    rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions(min))
        .map_err(TlsError::Rustls)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Rustls)
}

/// What a server says before its TLS handshake starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prelude {
    /// Nothing: TLS from the first byte (Redis, OpenBao, HTTPS).
    None,
    /// PostgreSQL's `SSLRequest`, answered `S`.
    Postgres,
    /// NATS's plaintext `INFO` line.
    NatsInfo,
}

/// A completed handshake: the version negotiated and the certificate served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// `TLSv1_3`.
    pub version: String,
    /// The server's certificate.
    pub cert: CertInfo,
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The connection or the handshake (a refused certificate among them).
    #[error("TLS handshake with {addr}")]
    Io {
        /// `host:port`.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server did not answer as its protocol says.
    #[error("{addr} did not start TLS: {detail}")]
    Protocol {
        /// `host:port`.
        addr: String,
        /// What it did.
        detail: String,
    },
}

/// Connects to `ep`, completes a TLS handshake verified against its CA and name, and
/// reports the version and the certificate served: the check `openssl s_client
/// -verify_return_error` makes, and how renewal sees the serial a listener serves.
pub async fn handshake(
    ep: &crate::probe::Endpoint,
    prelude: Prelude,
) -> Result<Handshake, HandshakeError> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
    let addr = ep.addr();
    let io = |source| HandshakeError::Io {
        addr: addr.clone(),
        source,
    };
    let Some(t) = &ep.tls else {
        return Err(HandshakeError::Protocol {
            addr,
            detail: "the endpoint has no TLS".into(),
        });
    };
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.map_err(io)?;
    match prelude {
        Prelude::None => {}
        Prelude::Postgres => {
            tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
                .await
                .map_err(io)?;
            let mut b = [0u8; 1];
            tcp.read_exact(&mut b).await.map_err(io)?;
            if b[0] != b'S' {
                return Err(HandshakeError::Protocol {
                    addr,
                    detail: format!("SSLRequest answered {:?}", b[0] as char),
                });
            }
        }
        Prelude::NatsInfo => {
            let mut r = tokio::io::BufReader::new(&mut tcp);
            let mut line = String::new();
            r.read_line(&mut line).await.map_err(io)?;
            if !line.starts_with("INFO ") {
                return Err(HandshakeError::Protocol {
                    addr,
                    detail: "no INFO line".into(),
                });
            }
        }
    }
    let stream = tokio_rustls::TlsConnector::from(Arc::new(t.config()?))
        .connect(t.name()?, tcp)
        .await
        .map_err(io)?;
    let (_, conn) = stream.get_ref();
    let version = conn
        .protocol_version()
        .map_or_else(|| "none".to_owned(), |v| format!("{v:?}"));
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| CertInfo::of_der(c))
        .ok_or_else(|| HandshakeError::Protocol {
            addr: addr.clone(),
            detail: "no certificate served".into(),
        })?;
    Ok(Handshake { version, cert })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(lifetime: &str) -> Tls {
        Tls {
            mode: cp_core::model::TlsMode::Required,
            min_version: TlsVersion::V1_3,
            lifetime: cp_core::units::Duration::parse(lifetime).unwrap(),
            renew_at_percent: 67,
            ca: cp_core::model::TlsCa::Generate,
            cluster_issuer: None,
            acme_issuers: Default::default(),
        }
    }

    #[test]
    fn the_ca_is_kept_private_and_certificates_renew_at_their_point() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path(), "dev").unwrap();
        let t = tls("90s");
        let names = server_names("redis", &[]);
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let first = ensure_server_cert(&state, "dev", &t, "redis", &names, now).unwrap();
        assert!(first.issued);
        for f in [
            CA_KEY,
            CA_CERT,
            "redis/tls/server.key",
            "redis/tls/server.crt",
        ] {
            let mode = std::fs::metadata(state.join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        assert_eq!(first.info.not_after - first.info.not_before, 90);
        // Before the renewal point: kept. After it: a new serial from the same CA.
        let again = ensure_server_cert(&state, "dev", &t, "redis", &names, now + 10).unwrap();
        assert!(!again.issued);
        assert_eq!(again.info, first.info);
        let ca_before = std::fs::read(state.join(CA_CERT)).unwrap();
        let later = ensure_server_cert(&state, "dev", &t, "redis", &names, now + 61).unwrap();
        assert!(later.issued);
        assert_ne!(later.info.serial, first.info.serial);
        assert_eq!(std::fs::read(state.join(CA_CERT)).unwrap(), ca_before);
        // Clients trust the CA.
        let client = ClientTls {
            ca: ca_path(state.path()),
            server_name: "127.0.0.1".into(),
        };
        client.config().unwrap();
        server_config(
            &state.join("redis/tls/server.crt"),
            &state.join("redis/tls/server.key"),
            TlsVersion::V1_3,
        )
        .unwrap();
    }
}
