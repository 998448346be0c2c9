//! The connect helpers: `psql`, `redis-cli`, `nats`, `vault-env`. What to run and with
//! which credential is the application layer's (`cp_app::connect`); this runs it,
//! passwords in the child's environment, never on its command line.

use anyhow::Context as _;
use cp_app::connect::{self, Invocation};
use cp_app::{Exit, Session};

use super::Outcome;
use crate::cli::{Global, Output, PgRole};
use crate::output;

fn run(i: Invocation, args: &[String], what: &str) -> Outcome {
    let status = cp_runtime::exec::command(&i.program)
        .args(&i.args)
        .envs(i.env)
        .args(args)
        .status()
        .with_context(|| format!("cannot run {what}"))?;
    Ok(if status.success() {
        Exit::Success
    } else {
        Exit::Failure
    })
}

pub(crate) async fn psql(s: &Session, role: PgRole, args: &[String]) -> Outcome {
    let role = match role {
        PgRole::Admin => connect::PgRole::Admin,
        PgRole::App => connect::PgRole::App,
        PgRole::Readonly => connect::PgRole::Readonly,
        PgRole::Superuser => connect::PgRole::Superuser,
    };
    run(connect::psql(s, role).await?, args, "psql")
}

pub(crate) async fn redis_cli(s: &Session, args: &[String]) -> Outcome {
    run(connect::redis_cli(s).await?, args, "redis-cli")
}

pub(crate) async fn nats_info(s: &Session, global: &Global) -> Outcome {
    let view = cp_app::ops::nats(s).await?;
    match global.output {
        Output::Json => output::json(&view)?,
        Output::Text => output::out(&view.to_string())?,
    }
    Ok(Exit::Success)
}

pub(crate) async fn vault_env(s: &Session) -> Outcome {
    let (text, note) = connect::vault_env(s).await?;
    if let Some(n) = note {
        eprintln!("# {n}");
    }
    output::out(&text)?;
    Ok(Exit::Success)
}
