//! The monitoring output judged by Prometheus's own tool: `promtool check rules` on
//! every rules file, `promtool check config` on each environment's prometheus.yaml
//! (compose) and prometheus.process.yaml (process), and `promtool test rules` on the rendered unit tests (every alert fires at its
//! threshold after its `for`, stays silent below it and before `for` elapses). Also:
//! per-environment thresholds take effect, a disabled rule disappears with its tests,
//! the process platform's scrape config names the same jobs on loopback only, and the
//! Kubernetes PrometheusRule and dashboard ConfigMaps carry the same content.

// Tests run the binaries they judge (ours, kubectl, promtool) by path on purpose.
#![allow(clippy::disallowed_methods)]

mod support;

use std::path::Path;
use std::process::Command;

use cp_core::catalog::{BOARDS, RULES};
use serde_json::Value;

fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}): this test needs it; apt-get install prometheus")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {} failed in {}:\n{text}",
        args.join(" "),
        dir.display()
    );
    text
}

fn write_tree(dir: &Path, out: &cp_core::render::Output) {
    for (path, text) in &out.files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn files_under<'a>(out: &'a cp_core::render::Output, prefix: &str) -> Vec<&'a str> {
    out.files
        .keys()
        .filter(|k| k.starts_with(prefix))
        .map(String::as_str)
        .collect()
}

#[test]
fn promtool_accepts_rules_and_config_and_every_alert_passes_its_unit_tests() {
    let out = support::render(support::ENVS);
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), &out);
    for env in support::ENVS {
        let dir = tmp.path().join(format!("prometheus/{env}"));
        promtool(&["check", "rules", "recording.yaml", "alerts.yaml"], &dir);
        promtool(&["check", "config", "prometheus.yaml"], &dir);
        promtool(&["check", "config", "prometheus.process.yaml"], &dir);
        let tests: Vec<String> = files_under(&out, &format!("prometheus/{env}/tests/"))
            .iter()
            .map(|p| {
                p.rsplit_once(&format!("prometheus/{env}/")[..])
                    .unwrap()
                    .1
                    .to_owned()
            })
            .collect();
        assert!(!tests.is_empty(), "{env}: no promtool unit tests rendered");
        let mut args = vec!["test", "rules"];
        args.extend(tests.iter().map(String::as_str));
        let report = promtool(&args, &dir);
        assert!(report.contains("SUCCESS"), "{env}: {report}");
    }
    // The same tests on the rules the PrometheusRule carries: the memory, CPU, disk
    // and restart alerts' Kubernetes expressions, with Kubernetes input series.
    let renderer = cp_core::render::Renderer::new(&support::templates()).unwrap();
    for name in support::ENVS {
        let env = support::load(name);
        let files = renderer.kubernetes_rule_files(&env).unwrap();
        let kube = tempfile::tempdir().unwrap();
        for (path, text) in &files {
            let p = kube.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let dir = kube.path().join(format!("prometheus/{name}"));
        promtool(&["check", "rules", "recording.yaml", "alerts.yaml"], &dir);
        let alerts = &files[&format!("prometheus/{name}/alerts.yaml")];
        assert!(
            alerts.contains("namespace_pod_container:memory_usage:ratio"),
            "{alerts}"
        );
        let mut args = vec!["test".to_owned(), "rules".to_owned()];
        args.extend(
            files
                .keys()
                .filter_map(|k| k.strip_prefix(&format!("prometheus/{name}/")))
                .filter(|k| k.starts_with("tests/"))
                .map(str::to_owned),
        );
        assert!(args.len() > 2, "{name}: no Kubernetes promtool tests");
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let report = promtool(&args, &dir);
        assert!(report.contains("SUCCESS"), "{name} (kubernetes): {report}");
    }
}

/// The memory, CPU, disk and restart alerts read node_exporter's series (and the
/// scraped processes' start times) in the local rule files, and the kubelet's and
/// kube-state-metrics' in the PrometheusRule: one catalogue entry, two expressions.
#[test]
fn host_and_kubernetes_variants_of_the_resource_alerts() {
    let renderer = cp_core::render::Renderer::new(&support::templates()).unwrap();
    let env = support::load("staging");
    let local = renderer.env_files(&env).unwrap();
    let kube = renderer.kubernetes_rule_files(&env).unwrap();
    let text = |files: &std::collections::BTreeMap<String, String>, f: &str| {
        files[&format!("prometheus/staging/{f}")].clone()
    };
    let (lr, kr) = (
        text(&local, "recording.yaml"),
        text(&kube, "recording.yaml"),
    );
    for m in [
        "node_memory_MemAvailable_bytes",
        "node_cpu_seconds_total",
        "node_filesystem_avail_bytes",
        "process_start_time_seconds",
    ] {
        assert!(lr.contains(m) && !kr.contains(m), "{m}");
    }
    for m in [
        "container_memory_working_set_bytes",
        "kube_pod_container_status_restarts_total",
        "kubelet_volume_stats_available_bytes",
    ] {
        assert!(kr.contains(m) && !lr.contains(m), "{m}");
    }
    assert!(local["prometheus/staging/prometheus.process.yaml"].contains("job_name: node"));
    assert!(local["compose/staging/docker-compose.yaml"].contains("node-exporter:"));
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Alert name and expression of every alert rule in an environment's alerts.yaml.
fn alerts(out: &cp_core::render::Output, env: &str) -> Vec<(String, String)> {
    let doc = yaml(&out.files[&format!("prometheus/{env}/alerts.yaml")]);
    doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .filter_map(|r| {
            Some((
                r.get("alert")?.as_str()?.to_owned(),
                r["expr"].as_str().unwrap().to_owned(),
            ))
        })
        .collect()
}

fn expr_of(out: &cp_core::render::Output, env: &str, alert: &str) -> String {
    alerts(out, env)
        .into_iter()
        .find(|(a, _)| a == alert)
        .unwrap_or_else(|| panic!("{env}: no {alert} rule"))
        .1
}

#[test]
fn every_catalogue_alert_is_rendered_with_a_unit_test_that_expects_it_to_fire() {
    let out = support::render(&["staging"]);
    let rendered = alerts(&out, "staging");
    for def in RULES {
        assert!(
            rendered.iter().any(|(a, _)| a == def.alert),
            "staging renders no {} rule",
            def.alert
        );
        let test = out
            .files
            .get(&format!("prometheus/staging/tests/{}.yaml", def.key))
            .unwrap_or_else(|| panic!("no promtool test for {}", def.alert));
        let doc = yaml(test);
        let cases = doc["tests"].as_array().unwrap();
        let checks: Vec<&Value> = cases
            .iter()
            .flat_map(|c| c["alert_rule_test"].as_array().unwrap().iter())
            .filter(|t| t["alertname"] == def.alert)
            .collect();
        let firing = checks
            .iter()
            .filter(|t| !t["exp_alerts"].as_array().unwrap().is_empty())
            .count();
        let silent = checks.len() - firing;
        assert!(firing >= 1, "{}: no case where it fires", def.alert);
        assert!(
            silent >= 2,
            "{}: needs a silent-below and a silent-before-for case",
            def.alert
        );
        // The silent-before-for case is taken while the condition already holds:
        // promtool is asked to find the alert pending then.
        let pending = cases
            .iter()
            .flat_map(|c| c["promql_expr_test"].as_array().into_iter().flatten())
            .any(|t| {
                let e = t["expr"].as_str().unwrap_or_default();
                e.contains(def.alert) && e.contains("alertstate=\"pending\"")
            });
        assert!(
            pending,
            "{}: no check that it is pending before for",
            def.alert
        );
    }
}

#[test]
fn thresholds_are_per_environment_and_a_disabled_rule_disappears_with_its_tests() {
    let out = support::render(support::ENVS);
    // production.yaml holds the error rate and latency tighter than base.yaml.
    assert!(expr_of(&out, "staging", "HighErrorRate").ends_with("> 0.05"));
    assert!(expr_of(&out, "production", "HighErrorRate").ends_with("> 0.02"));
    assert!(expr_of(&out, "staging", "HighLatencyP95").ends_with("> 1"));
    assert!(expr_of(&out, "production", "HighLatencyP95").ends_with("> 0.5"));
    assert!(expr_of(&out, "dev", "PodRestartingTooOften").ends_with("> 10"));
    assert!(expr_of(&out, "production", "PodRestartingTooOften").ends_with("> 3"));
    // The backup age limit follows each schedule: daily (0 2 * * *) in staging, every
    // six hours in production: 1.5 x the longest gap + 30 minutes.
    assert!(
        expr_of(&out, "staging", "BackupTooOld").ends_with(&format!("> {}", 86_400 * 3 / 2 + 1800))
    );
    assert!(
        expr_of(&out, "production", "BackupTooOld")
            .ends_with(&format!("> {}", 21_600 * 3 / 2 + 1800))
    );
    // dev.yaml turns failed_auth_spike off: gone from the rules and its test too.
    assert!(
        alerts(&out, "dev")
            .iter()
            .all(|(a, _)| a != "FailedAuthSpike")
    );
    assert!(
        !out.files
            .contains_key("prometheus/dev/tests/failed_auth_spike.yaml")
    );
    assert!(
        out.files
            .contains_key("prometheus/staging/tests/failed_auth_spike.yaml")
    );
}

#[test]
fn a_set_override_changes_a_threshold_and_drops_a_rule_without_touching_templates() {
    let files = support::shipped();
    let env = cp_core::load(
        &files,
        "staging",
        &[
            "alerts.rules.high_cpu.threshold=0.5".into(),
            "alerts.rules.vault_sealed.enabled=false".into(),
            "monitoring.notify.group_wait=1s".into(),
            "monitoring.notify.repeat_interval=20m".into(),
        ],
    )
    .unwrap_or_else(|d| panic!("{d}"))
    .env;
    let renderer = cp_core::render::Renderer::new(&support::templates()).unwrap();
    let files = renderer.env_files(&env).unwrap();
    let out = cp_core::render::Output { files };
    assert!(expr_of(&out, "staging", "HighCPUUsage").ends_with("> 0.5"));
    assert!(
        alerts(&out, "staging")
            .iter()
            .all(|(a, _)| a != "VaultSealed")
    );
    assert!(
        !out.files
            .contains_key("prometheus/staging/tests/vault_sealed.yaml")
    );
    // Alertmanager's timers: group_wait as set, group_interval at its default, and the
    // critical route never repeating less often than the route above it.
    let am = yaml(&out.files["prometheus/staging/alertmanager.yaml"]);
    assert_eq!(am["route"]["group_wait"], "1s");
    assert_eq!(am["route"]["group_interval"], "5m");
    assert_eq!(am["route"]["repeat_interval"], "20m");
    assert_eq!(am["route"]["routes"][0]["repeat_interval"], "20m");
}

#[test]
fn the_prometheus_rule_and_dashboard_config_maps_carry_the_rendered_files() {
    let renderer = cp_core::render::Renderer::new(&support::templates()).unwrap();
    for name in support::ENVS {
        let env = support::load(name);
        let files = renderer.env_files(&env).unwrap();
        let rules = renderer.kubernetes_rule_files(&env).unwrap();
        let objects = renderer.kubernetes_objects(&env, false).unwrap();
        let rule = objects
            .iter()
            .find(|o| o["kind"] == "PrometheusRule")
            .unwrap_or_else(|| panic!("{name}: no PrometheusRule"));
        let mut groups = Vec::new();
        // In template order (alerts/alerts.yaml, then alerts/recording.yaml).
        for f in ["alerts.yaml", "recording.yaml"] {
            let doc = yaml(&rules[&format!("prometheus/{name}/{f}")]);
            groups.extend(doc["groups"].as_array().unwrap().iter().cloned());
        }
        assert_eq!(rule["spec"]["groups"], Value::Array(groups), "{name}");
        for board in env.dashboards.boards.keys() {
            let cm = objects
                .iter()
                .find(|o| {
                    o["kind"] == "ConfigMap"
                        && o["metadata"]["name"] == format!("grafana-dashboard-{board}")
                })
                .unwrap_or_else(|| panic!("{name}: no ConfigMap for dashboard {board}"));
            assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
            assert_eq!(
                cm["data"][format!("{board}.json")].as_str().unwrap(),
                files[&format!("grafana/{name}/dashboards/{board}.json")],
                "{name}/{board}"
            );
        }
    }
}

#[test]
fn dashboards_show_every_catalogue_panel_except_the_hidden_ones() {
    let out = support::render(support::ENVS);
    for name in support::ENVS {
        let env = support::load(name);
        for def in BOARDS {
            let board: Value = serde_json::from_str(
                &out.files[&format!("grafana/{name}/dashboards/{}.json", def.name)],
            )
            .unwrap();
            let hidden = &env.dashboards.boards[def.name].hide_panels;
            let want: Vec<u64> = def
                .panels
                .iter()
                .enumerate()
                .filter(|(_, p)| !hidden.iter().any(|h| h == *p))
                .map(|(i, _)| i as u64 + 1)
                .collect();
            let got: Vec<u64> = board["panels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_u64().unwrap())
                .collect();
            assert_eq!(got, want, "{name}/{}", def.name);
            assert_eq!(board["refresh"], env.dashboards.refresh.to_string());
        }
    }
    // dev.yaml hides the vault board's token-creation panel (id 3).
    let vault: Value =
        serde_json::from_str(&out.files["grafana/dev/dashboards/vault.json"]).unwrap();
    assert!(
        vault["panels"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["id"] != 3)
    );
}

/// Job name to targets of a rendered Prometheus configuration.
fn jobs(text: &str) -> Vec<(String, Vec<String>)> {
    yaml(text)["scrape_configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            let targets = j["static_configs"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|c| c["targets"].as_array().unwrap().iter())
                .map(|t| t.as_str().unwrap().to_owned())
                .collect();
            (j["job_name"].as_str().unwrap().to_owned(), targets)
        })
        .collect()
}

#[test]
fn the_process_platform_scrapes_the_same_jobs_on_loopback_with_the_same_rules() {
    let out = support::render(support::ENVS);
    for env in support::ENVS {
        let compose = &out.files[&format!("prometheus/{env}/prometheus.yaml")];
        let process = &out.files[&format!("prometheus/{env}/prometheus.process.yaml")];
        let (c, p) = (jobs(compose), jobs(process));
        // Every compose job (`controlplane serve` among them), on loopback.
        let mut want: Vec<&str> = c.iter().map(|(j, _)| j.as_str()).collect();
        want.sort_unstable();
        assert!(want.contains(&"controlplane"), "{env}: {want:?}");
        let mut got: Vec<&str> = p.iter().map(|(j, _)| j.as_str()).collect();
        got.sort_unstable();
        assert_eq!(got, want, "{env}");
        for (job, targets) in &p {
            assert!(!targets.is_empty(), "{env}/{job}: no target");
            for t in targets {
                assert!(
                    t.starts_with("127.0.0.1:"),
                    "{env}/{job}: {t} is not loopback"
                );
            }
        }
        assert!(p.contains(&("controlplane".into(), vec!["127.0.0.1:7700".into()])));
        let (cy, py) = (yaml(compose), yaml(process));
        assert_eq!(cy["rule_files"], py["rule_files"], "{env}");
        assert_eq!(
            py["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0],
            "127.0.0.1:9093"
        );
    }
}

/// Every alert rule of a rule group list, as (alert name, its annotations).
fn annotated(groups: &Value) -> Vec<(String, Value)> {
    groups
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().iter())
        .filter_map(|r| {
            Some((
                r.get("alert")?.as_str()?.to_owned(),
                r["annotations"].clone(),
            ))
        })
        .collect()
}

/// Every alert of every shipped environment, built-in and `alerts.custom` alike, as
/// the local rule files and the Kubernetes PrometheusRule carry it, links to
/// `docs/runbooks/<AlertName>.md`, and that page exists with its three sections. A
/// new catalogue rule, or a custom rule in a committed environment, fails here until
/// its runbook is written.
#[test]
fn every_rendered_alert_has_a_runbook() {
    let renderer = cp_core::render::Renderer::new(&support::templates()).unwrap();
    let root = support::repo_root();
    let mut seen = std::collections::BTreeSet::new();
    for name in support::ENVS {
        let env = support::load(name);
        assert_eq!(env.alerts.runbook_base, "docs/runbooks", "{name}");
        let files = renderer.env_files(&env).unwrap();
        let local = yaml(&files[&format!("prometheus/{name}/alerts.yaml")]);
        let objects = renderer.kubernetes_objects(&env, false).unwrap();
        let rule = objects
            .iter()
            .find(|o| o["kind"] == "PrometheusRule")
            .unwrap_or_else(|| panic!("{name}: no PrometheusRule"));
        let mut all = annotated(&local["groups"]);
        all.extend(annotated(&rule["spec"]["groups"]));
        assert!(!all.is_empty(), "{name}: no alerts rendered");
        for (alert, annotations) in all {
            let url = annotations["runbook_url"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: {alert} has no runbook_url annotation"));
            assert_eq!(url, format!("docs/runbooks/{alert}.md"), "{name}: {alert}");
            let text = std::fs::read_to_string(root.join(url))
                .unwrap_or_else(|e| panic!("{name}: {alert}'s runbook {url}: {e}"));
            for section in ["## What it means", "## What to check", "## What to run"] {
                assert!(text.contains(section), "{url} has no `{section}`");
            }
            seen.insert(alert);
        }
    }
    for def in RULES {
        assert!(
            seen.contains(def.alert),
            "no environment renders {}",
            def.alert
        );
    }
}

#[test]
fn runbook_base_prefixes_every_runbook_url_and_custom_rules_get_one() {
    let renderer = cp_core::render::Renderer::new(&support::templates()).unwrap();
    let sets = [
        "alerts.runbook_base=https://git.example.com/ops/blob/main/docs/runbooks/".to_owned(),
        "alerts.custom=[{alert: QueueBacklog, expr: 'up == 0', for: 120s}]".to_owned(),
    ];
    let env = cp_core::load(&support::shipped(), "staging", &sets)
        .unwrap_or_else(|d| panic!("{d}"))
        .env;
    let files = renderer.env_files(&env).unwrap();
    let doc = yaml(&files["prometheus/staging/alerts.yaml"]);
    let all = annotated(&doc["groups"]);
    assert!(all.iter().any(|(a, _)| a == "QueueBacklog"), "{all:?}");
    for (alert, annotations) in all {
        assert_eq!(
            annotations["runbook_url"],
            format!("https://git.example.com/ops/blob/main/docs/runbooks/{alert}.md"),
            "{alert}"
        );
    }
}

/// On Kubernetes the environment's notification route is an AlertmanagerConfig
/// (validated against the vendored CRD by `tests/crds.rs`): production carries seed
/// 002's timers, and the webhook URL only as a reference to the Secret that holds it.
/// Without a webhook (dev) none is rendered, so the cluster's own route applies.
#[test]
fn kubernetes_alertmanager_config_has_the_seed_timers_and_the_webhook_by_reference() {
    let renderer = cp_core::render::Renderer::new(&support::templates()).unwrap();
    let amc = |name: &str| {
        let env = support::load(name);
        renderer
            .kubernetes_objects(&env, false)
            .unwrap()
            .into_iter()
            .find(|o| o["kind"] == "AlertmanagerConfig")
    };
    let prod = amc("production").expect("production renders an AlertmanagerConfig");
    let route = &prod["spec"]["route"];
    assert_eq!(
        (
            &route["groupWait"],
            &route["groupInterval"],
            &route["repeatInterval"]
        ),
        (&Value::from("30s"), &Value::from("5m"), &Value::from("1h")),
        "{prod}"
    );
    let hook = &prod["spec"]["receivers"][0]["webhookConfigs"][0];
    assert_eq!(hook["urlSecret"]["name"], "alertmanager-vault", "{prod}");
    assert_eq!(hook["urlSecret"]["key"], "WEBHOOK_URL", "{prod}");
    assert!(hook.get("url").is_none(), "{prod}");
    assert!(amc("dev").is_none(), "dev has no webhook_url");
}
