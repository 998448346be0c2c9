//! `controlplane alerts`: what fires and what is pending in the environment's
//! Prometheus, as a table or as the `alerts` view in JSON (the console's alerts page
//! shows the same view). Read-only; exit 0 whenever Prometheus answered, whatever
//! fires (a script reads `.firing` from the JSON).

use cp_app::Exit;

use super::Outcome;
use crate::cli::Global;
use crate::output;

pub(crate) async fn run(global: &Global) -> Outcome {
    let (s, _) = super::env::open(global, &crate::cli::Command::Alerts).await?;
    let view = cp_app::ops::alerts(&s).await?;
    output::view(global.output, &view)?;
    Ok(Exit::Success)
}
