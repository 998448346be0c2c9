//! A scratch copy of the project for tests that run the binary on hostile or broken
//! files (`bad_input.rs`, `adversarial_inputs.rs`), and a snapshot of a directory tree
//! to prove that a refused command wrote nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The project's folders a command reads: environments, templates, alerts, dashboards.
pub const PROJECT_DIRS: [&str; 4] = ["environments", "templates", "alerts", "dashboards"];

/// Copies `from` into `to`, recursively (created as needed).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// Copies the repository's [`PROJECT_DIRS`] into `to`.
pub fn copy_project(to: &Path) {
    for d in PROJECT_DIRS {
        let from = crate::repo_root().join(d);
        if from.is_dir() {
            copy_dir(&from, &to.join(d));
        }
    }
}

/// Every file and directory under `root` with its contents (directories: `None`).
pub fn tree(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if p.is_dir() {
                out.insert(rel, None);
                todo.push(p);
            } else {
                out.insert(rel, Some(std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// The paths that differ between two [`tree`]s (added, removed or changed).
pub fn changed(
    before: &BTreeMap<PathBuf, Option<Vec<u8>>>,
    after: &BTreeMap<PathBuf, Option<Vec<u8>>>,
) -> Vec<String> {
    let mut out: Vec<String> = after
        .keys()
        .chain(before.keys())
        .filter(|k| after.get(*k) != before.get(*k))
        .map(|k| k.display().to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}
