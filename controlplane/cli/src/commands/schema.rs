//! `controlplane schema [--view NAME]`: the JSON Schema of an environment file, or of
//! a command's JSON output; and `completions SHELL`.

use clap::CommandFactory;
use cp_app::{AppError, Exit};

use super::Outcome;
use crate::output;

pub(crate) fn run(view: Option<&str>) -> Outcome {
    match view {
        None => output::out(&cp_core::schema::environment_schema_text())?,
        Some(name) => {
            let all = cp_app::views::schemas();
            let Some(schema) = all.get(name) else {
                let names: Vec<&str> = all.keys().copied().collect();
                return Err(AppError::Usage(format!(
                    "no view `{name}`; the views are {}",
                    names.join(", ")
                ))
                .into());
            };
            output::json(schema)?;
        }
    }
    Ok(Exit::Success)
}

pub(crate) fn completions(shell: clap_complete::Shell) -> Outcome {
    let mut cmd = crate::cli::Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "controlplane", &mut buf);
    output::out(&String::from_utf8_lossy(&buf))?;
    Ok(Exit::Success)
}
