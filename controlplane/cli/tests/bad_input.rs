//! Bad input, each with a clear message, exit code 3 (invalid input; distinct from 2,
//! changes pending), and nothing written.
//!
//! Every case runs the real binary in a copy of the project and snapshots what a
//! person sees on stderr (`tests/snapshots/`, insta's files), so a change to a message
//! shows in review. `CP_BLESS=1`, the switch of every golden, rewrites them too.

// Tests run the binaries they judge (ours, kubectl, promtool) by path on purpose.
#![allow(clippy::disallowed_methods)]

use std::process::Command;

/// `insta::assert_snapshot!` of what a person sees, named after the test; under
/// `CP_BLESS=1` (which insta does not read: it answers to `INSTA_UPDATE`) the
/// snapshot is written instead.
macro_rules! snapshot {
    ($actual:expr) => {{
        let actual: &str = &$actual;
        fn here() {}
        let test = std::any::type_name_of_val(&here)
            .trim_end_matches("::here")
            .rsplit("::")
            .next()
            .unwrap();
        if cp_testkit::blessing() {
            bless(test, actual);
        } else {
            insta::assert_snapshot!(actual);
        }
    }};
}

/// Writes `actual` as insta's snapshot of `test`, keeping the file's metadata header,
/// and only when its contents changed (so blessing an unchanged snapshot is no diff);
/// a pending `.snap.new` of an earlier failed run goes.
fn bless(test: &str, actual: &str) {
    let path = cp_testkit::repo_root().join(format!(
        "controlplane/cli/tests/snapshots/bad_input__{test}.snap"
    ));
    let _ = std::fs::remove_file(path.with_extension("snap.new"));
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    // insta's file: metadata between two `---` lines, then the contents.
    let (header, body) = match old
        .strip_prefix("---\n")
        .and_then(|r| r.split_once("\n---\n"))
    {
        Some((h, b)) => (format!("---\n{h}\n---\n"), b),
        None => (
            "---\nsource: controlplane/cli/tests/bad_input.rs\nexpression: actual\n---\n"
                .to_owned(),
            "",
        ),
    };
    if body.trim_end() != actual.trim_end() {
        std::fs::write(&path, format!("{header}{}\n", actual.trim_end())).unwrap();
    }
}

/// A scratch copy of the project: environments and templates.
struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        cp_testkit::project::copy_project(dir.path());
        Self { dir }
    }

    fn write(&self, rel: &str, text: &str) -> &Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    fn edit(&self, rel: &str, from: &str, to: &str) -> &Self {
        let p = self.dir.path().join(rel);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{rel} has no `{from}`");
        std::fs::write(p, text.replacen(from, to, 1)).unwrap();
        self
    }

    /// Runs `controlplane ARGS`; returns (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let o = Command::new(env!("CARGO_BIN_EXE_controlplane"))
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("CONTROLPLANE_ENV")
            .env_remove("CONTROLPLANE_ENVIRONMENTS")
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// `validate` and `render` both refuse with exit 3 and write nothing; returns the
    /// validate message.
    fn rejects(&self, args: &[&str]) -> String {
        let mut v = args.to_vec();
        v.push("validate");
        let (code, _, err) = self.run(&v);
        assert_eq!(code, 3, "validate should exit 3:\n{err}");
        let mut r = args.to_vec();
        r.extend(["render", "--out", "out"]);
        let (code, _, rerr) = self.run(&r);
        assert_eq!(code, 3, "render should exit 3:\n{rerr}");
        assert!(
            !self.dir.path().join("out").exists(),
            "render wrote files despite invalid input"
        );
        err
    }
}

#[test]
fn unknown_key_suggests_the_closest() {
    let p = Project::new();
    p.edit(
        "environments/dev.yaml",
        "  vault:\n",
        "  postgres:\n    prot: 5433\n  vault:\n",
    );
    snapshot!(p.rejects(&[]));
}

#[test]
fn wrong_type() {
    let p = Project::new();
    p.edit(
        "environments/dev.yaml",
        "  vault:\n",
        "  redis:\n    port: high\n    replicas: [1]\n  vault:\n",
    );
    snapshot!(p.rejects(&[]));
}

#[test]
fn yaml_syntax_error() {
    let p = Project::new();
    p.write(
        "environments/dev.yaml",
        "tier: dev\nservices: [1, 2\nbackup: 3\n",
    );
    snapshot!(p.rejects(&[]));
}

#[test]
fn duplicate_port() {
    let p = Project::new();
    p.edit(
        "environments/dev.yaml",
        "  vault:\n",
        "  redis:\n    port: 5432\n  vault:\n",
    );
    snapshot!(p.rejects(&[]));
}

#[test]
fn invalid_cron_and_zero_retention_are_reported_together() {
    let p = Project::new();
    p.edit(
        "environments/dev.yaml",
        "backup:\n",
        "backup:\n  schedule: \"0 25 * * *\"\n  retention: {daily: 0, weekly: 0, monthly: 0}\n",
    );
    snapshot!(p.rejects(&[]));
}

#[test]
fn plaintext_secret_and_dev_token_in_production() {
    let p = Project::new();
    p.edit(
        "environments/production.yaml",
        "superuser_password: env://ANUMATE_PG_SUPERUSER_PASSWORD",
        "superuser_password: hunter2",
    );
    p.edit(
        "environments/production.yaml",
        "    unseal: env://ANUMATE_VAULT_UNSEAL_KEYS\n",
        "    unseal: env://ANUMATE_VAULT_UNSEAL_KEYS\n    mode: dev\n    dev_root_token: dev-root-token\n",
    );
    let err = p.rejects(&["--env", "production"]);
    assert!(
        !err.contains("hunter2") && !err.contains("dev-root-token\n"),
        "a secret was echoed:\n{err}"
    );
    snapshot!(err);
}

#[test]
fn replicas_below_the_disruption_budget() {
    let p = Project::new();
    p.edit(
        "environments/production.yaml",
        "      min_available: 2",
        "      min_available: 4",
    );
    snapshot!(p.rejects(&["--env", "production"]));
}

#[test]
fn unknown_environment_lists_the_known_ones() {
    let p = Project::new();
    snapshot!(p.rejects(&["--env", "prod"]));
}

#[test]
fn unreadable_file() {
    let p = Project::new();
    // Root reads any file regardless of mode, so make it undecodable instead.
    std::fs::write(
        p.dir.path().join("environments/dev.yaml"),
        b"tier: dev\n\xff\xfe\n",
    )
    .unwrap();
    snapshot!(p.rejects(&[]));
}

#[test]
fn bad_set_paths() {
    let p = Project::new();
    let err = p.rejects(&[
        "--set",
        "services.postgres.prot=15432",
        "--set",
        "services.postgres.port.x=1",
        "--set",
        "novalue",
    ]);
    snapshot!(err);
}

#[test]
fn set_values_are_validated_like_the_files() {
    let p = Project::new();
    snapshot!(p.rejects(&[
        "--set",
        "services.postgres.port=99999",
        "--set",
        "tier=prod"
    ]));
    let (code, out, err) = p.run(&[
        "--set",
        "services.postgres.port=15432",
        "--output",
        "json",
        "config",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["services"]["postgres"]["port"], 15432);
}

#[test]
fn broken_template_names_the_template_and_line() {
    let p = Project::new();
    p.write(
        "templates/kubernetes/broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ env.no_such_field }}\n",
    );
    let (code, _, err) = p.run(&["render", "--out", "out"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        !p.dir.path().join("out").exists(),
        "render wrote files despite a broken template"
    );
    assert!(err.contains("templates/kubernetes/broken.yaml"), "{err}");
    snapshot!(err);
    p.write("templates/kubernetes/broken.yaml", "{% if %}\n");
    let (code, _, err) = p.run(&["render", "--out", "out"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("templates/kubernetes/broken.yaml"), "{err}");
}

#[test]
fn json_output_lists_every_error_with_its_place() {
    let p = Project::new();
    p.edit(
        "environments/dev.yaml",
        "  vault:\n",
        "  redis:\n    port: 5432\n    prot: 1\n  vault:\n",
    );
    let (code, out, _) = p.run(&["--output", "json", "validate"]);
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{out}");
    for e in errors {
        assert_eq!(e["location"]["file"], "environments/dev.yaml");
        assert!(e["location"]["line"].as_u64().unwrap() > 0);
        assert!(e["path"].as_str().unwrap().starts_with("services.redis."));
        assert!(e["expected"].is_string());
    }
}

#[test]
fn render_check_names_a_hand_edited_file_and_shows_the_diff() {
    let p = Project::new();
    let (code, _, err) = p.run(&["render", "--all", "--out", "out"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = p.run(&["render", "--all", "--out", "out", "--check"]);
    assert_eq!(code, 0, "{out}");
    let file = p
        .dir
        .path()
        .join("out/kubernetes/overlays/production/patches/deployment-capsule-registry.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("value: 3", "value: 30")).unwrap();
    std::fs::write(p.dir.path().join("out/compose/dev/stray.yaml"), "x: 1\n").unwrap();
    let (code, out, err) = p.run(&["render", "--all", "--out", "out", "--check"]);
    assert_eq!(code, 2, "drift is exit 2: {out}{err}");
    // The hint repeats the flags given.
    assert!(
        err.contains("`controlplane render --all --out out`"),
        "{err}"
    );
    assert!(
        out.contains(
            "changed: kubernetes/overlays/production/patches/deployment-capsule-registry.yaml"
        ),
        "{out}"
    );
    assert!(out.contains("-  value: 30\n+  value: 3"), "{out}");
    assert!(out.contains("stale: compose/dev/stray.yaml"), "{out}");
    assert!(err.contains("2 file(s)"), "{err}");
    // Rendering again repairs both.
    assert_eq!(p.run(&["render", "--all", "--out", "out"]).0, 0);
    assert_eq!(p.run(&["render", "--all", "--out", "out", "--check"]).0, 0);
}

#[test]
fn topologies_that_would_split_data_are_refused() {
    let p = Project::new();
    // On the process platform: PostgreSQL beyond one instance (CloudNativePG needs
    // Kubernetes), Redis beyond one, a NATS of 2 (no quorum), a stream replicated more
    // often than NATS has nodes.
    snapshot!(p.rejects(&[
        "--set",
        "platform=process",
        "--set",
        "services.postgres.replicas=2",
        "--set",
        "services.redis.replicas=3",
        "--set",
        "services.nats.replicas=2",
        "--set",
        "services.vault.replicas=3",
        "--set",
        "streams.AUDIT_EVENTS.replicas=3",
    ]));
}

#[test]
fn clusters_need_a_platform_that_runs_them() {
    let p = Project::new();
    snapshot!(p.rejects(&[
        "--set",
        "platform=docker",
        "--set",
        "services.nats.replicas=3",
    ]));
    // The same cluster on the process platform and on Kubernetes is valid, and so is
    // a 3-instance PostgreSQL on Kubernetes.
    for platform in ["process", "kubernetes"] {
        let (code, _, err) = p.run(&[
            "--set",
            &format!("platform={platform}"),
            "--set",
            "services.nats.replicas=3",
            "--set",
            "services.vault.replicas=3",
            "--set",
            "streams.AUDIT_EVENTS.replicas=3",
            "validate",
        ]);
        assert_eq!(code, 0, "{platform}: {err}");
    }
    let (code, _, err) = p.run(&[
        "--env",
        "production",
        "--set",
        "services.postgres.replicas=3",
        "validate",
    ]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn validate_all_reports_a_base_error_once_with_the_environments_it_affects() {
    let p = Project::new();
    p.edit(
        "environments/base.yaml",
        "depends_on: [postgres, nats, redis, vault]",
        "depends_on: [postgres, nats, redis, vault, cache]",
    );
    p.edit("environments/dev.yaml", "tag: dev", "tag: dev\n    port: 0");
    let (code, _, err) = p.run(&["validate", "--all"]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(err.matches("no service named `cache`").count(), 1, "{err}");
    snapshot!(err);
    let (code, _, rerr) = p.run(&["render", "--all", "--out", "out"]);
    assert_eq!(code, 3, "{rerr}");
    assert_eq!(rerr, err, "render --all reports what validate --all does");
    let (_, out, _) = p.run(&["--output", "json", "validate", "--all"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let affects: Vec<_> = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["path"].as_str().unwrap(), e["affects"].clone()))
        .collect();
    assert_eq!(
        affects,
        [
            ("apps.capsule-registry.port", serde_json::json!(["dev"])),
            (
                "apps.capsule-registry.depends_on[4]",
                serde_json::json!(["dev", "production", "staging"])
            ),
        ],
        "{out}"
    );
    // One environment at a time, nothing to tell apart.
    let (_, out, _) = p.run(&["--output", "json", "validate"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["errors"][0].get("affects").is_none(), "{out}");
}

#[test]
fn depends_on_errors_point_at_the_list_item() {
    let p = Project::new();
    p.edit(
        "environments/dev.yaml",
        "    log_level: debug\n",
        "    log_level: debug\n    depends_on:\n      - postgres\n      - jaeger\n      - redis-cache\n",
    );
    p.edit(
        "environments/dev.yaml",
        "streams:\n",
        "extras:\n  jaeger:\n    depends_on: [nats, capsule-registry]\n\nstreams:\n",
    );
    snapshot!(p.rejects(&[]));
}

#[test]
fn overlapping_subjects_point_at_the_subject() {
    let p = Project::new();
    p.edit(
        "environments/dev.yaml",
        "streams:\n",
        "streams:\n  REPLAY_EVENTS:\n    subjects:\n      - replay.>\n      - events.plan.created\n",
    );
    snapshot!(p.rejects(&[]));
}

#[test]
fn duplicate_keys_name_the_first_occurrence() {
    let p = Project::new();
    p.edit(
        "environments/dev.yaml",
        "    tag: dev\n",
        "    tag: dev\n    replicas: 2\n",
    );
    p.edit(
        "environments/dev.yaml",
        "backup:\n",
        "tier: staging\n\nbackup:\n",
    );
    snapshot!(p.rejects(&[]));
}

#[test]
fn cron_errors_name_the_field_and_its_range() {
    let p = Project::new();
    let err = p.rejects(&["--set", "backup.schedule=30 2 * JUNE MON-FRI"]);
    snapshot!(err);
}

/// Not bad input: the way back. What `config` prints is an environment file that, put
/// next to the others (over base.yaml), validates and prints the same again.
#[test]
fn config_output_is_accepted_back_as_an_environment_file() {
    let p = Project::new();
    for env in ["dev", "staging", "production"] {
        let (code, out, err) = p.run(&["--env", env, "config"]);
        assert_eq!(code, 0, "{err}");
        p.write("environments/copy.yaml", &out);
        let (code, _, err) = p.run(&["--env", "copy", "validate"]);
        assert_eq!(
            code, 0,
            "config of {env} is not a valid environment file:\n{err}\n{out}"
        );
        let (_, again, _) = p.run(&["--env", "copy", "config"]);
        assert_eq!(again, out, "{env}");
    }
}

/// The tier policy through the binary: production refuses an unaccepted interval
/// naming the rule and the way to accept it; accepted, `validate` prints the
/// acceptance with its reason (and its JSON view lists it); an unknown rule id is an
/// error.
#[test]
fn tier_policy_acceptances_are_shown_by_validate() {
    let p = Project::new();
    let (code, _, err) = p.run(&[
        "--env",
        "production",
        "--set",
        "services.nats.sync=2m",
        "validate",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("[nats-sync-interval]") && err.contains("accept"),
        "{err}"
    );
    let accept =
        r#"accept=[{rule: nats-sync-interval, reason: "a load test; the data is disposable"}]"#;
    let (code, out, err) = p.run(&[
        "--env",
        "production",
        "--set",
        "services.nats.sync=2m",
        "--set",
        accept,
        "validate",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("production: accepted [nats-sync-interval]")
            && out.contains("reason: a load test; the data is disposable"),
        "{out}"
    );
    let (_, out, _) = p.run(&[
        "--env",
        "production",
        "--set",
        "services.nats.sync=2m",
        "--set",
        accept,
        "--output",
        "json",
        "validate",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["policy"][0]["rule"], "nats-sync-interval", "{out}");
    let (code, _, err) = p.run(&[
        "--env",
        "production",
        "--set",
        "accept=[{rule: no-such-rule, reason: x}]",
        "validate",
    ]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("`no-such-rule` is not a tier-policy rule"),
        "{err}"
    );
}
