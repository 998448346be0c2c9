//! JetStream streams: observe the streams the environment declares, plan them against
//! `cp_core::seedspec::streams` with the shared planner, refuse changes JetStream
//! cannot make (storage, retention) before touching anything, then create or update
//! the rest. Streams the environment does not declare are left alone (they may belong
//! to someone else), never deleted.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use cp_core::model::Environment;
use cp_core::names::StreamName;
use cp_core::plan::{self, Action, FieldChange, Layer, Observed, ObservedState, Plan, ResourceId};
use cp_core::seedspec;
use futures::TryStreamExt;
use serde_json::{Value, json};

use crate::{NatsAccess, Report, SeedError, SeedErrorKind};

const SERVICE: &str = "nats";

async fn connect_admin(nats: &NatsAccess) -> Result<jetstream::Context, SeedError> {
    Ok(cp_runtime::nats::jetstream_admin(nats).await?)
}

/// The canonical spec of an existing stream, in the shape of
/// [`seedspec::stream_spec`], so the planner compares like with like.
pub fn observed_spec(c: &stream::Config) -> Value {
    json!({
        "subjects": c.subjects,
        "retention": match c.retention {
            stream::RetentionPolicy::Limits => "limits",
            stream::RetentionPolicy::Interest => "interest",
            stream::RetentionPolicy::WorkQueue => "workqueue",
        },
        "max_age_secs": c.max_age.as_secs(),
        "max_bytes": c.max_bytes,
        "max_msgs": c.max_messages,
        "storage": match c.storage { stream::StorageType::File => "file", stream::StorageType::Memory => "memory" },
        "replicas": c.num_replicas,
        "discard": match c.discard { stream::DiscardPolicy::Old => "old", stream::DiscardPolicy::New => "new" },
        "duplicate_window_secs": c.duplicate_window.as_secs(),
    })
}

/// The JetStream config of a declared stream.
fn config(name: &str, s: &cp_core::model::Stream) -> stream::Config {
    use cp_core::model::{StreamDiscard, StreamRetention, StreamStorage};
    stream::Config {
        name: name.to_owned(),
        subjects: s.subjects.clone(),
        retention: match s.retention {
            StreamRetention::Limits => stream::RetentionPolicy::Limits,
            StreamRetention::Interest => stream::RetentionPolicy::Interest,
            StreamRetention::Workqueue => stream::RetentionPolicy::WorkQueue,
        },
        max_age: Duration::from_secs(s.max_age.as_secs()),
        max_bytes: s
            .max_bytes
            .map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX)),
        max_messages: s.max_msgs.unwrap_or(-1),
        storage: match s.storage {
            StreamStorage::File => stream::StorageType::File,
            StreamStorage::Memory => stream::StorageType::Memory,
        },
        num_replicas: usize::from(s.replicas),
        discard: match s.discard {
            StreamDiscard::Old => stream::DiscardPolicy::Old,
            StreamDiscard::New => stream::DiscardPolicy::New,
        },
        duplicate_window: Duration::from_secs(s.duplicate_window.as_secs()),
        ..Default::default()
    }
}

/// The streams that exist, among those the environment declares (one paged listing).
async fn observe_with(
    js: &jetstream::Context,
    env: &Environment,
    report: &mut Report,
) -> Result<Vec<Observed>, SeedError> {
    report.trips(1);
    let infos: Vec<stream::Info> = js.streams().try_collect().await.map_err(|e| {
        SeedError::from(SeedErrorKind::ListStreams { source: e.into() })
            .hint("check that JetStream is enabled for the account (`controlplane status`)")
    })?;
    Ok(infos
        .iter()
        .filter(|i| env.streams.keys().any(|n| n.as_str() == i.config.name))
        .map(|i| Observed {
            id: ResourceId::new(Layer::Streams, "stream", i.config.name.clone()),
            spec: Some(observed_spec(&i.config)),
            state: ObservedState::Present,
        })
        .collect())
}

/// What seeding would change on the streams, without changing anything.
pub async fn plan(nats: &NatsAccess, env: &Environment) -> Result<Plan, SeedError> {
    let observed = observe(nats, env, &mut Report::new(SERVICE)).await?;
    Ok(plan::plan(&seedspec::streams(env), &observed, false))
}

/// The declared streams that exist, with their configuration (one listing; never
/// writes).
pub async fn observe(
    nats: &NatsAccess,
    env: &Environment,
    report: &mut Report,
) -> Result<Vec<Observed>, SeedError> {
    if env.services.nats.is_none() || env.streams.is_empty() {
        return Ok(Vec::new());
    }
    let js = connect_admin(nats).await?;
    observe_with(&js, env, report).await
}

fn show(v: &Option<Value>) -> String {
    v.as_ref()
        .map_or_else(|| "(unset)".to_owned(), Value::to_string)
}

fn describe(changes: &[FieldChange]) -> String {
    changes
        .iter()
        .map(|c| {
            format!(
                "{} {} -> {}",
                c.path.trim_start_matches('/'),
                show(&c.before),
                show(&c.after)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The error for changes JetStream cannot make, naming every blocked stream, field,
/// old and new value, and what to do.
fn blocked_error(plan: &Plan, addr: &str, recreate: &[StreamName]) -> Option<SeedError> {
    let mut lines = Vec::new();
    let mut names = Vec::new();
    for s in &plan.steps {
        let Action::Blocked { changes, .. } = &s.action else {
            continue;
        };
        if recreate.iter().any(|n| n.as_str() == s.id.name) {
            continue;
        }
        for c in changes.iter().filter(|c| {
            seedspec::STREAM_FIXED_FIELDS
                .iter()
                .any(|f| c.path == *f || c.path.starts_with(&format!("{f}/")))
        }) {
            lines.push(format!(
                "stream {}: {} is {} but the environment wants {}",
                s.id.name,
                c.path.trim_start_matches('/'),
                show(&c.before),
                show(&c.after)
            ));
        }
        names.push(s.id.name.clone());
    }
    if lines.is_empty() {
        return None;
    }
    Some(
        SeedError::from(SeedErrorKind::StreamImmutable { differences: lines })
        .hint(format!(
            "either keep the old value in the environment, or remove the stream (its messages \
             are lost; back it up first with `controlplane backup --service nats`) and seed \
             again; with natscli, and NATS_ADMIN_PASSWORD set to `services.nats.admin_password`: {}",
            names
                .iter()
                .map(|n| format!(
                    "`nats --server nats://{addr} --user admin --password \"$NATS_ADMIN_PASSWORD\" stream rm {n} -f`"
                ))
                .collect::<Vec<_>>()
                .join("; ")
        )),
    )
}

/// How [`seed_with`] may go beyond creating and updating.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Streams that may be deleted and created again when a field JetStream cannot
    /// change (storage, retention) differs. **Their messages are lost.** Meant for a
    /// deliberate operator flag (e.g. `--recreate-stream NAME`), never a default.
    pub recreate: Vec<StreamName>,
}

/// Creates or updates the environment's streams to match it. Seeding twice reports no
/// change the second time. A change to a field JetStream cannot update (storage,
/// retention) fails with an error naming the stream, the field, both values and what
/// to do, before any stream is touched.
pub async fn seed(nats: &NatsAccess, env: &Environment) -> Result<Report, SeedError> {
    seed_with(nats, env, &Options::default()).await
}

/// [`seed`], where the streams named in [`Options::recreate`] are deleted and created
/// again when a field JetStream cannot change differs (other blocked streams still
/// fail the whole run before anything is touched).
pub async fn seed_with(
    nats: &NatsAccess,
    env: &Environment,
    options: &Options,
) -> Result<Report, SeedError> {
    let mut report = Report::new(SERVICE);
    if env.services.nats.is_none() || env.streams.is_empty() {
        return Ok(report);
    }
    let js = connect_admin(nats).await?;
    let observed = observe_with(&js, env, &mut report).await?;
    let plan = plan::plan(&seedspec::streams(env), &observed, false);
    let applied = apply_with(&js, nats, env, &plan, options).await?;
    report.changes.extend(applied.changes);
    report.trips(applied.round_trips);
    Ok(report)
}

/// Applies a streams plan: refuses blocked changes (unless the stream is named in
/// [`Options::recreate`]) before touching any stream, then creates and updates.
pub async fn apply(
    nats: &NatsAccess,
    env: &Environment,
    plan: &Plan,
    options: &Options,
) -> Result<Report, SeedError> {
    if plan.is_empty() {
        return Ok(Report::new(SERVICE));
    }
    let js = connect_admin(nats).await?;
    apply_with(&js, nats, env, plan, options).await
}

async fn apply_with(
    js: &jetstream::Context,
    nats: &NatsAccess,
    env: &Environment,
    plan: &Plan,
    options: &Options,
) -> Result<Report, SeedError> {
    let mut report = Report::new(SERVICE);
    if let Some(e) = blocked_error(plan, &nats.endpoint.addr(), &options.recreate) {
        return Err(e);
    }
    for step in &plan.steps {
        let name = step.id.name.as_str();
        let Some((_, declared)) = env.streams.iter().find(|(n, _)| n.as_str() == name) else {
            continue;
        };
        let cfg = config(name, declared);
        let failed = |op: &'static str, e: crate::BoxError| {
            SeedError::from(SeedErrorKind::Stream {
                op,
                stream: name.to_owned(),
                source: e,
            })
            .hint(format!(
                "check `streams.{name}` in the environment (a single server takes replicas: 1; \
                 subjects must not overlap another stream's) and the server log"
            ))
        };
        match &step.action {
            Action::Create => {
                report.trips(1);
                js.create_stream(cfg)
                    .await
                    .map_err(|e| failed("create", e.into()))?;
                report.change(format!("created stream {name}"));
            }
            Action::Update { changes } => {
                report.trips(1);
                js.update_stream(cfg)
                    .await
                    .map_err(|e| failed("update", e.into()))?;
                report.change(format!("updated stream {name}: {}", describe(changes)));
            }
            // Only streams the caller allowed to be recreated get here (the others
            // were refused above).
            Action::Blocked { changes, .. } => {
                report.trips(2);
                js.delete_stream(name)
                    .await
                    .map_err(|e| failed("delete (to recreate)", e.into()))?;
                js.create_stream(cfg)
                    .await
                    .map_err(|e| failed("recreate", e.into()))?;
                report.change(format!(
                    "recreated stream {name} (its messages were deleted): {}",
                    describe(changes)
                ));
            }
            // Streams are passive (never stopped) and never pruned here.
            Action::Start { .. } | Action::Replace { .. } | Action::Delete => {}
        }
    }
    Ok(report)
}
