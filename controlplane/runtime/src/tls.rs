//! The environment's TLS material (`tls.ca: generate` or `ref`) and the TLS
//! configurations of controlplane's own clients and server.
//!
//! A CA made with rcgen (`generate`), or the one `tls.ca_cert`/`tls.ca_key` reference
//! (`ref`: resolved, checked and copied in by [`prepare_ca`] at each `up` and renewal),
//! is kept in the state directory (`tls/ca.key`, 0600, and `tls/ca.crt`, 0600 like
//! everything there); each service gets a server certificate
//! issued from it (`<service>/tls/server.crt`, `server.key`, and a copy of `ca.crt`
//! for the server's own peer checks), valid for the environment's `tls.lifetime` and
//! renewed once `tls.renew_at_percent` of it has passed. The certificate's names are
//! where clients reach the service (`127.0.0.1`, `localhost`, the service's name):
//! every client verifies the chain to the environment's CA *and* the host name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cp_core::model::{Tls, TlsCa, TlsVersion};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use crate::secrets::{SecretError, SecretResolver};
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
    /// A `tls.ca: ref` reference could not be resolved.
    #[error("cannot read the CA of `tls.ca: ref` from {setting}")]
    CaRef {
        /// `tls.ca_cert` or `tls.ca_key`.
        setting: &'static str,
        /// Why.
        #[source]
        source: SecretError,
    },
    /// What `tls.ca_cert` or `tls.ca_key` holds cannot sign the services'
    /// certificates.
    #[error("{setting} {problem}; {what_to_do}")]
    CaUnusable {
        /// `tls.ca_cert` or `tls.ca_key`.
        setting: &'static str,
        /// What is wrong with it.
        problem: String,
        /// What to give instead.
        what_to_do: &'static str,
    },
    /// `tls.ca: ref`, and its CA has not been copied into the state directory yet
    /// (a command that does not resolve references, before the first `up`).
    #[error(
        "the CA of `tls.ca: ref` is not in the state directory yet; run `controlplane up`, which reads tls.ca_cert and tls.ca_key"
    )]
    RefNotPrepared,
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
    /// The CA kept in the state directory, if there is one.
    fn kept(state: &StateDir) -> Result<Option<Self>, TlsError> {
        let (Some(cert), Some(key)) = (state.read(CA_CERT)?, state.read(CA_KEY)?) else {
            return Ok(None);
        };
        let cert_pem = String::from_utf8_lossy(&cert).into_owned();
        let key = KeyPair::from_pem(&String::from_utf8_lossy(&key)).map_err(TlsError::Generate)?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(TlsError::Generate)?;
        Ok(Some(Self { cert_pem, issuer }))
    }

    /// The CA that issues `tls`'s certificates: the kept one; for `generate`, made
    /// first when there is none; for `ref`, the copy [`prepare_ca`] made (never a
    /// generated one in its place).
    pub fn for_tls(state: &StateDir, env_name: &str, tls: &Tls) -> Result<Self, TlsError> {
        match tls.ca {
            TlsCa::Ref { .. } => Self::kept(state)?.ok_or(TlsError::RefNotPrepared),
            TlsCa::Generate | TlsCa::VaultPki => Self::ensure(state, env_name),
        }
    }

    /// A CA from PEM text (`tls.ca: ref`), checked: the first certificate of
    /// `cert_pem` is a CA (basicConstraints `CA:TRUE`, `keyCertSign` when it has key
    /// usages), valid now, and `key_pem` is its private key.
    pub fn from_pems(cert_pem: &str, key_pem: &str, now: i64) -> Result<Self, TlsError> {
        const CERT: &str = "tls.ca_cert";
        const KEY: &str = "tls.ca_key";
        let cert_help = "give the PEM certificate of a CA (`-----BEGIN CERTIFICATE-----`, basicConstraints CA:TRUE)";
        let unusable = |setting, problem: String, what_to_do| TlsError::CaUnusable {
            setting,
            problem,
            what_to_do,
        };
        let der = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .next()
            .and_then(Result::ok)
            .ok_or_else(|| unusable(CERT, "holds no PEM certificate".into(), cert_help))?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| {
            unusable(
                CERT,
                format!("holds a certificate that cannot be parsed ({e})"),
                cert_help,
            )
        })?;
        let subject = cert.subject().to_string();
        let is_ca = cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|b| b.value.ca);
        if !is_ca {
            return Err(unusable(
                CERT,
                format!(
                    "holds `{subject}`, which is not a CA certificate (no basicConstraints CA:TRUE)"
                ),
                cert_help,
            ));
        }
        if let Ok(Some(ku)) = cert.key_usage()
            && !ku.value.key_cert_sign()
        {
            return Err(unusable(
                CERT,
                format!(
                    "holds the CA `{subject}`, whose key usage does not allow signing certificates (no keyCertSign)"
                ),
                cert_help,
            ));
        }
        let not_after = cert.validity().not_after.timestamp();
        if not_after <= now || cert.validity().not_before.timestamp() > now {
            return Err(unusable(
                CERT,
                format!(
                    "holds the CA `{subject}`, which is not valid now (valid from {} to {})",
                    cert.validity().not_before,
                    cert.validity().not_after
                ),
                "renew the CA certificate and update the reference",
            ));
        }
        let key = KeyPair::from_pem(key_pem).map_err(|_| {
            unusable(
                KEY,
                "holds no private key controlplane can sign with".into(),
                "give the CA's unencrypted PEM private key (PKCS#8, SEC1 or PKCS#1; ECDSA P-256/P-384, Ed25519 or RSA)",
            )
        })?;
        if key.subject_public_key_info() != cert.tbs_certificate.subject_pki.raw {
            return Err(unusable(
                KEY,
                format!(
                    "is not the key of the CA `{subject}` in tls.ca_cert (their public keys differ)"
                ),
                "give the key the CA certificate was made for, or the certificate of this key",
            ));
        }
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(TlsError::Generate)?;
        Ok(Self {
            cert_pem: cert_pem.to_owned(),
            issuer,
        })
    }

    /// Loads the kept CA, or makes one (ten years, ECDSA P-256) and keeps it 0600.
    pub fn ensure(state: &StateDir, env_name: &str) -> Result<Self, TlsError> {
        if let Some(ca) = Self::kept(state)? {
            return Ok(ca);
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

/// Makes the CA of `tls` ready in the state directory before certificates are issued:
/// for `ref`, resolves `tls.ca_cert` and `tls.ca_key`, checks them
/// ([`Ca::from_pems`]) and keeps a copy (0600; the key first) when it differs from the
/// one kept, so a changed reference takes effect at the next `up` or renewal and
/// every certificate of the old CA is then reissued ([`ensure_server_cert`] compares
/// each service's CA copy). For `generate`, loads or makes the CA. Returns whether
/// the kept CA changed.
pub async fn prepare_ca(
    state: &StateDir,
    env_name: &str,
    tls: &Tls,
    secrets: &SecretResolver,
) -> Result<bool, TlsError> {
    let TlsCa::Ref { cert, key } = &tls.ca else {
        let had = state.read(CA_CERT)?.is_some();
        Ca::ensure(state, env_name)?;
        return Ok(!had);
    };
    let resolve = async |setting: &'static str, reference| {
        secrets
            .resolve(setting, reference)
            .await
            .map_err(|source| TlsError::CaRef { setting, source })
    };
    let cert_pem = resolve("tls.ca_cert", cert).await?;
    let key_pem = resolve("tls.ca_key", key).await?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Ca::from_pems(cert_pem.expose(), key_pem.expose(), now)?;
    let cert_bytes = cert_pem.expose().as_bytes();
    let key_bytes = key_pem.expose().as_bytes();
    if state.read(CA_CERT)?.as_deref() == Some(cert_bytes)
        && state.read(CA_KEY)?.as_deref() == Some(key_bytes)
    {
        return Ok(false);
    }
    state.write_private(CA_KEY, key_bytes)?;
    state.write_private(CA_CERT, cert_bytes)?;
    Ok(true)
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
    let ca = Ca::for_tls(state, env_name, tls)?;
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

    /// A CA (or, with `ca: false`, a leaf) made with rcgen: (certificate PEM, key PEM).
    fn made(ca: bool, not_after_days: i64) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["corp".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "corp test CA");
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(2);
        params.not_after = now + time::Duration::days(not_after_days);
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    #[tokio::test]
    async fn a_referenced_ca_is_checked_kept_private_and_issues_the_certificates() {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let (cert, key) = made(true, 30);
        let message = |r: Result<Ca, TlsError>| r.map(|_| ()).unwrap_err().to_string();
        // Not a CA; expired; someone else's key; not PEM at all.
        let (leaf, leaf_key) = made(false, 30);
        let e = message(Ca::from_pems(&leaf, &leaf_key, now));
        assert!(
            e.starts_with("tls.ca_cert holds `CN=corp test CA`, which is not a CA certificate"),
            "{e}"
        );
        let (old, old_key) = made(true, -1);
        let e = message(Ca::from_pems(&old, &old_key, now));
        assert!(e.contains("which is not valid now"), "{e}");
        let (_, other_key) = made(true, 30);
        let e = message(Ca::from_pems(&cert, &other_key, now));
        assert!(
            e.starts_with("tls.ca_key is not the key of the CA `CN=corp test CA`"),
            "{e}"
        );
        let e = message(Ca::from_pems(&key, &cert, now));
        assert!(e.starts_with("tls.ca_cert holds no PEM certificate"), "{e}");
        let e = message(Ca::from_pems(&cert, "not a key", now));
        assert!(e.starts_with("tls.ca_key holds no private key"), "{e}");
        // The error never carries the key.
        assert!(!e.contains("PRIVATE"), "{e}");

        // Resolved from references, kept 0600 and used for issuance.
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path(), "dev").unwrap();
        let mut t = tls("1h");
        let var = |n: &str| cp_core::units::SecretRef::Env { name: n.into() };
        t.ca = TlsCa::Ref {
            cert: var("CP_TLS_UNIT_TEST_SURELY_UNSET_CA_CERT"),
            key: var("CP_TLS_UNIT_TEST_SURELY_UNSET_CA_KEY"),
        };
        // Before the CA is prepared nothing is issued, and nothing is generated.
        let names = server_names("redis", &[]);
        let e = ensure_server_cert(&state, "dev", &t, "redis", &names, now).unwrap_err();
        assert!(matches!(e, TlsError::RefNotPrepared), "{e}");
        assert!(!state.join(CA_CERT).exists());
        let secrets = SecretResolver::new(Some(state.clone()));
        let e = prepare_ca(&state, "dev", &t, &secrets).await.unwrap_err();
        assert!(
            crate::error::chain(&e).contains("export CP_TLS_UNIT_TEST_SURELY_UNSET_CA_CERT"),
            "{}",
            crate::error::chain(&e)
        );
        // (Validation accepts only vault:// and env://; plain values stand in here.)
        t.ca = TlsCa::Ref {
            cert: cp_core::units::SecretRef::Plain(cert.clone()),
            key: cp_core::units::SecretRef::Plain(key.clone()),
        };
        assert!(prepare_ca(&state, "dev", &t, &secrets).await.unwrap());
        assert!(!prepare_ca(&state, "dev", &t, &secrets).await.unwrap());
        for f in [CA_CERT, CA_KEY] {
            let mode = std::fs::metadata(state.join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        assert_eq!(std::fs::read_to_string(state.join(CA_CERT)).unwrap(), cert);
        ensure_server_cert(&state, "dev", &t, "redis", &names, now).unwrap();
        // The served certificate chains to the referenced CA and names the service.
        let ca_file = tmp.path().join("corp.crt");
        std::fs::write(&ca_file, &cert).unwrap();
        use rustls::client::danger::ServerCertVerifier;
        let served = CertificateDer::from_pem_file(state.join("redis/tls/server.crt")).unwrap();
        let roots = roots(&ca_file).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .unwrap();
        verifier
            .verify_server_cert(
                &served,
                &[],
                &ServerName::try_from("redis").unwrap(),
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap();
    }
}
