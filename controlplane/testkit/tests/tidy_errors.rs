//! Tidy: errors carry types. Fails listing every place under `controlplane/*/src` that
//! still returns `Result<_, String>`, builds a `SeedError::new(..)` or a
//! `DriverError::other(..)`, or prints an error chain with its own loop over
//! `.source()` instead of calling `cp_runtime::error::chain`.
//!
//! Test code under `src/` is scanned too: a `#[cfg(test)]` module there follows the
//! same rule. Integration tests (`tests/` folders) are not scanned.

use std::path::{Path, PathBuf};

/// What may still be found, and why: `(path from the repository root, check)`.
const ALLOWED: &[(&str, Check)] = &[
    // cp-core does no I/O and depends on nothing of ours, so it cannot call
    // cp_runtime::error::chain; the Tera report is joined into RenderError's message
    // until the CLI's `render` prints the chain and RenderError can hold the Tera
    // error as its source.
    ("controlplane/core/src/render/mod.rs", Check::SourceLoop),
];

/// The one function allowed to loop over `.source()`.
const CHAIN: &str = "controlplane/runtime/src/error.rs";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    StringResult,
    SeedErrorNew,
    DriverErrorOther,
    SourceLoop,
}

impl Check {
    fn says(self) -> &'static str {
        match self {
            Check::StringResult => {
                "returns Result<_, String>: make the error a thiserror enum with context and #[source]"
            }
            Check::SeedErrorNew => {
                "builds SeedError::new(..): use a SeedErrorKind variant with its context"
            }
            Check::DriverErrorOther => {
                "builds DriverError::other(..): use a typed DriverError variant with its context"
            }
            Check::SourceLoop => {
                "loops over .source() to print a chain: call cp_runtime::error::chain"
            }
        }
    }
}

/// Every `.rs` file under `dir`, leaving out `tests` folders.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "tests") {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Line numbers (1-based) where a `Result<..>` (or `Ok::<..>`, `Err::<..>`) ends with
/// `String` as its error type.
/// Brackets are matched, so `Result<Option<T>, String>` and signatures spread over
/// lines are found too.
fn string_results(text: &str) -> Vec<usize> {
    let mut out: Vec<usize> = ["Result<", "Ok::<", "Err::<"]
        .iter()
        .flat_map(|open| string_errors(text, open))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Where `open` (`Result<`, `Ok::<`) starts a type list whose last type is `String`.
fn string_errors(text: &str, open: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(open) {
        let start = from + i;
        from = start + open.len();
        // `Result<` as a whole word (not `TeraResult<`, which fixes its error type).
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue;
        }
        let mut depth = 1;
        let mut args = vec![String::new()];
        let mut j = from;
        while j < bytes.len() && depth > 0 {
            let c = bytes[j] as char;
            match c {
                '<' | '(' | '[' => depth += 1,
                '>' | ')' | ']' => depth -= 1,
                _ => {}
            }
            if depth == 1 && c == ',' {
                args.push(String::new());
            } else if depth >= 1 {
                args.last_mut().expect("one at least").push(c);
            }
            j += 1;
        }
        // A trailing comma leaves an empty last argument.
        let error = args.iter().rev().map(|a| a.trim()).find(|a| !a.is_empty());
        if depth == 0 && args.len() >= 2 && error == Some("String") {
            out.push(text[..start].matches('\n').count() + 1);
        }
    }
    out
}

/// Line numbers of `while let`/`loop` blocks whose body calls `.source()`.
fn source_loops(text: &str) -> Vec<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if !(t.starts_with("while let ") || t.starts_with("loop {") || t.contains("= loop {")) {
            continue;
        }
        // The block: until the braces opened on this line close.
        let mut depth = 0i32;
        let mut found = false;
        for l in &lines[n..] {
            if l.contains(".source()") || l.contains("Error::source(") {
                found = true;
            }
            depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
            if depth <= 0 {
                break;
            }
        }
        if found {
            out.push(n + 1);
        }
    }
    out
}

fn findings(root: &Path) -> Vec<(String, usize, Check)> {
    let mut files = Vec::new();
    let Ok(crates) = std::fs::read_dir(root.join("controlplane")) else {
        panic!("no controlplane/ under {}", root.display());
    };
    for c in crates.flatten() {
        rust_files(&c.path().join("src"), &mut files);
    }
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let rel = f
            .strip_prefix(root)
            .expect("under the root")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&f).expect("readable");
        let at = |needle: &str| -> Vec<usize> {
            text.lines()
                .enumerate()
                .filter(|(_, l)| l.contains(needle))
                .map(|(n, _)| n + 1)
                .collect()
        };
        for n in string_results(&text) {
            out.push((rel.clone(), n, Check::StringResult));
        }
        for n in at("SeedError::new(") {
            out.push((rel.clone(), n, Check::SeedErrorNew));
        }
        for n in at("DriverError::other(") {
            out.push((rel.clone(), n, Check::DriverErrorOther));
        }
        if rel != CHAIN {
            for n in source_loops(&text) {
                out.push((rel.clone(), n, Check::SourceLoop));
            }
        }
    }
    out
}

#[test]
fn errors_carry_types() {
    let root = cp_testkit::repo_root();
    let bad: Vec<String> = findings(&root)
        .into_iter()
        .filter(|(path, _, check)| !ALLOWED.contains(&(path.as_str(), *check)))
        .map(|(path, line, check)| format!("  {path}:{line}: {}", check.says()))
        .collect();
    assert!(
        bad.is_empty(),
        "errors without types (see docs STYLE.md, \"Errors and logs\"):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_allow_list_has_no_stale_entries() {
    let root = cp_testkit::repo_root();
    let found = findings(&root);
    let stale: Vec<String> = ALLOWED
        .iter()
        .filter(|(path, check)| !found.iter().any(|(p, _, c)| p == path && c == check))
        .map(|(path, check)| format!("  {path}: {check:?}"))
        .collect();
    assert!(
        stale.is_empty(),
        "allowed but no longer found; remove from ALLOWED:\n{}",
        stale.join("\n")
    );
}

#[test]
fn the_scanner_finds_what_it_should() {
    let text = "fn a() -> Result<u8, String> {}\n\
                fn b(\n) -> Result<\n    Option<Vec<u8>>,\n    String,\n> {}\n\
                fn c() -> Result<String, Error> {}\n\
                fn d() -> tera::TeraResult<String> {}\n\
                fn e(x: Result<Result<u8, String>, E>) {}\n\
                let f = async { Ok::<_, String>(1) };\n";
    assert_eq!(string_results(text), vec![1, 3, 9, 10]);
    let looped = "fn p(e: &dyn Error) {\n    let mut cur = e.source();\n    while let Some(c) = cur {\n        s.push_str(&c.to_string());\n        cur = c.source();\n    }\n}\n";
    assert_eq!(source_loops(looped), vec![3]);
    assert!(source_loops("while let Some(x) = it.next() {\n    f(x);\n}\n").is_empty());
}
