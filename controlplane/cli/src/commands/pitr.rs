//! `controlplane pitr wal-push|wal-fetch`: PostgreSQL's `archive_command` and
//! `restore_command` (point-in-time recovery), run by PostgreSQL as its own user
//! with the archive's place in `pitr.json` and the destination's credentials in its
//! environment. Exit 0 only when the file is archived (or fetched); PostgreSQL
//! retries a failed archive and keeps the segment meanwhile.

use anyhow::Context as _;
use cp_app::Exit;
use cp_backup::pitr::{self, Archive, ArchiveConfig, PitrError};

use super::{Failure, Outcome};
use crate::cli::PitrAction;

pub(crate) fn run(action: PitrAction) -> Outcome {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        match action {
            PitrAction::WalPush { config, path, name } => {
                let cfg = ArchiveConfig::read(&config).map_err(other)?;
                let a = Archive::open(&cfg.destination, &cfg.target, None)
                    .await
                    .map_err(other)?;
                pitr::wal_push(&a, &path, &name).await.map_err(other)?;
                Ok(Exit::Success)
            }
            PitrAction::WalFetch { config, name, path } => {
                let cfg = ArchiveConfig::read(&config).map_err(other)?;
                let a = Archive::open(&cfg.destination, &cfg.target, None)
                    .await
                    .map_err(other)?;
                match pitr::wal_fetch(&a, &name, &path).await {
                    Ok(()) => Ok(Exit::Success),
                    // The normal end of the archive: PostgreSQL asks for the next file
                    // until one is missing. Quietly "not there".
                    Err(PitrError::NotArchived { .. }) => Ok(Exit::Failure),
                    Err(e) => Err(other(e)),
                }
            }
        }
    })
}

fn other(e: PitrError) -> Failure {
    Failure::Other(anyhow::anyhow!(cp_runtime::error::chain(&e)))
}
