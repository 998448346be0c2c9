//! The testkit invariant of ARCHITECTURE.md, checked over every test file of the
//! workspace (`controlplane/*/tests/**/*.rs`, and xtask's sources, whose benchmarks start servers): helpers more than one test needs come
//! from testkit (no cleanup guard, repository root or port allocator of a file's
//! own), goldens answer to one switch (`CP_BLESS`), nothing skips silently, and no
//! child-process body is registered as a test that passes doing nothing.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every test file: `controlplane/<crate>/tests/**/*.rs`, this one aside (it names
/// what it forbids).
fn test_files() -> Vec<PathBuf> {
    let root = cp_testkit::repo_root();
    let mut out = Vec::new();
    for krate in std::fs::read_dir(root.join("controlplane"))
        .unwrap()
        .flatten()
    {
        rust_files(&krate.path().join("tests"), &mut out);
    }
    // xtask's benchmarks start servers too.
    rust_files(&root.join("xtask/src"), &mut out);
    out.retain(|p| !p.ends_with("testkit/tests/tidy.rs"));
    assert!(out.len() > 30, "suspiciously few test files: {out:?}");
    out
}

/// What a file must not contain, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("struct Down", "use cp_testkit::Down"),
    ("fn repo_root", "use cp_testkit::repo_root"),
    ("fn repo()", "use cp_testkit::repo_root"),
    (
        "env!(\"CARGO_MANIFEST_DIR\")).join(\"../",
        "use cp_testkit::repo_root",
    ),
    ("fn free_ports", "use cp_testkit::free_ports"),
    (
        "std::net::TcpListener::bind(\"127.0.0.1:0\")",
        "use cp_testkit::free_ports (below the ephemeral range), or keep the listener",
    ),
    (
        "\"CP_UPDATE_",
        "goldens answer to CP_BLESS (cp_testkit::golden)",
    ),
    (
        "\"UPDATE_SCHEMA\"",
        "goldens answer to CP_BLESS (cp_testkit::golden)",
    ),
    (
        "\"INSTA_UPDATE\"",
        "goldens answer to CP_BLESS (cp_testkit::golden)",
    ),
    (
        "skipping",
        "a missing tool fails the test (cp_testkit::require_tool)",
    ),
];

#[test]
fn test_files_use_testkit_and_never_skip() {
    let root = cp_testkit::repo_root();
    let mut found = Vec::new();
    for path in test_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let rel = path.strip_prefix(&root).unwrap().display().to_string();
        for (needle, why) in FORBIDDEN {
            if let Some(at) = text.find(needle) {
                let line = text[..at].lines().count().max(1);
                found.push(format!("{rel}:{line}: `{}`: {why}", needle.trim()));
            }
        }
    }
    assert!(found.is_empty(), "\n{}", found.join("\n"));
}

/// A test whose body returns at once when a variable is (un)set is the body of a
/// child process: run as a test of its own, it passes having asserted nothing.
#[test]
fn no_child_body_is_a_test_of_its_own() {
    let root = cp_testkit::repo_root();
    let mut found = Vec::new();
    for path in test_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let rel = path.strip_prefix(&root).unwrap().display().to_string();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, w) in lines.windows(3).enumerate() {
            let reads_var = w[0].contains("std::env::var(") || w[0].contains("std::env::var_os(");
            let returns = w[1] == "return;" || (w[1].ends_with("else {") && w[2] == "return;");
            let early = w[0].starts_with("if ") || w[0].starts_with("let ");
            if reads_var && early && returns {
                found.push(format!("{rel}:{}: {}", i + 1, w[0]));
            }
        }
    }
    assert!(
        found.is_empty(),
        "a test returns early on a variable; start the child with \
         cp_testkit::rerun_as_child and branch on cp_testkit::is_child():\n{}",
        found.join("\n")
    );
}

/// Test files of the CLI that bring an environment up without starting anything
/// (and why they need no guard).
const UP_WITHOUT_SERVICES: &[(&str, &str)] = &[
    (
        "adversarial_inputs.rs",
        "every `up` there is invalid input, refused before anything starts",
    ),
    (
        "kubernetes.rs",
        "its `up` talks to a fake API server, starting no local process",
    ),
];

/// A CLI test that runs `up` holds a `Down` guard (`common::down` or
/// `cp_testkit::Down`), so a failing assertion still stops every server it started.
#[test]
fn every_test_that_brings_servers_up_stops_them_however_it_ends() {
    let root = cp_testkit::repo_root();
    let mut found = Vec::new();
    for path in test_files() {
        let rel = path.strip_prefix(&root).unwrap().display().to_string();
        if !rel.starts_with("controlplane/cli/tests/") || rel.contains("/common/") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if UP_WITHOUT_SERVICES.iter().any(|(f, _)| *f == name) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let runs_up = text.contains("\"up\"");
        let guarded = text.contains("down(&") || text.contains("Down::");
        if runs_up && !guarded {
            found.push(rel);
        }
    }
    assert!(
        found.is_empty(),
        "these tests run `up` with no Down guard (common::down or cp_testkit::Down): \
         a failure would leave servers running:\n{}",
        found.join("\n")
    );
}
