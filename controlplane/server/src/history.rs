//! The server's own memory of each environment's last day: a bounded ring of health
//! and drift samples, one taken after every probe but kept only when the state
//! changed or the last kept one is [`EVERY`] old. Older than a day is dropped, and
//! never more than [`MAX_SAMPLES`] per environment (so memory stays bounded however
//! fast the state flaps). In memory only: a restarted server starts a new history.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use cp_app::views::history::HealthSample;

/// The window kept.
pub const WINDOW: Duration = Duration::hours(24);
/// An unchanged state is sampled again after this long.
pub const EVERY: Duration = Duration::minutes(5);
/// At most this many samples per environment.
pub const MAX_SAMPLES: usize = 2000;

/// Samples per environment, oldest first.
#[derive(Debug, Default)]
pub struct History(Mutex<BTreeMap<String, VecDeque<HealthSample>>>);

impl History {
    /// Records `sample` of `env` (see the module's comment for what is kept).
    pub fn record(&self, env: &str, sample: HealthSample) {
        let mut all = self.0.lock().expect("history lock");
        let ring = all.entry(env.to_owned()).or_default();
        let keep = match ring.back() {
            Some(last) => !last.same_state(&sample) || sample.at - last.at >= EVERY,
            None => true,
        };
        if keep {
            ring.push_back(sample.clone());
        }
        let horizon = sample.at - WINDOW;
        while ring.front().is_some_and(|s| s.at < horizon) || ring.len() > MAX_SAMPLES {
            ring.pop_front();
        }
    }

    /// The samples of `env` since `since`, oldest first.
    pub fn since(&self, env: &str, since: DateTime<Utc>) -> Vec<HealthSample> {
        self.0
            .lock()
            .expect("history lock")
            .get(env)
            .map(|r| r.iter().filter(|s| s.at >= since).cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(min: i64, up: usize) -> HealthSample {
        HealthSample {
            at: DateTime::<Utc>::UNIX_EPOCH + Duration::minutes(min),
            services_up: up,
            services_total: 4,
            drifted: Some(false),
            probe_failed: false,
        }
    }

    #[test]
    fn keeps_changes_and_a_sample_every_few_minutes_for_a_day_at_most() {
        let h = History::default();
        h.record("dev", at(0, 4));
        h.record("dev", at(1, 4)); // unchanged, too soon: dropped
        h.record("dev", at(2, 3)); // a change: kept
        h.record("dev", at(7, 3)); // unchanged, five minutes on: kept
        let kept: Vec<i64> = h
            .since("dev", DateTime::<Utc>::UNIX_EPOCH)
            .iter()
            .map(|s| (s.at - DateTime::<Utc>::UNIX_EPOCH).num_minutes())
            .collect();
        assert_eq!(kept, [0, 2, 7]);
        // A day later the first ones are gone.
        h.record("dev", at(24 * 60 + 3, 4));
        let kept: Vec<i64> = h
            .since("dev", DateTime::<Utc>::UNIX_EPOCH)
            .iter()
            .map(|s| (s.at - DateTime::<Utc>::UNIX_EPOCH).num_minutes())
            .collect();
        assert_eq!(kept, [7, 24 * 60 + 3]);
        // Flapping every minute keeps at most MAX_SAMPLES.
        for m in 0..(MAX_SAMPLES as i64 + 50) {
            h.record("flap", at(m % 1000, (m % 2) as usize));
        }
        assert!(h.since("flap", DateTime::<Utc>::UNIX_EPOCH).len() <= MAX_SAMPLES);
    }
}
