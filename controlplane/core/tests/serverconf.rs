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

/// `dev` on the process platform with 3 NATS and 3 OpenBao nodes.
fn clustered() -> cp_core::Environment {
    let files = support::shipped();
    cp_core::load(
        &files,
        "dev",
        &[
            "platform=process".into(),
            "services.nats.replicas=3".into(),
            "services.vault.replicas=3".into(),
        ],
    )
    .unwrap_or_else(|d| panic!("{d}"))
    .env
}

#[test]
fn a_nats_cluster_node_routes_to_every_node_under_its_own_name() {
    use cp_core::serverconf::{NatsNodeConf, NodeName};
    let env = clustered();
    let n = env.services.nats.as_ref().unwrap();
    let nodes = cp_core::topology::nats_nodes(&env, n);
    assert_eq!(
        nodes
            .iter()
            .map(|n| (n.client, n.monitor, n.cluster))
            .collect::<Vec<_>>(),
        [(4222, 8222, 6222), (4223, 8223, 6223), (4224, 8224, 6224)]
    );
    let routes = serverconf::nats_local_routes(&env, n);
    let node = &nodes[1];
    let conf = serverconf::nats_node_conf(
        &env,
        n,
        &layout(),
        &NatsNodeConf {
            name: NodeName::Fixed(node.name.clone()),
            client: node.client,
            monitor: node.monitor,
            cluster: Some((node.cluster, routes)),
        },
    );
    for want in [
        "server_name: \"anumate-dev-nats-1\"",
        "listen: \"127.0.0.1:4223\"",
        "http: \"127.0.0.1:8223\"",
        "cluster {\n  name: \"anumate-dev-nats\"\n  listen: \"127.0.0.1:6223\"\n  routes: [\"nats://127.0.0.1:6222\", \"nats://127.0.0.1:6223\", \"nats://127.0.0.1:6224\"]\n}",
        "jetstream {",
    ] {
        assert!(conf.contains(want), "expected `{want}` in:\n{conf}");
    }
    // In a pod the name comes from the environment.
    let pod = serverconf::nats_node_conf(
        &env,
        n,
        &layout(),
        &NatsNodeConf {
            name: NodeName::FromEnv(serverconf::NATS_SERVER_NAME_VAR),
            client: 4222,
            monitor: 8222,
            cluster: Some((6222, vec!["nats://nats-0.nats:6222".into()])),
        },
    );
    assert!(pod.contains("server_name: $NATS_SERVER_NAME"), "{pod}");
}

#[test]
fn a_vault_cluster_node_joins_every_node_by_retry_join() {
    use cp_core::serverconf::{VaultIdentity, VaultNodeConf};
    let env = clustered();
    let v = env.services.vault.as_ref().unwrap();
    let nodes = cp_core::topology::vault_nodes(&env, v);
    assert_eq!(
        nodes.iter().map(|n| (n.api, n.cluster)).collect::<Vec<_>>(),
        [(8200, 8201), (8202, 8203), (8204, 8205)]
    );
    let node = &nodes[2];
    let hcl = serverconf::vault_node_hcl(
        &env,
        v,
        &layout(),
        &VaultNodeConf {
            identity: Some(VaultIdentity {
                node_id: node.name.clone(),
                api_addr: format!("http://127.0.0.1:{}", node.api),
                cluster_addr: format!("http://127.0.0.1:{}", node.cluster),
            }),
            api: node.api,
            cluster: node.cluster,
            join: serverconf::vault_local_join(&env, v),
        },
    )
    .unwrap();
    for want in [
        "api_addr = \"http://127.0.0.1:8204\"",
        "cluster_addr = \"http://127.0.0.1:8205\"",
        "address = \"127.0.0.1:8204\"",
        "node_id = \"anumate-dev-vault-2\"",
        "retry_join {\n    leader_api_addr = \"http://127.0.0.1:8200\"\n  }",
        "leader_api_addr = \"http://127.0.0.1:8202\"",
    ] {
        assert!(hcl.contains(want), "expected `{want}` in:\n{hcl}");
    }
}
