//! Monitoring: the values the alert, test and dashboard templates need (derived once,
//! here, so templates hold no arithmetic), and the Kubernetes objects built from other
//! rendered files: the PrometheusRule holding the environment's alert and recording
//! rules (rendered from `alerts/`) and one ConfigMap per Grafana dashboard (rendered
//! from `dashboards/`).

use serde_json::{Map, Value, json};

use super::{RenderError, Renderer, is_partial};
use crate::catalog::{BOARDS, RULES, ThresholdUnit};
use crate::model::Environment;
use crate::names::CoreKind;

/// Time a backup run may take and a scrape may lag, added to the schedule-derived
/// backup age limit so a run that is merely in progress does not page anyone.
const BACKUP_SLACK_SECS: u64 = 30 * 60;

/// A number as templates should print it: binary noise rounded away
/// (0.1 * 3 = 0.30000000000000004) and whole numbers as integers, because promtool's
/// series notation reads `54.0x17` as `54.` followed by the hex literal `0x17`.
fn num(x: f64) -> Value {
    let x = (x * 1e6).round() / 1e6;
    if x.fract() == 0.0 && x.abs() < 1e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// Sample values for a rule's promtool tests: `fire` crosses the threshold, `quiet`
/// stays on the healthy side of it; scaled copies for counters per minute and for
/// shares of 100 or 1000.
fn samples(key: &str, unit: ThresholdUnit, t: f64) -> Value {
    let (fire, quiet) = match unit {
        // Free disk space alerts when it drops *below* the threshold.
        ThresholdUnit::Fraction if key == "disk_space_low" => (t / 2.0, (1.0 + t) / 2.0),
        // Rates over [5m] of a counter that starts in the test ramp up over the first
        // five minutes (at 1m a steady rate r reads r/5): ten times the threshold
        // crosses it at the first evaluation with a rate, so `for` is measured
        // from a known instant.
        ThresholdUnit::Fraction if key == "high_cpu" => (t * 10.0, t / 2.0),
        ThresholdUnit::PerSecond => (t * 10.0, t / 2.0),
        ThresholdUnit::Fraction => ((1.0 + t) / 2.0, t / 2.0),
        ThresholdUnit::Seconds => (t * 2.0, t / 2.0),
        ThresholdUnit::Count => (t + 1.0, t),
        ThresholdUnit::None => (0.0, 0.0),
    };
    json!({
        "fire": num(fire),
        "quiet": num(quiet),
        "fire_per_min": num(fire * 60.0),
        "quiet_per_min": num(quiet * 60.0),
        "fire_x100": num(fire * 100.0),
        "quiet_x100": num(quiet * 100.0),
        "fire_rest_x100": num((1.0 - fire) * 100.0),
        "quiet_rest_x100": num((1.0 - quiet) * 100.0),
        "fire_x1000": num(fire * 1000.0),
        "quiet_x1000": num(quiet * 1000.0),
        "half": num(t / 2.0),
        "quad": num(t * 4.0),
    })
}

/// The `BackupTooOld` limit in seconds. Unless set by hand (`backup.max_age` or the
/// rule's threshold), it is the longest gap between two runs of the backup schedule
/// (found by walking the cron schedule with croner during validation) × 1.5, plus
/// [`BACKUP_SLACK_SECS`].
pub(super) fn backup_age_limit(env: &Environment) -> Option<u64> {
    let b = env.backup.as_ref()?;
    let rule = env.alerts.rules.get("backup_too_old")?;
    let interval = b.schedule.max_interval.as_secs();
    let derived = interval + interval / 2;
    let threshold = rule.threshold.max(0.0).round() as u64;
    if threshold != b.max_age.as_secs() {
        // Set under alerts.rules.backup_too_old.threshold: the user's number.
        return Some(threshold);
    }
    if b.max_age.as_secs() != derived {
        // Set under backup.max_age.
        return Some(b.max_age.as_secs());
    }
    Some(derived + BACKUP_SLACK_SECS)
}

/// The runbook of an alert: `<alerts.runbook_base>/<AlertName>.md`
/// (`docs/runbooks/ServiceDown.md` by default; `tests/monitoring.rs` checks that every
/// rendered alert has one and that the repository holds the file).
fn runbook_url(env: &Environment, alert: &str) -> String {
    format!("{}/{alert}.md", env.alerts.runbook_base)
}

/// The `alerting` part of the template context: every built-in rule with its
/// environment's settings and test samples, the scraped services, the streams'
/// lag thresholds and the backup age limit.
pub(super) fn alerting(env: &Environment) -> Value {
    let mut rules = Map::new();
    for def in RULES {
        let Some(r) = env.alerts.rules.get(def.key) else {
            continue;
        };
        let threshold = if def.key == "backup_too_old" {
            backup_age_limit(env).unwrap_or(0) as f64
        } else {
            r.threshold
        };
        rules.insert(
            def.key.into(),
            json!({
                "enabled": r.enabled,
                "alert": r.alert,
                "for": r.for_.to_string(),
                "for_secs": r.for_.as_secs(),
                "severity": r.severity,
                "threshold": num(threshold),
                "runbook_url": runbook_url(env, def.alert),
                "test": samples(def.key, def.unit, threshold),
            }),
        );
    }
    // Everything Prometheus scrapes under a job of its own name: PostgreSQL, Redis
    // and NATS only through their exporters, so not when the exporter is disabled.
    let exporter = |k: CoreKind| {
        let m = env.monitoring.as_ref();
        match k {
            CoreKind::Postgres => m.is_some_and(|m| m.postgres_exporter.is_some()),
            CoreKind::Redis => m.is_some_and(|m| m.redis_exporter.is_some()),
            CoreKind::Nats => m.is_some_and(|m| m.nats_exporter.is_some()),
            CoreKind::Vault => true,
        }
    };
    let mut services: Vec<String> = env
        .services
        .enabled()
        .into_iter()
        .filter(|k| exporter(*k))
        .map(|k| k.as_str().to_owned())
        .collect();
    services.extend(env.apps.keys().map(|n| n.to_string()));
    services.extend(
        env.extras
            .iter()
            .filter(|(_, e)| e.metrics_port.is_some())
            .map(|(n, _)| n.to_string()),
    );
    let streams: Map<String, Value> = env
        .streams
        .iter()
        .map(|(n, s)| (n.to_string(), json!(s.max_consumer_lag)))
        .collect();
    let backup = env.backup.as_ref().map(|b| {
        let limit = backup_age_limit(env).unwrap_or(0);
        let step = (limit / 120 / 60 * 60).max(60);
        json!({
            "services": b.services.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            "cron": b.schedule.cron,
            "max_interval_secs": b.schedule.max_interval.as_secs(),
            "age_limit_secs": limit,
            // For the promtool test: an evaluation step of about 1/120 of the limit
            // (whole minutes), and the first step at which a backup taken at time 0
            // is too old, so a weekly schedule does not take minutes to test.
            "test_step_secs": step,
            "too_old_at_secs": (limit / step + 1) * step,
        })
    });
    // The threshold-driven rules' promtool tests: each evaluates in steps of about
    // 1/20 of its threshold ([`TestSteps`]).
    let drift = TestSteps::of(env, "drift_check_failing");
    let drift = json!({
        "cron": env.drift.schedule.cron,
        "failing_at_secs": drift.past,
        "test_step_secs": drift.step,
    });
    let key = TestSteps::of(env, "key_rotation_overdue");
    let rotation = json!({
        "cron": env.rotation.schedule.cron,
        "every": env.rotation.keys_every.to_string(),
        "overdue_at_secs": key.past,
        "test_step_secs": key.step,
    });
    let custom: Map<String, Value> = env
        .alerts
        .custom
        .iter()
        .map(|c| (c.alert.clone(), json!(runbook_url(env, &c.alert))))
        .collect();
    // CertificateExpiringSoon: a certificate expiring at `expires_at_secs` is inside
    // the threshold from `soon_at_secs` on; one renewed on time expires at
    // `renewed_expiry_secs`.
    let cert = TestSteps::of(env, "certificate_expiring_soon");
    let certificates = json!({
        "lifetime": env.tls.lifetime.to_string(),
        "renew_at_percent": env.tls.renew_at_percent,
        "test_step_secs": cert.step,
        "soon_at_secs": cert.past,
        "expires_at_secs": cert.past + cert.limit.saturating_sub(1),
        "renewed_expiry_secs": cert.past + 100 * cert.limit + 100 * cert.step,
    });
    // The PITR rules: rendered with backups on, PITR or not (without `backup.pitr`
    // their series are absent and they never fire; the descriptions then give the
    // defaults `backup.pitr` would take).
    let pitr = env.backup.as_ref().map(|b| {
        let (archive_timeout, recovery_window, base_cron) = match &b.pitr {
            Some(p) => (
                p.archive_timeout.as_secs(),
                p.recovery_window.to_string(),
                p.base_schedule.cron.clone(),
            ),
            None => (60, "7d".to_owned(), "0 3 * * *".to_owned()),
        };
        let stall = TestSteps::of(env, "wal_archiving_stalled");
        let short = TestSteps::of(env, "pitr_window_short");
        json!({
            "archive_timeout_secs": archive_timeout,
            "recovery_window": recovery_window,
            "base_cron": base_cron,
            "stalled_at_secs": stall.past,
            "stall_step_secs": stall.step,
            "short_at_secs": short.past,
            "short_step_secs": short.step,
        })
    });
    json!({
        "rules": rules,
        "custom_runbooks": custom,
        "drift": drift,
        "rotation": rotation,
        "certificates": certificates,
        "pitr": pitr,
        "services": services,
        "apps": env.apps.keys().map(|n| n.to_string()).collect::<Vec<_>>(),
        "streams": streams,
        "backup": backup,
    })
}

/// The evaluation steps of a threshold rule's promtool test: about 1/20 of its
/// threshold in whole minutes (so a week-long threshold does not take minutes to
/// test), and the first step past the threshold.
struct TestSteps {
    /// The rule's threshold, whole seconds (0 when the rule is off).
    limit: u64,
    /// The evaluation interval.
    step: u64,
    /// The first step at which something that happened at time 0 is past the limit.
    past: u64,
}

impl TestSteps {
    fn of(env: &Environment, rule: &str) -> Self {
        let limit = env
            .alerts
            .rules
            .get(rule)
            .map_or(0, |r| r.threshold.max(0.0).round() as u64);
        let step = (limit / 20 / 60 * 60).max(60);
        TestSteps {
            limit,
            step,
            past: (limit / step + 1) * step,
        }
    }
}

/// The `boards` part of the template context: for each enabled dashboard, its hidden
/// panels and the stable Grafana panel id of each catalogue panel.
pub(super) fn boards(env: &Environment) -> Value {
    let mut out = Map::new();
    for def in BOARDS {
        let Some(board) = env.dashboards.boards.get(def.name) else {
            continue;
        };
        let ids: Map<String, Value> = def
            .panels
            .iter()
            .enumerate()
            .map(|(i, p)| ((*p).to_owned(), json!(i + 1)))
            .collect();
        out.insert(
            def.name.into(),
            json!({"title": def.title, "hidden": board.hide_panels, "ids": ids}),
        );
    }
    Value::Object(out)
}

fn labels(env: &Environment, name: &str) -> Value {
    json!({
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": "monitoring",
        "app.kubernetes.io/part-of": env.project,
        "app.kubernetes.io/managed-by": "controlplane",
    })
}

/// The extra objects: a PrometheusRule with every rule group rendered from `alerts/`
/// (not its tests), and a ConfigMap per dashboard rendered from `dashboards/`, both
/// only when the environment has monitoring.
pub(super) fn kubernetes_objects(
    renderer: &Renderer,
    env: &Environment,
) -> Result<Vec<Value>, RenderError> {
    if env.monitoring.is_none() {
        return Ok(Vec::new());
    }
    let ctx = Renderer::context_for(env, false, super::Series::Kubernetes);
    let mut groups = Vec::new();
    let mut boards = Vec::new();
    for name in renderer.names.iter().filter(|n| !is_partial(n)) {
        let rules = name.starts_with("alerts/")
            && !name.starts_with("alerts/tests/")
            && (name.ends_with(".yaml") || name.ends_with(".yml"));
        let board = name.starts_with("dashboards/") && name.ends_with(".json");
        if !rules && !board {
            continue;
        }
        if board && !super::board_enabled(env, &name["dashboards/".len()..]) {
            continue;
        }
        let text = renderer.render_one(name, env.name.as_str(), &ctx)?;
        if text.trim().is_empty() {
            continue;
        }
        let err = |message: String| RenderError {
            template: name.clone(),
            env: Some(env.name.to_string()),
            message,
        };
        if rules {
            let doc: Value = serde_saphyr::from_str(&text)
                .map_err(|e| err(format!("produced invalid YAML: {e}")))?;
            let Some(gs) = doc.get("groups").and_then(Value::as_array) else {
                return Err(err(
                    "a rules file must be a mapping with a `groups` list (Prometheus rule file format)"
                        .into(),
                ));
            };
            groups.extend(gs.iter().cloned());
        } else {
            let stem = name["dashboards/".len()..].trim_end_matches(".json");
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| err(format!("produced invalid JSON: {e}")))?;
            let mut pretty = serde_json::to_string_pretty(&v).expect("values serialize");
            pretty.push('\n');
            let mut l = labels(env, "grafana-dashboards");
            l["grafana_dashboard"] = json!("1");
            boards.push(json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": format!("grafana-dashboard-{}", stem.replace(['_', '/'], "-")),
                    "labels": l,
                    "annotations": {"grafana_folder": env.project},
                },
                "data": {format!("{}.json", stem.replace('/', "-")): pretty},
            }));
        }
    }
    let mut out = Vec::new();
    if !groups.is_empty() {
        out.push(json!({
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": format!("{}-rules", env.project), "labels": labels(env, "prometheus-rules")},
            "spec": {"groups": groups},
        }));
    }
    out.extend(boards);
    Ok(out)
}
