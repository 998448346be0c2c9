//! The environments a long-running process (`serve`) works on: each one's model kept
//! loaded and reloaded when its files change (their names, sizes and modification
//! times), not parsed again per request or scrape.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use cp_core::Environment;

use crate::error::AppError;
use crate::session::{self, Mode, Prepared, Session, Target};

/// What the files of the environments directory looked like when last loaded.
type Stamp = Vec<(std::path::PathBuf, u64, Option<SystemTime>)>;

fn stamp(t: &Target) -> Stamp {
    let mut out: Stamp = std::fs::read_dir(&t.environments)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| {
                    let m = e.metadata().ok()?;
                    Some((e.path(), m.len(), m.modified().ok()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The served environments by name, each loaded once per change of its files.
#[derive(Debug, Default)]
pub struct Environments {
    targets: BTreeMap<String, Target>,
    loaded: Mutex<BTreeMap<String, (Stamp, Arc<Environment>)>>,
}

impl Environments {
    /// The environments of `targets`.
    pub fn new(targets: impl IntoIterator<Item = Target>) -> Self {
        Self {
            targets: targets.into_iter().map(|t| (t.env.clone(), t)).collect(),
            loaded: Mutex::default(),
        }
    }

    /// Every target, in name order.
    pub fn targets(&self) -> impl Iterator<Item = &Target> {
        self.targets.values()
    }

    /// The target of `env`.
    pub fn target(&self, env: &str) -> Result<&Target, AppError> {
        self.targets.get(env).ok_or_else(|| {
            AppError::NotFound(format!(
                "no environment `{env}` is served here; GET /api/v1/environments lists them"
            ))
        })
    }

    /// `env` prepared from its kept model (its driver chosen, nothing written).
    pub async fn prepare(&self, env: &str) -> Result<Prepared, AppError> {
        let model = (*self.model(env)?).clone();
        Prepared::with_model(self.target(env)?, model, None).await
    }

    /// A session on `env` in `mode`, from its kept model.
    pub async fn open(&self, env: &str, mode: Mode) -> Result<Session, AppError> {
        self.prepare(env).await?.open(mode)
    }

    /// The model of `env`, loaded again only when its files changed.
    pub fn model(&self, env: &str) -> Result<Arc<Environment>, AppError> {
        let t = self.target(env)?;
        let now = stamp(t);
        if let Some((s, e)) = self.loaded.lock().expect("envs lock").get(env)
            && *s == now
        {
            return Ok(e.clone());
        }
        let e = Arc::new(session::load(t)?);
        self.loaded
            .lock()
            .expect("envs lock")
            .insert(env.to_owned(), (now, e.clone()));
        Ok(e)
    }
}
