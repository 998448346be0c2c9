//! The backup commands over an open session: `backup`, `backup list`, `backup verify`,
//! `backup prune` and `restore`, each returning its typed view. Writing commands take
//! the environment's `backup` lock (an flock that dies with its process and names its
//! holder); `restore` also holds the environment lock through its session.

use chrono::Utc;
use cp_backup::BackupId;

/// A backup set's id.
pub use cp_backup::BackupId as SetId;
use cp_backup::dest::Store;
use cp_backup::run::{self, BackupError, Context, Progress};
use cp_backup::set::SetReader;
use cp_core::names::CoreKind;
use cp_drivers::Driver as _;

use crate::error::AppError;
use crate::session::Session;
use crate::views::{
    BackupListAllView, BackupListView, BackupSetView, BackupView, PruneView, RestoreView,
    VerifyView,
};

fn project_root(s: &Session) -> std::path::PathBuf {
    s.project.root.clone()
}

/// Parses `--service` names into core kinds.
pub fn services(names: &[String]) -> Result<Vec<CoreKind>, AppError> {
    names
        .iter()
        .map(|n| {
            CoreKind::from_name(n).ok_or_else(|| {
                AppError::Usage(format!(
                    "`{n}` cannot be backed up; one of postgres, redis, nats, vault"
                ))
            })
        })
        .collect()
}

/// Parses a set id.
pub fn id(text: &str) -> Result<BackupId, AppError> {
    BackupId::parse(text).map_err(|e| AppError::Usage(e.to_string()))
}

pub(crate) async fn store(s: &Session, destination: Option<&str>) -> Result<Store, AppError> {
    let b = run::settings(&s.env)?;
    Ok(
        Store::open(&b.destinations, destination, &project_root(s), &s.secrets)
            .await
            .map_err(BackupError::from)?,
    )
}

/// `backup`: one set (holding the backup lock), then prune when every service
/// succeeded.
pub async fn backup(
    s: &Session,
    services: &[CoreKind],
    destination: Option<&str>,
    progress: &dyn Progress,
) -> Result<BackupView, AppError> {
    let _lock = run::lock(&s.state, "backup")?;
    take(s, services, destination, progress).await
}

/// One set, the caller holding the backup lock (a job takes it when it starts).
pub(crate) async fn take(
    s: &Session,
    services: &[CoreKind],
    destination: Option<&str>,
    progress: &dyn Progress,
) -> Result<BackupView, AppError> {
    let access = s.access().await?;
    let root = project_root(s);
    let cx = Context {
        env: &s.env,
        access: &access,
        state: &s.state,
        secrets: &s.secrets,
        project_root: &root,
    };
    let report = run::backup(&cx, services, destination, Utc::now(), progress).await?;
    Ok(BackupView {
        environment: s.env.name.to_string(),
        report,
    })
}

/// `backup list`: read-only; works on a fresh machine (the destination is the truth).
pub async fn list(s: &Session, destination: Option<&str>) -> Result<BackupListView, AppError> {
    let store = store(s, destination).await?;
    let state = (s.state.path().exists()).then_some(&s.state);
    let now = Utc::now();
    let sets = run::list(&store, state)
        .await?
        .into_iter()
        .map(|entry| BackupSetView {
            age: cp_backup::catalog::age(entry.started, now),
            entry,
        })
        .collect();
    Ok(BackupListView {
        destination: store.name().to_owned(),
        sets,
        error: None,
        pitr: crate::pitr::watch(s).await,
    })
}

/// `backup list --destination all`: every destination's sets, each listed on its own;
/// a destination that cannot be read is reported and the others still listed.
pub async fn list_all(s: &Session) -> Result<BackupListAllView, AppError> {
    let b = run::settings(&s.env)?;
    let mut destinations = Vec::new();
    for name in b.destinations.keys() {
        destinations.push(match list(s, Some(name.as_str())).await {
            Ok(v) => v,
            Err(e) => BackupListView {
                destination: name.clone(),
                sets: Vec::new(),
                error: Some(e.chain()),
                pitr: None,
            },
        });
    }
    Ok(BackupListAllView { destinations })
}

/// `backup verify ID [--restore-drill]`: re-reads every artifact; with a drill, also
/// restores the set into scratch targets and checks it; records the result at the
/// destination ("last verified", "last drilled"). The caller holds the backup lock
/// (the verify job takes it when it starts).
pub(crate) async fn verify(
    s: &Session,
    id: &BackupId,
    destination: Option<&str>,
    drill: bool,
) -> Result<VerifyView, AppError> {
    let b = run::settings(&s.env)?;
    let store = store(s, destination).await?;
    let identity = run::identity(b, &s.secrets).await?;
    let (m, mut report) = run::verify(&store, id, identity.as_ref(), None).await?;
    if m.encryption.is_some() && identity.is_none() {
        return Err(AppError::Usage(
            "the set is encrypted: set backup.identity to the age identity that decrypts it".into(),
        ));
    }
    if drill && report.problems.is_empty() {
        let access = s.access().await?;
        let unseal_keys = match &s.env.services.vault {
            Some(v) => cp_runtime::vault::key_store(v, &s.state, s.driver.vault_keys_dir())
                .unseal_keys()
                .ok()
                .flatten()
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let vault_token = match b.vault_token.as_ref() {
            Some(r) => s.secrets.resolve("backup.vault_token", r).await.ok(),
            None => access.vault.as_ref().and_then(|v| v.token.clone()),
        };
        let reader = SetReader {
            store: store.clone(),
            id: id.clone(),
            identity: identity.clone(),
        };
        let source = cp_backup::drill::Source {
            env: &s.env,
            postgres: access.postgres.as_ref(),
            unseal_keys,
            vault_token,
        };
        match cp_backup::drill::drill(&reader, &m, &source).await {
            Ok(lines) => report.drill = lines,
            Err(e) => report.problems.push(cp_runtime::error::chain(&e)),
        }
    }
    run::record_verification(&store, id, &report, drill, Utc::now()).await?;
    Ok(VerifyView {
        ok: report.problems.is_empty(),
        report,
    })
}

/// What `restore` would replace in the target, one line each (empty: the target holds
/// nothing that would be lost).
pub async fn restore_preview(
    target: &Session,
    services: &[CoreKind],
) -> Result<Vec<String>, AppError> {
    let a = target.access().await?;
    let mut out = Vec::new();
    let fail = |service, e: cp_backup::error::ServiceError| {
        AppError::Backup(BackupError::Restore { service, source: e })
    };
    for s in services {
        let lines = match s {
            CoreKind::Postgres => match &a.postgres {
                Some(pg) => cp_backup::postgres::holdings(pg)
                    .await
                    .map_err(|e| fail(*s, e))?
                    .into_iter()
                    .map(|t| format!("postgres: database {} table {t}", pg.database))
                    .collect(),
                None => Vec::new(),
            },
            CoreKind::Redis => match &a.redis {
                Some(r) => cp_backup::redis::holdings(r)
                    .await
                    .map_err(|e| fail(*s, e))?,
                None => Vec::new(),
            },
            CoreKind::Nats => match &a.nats {
                Some(n) => cp_backup::nats::holdings(n)
                    .await
                    .map_err(|e| fail(*s, e))?,
                None => Vec::new(),
            },
            CoreKind::Vault => vec![
                "vault: every secret, key, policy and token (replaced by the snapshot's)".into(),
            ],
        };
        out.extend(lines);
    }
    Ok(out)
}

/// `restore ID`: from `source`'s destination into `target` (the same session, or the
/// one of `--into-env`). The caller has confirmed and holds the target's backup lock
/// (the restore job takes it, and the target's session the environment lock). Every
/// artifact is checked before anything is touched.
pub(crate) async fn restore(
    source: &Session,
    target: &Session,
    id: &BackupId,
    services: &[CoreKind],
    destination: Option<&str>,
) -> Result<RestoreView, AppError> {
    let b = run::settings(&source.env)?;
    let store = store(source, destination).await?;
    let m = run::manifest_of(&store, id).await?;
    let services: Vec<CoreKind> = if services.is_empty() {
        m.services
            .iter()
            .filter(|(_, r)| r.outcome == cp_backup::manifest::Outcome::Ok)
            .map(|(k, _)| *k)
            .collect()
    } else {
        services.to_vec()
    };
    run::precheck(&store, &m, &services).await?;
    let identity = run::identity(b, &source.secrets).await?;
    if m.encryption.is_some() && identity.is_none() {
        return Err(AppError::Usage(
            "the set is encrypted: set backup.identity to the age identity that decrypts it; nothing was restored".into(),
        ));
    }
    let access = target.access().await?;
    let keys = match &source.env.services.vault {
        Some(v) if services.contains(&CoreKind::Vault) => {
            cp_runtime::vault::key_store(v, &source.state, source.driver.vault_keys_dir())
                .unseal_keys()
                .map_err(|source| AppError::VaultKeys {
                    what: "cannot read the source's Vault unseal keys".into(),
                    source,
                })?
                .unwrap_or_default()
        }
        _ => Vec::new(),
    };
    let reader = SetReader {
        store,
        id: id.clone(),
        identity,
    };
    let restored = run::restore(
        &reader,
        &m,
        &services,
        &run::Target {
            access: &access,
            source_unseal_keys: keys,
        },
    )
    .await?;
    // A snapshot carries its cluster's keyring: from now on the target opens with the
    // source's unseal keys. Where the target keeps its keys (dev), keep those instead.
    if services.contains(&CoreKind::Vault)
        && source.state.path() != target.state.path()
        && let (Some(sv), Some(tv)) = (&source.env.services.vault, &target.env.services.vault)
        && tv.unseal == cp_core::model::UnsealKeys::State
    {
        let from = cp_runtime::vault::key_store(sv, &source.state, source.driver.vault_keys_dir());
        if let (Ok(Some(keys)), Ok(Some(root))) = (from.unseal_keys(), from.root_token()) {
            let to =
                cp_runtime::vault::key_store(tv, &target.state, target.driver.vault_keys_dir());
            to.keep(&cp_runtime::vault::InitKeys {
                threshold: u8::try_from(keys.len()).unwrap_or(1),
                keys,
                root_token: root,
            })
            .map_err(|source| AppError::VaultKeys {
                what: "restored, but the source's Vault keys could not be kept for the target"
                    .into(),
                source,
            })?;
        }
    }
    Ok(RestoreView {
        id: id.to_string(),
        environment: target.env.name.to_string(),
        restored,
    })
}

/// `backup prune [--dry-run]`.
pub async fn prune(
    s: &Session,
    dry_run: bool,
    destination: Option<&str>,
) -> Result<PruneView, AppError> {
    // The arguments first (an unknown destination is invalid input, refused before
    // anything is locked or written), then the lock.
    let b = run::settings(&s.env)?;
    let store = store(s, destination).await?;
    let _lock = if dry_run {
        None
    } else {
        Some(run::lock(&s.state, "backup prune")?)
    };
    let report = run::prune_store(&store, b, Utc::now(), dry_run).await?;
    Ok(PruneView {
        destination: store.name().to_owned(),
        report,
    })
}

/// The last backup of `model`'s environment (the oldest service's last success, and
/// whether the last run of every service succeeded), from its metrics file; `None`
/// when backups are off.
pub fn summary(
    t: &crate::session::Target,
    model: &cp_core::Environment,
) -> Option<crate::views::BackupSummaryView> {
    let b = model.backup.as_ref()?;
    let m = cp_runtime::state::StateDir::open_existing(t.state_path())
        .ok()
        .flatten()
        .map(|d| cp_backup::metrics::Metrics::read(&d))
        .unwrap_or_default();
    let per: Vec<_> = b
        .services
        .iter()
        .map(|s| m.services.get(s).cloned().unwrap_or_default())
        .collect();
    let oldest = per
        .iter()
        .map(|m| m.last_success_timestamp_seconds)
        .min()
        .unwrap_or(0);
    let ok = per.iter().all(|m| m.last_run_success == 1);
    Some(if oldest == 0 {
        let failed = per.iter().any(|m| m.duration_seconds > 0.0);
        crate::views::BackupSummaryView {
            age: "never".into(),
            state: if failed { "failed" } else { "none yet" }.into(),
            ok: false,
        }
    } else {
        let at = chrono::DateTime::from_timestamp(oldest, 0).unwrap_or_default();
        crate::views::BackupSummaryView {
            age: cp_backup::catalog::age(at, Utc::now()),
            state: if ok { "ok" } else { "last run failed" }.into(),
            ok,
        }
    })
}

/// The newest verified (or drilled) set of `sets`, as "ID (when)".
pub fn last_verified(sets: &BackupListView) -> Option<String> {
    sets.sets.iter().find_map(|s| match &s.entry.state {
        cp_backup::catalog::SetState::Verified { at }
        | cp_backup::catalog::SetState::Drilled { at } => Some(format!(
            "{} ({})",
            s.entry.id.as_str(),
            crate::views::rfc3339(*at)
        )),
        _ => None,
    })
}
