//! Seed 000's commands (its Development, Database, Vault, NATS and Troubleshooting
//! sections) against a dev environment this test brings up on the process platform:
//! the SQL as written through `controlplane psql` (psql as `anumate_admin` and as the
//! app role), Vault with the `bao` CLI from `controlplane vault-env`, `curl` on the
//! health endpoints, and NATS through `controlplane nats pub|sub|stream ls` (the
//! operator's identity: the app user may not do what the seed's examples do). The
//! table in README "Seed 000's commands here" maps each one; this test runs that table.

mod common;
use common::{controlplane, controlplane_cmd, text};

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn ok(o: &std::process::Output, what: &str) -> String {
    assert!(o.status.success(), "{what}:\n{}", text(o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn psql(state: &Path, sets: &[String], role: &str, sql: &str) -> String {
    let o = controlplane(
        state,
        sets,
        &[
            "psql",
            "--role",
            role,
            "--",
            "-X",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ],
    );
    ok(&o, &format!("psql --role {role} -c {sql}"))
}

fn set_port(sets: &[String], key: &str) -> u16 {
    sets.iter()
        .find_map(|s| s.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} in {sets:?}"))
        .parse()
        .unwrap()
}

// Tests run the CLIs they judge (bao, curl) by path on purpose.
#[allow(clippy::disallowed_methods)]
fn tool(name: &str) -> Command {
    Command::new(cp_testkit::require_tool(name))
}

#[test]
fn seed_000_commands_run_here() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    // The postgres user must be able to enter the state directory when run as root.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("dev");
    let mut sets = cp_testkit::port_sets();
    sets.extend([
        "platform=process".to_owned(),
        "apps.capsule-registry.enabled=false".to_owned(),
        format!(
            "backup.destinations.local.path={}",
            tmp.path().join("backups").display()
        ),
    ]);
    let _down = common::down(&state, &sets);

    // Development: "Start Services" / "Reset Everything".
    ok(&controlplane(&state, &sets, &["up"]), "up");
    // "Verify services are running" / troubleshooting "Check if PostgreSQL is running".
    let st = ok(&controlplane(&state, &sets, &["status"]), "status");
    assert!(st.contains("postgres"), "{st}");
    // "View Logs" / "Check logs".
    for service in ["postgres", "nats", "vault", "redis"] {
        ok(
            &controlplane(&state, &sets, &["logs", service, "--tail", "5"]),
            &format!("logs {service}"),
        );
    }

    // Database Operations: psql as anumate_admin on anumate, the RLS examples verbatim.
    let tenant = "123e4567-e89b-12d3-a456-426614174000";
    for role in ["admin", "app"] {
        let out = psql(
            &state,
            &sets,
            role,
            &format!(
                "SET app.current_tenant_id = '{tenant}'; SELECT * FROM users; -- Only returns users for current tenant"
            ),
        );
        assert!(
            out.contains("email") && out.contains("(0 rows)"),
            "{role}: {out}"
        );
        let out = psql(
            &state,
            &sets,
            role,
            "SELECT current_setting('app.current_tenant_id', true);",
        );
        assert!(out.contains("current_setting"), "{role}: {out}");
    }
    let out = psql(
        &state,
        &sets,
        "admin",
        "SELECT * FROM pg_policies WHERE tablename = 'users';",
    );
    assert!(out.contains("tenant"), "the policies on users: {out}");

    // Redis: "redis://localhost:6379".
    let out = ok(
        &controlplane(&state, &sets, &["redis-cli", "--", "PING"]),
        "redis-cli PING",
    );
    assert!(out.contains("PONG"), "{out}");

    // Vault Operations, with the bao CLI and the environment `vault-env` prints.
    let exports = ok(&controlplane(&state, &sets, &["vault-env"]), "vault-env");
    let vars: Vec<(String, String)> = exports
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert!(vars.iter().any(|(k, _)| k == "VAULT_TOKEN"), "{exports}");
    let bao = |args: &[&str]| {
        let o = tool("bao")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", tmp.path())
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        ok(&o, &format!("bao {args:?}"))
    };
    let out = bao(&["status"]);
    assert!(out.contains("Sealed") && out.contains("false"), "{out}");
    bao(&["write", "-f", &format!("transit/keys/tenant-{tenant}")]);
    bao(&[
        "kv",
        "put",
        &format!("secret/tenants/{tenant}/config"),
        "key=value",
    ]);
    let out = bao(&[
        "kv",
        "get",
        "-field=key",
        &format!("secret/tenants/{tenant}/config"),
    ]);
    assert_eq!(out.trim(), "value");
    // "Vault sealed": the health endpoint with curl.
    let vault_port = set_port(&sets, "services.vault.port");
    let o = tool("curl")
        .args([
            "-s",
            &format!("http://127.0.0.1:{vault_port}/v1/sys/health"),
        ])
        .output()
        .unwrap();
    let health: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("sys/health: {e}\n{}", text(&o)));
    assert_eq!(health["sealed"], false, "{health}");

    // NATS Operations, as the operator (the admin identity).
    let out = ok(
        &controlplane(&state, &sets, &["nats", "stream", "ls"]),
        "nats stream ls",
    );
    for s in ["CAPSULE_EVENTS", "AUDIT_EVENTS", "WEBHOOK_DELIVERY"] {
        assert!(out.contains(s), "{out}");
    }
    let mut child = controlplane_cmd(
        &state,
        &sets,
        &[
            "-o",
            "json",
            "nats",
            "sub",
            "events.*",
            "--count",
            "1",
            "--timeout",
            "60s",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut sub = cp_testkit::Down::process(child);
    // Published only once the subscription is registered (it says so on stderr).
    let mut line = String::new();
    BufReader::new(stderr).read_line(&mut line).unwrap();
    assert!(line.contains("listening on events.*"), "{line}");
    let out = ok(
        &controlplane(
            &state,
            &sets,
            &["nats", "pub", "events.test", r#"{"message": "hello"}"#],
        ),
        "nats pub",
    );
    assert!(out.contains("events.test"), "{out}");
    let status = sub.wait(std::time::Duration::from_secs(60));
    assert!(status.is_some_and(|s| s.success()), "nats sub: {status:?}");
    let mut got = String::new();
    std::io::Read::read_to_string(&mut BufReader::new(stdout), &mut got).unwrap();
    let m: Value = serde_json::from_str(&got).unwrap_or_else(|e| panic!("{e}: {got}"));
    assert_eq!(m["subject"], "events.test");
    assert_eq!(m["data"], r#"{"message": "hello"}"#);
    // A subject a stream captures is stored and acknowledged.
    let o = controlplane(
        &state,
        &sets,
        &[
            "-o",
            "json",
            "nats",
            "pub",
            "events.capsule.created",
            r#"{"specversion": "1.0"}"#,
        ],
    );
    let v: Value = serde_json::from_str(&ok(&o, "nats pub to a stream")).unwrap();
    assert_eq!(v["stream"], "CAPSULE_EVENTS", "{v}");
    let o = controlplane(
        &state,
        &sets,
        &["-o", "json", "nats", "stream", "info", "CAPSULE_EVENTS"],
    );
    let v: Value = serde_json::from_str(&ok(&o, "nats stream info")).unwrap();
    assert_eq!(v["stream"]["messages"], 1, "{v}");
    // "NATS connection issues": health with curl; `nats rtt` is `controlplane nats`.
    let monitor = set_port(&sets, "services.nats.monitor_port");
    let o = tool("curl")
        .args(["-sf", &format!("http://127.0.0.1:{monitor}/healthz")])
        .output()
        .unwrap();
    assert!(ok(&o, "curl healthz").contains("ok"), "{}", text(&o));
    let out = ok(&controlplane(&state, &sets, &["nats"]), "nats");
    assert!(out.contains("JetStream on"), "{out}");

    // "Stop Services": down keeps the data.
    ok(&controlplane(&state, &sets, &["down"]), "down");
}
