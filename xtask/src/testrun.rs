//! `cargo test --workspace --no-fail-fast`, its output passed through as it comes,
//! read for what failed: each failing test binary (as cargo's "to rerun pass `...`"
//! names it) with its failing tests.

use std::io::BufRead;

use anyhow::{Context, Result, bail};

/// What one failing binary reported.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Failed {
    /// How to rerun it (`-p cp-core --test monitoring`), or the binary cargo ran.
    pub(crate) target: String,
    /// Its failing tests, as libtest names them.
    pub(crate) tests: Vec<String>,
}

/// Reads cargo test's merged output line by line.
#[derive(Debug, Default)]
pub(crate) struct Reader {
    /// The binary running now (from cargo's `Running` or `Doc-tests` line).
    current: String,
    /// Its failing tests so far.
    tests: Vec<String>,
    /// Whether it reported `test result: FAILED`.
    result_failed: bool,
    /// What failed, in order.
    pub(crate) failed: Vec<Failed>,
}

impl Reader {
    pub(crate) fn line(&mut self, line: &str) {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Running ") {
            self.start(rest.to_owned());
        } else if let Some(rest) = t.strip_prefix("Doc-tests ") {
            self.start(format!("doc-tests {rest}"));
        } else if let Some(name) = t
            .strip_prefix("test ")
            .and_then(|r| r.strip_suffix(" ... FAILED"))
        {
            self.tests.push(name.to_owned());
        } else if t.starts_with("test result: FAILED") {
            self.result_failed = true;
        } else if let Some(spec) = t
            .split_once("to rerun pass `")
            .and_then(|(_, r)| r.split_once('`'))
            .map(|(spec, _)| spec.to_owned())
        {
            // cargo says this right after the binary that failed.
            self.failed.push(Failed {
                target: spec,
                tests: std::mem::take(&mut self.tests),
            });
            self.result_failed = false;
        }
    }

    fn start(&mut self, binary: String) {
        self.flush();
        self.current = binary;
    }

    /// A binary that failed without cargo naming it (it should not happen; kept so
    /// a failure is never lost).
    fn flush(&mut self) {
        if self.result_failed || !self.tests.is_empty() {
            self.failed.push(Failed {
                target: std::mem::take(&mut self.current),
                tests: std::mem::take(&mut self.tests),
            });
        }
        self.result_failed = false;
    }

    /// The failures, one short entry each.
    pub(crate) fn summary(mut self) -> Vec<String> {
        self.flush();
        self.failed
            .iter()
            .map(|f| {
                let shown: Vec<&str> = f.tests.iter().take(4).map(String::as_str).collect();
                let more = f.tests.len().saturating_sub(shown.len());
                match (shown.is_empty(), more) {
                    (true, _) => format!("{} (the binary failed)", f.target),
                    (false, 0) => format!("{} ({})", f.target, shown.join(", ")),
                    (false, n) => format!("{} ({} and {n} more)", f.target, shown.join(", ")),
                }
            })
            .collect()
    }
}

/// Runs every test binary; `Ok(failures)` (empty when all passed), or an error when
/// cargo failed with no test failing (a build error: cargo's message is above).
pub(crate) fn run_all() -> Result<Vec<String>> {
    let (out, into) = std::io::pipe().context("making a pipe for cargo test's output")?;
    let mut child = {
        let mut cmd = crate::cargo();
        cmd.args(["test", "--workspace", "--no-fail-fast"])
            .stdout(into.try_clone().context("duplicating the pipe")?)
            .stderr(into);
        cmd.spawn().context("cannot run cargo test")?
        // `cmd`, holding the pipe's writing end, is dropped here: the read below ends
        // when cargo and its children do.
    };
    let mut reader = Reader::default();
    for line in std::io::BufReader::new(out).lines() {
        let line = line.unwrap_or_default();
        println!("{line}");
        reader.line(&line);
    }
    let status = child.wait().context("waiting for cargo test")?;
    let failed = reader.summary();
    if !status.success() && failed.is_empty() {
        bail!("cargo test failed ({status}) before any test failed: a build error, above");
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_binaries_are_named_with_their_failing_tests() {
        let mut r = Reader::default();
        for l in [
            "     Running unittests src/lib.rs (target/debug/deps/cp_core-1)",
            "test a ... ok",
            "test result: ok. 1 passed; 0 failed",
            "     Running tests/monitoring.rs (target/debug/deps/monitoring-2)",
            "test fires ... FAILED",
            "test silent ... FAILED",
            "test result: FAILED. 0 passed; 2 failed",
            "error: test failed, to rerun pass `-p cp-core --test monitoring`",
            "     Running tests/api.rs (target/debug/deps/api-3)",
            "thread 'main' panicked",
            "error: test failed, to rerun pass `-p cp-server --test api`",
            "   Doc-tests cp_core",
            "test result: ok. 0 passed",
            "error: 2 targets failed:",
            "    `-p cp-core --test monitoring`",
        ] {
            r.line(l);
        }
        assert_eq!(
            r.summary(),
            [
                "-p cp-core --test monitoring (fires, silent)",
                "-p cp-server --test api (the binary failed)"
            ]
        );
    }

    #[test]
    fn a_clean_run_reports_nothing() {
        let mut r = Reader::default();
        r.line("     Running unittests src/lib.rs (target/debug/deps/x-1)");
        r.line("test result: ok. 3 passed; 0 failed");
        assert!(r.summary().is_empty());
    }
}
