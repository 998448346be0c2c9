//! Point-in-time recovery of PostgreSQL over an open session: base backups
//! (`backup --base`), the recoverable window (`backup list`), and `restore
//! --to-time/--to-lsn/--to-latest`, which on the process platform recovers into a new
//! data directory, swaps it in only once PostgreSQL has promoted, and starts it again,
//! and on Kubernetes applies a new CloudNativePG Cluster recovering from the Barman
//! Cloud archive beside the running one.

use chrono::{DateTime, Utc};
use cp_backup::pitr::{self, Archive, BaseBackup, PitrError, RecoveryTarget, Target, Window};
use cp_backup::run::{self, BackupError};
use cp_core::model::Pitr;
use cp_core::names::CoreKind;
use serde::Serialize;

use crate::driver::AnyDriver;
use crate::error::AppError;
use crate::session::Session;

pub(crate) fn failed(e: PitrError) -> AppError {
    AppError::Usage(cp_runtime::error::chain(&e))
}

fn settings(s: &Session) -> Result<&Pitr, AppError> {
    run::settings(&s.env)?.pitr.as_ref().ok_or_else(|| {
        AppError::Usage(format!(
            "point-in-time recovery is off in `{}`: set `backup.pitr.enabled: true`",
            s.env.name
        ))
    })
}

/// The environment's archive, open with its destination's credentials.
pub async fn archive(s: &Session) -> Result<(Archive, &Pitr), AppError> {
    let p = settings(s)?;
    let b = run::settings(&s.env)?;
    let dest = b
        .destinations
        .get(&p.destination)
        .ok_or_else(|| AppError::Usage(format!("no destination `{}`", p.destination)))?;
    let target = Target::of(dest, s.env.name.as_str(), &s.project.root);
    let a = Archive::open_with(&p.destination, &target, Some(dest), &s.secrets)
        .await
        .map_err(failed)?;
    Ok((a, p))
}

/// `backup --base`: one base backup (holding the backup lock), then the recovery
/// window's retention.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BaseBackupView {
    /// The environment.
    pub environment: String,
    /// The base backup.
    pub base: BaseBackup,
    /// Seconds it took.
    pub seconds: f64,
    /// What retention removed.
    pub pruned: pitr::PitrPrune,
}

impl std::fmt::Display for BaseBackupView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "base backup {}: {} bytes ({} stored) in {:.1}s, WAL from {} ({})",
            self.base.id,
            self.base.artifact.size,
            self.base.artifact.stored_size,
            self.seconds,
            self.base.start_wal,
            self.base.start_lsn
        )?;
        if !self.pruned.bases.is_empty() || self.pruned.segments > 0 {
            writeln!(
                f,
                "recovery window: removed {} base backup(s) and {} WAL segment(s)",
                self.pruned.bases.len(),
                self.pruned.segments
            )?;
        }
        Ok(())
    }
}

/// Takes a base backup (holding the backup lock).
pub async fn base_backup(s: &Session) -> Result<BaseBackupView, AppError> {
    let _lock = run::lock(&s.state, "backup --base")?;
    base_backup_locked(s).await
}

/// `backup --base` on Kubernetes: ours would write our own format into the Barman
/// Cloud archive the operator reads; there the operator's plugin takes them.
pub fn kube_base_backup_refused(env: &cp_core::Environment) -> AppError {
    AppError::Usage(format!(
        "on Kubernetes, base backups are CloudNativePG's: the ScheduledBackup `postgres-base` takes them on backup.pitr.base_schedule; for one now: `kubectl cnpg backup -n {} postgres --method=plugin --plugin-name={}`",
        env.namespace,
        cp_core::render::context::BARMAN_CLOUD_PLUGIN
    ))
}

/// Takes a base backup, then applies the recovery window's retention; the caller
/// holds the backup lock (the base-backup job takes it before it starts).
pub async fn base_backup_locked(s: &Session) -> Result<BaseBackupView, AppError> {
    if matches!(s.driver, AnyDriver::Kube(_)) {
        return Err(kube_base_backup_refused(&s.env));
    }
    let (archive, p) = archive(s).await?;
    let b = run::settings(&s.env)?;
    let codec = run::codec(b)?;
    let access = s.access().await?;
    let pg = access
        .postgres
        .as_ref()
        .ok_or_else(|| AppError::Usage("PostgreSQL is disabled in this environment".into()))?;
    let major = s
        .env
        .services
        .postgres
        .as_ref()
        .map(|p| p.common.version.split('.').next().unwrap_or("").to_owned())
        .unwrap_or_default();
    let started = std::time::Instant::now();
    let base = pitr::base_backup(
        &archive,
        &pitr::BaseSource {
            endpoint: &pg.endpoint,
            password: &pg.superuser_password,
            major: &major,
        },
        &codec,
        Utc::now(),
    )
    .await
    .map_err(failed)?;
    let seconds = started.elapsed().as_secs_f64();
    let pruned = pitr::prune(
        &archive,
        std::time::Duration::from_secs(p.recovery_window.as_secs()),
        Utc::now(),
    )
    .await
    .map_err(failed)?;
    Ok(BaseBackupView {
        environment: s.env.name.to_string(),
        base,
        seconds,
        pruned,
    })
}

/// The recoverable window and the archive's lag: `backup list`'s PITR part, the
/// API's backups endpoint and the console's backups page (one view).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WindowView {
    /// The destination.
    pub destination: String,
    /// The window (`earliest`, `latest` restorable time); `None` before the first
    /// base backup (or with no WAL after it).
    pub window: Option<Window>,
    /// Base backups, oldest first.
    pub bases: Vec<String>,
    /// Segments in the archive.
    pub segments: usize,
    /// When the newest segment reached the archive.
    pub last_archived: Option<DateTime<Utc>>,
    /// Seconds since the newest segment reached the archive (now - last archived).
    pub archive_lag_seconds: Option<i64>,
    /// Why the archive could not be read (then nothing else is known).
    pub error: Option<String>,
}

/// [`WindowView`] as people read it (the console): the window's ends to the second,
/// its span and the archive's lag with the CLI's units.
#[derive(Debug, Clone, Serialize)]
pub struct WindowShown {
    /// Earliest restorable time (RFC 3339, seconds).
    pub earliest: Option<String>,
    /// Latest restorable time.
    pub latest: Option<String>,
    /// `latest - earliest`, e.g. `2h`.
    pub span: Option<String>,
    /// The archive's lag, e.g. `12s`.
    pub lag: Option<String>,
    /// When the newest segment reached the archive.
    pub last_archived: Option<String>,
}

impl WindowView {
    /// The window as the console shows it.
    pub fn shown(&self) -> WindowShown {
        use crate::views::{rfc3339, units::uptime};
        let w = self.window.as_ref();
        WindowShown {
            earliest: w.map(|w| rfc3339(w.earliest)),
            latest: w.map(|w| rfc3339(w.latest)),
            span: w.map(|w| uptime(u64::try_from((w.latest - w.earliest).num_seconds()).ok())),
            lag: self
                .archive_lag_seconds
                .map(|l| uptime(u64::try_from(l).ok())),
            last_archived: self.last_archived.map(rfc3339),
        }
    }
}

impl std::fmt::Display for WindowView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(e) = &self.error {
            return writeln!(
                f,
                "point-in-time recovery ({}): the archive cannot be read: {e}",
                self.destination
            );
        }
        match &self.window {
            Some(w) => {
                write!(
                    f,
                    "point-in-time recovery ({}): restorable from {} to {} (timeline {})",
                    self.destination,
                    crate::views::rfc3339(w.earliest),
                    crate::views::rfc3339(w.latest),
                    w.timeline
                )?;
                if let Some(lag) = self.archive_lag_seconds {
                    write!(f, ", archive lag {lag}s")?;
                }
                writeln!(f)?;
                if let Some(gap) = &w.gap {
                    writeln!(
                        f,
                        "  WAL segment {gap} is missing: the window ends before it"
                    )?;
                }
            }
            None => writeln!(
                f,
                "point-in-time recovery ({}): nothing restorable yet (no base backup with its WAL); run `controlplane backup --base`",
                self.destination
            )?,
        }
        writeln!(
            f,
            "  {} base backup(s), {} WAL segment(s)",
            self.bases.len(),
            self.segments
        )
    }
}

/// The window of `s`'s environment, `None` when PITR is off; an unreadable archive is
/// reported in the view, not as an error (the logical sets still list).
pub async fn window(s: &Session) -> Option<WindowView> {
    let p = settings(s).ok()?;
    let destination = p.destination.clone();
    let read = async {
        let (archive, _) = archive(s).await?;
        pitr::catalog(&archive).await.map_err(failed)
    };
    Some(match read.await {
        Ok(cat) => window_of(destination, &cat, Utc::now()),
        Err(e) => WindowView {
            destination,
            window: None,
            bases: Vec::new(),
            segments: 0,
            last_archived: None,
            archive_lag_seconds: None,
            error: Some(e.chain()),
        },
    })
}

/// Reads the archive and PostgreSQL's archiver statistics and records them for the
/// metrics (`backup/pitr.json`); returns the window's view. `None` when PITR is off.
pub async fn watch(s: &Session) -> Option<WindowView> {
    let view = window(s).await?;
    let stats = match s.access().await {
        Ok(a) => match &a.postgres {
            Some(pg) => pitr::archiver_stats(&pg.endpoint, &pg.superuser_password)
                .await
                .ok(),
            None => None,
        },
        Err(_) => None,
    };
    let ts = |t: DateTime<Utc>| t.timestamp();
    let m = cp_backup::metrics::PitrMetrics {
        checked_timestamp_seconds: Utc::now().timestamp(),
        last_archived_timestamp_seconds: view
            .last_archived
            .or(stats.as_ref().and_then(|s| s.last_archived))
            .map(ts),
        archive_failures_total: stats.as_ref().map(|s| s.failed),
        archive_pending_segments: stats.as_ref().map(|s| s.pending),
        window_start_timestamp_seconds: view.window.as_ref().map(|w| ts(w.earliest)),
        window_end_timestamp_seconds: view.window.as_ref().map(|w| ts(w.latest)),
    };
    if s.state.path().exists()
        && let Err(e) = m.write(&s.state)
    {
        tracing::warn!(env = %s.env.name, error = %cp_runtime::error::chain(&e), "the PITR status could not be recorded");
    }
    Some(view)
}

/// The view of catalog `cat` at `now`.
pub fn window_of(destination: String, cat: &pitr::Catalog, now: DateTime<Utc>) -> WindowView {
    let newest = cat.segments.values().max().copied();
    WindowView {
        destination,
        window: cat.window(),
        bases: cat.bases.iter().map(|b| b.id.clone()).collect(),
        segments: cat.segments.len(),
        last_archived: newest,
        archive_lag_seconds: newest.map(|t| (now - t).num_seconds().max(0)),
        error: None,
    }
}

/// Parses `--to-time` (RFC 3339, or `YYYY-MM-DD HH:MM:SS[.fff]` as UTC).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, AppError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, f) {
            return Ok(t.and_utc());
        }
    }
    Err(AppError::Usage(format!(
        "`{text}` is not a time: use RFC 3339, e.g. 2026-12-07T17:30:00Z"
    )))
}

/// What a PITR restore would replace (the confirmation's lines), after checking
/// the target is inside the window (refusing names why).
pub async fn restore_preview(
    s: &Session,
    target: &RecoveryTarget,
) -> Result<Vec<String>, AppError> {
    if matches!(s.driver, AnyDriver::Kube(_)) {
        let cluster = kube_recovery_cluster(s, target)?;
        let name = cluster["metadata"]["name"].as_str().unwrap_or_default();
        // Nothing is deleted, but a whole new cluster (instances, volumes) is created:
        // it is confirmed like any restore.
        return Ok(vec![format!(
            "nothing: a new CloudNativePG Cluster `{name}` ({} instance(s)) is created in namespace {}, recovered from the archive to {target}; the Cluster `postgres` keeps serving until you point clients at the new one",
            cluster["spec"]["instances"], s.env.namespace
        )]);
    }
    let (archive, _) = archive(s).await?;
    let cat = pitr::catalog(&archive).await.map_err(failed)?;
    let base = pitr::choose(&cat, target).map_err(failed)?.base;
    let mut out = vec![format!(
        "postgres: every database of the running server (replaced by its state at {target}, replayed from base backup {})",
        base.id
    )];
    if let Ok(a) = s.access().await
        && let Some(pg) = &a.postgres
        && let Ok(tables) = cp_backup::postgres::holdings(pg).await
    {
        out.extend(
            tables
                .into_iter()
                .map(|t| format!("postgres: database {} table {t}", pg.database)),
        );
    }
    Ok(out)
}

/// A PITR restore's result.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PitrRestoreView {
    /// The environment.
    pub environment: String,
    /// The target.
    pub target: RecoveryTarget,
    /// The base backup replayed from.
    pub base: String,
    /// PostgreSQL's own lines about where recovery stopped.
    pub recovery: Vec<String>,
    /// Where the replaced data directory was kept.
    pub replaced_kept_at: String,
    /// Seconds it took.
    pub seconds: f64,
}

impl std::fmt::Display for PitrRestoreView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "restored postgres of {} to {} from base backup {} in {:.1}s",
            self.environment, self.target, self.base, self.seconds
        )?;
        for l in &self.recovery {
            writeln!(f, "  {}", l.trim())?;
        }
        writeln!(
            f,
            "the replaced data directory is kept at {} (remove it when done)",
            self.replaced_kept_at
        )
    }
}

/// `restore --to-time/--to-lsn/--to-latest`: the caller confirmed and holds the
/// environment lock (a mutating session). Process platform.
pub async fn restore(s: &Session, target: &RecoveryTarget) -> Result<PitrRestoreView, AppError> {
    let _lock = run::lock(&s.state, "restore")?;
    restore_locked(s, target).await
}

/// [`restore`], the caller holding the backup lock.
pub(crate) async fn restore_locked(
    s: &Session,
    target: &RecoveryTarget,
) -> Result<PitrRestoreView, AppError> {
    let started = std::time::Instant::now();
    if let AnyDriver::Kube(driver) = &s.driver {
        let cluster = kube_recovery_cluster(s, target)?;
        driver.apply_object(&s.env, &cluster).await?;
        let name = cluster["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        return Ok(PitrRestoreView {
            environment: s.env.name.to_string(),
            target: target.clone(),
            base: "the newest before the target, chosen by CloudNativePG".into(),
            recovery: vec![
                format!(
                    "created Cluster {name}: CloudNativePG restores the base backup, replays WAL to the target and promotes it"
                ),
                format!(
                    "follow it with `kubectl -n {} get cluster {name}`; once healthy, clients reach it at {name}-rw",
                    s.env.namespace
                ),
            ],
            replaced_kept_at: "nothing replaced: the Cluster `postgres` is untouched".into(),
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    let AnyDriver::Process(driver) = &s.driver else {
        return Err(AppError::Usage(format!(
            "restore to a point in time runs on the process platform here; on {} it is not built yet",
            s.driver.name()
        )));
    };
    let (archive, _) = archive(s).await?;
    let cat = pitr::catalog(&archive).await.map_err(failed)?;
    let chosen = pitr::choose(&cat, target).map_err(failed)?;
    let base = &chosen.base;
    let b = run::settings(&s.env)?;
    let identity = run::identity(b, &s.secrets).await?;
    let id = base.backup_id().map_err(failed)?;
    let mut reader = pitr::open_base(&archive, &id, base, identity.as_ref())
        .await
        .map_err(failed)?;
    let goal = match target {
        RecoveryTarget::Time(t) => {
            cp_driver_process::pitr::Goal::Time(t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string())
        }
        RecoveryTarget::Lsn(l) => cp_driver_process::pitr::Goal::Lsn(l.clone()),
        RecoveryTarget::Latest => cp_driver_process::pitr::Goal::Latest,
    };
    let vars = credentials(s).await?;
    let recovered = driver
        .pitr_recover(
            &s.env,
            &mut reader,
            &goal,
            chosen.timeline,
            vars,
            std::time::Duration::from_secs(600),
        )
        .await?;
    let aside = driver.pitr_swap(&recovered).await?;
    let svc = cp_core::names::ServiceName::core(CoreKind::Postgres);
    cp_drivers::engine::up(
        driver,
        s.cx(),
        &[svc],
        std::time::Duration::from_secs(120),
        &cp_drivers::engine::Quiet,
    )
    .await?;
    // The check: the restored server answers as the platform's roles expect.
    let access = s.access().await?;
    if let Some(pg) = &access.postgres {
        cp_backup::postgres::holdings(pg).await.map_err(|e| {
            AppError::Backup(BackupError::Restore {
                service: CoreKind::Postgres,
                source: e,
            })
        })?;
        // The new timeline is archived within archive_timeout from the first write.
        if let Err(e) = pitr::wake_checkpointer(&pg.endpoint, &pg.superuser_password).await {
            tracing::warn!(error = %e, "CHECKPOINT after the restore failed; WAL of the new timeline may wait for the next checkpoint to be archived");
        }
    }
    Ok(PitrRestoreView {
        environment: s.env.name.to_string(),
        target: target.clone(),
        base: base.id.clone(),
        recovery: recovered.lines,
        replaced_kept_at: aside.display().to_string(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The Cluster a restore to `target` creates on Kubernetes (recovery is
/// CloudNativePG's, from the Barman Cloud archive; only a time is a target there).
fn kube_recovery_cluster(
    s: &Session,
    target: &RecoveryTarget,
) -> Result<serde_json::Value, AppError> {
    settings(s)?;
    let RecoveryTarget::Time(t) = target else {
        return Err(AppError::Usage(format!(
            "on Kubernetes, restore to a point in time takes --to-time (CloudNativePG recovers to a time here); `--to {target}` is not built yet"
        )));
    };
    let templates = s.project.templates().map_err(|source| AppError::Project {
        what: "cannot read the templates".into(),
        source,
    })?;
    let render = |source| {
        AppError::Driver(cp_drivers::DriverError::Render {
            which: "the recovery Cluster",
            env: s.env.name.to_string(),
            source,
        })
    };
    cp_core::render::Renderer::new(&templates)
        .map_err(render)?
        .pitr_recovery_cluster(&s.env, *t)
        .map_err(render)?
        .ok_or_else(|| {
            AppError::Usage(format!(
                "point-in-time recovery is off in `{}`: set `backup.pitr.enabled: true`",
                s.env.name
            ))
        })
}

/// The destination's credentials as the variables `restore_command` reads.
async fn credentials(s: &Session) -> Result<Vec<(String, cp_runtime::secrets::Secret)>, AppError> {
    let p = settings(s)?;
    let b = run::settings(&s.env)?;
    let mut out = Vec::new();
    let mut add = async |var: &str, setting: &str, r: &Option<cp_core::units::SecretRef>| {
        if let Some(r) = r {
            let v = s
                .secrets
                .resolve(setting, r)
                .await
                .map_err(|e| AppError::Usage(cp_runtime::error::chain(&e)))?;
            out.push((var.to_owned(), v));
        }
        Ok::<(), AppError>(())
    };
    match b.destinations.get(&p.destination) {
        Some(cp_core::model::Destination::S3 {
            access_key_id,
            secret_access_key,
            ..
        }) => {
            add("AWS_ACCESS_KEY_ID", "access_key_id", access_key_id).await?;
            add(
                "AWS_SECRET_ACCESS_KEY",
                "secret_access_key",
                secret_access_key,
            )
            .await?;
        }
        Some(cp_core::model::Destination::Gcs {
            service_account_key,
            ..
        }) => {
            add(
                "GOOGLE_SERVICE_ACCOUNT_KEY",
                "service_account_key",
                service_account_key,
            )
            .await?
        }
        Some(cp_core::model::Destination::Azure { access_key, .. }) => {
            add("AZURE_STORAGE_ACCESS_KEY", "access_key", access_key).await?;
        }
        _ => {}
    }
    Ok(out)
}
