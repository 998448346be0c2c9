//! `controlplane config`: the resolved environment, secrets redacted.
//!
//! As text it is an environment file with every default spelled out
//! (`cp_core::resolved`): `config > x.yaml` describes the same environment. As JSON it
//! is the validated model, derived values included.

use std::process::ExitCode;

use anyhow::Result;
use cp_runtime::project::Project;

use crate::cli::{Global, Output};

pub(crate) fn run(global: &Global, project: &Project) -> Result<ExitCode> {
    let env = match super::load(global, project, &global.env)? {
        Ok(env) => env,
        Err(code) => return Ok(code),
    };
    match global.output {
        Output::Text => print!("{}", cp_core::resolved::to_yaml(&env)?),
        Output::Json => println!("{}", serde_json::to_string_pretty(&env)?),
    }
    Ok(ExitCode::SUCCESS)
}
