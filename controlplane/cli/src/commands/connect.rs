//! The connect helpers: `psql`, `redis-cli`, `nats`, `vault-env`. What to run and with
//! which credential is the application layer's (`cp_app::connect`); this runs it,
//! passwords in the child's environment, never on its command line.

use anyhow::Context as _;
use cp_app::connect::{self, Invocation};
use cp_app::{Exit, Session};

use super::Outcome;
use crate::cli::{Global, NatsAction, NatsStreamAction, Output, PgRole};
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

/// `nats pub|sub|stream`, as the admin identity. `sub` prints each message as it
/// arrives (with `-o json`, one object per line) and says on stderr when it listens.
pub(crate) async fn nats(s: &Session, global: &Global, action: NatsAction) -> Outcome {
    match action {
        NatsAction::Pub { subject, message } => {
            let v = cp_app::nats::publish(s, &subject, message.into_bytes()).await?;
            output::view(global.output, &v)?;
        }
        NatsAction::Sub {
            subject,
            count,
            timeout,
        } => {
            let mut sub = cp_app::nats::subscribe(s, &subject).await?;
            eprintln!("listening on {subject} as the admin user");
            let mut seen = 0u64;
            while count.is_none_or(|n| seen < n) {
                let next = cp_app::nats::next_message(&mut sub);
                let m = match &timeout {
                    Some(t) => {
                        match tokio::time::timeout(
                            std::time::Duration::from_secs(t.as_secs()),
                            next,
                        )
                        .await
                        {
                            Ok(m) => m,
                            Err(_) => {
                                eprintln!("no message for {}; stopping", t.as_str());
                                return Ok(if count.is_some() {
                                    Exit::Failure
                                } else {
                                    Exit::Success
                                });
                            }
                        }
                    }
                    None => next.await,
                };
                let Some(m) = m else { break };
                match global.output {
                    Output::Json => {
                        output::out(&(serde_json::to_string(&m).expect("views serialize") + "\n"))?
                    }
                    Output::Text => output::out(&format!("{m}\n"))?,
                }
                seen += 1;
            }
        }
        NatsAction::Stream {
            action: NatsStreamAction::Ls,
        } => output::view(global.output, &cp_app::nats::streams(s).await?)?,
        NatsAction::Stream {
            action: NatsStreamAction::Info { name },
        } => output::view(global.output, &cp_app::nats::stream_info(s, &name).await?)?,
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
