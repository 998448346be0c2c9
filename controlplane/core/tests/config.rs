//! `controlplane config` output is an environment file: fed back through the loader on
//! its own (no base), it validates and gives the same model, text of every duration and
//! quantity included.

mod support;

use cp_core::{EnvFile, EnvFiles};

/// Loads `env` of the shipped files with `sets`, prints it like `config`, loads the
/// printed file alone and compares the two models as `config --output json` shows them.
fn round_trip(env: &str, sets: &[&str]) {
    let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
    let before = cp_core::load(&support::shipped(), env, &sets)
        .unwrap_or_else(|d| panic!("{env} {sets:?} is invalid:\n{d}"))
        .env;
    let yaml = cp_core::resolved::to_yaml(&before).unwrap();
    assert!(
        !yaml.contains("null"),
        "{env}: unset values printed:\n{yaml}"
    );
    let mut files = EnvFiles {
        dir: "scratch".into(),
        ..EnvFiles::default()
    };
    files.files.insert(
        env.to_owned(),
        EnvFile {
            display: format!("scratch/{env}.yaml"),
            text: Ok(yaml.clone()),
        },
    );
    let after = cp_core::load(&files, env, &[])
        .unwrap_or_else(|d| {
            panic!("the config output of {env} {sets:?} is invalid:\n{d}\n\n{yaml}")
        })
        .env;
    assert_eq!(
        serde_json::to_value(&after).unwrap(),
        serde_json::to_value(&before).unwrap(),
        "{env} {sets:?} changed on the way through config:\n{yaml}"
    );
    // And it is a fixed point: printing the reloaded model gives the same file.
    assert_eq!(cp_core::resolved::to_yaml(&after).unwrap(), yaml);
}

#[test]
fn every_shipped_environment_survives_config() {
    for env in support::ENVS {
        round_trip(env, &[]);
    }
}

#[test]
fn durations_print_as_written() {
    let env = support::load("staging");
    let yaml = cp_core::resolved::to_yaml(&env).unwrap();
    // As base.yaml writes them, not as 52w1d, 1w and 4w2d.
    for written in [
        "max_age: 365d",
        "max_age: 7d",
        "max_age: 30d",
        "token_ttl: 1h",
    ] {
        assert!(yaml.contains(written), "no `{written}` in:\n{yaml}");
    }
}

#[test]
fn switched_off_and_derived_settings_survive_config() {
    round_trip(
        "dev",
        &[
            "monitoring.enabled=false",
            "backup.enabled=false",
            "services.redis.enabled=false",
            // An app cannot use what the environment does not run.
            "apps.capsule-registry.uses.redis=null",
            "apps.capsule-registry.depends_on=[postgres, nats, vault]",
            "dashboards.boards.vault.enabled=false",
            "streams.SYSTEM_EVENTS.max_bytes=1Gi",
            "streams.SYSTEM_EVENTS.duplicate_window=90s",
            "alerts.custom=[{alert: QueueBacklog, expr: 'up == 0', for: 120s}]",
            "extras.jaeger.health={tcp: ui}",
            "extras.jaeger.health.http=null",
            "apps.capsule-registry.ingress.enabled=false",
            "apps.capsule-registry.autoscaling={memory_utilization: 80}",
            "services.postgres.superuser_password=vault://secret/pg#root",
        ],
    );
    round_trip(
        "staging",
        &[
            "monitoring.controlplane.enabled=false",
            "monitoring.notify.group_wait=1s",
            "monitoring.notify.repeat_interval=90m",
        ],
    );
    round_trip(
        "production",
        &[
            "services.vault.enabled=false",
            // Without Vault, the app's secrets come from the environment.
            "apps.capsule-registry.uses.vault=null",
            "apps.capsule-registry.uses.postgres.password=env://REGISTRY_PG_PASSWORD",
            "apps.capsule-registry.uses.nats.password=env://REGISTRY_NATS_PASSWORD",
            "apps.capsule-registry.uses.redis.password=env://REGISTRY_REDIS_PASSWORD",
            "apps.capsule-registry.secrets.SIGNING_PUBLIC_KEY=env://SIGNING_PUBLIC_KEY",
            "apps.capsule-registry.secrets.OIDC_CLIENT_SECRET=env://OIDC_CLIENT_SECRET",
            "apps.capsule-registry.secrets.SIGNING_PRIVATE_KEY=env://SIGNING_PRIVATE_KEY",
            "monitoring.grafana_admin_password=env://GRAFANA_ADMIN_PASSWORD",
            "monitoring.webhook_url=env://WEBHOOK_URL",
            "extras.rabbitmq.secrets.RABBITMQ_DEFAULT_PASS=env://RABBITMQ_DEFAULT_PASS",
            "backup.services=[postgres]",
            "apps.capsule-registry.depends_on=[postgres]",
            "extras.jaeger.health={command: [wget, -q, localhost:14269]}",
            "extras.jaeger.health.http=null",
            "backup.max_age=1d",
            "alerts.rules.backup_too_old.threshold=7200",
            "monitoring.nats_exporter.enabled=false",
        ],
    );
}
