//! `controlplane validate [--all]`: load and check, report every error at once.

use anyhow::Context as _;
use cp_app::views::ValidateView;
use cp_app::{AppError, Exit};

use super::Outcome;
use crate::cli::Global;
use crate::output;

pub(crate) fn run(global: &Global, all: bool) -> Outcome {
    let project = global.target().project();
    let envs = if all {
        project
            .env_files()
            .with_context(|| format!("cannot read {}", project.environments.display()))?
            .environments()
    } else {
        vec![global.env.clone()]
    };
    let mut errors = Vec::new();
    let mut ok = Vec::new();
    for env in &envs {
        match project.load(env, &global.sets) {
            Ok(_) => ok.push(env.clone()),
            Err(cp_runtime::project::LoadError::Invalid(d)) => errors.extend(d.0),
            Err(e) => return Err(anyhow::Error::new(e).into()),
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Invalid(cp_core::Diagnostics(errors)).into());
    }
    output::view(
        global.output,
        &ValidateView {
            ok: true,
            environments: ok,
        },
    )?;
    Ok(Exit::Success)
}
