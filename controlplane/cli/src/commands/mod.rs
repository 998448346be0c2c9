//! One module per command; `run` dispatches and turns outcomes into exit codes.

mod bringup;
mod config;
mod lifecycle;
mod render;
mod schema;
mod seed;
mod validate;

use std::process::ExitCode;

use anyhow::Result;
use cp_runtime::project::{LoadError, Project};

use crate::cli::{Cli, Command, Global, Output};

/// Exit code for invalid input (bad environment files, bad flags).
pub(crate) const INVALID: u8 = 2;

pub(crate) fn run(cli: Cli) -> Result<ExitCode> {
    let project = Project::new(&cli.global.environments);
    match cli.command {
        Command::Validate { all } => validate::run(&cli.global, &project, all),
        Command::Render { all, out, check } => render::run(&cli.global, &project, all, out, check),
        Command::Config => config::run(&cli.global, &project),
        Command::Schema => schema::run(),
        other => runtime()?.block_on(bringup::run(&cli.global, &project, other)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Loads the selected environment, or prints why not and returns the exit code.
pub(crate) fn load(
    global: &Global,
    project: &Project,
    env: &str,
) -> Result<Result<cp_core::Environment, ExitCode>> {
    match project.load(env, &global.sets) {
        Ok(loaded) => Ok(Ok(loaded.env)),
        Err(LoadError::Invalid(diags)) => {
            report(global, &diags);
            Ok(Err(ExitCode::from(INVALID)))
        }
        Err(e) => Err(e.into()),
    }
}

/// Prints diagnostics: text on stderr, or JSON on stdout.
pub(crate) fn report(global: &Global, diags: &cp_core::Diagnostics) {
    match global.output {
        Output::Text => eprintln!("{diags}"),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"ok": false, "errors": diags}))
                .expect("diagnostics serialize")
        ),
    }
}
