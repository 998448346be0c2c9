//! Seeding after bring-up and the `seed` command.

use anyhow::Result;

use super::bringup::Session;
use crate::cli::Global;

/// Runs after a successful `up`.
pub(crate) async fn after_up(_s: &Session, _global: &Global) -> Result<()> {
    Ok(())
}
