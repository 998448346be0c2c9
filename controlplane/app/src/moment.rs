//! One recovery point across services: `restore --to-time T` of a whole environment.
//! PostgreSQL replays WAL to exactly T ([`crate::pitr`]); Redis and OpenBao come from
//! the newest logical set finished at or before T; JetStream from the nearest set
//! started at or after T, its streams then trimmed to the messages stored at or before
//! T ([`cp_backup::moment`] chooses). Everything is chosen and checked before anything
//! is touched; the view says, per service, how far from T it landed.

use chrono::{DateTime, Utc};
use cp_backup::moment::{self, SetTimes};
use cp_backup::pitr::{self, RecoveryTarget};
use cp_backup::run;
use cp_core::names::CoreKind;
use serde::Serialize;

use crate::error::AppError;
use crate::session::Session;

/// What a restore to T takes each service from.
#[derive(Debug, Clone)]
pub struct MomentPlan {
    /// T.
    pub at: DateTime<Utc>,
    /// The services, in restore order (PostgreSQL first).
    pub services: Vec<CoreKind>,
    /// The base backup PostgreSQL replays from (when PostgreSQL is restored).
    pub base: Option<String>,
    /// The set each other service comes from.
    pub sets: Vec<(CoreKind, SetTimes)>,
}

/// The services a restore to T covers: `--service` names, or every service the
/// environment backs up and runs.
pub fn services(s: &Session, asked: &[CoreKind]) -> Result<Vec<CoreKind>, AppError> {
    let b = run::settings(&s.env)?;
    let enabled = s.env.services.enabled();
    let chosen: Vec<CoreKind> = if asked.is_empty() {
        b.services
            .iter()
            .copied()
            .filter(|k| enabled.contains(k))
            .collect()
    } else {
        asked.to_vec()
    };
    // Restore order: PostgreSQL first (the only one that can still refuse late, on
    // the WAL), then the order a set restore uses.
    Ok(CoreKind::ALL
        .iter()
        .copied()
        .filter(|k| chosen.contains(k))
        .collect())
}

/// Chooses every service's source for a restore to `at`, refusing (before anything is
/// touched) when one has none.
pub async fn plan(
    s: &Session,
    at: DateTime<Utc>,
    services: &[CoreKind],
) -> Result<MomentPlan, AppError> {
    let mut base = None;
    if services.contains(&CoreKind::Postgres) {
        let (archive, _) = crate::pitr::archive(s).await?;
        let cat = pitr::catalog(&archive).await.map_err(crate::pitr::failed)?;
        let chosen = pitr::choose(&cat, &RecoveryTarget::Time(at)).map_err(crate::pitr::failed)?;
        base = Some(chosen.base.id);
    }
    let mut sets = Vec::new();
    if services.iter().any(|k| *k != CoreKind::Postgres) {
        let store = crate::backup::store(s, None).await?;
        let all = run::set_times(&store).await?;
        let mut refused = Vec::new();
        for k in services {
            match moment::choose(&all, *k, at) {
                Ok(Some(set)) => sets.push((*k, set.clone())),
                Ok(None) => {}
                Err(e) => refused.push(e.to_string()),
            }
        }
        if !refused.is_empty() {
            return Err(AppError::Usage(format!(
                "cannot restore {} to {}; nothing was touched:\n{}",
                s.env.name,
                at.to_rfc3339(),
                refused
                    .iter()
                    .map(|r| format!("  - {r}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )));
        }
    }
    Ok(MomentPlan {
        at,
        services: services.to_vec(),
        base,
        sets,
    })
}

/// The confirmation's lines: what each service is replaced by, then what it holds now.
pub async fn preview(s: &Session, p: &MomentPlan) -> Result<Vec<String>, AppError> {
    let mut out = Vec::new();
    if p.services.contains(&CoreKind::Postgres) {
        out.extend(crate::pitr::restore_preview(s, &RecoveryTarget::Time(p.at)).await?);
    }
    for (k, set) in &p.sets {
        out.push(match moment::side(*k) {
            Some(moment::Side::After) => format!(
                "{k}: every stream in set {} (taken {}), trimmed to the messages stored by {}",
                set.id,
                crate::views::rfc3339(set.started),
                crate::views::rfc3339(p.at)
            ),
            _ => format!(
                "{k}: replaced by set {} (finished {})",
                set.id,
                crate::views::rfc3339(set.finished)
            ),
        });
    }
    let others: Vec<CoreKind> = p.sets.iter().map(|(k, _)| *k).collect();
    out.extend(crate::backup::restore_preview(s, &others).await?);
    Ok(out)
}

/// Where one service landed.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LandedView {
    /// The service.
    pub service: CoreKind,
    /// Where its data came from: the base backup (PostgreSQL) or the set.
    pub source: String,
    /// The earliest moment its data can be from.
    pub from: DateTime<Utc>,
    /// The latest moment its data can be from.
    pub to: DateTime<Utc>,
    /// Seconds from T to the farther of `from` and `to`: 0 exactly at T, negative
    /// before it (that much newer data is missing), positive after.
    pub distance_seconds: f64,
    /// What was done, one line each.
    pub lines: Vec<String>,
}

/// A whole environment restored to one moment.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct MomentRestoreView {
    /// The environment.
    pub environment: String,
    /// T.
    pub at: DateTime<Utc>,
    /// Each service, in the order restored.
    pub services: Vec<LandedView>,
    /// Where PostgreSQL's replaced data directory was kept.
    pub replaced_kept_at: Option<String>,
    /// Seconds it took.
    pub seconds: f64,
}

/// `+1.5s` / `-12.0s` / `exactly`.
fn distance(d: f64) -> String {
    if d == 0.0 {
        "exactly at T".into()
    } else if d < 0.0 {
        format!("{:.1}s before T", -d)
    } else {
        format!("{d:.1}s after T")
    }
}

impl std::fmt::Display for MomentRestoreView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "restored {} to T = {} in {:.1}s:",
            self.environment,
            crate::views::rfc3339(self.at),
            self.seconds
        )?;
        for l in &self.services {
            writeln!(
                f,
                "  {:<8} {} (from {})",
                l.service.to_string(),
                distance(l.distance_seconds),
                l.source
            )?;
            for line in &l.lines {
                writeln!(f, "           {}", line.trim())?;
            }
        }
        if let Some(p) = &self.replaced_kept_at {
            writeln!(
                f,
                "the replaced PostgreSQL data directory is kept at {p} (remove it when done)"
            )?;
        }
        Ok(())
    }
}

fn secs(d: chrono::TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

/// Restores the plan's services to T. The caller confirmed ([`preview`]) and holds the
/// environment lock (a mutating session); this takes the backup lock. Every set's
/// artifacts are checked before anything is touched; PostgreSQL goes first.
pub async fn restore(s: &Session, p: &MomentPlan) -> Result<MomentRestoreView, AppError> {
    let _lock = run::lock(&s.state, "restore")?;
    let started = std::time::Instant::now();
    let store = crate::backup::store(s, None).await?;
    let mut manifests = std::collections::BTreeMap::new();
    for (k, set) in &p.sets {
        let m = run::manifest_of(&store, &set.id).await?;
        run::precheck(&store, &m, &[*k]).await?;
        manifests.insert(*k, m);
    }
    let mut services = Vec::new();
    let mut replaced_kept_at = None;
    if p.services.contains(&CoreKind::Postgres) {
        let v = crate::pitr::restore_locked(s, &RecoveryTarget::Time(p.at)).await?;
        replaced_kept_at = Some(v.replaced_kept_at);
        services.push(LandedView {
            service: CoreKind::Postgres,
            source: format!("base backup {}, WAL replayed to T", v.base),
            from: p.at,
            to: p.at,
            distance_seconds: 0.0,
            lines: v.recovery,
        });
    }
    for (k, set) in &p.sets {
        let restored = crate::backup::restore(s, s, &set.id, &[*k], None).await?;
        let mut lines = restored.restored;
        let source = format!("set {}", set.id);
        let landed = if *k == CoreKind::Nats {
            let streams = match &manifests[k].services[k].detail {
                cp_backup::manifest::Detail::Nats { streams } => {
                    streams.iter().map(|x| x.name.clone()).collect()
                }
                _ => Vec::new(),
            };
            let access = s.access().await?;
            let nats = access
                .nats
                .as_ref()
                .ok_or_else(|| AppError::Usage("NATS is disabled in this environment".into()))?;
            let trimmed = cp_backup::nats::trim_after(nats, &streams, p.at)
                .await
                .map_err(|e| {
                    AppError::Backup(run::BackupError::Restore {
                        service: CoreKind::Nats,
                        source: e,
                    })
                })?;
            for t in &trimmed {
                lines.push(format!(
                    "stream {}: {} message(s) stored after T removed, {} kept{}",
                    t.stream,
                    t.removed,
                    t.kept,
                    t.newest_kept
                        .map(|n| format!(", the newest stored {}", crate::views::rfc3339(n)))
                        .unwrap_or_default()
                ));
            }
            lines.push(format!(
                "consumer positions are those of the set, taken {:.1}s after T",
                secs(set.started - p.at)
            ));
            // The messages are exactly those stored by T (less any the stream's own
            // limits or acks removed before the set was taken).
            LandedView {
                service: *k,
                source: format!("{source}, trimmed to T"),
                from: p.at,
                to: p.at,
                distance_seconds: 0.0,
                lines,
            }
        } else {
            LandedView {
                service: *k,
                source,
                from: set.started,
                to: set.finished,
                distance_seconds: secs(set.started - p.at),
                lines,
            }
        };
        services.push(landed);
    }
    Ok(MomentRestoreView {
        environment: s.env.name.to_string(),
        at: p.at,
        services,
        replaced_kept_at,
        seconds: started.elapsed().as_secs_f64(),
    })
}
