//! `controlplane validate [--all]`: load and check, report every error.

use std::process::ExitCode;

use anyhow::Result;
use cp_runtime::project::Project;

use crate::cli::{Global, Output};

pub(crate) fn run(global: &Global, project: &Project, all: bool) -> Result<ExitCode> {
    let files = project
        .env_files()
        .map_err(|source| cp_runtime::project::LoadError::Dir {
            dir: project.environments.clone(),
            source,
        })?;
    let envs = if all {
        files.environments()
    } else {
        vec![global.env.clone()]
    };
    if let Err(d) = cp_core::load_each(&files, &envs, &global.sets) {
        super::report(global, &d);
        return Ok(ExitCode::from(super::INVALID));
    }
    let ok = envs;
    match global.output {
        Output::Text => println!("ok: {} valid", ok.join(", ")),
        Output::Json => println!("{}", serde_json::json!({"ok": true, "environments": ok})),
    }
    Ok(ExitCode::SUCCESS)
}
