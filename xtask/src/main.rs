//! `cargo xtask`: the project's automation in Rust, no shell scripts.
//!
//! - `up`: install the service binaries this machine lacks (saying what), build the
//!   `controlplane` binary, bring `dev` up (which seeds it) and print how to connect.
//!   It ends by serving the console in the background (`controlplane serve`, pid in
//!   `.controlplane/server/serve.pid`) and prints its URL and an admin token.
//! - `down [--volumes]`: stop the console and `dev` (and delete its data).
//! - `test` / `ci`: install what the tests need, then fmt --check, clippy -D warnings,
//!   every test (cargo nextest, side by side), `controlplane render --all --check` and
//!   every benchmark once at a smoke size; every step runs, and one last line says
//!   what failed. This is what CI runs.
//! - `bench render|up|seed|status|serve`: benchmarks compared in the same run with a peer or
//!   floor.
//! - `codegen`: refresh every golden file the tests compare against (see [`HELP`]).
//! - `images [--force]`: build the docker driver's local images from Debian packages.

// xtask drives cargo, apt-get, pip and docker directly; it is the installer that
// `exec::find_binary`'s hints point at.
#![allow(clippy::disallowed_methods)]

mod bench;
mod bench_serve;
mod images;
/// The tests' port allocator (below the kernel's ephemeral range, never handed out
/// twice across processes), shared as a source file so xtask needs none of the
/// testkit's dependencies.
#[path = "../../controlplane/testkit/src/ports.rs"]
#[allow(dead_code, unreachable_pub)]
mod ports;
mod serve;
mod setup;
mod testrun;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// `cargo xtask help`.
const HELP: &str = "\
usage: cargo xtask [--backtrace] <task>

  --backtrace       on failure, print the error's causes and backtrace (otherwise one
                    line; RUST_BACKTRACE alone does not make xtask print one)

  up [ARGS]         install the service binaries this machine lacks, build controlplane,
                    bring `dev` up (seeded) and serve the console in the background
  down [--volumes]  stop the console and `dev` (--volumes: delete its data too)
  test | ci         install what the tests need, then fmt --check, clippy -D warnings,
                    every test (cargo nextest, or cargo test --no-fail-fast without
                    it; .config/nextest.toml), `controlplane render --all
                    --check` and every benchmark once at a smoke size; ends with one
                    line saying what failed (what CI runs)
  bench render|up|seed|status|cluster|serve|backup|drift [--smoke]
                    benchmarks (release builds), each compared in the same run with a
                    peer or floor; --smoke: once, small, debug build (as `test` runs it)
  codegen           refresh every golden file the tests compare against, by running
                    the tests that own them with CP_BLESS=1: environments/schema.json,
                    rendered/, docs/views/*.schema.json, controlplane/cli/tests/snapshots/,
                    migrations/schema.snapshot.sql and migrations/privileges.json
                    (these two against a real PostgreSQL). Review the diff and commit.
                    One test's goldens: CP_BLESS=1 cargo test -p <crate> --test <name>
  images [--force]  build the docker driver's local images from Debian packages
  help              this text
";

fn main() -> std::process::ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let backtrace = args.first().is_some_and(|a| a == "--backtrace");
    if backtrace {
        args.remove(0);
    }
    match task(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if backtrace {
                eprintln!("xtask: error: {e:?}");
            } else {
                eprintln!("{}", one_line(&e));
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// An error as xtask's last line: what failed and why, causes joined on one line.
fn one_line(e: &anyhow::Error) -> String {
    format!("xtask: error: {e:#}").replace('\n', " ")
}

fn task(args: &[String]) -> Result<()> {
    let root = project_root();
    std::env::set_current_dir(&root)
        .with_context(|| format!("cannot enter the project root {}", root.display()))?;
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("up") => up(rest),
        Some("down") => down(rest),
        Some("test" | "ci") => test(),
        Some("bench") => bench::bench(rest),
        Some("codegen") => codegen(),
        Some("images") => images::ensure(rest.iter().any(|a| a == "--force")).map(drop),
        // The bare floor of `bench serve`, run as its own process.
        Some("bench-hello") => {
            bench_serve::hello(rest.first().map_or("127.0.0.1:0", String::as_str))
        }
        None | Some("help" | "--help" | "-h") => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => {
            eprint!("{HELP}");
            bail!("unknown xtask {other:?}")
        }
    }
}

/// The workspace root (the parent of `xtask/`).
pub(crate) fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Runs a command, failing with its command line when it does not succeed.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {}", shown(cmd)))?;
    if !status.success() {
        bail!("{} failed ({status})", shown(cmd));
    }
    Ok(())
}

/// A command as it is shown in errors: program and arguments, never its environment
/// (where passwords travel, e.g. PGPASSWORD).
pub(crate) fn shown(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Builds the `controlplane` binary (debug profile) and returns its path. Cargo's own
/// progress shows (its bar on a terminal, a line per crate otherwise), so a cold
/// build of a few minutes is visibly alive; a fresh binary is one `Finished` line.
pub(crate) fn build_controlplane() -> Result<PathBuf> {
    eprintln!("xtask: building controlplane (cargo build -p controlplane)");
    run(cargo().args(["build", "--package", "controlplane"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| project_root().join("target"), PathBuf::from);
    Ok(target.join("debug/controlplane"))
}

fn up(rest: &[String]) -> Result<()> {
    setup::ensure_services()?;
    let bin = build_controlplane()?;
    eprintln!("xtask: bringing `dev` up (controlplane --env dev up)");
    run(Command::new(&bin).args(["--env", "dev", "up"]).args(rest))?;
    status_without_notice(&bin)?;
    println!();
    serve::start(&bin, &project_root())?;
    println!("connect:  target/debug/controlplane psql            (admin; --role app for RLS)");
    println!("          target/debug/controlplane redis-cli");
    println!("          target/debug/controlplane nats");
    println!("          eval \"$(target/debug/controlplane vault-env)\"");
    println!(
        "stop:     cargo xtask down   (stops the console too; -- --volumes also deletes the data)"
    );
    Ok(())
}

/// `controlplane status` after `up`: its table, and its stderr without the driver
/// notice `up` has just printed (each notice prints once).
fn status_without_notice(bin: &Path) -> Result<()> {
    let out = Command::new(bin)
        .args(["--env", "dev", "status"])
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::piped())
        .output()
        .context("cannot run controlplane status")?;
    eprint!(
        "{}",
        without_driver_notice(&String::from_utf8_lossy(&out.stderr), "dev")
    );
    if !out.status.success() {
        bail!("controlplane --env dev status failed ({})", out.status);
    }
    Ok(())
}

/// `stderr` without the `ENV: <why this driver>` line every command starts with.
fn without_driver_notice(stderr: &str, env: &str) -> String {
    let prefix = format!("{env}: ");
    stderr
        .lines()
        .filter(|l| {
            let Some(why) = l.strip_prefix(&prefix) else {
                return true;
            };
            !(why.starts_with("auto: ") || why.starts_with("platform: "))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn down(rest: &[String]) -> Result<()> {
    // `cargo xtask down -- --volumes` (as the README writes it) hands us the `--`.
    let rest: Vec<&String> = rest.iter().filter(|a| a.as_str() != "--").collect();
    // What `down` would refuse, refused before anything is built or stopped:
    // deleting the data needs a terminal to confirm on, or `--yes`.
    refused_down(
        &rest,
        std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
    )?;
    let bin = build_controlplane()?;
    // `down` first: when it asks and the answer is no, the console keeps running.
    run(Command::new(&bin).args(["--env", "dev", "down"]).args(rest))?;
    serve::stop(&project_root())
}

/// Why `controlplane --env dev down ARGS` would refuse to start, if it would (dev
/// needs a confirmation only to delete its data).
fn refused_down(args: &[&String], terminal: bool) -> Result<()> {
    let has = |f: &[&str]| args.iter().any(|a| f.contains(&a.as_str()));
    if has(&["--volumes"]) && !has(&["--yes", "-y"]) && !terminal {
        bail!(
            "`down --volumes` deletes dev's data and needs a confirmation: run it in a terminal, or add --yes (`cargo xtask down -- --volumes --yes`); nothing was stopped"
        );
    }
    Ok(())
}

/// Everything CI checks. Every step runs even when an earlier one failed (so one
/// failing test binary does not hide another's), and the run ends with one line
/// saying what failed.
fn test() -> Result<()> {
    setup::ensure_test_tools()?;
    images::ensure(false).context("building the docker driver's local test images")?;
    let mut failed: Vec<String> = Vec::new();
    let mut step = |what: &str, r: Result<()>| {
        if let Err(e) = r {
            eprintln!("xtask: {what} failed: {e:#}");
            failed.push(what.to_owned());
        }
    };
    eprintln!("xtask: cargo fmt --check");
    step("fmt", run(cargo().args(["fmt", "--all", "--check"])));
    eprintln!("xtask: cargo clippy -D warnings");
    step(
        "clippy",
        run(cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ])),
    );
    let tests = testrun::run_all();
    match &tests {
        Ok(t) if t.is_empty() => {}
        Ok(t) => step(
            &format!("tests: {}", t.join(", ")),
            Err(anyhow::anyhow!("see above")),
        ),
        Err(e) => step("tests", Err(anyhow::anyhow!("{e:#}"))),
    }
    eprintln!("xtask: controlplane render --all --check");
    step(
        "render --check",
        build_controlplane()
            .and_then(|bin| run(Command::new(&bin).args(["render", "--all", "--check"]))),
    );
    // Every benchmark once at a smoke size, so a broken one fails here.
    for (name, r) in bench::smoke() {
        step(&format!("bench {name} (smoke)"), r);
    }
    if failed.is_empty() {
        eprintln!("xtask: all checks passed");
        Ok(())
    } else {
        // The last line of the run (anyhow prints it as `Error: ...`).
        bail!("{} check(s) failed: {}", failed.len(), failed.join("; "))
    }
}

/// Every golden file, refreshed by the tests that compare against it: each runs with
/// `CP_BLESS=1` (the one switch, insta's snapshots included), so what is written is
/// exactly what the test would have demanded.
const GOLDEN_TESTS: &[(&str, &str, &[&str])] = &[
    // environments/schema.json
    ("cp-core", "schema", &[]),
    // rendered/
    ("cp-core", "render", &["committed_rendered_tree_is_fresh"]),
    // docs/views/*.schema.json
    ("cp-app", "views", &[]),
    // controlplane/cli/tests/snapshots/ (insta)
    ("controlplane", "bad_input", &[]),
    // migrations/schema.snapshot.sql and migrations/privileges.json, against a real
    // PostgreSQL (the test's own harness takes one filter, a substring).
    ("cp-seed", "postgres", &["committed_snapshot"]),
];

fn codegen() -> Result<()> {
    // The database snapshots need PostgreSQL's binaries; without them that test fails
    // saying what to install (`cargo xtask test` or `up` installs them).
    for (package, test, filter) in GOLDEN_TESTS {
        eprintln!("xtask: CP_BLESS=1 cargo test -p {package} --test {test} {filter:?}");
        run(cargo()
            .args(["test", "--quiet", "-p", package, "--test", test, "--"])
            .args(*filter)
            .env("CP_BLESS", "1"))?;
    }
    eprintln!("xtask: every golden is refreshed; review `git diff` and commit");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_notice_up_printed_is_not_printed_again() {
        let stderr = "dev: auto: using local processes, as when dev was brought up\nwarning: x\n";
        assert_eq!(without_driver_notice(stderr, "dev"), "warning: x\n");
        let stderr = "dev: platform: process\ndev: something else\n";
        assert_eq!(
            without_driver_notice(stderr, "dev"),
            "dev: something else\n"
        );
    }

    #[test]
    fn down_refuses_before_stopping_anything() {
        let (v, y) = ("--volumes".to_owned(), "--yes".to_owned());
        assert!(refused_down(&[&v], false).is_err());
        assert!(refused_down(&[&v], true).is_ok());
        assert!(refused_down(&[&v, &y], false).is_ok());
        assert!(refused_down(&[], false).is_ok());
    }

    #[test]
    fn errors_are_one_line() {
        let e = anyhow::anyhow!("apt-get failed\n(exit 100)").context("installing redis-server");
        assert_eq!(
            one_line(&e),
            "xtask: error: installing redis-server: apt-get failed (exit 100)"
        );
    }
}
