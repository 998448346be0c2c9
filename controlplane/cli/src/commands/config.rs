//! `controlplane config`: the resolved environment, secrets redacted.

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
        Output::Text => print!("{}", serde_saphyr::to_string(&env)?),
        Output::Json => println!("{}", serde_json::to_string_pretty(&env)?),
    }
    Ok(ExitCode::SUCCESS)
}
