//! The monitoring output judged by Prometheus's own tool: `promtool check rules` on
//! every rules file, `promtool check config` on each environment's prometheus.yaml,
//! and `promtool test rules` on the rendered unit tests (every alert fires at its
//! threshold after its `for`, stays silent below it and before `for` elapses). Also:
//! per-environment thresholds take effect, a disabled rule disappears with its tests,
//! and the Kubernetes PrometheusRule and dashboard ConfigMaps carry the same content.

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
        let tests: Vec<String> = files_under(&out, &format!("prometheus/{env}/tests/"))
            .iter()
            .map(|p| p.rsplit_once(&format!("prometheus/{env}/")[..]).unwrap().1.to_owned())
            .collect();
        assert!(!tests.is_empty(), "{env}: no promtool unit tests rendered");
        let mut args = vec!["test", "rules"];
        args.extend(tests.iter().map(String::as_str));
        let report = promtool(&args, &dir);
        assert!(report.contains("SUCCESS"), "{env}: {report}");
    }
}
