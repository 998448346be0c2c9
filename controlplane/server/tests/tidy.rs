//! The server is a thin front end: routes, handlers, auth, the console and OpenAPI.
//! It holds no job registry, schedule or state-file code (those are `cp_app::jobs`'),
//! never names `cp_backup` or the state directory, never drives application code with
//! `block_on`, and builds no JSON by hand outside the OpenAPI document; the CLI builds
//! none either. ARCHITECTURE.md's invariants point here.

use std::path::{Path, PathBuf};

fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(sources(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            out.push((p, text));
        }
    }
    out
}

fn offenders(dir: &str, needles: &[&str], except: &[&str]) -> Vec<String> {
    let root = cp_testkit::repo_root().join(dir);
    let mut found = Vec::new();
    for (path, text) in sources(&root) {
        if except.iter().any(|e| path.ends_with(e)) {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            for n in needles {
                if line.contains(n) && !line.trim_start().starts_with("//") {
                    found.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn the_server_holds_no_job_or_state_code() {
    let found = offenders(
        "controlplane/server/src",
        &[
            "cp_backup",
            "StateDir",
            "block_on",
            "spawn_blocking(move || h",
            "run_schedule(",
        ],
        &[],
    );
    assert!(
        found.is_empty(),
        "job, schedule or state-file code in the server (it belongs in cp_app::jobs):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn no_front_end_builds_json_by_hand() {
    let mut found = offenders("controlplane/server/src", &["json!"], &["openapi.rs"]);
    found.extend(offenders("controlplane/cli/src", &["json!"], &[]));
    assert!(
        found.is_empty(),
        "JSON built by hand in a front end (add a typed view to cp_app::views):\n  {}",
        found.join("\n  ")
    );
}

#[test]
fn errors_are_printed_by_the_one_chain_printer() {
    let mut found = offenders(
        "controlplane/server/src",
        &[".source()", "source = s.source"],
        &[],
    );
    found.extend(offenders("controlplane/cli/src", &[".source()"], &[]));
    found.extend(offenders("controlplane/app/src", &[".source()"], &[]));
    assert!(
        found.is_empty(),
        "an error-chain loop outside cp_runtime::error::chain:\n  {}",
        found.join("\n  ")
    );
}
