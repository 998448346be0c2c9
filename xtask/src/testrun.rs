//! Every test of the workspace, its output passed through as it comes, read for what
//! failed: each failing test binary with its failing tests.
//!
//! With cargo-nextest (on this project's machines, CI's included) every test is its
//! own process and tests of different binaries run side by side, so a binary whose
//! one test waits a minute for Prometheus no longer holds the others back; each test
//! is ended after 10 minutes (a hang fails, it never eats CI's budget). Without it,
//! `cargo test --workspace --no-fail-fast` runs the binaries one after another.
//! Either way the doc tests run through `cargo test --doc`.

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
        if let Some((binary, test)) = nextest_failure(t) {
            match self.failed.iter_mut().find(|f| f.target == binary) {
                Some(f) if f.tests.iter().any(|x| x == test) => {}
                Some(f) => f.tests.push(test.to_owned()),
                None => self.failed.push(Failed {
                    target: binary.to_owned(),
                    tests: vec![test.to_owned()],
                }),
            }
        } else if let Some(rest) = t.strip_prefix("Running ") {
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

/// A test nextest reports as failed (`FAIL [ 1.2s] (3/90) cp-core::monitoring fires`,
/// or TIMEOUT, SIGSEGV, ABORT...): its binary id and its name. nextest repeats every
/// failure in its summary; the reader keeps each once.
fn nextest_failure(line: &str) -> Option<(&str, &str)> {
    let (status, rest) = line.split_once(" [")?;
    if !matches!(
        status,
        "FAIL" | "TIMEOUT" | "SIGSEGV" | "SIGABRT" | "SIGKILL" | "ABORT" | "LEAK-FAIL"
    ) {
        return None;
    }
    let (_, rest) = rest.split_once("] ")?;
    let rest = match rest.strip_prefix('(') {
        Some(counted) => counted.split_once(") ")?.1,
        None => rest,
    };
    rest.trim().split_once(' ')
}

/// Whether cargo-nextest is installed (`cargo nextest --version` answers).
pub(crate) fn have_nextest() -> bool {
    crate::cargo()
        .args(["nextest", "--version"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs every test; `Ok(failures)` (empty when all passed), or an error when cargo
/// failed with no test failing (a build error: cargo's message is above).
pub(crate) fn run_all() -> Result<Vec<String>> {
    let mut failed = if have_nextest() {
        eprintln!(
            "xtask: cargo nextest run --workspace --no-fail-fast (profile ci, .config/nextest.toml)"
        );
        run_reading(&[
            "nextest",
            "run",
            "--workspace",
            "--no-fail-fast",
            "--profile",
            "ci",
        ])?
    } else {
        eprintln!(
            "xtask: cargo-nextest is not installed: cargo test --workspace --no-fail-fast runs the test binaries one after another (`cargo install cargo-nextest` runs them side by side)"
        );
        run_reading(&["test", "--workspace", "--no-fail-fast"])?
    };
    if have_nextest() {
        eprintln!("xtask: cargo test --workspace --doc");
        failed.extend(run_reading(&[
            "test",
            "--workspace",
            "--doc",
            "--no-fail-fast",
        ])?);
    }
    Ok(failed)
}

/// Runs one test command, passing its output through and reading it for failures.
fn run_reading(args: &[&str]) -> Result<Vec<String>> {
    let mut cmd = crate::cargo();
    cmd.args(args);
    let what = crate::shown(&cmd);
    let (out, into) = std::io::pipe().context("making a pipe for the tests' output")?;
    cmd.stdout(into.try_clone().context("duplicating the pipe")?)
        .stderr(into);
    let mut child = cmd.spawn().with_context(|| format!("cannot run {what}"))?;
    // `cmd` holds the pipe's writing ends: dropped now, so the read below ends when
    // cargo and its children close theirs.
    drop(cmd);
    let mut reader = Reader::default();
    for line in std::io::BufReader::new(out).lines() {
        let line = line.unwrap_or_default();
        println!("{line}");
        reader.line(&line);
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for {what}"))?;
    let failed = reader.summary();
    if !status.success() && failed.is_empty() {
        bail!("{what} failed ({status}) before any test failed: a build error, above");
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
    fn nextest_failures_are_named_once_per_binary() {
        let mut r = Reader::default();
        for l in [
            "    Starting 90 tests across 40 binaries",
            "        PASS [   0.010s] (1/90) cp-core render_is_fresh",
            "        FAIL [  61.002s] (2/90) cp-core::monitoring fires",
            "     TIMEOUT [ 600.004s] (3/90) cp-core::monitoring silent",
            "        FAIL [   0.400s] cp-server::api lists",
            "     Summary [ 400.000s] 90 tests run: 87 passed, 3 failed, 0 skipped",
            "        FAIL [  61.002s] (2/90) cp-core::monitoring fires",
            "     TIMEOUT [ 600.004s] (3/90) cp-core::monitoring silent",
            "        FAIL [   0.400s] cp-server::api lists",
            "error: test run failed",
        ] {
            r.line(l);
        }
        assert_eq!(
            r.summary(),
            [
                "cp-core::monitoring (fires, silent)",
                "cp-server::api (lists)"
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
