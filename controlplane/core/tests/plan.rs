//! The planner across layers, as tables: each case is what a layer wants and what
//! exists, and the plan text `controlplane plan` would print for it.

use cp_core::envplan::{Basis, EnvPlan, LayerPlan};
use cp_core::plan::{Layer, Observed, ObservedState, Resource, ResourceId, UpdateMode, plan};
use serde_json::{Value, json};

fn want(layer: Layer, kind: &str, name: &str, spec: Value, update: UpdateMode) -> Resource {
    Resource {
        id: ResourceId::new(layer, kind, name),
        service: None,
        spec,
        update,
    }
}

fn have(layer: Layer, kind: &str, name: &str, spec: Value, state: ObservedState) -> Observed {
    Observed {
        id: ResourceId::new(layer, kind, name),
        spec: Some(spec),
        state,
    }
}

/// One layer's plan text (as the whole-environment plan prints it).
fn check(layer: Layer, desired: &[Resource], observed: &[Observed], prune: bool, expected: &str) {
    let mut basis = Basis::default();
    basis.insert(layer, desired.to_vec(), Some(observed.to_vec()));
    let doc = EnvPlan::new(
        "dev",
        "process",
        "platform: process",
        vec![LayerPlan::observed(layer, plan(desired, observed, prune))],
        &basis,
    );
    let text = doc.to_string();
    let body: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(body.join("\n"), expected.trim(), "\n{text}");
}

const IN_PLACE: fn() -> UpdateMode = || UpdateMode::InPlace;

#[test]
fn platform_processes() {
    let spec = |v: &str| json!({"binary": "redis-server", "version": v});
    check(
        Layer::Platform,
        &[
            want(
                Layer::Platform,
                "process",
                "redis",
                spec("7.0"),
                UpdateMode::Replace,
            ),
            want(
                Layer::Platform,
                "process",
                "nats",
                spec("2.9"),
                UpdateMode::Replace,
            ),
            want(
                Layer::Platform,
                "process",
                "postgres",
                spec("15"),
                UpdateMode::Replace,
            ),
        ],
        &[
            have(
                Layer::Platform,
                "process",
                "redis",
                spec("6.2"),
                ObservedState::Running,
            ),
            have(
                Layer::Platform,
                "process",
                "nats",
                spec("2.9"),
                ObservedState::Stopped("exited 1".into()),
            ),
            have(
                Layer::Platform,
                "process",
                "old-exporter",
                json!({}),
                ObservedState::Running,
            ),
        ],
        true,
        r#"
platform:
    > process nats (start: exited 1)
    - process old-exporter
    + process postgres
  -/+ process redis (replace)
        /version: "6.2" -> "7.0"
Plan: 1 to create, 1 to change, 1 to remove, 1 to start; 0 unchanged.
"#,
    );
}

#[test]
fn database_roles_migrations_and_grants() {
    let role = |bypass: bool, pw: &str| json!({"login": true, "bypassrls": bypass, "password": pw, "member_of": []});
    let migration = |sum: &str, state: &str| json!({"checksum": sum, "state": state});
    let immutable = || UpdateMode::Immutable("an applied migration is never changed".into());
    check(
        Layer::Database,
        &[
            want(
                Layer::Database,
                "role",
                "anumate_app",
                role(false, "matches x"),
                IN_PLACE(),
            ),
            want(
                Layer::Database,
                "migration",
                "00000000000001 schemas",
                migration("aa", "applied"),
                immutable(),
            ),
            want(
                Layer::Database,
                "migration",
                "00000000000002 tenants",
                migration("bb", "applied"),
                immutable(),
            ),
            want(
                Layer::Database,
                "migration",
                "00000000000003 people",
                migration("cc", "applied"),
                immutable(),
            ),
        ],
        &[
            have(
                Layer::Database,
                "role",
                "anumate_app",
                role(true, "differs from x"),
                ObservedState::Present,
            ),
            have(
                Layer::Database,
                "migration",
                "00000000000001 schemas",
                migration("aa", "applied"),
                ObservedState::Present,
            ),
            have(
                Layer::Database,
                "migration",
                "00000000000002 tenants",
                migration("00", "applied"),
                ObservedState::Present,
            ),
        ],
        false,
        r#"
database:
    ! migration 00000000000002 tenants (blocked: an applied migration is never changed)
        /checksum: "00" -> "bb"
    + migration 00000000000003 people
    ~ role anumate_app
        /bypassrls: true -> false
        /password: "differs from x" -> "matches x"
Plan: 1 to create, 1 to change, 0 to remove, 0 to start, 1 blocked (`up` refuses this plan); 1 unchanged.
"#,
    );
    // Grants are pruned: a privilege the migrations never gave is removed.
    let privs = |p: &[&str]| json!({"privileges": p});
    check(
        Layer::Database,
        &[want(
            Layer::Database,
            "grant",
            "anumate_app on table audit.events",
            privs(&["INSERT", "SELECT"]),
            IN_PLACE(),
        )],
        &[
            have(
                Layer::Database,
                "grant",
                "anumate_app on table audit.events",
                privs(&["DELETE", "INSERT", "SELECT"]),
                ObservedState::Present,
            ),
            have(
                Layer::Database,
                "grant",
                "PUBLIC on schema anumate",
                privs(&["USAGE"]),
                ObservedState::Present,
            ),
        ],
        true,
        r#"
database:
    - grant PUBLIC on schema anumate
    ~ grant anumate_app on table audit.events
        /privileges: ["DELETE","INSERT","SELECT"] -> ["INSERT","SELECT"]
Plan: 0 to create, 1 to change, 1 to remove, 0 to start; 0 unchanged.
"#,
    );
}

#[test]
fn streams_change_in_place_except_storage() {
    let stream = |age: u64, storage: &str| json!({"max_age_secs": age, "storage": storage});
    let except = || UpdateMode::InPlaceExcept(vec!["/storage".into()]);
    check(
        Layer::Streams,
        &[
            want(
                Layer::Streams,
                "stream",
                "CAPSULE_EVENTS",
                stream(1_209_600, "file"),
                except(),
            ),
            want(
                Layer::Streams,
                "stream",
                "AUDIT_EVENTS",
                stream(86_400, "memory"),
                except(),
            ),
            want(
                Layer::Streams,
                "stream",
                "PLAN_EVENTS",
                stream(86_400, "file"),
                except(),
            ),
        ],
        &[
            have(
                Layer::Streams,
                "stream",
                "CAPSULE_EVENTS",
                stream(604_800, "file"),
                ObservedState::Present,
            ),
            have(
                Layer::Streams,
                "stream",
                "AUDIT_EVENTS",
                stream(86_400, "file"),
                ObservedState::Present,
            ),
            have(
                Layer::Streams,
                "stream",
                "PLAN_EVENTS",
                stream(86_400, "file"),
                ObservedState::Present,
            ),
            have(
                Layer::Streams,
                "stream",
                "SOMEONE_ELSES",
                stream(1, "file"),
                ObservedState::Present,
            ),
        ],
        false,
        r#"
streams:
    ! stream AUDIT_EVENTS (blocked: /storage cannot change once created; remove stream AUDIT_EVENTS and run up again, or keep the old value)
        /storage: "file" -> "memory"
    ~ stream CAPSULE_EVENTS
        /max_age_secs: 604800 -> 1209600
Plan: 0 to create, 1 to change, 0 to remove, 0 to start, 1 blocked (`up` refuses this plan); 1 unchanged.
"#,
    );
}

#[test]
fn cache_vault_and_tenants() {
    let acl = |keys: &[&str]| json!({"enabled": true, "keys": keys, "password": "matches p"});
    check(
        Layer::Cache,
        &[want(
            Layer::Cache,
            "acl-user",
            "anumate_app",
            acl(&["~t:*"]),
            IN_PLACE(),
        )],
        &[have(
            Layer::Cache,
            "acl-user",
            "anumate_app",
            acl(&["~*"]),
            ObservedState::Present,
        )],
        false,
        r#"
cache:
    ~ acl-user anumate_app
        /keys/0: "~*" -> "~t:*"
Plan: 0 to create, 1 to change, 0 to remove, 0 to start; 0 unchanged.
"#,
    );
    check(
        Layer::Vault,
        &[
            want(
                Layer::Vault,
                "policy",
                "anumate-app",
                json!({"policy": "path \"x\" {}"}),
                IN_PLACE(),
            ),
            want(
                Layer::Vault,
                "mount",
                "transit",
                json!({"type": "transit"}),
                UpdateMode::InPlaceExcept(vec!["/type".into()]),
            ),
        ],
        &[have(
            Layer::Vault,
            "mount",
            "transit",
            json!({"type": "transit"}),
            ObservedState::Present,
        )],
        false,
        r#"
vault:
    + policy anumate-app
Plan: 1 to create, 0 to change, 0 to remove, 0 to start; 1 unchanged.
"#,
    );
    check(
        Layer::Tenants,
        &[want(
            Layer::Tenants,
            "transit-key",
            "tenant-1",
            json!({"exportable": false}),
            IN_PLACE(),
        )],
        &[],
        false,
        r#"
tenants:
    + transit-key tenant-1
Plan: 1 to create, 0 to change, 0 to remove, 0 to start; 0 unchanged.
"#,
    );
}

#[test]
fn nothing_to_do_says_so() {
    let r = want(
        Layer::Vault,
        "policy",
        "p",
        json!({"policy": "x"}),
        IN_PLACE(),
    );
    let o = have(
        Layer::Vault,
        "policy",
        "p",
        json!({"policy": "x"}),
        ObservedState::Present,
    );
    check(
        Layer::Vault,
        &[r],
        &[o],
        false,
        "vault: up to date (1 resources)\nNo changes: 1 resources are up to date.",
    );
}
