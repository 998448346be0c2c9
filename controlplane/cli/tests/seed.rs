//! `up` seeds, and `seed`, `migrate` and `tenant` end to end through the binary, as a
//! user runs them, against real servers on free loopback ports.

use std::process::Output;

mod common;
use common::{controlplane, text};

use serde_json::Value;

fn json(o: &Output) -> Value {
    assert!(o.status.success(), "{}", text(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("json: {e}\n{}", text(o)))
}

#[test]
fn up_seeds_then_seed_migrate_and_tenants_converge() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("dev");
    let mut sets = cp_testkit::port_sets();
    sets.push("platform=process".into());
    let _down = common::down(&state, &sets);
    let run = |args: &[&str]| controlplane(&state, &sets, args);

    // `up` brings everything up and seeds it.
    let o = run(&["up"]);
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("seed change(s) applied"), "{}", text(&o));
    assert!(err.contains("created role anumate_app"), "{}", text(&o));
    // Each notice and each change prints once: live as it happens, never again in
    // the closing summary (issue 21).
    assert_eq!(err.matches("created role anumate_app").count(), 1, "{err}");
    assert_eq!(err.matches(": platform: process").count(), 1, "{err}");
    let mut seen = std::collections::BTreeSet::new();
    for line in err.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(seen.insert(line), "`{line}` printed twice:\n{err}");
    }
    // A second `up` (what a second `cargo xtask up` runs) changes nothing and says
    // so briefly, each line once: the driver notice, the plan's one line, a
    // waiting and a ready line per service, the closing line.
    let o = run(&["up"]);
    assert!(o.status.success(), "{}", text(&o));
    let again = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = again
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    eprintln!("second up:\n{again}");
    assert!(
        lines.len() <= 3 + 2 * 4,
        "a second up printed {} lines:\n{again}",
        lines.len()
    );
    assert_eq!(again.matches(": platform: process").count(), 1, "{again}");
    assert!(!again.contains("created "), "{again}");
    let mut seen = std::collections::BTreeSet::new();
    for line in &lines {
        assert!(seen.insert(line), "`{line}` printed twice:\n{again}");
    }

    // A second seed changes nothing and says so.
    let o = run(&["seed"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("seed: nothing to change"),
        "{}",
        text(&o)
    );
    let v = json(&run(&["--output", "json", "seed"]));
    assert_eq!(v["changed"], false, "{v}");
    let services: Vec<&str> = v["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["service"].as_str().unwrap())
        .collect();
    assert_eq!(services, ["postgres", "nats", "redis", "vault", "tenants"]);

    // Migrations: all applied; down one, status shows it pending; up again.
    let st = json(&run(&["--output", "json", "migrate", "status"]));
    let all = st["migrations"].as_array().unwrap().len();
    assert!(all >= 5, "{st}");
    assert!(
        st["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "applied"),
        "{st}"
    );
    let o = run(&["migrate", "down", "--steps", "1"]);
    assert!(o.status.success(), "{}", text(&o));
    let st = json(&run(&["--output", "json", "migrate", "status"]));
    let pending = st["migrations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "pending")
        .count();
    assert_eq!(pending, 1, "{st}");
    let o = run(&["migrate", "up"]);
    assert!(o.status.success(), "{}", text(&o));
    let st = json(&run(&["--output", "json", "migrate", "status"]));
    assert!(
        st["migrations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["state"] == "applied"),
        "{st}"
    );

    // Tenants: create, create again (no change), list with every part, delete.
    let created = json(&run(&[
        "--output",
        "json",
        "tenant",
        "create",
        "acme",
        "--name",
        "Acme Corp",
    ]));
    assert_eq!(created["changed"], true, "{created}");
    let id = created["tenant"]["id"].as_str().unwrap().to_owned();
    let again = json(&run(&["--output", "json", "tenant", "create", "acme"]));
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["tenant"]["id"], id.as_str());
    let bad = run(&["tenant", "create", "Not A Slug"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("not a valid tenant slug"),
        "{}",
        text(&bad)
    );

    let list = json(&run(&["--output", "json", "tenant", "list"]));
    let t = &list["tenants"][0];
    assert_eq!(t["slug"], "acme", "{list}");
    assert_eq!(t["name"], "Acme Corp", "{list}");
    for part in ["key", "policy", "kv", "complete"] {
        assert_eq!(t[part], true, "{part}: {list}");
    }

    // A token scoped to a tenant is bound to its id; an unknown tenant is refused
    // (exit 3) and no token is made.
    let server = tmp.path().join("server");
    let sd = server.to_str().unwrap();
    let token = |name: &str, tenant: &str| {
        run(&[
            "--output",
            "json",
            "token",
            "create",
            "--role",
            "viewer",
            "--name",
            name,
            "--tenant",
            tenant,
            "--server-dir",
            sd,
        ])
    };
    let made = json(&token("acme-dash", "acme"));
    assert_eq!(made["tenant"], id.as_str(), "{made}");
    let unknown = token("globex-dash", "globex");
    assert_eq!(unknown.status.code(), Some(3), "{}", text(&unknown));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("no tenant `globex`"),
        "{}",
        text(&unknown)
    );
    let tokens = std::fs::read_to_string(server.join("tokens.json")).unwrap();
    assert!(!tokens.contains("globex-dash"), "{tokens}");

    // Without a terminal, deleting needs --yes (exit 3: usage), and says what goes.
    let refused = run(&["tenant", "delete", "acme"]);
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("its transit key"),
        "{}",
        text(&refused)
    );
    let o = common::controlplane_cmd(&state, &sets, &["tenant", "delete", &id, "--yes"])
        .env("CONTROLPLANE_SERVER_DIR", &server)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    // Its tokens went with it.
    let tokens = std::fs::read_to_string(server.join("tokens.json")).unwrap();
    assert!(!tokens.contains("acme-dash"), "{tokens}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("acme-dash"),
        "{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("destroyed transit key"),
        "{}",
        text(&o)
    );
    let list = json(&run(&["--output", "json", "tenant", "list"]));
    assert_eq!(list["tenants"], serde_json::json!([]), "{list}");
    let missing = run(&["tenant", "delete", "acme", "--yes"]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("no tenant `acme`"),
        "{}",
        text(&missing)
    );
}
