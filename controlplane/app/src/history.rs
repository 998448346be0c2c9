//! The alerts of the last day from an environment's Prometheus: its `ALERTS` series
//! over a range, merged into periods ([`spans`], pure) for the console's timeline.

use chrono::{DateTime, TimeZone, Utc};
use cp_runtime::prometheus::{Prometheus, Series};

use crate::views::history::{AlertSpan, AlertTimelineView};

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
