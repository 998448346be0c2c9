//! Committed golden files (generated output the tests compare against: the JSON
//! Schema, `rendered/`, `docs/views/`, the database schema snapshot) and the one
//! switch that refreshes them all: `CP_BLESS=1`. `cargo xtask codegen` runs every
//! test that owns a golden with it set (and insta's snapshots with
//! `INSTA_UPDATE=always`).

use std::path::Path;

/// The variable that makes golden tests write what they computed instead of
/// comparing it.
pub const BLESS: &str = "CP_BLESS";

/// Whether this run refreshes the goldens (`CP_BLESS=1`).
pub fn blessing() -> bool {
    std::env::var_os(BLESS).is_some_and(|v| v == "1")
}

/// What to tell a person whose golden is stale.
pub fn bless_hint() -> String {
    format!(
        "refresh every golden with `cargo xtask codegen` (or this test's with {BLESS}=1), review the diff and commit it"
    )
}

/// Compares `actual` with the committed file at `path` (relative to the repository
/// root or absolute); with `CP_BLESS=1`, writes it instead.
pub fn golden(path: impl AsRef<Path>, actual: &str) {
    let path = crate::repo_root().join(path);
    if blessing() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        }
        std::fs::write(&path, actual)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if committed != actual {
        panic!(
            "{} is stale; {}:\n{}",
            path.display(),
            bless_hint(),
            first_difference(&committed, actual)
        );
    }
}

/// The first line that differs, with its number, for a failure message.
pub fn first_difference(committed: &str, actual: &str) -> String {
    let (mut a, mut b) = (committed.lines(), actual.lines());
    for n in 1.. {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) if x == y => {}
            (x, y) => {
                return format!(
                    "line {n}:\n  committed: {}\n  now:       {}",
                    x.unwrap_or("(end of file)"),
                    y.unwrap_or("(end of file)")
                );
            }
        }
    }
    "the files differ only in their final newline".into()
}
