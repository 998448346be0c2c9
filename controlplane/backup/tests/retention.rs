//! Retention over a simulated calendar (the clock is injected): a year of daily runs,
//! each followed by a prune, keeps exactly the grandfather-father-son set; a month of
//! failed runs expires nothing that was kept and never the newest verified set.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Duration, TimeZone, Utc};
use cp_backup::BackupId;
use cp_backup::catalog::SetState;
use cp_backup::retention::{Candidate, plan_retention};
use cp_core::model::Retention;

const GFS: Retention = Retention {
    daily: 7,
    weekly: 4,
    monthly: 6,
};

/// Applies one prune to `sets` at `now`.
fn prune(sets: &mut Vec<Candidate>, now: DateTime<Utc>) {
    let p = plan_retention(sets, GFS, None, now);
    let gone: BTreeSet<BackupId> = p.delete.iter().map(|(id, _)| id.clone()).collect();
    sets.retain(|c| !gone.contains(&c.id));
}

/// A bucket key of a time: (year, day or week or month, rule).
type Bucket = dyn Fn(&DateTime<Utc>) -> (i32, u32, u32);

/// The GFS set computed independently: newest per day for the last 7 days with a set,
/// per ISO week for 4 weeks, per month for 6 months.
fn expected(full: &[DateTime<Utc>]) -> BTreeSet<DateTime<Utc>> {
    let mut sorted = full.to_vec();
    sorted.sort_by(|a, b| b.cmp(a));
    let mut keep = BTreeSet::new();
    let mut rule = |n: usize, key: &Bucket| {
        let mut seen = Vec::new();
        for t in &sorted {
            let k = key(t);
            if seen.len() < n && !seen.contains(&k) {
                seen.push(k);
                keep.insert(*t);
            }
        }
    };
    rule(7, &|t| (t.year(), t.ordinal(), 0));
    rule(4, &|t| (t.iso_week().year(), t.iso_week().week(), 1));
    rule(6, &|t| (t.year(), t.month(), 2));
    keep
}

#[test]
fn a_year_of_daily_runs_keeps_exactly_the_gfs_set() {
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 2, 0, 0).unwrap();
    let mut sets: Vec<Candidate> = Vec::new();
    let mut all_times = Vec::new();
    for day in 0..365 {
        let t = start + Duration::days(day);
        sets.push(Candidate {
            id: BackupId::with_suffix(t, day as u32),
            state: SetState::Complete,
        });
        all_times.push(t);
        prune(&mut sets, t + Duration::minutes(5));
        // After every prune, the survivors are exactly GFS over the survivors' history:
        // what was pruned earlier can never come back, so compare with the full history.
        let kept: BTreeSet<DateTime<Utc>> = sets.iter().map(|c| c.id.started()).collect();
        assert_eq!(kept, expected(&all_times), "day {day}");
    }
    // 7 dailies, the weeklies and monthlies not already among them.
    assert!(sets.len() >= 7 && sets.len() <= 17, "{}", sets.len());
}

#[test]
fn a_month_of_failed_runs_keeps_the_newest_verified_set() {
    let start = Utc.with_ymd_and_hms(2026, 3, 1, 2, 0, 0).unwrap();
    let mut sets: Vec<Candidate> = Vec::new();
    // Sixty good days; day 10 was verified (a drill), nothing after.
    for day in 0..60 {
        let t = start + Duration::days(day);
        let state = if day == 10 {
            SetState::Drilled {
                at: t + Duration::hours(1),
            }
        } else {
            SetState::Complete
        };
        sets.push(Candidate {
            id: BackupId::with_suffix(t, day as u32),
            state,
        });
        prune(&mut sets, t + Duration::minutes(5));
    }
    let verified = BackupId::with_suffix(start + Duration::days(10), 10);
    assert!(
        sets.iter().any(|c| c.id == verified),
        "the drilled set is kept"
    );
    let before: BTreeSet<BackupId> = sets.iter().map(|c| c.id.clone()).collect();
    // Then a month of failures: each run dies (no manifest) or half fails.
    for day in 60..90 {
        let t = start + Duration::days(day);
        let state = if day % 2 == 0 {
            SetState::Incomplete
        } else {
            SetState::Partial {
                failed: vec![cp_core::names::CoreKind::Postgres],
            }
        };
        sets.push(Candidate {
            id: BackupId::with_suffix(t, day as u32),
            state,
        });
        prune(&mut sets, t + Duration::minutes(5));
    }
    let after: BTreeSet<BackupId> = sets.iter().map(|c| c.id.clone()).collect();
    assert!(
        after.contains(&verified),
        "the newest verified set survives"
    );
    assert!(
        before.is_subset(&after),
        "failed runs expired good sets: {:?}",
        before.difference(&after).collect::<Vec<_>>()
    );
    // The failed runs are all still there (newer than the newest complete set).
    assert_eq!(after.len(), before.len() + 30);
    // One good run later, the debris and superseded partial sets go.
    let t = start + Duration::days(90);
    sets.push(Candidate {
        id: BackupId::with_suffix(t, 90),
        state: SetState::Complete,
    });
    prune(&mut sets, t + Duration::minutes(5));
    assert!(
        sets.iter()
            .all(|c| c.state.is_full() || c.id.started() >= t),
        "{:?}",
        sets.iter()
            .filter(|c| !c.state.is_full())
            .collect::<Vec<_>>()
    );
    assert!(sets.iter().any(|c| c.id == verified));
}

#[test]
fn with_pitr_every_set_inside_the_recovery_window_is_kept_and_the_newest_before_it() {
    // Hourly sets over three days, pruned with a one-day recovery window: a restore of
    // the whole environment to any moment of the window still finds a set before it
    // (Redis, OpenBao) and one after it (JetStream).
    let start = Utc.with_ymd_and_hms(2026, 3, 1, 0, 30, 0).unwrap();
    let sets: Vec<Candidate> = (0..72)
        .map(|h| Candidate {
            id: BackupId::with_suffix(start + Duration::hours(h), h as u32),
            state: SetState::Complete,
        })
        .collect();
    let now = start + Duration::hours(71) + Duration::minutes(10);
    let window = Duration::days(1);
    let p = plan_retention(&sets, GFS, Some(window), now);
    let gone: BTreeSet<BackupId> = p.delete.iter().map(|(id, _)| id.clone()).collect();
    let kept: Vec<&Candidate> = sets.iter().filter(|c| !gone.contains(&c.id)).collect();
    let inside = kept
        .iter()
        .filter(|c| c.id.started() >= now - window)
        .count();
    assert_eq!(inside, 24, "every hourly set of the last day is kept");
    assert!(
        kept.iter().any(|c| c.id.started() < now - window
            && c.id.started() >= now - window - Duration::hours(1)),
        "the newest set before the window is kept"
    );
    // Without PITR the same sets keep one a day.
    let p = plan_retention(&sets, GFS, None, now);
    assert_eq!(sets.len() - p.delete.len(), 3);
}
