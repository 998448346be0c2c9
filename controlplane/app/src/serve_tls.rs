//! The certificate `controlplane serve` listens with when it serves HTTPS itself: issued
//! from the environment's CA (`tls.ca: generate`) into `serve/tls/` of its state
//! directory, renewed at `tls.renew_at_percent` like the services' own.

use std::path::PathBuf;

use cp_core::model::{Platform, TlsVersion};
use cp_runtime::state::StateDir;

use crate::error::AppError;
use crate::session::{self, Target};

/// Where serve's certificate is, and the lowest TLS version it accepts.
#[derive(Debug, Clone)]
pub struct ServeCertificate {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its key (PEM, 0600).
    pub key: PathBuf,
    /// `tls.min_version`.
    pub min_version: TlsVersion,
}

/// The environment's TLS is on and controlplane holds its CA (not Kubernetes, where
/// cert-manager issues certificates and an ingress terminates TLS).
pub fn wanted(t: &Target) -> bool {
    session::load(t)
        .is_ok_and(|env| env.tls.enabled() && !matches!(env.platform, Platform::Kubernetes))
}

/// serve's certificate for `names` (besides `localhost` and `127.0.0.1`), issued or
/// renewed when due.
pub fn certificate(t: &Target, names: &[String]) -> Result<ServeCertificate, AppError> {
    let env = session::load(t)?;
    let dir = StateDir::open(t.state_path(), &t.env)?;
    let names = cp_runtime::tls::server_names("controlplane", names);
    let now = chrono::Utc::now().timestamp();
    let e = cp_runtime::tls::ensure_server_cert(
        &dir,
        env.name.as_str(),
        &env.tls,
        "serve",
        &names,
        now,
    )
    .map_err(|e| {
        AppError::Usage(format!(
            "serve's certificate: {}",
            cp_runtime::error::chain(&e)
        ))
    })?;
    if e.issued {
        tracing::info!(serial = %e.info.serial, not_after = e.info.not_after, "issued serve's certificate");
    }
    Ok(ServeCertificate {
        cert: dir.join(std::path::Path::new("serve").join(cp_runtime::tls::SERVER_CERT)),
        key: dir.join(std::path::Path::new("serve").join(cp_runtime::tls::SERVER_KEY)),
        min_version: env.tls.min_version,
    })
}
