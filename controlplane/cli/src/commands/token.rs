//! `controlplane token create|list|revoke`: the server's API tokens, kept hashed in
//! its state directory (`tokens.json`, 0600). `create` prints the token once, on
//! stdout; nothing can show it again.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use cp_app::{AppError, Exit};
use cp_server::Role;
use cp_server::tokens::{TokenError, TokenStore};

use super::{Failure, Outcome};
use crate::cli::{Global, Output};
use crate::output;

/// `token` flags.
#[derive(Debug, Clone, Args)]
pub(crate) struct TokenArgs {
    /// The server's state directory (default `.controlplane/server` in the project root).
    #[arg(long, global = true, env = "CONTROLPLANE_SERVER_DIR")]
    pub(crate) server_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub(crate) action: TokenAction,
}

/// The role flag.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum RoleArg {
    /// Reads everything but the audit log.
    Viewer,
    /// Also creates tenants.
    Editor,
    /// Also deletes tenants and reads the audit log.
    Admin,
}

/// `token` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum TokenAction {
    /// Create a token and print it (once).
    Create {
        /// Its role.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// A unique name (the audit log's actor is `token:<name>`).
        #[arg(long)]
        name: String,
        /// Scope it to one tenant (id or slug) of the environment (`--env`): it sees
        /// only that tenant's routes. The tenant must exist; the token is bound to its
        /// id, and deleting the tenant through the server revokes it.
        #[arg(long)]
        tenant: Option<String>,
        /// Expire after this long (`12h`, `30d`); default: never. At most the
        /// role's `serve.tokens.max_ttl` in the environment (`--env`), when it sets one:
        /// a longer one (or none) is refused.
        #[arg(long)]
        ttl: Option<String>,
    },
    /// List tokens (never the tokens themselves).
    List,
    /// Revoke a token by name.
    Revoke {
        /// Its name.
        name: String,
    },
}

/// The tenant `key` names in the environment, or a usage error (exit 3): a token is
/// scoped only to a tenant that exists.
fn resolve_tenant(global: &Global, key: &str) -> Result<cp_app::views::TenantView, Failure> {
    let rt = super::runtime().map_err(Failure::Other)?;
    let target = global.target();
    let found = rt.block_on(async {
        let s = cp_app::Session::open(&target, cp_app::Mode::ReadOnly, None).await?;
        cp_app::ops::tenant_find(&s, key).await
    })?;
    found.ok_or_else(|| {
        Failure::App(AppError::Usage(format!(
            "no tenant {} in {}: a token can be scoped only to a tenant that exists; `controlplane tenant list` shows them",
            cp_app::ops::shown(key),
            global.env
        )))
    })
}

fn failure(e: TokenError) -> Failure {
    match e {
        TokenError::Exists(_) | TokenError::BadName(_) | TokenError::TooLong { .. } => {
            Failure::App(AppError::Usage(e.to_string()))
        }
        TokenError::NoSuchToken(_) => Failure::App(AppError::NotFound(e.to_string())),
        other => Failure::Other(anyhow::Error::new(other)),
    }
}

pub(crate) fn run(global: &Global, args: TokenArgs) -> Outcome {
    let dir = super::serve::server_dir(global, args.server_dir.as_ref());
    let store = TokenStore::new(&dir);
    match args.action {
        TokenAction::Create {
            role,
            name,
            tenant,
            ttl,
        } => {
            let ttl = ttl
                .map(|t| {
                    match cp_core::units::Duration::parse(&t) {
                        // At most 100 years (units.rs), so the seconds fit chrono's range.
                        Ok(d) if d.as_secs() > 0 => Ok(chrono::Duration::seconds(
                            i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 1000),
                        )),
                        Ok(_) => Err(AppError::Usage(
                            "--ttl: a token that expires at once is no token; write e.g. 12h or 30d"
                                .into(),
                        )),
                        Err(e) => Err(AppError::Usage(format!(
                            "--ttl: {}; write e.g. 12h or 30d",
                            super::shown(&e.to_string())
                        ))),
                    }
                })
                .transpose()?;
            let role = match role {
                RoleArg::Viewer => Role::Viewer,
                RoleArg::Editor => Role::Editor,
                RoleArg::Admin => Role::Admin,
            };
            // The environment's `serve.tokens.max_ttl`: a longer token is refused.
            let env = cp_app::session::load(&global.target())?;
            cp_server::tokens::check_max_ttl(
                role,
                ttl,
                &env.serve.token_max_ttl,
                env.name.as_str(),
            )
            .map_err(failure)?;
            let tenant = tenant.map(|key| resolve_tenant(global, &key)).transpose()?;
            let token = store
                .create(&name, role, tenant.as_ref().map(|t| t.id.clone()), ttl)
                .map_err(failure)?;
            match global.output {
                Output::Json => output::json(&cp_app::views::TokenCreatedView {
                    name,
                    role: role.to_string(),
                    tenant: tenant.as_ref().map(|t| t.id.clone()),
                    token: token.to_string(),
                })?,
                Output::Text => {
                    output::out(&format!("{token}\n"))?;
                    eprintln!(
                        "token `{name}` ({role}{}) created; it is shown only now, keep it safe",
                        tenant
                            .map(|t| format!(", tenant {} ({})", t.slug, t.id))
                            .unwrap_or_default()
                    );
                }
            }
        }
        TokenAction::List => {
            let list = store.list().map_err(failure)?;
            match global.output {
                Output::Json => output::json(&list)?,
                Output::Text => {
                    let mut rows = vec![
                        ["NAME", "ROLE", "TENANT", "CREATED", "EXPIRES"]
                            .map(String::from)
                            .to_vec(),
                    ];
                    for t in &list {
                        rows.push(vec![
                            t.name.clone(),
                            t.role.to_string(),
                            t.tenant.clone().unwrap_or_else(|| "-".into()),
                            t.created_at.clone(),
                            match (&t.expires_at, t.expired) {
                                (None, _) => "never".into(),
                                (Some(e), true) => format!("{e} (expired)"),
                                (Some(e), false) => e.clone(),
                            },
                        ]);
                    }
                    output::out(&cp_app::views::table(&rows))?;
                }
            }
        }
        TokenAction::Revoke { name } => {
            store.revoke(&name).map_err(failure)?;
            eprintln!("token `{name}` revoked");
        }
    }
    Ok(Exit::Success)
}
