//! `controlplane serve`: builds the server's configuration from the flags and runs it
//! (`cp_server::serve`) until SIGINT or SIGTERM. Logs are JSON lines on stderr; the
//! first says where it listens.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use cp_app::{AppError, Exit};

use super::Outcome;
use crate::cli::Global;

/// `serve` flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// Where to listen (port 0 picks a free one; the log says which).
    #[arg(long, default_value = cp_server::config::DEFAULT_LISTEN, env = "CONTROLPLANE_LISTEN")]
    pub(crate) listen: std::net::SocketAddr,
    /// Serve only this environment (repeatable; default: every environment file).
    #[arg(long = "only", value_name = "ENV")]
    pub(crate) only: Vec<String>,
    /// The server's state directory: tokens and the audit log (default
    /// `.controlplane/server` in the project root).
    #[arg(long, env = "CONTROLPLANE_SERVER_DIR")]
    pub(crate) server_dir: Option<PathBuf>,
    /// The URL people reach the console at; `https://...` turns on HSTS and Secure
    /// cookies (TLS is terminated in front of the server).
    #[arg(long, env = "CONTROLPLANE_PUBLIC_URL")]
    pub(crate) public_url: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM; with --tls-key). Without it, serve
    /// listens with HTTPS on its own when the one environment it serves has
    /// `tls.mode` on or required and no --public-url says a proxy terminates TLS: its
    /// certificate is issued from the environment's CA (`serve/tls/` in its state
    /// directory) and renewed like the services'.
    #[arg(long, requires = "tls_key", env = "CONTROLPLANE_TLS_CERT")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert", env = "CONTROLPLANE_TLS_KEY")]
    pub(crate) tls_key: Option<PathBuf>,
    /// An environment's Prometheus, for the firing alerts and the alert timeline
    /// (`ENV=URL`, repeatable); without it, the one the environment runs, if any.
    #[arg(long = "prometheus", value_name = "ENV=URL")]
    pub(crate) prometheus: Vec<String>,
    /// How often the background prober refreshes each environment's status.
    #[arg(long, default_value = "5s")]
    pub(crate) probe_interval: String,
    /// OIDC issuer whose JWTs are accepted (with --oidc-audience).
    #[arg(long, env = "CONTROLPLANE_OIDC_ISSUER", requires = "oidc_audience")]
    pub(crate) oidc_issuer: Option<String>,
    /// The audience the JWTs must carry.
    #[arg(long, env = "CONTROLPLANE_OIDC_AUDIENCE")]
    pub(crate) oidc_audience: Option<String>,
    /// The issuer's JWKS URL (default: from its discovery document).
    #[arg(long, env = "CONTROLPLANE_OIDC_JWKS_URL")]
    pub(crate) oidc_jwks_url: Option<String>,
    /// The JWT claim holding the role.
    #[arg(long, default_value = "controlplane_role")]
    pub(crate) oidc_role_claim: String,
    /// The JWT claim holding the tenant scope.
    #[arg(long, default_value = "controlplane_tenant")]
    pub(crate) oidc_tenant_claim: String,
}

/// The server's state directory for these flags.
pub(crate) fn server_dir(global: &Global, given: Option<&PathBuf>) -> PathBuf {
    let dir = given.cloned().unwrap_or_else(|| {
        cp_runtime::project::Project::new(&global.environments)
            .root
            .join(".controlplane/server")
    });
    std::path::absolute(&dir).unwrap_or(dir)
}

fn environments(global: &Global, only: &[String]) -> Result<Vec<String>, AppError> {
    let project = cp_runtime::project::Project::new(&global.environments);
    let files = project.env_files().map_err(|source| AppError::Project {
        what: format!(
            "cannot read the environments directory {}; pass --environments DIR or run from the project root",
            global.environments.display()
        ),
        source,
    })?;
    let all: Vec<String> = files
        .files
        .keys()
        .filter(|k| k.as_str() != "base")
        .cloned()
        .collect();
    if only.is_empty() {
        return Ok(all);
    }
    for o in only {
        if !all.contains(o) {
            return Err(AppError::Usage(format!(
                "--only {o}: no environment file {o}.yaml; known: {}",
                all.join(", ")
            )));
        }
    }
    Ok(only.to_vec())
}

pub(crate) async fn run(global: &Global, args: ServeArgs) -> Outcome {
    cp_server::init_logging();
    let envs = environments(global, &args.only)?;
    if global.state_dir.is_some() && envs.len() != 1 {
        return Err(AppError::Usage(
            "--state-dir names one environment's state: serve exactly one with --only ENV".into(),
        )
        .into());
    }
    let targets = envs
        .into_iter()
        .map(|env| cp_app::Target {
            env,
            environments: global.environments.clone(),
            sets: global.sets.clone(),
            state_dir: global.state_dir.clone(),
        })
        .collect::<Vec<cp_app::Target>>();
    let https = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(cp_server::tls::ServeTls::Files {
            cert: cert.clone(),
            key: key.clone(),
        }),
        // Plain behind a TLS proxy (--public-url), or with no environment TLS.
        _ if args.public_url.is_some() => None,
        _ => match targets.as_slice() {
            [t] if cp_app::serve_tls::wanted(t) => Some(cp_server::tls::ServeTls::Environment {
                target: t.clone(),
                names: vec![args.listen.ip().to_string()],
            }),
            _ => None,
        },
    };
    let mut config = cp_server::Config::new(targets, server_dir(global, args.server_dir.as_ref()));
    config.https = https;
    config.listen = args.listen;
    config.public_url = args.public_url;
    config.probe_interval = cp_core::units::Duration::parse(&args.probe_interval)
        .map(|d| Duration::from_secs(d.as_secs().max(1)))
        .map_err(|e| AppError::Usage(format!("--probe-interval: {e}; write e.g. 5s")))?;
    for p in &args.prometheus {
        let (env, url) = p
            .split_once('=')
            .ok_or_else(|| AppError::Usage(format!("--prometheus {p}: write ENV=URL")))?;
        config.prometheus.insert(env.to_owned(), url.to_owned());
    }
    if let (Some(issuer), Some(aud)) = (args.oidc_issuer, args.oidc_audience) {
        let mut o = cp_server::OidcConfig::new(issuer, aud);
        o.jwks_url = args.oidc_jwks_url;
        o.role_claim = args.oidc_role_claim;
        o.tenant_claim = args.oidc_tenant_claim;
        config.oidc = Some(o);
    }
    match cp_server::serve(config).await {
        Ok(()) => Ok(Exit::Success),
        Err(e) => {
            tracing::error!(error = %cp_runtime::error::chain(&e), "serve failed");
            Err(anyhow::Error::new(e).into())
        }
    }
}
