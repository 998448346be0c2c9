//! `controlplane validate [--all]`: load and check, report every error at once (an
//! error in `base.yaml` once, with the environments it affects).

use cp_app::views::{PolicyView, ValidateView};
use cp_app::{AppError, Exit};

use super::Outcome;
use crate::cli::Global;
use crate::output;

pub(crate) fn run(global: &Global, all: bool) -> Outcome {
    let project = global.target().project();
    let files = project.env_files().map_err(|source| AppError::Project {
        what: format!(
            "cannot read the environments directory {}; pass --environments DIR or run from the project root",
            project.environments.display()
        ),
        source,
    })?;
    let envs = if all {
        files.environments()
    } else {
        vec![global.env.clone()]
    };
    let loaded = cp_core::load_each(&files, &envs, &global.sets).map_err(AppError::Invalid)?;
    let policy = loaded.iter().flat_map(|l| PolicyView::of(&l.env)).collect();
    output::view(
        global.output,
        &ValidateView {
            ok: true,
            environments: envs,
            policy,
        },
    )?;
    Ok(Exit::Success)
}
