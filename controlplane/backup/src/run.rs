//! The commands' I/O: take a set (every service at once; the manifest last; prune
//! after a full success), list a destination, verify a set, restore one, prune. Each
//! decision is made by the pure modules (catalog states, retention); this module reads
//! and writes.

use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Utc};
use cp_core::model::{Backup, Environment, Tier};
use cp_core::names::CoreKind;
use cp_runtime::access::Access;
use cp_runtime::secrets::{Secret, SecretError, SecretResolver};
use cp_runtime::state::{StateDir, StateError, StateLock};
use cp_runtime::vault::Client;
use serde::Serialize;

use crate::catalog::{self, Entry, VERIFICATION, Verification};
use crate::dest::{DestinationError, Store};
use crate::error::ServiceError;
use crate::id::BackupId;
use crate::manifest::{
    self, Compression, Encryption, MANIFEST, Manifest, ManifestError, Outcome, ServiceRecord,
};
use crate::metrics::Metrics;
use crate::pipeline::{self, Codec, Identity, Meter};
use crate::retention::{self, Candidate, RetentionPlan};
use crate::set::{Part, SetReader, SetWriter};

/// The lock a backup (or prune, or restore) holds: one per environment at a time.
pub const LOCK: &str = "backup";

/// Why a command failed as a whole (a single service failing is in the report).
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Backups are not enabled.
    #[error("backups are not enabled in {env} (set backup.enabled and backup.destinations)")]
    Disabled {
        /// The environment.
        env: String,
    },
    /// The destination.
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// The state directory, or the lock held by another run.
    #[error(transparent)]
    State(#[from] StateError),
    /// A recipient of `backup.encrypt_to` does not parse.
    #[error("backup.encrypt_to: `{0}` is not an age recipient")]
    Recipient(String),
    /// The identity could not be resolved or parsed.
    #[error("backup.identity: {0}")]
    Identity(String),
    /// Resolving a secret failed.
    #[error("cannot resolve `{setting}`")]
    Secret {
        /// The setting.
        setting: String,
        /// Why.
        #[source]
        source: SecretError,
    },
    /// No such set.
    #[error(
        "no backup set {id} at destination `{destination}`; `controlplane backup list` shows them"
    )]
    NoSuchSet {
        /// The id.
        id: String,
        /// The destination.
        destination: String,
    },
    /// The set has no manifest.
    #[error(
        "set {id} is incomplete (no manifest: a run that died or is still running); it cannot be verified or restored"
    )]
    Incomplete {
        /// The id.
        id: BackupId,
    },
    /// The manifest is unusable.
    #[error(transparent)]
    Manifest(#[from] manifest::ManifestError),
    /// Every service failed: nothing was kept.
    #[error("every service failed, so set {id} has no manifest (it is listed incomplete and the next prune removes it):\n{}", failures.iter().map(|f| format!("  - {f}")).collect::<Vec<_>>().join("\n"))]
    AllFailed {
        /// The set.
        id: BackupId,
        /// Each service's error.
        failures: Vec<String>,
    },
    /// The manifest could not be written: the set stays incomplete.
    #[error("set {id}: the manifest could not be written, so the set is incomplete")]
    ManifestWrite {
        /// The set.
        id: BackupId,
        /// Why.
        #[source]
        source: DestinationError,
    },
    /// An artifact failed its check before a restore: nothing was restored.
    #[error("set {id}: refusing to restore, nothing was touched: {problem}")]
    Damaged {
        /// The set.
        id: BackupId,
        /// What is wrong (names the artifact).
        problem: String,
    },
    /// A service's restore failed.
    #[error("restore of {service} failed")]
    Restore {
        /// The service.
        service: CoreKind,
        /// Why.
        #[source]
        source: ServiceError,
    },
    /// The set does not hold a service asked for.
    #[error("set {id} holds no successful backup of {service}")]
    ServiceNotInSet {
        /// The set.
        id: BackupId,
        /// The service.
        service: CoreKind,
    },
}

/// The backup settings or [`BackupError::Disabled`].
pub fn settings(env: &Environment) -> Result<&Backup, BackupError> {
    env.backup.as_ref().ok_or_else(|| BackupError::Disabled {
        env: env.name.to_string(),
    })
}

/// Takes the backup lock, failing fast with its holder and since when.
pub fn lock(state: &StateDir, command: &str) -> Result<StateLock, BackupError> {
    Ok(state.lock(LOCK, command)?)
}

/// The encoding of new artifacts from the environment.
pub fn codec(b: &Backup) -> Result<Codec, BackupError> {
    let recipients = b
        .encrypt_to
        .iter()
        .map(|r| {
            r.parse::<age::x25519::Recipient>()
                .map_err(|_| BackupError::Recipient(r.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // zstd's workers pay once there are cores to run them beside the producer.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Ok(Codec {
        level: i32::from(b.compression_level),
        workers: if cores > 1 { cores.min(4) as u32 } else { 0 },
        recipients: std::sync::Arc::new(recipients),
    })
}

/// The age identity from `backup.identity`, when set.
pub async fn identity(
    b: &Backup,
    secrets: &SecretResolver,
) -> Result<Option<Identity>, BackupError> {
    let Some(r) = &b.identity else {
        return Ok(None);
    };
    let s = secrets
        .resolve("backup.identity", r)
        .await
        .map_err(|source| BackupError::Secret {
            setting: "backup.identity".into(),
            source,
        })?;
    let id = s
        .expose()
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .ok_or_else(|| {
            BackupError::Identity("the secret holds no AGE-SECRET-KEY-1... line".into())
        })?
        .parse::<age::x25519::Identity>()
        .map_err(|e| BackupError::Identity(format!("not an age identity: {e}")))?;
    Ok(Some(Identity(std::sync::Arc::new(id))))
}

/// What the backup run needs besides the environment.
#[derive(Debug)]
pub struct Context<'a> {
    /// The environment.
    pub env: &'a Environment,
    /// Its services' endpoints and credentials.
    pub access: &'a Access,
    /// Its state directory (lock, metrics, catalog cache).
    pub state: &'a StateDir,
    /// Secrets.
    pub secrets: &'a SecretResolver,
    /// The project root (local destinations are relative to it).
    pub project_root: &'a Path,
}

/// One service's line in the report.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ServiceLine {
    /// The service.
    pub service: CoreKind,
    /// Whether it was backed up.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// Bytes read from the service.
    pub size: u64,
    /// Bytes stored.
    pub stored_size: u64,
    /// Milliseconds.
    pub duration_ms: u64,
    /// MB/s read from the service.
    pub throughput_mb_s: f64,
}

/// What a backup run did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BackupReport {
    /// The set.
    pub id: BackupId,
    /// The destination.
    pub destination: String,
    /// `complete` or `partial`.
    pub state: String,
    /// Per service.
    pub services: Vec<ServiceLine>,
    /// What the prune after it did (`None` when it did not run: not every service
    /// succeeded).
    pub pruned: Option<PruneReport>,
    /// Each selected destination: whether it holds the set (written there, or copied
    /// from the one that was), or why not.
    pub destinations: Vec<DestinationLine>,
}

impl BackupReport {
    /// Every service backed up and every selected destination holds the set.
    pub fn ok(&self) -> bool {
        self.state == "complete" && self.destinations.iter().all(|d| d.ok)
    }
}

/// One destination's line in a backup report.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DestinationLine {
    /// The destination.
    pub destination: String,
    /// Whether it holds the set.
    pub ok: bool,
    /// `written` (the set was taken to it), `copied from <destination>`, or `failed`.
    pub how: String,
    /// Why not (the whole cause chain).
    pub error: Option<String>,
}

impl DestinationLine {
    fn failed(name: &str, e: &(dyn std::error::Error + 'static)) -> Self {
        Self {
            destination: name.to_owned(),
            ok: false,
            how: "failed".into(),
            error: Some(cp_runtime::error::chain(e)),
        }
    }
}

/// What a prune did (or would do).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PruneReport {
    /// The decisions.
    pub plan: RetentionPlan,
    /// Whether the deletions were carried out.
    pub applied: bool,
}

/// Listens to a run.
pub trait Progress: Send + Sync {
    /// A service started, reading through `meter`.
    fn started(&self, service: CoreKind, meter: &Meter);
    /// A service finished.
    fn finished(&self, line: &ServiceLine);
}

/// Says nothing.
#[derive(Debug)]
pub struct Quiet;

impl Progress for Quiet {
    fn started(&self, _: CoreKind, _: &Meter) {}
    fn finished(&self, _: &ServiceLine) {}
}

/// The token backups use on Vault: `backup.vault_token`; else, in dev, one minted
/// through the backup token role from the kept root token; else the session's token.
pub async fn vault_backup_client(cx: &Context<'_>) -> Result<Option<Client>, ServiceError> {
    let Some(v) = &cx.access.vault else {
        return Ok(None);
    };
    let b = cx.env.backup.as_ref();
    if let Some(r) = b.and_then(|b| b.vault_token.as_ref()) {
        let t = cx
            .secrets
            .resolve("backup.vault_token", r)
            .await
            .map_err(|e| {
                ServiceError::VaultState(format!("cannot resolve backup.vault_token: {e}"))
            })?;
        return Ok(Some(v.client_with(t)));
    }
    let Some(parent) = &v.token else {
        return Err(ServiceError::Unavailable {
            service: CoreKind::Vault,
            detail:
                "no token: set backup.vault_token to a token with the controlplane-backup policy"
                    .into(),
        });
    };
    let parent = v.client_with(parent.clone());
    if cx.env.tier == Tier::Dev {
        let t = crate::vault::mint_backup_token(&parent).await?;
        return Ok(Some(v.client_with(t)));
    }
    Ok(Some(parent))
}

async fn one(cx: &Context<'_>, w: &SetWriter, service: CoreKind) -> Result<Part, ServiceError> {
    let a = cx.access;
    let unavailable = |detail: &str| ServiceError::Unavailable {
        service,
        detail: detail.into(),
    };
    match service {
        CoreKind::Postgres => {
            let pg = a
                .postgres
                .as_ref()
                .ok_or_else(|| unavailable("not enabled"))?;
            // The roles are fixed (the migrations grant to them): dump as the BYPASSRLS one.
            crate::postgres::backup(w, pg, cp_core::roles::BACKUP).await
        }
        CoreKind::Redis => {
            let r = a.redis.as_ref().ok_or_else(|| unavailable("not enabled"))?;
            crate::redis::backup(w, r).await
        }
        CoreKind::Nats => {
            let n = a.nats.as_ref().ok_or_else(|| unavailable("not enabled"))?;
            crate::nats::backup(w, n).await
        }
        CoreKind::Vault => {
            let c = vault_backup_client(cx)
                .await?
                .ok_or_else(|| unavailable("not enabled"))?;
            crate::vault::backup(w, &c, &cx.env.vault.transit_mount).await
        }
    }
}

/// The `--destination` that selects every destination of the environment (also the
/// default of `backup`): a set is kept in each place the environment declares.
pub const ALL_DESTINATIONS: &str = "all";

/// The destinations a `backup` writes to, by name: `None` or [`ALL_DESTINATIONS`]
/// means every one (in name order), else the one named.
pub fn selected_destinations(
    b: &Backup,
    destination: Option<&str>,
) -> Result<Vec<String>, BackupError> {
    match destination {
        None | Some(ALL_DESTINATIONS) => {
            if b.destinations.is_empty() {
                return Err(DestinationError::Unknown {
                    name: "(default)".into(),
                    known: "none (set backup.destinations)".into(),
                }
                .into());
            }
            Ok(b.destinations.keys().cloned().collect())
        }
        Some(n) if b.destinations.contains_key(n) => Ok(vec![n.to_owned()]),
        Some(n) => Err(DestinationError::Unknown {
            name: n.to_owned(),
            known: format!(
                "{} (or `{ALL_DESTINATIONS}`)",
                b.destinations
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
        .into()),
    }
}

/// Takes one set of `services` (empty: the environment's `backup.services`) and keeps
/// it at every selected destination ([`selected_destinations`]). The set is taken
/// once (one id, one consistent dump) and written to the first destination that
/// accepts it, then copied object by object (manifest last) to each other one; a
/// destination that fails is reported in [`BackupReport::destinations`] and never
/// hides another's success. Only when no destination got the set does this fail. The
/// caller holds the backup lock.
pub async fn backup(
    cx: &Context<'_>,
    services: &[CoreKind],
    destination: Option<&str>,
    now: DateTime<Utc>,
    progress: &dyn Progress,
) -> Result<BackupReport, BackupError> {
    let b = settings(cx.env)?;
    let names = selected_destinations(b, destination)?;
    let mut lines: Vec<DestinationLine> = Vec::new();
    let mut stores = Vec::new();
    for n in &names {
        match Store::open(&b.destinations, Some(n), cx.project_root, cx.secrets).await {
            Ok(s) => stores.push(s),
            Err(e) if names.len() == 1 => return Err(e.into()),
            Err(e) => lines.push(DestinationLine::failed(n, &e)),
        }
    }
    // The first destination that takes the set whole; a failure moves on to the next.
    let mut taken: Option<(BackupReport, Store)> = None;
    let mut last_err = None;
    let mut rest = stores.into_iter();
    for store in rest.by_ref() {
        match take_set(cx, b, &store, services, now, progress).await {
            Ok(r) => {
                lines.push(DestinationLine {
                    destination: store.name().to_owned(),
                    ok: true,
                    how: "written".into(),
                    error: None,
                });
                taken = Some((r, store));
                break;
            }
            Err(e) => {
                lines.push(DestinationLine::failed(store.name(), &e));
                last_err = Some(e);
            }
        }
    }
    let Some((mut report, primary)) = taken else {
        // Nothing anywhere: the (last) cause is the command's error.
        return Err(last_err.unwrap_or_else(|| {
            BackupError::Destination(DestinationError::Unknown {
                name: names.join(", "),
                known: "none could be opened".into(),
            })
        }));
    };
    for store in rest {
        let copied = copy_set(&primary, &store, &report.id).await;
        let line = match copied {
            Ok(()) => {
                if report.state == "complete" {
                    // Retention holds at every destination, as at the first.
                    if let Err(e) = prune_store(&store, b, now, false).await {
                        lines.push(DestinationLine::failed(store.name(), &e));
                        continue;
                    }
                }
                DestinationLine {
                    destination: store.name().to_owned(),
                    ok: true,
                    how: format!("copied from {}", primary.name()),
                    error: None,
                }
            }
            Err(e) => DestinationLine::failed(store.name(), &BackupError::from(e)),
        };
        lines.push(line);
    }
    lines.sort_by(|a, b| a.destination.cmp(&b.destination));
    report.destinations = lines;
    Ok(report)
}

/// Copies every object of set `id` from `from` to `to`, the manifest last (so the copy
/// is complete only when whole), streaming each artifact in parts.
pub async fn copy_set(from: &Store, to: &Store, id: &BackupId) -> Result<(), DestinationError> {
    use futures::StreamExt as _;
    use object_store::ObjectStoreExt as _;
    use tokio::io::AsyncWriteExt as _;
    let sets = from.list().await?;
    let Some(listed) = sets.get(id) else {
        return Ok(());
    };
    let mut names: Vec<&String> = listed.objects.keys().collect();
    // The manifest last: a copy cut short is incomplete, never complete.
    names.sort_by_key(|n| (n.as_str() == MANIFEST, n.as_str().to_owned()));
    for rel in names {
        let src = from.path(id, rel);
        let dst = to.path(id, rel);
        let got = from
            .inner()
            .get(&src)
            .await
            .map_err(from.err(format!("reading {src}")))?;
        let mut body = got.into_stream();
        let mut w = object_store::buffered::BufWriter::new(to.inner().clone(), dst.clone());
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(from.err(format!("reading {src}")))?;
            if let Err(e) = w.write_all(&chunk).await {
                let _ = w.abort().await;
                return Err(to.err(format!("writing {dst}"))(
                    object_store::Error::Generic {
                        store: "copy",
                        source: Box::new(e),
                    },
                ));
            }
        }
        w.shutdown().await.map_err(|e| {
            to.err(format!("writing {dst}"))(object_store::Error::Generic {
                store: "copy",
                source: Box::new(e),
            })
        })?;
    }
    Ok(())
}

/// Takes one set to one open destination (see [`backup`]).
async fn take_set(
    cx: &Context<'_>,
    b: &Backup,
    store: &Store,
    services: &[CoreKind],
    now: DateTime<Utc>,
    progress: &dyn Progress,
) -> Result<BackupReport, BackupError> {
    let store = store.clone();
    let codec = codec(b)?;
    let id = BackupId::new(now);
    let services: Vec<CoreKind> = if services.is_empty() {
        b.services.clone()
    } else {
        services.to_vec()
    };
    let started = Utc::now();
    let runs = services.iter().map(|s| {
        let w = SetWriter {
            store: store.clone(),
            id: id.clone(),
            codec: codec.clone(),
            meter: Meter::default(),
        };
        async move {
            progress.started(*s, &w.meter);
            let t = Instant::now();
            let r = one(cx, &w, *s).await;
            (*s, r, t.elapsed())
        }
    });
    let results = futures::future::join_all(runs).await;
    let mut records = std::collections::BTreeMap::new();
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    let mut metrics = Metrics::read(cx.state);
    for (s, r, took) in results {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        let (rec, line) = match r {
            Ok(p) => {
                let rec = ServiceRecord {
                    outcome: Outcome::Ok,
                    server_version: p.server_version,
                    duration_ms: ms,
                    artifacts: p.artifacts,
                    detail: p.detail,
                };
                let line = ServiceLine {
                    service: s,
                    ok: true,
                    error: None,
                    size: rec.size(),
                    stored_size: rec.stored_size(),
                    duration_ms: ms,
                    throughput_mb_s: rec.size() as f64 / 1e6 / took.as_secs_f64().max(1e-3),
                };
                (rec, line)
            }
            Err(e) => {
                let text = cp_runtime::error::chain(&e);
                failures.push(format!("{s}: {text}"));
                (
                    ServiceRecord {
                        outcome: Outcome::Failed {
                            error: text.clone(),
                        },
                        server_version: None,
                        duration_ms: ms,
                        artifacts: Vec::new(),
                        detail: crate::manifest::Detail::None,
                    },
                    ServiceLine {
                        service: s,
                        ok: false,
                        error: Some(text),
                        size: 0,
                        stored_size: 0,
                        duration_ms: ms,
                        throughput_mb_s: 0.0,
                    },
                )
            }
        };
        metrics.record(
            s,
            line.ok,
            now.timestamp(),
            took.as_secs_f64(),
            line.stored_size,
        );
        progress.finished(&line);
        records.insert(s, rec);
        lines.push(line);
    }
    let _ = metrics.write(cx.state);
    if failures.len() == services.len() {
        return Err(BackupError::AllFailed { id, failures });
    }
    let manifest = Manifest {
        format: manifest::MANIFEST_FORMAT,
        id: id.clone(),
        environment: cx.env.name.to_string(),
        controlplane_version: format!("controlplane {}", env!("CARGO_PKG_VERSION")),
        started,
        finished: Utc::now(),
        compression: Compression {
            algorithm: "zstd".into(),
            level: codec.level,
        },
        encryption: (!b.encrypt_to.is_empty()).then(|| Encryption {
            algorithm: "age".into(),
            recipients: b
                .encrypt_to
                .iter()
                .map(|r| manifest::recipient_fingerprint(r))
                .collect(),
        }),
        services: records,
    };
    // Last: only now is the set complete.
    store
        .put(
            &id,
            MANIFEST,
            serde_json::to_vec_pretty(&manifest).expect("serializes"),
        )
        .await
        .map_err(|source| BackupError::ManifestWrite {
            id: id.clone(),
            source,
        })?;
    let full = failures.is_empty();
    let pruned = if full {
        Some(prune_store(&store, b, now, false).await?)
    } else {
        None
    };
    Ok(BackupReport {
        id,
        destination: store.name().to_owned(),
        state: if full { "complete" } else { "partial" }.into(),
        services: lines,
        pruned,
        destinations: Vec::new(),
    })
}

/// Reads a set's manifest (or why it is unreadable) and verification record.
async fn read_set(
    store: &Store,
    id: &BackupId,
) -> Result<
    (
        Option<Result<Manifest, ManifestError>>,
        Option<Verification>,
    ),
    BackupError,
> {
    let m = store
        .get(id, MANIFEST)
        .await?
        .map(|b| manifest::parse(&b, id));
    let v = store
        .get(id, VERIFICATION)
        .await?
        .and_then(|b| serde_json::from_slice::<Verification>(&b).ok());
    Ok((m, v))
}

/// Every set at the destination, newest first; the local cache
/// (`backup/catalog-<destination>.json`) is rewritten from it.
pub async fn list(store: &Store, state: Option<&StateDir>) -> Result<Vec<Entry>, BackupError> {
    let sets = store.list().await?;
    let mut out = Vec::new();
    for (id, listed) in sets.iter().rev() {
        let (m, v) = read_set(store, id).await?;
        out.push(catalog::entry(id, listed, m.as_ref(), v.as_ref()));
    }
    if let Some(state) = state {
        let _ = state.write_private(
            format!("backup/catalog-{}.json", store.name()),
            &serde_json::to_vec_pretty(&out).expect("serializes"),
        );
    }
    Ok(out)
}

/// Every usable set at the destination as the one-recovery-point chooser sees it
/// ([`crate::moment`]): sets with a readable manifest whose last verification did not
/// find them broken.
pub async fn set_times(store: &Store) -> Result<Vec<crate::moment::SetTimes>, BackupError> {
    let sets = store.list().await?;
    let mut out = Vec::new();
    for id in sets.keys() {
        let (m, v) = read_set(store, id).await?;
        if let Some(Ok(m)) = &m
            && v.as_ref().is_none_or(|v| v.ok)
        {
            out.push(crate::moment::SetTimes::of(m));
        }
    }
    Ok(out)
}

/// Plans retention at the destination and, unless `dry_run`, deletes what goes.
pub async fn prune_store(
    store: &Store,
    b: &Backup,
    now: DateTime<Utc>,
    dry_run: bool,
) -> Result<PruneReport, BackupError> {
    let sets = store.list().await?;
    let mut candidates = Vec::new();
    for id in sets.keys() {
        let (m, v) = read_set(store, id).await?;
        candidates.push(Candidate {
            id: id.clone(),
            state: catalog::state(m.as_ref(), v.as_ref()),
        });
    }
    let window = b.pitr.as_ref().map(|p| {
        chrono::TimeDelta::seconds(
            i64::try_from(p.recovery_window.as_secs()).unwrap_or(i64::MAX / 1000),
        )
    });
    let plan = retention::plan_retention(&candidates, b.retention, window, now);
    if !dry_run {
        for (id, _) in &plan.delete {
            if let Some(listed) = sets.get(id) {
                store.delete_set(id, listed).await?;
            }
        }
    }
    Ok(PruneReport {
        plan,
        applied: !dry_run,
    })
}

/// A set's manifest, or why it cannot be used.
pub async fn manifest_of(store: &Store, id: &BackupId) -> Result<Manifest, BackupError> {
    let sets = store.list().await?;
    if !sets.contains_key(id) {
        return Err(BackupError::NoSuchSet {
            id: id.to_string(),
            destination: store.name().to_owned(),
        });
    }
    match store.get(id, MANIFEST).await? {
        None => Err(BackupError::Incomplete { id: id.clone() }),
        Some(b) => Ok(manifest::parse(&b, id)?),
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct VerifyReport {
    /// The set.
    pub id: BackupId,
    /// Artifacts read back.
    pub artifacts: usize,
    /// Every problem (each names its artifact).
    pub problems: Vec<String>,
    /// What the drill checked, when one ran.
    pub drill: Vec<String>,
}

/// Re-reads every artifact (digests, decryption, decompression) and records the
/// outcome at the destination. The drill, when given, runs after a clean read and
/// its findings are added.
pub async fn verify(
    store: &Store,
    id: &BackupId,
    identity: Option<&Identity>,
    drill: Option<Vec<String>>,
) -> Result<(Manifest, VerifyReport), BackupError> {
    let m = manifest_of(store, id).await?;
    let mut problems = Vec::new();
    let mut n = 0;
    for (_, a) in m.artifacts() {
        n += 1;
        if let Err(e) = pipeline::verify(store, id, a, identity).await {
            problems.push(cp_runtime::error::chain(&e));
        }
    }
    let report = VerifyReport {
        id: id.clone(),
        artifacts: n,
        problems,
        drill: drill.unwrap_or_default(),
    };
    Ok((m, report))
}

/// Records a verification (and a passed drill) at the destination.
pub async fn record_verification(
    store: &Store,
    id: &BackupId,
    report: &VerifyReport,
    drilled: bool,
    now: DateTime<Utc>,
) -> Result<(), BackupError> {
    let v = Verification {
        at: now,
        ok: report.problems.is_empty(),
        drilled_at: (drilled && report.problems.is_empty()).then_some(now),
        problems: report.problems.clone(),
    };
    store
        .put(
            id,
            VERIFICATION,
            serde_json::to_vec_pretty(&v).expect("serializes"),
        )
        .await?;
    Ok(())
}

/// Checks every artifact of `services` in the set before anything is touched.
pub async fn precheck(
    store: &Store,
    m: &Manifest,
    services: &[CoreKind],
) -> Result<(), BackupError> {
    for s in services {
        let rec = m
            .services
            .get(s)
            .filter(|r| r.outcome == Outcome::Ok)
            .ok_or_else(|| BackupError::ServiceNotInSet {
                id: m.id.clone(),
                service: *s,
            })?;
        for a in &rec.artifacts {
            pipeline::check_stored(store, &m.id, a)
                .await
                .map_err(|e| BackupError::Damaged {
                    id: m.id.clone(),
                    problem: cp_runtime::error::chain(&e),
                })?;
        }
    }
    Ok(())
}

/// Where a restore writes, per service.
#[derive(Debug)]
pub struct Target<'a> {
    /// The target's services.
    pub access: &'a Access,
    /// The unseal keys of the environment the set came from (a Vault snapshot opens
    /// only with them).
    pub source_unseal_keys: Vec<Secret>,
}

/// Restores `services` of set `m` into `target`, in dependency order. The caller has
/// confirmed, checked the artifacts ([`precheck`]) and holds the locks.
pub async fn restore(
    reader: &SetReader,
    m: &Manifest,
    services: &[CoreKind],
    target: &Target<'_>,
) -> Result<Vec<String>, BackupError> {
    let mut done = Vec::new();
    for s in CoreKind::ALL.iter().filter(|s| services.contains(s)) {
        let rec = &m.services[s];
        let err = |source| BackupError::Restore {
            service: *s,
            source,
        };
        let unavailable = || ServiceError::Unavailable {
            service: *s,
            detail: "not enabled in the target environment".into(),
        };
        let line = match s {
            CoreKind::Postgres => {
                let pg = target
                    .access
                    .postgres
                    .as_ref()
                    .ok_or_else(unavailable)
                    .map_err(err)?;
                crate::postgres::restore(reader, rec, pg, crate::postgres::Into::Live)
                    .await
                    .map_err(err)?
            }
            CoreKind::Redis => {
                let r = target
                    .access
                    .redis
                    .as_ref()
                    .ok_or_else(unavailable)
                    .map_err(err)?;
                let n = crate::redis::restore(reader, rec, r).await.map_err(err)?;
                format!("redis: {n} keys restored")
            }
            CoreKind::Nats => {
                let n = target
                    .access
                    .nats
                    .as_ref()
                    .ok_or_else(unavailable)
                    .map_err(err)?;
                let r = crate::nats::restore(reader, rec, n).await.map_err(err)?;
                format!(
                    "nats: {} streams restored ({} messages)",
                    r.len(),
                    r.iter().map(|x| x.messages).sum::<u64>()
                )
            }
            CoreKind::Vault => {
                let v = target
                    .access
                    .vault
                    .as_ref()
                    .ok_or_else(unavailable)
                    .map_err(err)?;
                let c = v
                    .client()
                    .map_err(|e| ServiceError::Vault {
                        doing: "restoring".into(),
                        source: e,
                    })
                    .map_err(err)?;
                crate::vault::restore(reader, rec, &c, &target.source_unseal_keys)
                    .await
                    .map_err(err)?;
                "vault: raft snapshot restored and unsealed".into()
            }
        };
        done.push(line);
    }
    Ok(done)
}
