//! Server configuration files generated from the shipped environments.

mod support;

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

#[test]
fn nats_app_user_is_limited_to_stream_subjects_and_no_password_is_written() {
    let env = support::load("dev");
    let conf = serverconf::nats_conf(&env, env.services.nats.as_ref().unwrap(), &layout());
    assert!(conf.contains("password: $NATS_APP_PASSWORD"), "{conf}");
    assert!(conf.contains("\"events.capsule.>\""), "{conf}");
    assert!(
        !conf.contains("$JS.API.STREAM.CREATE"),
        "the app must not create streams:\n{conf}"
    );
    assert!(conf.contains("listen: \"127.0.0.1:4222\""));
}

#[test]
fn vault_raft_config_tunes_leader_election_and_dev_mode_has_none() {
    let env = support::load("dev");
    let v = env.services.vault.as_ref().unwrap();
    let hcl = serverconf::vault_hcl(&env, v, &layout()).unwrap();
    assert!(hcl.contains("storage \"raft\""));
    assert!(hcl.contains("performance_multiplier = 1"));
    let mut dev = v.clone();
    dev.mode = cp_core::model::VaultMode::Dev;
    assert!(serverconf::vault_hcl(&env, &dev, &layout()).is_none());
}

#[test]
fn postgres_and_redis_configs_follow_the_model() {
    let env = support::load("production");
    let pg = env.services.postgres.as_ref().unwrap();
    let conf = serverconf::postgresql_conf(&env, pg, &layout());
    assert!(conf.contains("max_connections = '400'"), "{conf}");
    let hba = serverconf::pg_hba_conf(&env, &layout());
    assert!(!hba.contains("trust"), "{hba}");
    let redis = serverconf::redis_conf(&env, env.services.redis.as_ref().unwrap(), &layout());
    assert!(
        redis.contains("maxmemory 1gb") && redis.contains("aclfile /state/run/users.acl"),
        "{redis}"
    );
}

#[test]
fn seed_specs_cover_streams_vault_and_redis() {
    use cp_core::plan::{Layer, UpdateMode};
    use cp_core::seedspec;
    let env = support::load("production");
    let streams = seedspec::streams(&env);
    assert_eq!(streams.len(), 7);
    let audit = streams
        .iter()
        .find(|r| r.id.name == "AUDIT_EVENTS")
        .unwrap();
    assert_eq!(audit.spec["max_age_secs"], 365 * 86_400);
    assert_eq!(audit.spec["discard"], "new");
    assert!(
        matches!(&audit.update, UpdateMode::InPlaceExcept(f) if f.contains(&"/storage".to_owned()))
    );
    let vault = seedspec::vault(&env);
    let kinds: Vec<&str> = vault.iter().map(|r| r.id.kind.as_str()).collect();
    assert_eq!(
        kinds.first(),
        Some(&"audit"),
        "the audit device comes first"
    );
    for key in ["anumate-config", "anumate-audit", "anumate-tokens"] {
        let k = vault
            .iter()
            .find(|r| r.id.kind == "transit-key" && r.id.name == key)
            .unwrap();
        assert_eq!(k.spec["exportable"], false);
        assert_eq!(k.spec["allow_plaintext_backup"], false);
    }
    let app = vault
        .iter()
        .find(|r| r.id.kind == "policy" && r.id.name == "anumate-app")
        .unwrap();
    let hcl = app.spec["policy"].as_str().unwrap();
    assert!(hcl.contains("path \"transit/encrypt/anumate-*\""), "{hcl}");
    assert!(
        !hcl.contains("tenants"),
        "the app policy must not reach tenant secrets:\n{hcl}"
    );
    let role = vault.iter().find(|r| r.id.kind == "approle").unwrap();
    assert_eq!(
        (
            role.spec["token_ttl"].as_u64(),
            role.spec["token_max_ttl"].as_u64()
        ),
        (Some(3600), Some(14_400))
    );
    let redis = seedspec::redis(&env);
    assert_eq!(redis[0].id.layer, Layer::Cache);
    assert_eq!(redis[0].id.name, "anumate_app");
    let tenant = seedspec::tenant_policy_hcl(&env, "11111111-1111-4111-8111-111111111111");
    assert!(
        tenant.contains("path \"transit/encrypt/tenant-11111111-1111-4111-8111-111111111111\""),
        "{tenant}"
    );
    assert!(
        !tenant.contains("tenant-*") && !tenant.contains("tenants/*"),
        "{tenant}"
    );
}

#[test]
fn nats_password_variables_carry_a_quoted_string() {
    use cp_core::serverconf::{NATS_ADMIN_PASSWORD_VAR, secret_env_value};
    // Unquoted, nats-server reads `2abc` as a number and refuses to start (seen in CI
    // with a generated password).
    assert_eq!(
        secret_env_value(NATS_ADMIN_PASSWORD_VAR, "2abc"),
        "\"2abc\""
    );
    assert_eq!(
        secret_env_value(NATS_ADMIN_PASSWORD_VAR, "a\"b\\c"),
        "\"a\\\"b\\\\c\""
    );
    assert_eq!(secret_env_value("PGPASSWORD", "2abc"), "2abc");
}
