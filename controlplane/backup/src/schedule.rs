//! The backup schedule: when the environment's cron runs next (pure, with the clock
//! as an argument), and [`run_schedule`], the loop `controlplane serve` runs: it
//! sleeps until the next time, runs the backup it is given, and goes on. A run that
//! overlaps the next slot is not doubled: the next slot is computed after the run
//! ends (and the backup lock refuses a concurrent run from elsewhere).

use std::future::Future;

use chrono::{DateTime, Utc};
use cp_core::model::Schedule;

/// Why a schedule cannot be followed.
#[derive(Debug, thiserror::Error)]
#[error("backup schedule `{cron}`: {detail}")]
pub struct ScheduleError {
    /// The expression.
    pub cron: String,
    /// What croner said.
    pub detail: String,
}

/// The first time after `after` (exclusive) that the schedule runs.
pub fn next_after(
    schedule: &Schedule,
    after: DateTime<Utc>,
) -> Result<DateTime<Utc>, ScheduleError> {
    let err = |detail: String| ScheduleError {
        cron: schedule.cron.clone(),
        detail,
    };
    let cron: croner::Cron = schedule
        .cron
        .parse()
        .map_err(|e: croner::errors::CronError| err(e.to_string()))?;
    cron.find_next_occurrence(&after, false)
        .map_err(|e| err(e.to_string()))
}

/// Whether a run is due at `now`, given when the last one started: true when a slot
/// passed since then (a missed slot runs once, not once per missed slot).
pub fn due(
    schedule: &Schedule,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<bool, ScheduleError> {
    match last {
        None => Ok(true),
        Some(l) => Ok(next_after(schedule, l)? <= now),
    }
}

/// What one scheduled run reported.
#[derive(Debug, Clone)]
pub struct Tick {
    /// The slot it ran for.
    pub slot: DateTime<Utc>,
    /// Whether it succeeded.
    pub ok: bool,
}

/// Runs `backup` at every slot of `schedule`, forever (until the future is dropped,
/// which is how `serve` stops it). `backup` returns whether the run succeeded; `tick`
/// hears about each run. The clock is the system's: the pure parts above are what the
/// tests drive.
pub async fn run_schedule<F, Fut>(
    schedule: &Schedule,
    mut backup: F,
    mut tick: impl FnMut(Tick),
) -> Result<(), ScheduleError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    loop {
        let now = Utc::now();
        let slot = next_after(schedule, now)?;
        let wait = (slot - now).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        let ok = backup().await;
        tick(Tick { slot, ok });
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn sched(cron: &str) -> Schedule {
        Schedule {
            cron: cron.into(),
            max_interval: cp_core::units::Duration::from_secs(86_400),
        }
    }

    #[test]
    fn the_next_slot_and_what_is_due() {
        let s = sched("0 */6 * * *");
        let t = Utc.with_ymd_and_hms(2026, 12, 1, 7, 30, 0).unwrap();
        assert_eq!(
            next_after(&s, t).unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
        );
        // Exactly on a slot: the next one.
        let on = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        assert_eq!(
            next_after(&s, on).unwrap(),
            Utc.with_ymd_and_hms(2026, 12, 1, 18, 0, 0).unwrap()
        );
        assert!(due(&s, None, t).unwrap());
        assert!(
            !due(
                &s,
                Some(Utc.with_ymd_and_hms(2026, 12, 1, 6, 0, 0).unwrap()),
                t
            )
            .unwrap()
        );
        // Two slots missed: due once.
        assert!(
            due(
                &s,
                Some(Utc.with_ymd_and_hms(2026, 11, 30, 18, 0, 0).unwrap()),
                t
            )
            .unwrap()
        );
    }
}
