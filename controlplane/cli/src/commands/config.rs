//! `controlplane config`: the resolved environment, secrets redacted.
//!
//! As text it is an environment file with every default spelled out
//! (`cp_core::resolved`): `config > x.yaml` describes the same environment. As JSON it
//! is the validated model, derived values included.

use anyhow::Context as _;
use cp_app::Exit;

use super::Outcome;
use crate::cli::{Global, Output};
use crate::output;

pub(crate) fn run(global: &Global) -> Outcome {
    let env = cp_app::session::load(&global.target())?;
    match global.output {
        Output::Text => output::out(
            &cp_core::resolved::to_yaml(&env).context("cannot write the environment as YAML")?,
        )?,
        Output::Json => output::json(&env)?,
    }
    Ok(Exit::Success)
}
