//! `controlplane schema`: the JSON Schema of an environment file.

use std::process::ExitCode;

use anyhow::Result;

pub(crate) fn run() -> Result<ExitCode> {
    print!("{}", cp_core::schema::environment_schema_text());
    Ok(ExitCode::SUCCESS)
}
