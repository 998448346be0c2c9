//! Committed golden files (generated output the tests compare against: the JSON
//! Schema, `rendered/`, `docs/views/`, the database schema snapshot) and the one
//! switch that refreshes them all: `CP_BLESS=1` (the CLI's insta snapshots answer to
//! it too). `cargo xtask codegen` runs every test that owns a golden with it set.

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
#[track_caller]
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
            diff(&committed, actual)
        );
    }
}

/// A unified diff from the committed text to what the test computed.
pub fn diff(committed: &str, actual: &str) -> String {
    similar::TextDiff::from_lines(committed, actual)
        .unified_diff()
        .header("committed", "now")
        .to_string()
}
