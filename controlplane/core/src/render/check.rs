//! `render --check`: compare what would be rendered with what is committed.

use std::collections::BTreeMap;
use std::fmt;

use super::Output;

/// One file that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The file differs; a unified diff from committed to rendered.
    Changed {
        /// Path.
        path: String,
        /// Unified diff.
        diff: String,
    },
    /// Rendered, but not on disk.
    Missing {
        /// Path.
        path: String,
    },
    /// On disk in a rendered directory, but no longer rendered.
    Stale {
        /// Path.
        path: String,
    },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Changed { path, diff } => write!(f, "changed: {path}\n{diff}"),
            Drift::Missing { path } => write!(f, "missing: {path} (not rendered yet)"),
            Drift::Stale { path } => write!(f, "stale: {path} (no longer rendered)"),
        }
    }
}

/// Compares the rendered files with `on_disk` (every file under the directories the
/// render owns, by the same relative paths).
pub fn check(rendered: &Output, on_disk: &BTreeMap<String, String>) -> Vec<Drift> {
    let mut drift = Vec::new();
    for (path, new) in &rendered.files {
        match on_disk.get(path) {
            None => drift.push(Drift::Missing { path: path.clone() }),
            Some(old) if old != new => {
                let diff = similar::TextDiff::from_lines(old.as_str(), new.as_str())
                    .unified_diff()
                    .context_radius(3)
                    .header(&format!("committed/{path}"), &format!("rendered/{path}"))
                    .to_string();
                drift.push(Drift::Changed {
                    path: path.clone(),
                    diff,
                });
            }
            Some(_) => {}
        }
    }
    for path in on_disk.keys().filter(|p| !rendered.files.contains_key(*p)) {
        drift.push(Drift::Stale { path: path.clone() });
    }
    drift
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_changed_missing_and_stale() {
        let rendered = Output {
            files: [("a.yaml", "x: 1\ny: 2\n"), ("b.yaml", "b\n")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        };
        let disk: BTreeMap<String, String> = [("a.yaml", "x: 1\ny: 3\n"), ("c.yaml", "c\n")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let d = check(&rendered, &disk);
        assert_eq!(d.len(), 3);
        assert_eq!(
            d[0].to_string(),
            "changed: a.yaml\n--- committed/a.yaml\n+++ rendered/a.yaml\n@@ -1,2 +1,2 @@\n x: 1\n-y: 3\n+y: 2\n"
        );
        assert_eq!(
            d[1],
            Drift::Missing {
                path: "b.yaml".into()
            }
        );
        assert_eq!(
            d[2],
            Drift::Stale {
                path: "c.yaml".into()
            }
        );
    }
}
