//! Small charts drawn on the server as inline SVG: no script, nothing loaded from
//! elsewhere, presentation attributes only (the CSP forbids inline styles). Each chart
//! carries its text alternative, a `<title>` and a `<desc>` with every number it
//! draws, formatted as the CLI formats them (`cp_app::views::units`): what screen
//! readers read and what the browser test compares with the API. Pure functions.

use chrono::{DateTime, Utc};
use cp_app::views::history::{AlertSpan, AlertTimelineView, HealthSample};
use cp_app::views::rfc3339;
use cp_app::views::units;
use serde::Serialize;

const W: f64 = 300.0;
const H: f64 = 60.0;
const OK: &str = "#2da44e";
const BAD: &str = "#cf222e";
const NEUTRAL: &str = "#8c959f";
const ACCENT: &str = "#0969da";
const DRIFT: &str = "#bf8700";

/// One chart, ready for a template (`{{ chart.svg | safe }}`).
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    /// What it shows, for `data-chart` (`backup-size/postgres`).
    pub key: String,
    /// Its title.
    pub title: String,
    /// Its numbers in words (the `<desc>`).
    pub desc: String,
    /// The SVG element.
    pub svg: String,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn svg(key: &str, title: &str, desc: &str, body: &str) -> Chart {
    let id = key.replace(|c: char| !c.is_ascii_alphanumeric(), "-");
    let svg = format!(
        r##"<svg class="chart" data-chart="{k}" role="img" aria-labelledby="c-{id}-t c-{id}-d" viewBox="0 0 {W} {H}" preserveAspectRatio="none" width="100%" height="{H}"><title id="c-{id}-t">{t}</title><desc id="c-{id}-d">{d}</desc><rect x="0" y="0" width="{W}" height="{H}" fill="#f6f8fa"/>{body}</svg>"##,
        k = esc(key),
        t = esc(title),
        d = esc(desc),
    );
    Chart {
        key: key.to_owned(),
        title: title.to_owned(),
        desc: desc.to_owned(),
        svg,
    }
}

/// A bar per point, oldest left; each bar's own `<title>` says its label and value.
fn bars(key: &str, title: &str, points: &[(String, f64, String)]) -> Chart {
    let desc = if points.is_empty() {
        "no sets yet".to_owned()
    } else {
        points
            .iter()
            .map(|(label, _, shown)| format!("{label}: {shown}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let max = points.iter().map(|p| p.1).fold(0.0_f64, f64::max);
    let slot = W / points.len().max(1) as f64;
    let mut body = String::new();
    for (i, (label, v, shown)) in points.iter().enumerate() {
        let h = if max > 0.0 {
            (v / max) * (H - 4.0)
        } else {
            0.0
        };
        let h = h.max(1.0);
        body.push_str(&format!(
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{ACCENT}"><title>{}</title></rect>"#,
            i as f64 * slot + slot * 0.1,
            H - h,
            slot * 0.8,
            h,
            esc(&format!("{label}: {shown}"))
        ));
    }
    svg(key, title, &desc, &body)
}

/// One set's numbers for one service.
#[derive(Debug, Clone)]
pub struct SetPoint {
    /// The set's id.
    pub id: String,
    /// Bytes stored.
    pub stored_size: u64,
    /// Milliseconds taken.
    pub duration_ms: u64,
}

/// `, newest 0.1 MB` (or nothing without points).
fn last(points: &[(String, f64, String)]) -> String {
    points
        .last()
        .map_or_else(String::new, |p| format!(", newest {}", p.2))
}

/// A service's stored size and duration over its sets (oldest first).
pub fn backup_charts(service: &str, points: &[SetPoint]) -> [Chart; 2] {
    let size: Vec<_> = points
        .iter()
        .map(|p| {
            (
                p.id.clone(),
                p.stored_size as f64,
                units::size(p.stored_size),
            )
        })
        .collect();
    let time: Vec<_> = points
        .iter()
        .map(|p| {
            (
                p.id.clone(),
                p.duration_ms as f64,
                units::seconds(p.duration_ms),
            )
        })
        .collect();
    [
        bars(
            &format!("backup-size/{service}"),
            &format!(
                "{service}: stored size of the last {} set(s){}",
                points.len(),
                last(&size)
            ),
            &size,
        ),
        bars(
            &format!("backup-duration/{service}"),
            &format!(
                "{service}: duration of the last {} set(s){}",
                points.len(),
                last(&time)
            ),
            &time,
        ),
    ]
}

fn x_of(t: DateTime<Utc>, since: DateTime<Utc>, until: DateTime<Utc>) -> f64 {
    let span = (until - since).num_milliseconds().max(1) as f64;
    ((t - since).num_milliseconds() as f64 / span * W).clamp(0.0, W)
}

/// The most samples a `<desc>` lists (the newest).
pub const DESC_SAMPLES: usize = 48;

fn listed<T>(items: &[T]) -> (&[T], String) {
    let from = items.len().saturating_sub(DESC_SAMPLES);
    let note = if from > 0 {
        format!(" (the last {DESC_SAMPLES} of {})", items.len())
    } else {
        String::new()
    };
    (&items[from..], note)
}

/// One text item of the health chart's `<desc>` (the browser test builds the same
/// from the API's samples).
pub fn health_item(s: &HealthSample) -> String {
    let failed = if s.probe_failed { ", probe failed" } else { "" };
    format!(
        "{}: {}/{} healthy{failed}",
        rfc3339(s.at),
        s.services_up,
        s.services_total
    )
}

/// One text item of the drift chart's `<desc>`.
pub fn drift_item(s: &HealthSample) -> String {
    let what = match s.drifted {
        Some(true) => "drifted",
        Some(false) => "no drift",
        None => "not checked",
    };
    format!("{}: {what}", rfc3339(s.at))
}

/// Where a chart of `samples` starts: the window's start, or the first sample when
/// the history is younger (a fresh server), so its few samples are not a sliver.
fn start(samples: &[HealthSample], since: DateTime<Utc>, until: DateTime<Utc>) -> DateTime<Utc> {
    let first = samples.first().map_or(since, |s| s.at.max(since));
    first.min(until - chrono::Duration::minutes(1))
}

/// Each sample holds until the next one (the last until `until`).
fn steps(
    samples: &[HealthSample],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    mut draw: impl FnMut(f64, f64, &HealthSample) -> String,
) -> String {
    let mut body = String::new();
    for (i, s) in samples.iter().enumerate() {
        let end = samples.get(i + 1).map_or(until, |n| n.at);
        let (x0, x1) = (x_of(s.at, since, until), x_of(end, since, until));
        body.push_str(&draw(x0, (x1 - x0).max(0.5), s));
    }
    body
}

/// Health over the window: the share of services up, green when all are.
pub fn health_chart(
    env: &str,
    samples: &[HealthSample],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Chart {
    let since = start(samples, since, until);
    let (shown, note) = listed(samples);
    let desc = if samples.is_empty() {
        "no samples yet".to_owned()
    } else {
        format!(
            "{}{note}",
            shown.iter().map(health_item).collect::<Vec<_>>().join("; ")
        )
    };
    let body = steps(samples, since, until, |x, w, s| {
        let share = if s.services_total == 0 {
            0.0
        } else {
            s.services_up as f64 / s.services_total as f64
        };
        let h = (share * (H - 4.0)).max(2.0);
        let fill = if s.probe_failed || s.services_up < s.services_total {
            BAD
        } else {
            OK
        };
        format!(
            r#"<rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}"><title>{}</title></rect>"#,
            H - h,
            esc(&health_item(s))
        )
    });
    svg(
        &format!("health/{env}"),
        &format!(
            "{env}: services healthy, {} to {}",
            rfc3339(since),
            rfc3339(until)
        ),
        &desc,
        &body,
    )
}

/// Drift over the window: amber while drifted, grey before the first check.
pub fn drift_chart(
    env: &str,
    samples: &[HealthSample],
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Chart {
    // Only the changes of the drift state, so the text stays short.
    let mut changes: Vec<HealthSample> = Vec::new();
    for s in samples {
        if changes.last().is_none_or(|l| l.drifted != s.drifted) {
            changes.push(s.clone());
        }
    }
    let since = start(samples, since, until);
    let (shown, note) = listed(&changes);
    let desc = if changes.is_empty() {
        "no samples yet".to_owned()
    } else {
        format!(
            "{}{note}",
            shown.iter().map(drift_item).collect::<Vec<_>>().join("; ")
        )
    };
    let body = steps(&changes, since, until, |x, w, s| {
        let (fill, h) = match s.drifted {
            Some(true) => (DRIFT, H - 4.0),
            Some(false) => (OK, 6.0),
            None => (NEUTRAL, 6.0),
        };
        format!(
            r#"<rect x="{x:.1}" y="{:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}"><title>{}</title></rect>"#,
            H - h,
            esc(&drift_item(s))
        )
    });
    svg(
        &format!("drift/{env}"),
        &format!("{env}: drift, {} to {}", rfc3339(since), rfc3339(until)),
        &desc,
        &body,
    )
}

/// One text item of the alert timeline's `<desc>`.
pub fn span_item(s: &AlertSpan) -> String {
    format!(
        "{} firing from {} to {}",
        s.alert,
        rfc3339(s.from),
        rfc3339(s.to)
    )
}

/// The alerts of the window, a row per alert.
pub fn alert_timeline(
    env: &str,
    view: &AlertTimelineView,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Chart {
    let spans = &view.spans;
    let desc = match (&view.prometheus, &view.error) {
        (None, _) if spans.is_empty() => {
            "nothing fired (this server's probes; no Prometheus)".to_owned()
        }
        (Some(_), Some(e)) => format!("Prometheus could not be asked: {e}"),
        _ if spans.is_empty() => "nothing fired".to_owned(),
        _ => spans.iter().map(span_item).collect::<Vec<_>>().join("; "),
    };
    let mut names: Vec<&str> = spans.iter().map(|s| s.alert.as_str()).collect();
    names.dedup();
    let row = (H - 4.0) / names.len().max(1) as f64;
    let mut body = String::new();
    for s in spans.iter() {
        let i = names.iter().position(|n| *n == s.alert).unwrap_or(0);
        let (x0, x1) = (x_of(s.from, since, until), x_of(s.to, since, until));
        body.push_str(&format!(
            r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{BAD}"><title>{}</title></rect>"#,
            2.0 + i as f64 * row,
            (x1 - x0).max(1.5),
            (row - 2.0).max(2.0),
            esc(&span_item(s))
        ));
    }
    svg(
        &format!("alerts/{env}"),
        &format!(
            "{env}: alerts firing, {} to {}{}",
            rfc3339(since),
            rfc3339(until),
            // An empty timeline says why in its caption too.
            if spans.is_empty() {
                format!(": {desc}")
            } else {
                String::new()
            }
        ),
        &desc,
        &body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_says_its_numbers_and_escapes_them() {
        let [size, time] = backup_charts(
            "postgres",
            &[
                SetPoint {
                    id: "a<b".into(),
                    stored_size: 57_519,
                    duration_ms: 1_234,
                },
                SetPoint {
                    id: "c".into(),
                    stored_size: 2_000_000,
                    duration_ms: 10,
                },
            ],
        );
        assert_eq!(size.desc, "a<b: 0.1 MB; c: 2.0 MB");
        assert_eq!(time.desc, "a<b: 1.2s; c: 0.0s");
        assert!(
            size.svg
                .contains("<desc id=\"c-backup-size-postgres-d\">a&lt;b: 0.1 MB; c: 2.0 MB</desc>")
        );
        assert!(!size.svg.contains("a<b"));
        assert_eq!(size.svg.matches("<rect").count(), 3);
    }

    #[test]
    fn health_steps_span_the_window() {
        let t0 = DateTime::<Utc>::UNIX_EPOCH;
        let s = |m: i64, up: usize| HealthSample {
            at: t0 + chrono::Duration::minutes(m),
            services_up: up,
            services_total: 4,
            drifted: Some(m > 30),
            probe_failed: false,
        };
        let samples = [s(0, 4), s(30, 3), s(45, 4)];
        let c = health_chart("dev", &samples, t0, t0 + chrono::Duration::minutes(60));
        assert_eq!(
            c.desc,
            "1970-01-01T00:00:00Z: 4/4 healthy; 1970-01-01T00:30:00Z: 3/4 healthy; 1970-01-01T00:45:00Z: 4/4 healthy"
        );
        assert!(
            c.svg
                .contains(r#"<rect x="150.0" y="18.0" width="75.0" height="42.0""#),
            "{}",
            c.svg
        );
        let d = drift_chart("dev", &samples, t0, t0 + chrono::Duration::minutes(60));
        assert_eq!(
            d.desc,
            "1970-01-01T00:00:00Z: no drift; 1970-01-01T00:30:00Z: no drift; 1970-01-01T00:45:00Z: drifted"
                .replace("1970-01-01T00:30:00Z: no drift; ", "")
        );
    }
}
