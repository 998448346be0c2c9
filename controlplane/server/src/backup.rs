//! Reserved for backups (crate `cp-backup`, merged later). Nothing here runs yet; this
//! module is where the backup integration goes, so it touches one file of the server
//! plus its templates:
//!
//! - [`ROUTES`]: the access-table entries (`crate::routes::all` already chains them),
//!   planned as `GET /api/v1/environments/{env}/backups` (`backups.list`, viewer),
//!   `POST .../backups` (`backup.trigger`, editor: returns a job id),
//!   `GET /api/v1/jobs/{job}/events` (`backup.progress`, viewer, SSE),
//!   `POST .../backups/{backup}/verify` (`backup.verify`, editor),
//!   `POST .../backups/{backup}/restore` (`backup.restore`, admin, with a `confirm`
//!   field naming the backup id), and the console's `POST /console/env/{env}/backups`.
//! - [`VIEWS`]: the view names the OpenAPI components and the console templates will
//!   use (from `cp_app::views` once cp-backup adds them).
//! - [`router`]: the handlers, merged into the server's router.
//! - The schedules (`backup.schedule` of each served environment, taking the backup
//!   lock so a manual run never overlaps) start from `crate::serve` beside the prober.
//! - The metrics `controlplane_backup_*` of ARCHITECTURE.md's metrics contract are
//!   registered in `crate::metrics::Metrics` from the state file backup writes.
//! - The console's overview reserves a "last backup" column (`overview.html`,
//!   `backups` is absent from its context until then).

use axum::Router;

use crate::routes::Route;
use crate::state::AppState;

/// The backup routes (none yet).
pub const ROUTES: &[Route] = &[];

/// The view names reserved for backups.
pub const VIEWS: &[&str] = &["BackupsView", "BackupJobView", "RestoreView"];

/// The backup handlers (none yet).
pub fn router() -> Router<AppState> {
    Router::new()
}
