//! The tier policy and JetStream's sync setting, on the shipped environments: staging
//! and production sync before acknowledging on every platform; production refuses
//! what the policy forbids unless `accept:` names the rule with a reason, and
//! `validate` shows each acceptance.

mod support;

use cp_core::model::NatsSync;
use cp_core::serverconf::{self, Layout};

fn layout() -> Layout {
    Layout {
        bind: "127.0.0.1".into(),
        advertise: "127.0.0.1".into(),
        data_dir: "/state/data".into(),
        run_dir: "/state/run".into(),
        client_networks: vec!["127.0.0.1/32".into()],
        runs_in_run_dir: false,
    }
}

fn load_err(env: &str, sets: &[&str]) -> String {
    let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
    match cp_core::load(&support::shipped(), env, &sets) {
        Ok(_) => panic!("{env} {sets:?} loaded"),
        Err(d) => d.to_string(),
    }
}

#[test]
fn staging_and_production_sync_before_acknowledging_on_every_platform() {
    let out = support::render(support::ENVS);
    for env in ["staging", "production"] {
        let model = support::load(env);
        assert_eq!(
            model.services.nats.as_ref().unwrap().sync,
            Some(NatsSync::Always)
        );
        // Processes (and every node of a process cluster) write serverconf's file.
        let n = model.services.nats.as_ref().unwrap();
        assert!(serverconf::nats_conf(&model, n, &layout()).contains("  sync_interval: always\n"));
        let compose = &out.files[&format!("compose/{env}/config/nats.conf")];
        assert!(compose.contains("  sync_interval: always\n"), "{compose}");
        let kube = out
            .files
            .iter()
            .find(|(p, _)| p.contains(&format!("overlays/{env}/")) && p.contains("nats-config"))
            .map(|(_, t)| t)
            .unwrap_or_else(|| panic!("no NATS ConfigMap for {env}"));
        assert!(kube.contains("sync_interval: always"), "{kube}");
    }
    // Dev keeps the server's default (a laptop's throughput over its durability).
    let dev = support::load("dev");
    assert_eq!(dev.services.nats.as_ref().unwrap().sync, None);
    assert!(!out.files["compose/dev/config/nats.conf"].contains("sync_interval"));
    // An interval is written in seconds (nats-server reads Go durations: no `d`).
    let e = support::load_with("dev", &["services.nats.sync=1d"]);
    let conf = serverconf::nats_conf(&e, e.services.nats.as_ref().unwrap(), &layout());
    assert!(conf.contains("  sync_interval: \"86400s\"\n"), "{conf}");
}

#[test]
fn production_refuses_an_interval_unless_accepted_and_validate_shows_the_acceptance() {
    let err = load_err("production", &["services.nats.sync=2m"]);
    assert!(err.contains("[nats-sync-interval]"), "{err}");
    assert!(err.contains("services.nats.sync"), "{err}");
    let accepted = support::load_with(
        "production",
        &[
            "services.nats.sync=2m",
            r#"accept=[{rule: nats-sync-interval, reason: "a load test, data is disposable"}]"#,
        ],
    );
    let f = accepted
        .policy
        .iter()
        .find(|f| f.rule == "nats-sync-interval")
        .expect("the acceptance is shown");
    assert_eq!(
        f.accepted.as_deref(),
        Some("a load test, data is disposable")
    );
    // Staging may choose an interval.
    let staging = support::load_with("staging", &["services.nats.sync=2m"]);
    assert!(staging.policy.is_empty(), "{:?}", staging.policy);
}

#[test]
fn production_needs_ha_encryption_and_durable_postgres_unless_accepted() {
    // The shipped production satisfies every rule.
    let prod = support::load("production");
    assert!(prod.policy.is_empty(), "{:?}", prod.policy);
    for (set, rule) in [
        ("services.postgres.replicas=1", "postgres-ha"),
        ("services.nats.replicas=1", "nats-ha"),
        ("services.vault.replicas=1", "vault-ha"),
        ("backup.encrypt_to=[]", "backup-encryption"),
        (
            "services.postgres.settings.fsync=off",
            "postgres-durability",
        ),
        (
            "services.postgres.settings.full_page_writes=false",
            "postgres-durability",
        ),
        (
            "services.postgres.settings.synchronous_commit=off",
            "postgres-durability",
        ),
        ("services.postgres.version=14", "version-end-of-support"),
        ("services.redis.version=\"7.0\"", "version-end-of-support"),
    ] {
        let err = load_err("production", &[set]);
        assert!(err.contains(&format!("[{rule}]")), "{set}: {err}");
        assert!(
            err.contains("accept"),
            "{set}: the help names accept: {err}"
        );
        let env = support::load_with(
            "production",
            &[
                set,
                &format!("accept=[{{rule: {rule}, reason: \"known\"}}]"),
            ],
        );
        assert!(
            env.policy
                .iter()
                .any(|f| f.rule == rule && f.accepted.as_deref() == Some("known")),
            "{set}: {:?}",
            env.policy
        );
    }
    // Elsewhere a version past its end of support is a warning, not an error.
    let dev = support::load_with("dev", &["services.redis.version=\"7.0\""]);
    let w = dev
        .policy
        .iter()
        .find(|f| f.rule == "version-end-of-support")
        .expect("a warning");
    assert_eq!(w.accepted, None);
    assert!(w.message.contains("redis 7.0"), "{}", w.message);
}

#[test]
fn acceptances_name_known_rules_with_a_reason() {
    let err = load_err(
        "production",
        &["accept=[{rule: nats-sync-intervall, reason: x}]"],
    );
    assert!(
        err.contains("`nats-sync-intervall` is not a tier-policy rule"),
        "{err}"
    );
    assert!(err.contains("did you mean `nats-sync-interval`?"), "{err}");
    let err = load_err("production", &["accept=[{rule: nats-ha}]"]);
    assert!(err.contains("reason"), "{err}");
    let err = load_err("production", &["accept=[{rule: nats-ha, reason: \" \"}]"]);
    assert!(err.contains("an acceptance without a reason"), "{err}");
    // An acceptance that covers nothing is shown, so it does not outlive its reason.
    let env = support::load_with("production", &["accept=[{rule: nats-ha, reason: x}]"]);
    assert!(
        env.policy
            .iter()
            .any(|f| f.rule == "nats-ha" && f.message.contains("does not break")),
        "{:?}",
        env.policy
    );
}

#[test]
fn sync_is_refused_on_a_nats_that_cannot_honour_it() {
    let err = load_err(
        "dev",
        &["services.nats.version=\"2.9\"", "services.nats.sync=always"],
    );
    assert!(err.contains("cannot honour `sync`"), "{err}");
    // Unset on 2.9 in staging: no sync written (the server would stop on it).
    let staging = support::load_with("staging", &["services.nats.version=\"2.9\""]);
    assert_eq!(staging.services.nats.as_ref().unwrap().sync, None);
}

#[test]
fn production_with_several_instances_renders_synchronous_replication() {
    let out = support::render(&["production"]);
    let cluster = out
        .files
        .iter()
        .filter(|(p, _)| p.contains("production"))
        .find(|(_, t)| t.contains("kind: Cluster"))
        .map(|(_, t)| t)
        .expect("a CloudNativePG Cluster in production");
    let sync = cluster
        .split_once("    synchronous:\n")
        .unwrap_or_else(|| panic!("no synchronous replication:\n{cluster}"))
        .1;
    for line in ["method: any", "number: 1", "dataDurability: required"] {
        assert!(sync.contains(line), "{line}:\n{cluster}");
    }
    let staging = support::render_loaded(&[support::load_with(
        "staging",
        &["services.postgres.replicas=3"],
    )]);
    assert!(
        !staging.files.values().any(|t| t.contains("dataDurability")),
        "staging renders no synchronous replication"
    );
}
