//! Point-in-time recovery of PostgreSQL: WAL shipped segment by segment by
//! PostgreSQL's `archive_command` (`controlplane pitr wal-push`), fetched back by its
//! `restore_command` (`controlplane pitr wal-fetch`), and base backups taken with
//! `pg_basebackup` through the backup pipeline (zstd, age when configured, SHA-256).
//!
//! Layout inside a destination (Barman Cloud's layout for the WAL, with the
//! environment as the server name): `pitr/<env>/wals/<timeline+log>/<segment>.zst`,
//! `pitr/<env>/wals/<name>.zst` for history files, and
//! `pitr/<env>/base/<id>/{base.tar.zst, backup.json}`.
//!
//! Why not the `barman-cloud-*` tools: they have no local filesystem destination, and
//! PostgreSQL runs its `archive_command` as its own unprivileged user, which cannot
//! reach a per-user Python installation. One Rust path through `object_store` serves
//! every destination kind alike (ARCHITECTURE.md, "PITR").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use cp_core::model::Destination;
use cp_runtime::secrets::SecretResolver;
use futures::TryStreamExt;
use object_store::{ObjectStore as _, ObjectStoreExt as _, PutPayload};
use serde::{Deserialize, Serialize};

use crate::dest::{DestinationError, Store};
use crate::id::{ArtifactName, BackupId};
use crate::manifest::Artifact;
use crate::pipeline::{ArtifactWriter, Codec, Identity, Meter};

/// The WAL sub-directory.
pub const WALS: &str = "wals";
/// The base backups' sub-directory.
pub const BASE: &str = "base";
/// A base backup's record.
pub const BACKUP_JSON: &str = "backup.json";
/// A base backup's archive.
pub const BASE_TAR: &str = "base.tar";
/// WAL segment size (PostgreSQL's default; initdb is never given another).
pub const SEGMENT_BYTES: u64 = 16 << 20;

/// What failed.
#[derive(Debug, thiserror::Error)]
pub enum PitrError {
    /// The destination.
    #[error(transparent)]
    Destination(#[from] DestinationError),
    /// Reading or writing a local file.
    #[error("{what} {}", path.display())]
    File {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The object store.
    #[error("{what} at destination `{destination}`")]
    Store {
        /// What was being done.
        what: String,
        /// The destination.
        destination: String,
        /// Why.
        #[source]
        source: object_store::Error,
    },
    /// A segment already archived with other contents (two clusters archiving to
    /// one place, or a restored cluster on an old timeline).
    #[error(
        "{name} is already archived with different contents: another cluster archives to the same place"
    )]
    Conflict {
        /// The file's name.
        name: String,
    },
    /// Not in the archive.
    #[error("{name} is not in the archive")]
    NotArchived {
        /// The file's name.
        name: String,
    },
    /// The configuration file `archive_command` reads.
    #[error("cannot read the archiver's configuration {}: {detail}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// pg_basebackup failed.
    #[error("pg_basebackup failed ({status}): {stderr}")]
    BaseBackup {
        /// Exit status.
        status: String,
        /// The end of its stderr.
        stderr: String,
    },
    /// Writing or reading the base backup's artifact.
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    /// A program could not start.
    #[error("cannot run {program}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A binary is missing.
    #[error(transparent)]
    Missing(#[from] cp_runtime::exec::MissingBinary),
    /// Nothing to restore from, or the target is outside the window.
    #[error("{0}")]
    Window(String),
}

/// Where the archive lives, without credentials (they come from the process
/// environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `GOOGLE_SERVICE_ACCOUNT_KEY`, `AZURE_STORAGE_ACCESS_KEY`, as object_store reads
/// them). What `pitr.json`, beside PostgreSQL's configuration, holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Target {
    /// A directory (absolute): `<destination>/pitr/<env>`.
    Local {
        /// The directory.
        dir: PathBuf,
    },
    /// S3 or compatible.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key prefix, ending in `pitr/<env>`.
        prefix: String,
        /// Region.
        region: Option<String>,
        /// Endpoint.
        endpoint: Option<String>,
    },
    /// Google Cloud Storage.
    Gcs {
        /// Bucket.
        bucket: String,
        /// Key prefix.
        prefix: String,
    },
    /// Azure Blob Storage.
    Azure {
        /// Account.
        account: String,
        /// Container.
        container: String,
        /// Key prefix.
        prefix: String,
    },
}

fn join(prefix: &str, rest: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        rest.to_owned()
    } else {
        format!("{p}/{rest}")
    }
}

impl Target {
    /// The archive of environment `env` in `dest` (a relative local path is taken
    /// from `project_root`).
    pub fn of(dest: &Destination, env: &str, project_root: &Path) -> Target {
        let rest = format!("pitr/{env}");
        match dest {
            Destination::Local { path } => {
                let dir = if Path::new(path).is_absolute() {
                    PathBuf::from(path)
                } else {
                    project_root.join(path)
                };
                Target::Local {
                    dir: dir.join("pitr").join(env),
                }
            }
            Destination::S3 {
                bucket,
                prefix,
                region,
                endpoint,
                ..
            } => Target::S3 {
                bucket: bucket.clone(),
                prefix: join(prefix, &rest),
                region: region.clone(),
                endpoint: endpoint.clone(),
            },
            Destination::Gcs { bucket, prefix, .. } => Target::Gcs {
                bucket: bucket.clone(),
                prefix: join(prefix, &rest),
            },
            Destination::Azure {
                account,
                container,
                prefix,
                ..
            } => Target::Azure {
                account: account.clone(),
                container: container.clone(),
                prefix: join(prefix, &rest),
            },
        }
    }

    /// The destination of sub-directory `sub` (`wals`, `base`), credentials from
    /// the environment.
    fn sub(&self, sub: &str) -> Destination {
        match self {
            Target::Local { dir } => Destination::Local {
                path: dir.join(sub).to_string_lossy().into_owned(),
            },
            Target::S3 {
                bucket,
                prefix,
                region,
                endpoint,
            } => Destination::S3 {
                bucket: bucket.clone(),
                prefix: join(prefix, sub),
                region: region.clone(),
                endpoint: endpoint.clone(),
                access_key_id: None,
                secret_access_key: None,
            },
            Target::Gcs { bucket, prefix } => Destination::Gcs {
                bucket: bucket.clone(),
                prefix: join(prefix, sub),
                service_account_key: None,
            },
            Target::Azure {
                account,
                container,
                prefix,
            } => Destination::Azure {
                account: account.clone(),
                container: container.clone(),
                prefix: join(prefix, sub),
                access_key: None,
            },
        }
    }
}

/// What `archive_command` and `restore_command` read (`pitr.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveConfig {
    /// The environment.
    pub env: String,
    /// The destination's name.
    pub destination: String,
    /// Where.
    pub target: Target,
}

impl ArchiveConfig {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<Self, PitrError> {
        let text = std::fs::read(path).map_err(|e| PitrError::Config {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        serde_json::from_slice(&text).map_err(|e| PitrError::Config {
            path: path.to_owned(),
            detail: e.to_string(),
        })
    }
}

/// The archive, open: the WAL and the base backups, each a [`Store`].
#[derive(Debug, Clone)]
pub struct Archive {
    /// WAL segments and history files.
    pub wals: Store,
    /// Base backups (one "set" each).
    pub base: Store,
}

impl Archive {
    /// Opens the archive at `target`. Credentials: from `secrets` for the
    /// environment's own destination settings when given, else the process
    /// environment.
    pub async fn open(
        name: &str,
        target: &Target,
        dest: Option<&Destination>,
    ) -> Result<Archive, PitrError> {
        let resolver = SecretResolver::read_only(None);
        Self::open_with(name, target, dest, &resolver).await
    }

    /// Opens the archive at `target`, resolving `dest`'s credentials with `secrets`.
    pub async fn open_with(
        name: &str,
        target: &Target,
        dest: Option<&Destination>,
        secrets: &SecretResolver,
    ) -> Result<Archive, PitrError> {
        let with_creds = |mut d: Destination| {
            match (&mut d, dest) {
                (
                    Destination::S3 {
                        access_key_id,
                        secret_access_key,
                        ..
                    },
                    Some(Destination::S3 {
                        access_key_id: k,
                        secret_access_key: s,
                        ..
                    }),
                ) => {
                    *access_key_id = k.clone();
                    *secret_access_key = s.clone();
                }
                (
                    Destination::Gcs {
                        service_account_key,
                        ..
                    },
                    Some(Destination::Gcs {
                        service_account_key: k,
                        ..
                    }),
                ) => *service_account_key = k.clone(),
                (
                    Destination::Azure { access_key, .. },
                    Some(Destination::Azure { access_key: k, .. }),
                ) => *access_key = k.clone(),
                _ => {}
            }
            d
        };
        let root = Path::new("/");
        Ok(Archive {
            wals: Store::build(name, &with_creds(target.sub(WALS)), root, secrets).await?,
            base: Store::build(name, &with_creds(target.sub(BASE)), root, secrets).await?,
        })
    }
}

/// True for a WAL segment's name (24 hex digits).
pub fn is_segment(name: &str) -> bool {
    name.len() == 24 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The key of a WAL file inside `wals/` (Barman Cloud's: segments under their first
/// 16 hex digits, the rest at the top), plus `.zst`.
pub fn wal_key(name: &str) -> Result<String, PitrError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
    if !ok || name.starts_with('.') {
        return Err(PitrError::NotArchived {
            name: name.to_owned(),
        });
    }
    Ok(if is_segment(name) {
        format!("{}/{name}.zst", &name[..16])
    } else {
        format!("{name}.zst")
    })
}

fn store_err(store: &Store, what: String) -> impl FnOnce(object_store::Error) -> PitrError + '_ {
    move |source| PitrError::Store {
        what,
        destination: store.name().to_owned(),
        source,
    }
}

async fn get(store: &Store, key: &str) -> Result<Option<Bytes>, PitrError> {
    let path = store.object(key);
    match store.inner().get(&path).await {
        Ok(r) => Ok(Some(
            r.bytes()
                .await
                .map_err(store_err(store, format!("reading {path}")))?,
        )),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(store_err(store, format!("reading {path}"))(e)),
    }
}

/// `archive_command`: ships WAL file `name` (at `path`) to the archive, compressed.
/// Succeeds without writing when the same file is already there (PostgreSQL retries
/// after a crash between shipping and recording); refuses different contents.
pub async fn wal_push(archive: &Archive, path: &Path, name: &str) -> Result<(), PitrError> {
    let key = wal_key(name)?;
    let plain = std::fs::read(path).map_err(|source| PitrError::File {
        what: "reading",
        path: path.to_owned(),
        source,
    })?;
    if let Some(existing) = get(&archive.wals, &key).await? {
        let old = zstd::decode_all(&existing[..]).map_err(|source| PitrError::File {
            what: "decompressing the archived copy of",
            path: path.to_owned(),
            source,
        })?;
        return if old == plain {
            Ok(())
        } else {
            Err(PitrError::Conflict {
                name: name.to_owned(),
            })
        };
    }
    let packed = zstd::encode_all(&plain[..], 3).map_err(|source| PitrError::File {
        what: "compressing",
        path: path.to_owned(),
        source,
    })?;
    let at = archive.wals.object(&key);
    archive
        .wals
        .inner()
        .put(&at, PutPayload::from(packed))
        .await
        .map_err(store_err(&archive.wals, format!("writing {at}")))?;
    Ok(())
}

/// `restore_command`: fetches WAL file `name` into `path`. [`PitrError::NotArchived`]
/// when absent (PostgreSQL then ends recovery there, or asks for the next timeline).
pub async fn wal_fetch(archive: &Archive, name: &str, path: &Path) -> Result<(), PitrError> {
    let key = wal_key(name)?;
    let Some(packed) = get(&archive.wals, &key).await? else {
        return Err(PitrError::NotArchived {
            name: name.to_owned(),
        });
    };
    let plain = zstd::decode_all(&packed[..]).map_err(|source| PitrError::File {
        what: "decompressing the archived",
        path: PathBuf::from(name),
        source,
    })?;
    let tmp = path.with_extension("cp-fetch");
    std::fs::write(&tmp, &plain)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|source| PitrError::File {
            what: "writing",
            path: path.to_owned(),
            source,
        })
}

/// An LSN (`0/16B3748`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parses `X/Y`.
    pub fn parse(s: &str) -> Option<Lsn> {
        let (hi, lo) = s.trim().split_once('/')?;
        let hi = u64::from_str_radix(hi, 16).ok()?;
        let lo = u64::from_str_radix(lo, 16).ok()?;
        (hi <= u64::from(u32::MAX) && lo <= u64::from(u32::MAX)).then_some(Lsn((hi << 32) | lo))
    }

    /// The name of the segment holding this LSN on `timeline`.
    pub fn segment(self, timeline: u32) -> String {
        let seg = self.0 / SEGMENT_BYTES;
        let per_log = 0x1_0000_0000 / SEGMENT_BYTES;
        format!("{timeline:08X}{:08X}{:08X}", seg / per_log, seg % per_log)
    }
}

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// The segment after `name` on the same timeline.
pub fn next_segment(name: &str) -> Option<String> {
    if !is_segment(name) {
        return None;
    }
    let tli = u32::from_str_radix(&name[..8], 16).ok()?;
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..], 16).ok()?;
    let per_log = 0x1_0000_0000 / SEGMENT_BYTES;
    let n = log * per_log + seg + 1;
    Some(format!("{tli:08X}{:08X}{:08X}", n / per_log, n % per_log))
}

/// A base backup's record (`backup.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BaseBackup {
    /// Its id (when it started).
    pub id: String,
    /// When it started.
    pub started: DateTime<Utc>,
    /// When it ended: the earliest time a restore from it can reach.
    pub finished: DateTime<Utc>,
    /// WAL start point.
    pub start_lsn: String,
    /// WAL end point (consistent from here).
    pub end_lsn: String,
    /// Timeline.
    pub timeline: u32,
    /// The segment holding the start point: restores need every segment from it.
    pub start_wal: String,
    /// The archive.
    pub artifact: Artifact,
}

/// What `pg_basebackup` needs.
#[derive(Debug)]
pub struct BaseSource<'a> {
    /// The server.
    pub endpoint: &'a cp_runtime::probe::Endpoint,
    /// The superuser's password.
    pub password: &'a cp_runtime::secrets::Secret,
    /// The configured major version.
    pub major: &'a str,
}

/// The start point and timeline named by `backup_label`, the first member of a base
/// backup's tar (`START WAL LOCATION: 0/2000028 (file ...)`, `START TIMELINE: 1`).
fn backup_label(tar: &[u8]) -> Option<(String, u32)> {
    let field = |from: usize, to: usize| {
        std::str::from_utf8(tar.get(from..to)?)
            .ok()
            .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' '))
    };
    if field(0, 100)? != "backup_label" {
        return None;
    }
    let size = usize::from_str_radix(field(124, 136)?, 8).ok()?;
    let body = std::str::from_utf8(tar.get(512..512 + size)?).ok()?;
    let value = |key: &str| body.lines().find_map(|l| l.strip_prefix(key));
    let lsn = value("START WAL LOCATION: ")?
        .split_whitespace()
        .next()?
        .to_owned();
    let timeline = value("START TIMELINE: ")
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(1);
    Some((lsn, timeline))
}

/// `pg_current_wal_lsn()` of the source, as text.
async fn current_wal_lsn(src: &BaseSource<'_>) -> Option<String> {
    use sqlx::Connection as _;
    let o = src
        .endpoint
        .pg_options()
        .username(cp_core::serverconf::POSTGRES_SUPERUSER)
        .password(src.password.expose())
        .database("postgres");
    let mut c = sqlx::PgConnection::connect_with(&o).await.ok()?;
    let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(&mut c)
        .await
        .ok()?;
    let _ = c.close().await;
    Some(lsn)
}

/// What `pg_stat_archiver` and `pg_wal/archive_status` say of the archiver.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiverStats {
    /// `last_archived_time`.
    pub last_archived: Option<DateTime<Utc>>,
    /// `failed_count`.
    pub failed: i64,
    /// WAL files waiting to be archived (`.ready`).
    pub pending: i64,
}

/// Reads the archiver's statistics as the superuser.
pub async fn archiver_stats(
    endpoint: &cp_runtime::probe::Endpoint,
    password: &cp_runtime::secrets::Secret,
) -> Result<ArchiverStats, sqlx::Error> {
    use sqlx::Connection as _;
    let o = endpoint
        .pg_options()
        .username(cp_core::serverconf::POSTGRES_SUPERUSER)
        .password(password.expose())
        .database("postgres");
    let mut c = sqlx::PgConnection::connect_with(&o).await?;
    let (last_archived, failed): (Option<DateTime<Utc>>, i64) =
        sqlx::query_as("SELECT last_archived_time, failed_count FROM pg_stat_archiver")
            .fetch_one(&mut c)
            .await?;
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
    )
    .fetch_one(&mut c)
    .await?;
    let _ = c.close().await;
    Ok(ArchiverStats {
        last_archived,
        failed,
        pending,
    })
}

/// Runs `CHECKPOINT` as the superuser. After PostgreSQL starts, its checkpointer can
/// be asleep for up to `checkpoint_timeout` (it went to sleep while the server was
/// still starting, when `archive_timeout` does not count); a checkpoint request
/// wakes it, and from then on `archive_timeout` switches segments as it should.
/// Without it, a restored server's first minutes of WAL may not be archived until
/// the next checkpoint.
pub async fn wake_checkpointer(
    endpoint: &cp_runtime::probe::Endpoint,
    password: &cp_runtime::secrets::Secret,
) -> Result<(), sqlx::Error> {
    use sqlx::Connection as _;
    let o = endpoint
        .pg_options()
        .username(cp_core::serverconf::POSTGRES_SUPERUSER)
        .password(password.expose())
        .database("postgres");
    let mut c = sqlx::PgConnection::connect_with(&o).await?;
    sqlx::query("CHECKPOINT").execute(&mut c).await?;
    let _ = c.close().await;
    Ok(())
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().rev().take(8).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Takes a base backup with `pg_basebackup` (tar to stdout, WAL from the archive)
/// through the backup pipeline into `archive.base/<id>/base.tar.zst`; the record is
/// written last, so a base backup without `backup.json` is incomplete and unused.
pub async fn base_backup(
    archive: &Archive,
    src: &BaseSource<'_>,
    codec: &Codec,
    now: DateTime<Utc>,
) -> Result<BaseBackup, PitrError> {
    let program = cp_runtime::exec::find_postgres_binary("pg_basebackup", src.major)?;
    let id = BackupId::new(now);
    let mut cmd = cp_runtime::exec::tokio_command(&program);
    cmd.args([
        "-h",
        &src.endpoint.host,
        "-p",
        &src.endpoint.port.to_string(),
        "-U",
        cp_core::serverconf::POSTGRES_SUPERUSER,
        "-D",
        "-",
        "-F",
        "tar",
        "-X",
        "none",
        "-c",
        "fast",
        "-v",
        "-w",
    ])
    .env("PGPASSWORD", src.password.expose())
    .env("PGCONNECT_TIMEOUT", "10")
    .envs(src.endpoint.libpq_tls_env())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| PitrError::Spawn {
        program: program.display().to_string(),
        source,
    })?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut s).await;
        s
    });
    // The tar's first member is `backup_label`, which names the start point
    // (`pg_basebackup -v` prints it only when it fetches WAL itself): read that much
    // ahead, then stream all of it on.
    let mut head = Vec::with_capacity(4096);
    let mut buf = [0u8; 4096];
    while head.len() < 4096 {
        let n = tokio::io::AsyncReadExt::read(&mut stdout, &mut buf)
            .await
            .map_err(|source| PitrError::Spawn {
                program: program.display().to_string(),
                source,
            })?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let label = backup_label(&head);
    let stdout = tokio::io::AsyncReadExt::chain(std::io::Cursor::new(head), stdout);
    let name = ArtifactName::new(BASE_TAR).expect("valid");
    let mut w = ArtifactWriter::start(&archive.base, &id, name, codec, Meter::default());
    let copied = w.copy_from(stdout).await;
    let status = child.wait().await.map_err(|source| PitrError::Spawn {
        program: program.display().to_string(),
        source,
    })?;
    let stderr = err_task.await.unwrap_or_default();
    if !status.success() {
        drop(w);
        return Err(PitrError::BaseBackup {
            status: status.to_string(),
            stderr: tail(&stderr),
        });
    }
    copied?;
    let artifact = w.finish().await?;
    let (start_lsn, timeline) = label.unwrap_or_default();
    // The server's WAL position once the backup ended: at or after the backup's end
    // point, so a recovery target at or past it is always consistent.
    let end_lsn = current_wal_lsn(src).await.unwrap_or_default();
    let Some(start) = Lsn::parse(&start_lsn) else {
        return Err(PitrError::BaseBackup {
            status: "no start point".into(),
            stderr: tail(&stderr),
        });
    };
    let record = BaseBackup {
        id: id.to_string(),
        started: now,
        finished: Utc::now(),
        start_lsn,
        end_lsn,
        timeline,
        start_wal: start.segment(timeline),
        artifact,
    };
    archive
        .base
        .put(
            &id,
            BACKUP_JSON,
            serde_json::to_vec_pretty(&record).expect("serializes"),
        )
        .await?;
    Ok(record)
}

/// One archived WAL file: its name and when it was archived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    /// The file's name.
    pub name: String,
    /// When it reached the archive.
    pub at: DateTime<Utc>,
}

/// What the archive holds.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Complete base backups, oldest first.
    pub bases: Vec<BaseBackup>,
    /// Segments by name (sorted: timeline, then position).
    pub segments: BTreeMap<String, DateTime<Utc>>,
    /// Timelines after the first, by number, from their history files
    /// (`00000002.history`).
    pub timelines: BTreeMap<u32, History>,
}

/// A timeline's history file: where each ancestor timeline ended, and when the file
/// reached the archive (the moment the timeline was born: a restore promotes, the
/// history file is archived at once, and from then on the new timeline is the live
/// one).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct History {
    /// When the history file was archived.
    pub born: DateTime<Utc>,
    /// Ancestors, oldest first: the timeline and the LSN where it switched to the next.
    pub parents: Vec<(u32, Lsn)>,
}

impl History {
    /// Parses a history file's text (`<tli>\t<lsn>\t<reason>` lines, `#` comments).
    pub fn parse(text: &str, born: DateTime<Utc>) -> History {
        let parents = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let tli = f.next()?.parse().ok()?;
                let lsn = Lsn::parse(f.next()?)?;
                Some((tli, lsn))
            })
            .collect();
        History { born, parents }
    }
}

/// The parts of a segment's name: timeline and segment number.
fn segment_parts(name: &str) -> Option<(u32, u64)> {
    if !is_segment(name) {
        return None;
    }
    let tli = u32::from_str_radix(&name[..8], 16).ok()?;
    let log = u64::from_str_radix(&name[8..16], 16).ok()?;
    let seg = u64::from_str_radix(&name[16..], 16).ok()?;
    Some((tli, log * (0x1_0000_0000 / SEGMENT_BYTES) + seg))
}

fn segment_name(tli: u32, segno: u64) -> String {
    let per_log = 0x1_0000_0000 / SEGMENT_BYTES;
    format!("{tli:08X}{:08X}{:08X}", segno / per_log, segno % per_log)
}

/// One timeline of a chain: it holds WAL from `begin` up to `end` (the switch to the
/// next; `None` for the chain's last timeline).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The timeline.
    pub tli: u32,
    /// Where it begins.
    pub begin: Lsn,
    /// Where it switched to the next.
    pub end: Option<Lsn>,
}

/// Reads the archive's listing and every base backup's record.
pub async fn catalog(archive: &Archive) -> Result<Catalog, PitrError> {
    let mut out = Catalog::default();
    let mut histories = Vec::new();
    let metas: Vec<object_store::ObjectMeta> = archive
        .wals
        .inner()
        .list(archive.wals.root_path().as_ref())
        .try_collect()
        .await
        .map_err(store_err(&archive.wals, "listing the WAL archive".into()))?;
    for m in metas {
        let Some(file) = m.location.filename() else {
            continue;
        };
        let Some(name) = file.strip_suffix(".zst") else {
            continue;
        };
        if is_segment(name) {
            out.segments.insert(name.to_owned(), m.last_modified);
        } else if let Some(tli) = name
            .strip_suffix(".history")
            .filter(|t| t.len() == 8)
            .and_then(|t| u32::from_str_radix(t, 16).ok())
        {
            histories.push((tli, name.to_owned(), m.last_modified));
        }
    }
    for (tli, name, born) in histories {
        let key = wal_key(&name)?;
        if let Some(packed) = get(&archive.wals, &key).await?
            && let Ok(plain) = zstd::decode_all(&packed[..])
        {
            let h = History::parse(&String::from_utf8_lossy(&plain), born);
            out.timelines.insert(tli, h);
        }
    }
    for (id, listed) in archive.base.list().await? {
        if !listed.objects.contains_key(BACKUP_JSON) {
            continue;
        }
        if let Some(b) = archive.base.get(&id, BACKUP_JSON).await?
            && let Ok(rec) = serde_json::from_slice::<BaseBackup>(&b)
        {
            out.bases.push(rec);
        }
    }
    out.bases.sort_by_key(|a| a.started);
    Ok(out)
}

/// The recoverable window along one timeline's chain: from a base backup's end to
/// the last segment of the unbroken run of segments after its start (segments of
/// the chain's timelines, as PostgreSQL reads them); the first missing segment, if
/// later segments exist, is the gap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Window {
    /// The base backup the window starts from (the oldest).
    pub base: String,
    /// The earliest restorable time.
    pub earliest: DateTime<Utc>,
    /// The latest restorable time (when the last unbroken segment was archived).
    pub latest: DateTime<Utc>,
    /// The last segment of the unbroken run.
    pub last_segment: String,
    /// The timeline the latest restorable time is on.
    pub timeline: u32,
    /// A missing segment with later ones archived (restores cannot pass it).
    pub gap: Option<String>,
}

impl Catalog {
    /// The newest timeline (1 when no history file is archived).
    pub fn newest_timeline(&self) -> u32 {
        self.timelines.keys().next_back().copied().unwrap_or(1)
    }

    /// The timeline that was live at `t`: the newest one born at or before it. Each
    /// restore promotes a new timeline and replaces the live server with it, so the
    /// timelines' births order the server's lives.
    pub fn timeline_at(&self, t: DateTime<Utc>) -> u32 {
        self.timelines
            .iter()
            .filter(|(_, h)| h.born <= t)
            .map(|(tli, _)| *tli)
            .max()
            .unwrap_or(1)
    }

    /// Timeline `tli` and its ancestors, oldest first.
    pub fn chain(&self, tli: u32) -> Vec<Span> {
        let mut out = Vec::new();
        let mut begin = Lsn(0);
        if let Some(h) = self.timelines.get(&tli) {
            for (parent, switch) in &h.parents {
                out.push(Span {
                    tli: *parent,
                    begin,
                    end: Some(*switch),
                });
                begin = *switch;
            }
        }
        out.push(Span {
            tli,
            begin,
            end: None,
        });
        out
    }

    /// True when base backup `b` lies on timeline `tli`'s chain (its timeline is one
    /// of the chain's, and it began before that timeline switched to the next).
    pub fn on_chain(&self, b: &BaseBackup, tli: u32) -> bool {
        let start = Lsn::parse(&b.start_lsn).unwrap_or(Lsn(0));
        self.chain(tli)
            .iter()
            .any(|s| s.tli == b.timeline && s.end.is_none_or(|e| start < e))
    }

    /// The run of segments from `start` on along timeline `tli`'s chain (for each
    /// position the newest timeline of the chain begun by then whose segment is
    /// archived, as PostgreSQL's recovery looks): the last present one, and the
    /// first missing one when a later segment of the chain exists.
    pub fn run_from(
        &self,
        start: &str,
        tli: u32,
    ) -> (Option<(String, DateTime<Utc>)>, Option<String>) {
        let chain = self.chain(tli);
        let Some((_, mut segno)) = segment_parts(start) else {
            return (None, None);
        };
        let begin_seg = |s: &Span| s.begin.0 / SEGMENT_BYTES;
        let mut last = None;
        loop {
            let found = chain
                .iter()
                .rev()
                .filter(|s| {
                    begin_seg(s) <= segno && s.end.is_none_or(|e| segno <= e.0 / SEGMENT_BYTES)
                })
                .map(|s| segment_name(s.tli, segno))
                .find_map(|n| self.segments.get(&n).map(|at| (n, *at)));
            match found {
                Some(hit) => {
                    last = Some(hit);
                    segno += 1;
                }
                None => {
                    let later = self.segments.keys().any(|n| {
                        segment_parts(n).is_some_and(|(t, s)| {
                            s > segno
                                && chain.iter().any(|c| {
                                    c.tli == t
                                        && begin_seg(c) <= s
                                        && c.end.is_none_or(|e| s <= e.0 / SEGMENT_BYTES)
                                })
                        })
                    });
                    return (
                        last,
                        later.then(|| {
                            segment_name(
                                chain
                                    .iter()
                                    .rev()
                                    .find(|s| begin_seg(s) <= segno)
                                    .map_or(tli, |s| s.tli),
                                segno,
                            )
                        }),
                    );
                }
            }
        }
    }

    /// The window reachable from base backup `b` along timeline `tli`'s chain.
    pub fn window_of(&self, b: &BaseBackup, tli: u32) -> Option<Window> {
        let (last, gap) = self.run_from(&b.start_wal, tli);
        let (last_segment, latest) = last?;
        let timeline = segment_parts(&last_segment).map_or(tli, |(t, _)| t);
        Some(Window {
            base: b.id.clone(),
            earliest: b.finished,
            latest: latest.max(b.finished),
            last_segment,
            timeline,
            gap,
        })
    }

    /// The whole window: earliest from the oldest base backup whose WAL run holds
    /// (along the timeline live when it ended), latest along the newest timeline from
    /// the newest base backup on its chain.
    pub fn window(&self) -> Option<Window> {
        let tli = self.newest_timeline();
        let newest = self
            .bases
            .iter()
            .rev()
            .filter(|b| self.on_chain(b, tli))
            .find_map(|b| self.window_of(b, tli))?;
        let oldest = self
            .bases
            .iter()
            .find_map(|b| self.window_of(b, self.timeline_at(b.finished)))?;
        Some(Window {
            base: oldest.base,
            earliest: oldest.earliest,
            ..newest
        })
    }
}

/// Where a restore goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum RecoveryTarget {
    /// A moment (UTC).
    Time(DateTime<Utc>),
    /// An LSN.
    Lsn(String),
    /// The end of the archive.
    Latest,
}

impl std::fmt::Display for RecoveryTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecoveryTarget::Time(t) => write!(f, "{}", t.to_rfc3339()),
            RecoveryTarget::Lsn(l) => write!(f, "LSN {l}"),
            RecoveryTarget::Latest => f.write_str("the end of the archive"),
        }
    }
}

/// What a restore replays: the base backup, its window, and the timeline to follow
/// (`recovery_target_timeline`).
#[derive(Debug, Clone)]
pub struct Chosen {
    /// The base backup.
    pub base: BaseBackup,
    /// The window reachable from it.
    pub window: Window,
    /// The timeline the target is on: for a time, the one live then (a restore to a
    /// time before an earlier restore follows the old timeline, not the newest);
    /// otherwise the newest.
    pub timeline: u32,
}

/// The base backup a restore to `target` starts from, refusing a target outside the
/// window or behind a missing segment (named).
pub fn choose(cat: &Catalog, target: &RecoveryTarget) -> Result<Chosen, PitrError> {
    if cat.bases.is_empty() {
        return Err(PitrError::Window(
            "no base backup in the archive: take one with `controlplane backup --base`".into(),
        ));
    }
    let tli = match target {
        RecoveryTarget::Time(t) => cat.timeline_at(*t),
        _ => cat.newest_timeline(),
    };
    let mut usable = cat.bases.iter().rev().filter(|b| cat.on_chain(b, tli));
    let pick = match target {
        RecoveryTarget::Time(t) => usable.find(|b| b.finished <= *t),
        RecoveryTarget::Lsn(l) => {
            let want = Lsn::parse(l).ok_or_else(|| {
                PitrError::Window(format!("`{l}` is not an LSN (like 0/16B3748)"))
            })?;
            usable.find(|b| Lsn::parse(&b.end_lsn).is_some_and(|e| e <= want))
        }
        RecoveryTarget::Latest => usable.next(),
    };
    let Some(base) = pick else {
        let first = &cat.bases[0];
        return Err(PitrError::Window(format!(
            "{target} is before the recoverable window, which starts at {} (base backup {})",
            first.finished.to_rfc3339(),
            first.id
        )));
    };
    let Some(w) = cat.window_of(base, tli) else {
        return Err(PitrError::Window(format!(
            "base backup {} has no archived WAL (its first segment {} is missing)",
            base.id, base.start_wal
        )));
    };
    if let (RecoveryTarget::Time(t), Some(gap)) = (target, &w.gap)
        && *t > w.latest
    {
        return Err(PitrError::Window(format!(
            "WAL segment {gap} is missing from the archive: restores cannot pass it; the recoverable window from base backup {} ends at {} (segment {})",
            base.id,
            w.latest.to_rfc3339(),
            w.last_segment
        )));
    }
    if let (RecoveryTarget::Time(t), None) = (target, &w.gap)
        && *t > w.latest + chrono::Duration::seconds(1)
        && *t > Utc::now()
    {
        return Err(PitrError::Window(format!(
            "{target} is in the future; the archive reaches {}",
            w.latest.to_rfc3339()
        )));
    }
    Ok(Chosen {
        base: base.clone(),
        window: w,
        timeline: tli,
    })
}

impl BaseBackup {
    /// Its id, parsed.
    pub fn backup_id(&self) -> Result<BackupId, PitrError> {
        BackupId::parse(&self.id).map_err(|e| PitrError::Window(e.to_string()))
    }
}

/// The base backup's tar stream, checked against both digests as it is read.
pub async fn open_base(
    archive: &Archive,
    id: &BackupId,
    base: &BaseBackup,
    identity: Option<&Identity>,
) -> Result<Box<dyn tokio::io::AsyncRead + Send + Unpin + 'static>, PitrError> {
    let r = crate::pipeline::open(&archive.base, id, &base.artifact, identity).await?;
    Ok(Box::new(r))
}

/// What retention deletes: base backups older than the newest one that finished
/// before `now - window` (that one is kept: it starts the window), and every WAL
/// file older than the oldest kept base backup's first segment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct PitrPrune {
    /// Base backups deleted.
    pub bases: Vec<String>,
    /// WAL segments deleted.
    pub segments: usize,
}

/// Applies the recovery window.
pub async fn prune(
    archive: &Archive,
    window: std::time::Duration,
    now: DateTime<Utc>,
) -> Result<PitrPrune, PitrError> {
    let cat = catalog(archive).await?;
    let cutoff =
        now - chrono::Duration::seconds(i64::try_from(window.as_secs()).unwrap_or(i64::MAX / 2));
    let Some(keep_from) = cat.bases.iter().rposition(|b| b.finished <= cutoff) else {
        return Ok(PitrPrune::default());
    };
    let mut out = PitrPrune::default();
    let listed = archive.base.list().await?;
    for b in &cat.bases[..keep_from] {
        if let Ok(id) = BackupId::parse(&b.id)
            && let Some(objs) = listed.get(&id)
        {
            archive.base.delete_set(&id, objs).await?;
            out.bases.push(b.id.clone());
        }
    }
    // By position, whatever the timeline: a segment before the kept base backup's
    // first is needed by no restore the window allows.
    let first = segment_parts(&cat.bases[keep_from].start_wal).map_or(0, |(_, n)| n);
    for name in cat
        .segments
        .keys()
        .filter(|n| segment_parts(n).is_some_and(|(_, segno)| segno < first))
    {
        let key = wal_key(name)?;
        let at = archive.wals.object(&key);
        match archive.wals.inner().delete(&at).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => out.segments += 1,
            Err(e) => return Err(store_err(&archive.wals, format!("deleting {at}"))(e)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_and_segments() {
        let l = Lsn::parse("0/2000028").unwrap();
        assert_eq!(l.segment(1), "000000010000000000000002");
        assert_eq!(l.to_string(), "0/2000028");
        assert_eq!(
            Lsn::parse("1/FF000000").unwrap().segment(2),
            "0000000200000001000000FF"
        );
        assert_eq!(
            next_segment("0000000100000000000000FF").unwrap(),
            "000000010000000100000000"
        );
        assert_eq!(
            wal_key("000000010000000000000002").unwrap(),
            "0000000100000000/000000010000000000000002.zst"
        );
        assert_eq!(wal_key("00000002.history").unwrap(), "00000002.history.zst");
        assert!(wal_key("../x").is_err());
    }

    fn record(started: DateTime<Utc>, secs: i64, start_wal: &str) -> BaseBackup {
        BaseBackup {
            id: BackupId::new(started).to_string(),
            started,
            finished: started + chrono::Duration::seconds(secs),
            start_lsn: format!("0/{}000028", &start_wal[23..]),
            end_lsn: format!("0/{}000100", &start_wal[23..]),
            timeline: u32::from_str_radix(&start_wal[..8], 16).unwrap(),
            start_wal: start_wal.to_owned(),
            artifact: Artifact {
                name: ArtifactName::new(BASE_TAR).unwrap(),
                size: 0,
                stored_size: 0,
                sha256: String::new(),
                plain_sha256: String::new(),
            },
        }
    }

    /// Retention by recovery window on a real (local) archive: base backups older
    /// than the newest one that ended before `now - window` go, with every segment
    /// before that one's first; the window still reaches back `window`.
    #[tokio::test]
    async fn retention_keeps_the_newest_base_backup_older_than_the_window() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("pitr/dev");
        for sub in [WALS, BASE] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let target = Target::Local { dir };
        let archive = Archive::open("local", &target, None)
            .await
            .unwrap_or_else(|e| panic!("{}", cp_runtime::error::chain(&e)));
        let day = |d: i64| DateTime::from_timestamp(1_800_000_000 + d * 86_400, 0).unwrap();
        // Base backups on days 0, 3, 6 and 9, starting at segments 2, 4, 6 and 8;
        // segments 1..=9 archived.
        let mut ids = Vec::new();
        for (d, seg) in [(0, "2"), (3, "4"), (6, "6"), (9, "8")] {
            let b = record(day(d), 60, &format!("00000001000000000000000{seg}"));
            ids.push(b.id.clone());
            let id = b.backup_id().unwrap();
            archive
                .base
                .put(&id, BACKUP_JSON, serde_json::to_vec(&b).unwrap())
                .await
                .unwrap();
        }
        for n in 1..=9 {
            let seg = format!("00000001000000000000000{n}");
            let f = tmp.path().join(&seg);
            std::fs::write(&f, vec![n as u8; 64]).unwrap();
            wal_push(&archive, &f, &seg).await.unwrap();
        }
        // Now: day 10; a 5-day window needs the base backup of day 3 (the newest
        // that ended before day 5); days 0's goes, and segments 1..=3.
        let window = std::time::Duration::from_secs(5 * 86_400);
        let pruned = prune(&archive, window, day(10)).await.unwrap();
        assert_eq!(pruned.bases, [ids[0].clone()]);
        assert_eq!(pruned.segments, 3);
        let cat = catalog(&archive).await.unwrap();
        assert_eq!(cat.bases.len(), 3);
        assert_eq!(
            cat.segments.keys().next().map(String::as_str),
            Some("000000010000000000000004")
        );
        let w = cat.window().unwrap();
        assert_eq!(w.earliest, day(3) + chrono::Duration::seconds(60));
        assert!(w.earliest <= day(10) - chrono::Duration::days(5));
        // Nothing more to remove a second time.
        assert_eq!(
            prune(&archive, window, day(10)).await.unwrap(),
            PitrPrune::default()
        );
    }

    /// A restore to a time before an earlier restore follows the timeline live then;
    /// the window follows the newest timeline across the switch.
    #[test]
    fn timelines_by_birth_and_the_window_across_a_switch() {
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let mut cat = Catalog::default();
        cat.bases.push(record(t(0), 5, "000000010000000000000002"));
        for (n, at) in [("02", 10), ("03", 20), ("04", 30), ("05", 40)] {
            cat.segments
                .insert(format!("0000000100000000000000{n}"), t(at));
        }
        // A restore to t(25) (in segment 4) promoted timeline 2 at t(50).
        cat.timelines.insert(
            2,
            History::parse("1\t0/4000100\tbefore 2027-01-15 08:00:25+00\n", t(50)),
        );
        for (n, at) in [("04", 51), ("05", 60), ("06", 70)] {
            cat.segments
                .insert(format!("0000000200000000000000{n}"), t(at));
        }
        assert_eq!(cat.timeline_at(t(35)), 1);
        assert_eq!(cat.timeline_at(t(55)), 2);
        assert_eq!(cat.newest_timeline(), 2);
        let w = cat.window().unwrap();
        assert_eq!(w.timeline, 2);
        assert_eq!(w.last_segment, "000000020000000000000006");
        assert_eq!(w.latest, t(70));
        assert_eq!(w.gap, None);
        let c = choose(&cat, &RecoveryTarget::Time(t(35))).unwrap();
        assert_eq!(c.timeline, 1);
        let c = choose(&cat, &RecoveryTarget::Latest).unwrap();
        assert_eq!(c.timeline, 2);
        assert!(cat.on_chain(&cat.bases[0], 2));
    }

    #[test]
    fn a_gap_ends_the_window_and_names_the_segment() {
        let t = |s: i64| DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap();
        let mut cat = Catalog::default();
        for (i, n) in ["02", "03", "05"].iter().enumerate() {
            cat.segments
                .insert(format!("0000000100000000000000{n}"), t(10 * (i as i64 + 1)));
        }
        cat.bases.push(BaseBackup {
            id: BackupId::new(t(0)).to_string(),
            started: t(0),
            finished: t(5),
            start_lsn: "0/2000028".into(),
            end_lsn: "0/2000100".into(),
            timeline: 1,
            start_wal: "000000010000000000000002".into(),
            artifact: Artifact {
                name: ArtifactName::new(BASE_TAR).unwrap(),
                size: 0,
                stored_size: 0,
                sha256: String::new(),
                plain_sha256: String::new(),
            },
        });
        let w = cat.window().unwrap();
        assert_eq!(w.latest, t(20));
        assert_eq!(w.timeline, 1);
        assert_eq!(w.gap.as_deref(), Some("000000010000000000000004"));
        let e = choose(&cat, &RecoveryTarget::Time(t(25)))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("000000010000000000000004") && e.contains("ends at"),
            "{e}"
        );
        assert!(choose(&cat, &RecoveryTarget::Time(t(15))).is_ok());
        let e = choose(&cat, &RecoveryTarget::Time(t(1)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("before the recoverable window"), "{e}");
    }
}
