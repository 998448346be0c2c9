//! The alerts of the last day from an environment's Prometheus: its `ALERTS` series
//! over a range, merged into periods ([`spans`], pure) for the console's timeline;
//! without a Prometheus, the periods the server's own samples show ([`from_samples`]).

use chrono::{DateTime, TimeZone, Utc};
use cp_runtime::prometheus::{Prometheus, Series};

use crate::views::history::{AlertSpan, AlertTimelineView, HealthSample};

/// The alerts the server's own samples stand for: `ServiceDown` while a service was
/// not healthy, `EnvironmentDrifted` while the drift check found drift (the rules'
/// names; their `for:` is not applied: a sample is what the prober saw). A period
/// runs from the first sample in the state to the first one out of it, or to `until`.
pub fn from_samples(samples: &[HealthSample], until: DateTime<Utc>) -> AlertTimelineView {
    type Firing = fn(&HealthSample) -> bool;
    let rules: [(&str, Firing); 2] = [
        ("EnvironmentDrifted", |s| s.drifted == Some(true)),
        ("ServiceDown", |s| s.services_up < s.services_total),
    ];
    let mut spans = Vec::new();
    for (alert, firing) in rules {
        let mut from = None;
        for s in samples {
            match (from, firing(s)) {
                (None, true) => from = Some(s.at),
                (Some(f), false) => {
                    spans.push(AlertSpan {
                        alert: alert.to_owned(),
                        from: f,
                        to: s.at,
                    });
                    from = None;
                }
                _ => {}
            }
        }
        if let Some(f) = from {
            spans.push(AlertSpan {
                alert: alert.to_owned(),
                from: f,
                to: until,
            });
        }
    }
    AlertTimelineView {
        prometheus: None,
        error: None,
        spans,
    }
}

/// The step of the range query: a day in 144 points.
pub const STEP_SECS: u64 = 600;

/// The alerts that fired between `since` and `until`, from `url`'s `ALERTS` series.
/// A Prometheus that cannot be asked is the view's `error`, never a failure.
pub async fn alert_timeline(
    url: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> AlertTimelineView {
    let p = Prometheus::at_url(url);
    let result = p
        .query_range(
            r#"ALERTS{alertstate="firing"}"#,
            since.timestamp(),
            until.timestamp(),
            STEP_SECS,
        )
        .await;
    match result {
        Ok(series) => AlertTimelineView {
            prometheus: Some(url.to_owned()),
            error: None,
            spans: spans(&series, STEP_SECS),
        },
        Err(e) => AlertTimelineView {
            prometheus: Some(url.to_owned()),
            error: Some(cp_runtime::error::chain(&e)),
            spans: Vec::new(),
        },
    }
}

/// Consecutive points of one alert (no more than a step and a half apart) are one
/// period; series of the same alert (other labels) are merged.
pub fn spans(series: &[Series], step_secs: u64) -> Vec<AlertSpan> {
    let mut by_alert: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for s in series {
        let name = s.metric.get("alertname").cloned().unwrap_or_default();
        by_alert
            .entry(name)
            .or_default()
            .extend(s.points.iter().map(|(t, _)| *t as i64));
    }
    let gap = (step_secs * 3).div_ceil(2) as i64;
    let at = |t: i64| Utc.timestamp_opt(t, 0).single().unwrap_or_default();
    let mut out = Vec::new();
    for (alert, mut times) in by_alert {
        times.sort_unstable();
        times.dedup();
        let mut iter = times.into_iter();
        let Some(first) = iter.next() else { continue };
        let (mut from, mut to) = (first, first);
        for t in iter {
            if t - to > gap {
                out.push(AlertSpan {
                    alert: alert.clone(),
                    from: at(from),
                    to: at(to),
                });
                from = t;
            }
            to = t;
        }
        out.push(AlertSpan {
            alert,
            from: at(from),
            to: at(to),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(alert: &str, times: &[f64]) -> Series {
        Series {
            metric: [("alertname".to_owned(), alert.to_owned())].into(),
            points: times.iter().map(|t| (*t, 1.0)).collect(),
        }
    }

    #[test]
    fn without_prometheus_the_samples_down_or_drifted_are_the_periods() {
        let t = |m: i64| DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(m);
        let sample = |m, up, drifted| HealthSample {
            at: t(m),
            services_up: up,
            services_total: 4,
            drifted,
            probe_failed: false,
        };
        let v = from_samples(
            &[
                sample(0, 4, None),
                sample(1, 3, Some(false)),
                sample(3, 4, Some(true)),
                sample(5, 2, Some(true)),
            ],
            t(9),
        );
        let shown: Vec<(String, i64, i64)> = v
            .spans
            .iter()
            .map(|s| {
                (
                    s.alert.clone(),
                    s.from.timestamp() / 60,
                    s.to.timestamp() / 60,
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("EnvironmentDrifted".to_owned(), 3, 9),
                ("ServiceDown".to_owned(), 1, 3),
                ("ServiceDown".to_owned(), 5, 9),
            ]
        );
        assert_eq!(v.prometheus, None);
    }

    #[test]
    fn points_a_step_apart_are_one_period() {
        let s = spans(
            &[
                series("B", &[0.0, 600.0, 1200.0, 3000.0]),
                series("A", &[600.0]),
                series("B", &[3600.0]),
            ],
            600,
        );
        let shown: Vec<(String, i64, i64)> = s
            .iter()
            .map(|s| (s.alert.clone(), s.from.timestamp(), s.to.timestamp()))
            .collect();
        assert_eq!(
            shown,
            [
                ("A".to_owned(), 600, 600),
                ("B".to_owned(), 0, 1200),
                ("B".to_owned(), 3000, 3600)
            ]
        );
    }
}
