//! The status cache and the background prober. Every served environment is probed
//! through the application layer (a read-only session from the kept model, then `ops::status`, the
//! same view `controlplane status` prints) every `probe_interval`; handlers answer
//! from the cache (`?refresh=true` probes now). What drifted is the drift watch's
//! (`cp_app::drift`, a scheduled job), not the prober's.
//! A failed probe is recorded as the environment's error, never a server failure.
//! Each change bumps a version that the console's event stream waits on.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cp_app::Mode;
use cp_app::views::{HealthView, StatusView};
use tokio::sync::{Mutex, RwLock, watch};

use crate::metrics::ServiceLabels;
use crate::state::AppState;

/// What the cache holds for one environment.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    /// The last status, if a probe ever succeeded.
    pub status: Option<StatusView>,
    /// Why the last probe failed (the status may then be older).
    pub error: Option<String>,
    /// When it was last probed.
    pub probed_at: Option<DateTime<Utc>>,
    /// The tier (`dev`, `staging`, `production`), once loaded.
    pub tier: Option<String>,
}

/// The cache.
#[derive(Debug)]
pub struct Cache {
    entries: RwLock<BTreeMap<String, Entry>>,
    version: watch::Sender<u64>,
    // One probe of an environment at a time: concurrent refreshes share it.
    probing: BTreeMap<String, Mutex<Option<Instant>>>,
}

impl Cache {
    /// An empty cache for `envs`.
    pub fn new(envs: impl Iterator<Item = String>) -> Self {
        let envs: Vec<String> = envs.collect();
        Self {
            entries: RwLock::new(envs.iter().map(|e| (e.clone(), Entry::default())).collect()),
            version: watch::channel(0).0,
            probing: envs.into_iter().map(|e| (e, Mutex::new(None))).collect(),
        }
    }

    /// The entry of `env`.
    pub async fn get(&self, env: &str) -> Option<Entry> {
        self.entries.read().await.get(env).cloned()
    }

    /// Every entry.
    pub async fn all(&self) -> BTreeMap<String, Entry> {
        self.entries.read().await.clone()
    }

    /// Notified at every change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    async fn update(&self, env: &str, f: impl FnOnce(&mut Entry)) {
        let mut entries = self.entries.write().await;
        if let Some(e) = entries.get_mut(env) {
            f(e);
        }
        drop(entries);
        self.version.send_modify(|v| *v += 1);
    }
}

/// A failed probe as the environment's views show it: what kind of failure, never a
/// server's own words, control characters escaped (`cp_runtime::error::public`); the
/// whole chain goes to the log (with the request id when a request asked for it).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    tracing::warn!(error = %cp_runtime::error::chain(e), "an environment's probe failed");
    cp_runtime::error::public(e)
}

/// Probes `env` now (or waits for the probe already running and returns its result).
pub async fn probe(state: &AppState, env: &str) {
    if !state.targets.contains_key(env) {
        return;
    }
    let lock = state.cache.probing.get(env).expect("an entry per target");
    let started = Instant::now();
    let mut last = lock.lock().await;
    if last.is_some_and(|t| t >= started) {
        // Someone probed while we waited: that answer is fresh enough.
        return;
    }
    let result = match state.envs.open(env, Mode::ReadOnly).await {
        Ok(s) => {
            let tier = format!("{:?}", s.env().tier).to_lowercase();
            let status = cp_app::ops::status(&s, cp_app::ops::Secrets::Hidden).await;
            Ok((tier, status))
        }
        Err(e) => Err(chain(&e)),
    };
    *last = Some(Instant::now());
    drop(last);
    let now = Utc::now();
    match result {
        Ok((tier, status)) => {
            match &status {
                Ok(st) => record_up(state, env, st),
                Err(_) => clear_up(state, env).await,
            }
            state
                .cache
                .update(env, |e| {
                    e.tier = Some(tier);
                    e.probed_at = Some(now);
                    match status {
                        Ok(st) => {
                            e.status = Some(st);
                            e.error = None;
                        }
                        Err(err) => e.error = Some(chain(&err)),
                    }
                })
                .await;
        }
        Err(err) => {
            clear_up(state, env).await;
            state
                .cache
                .update(env, |e| {
                    e.probed_at = Some(now);
                    e.error = Some(err);
                })
                .await;
        }
    }
    if let Some(e) = state.cache.get(env).await {
        let v = crate::api::environment_view(env, &e, state.jobs.drift().get(env));
        state.history.record(
            env,
            cp_app::views::history::HealthSample {
                at: now,
                services_up: v.services_up,
                services_total: v.services_total,
                drifted: v.drift.map(|d| d.drifted),
                probe_failed: v.error.is_some(),
            },
        );
    }
}

fn record_up(state: &AppState, env: &str, st: &StatusView) {
    // A service this platform does not run (apps and extras on the process driver)
    // is neither up nor down: it has no series.
    for s in st
        .services
        .iter()
        .filter(|s| !matches!(s.state, cp_app::views::StateView::Skipped(_)))
    {
        let up = matches!(s.health, HealthView::Healthy) && s.ok();
        state
            .metrics
            .service_up
            .get_or_create(&ServiceLabels {
                env: env.to_owned(),
                service: s.service.clone(),
            })
            .set(i64::from(up));
    }
}

/// A failed probe: every service of the environment last seen is reported down.
async fn clear_up(state: &AppState, env: &str) {
    if let Some(Some(st)) = state.cache.get(env).await.map(|e| e.status) {
        for s in st
            .services
            .iter()
            .filter(|s| !matches!(s.state, cp_app::views::StateView::Skipped(_)))
        {
            state
                .metrics
                .service_up
                .get_or_create(&ServiceLabels {
                    env: env.to_owned(),
                    service: s.service.clone(),
                })
                .set(0);
        }
    }
}

/// RFC 3339 now, seconds.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The background prober: every environment concurrently, every interval, until the
/// process ends.
pub async fn run(state: AppState) {
    let mut tick =
        tokio::time::interval(state.config.probe_interval.max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let envs: Vec<String> = state.targets.keys().cloned().collect();
        futures::future::join_all(envs.iter().map(|e| probe(&state, e))).await;
    }
}
