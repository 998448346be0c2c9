//! `controlplane config`: the resolved environment, secrets redacted.

use anyhow::Context as _;
use cp_app::Exit;

use super::Outcome;
use crate::cli::{Global, Output};
use crate::output;

pub(crate) fn run(global: &Global) -> Outcome {
    let env = cp_app::session::load(&global.target())?;
    match global.output {
        Output::Text => {
            output::out(
                &serde_saphyr::to_string(&env).context("cannot write the environment as YAML")?,
            )?;
        }
        Output::Json => output::json(&env)?,
    }
    Ok(Exit::Success)
}
