//! `controlplane validate [--all]`: load and check, report every error.

use std::process::ExitCode;

use anyhow::{Context, Result};
use cp_runtime::project::Project;

use crate::cli::{Global, Output};

pub(crate) fn run(global: &Global, project: &Project, all: bool) -> Result<ExitCode> {
    let envs = if all {
        project
            .env_files()
            .with_context(|| format!("cannot read {}", project.environments.display()))?
            .environments()
    } else {
        vec![global.env.clone()]
    };
    let mut all_errors = Vec::new();
    let mut ok = Vec::new();
    for env in &envs {
        match project.load(env, &global.sets) {
            Ok(_) => ok.push(env.clone()),
            Err(cp_runtime::project::LoadError::Invalid(d)) => all_errors.extend(d.0),
            Err(e) => return Err(e.into()),
        }
    }
    if !all_errors.is_empty() {
        super::report(global, &cp_core::Diagnostics(all_errors));
        return Ok(ExitCode::from(super::INVALID));
    }
    match global.output {
        Output::Text => println!("ok: {} valid", ok.join(", ")),
        Output::Json => println!("{}", serde_json::json!({"ok": true, "environments": ok})),
    }
    Ok(ExitCode::SUCCESS)
}
