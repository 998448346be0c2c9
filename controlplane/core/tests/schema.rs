//! The JSON Schema of environment files: committed, fresh, and referenced by the
//! shipped files so editors autocomplete them.

mod support;

#[test]
fn committed_schema_is_fresh() {
    // `CP_BLESS=1` (or `cargo xtask codegen`) rewrites it.
    cp_testkit::golden(
        "environments/schema.json",
        &cp_core::schema::environment_schema_text(),
    );
}

#[test]
fn shipped_files_point_editors_at_the_schema() {
    for stem in ["base", "dev", "staging", "production"] {
        let text =
            std::fs::read_to_string(support::environments_dir().join(format!("{stem}.yaml")))
                .unwrap();
        assert!(
            text.starts_with("# yaml-language-server: $schema=schema.json"),
            "{stem}.yaml does not start with the schema modeline"
        );
    }
}

#[test]
fn role_names_are_not_settings() {
    // The migrations grant to fixed names: a setting would be validated, then ignored.
    let files = support::shipped();
    let d = cp_core::load(
        &files,
        "dev",
        &["services.postgres.app_role=someone".into()],
    )
    .expect_err("app_role is not a setting");
    assert!(d.to_string().contains("unknown key"), "{d}");
}

#[test]
fn every_shipped_environment_validates_and_matches_the_seed_facts() {
    let dev = support::load("dev");
    let pg = dev.services.postgres.as_ref().unwrap();
    assert_eq!(
        (
            pg.common.port,
            pg.database.as_str(),
            cp_core::roles::ADMIN,
            cp_core::roles::APP
        ),
        (5432, "anumate", "anumate_admin", "anumate_app")
    );
    assert_eq!(dev.services.redis.as_ref().unwrap().common.port, 6379);
    let nats = dev.services.nats.as_ref().unwrap();
    assert_eq!(
        (nats.common.port, nats.monitor_port, nats.app_user.as_str()),
        (4222, 8222, "anumate_app")
    );
    assert_eq!(dev.services.vault.as_ref().unwrap().common.port, 8200);
    let streams: Vec<&str> = dev.streams.keys().map(|s| s.as_str()).collect();
    for s in [
        "CAPSULE_EVENTS",
        "PLAN_EVENTS",
        "EXECUTION_EVENTS",
        "APPROVAL_EVENTS",
        "AUDIT_EVENTS",
        "SYSTEM_EVENTS",
        "WEBHOOK_DELIVERY",
    ] {
        assert!(streams.contains(&s), "missing stream {s}");
    }
    let prod = support::load("production");
    let audit = &prod
        .streams
        .iter()
        .find(|(k, _)| k.as_str() == "AUDIT_EVENTS")
        .unwrap()
        .1;
    assert!(
        audit.max_age.as_secs() >= 365 * 86_400,
        "AUDIT_EVENTS keeps a year in production"
    );
    let _ = support::load("staging");
}
