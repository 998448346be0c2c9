//! schemathesis (PyPI) against the live server's `/openapi.json`: with an admin token,
//! no 5xx and no response that breaks its schema or status list; with no token, every
//! protected operation answers 401. Bounded in time (`--max-time`).

// Tests run the binaries they judge (ours, chromedriver, schemathesis) by path on purpose.
#![allow(clippy::disallowed_methods)]

mod common;
mod serve;

use std::process::Command;

fn st(args: &[&str]) -> std::process::Output {
    Command::new("st")
        .args(args)
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .env("NO_COLOR", "1")
        // Its cache of examples stays out of the source tree.
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .expect(
            "schemathesis is installed (`pip install schemathesis`; `cargo xtask test` does it)",
        )
}

fn out(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\n{}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let s = serve::served();
    let schema = s.url("/openapi.json");
    let auth = format!("Authorization: Bearer {}", s.admin);
    let report = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("schemathesis");
    let o = st(&[
        "run",
        &schema,
        "--header",
        &auth,
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "30",
        "--max-time",
        "60",
        // One worker: hypothesis' lambda descriptions race in CPython 3.11's parser
        // ("AST constructor recursion depth mismatch") with more.
        "--workers",
        "1",
        "--seed",
        "7",
        "--no-color",
        "--report",
        "junit",
        "--report-dir",
        report.to_str().unwrap(),
    ]);
    assert!(
        o.status.success(),
        "schemathesis with an admin token:\n{}",
        out(&o)
    );
    // Every operation was exercised.
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!text.contains("No operations"), "{text}");

    // Without credentials: every protected operation answers 401 (a check of ours,
    // loaded as a schemathesis hook), and nothing answers 5xx.
    let doc: serde_json::Value = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async { reqwest::get(&schema).await.unwrap().json().await.unwrap() });
    let mut protected = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if op["x-required-role"].is_string() {
                protected.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    assert!(protected.len() >= 10, "{protected:?}");
    let hooks = tempfile::tempdir().unwrap();
    std::fs::write(hooks.path().join("cp_hooks.py"), HOOKS).unwrap();
    let o = Command::new("st")
        .args([
            "run",
            &schema,
            "--checks",
            "not_a_server_error,protected_needs_a_token",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "10",
            "--max-time",
            "30",
            // No made-up credentials: a wrong token is a failed authentication, and
            // enough of those rate-limit the address (429), which is right but not
            // what this run checks.
            "--generation-with-security-parameters",
            "false",
            "--workers",
            "1",
            "--seed",
            "7",
            "--no-color",
        ])
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .env("SCHEMATHESIS_HOOKS", "cp_hooks")
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .env("PYTHONPATH", hooks.path())
        .env("CP_PROTECTED", protected.join("\n"))
        .env("CP_CHECKED", hooks.path().join("checked"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "schemathesis without a token:\n{}",
        out(&o)
    );
    // The check ran on every protected operation (it notes each one it judged).
    let checked = std::fs::read_to_string(hooks.path().join("checked")).unwrap_or_default();
    for op in &protected {
        assert!(
            checked.lines().any(|l| l == op),
            "the check never judged {op}:\n{}",
            out(&o)
        );
    }
}

/// A schemathesis check: an operation the document marks protected answers 401 when
/// called without credentials.
const HOOKS: &str = r#"
import os
import schemathesis

PROTECTED = set(os.environ["CP_PROTECTED"].splitlines())
CHECKED = os.environ["CP_CHECKED"]


@schemathesis.check
def protected_needs_a_token(ctx, response, case):
    key = f"{case.method.upper()} {case.operation.path}"
    if key not in PROTECTED:
        return
    with open(CHECKED, "a") as f:
        f.write(key + "\n")
    if response.status_code != 401:
        raise AssertionError(f"{key} answered {response.status_code} without a token, not 401")
"#;
