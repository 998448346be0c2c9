//! Benchmarks, each compared in the same run with the peer tool or the physical floor.
//!
//! - `render`: `render --all` vs `kubectl kustomize` of the same overlays.
//! - `up`: cold and no-op `up` on the process driver vs a shell script starting the
//!   same four servers.
//! - `seed`: seeding and creating a tenant, with round trips.
//! - `status`: `status` with `platform: auto` while Docker answers but images are
//!   absent (the decision `plan`, `status` and `up` all make first) vs the Docker CLI
//!   asking the same engine the same questions.
//! - `cluster`: cold `up` of 3 NATS + 3 OpenBao local nodes vs a script starting
//!   the same clusters in parallel (`floor-cluster.sh`).
//! - `serve`: the status endpoint under loopback load vs a bare axum hello-world
//!   (`bench_serve.rs`).
//! - `drift`: one drift check (the whole-environment plan as a drift view) of a
//!   seeded dev environment, in-process plan time and whole command, vs `plan` (the
//!   same observation printed as a plan) and the floor of starting the binary
//!   (`controlplane --version`).
//! - `backup`: PostgreSQL backup and restore of a database over 1 GB of realistic
//!   entropy vs `pg_dump -Fc`, `pg_dump -Fc -Z0` and `pg_restore -j 2`, with the
//!   backup's peak memory at two sizes.
//!
//! `cargo xtask bench <name>` measures with release builds at full size. `cargo xtask
//! test` runs each once at a smoke size ([`Size::Smoke`]: the debug binary it has just
//! built, one or two runs, small data), so a benchmark that no longer runs fails CI;
//! its figures are not measurements and say so.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// How much a benchmark does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Size {
    /// Once, small, with the debug binary: does it still run? (`cargo xtask test`)
    Smoke,
    /// The measurement, with release builds.
    Full,
}

impl Size {
    /// `smoke` or `full`, by size.
    pub(crate) fn pick<T>(self, smoke: T, full: T) -> T {
        match self {
            Size::Smoke => smoke,
            Size::Full => full,
        }
    }

    /// The controlplane binary this size measures: release for a measurement, the
    /// debug build for a smoke run (a release build would cost CI minutes).
    pub(crate) fn controlplane(self) -> Result<std::path::PathBuf> {
        match self {
            Size::Smoke => crate::build_controlplane(),
            Size::Full => build_controlplane_release(),
        }
    }

    /// A note for the output, saying what the figures are.
    pub(crate) fn note(self) -> &'static str {
        match self {
            Size::Smoke => "  [smoke run: debug binary, minimal runs and data; not a measurement]",
            Size::Full => "",
        }
    }
}

/// Every benchmark once at [`Size::Smoke`], each with its outcome (a failure does not
/// stop the others).
pub(crate) fn smoke() -> Vec<(&'static str, Result<()>)> {
    type Bench = fn(Size) -> Result<()>;
    let all: [(&str, Bench); 8] = [
        ("render", render),
        ("up", up),
        ("seed", seed),
        ("status", status),
        ("cluster", cluster),
        ("serve", crate::bench_serve::run),
        ("backup", backup),
        ("drift", drift),
    ];
    all.into_iter()
        .map(|(name, f)| {
            eprintln!("xtask: bench {name} (smoke)");
            let t = Instant::now();
            let r = f(Size::Smoke);
            eprintln!(
                "xtask: bench {name} (smoke) {} in {:.1} s",
                if r.is_ok() { "ran" } else { "FAILED" },
                t.elapsed().as_secs_f64()
            );
            (name, r)
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The 90th percentile (nearest rank).
fn p90(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 9).div_ceil(10) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub(crate) fn bench(rest: &[String]) -> Result<()> {
    // `--smoke`: the size `cargo xtask test` runs, to check one benchmark still runs.
    let full = if rest.iter().any(|a| a == "--smoke") {
        Size::Smoke
    } else {
        Size::Full
    };
    match rest.first().map(String::as_str) {
        Some("render") => render(full),
        Some("up") => up(full),
        Some("seed") => seed(full),
        Some("status") => status(full),
        Some("cluster") => cluster(full),
        Some("serve") => crate::bench_serve::run(full),
        Some("backup") => backup(full),
        Some("drift") => drift(full),
        other => {
            bail!(
                "unknown benchmark {other:?}: use `cargo xtask bench render|up|cluster|seed|status|serve|backup|drift`"
            )
        }
    }
}

/// Rendering every environment vs `kubectl kustomize` of the same overlays.
fn render(size: Size) -> Result<()> {
    let bin = size.controlplane()?;
    let tmp = std::env::temp_dir().join(format!("cp-bench-render-{}", std::process::id()));
    let runs = size.pick(1, 15);
    let mut ours = Vec::new();
    for _ in 0..runs {
        let _ = std::fs::remove_dir_all(&tmp);
        let t = Instant::now();
        crate::run(
            Command::new(&bin)
                .args(["render", "--all", "--out"])
                .arg(&tmp)
                .arg("--output")
                .arg("json")
                .stdout(std::process::Stdio::null()),
        )?;
        ours.push(t.elapsed());
    }
    let envs = ["dev", "staging", "production"];
    let mut kustomize = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        for e in envs {
            let out = Command::new("kubectl")
                .arg("kustomize")
                .arg(tmp.join(format!("kubernetes/overlays/{e}")))
                .output()?;
            if !out.status.success() {
                bail!(
                    "kubectl kustomize {e} failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        kustomize.push(t.elapsed());
    }
    let _ = std::fs::remove_dir_all(&tmp);
    let (a, b) = (median(ours), median(kustomize));
    println!(
        "render --all (3 environments, load + validate + render + write), median of {runs}: {}",
        ms(a)
    );
    println!(
        "kubectl kustomize of the same 3 overlays, median of {runs}:                     {}",
        ms(b)
    );
    println!(
        "ratio controlplane/kustomize: {:.2}{}",
        a.as_secs_f64() / b.as_secs_f64(),
        size.note()
    );
    Ok(())
}

/// The unprivileged user PostgreSQL runs as when we are root (as the process driver
/// picks it).
fn pg_user() -> &'static str {
    let has = |u: &str| {
        Command::new("id")
            .arg(u)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if has("postgres") {
        "postgres"
    } else {
        "nobody"
    }
}

/// Runs a floor script, times it, ends the servers it started and removes its
/// directory.
fn timed_floor(cmd: &mut Command, dir: &std::path::Path) -> Result<Duration> {
    let t = Instant::now();
    let status = cmd.status();
    let took = t.elapsed();
    stop_floor(dir);
    if !status.is_ok_and(|s| s.success()) {
        bail!("the floor script failed; its logs are in {}", dir.display());
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(took)
}

/// Ends the floor script's servers (only those: by the pids it recorded).
fn stop_floor(dir: &std::path::Path) {
    let pids = std::fs::read_to_string(dir.join("pids")).unwrap_or_default();
    for pid in pids.lines().filter(|l| !l.trim().is_empty()) {
        let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
    }
    for pid in pids.lines().filter(|l| !l.trim().is_empty()) {
        let proc = format!("/proc/{}", pid.trim());
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::path::Path::new(&proc).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if std::path::Path::new(&proc).exists() {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
    }
}

/// Cold `up` (fresh state to all four services answering) and no-op `up`, against the
/// floor: a shell script starting the same four binaries in parallel and polling them.
/// `controlplane` on the dev environment with the process driver, its state in
/// `state` and its six ports (postgres, redis, nats, nats monitor, vault, vault
/// cluster) set to `ports`.
fn dev_command(
    bin: &std::path::Path,
    root: &std::path::Path,
    state: &std::path::Path,
    ports: &[u16],
) -> Command {
    let mut cmd = Command::new(bin);
    cmd.current_dir(root)
        .args(["--env", "dev", "--output", "json", "--state-dir"])
        .arg(state)
        .args(["--set", "platform=process"])
        // The floor starts the four core servers; so does this.
        .args(["--set", "monitoring.enabled=false"]);
    for (k, p) in [
        "services.postgres.port",
        "services.redis.port",
        "services.nats.port",
        "services.nats.monitor_port",
        "services.vault.port",
        "services.vault.cluster_port",
    ]
    .iter()
    .zip(ports)
    {
        cmd.args(["--set", &format!("{k}={p}")]);
    }
    cmd
}

fn up(size: Size) -> Result<()> {
    crate::setup::ensure_services()?;
    let bin = size.controlplane()?;
    let root = crate::project_root();
    let script = root.join("xtask/src/floor-up.sh");
    let user = pg_user();
    let pgbin = "/usr/lib/postgresql/15/bin";
    let base = std::env::temp_dir().join(format!("cp-bench-up-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    // PostgreSQL (an unprivileged user) must be able to enter the state directory.
    crate::run(Command::new("chmod").arg("755").arg(&base))?;
    let runs = size.pick(1, 5);
    let noops = size.pick(2, 15);

    let cp = |state: &std::path::Path, ports: &[u16], args: &[&str]| -> Result<Duration> {
        let mut cmd = dev_command(&bin, &root, state, ports);
        cmd.args(args).stdout(std::process::Stdio::null());
        let t = Instant::now();
        crate::run(&mut cmd)?;
        Ok(t.elapsed())
    };

    let mut cold = Vec::new();
    let mut noop = Vec::new();
    let mut start = Vec::new();
    let result = (|| -> Result<()> {
        for i in 0..runs {
            let state = base.join(format!("cp-{i}"));
            let ports = crate::ports::free_ports(6);
            // Whatever happens, what this run started is stopped and its data deleted.
            let r = (|| -> Result<()> {
                cold.push(cp(&state, &ports, &["up", "--no-seed"])?);
                if i == 0 {
                    for _ in 0..noops {
                        noop.push(cp(&state, &ports, &["up", "--no-seed"])?);
                        // The floor of a no-op: starting the binary at all.
                        let t = Instant::now();
                        crate::run(
                            Command::new(&bin)
                                .arg("--version")
                                .stdout(std::process::Stdio::null()),
                        )?;
                        start.push(t.elapsed());
                    }
                }
                Ok(())
            })();
            let down = cp(&state, &ports, &["down", "--volumes", "--yes"]);
            r?;
            down?;
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&base);
        return Err(e);
    }

    let mut floor = Vec::new();
    for i in 0..runs {
        let dir = base.join(format!("floor-{i}"));
        std::fs::create_dir_all(&dir)?;
        crate::run(Command::new("chmod").arg("755").arg(&dir))?;
        let p = crate::ports::free_ports(6);
        let mut cmd = Command::new("bash");
        cmd.arg(&script).arg(&dir).arg(user);
        for port in &p {
            cmd.arg(port.to_string());
        }
        cmd.arg(pgbin);
        floor.push(timed_floor(&mut cmd, &dir)?);
    }
    let _ = std::fs::remove_dir_all(&base);

    let (c, n, f, v) = (median(cold), median(noop), median(floor), median(start));
    println!(
        "cold `up` (process driver, dev, monitoring off, to all four answering), median of {runs}: {}",
        ms(c)
    );
    println!(
        "no-op `up` (everything already up), median of {noops}:                     {}",
        ms(n)
    );
    println!(
        "floor: shell script starting the four in parallel, median of {runs}:       {}",
        ms(f)
    );
    println!(
        "floor of a no-op: `controlplane --version`, median of {noops}:              {}",
        ms(v)
    );
    println!(
        "ratio cold up / floor: {:.2}; no-op up / floor: {:.3} (aim: no-op up <= 30 ms){}",
        c.as_secs_f64() / f.as_secs_f64(),
        n.as_secs_f64() / f.as_secs_f64(),
        size.note()
    );
    Ok(())
}

/// A block of `n` consecutive free loopback ports (the cluster nodes' ports are
/// base + i), below the ephemeral range.
fn port_block(n: u16) -> Result<u16> {
    Ok(crate::ports::free_port_block(usize::from(n)))
}

/// Cold `up` of 3 NATS + 3 OpenBao nodes on the process platform (every node
/// answering, JetStream with a meta leader, raft with three voters; not seeded)
/// against the floor: `floor-cluster.sh` starting the same clusters in parallel.
fn cluster(size: Size) -> Result<()> {
    crate::setup::ensure_services()?;
    let bin = size.controlplane()?;
    let root = crate::project_root();
    let script = root.join("xtask/src/floor-cluster.sh");
    let base_dir = std::env::temp_dir().join(format!("cp-bench-cluster-{}", std::process::id()));
    std::fs::create_dir_all(&base_dir)?;
    let runs = size.pick(1, 3);
    let cp = |state: &std::path::Path, base: u16, args: &[&str]| -> Result<Duration> {
        let mut cmd = Command::new(&bin);
        cmd.current_dir(&root)
            .args(["--env", "dev", "--output", "json", "--state-dir"])
            .arg(state);
        let mut sets: Vec<String> = [
            "platform=process",
            "services.postgres.enabled=false",
            "services.redis.enabled=false",
            "apps.capsule-registry.enabled=false",
            "monitoring.enabled=false",
            "backup.enabled=false",
            "services.nats.replicas=3",
            "services.vault.replicas=3",
        ]
        .map(String::from)
        .to_vec();
        sets.extend([
            format!("services.nats.port={base}"),
            format!("services.nats.monitor_port={}", base + 3),
            format!("services.nats.cluster_port={}", base + 6),
            format!("services.vault.port={}", base + 9),
            format!("services.vault.cluster_port={}", base + 10),
        ]);
        for s in &sets {
            cmd.args(["--set", s]);
        }
        cmd.args(args).stdout(std::process::Stdio::null());
        let t = Instant::now();
        crate::run(&mut cmd)?;
        Ok(t.elapsed())
    };
    let mut cold = Vec::new();
    for i in 0..runs {
        let state = base_dir.join(format!("cp-{i}"));
        let base = port_block(16)?;
        // Stopped even when `up` failed half way.
        let r = cp(&state, base, &["up", "--no-seed"]);
        let down = cp(&state, base, &["down", "--volumes", "--yes"]);
        cold.push(r?);
        down?;
    }
    let mut floor = Vec::new();
    for i in 0..runs {
        let dir = base_dir.join(format!("floor-{i}"));
        std::fs::create_dir_all(&dir)?;
        let b = port_block(16)?;
        let mut cmd = Command::new("bash");
        cmd.arg(&script).arg(&dir);
        for p in [b, b + 3, b + 6, b + 9, b + 10] {
            cmd.arg(p.to_string());
        }
        floor.push(timed_floor(&mut cmd, &dir)?);
    }
    let _ = std::fs::remove_dir_all(&base_dir);
    let (c, f) = (median(cold), median(floor));
    println!(
        "cold `up` of 3 NATS + 3 OpenBao nodes (process driver, not seeded), median of {runs}: {}",
        ms(c)
    );
    println!(
        "floor: shell script starting the same clusters in parallel, median of {runs}:      {}",
        ms(f)
    );
    println!(
        "ratio cold up / floor: {:.2}{}",
        c.as_secs_f64() / f.as_secs_f64(),
        size.note()
    );
    Ok(())
}

/// Seeding a fresh dev environment (brought up with `--no-seed`) and creating one
/// tenant, through the binary as a user runs them, with the round trips each service
/// saw (from `--output json`). A no-op re-seed is timed too.
/// A drift check's cost on a seeded dev environment.
fn drift(size: Size) -> Result<()> {
    crate::setup::ensure_services()?;
    let bin = size.controlplane()?;
    let root = crate::project_root();
    let base = std::env::temp_dir().join(format!("cp-bench-drift-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    crate::run(Command::new("chmod").arg("755").arg(&base))?;
    let state = base.join("dev");
    let ports = crate::ports::free_ports(6);
    let runs = size.pick(1, 9);
    let timed = |args: &[&str]| -> Result<(Duration, serde_json::Value, Option<i32>)> {
        let mut cmd = dev_command(&bin, &root, &state, &ports);
        cmd.args(args).stderr(std::process::Stdio::null());
        let t = Instant::now();
        let out = cmd.output()?;
        Ok((
            t.elapsed(),
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null),
            out.status.code(),
        ))
    };
    let (_, _, up) = timed(&["up"])?;
    let r = (|| -> Result<()> {
        if up != Some(0) {
            bail!("up failed (state in {})", state.display());
        }
        let (mut check, mut plan_ms, mut plan, mut floor) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let (t, v, code) = timed(&["drift"])?;
            if code != Some(0) {
                bail!("drift found drift on a fresh environment: {v}");
            }
            check.push(t);
            plan_ms.push(Duration::from_millis(v["plan_ms"].as_u64().unwrap_or(0)));
            plan.push(timed(&["plan"])?.0);
            let t = Instant::now();
            crate::run(
                Command::new(&bin)
                    .arg("--version")
                    .stdout(std::process::Stdio::null()),
            )?;
            floor.push(t.elapsed());
        }
        println!("drift check of a seeded dev environment (process platform), median of {runs}:");
        println!("  in-process plan (plan_ms):      {}", ms(median(plan_ms)));
        println!("  `controlplane drift` command:   {}", ms(median(check)));
        println!("  `controlplane plan` (peer):     {}", ms(median(plan)));
        println!(
            "  `controlplane --version` floor: {}{}",
            ms(median(floor)),
            size.note()
        );
        Ok(())
    })();
    let _ = timed(&["down", "--volumes", "--yes"]);
    let _ = std::fs::remove_dir_all(&base);
    r
}

fn seed(size: Size) -> Result<()> {
    crate::setup::ensure_services()?;
    let bin = size.controlplane()?;
    let root = crate::project_root();
    let base = std::env::temp_dir().join(format!("cp-bench-seed-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    crate::run(Command::new("chmod").arg("755").arg(&base))?;
    let runs = size.pick(1, 5);

    let cp = |state: &std::path::Path,
              ports: &[u16],
              args: &[&str]|
     -> Result<(Duration, serde_json::Value)> {
        let mut cmd = dev_command(&bin, &root, state, ports);
        cmd.args(args).stderr(std::process::Stdio::null());
        let t = Instant::now();
        let out = cmd.output()?;
        let took = t.elapsed();
        if !out.status.success() {
            bail!(
                "controlplane {} failed (state in {})",
                args.join(" "),
                state.display()
            );
        }
        Ok((
            took,
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null),
        ))
    };
    let trips = |reports: &serde_json::Value| -> String {
        reports
            .as_array()
            .map(|rs| {
                rs.iter()
                    .map(|r| {
                        format!(
                            "{} {}",
                            r["service"].as_str().unwrap_or("?"),
                            r["round_trips"]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };

    let (mut fresh, mut noop, mut tenant) = (Vec::new(), Vec::new(), Vec::new());
    let (mut fresh_trips, mut noop_trips, mut tenant_trips) =
        (String::new(), String::new(), String::new());
    for i in 0..runs {
        let state = base.join(format!("cp-{i}"));
        let ports = crate::ports::free_ports(6);
        let r = (|| -> Result<()> {
            cp(&state, &ports, &["up", "--no-seed"])?;
            let (t, v) = cp(&state, &ports, &["seed"])?;
            fresh.push(t);
            fresh_trips = trips(&v["seed"]["reports"]);
            let (t, v) = cp(&state, &ports, &["tenant", "create", &format!("bench-{i}")])?;
            tenant.push(t);
            tenant_trips = trips(&v["tenant"]["reports"]);
            let (t, v) = cp(&state, &ports, &["seed"])?;
            noop.push(t);
            noop_trips = trips(&v["seed"]["reports"]);
            Ok(())
        })();
        // Stopped and deleted whatever happened.
        let down = cp(&state, &ports, &["down", "--volumes", "--yes"]);
        if r.is_err() || down.is_err() {
            let _ = std::fs::remove_dir_all(&base);
        }
        r?;
        down?;
    }
    let _ = std::fs::remove_dir_all(&base);
    println!(
        "seed of a fresh dev environment, median of {runs}: {}  (round trips: {fresh_trips})",
        ms(median(fresh))
    );
    println!(
        "tenant create, median of {runs}:                    {}  (round trips: {tenant_trips})",
        ms(median(tenant))
    );
    println!(
        "no-op re-seed, median of {runs}:                    {}  (round trips: {noop_trips})",
        ms(median(noop))
    );
    println!(
        "(each through the binary: includes process start, config load and connecting){}",
        size.note()
    );
    Ok(())
}

/// `status` of dev with `platform: auto`, Docker answering and an image absent (so
/// `auto` decides for processes, from the local images only), against the floor: the
/// Docker CLI asking the engine its version, and inspecting the same images.
fn status(size: Size) -> Result<()> {
    let bin = size.controlplane()?;
    let root = crate::project_root();
    let state = std::env::temp_dir().join(format!("cp-bench-status-{}", std::process::id()));
    let runs = size.pick(2, 25);
    let sets = [
        "platform=auto",
        "services.postgres.image=controlplane-local/bench-absent:1",
    ];
    let cp = |args: &[&str]| {
        let mut cmd = Command::new(&bin);
        cmd.current_dir(&root)
            .args(["--env", "dev", "--state-dir"])
            .arg(&state);
        for s in sets {
            cmd.args(["--set", s]);
        }
        cmd.args(args);
        cmd
    };
    if Command::new("docker").arg("version").output().is_err() {
        bail!("the docker CLI is needed for the floor of this benchmark");
    }

    // What it decided, once (status exits 1 while services are missing: not an error).
    let out = cp(&["status"]).output()?;
    let notice = String::from_utf8_lossy(&out.stderr)
        .lines()
        .find(|l| l.contains("auto:"))
        .map(str::to_owned)
        .unwrap_or_default();
    if !notice.contains("using local processes") {
        bail!("auto did not choose processes with an absent image: {notice:?}");
    }
    // The images it checked, from the resolved environment.
    let config = cp(&["--output", "json", "config"]).output()?;
    let config: serde_json::Value = serde_json::from_slice(&config.stdout)?;
    let mut images = Vec::new();
    collect_images(&config, &mut images);
    images.sort();
    images.dedup();

    let time = |cmd: &mut Command| -> Result<Duration> {
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let t = Instant::now();
        cmd.status()?;
        Ok(t.elapsed())
    };
    let (mut ours, mut version, mut inspect) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        ours.push(time(&mut cp(&["status"]))?);
        version.push(time(Command::new("docker").args([
            "version",
            "--format",
            "{{.Server.Version}}",
        ]))?);
        inspect.push(time(
            Command::new("docker")
                .args(["image", "inspect", "--format", "{{.Id}}"])
                .args(&images),
        )?);
    }
    let _ = std::fs::remove_dir_all(&state);
    println!("notice: {notice}");
    println!(
        "`status` (dev, platform: auto, Docker answering, {} of its images checked), {runs} runs: median {}, p90 {}",
        images.len(),
        ms(median(ours.clone())),
        ms(p90(ours.clone()))
    );
    println!(
        "floor: `docker version`, median {}; `docker image inspect` of the same {} images, median {}",
        ms(median(version)),
        images.len(),
        ms(median(inspect.clone()))
    );
    println!(
        "ratio status / docker image inspect: {:.2}{}",
        median(ours).as_secs_f64() / median(inspect).as_secs_f64(),
        size.note()
    );
    Ok(())
}

/// Every `image` string in a resolved environment.
fn collect_images(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match v {
                    serde_json::Value::String(s) if k == "image" => out.push(s.clone()),
                    other => collect_images(other, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| collect_images(v, out)),
        _ => {}
    }
}

/// The controlplane binary built with optimisations (what a benchmark of byte
/// pipelines must measure: zstd and SHA-256 at -O0 would say nothing).
fn build_controlplane_release() -> Result<std::path::PathBuf> {
    crate::run(crate::cargo().args([
        "build",
        "--quiet",
        "--release",
        "--package",
        "controlplane",
    ]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || crate::project_root().join("target"),
        std::path::PathBuf::from,
    );
    Ok(target.join("release/controlplane"))
}

/// Runs `cmd`, polling its peak resident memory (VmHWM) until it exits: (time, peak
/// bytes, stdout).
fn timed_with_peak(cmd: &mut Command) -> Result<(Duration, u64, Vec<u8>)> {
    let t = Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stdout, &mut b);
        b
    });
    let mut peak = 0u64;
    loop {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kb * 1024);
        }
        if let Some(status) = child.try_wait()? {
            let took = t.elapsed();
            let out = reader.join().unwrap_or_default();
            if !status.success() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                bail!("{} failed ({status}): {err}", crate::shown(cmd));
            }
            return Ok((took, peak, out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn mib(n: u64) -> String {
    format!("{:.0} MB", n as f64 / 1e6)
}

/// `backup` of PostgreSQL against `pg_dump -Fc` (default compression) and
/// `pg_dump -Fc -Z0` (the uncompressed floor), `restore` against `pg_restore -j 2`,
/// and the backup's peak memory at two database sizes. The data has realistic
/// entropy: ids, uuids, timestamps, a small vocabulary of actions, JSON with numbers,
/// free text of random words and hex tokens (not pgbench's blank filler).
fn backup(size: Size) -> Result<()> {
    crate::setup::ensure_services()?;
    let bin = size.controlplane()?;
    let root = crate::project_root();
    let base = std::env::temp_dir().join(format!("cp-bench-backup-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    crate::run(Command::new("chmod").arg("755").arg(&base))?;
    let state = base.join("dev");
    let dest = base.join("sets");
    let ports = crate::ports::free_ports(6);
    let sets = [
        "services.redis.enabled=false".to_owned(),
        "services.nats.enabled=false".to_owned(),
        "services.vault.enabled=false".to_owned(),
        "apps.capsule-registry.enabled=false".to_owned(),
        "monitoring.enabled=false".to_owned(),
        "backup.services=[postgres]".to_owned(),
        "backup.compression_level=3".to_owned(),
        format!("backup.destinations.local.path={}", dest.display()),
    ];
    let cp = |args: &[&str]| -> Command {
        let mut c = dev_command(&bin, &root, &state, &ports);
        for s in &sets {
            c.args(["--set", s]);
        }
        c.args(args);
        c
    };
    let result = (|| -> Result<()> {
        crate::run(cp(&["up"]).stdout(std::process::Stdio::null()))?;
        let secrets: serde_json::Value =
            serde_json::from_slice(&std::fs::read(state.join("secrets.json"))?)?;
        let pw = |k: &str| -> Result<String> {
            secrets[k]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| anyhow::anyhow!("no generated secret {k} in secrets.json"))
        };
        let su = pw("services.postgres.superuser_password")?;
        let backup_pw = pw("services.postgres.backup_password")?;
        let pg_bin = |name: &str| {
            let p = std::path::PathBuf::from(format!("/usr/lib/postgresql/15/bin/{name}"));
            if p.exists() {
                p
            } else {
                std::path::PathBuf::from(name)
            }
        };
        let port = ports[0].to_string();
        let psql = |sql: &str| -> Result<()> {
            crate::run(
                Command::new(pg_bin("psql"))
                    .args([
                        "-X",
                        "-q",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &port,
                        "-U",
                        "postgres",
                        "-d",
                        "anumate",
                        "-c",
                        sql,
                    ])
                    .env("PGPASSWORD", &su)
                    .stdout(std::process::Stdio::null()),
            )
        };
        psql(
            "CREATE SCHEMA IF NOT EXISTS bench;
             CREATE TABLE IF NOT EXISTS bench.events_a (id bigint PRIMARY KEY, tenant uuid NOT NULL, at timestamptz NOT NULL, actor text NOT NULL, action text NOT NULL, details jsonb NOT NULL, note text NOT NULL);
             CREATE TABLE IF NOT EXISTS bench.events_b (LIKE bench.events_a INCLUDING ALL);
             CREATE INDEX IF NOT EXISTS events_a_tenant_at ON bench.events_a (tenant, at);
             CREATE INDEX IF NOT EXISTS events_b_tenant_at ON bench.events_b (tenant, at);",
        )?;
        // ~190 bytes per row on disk, mixed entropy.
        let fill = |table: &str, from: u64, rows: u64| -> Result<()> {
            psql(&format!(
                "INSERT INTO bench.{table}
                 SELECT g,
                        ('00000000-0000-4000-8000-' || lpad(to_hex(g % 97), 12, '0'))::uuid,
                        timestamptz '2026-01-01' + g * interval '173 ms',
                        'user' || (g::bigint * 7919 % 5000),
                        (ARRAY['login','logout','capsule.create','plan.run','approval.grant','token.issue','connector.sync'])[1 + g % 7],
                        jsonb_build_object('ip', '10.' || (g % 250) || '.' || (g * 13 % 250) || '.' || (g * 29 % 250), 'ms', (random() * 900)::int, 'ok', random() > 0.05),
                        (ARRAY['alpha','bravo','charlie','delta','echo','foxtrot','golf','hotel','india','juliet'])[1 + (random() * 9)::int] || ' ' ||
                        (ARRAY['created','updated','deleted','viewed','shared','approved'])[1 + (random() * 5)::int] || ' ' ||
                        md5(random()::text) || ' ' || substr(md5(random()::text), 1, 12)
                 FROM generate_series({from}, {}) g",
                from + rows - 1
            ))
        };
        let db_size = || -> Result<u64> {
            let out = Command::new(pg_bin("psql"))
                .args([
                    "-X",
                    "-At",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "postgres",
                    "-d",
                    "anumate",
                    "-c",
                    "SELECT pg_database_size('anumate')",
                ])
                .env("PGPASSWORD", &su)
                .output()?;
            Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
        };
        let take = |label: &str| -> Result<(Duration, u64, u64, String)> {
            let (t, peak, out) = timed_with_peak(
                cp(&["backup", "--service", "postgres"]).stderr(std::process::Stdio::null()),
            )?;
            let v: serde_json::Value = serde_json::from_slice(&out)?;
            let stored = v["services"][0]["stored_size"].as_u64().unwrap_or(0);
            eprintln!(
                "bench: {label}: controlplane backup {} -> {}, peak {}",
                secs(t),
                mib(stored),
                mib(peak)
            );
            Ok((
                t,
                stored,
                peak,
                v["id"].as_str().unwrap_or_default().to_owned(),
            ))
        };
        // Size 1, then size 2 (four times as large): memory must stay flat.
        let rows_small: u64 = size.pick(2_000, 1_000_000);
        fill("events_a", 1, rows_small)?;
        fill("events_b", 1, rows_small)?;
        psql("VACUUM ANALYZE")?;
        let small_db = db_size()?;
        let (_, _, peak_small, _) = take("small")?;
        let rows_big: u64 = size.pick(8_000, 3_200_000);
        fill("events_a", rows_small + 1, rows_big - rows_small)?;
        fill("events_b", rows_small + 1, rows_big - rows_small)?;
        psql("VACUUM ANALYZE")?;
        let big_db = db_size()?;
        let dump = |extra: &[&str], file: &std::path::Path| -> Result<(Duration, u64)> {
            let t = Instant::now();
            crate::run(
                Command::new(pg_bin("pg_dump"))
                    .args([
                        "-Fc",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &port,
                        "-U",
                        "anumate_backup",
                        "-d",
                        "anumate",
                        "-f",
                    ])
                    .arg(file)
                    .args(extra)
                    .env("PGPASSWORD", &backup_pw),
            )?;
            Ok((t.elapsed(), std::fs::metadata(file)?.len()))
        };
        let fc = base.join("dump.fc");
        let fc0 = base.join("dump0.fc");
        let (t_fc, s_fc) = dump(&[], &fc)?;
        let (t_fc0, s_fc0) = dump(&["-Z0"], &fc0)?;
        let (t_ours, s_ours, peak_big, id) = take("big")?;
        psql("DROP DATABASE IF EXISTS bench_restore WITH (FORCE)")
            .or_else(|_| Ok::<(), anyhow::Error>(()))?;
        crate::run(
            Command::new(pg_bin("psql"))
                .args([
                    "-X",
                    "-q",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-c",
                    "CREATE DATABASE bench_restore OWNER anumate_admin",
                ])
                .env("PGPASSWORD", &su)
                .stdout(std::process::Stdio::null()),
        )?;
        let t = Instant::now();
        crate::run(
            Command::new(pg_bin("pg_restore"))
                .args([
                    "-j",
                    "2",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port,
                    "-U",
                    "postgres",
                    "-d",
                    "bench_restore",
                ])
                .arg(&fc)
                .env("PGPASSWORD", &su),
        )?;
        let t_pgr = t.elapsed();
        let t = Instant::now();
        crate::run(
            cp(&["restore", &id, "--service", "postgres", "--yes"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        )?;
        let t_restore = t.elapsed();
        println!(
            "PostgreSQL backup and restore, {} rows in 2 tables with indexes",
            rows_big * 2
        );
        println!(
            "  database size                     {:>10}   (small run: {})",
            mib(big_db),
            mib(small_db)
        );
        println!(
            "  pg_dump -Fc (default compression) {:>10}  {:>10}",
            secs(t_fc),
            mib(s_fc)
        );
        println!(
            "  pg_dump -Fc -Z0 (floor)           {:>10}  {:>10}",
            secs(t_fc0),
            mib(s_fc0)
        );
        println!(
            "  controlplane backup (zstd 3)      {:>10}  {:>10}",
            secs(t_ours),
            mib(s_ours)
        );
        println!(
            "    time vs -Z0: {:.2}x (aim <= 1.3x); size vs -Fc: {:.2}x (aim <= 1.0x); time vs -Fc: {:.2}x",
            t_ours.as_secs_f64() / t_fc0.as_secs_f64(),
            s_ours as f64 / s_fc as f64,
            t_ours.as_secs_f64() / t_fc.as_secs_f64()
        );
        println!("  pg_restore -j 2 of the -Fc dump   {:>10}", secs(t_pgr));
        println!(
            "  controlplane restore (2 jobs)     {:>10}   ({:.2}x pg_restore -j 2; aim <= 1.0x; includes the digest check and the swap)",
            secs(t_restore),
            t_restore.as_secs_f64() / t_pgr.as_secs_f64()
        );
        println!(
            "  backup peak memory: {} at {} database, {} at {} ({:.2}x for {:.1}x the data)",
            mib(peak_small),
            mib(small_db),
            mib(peak_big),
            mib(big_db),
            peak_big as f64 / peak_small.max(1) as f64,
            big_db as f64 / small_db.max(1) as f64
        );
        if size == Size::Smoke {
            println!("{}", size.note());
        }
        Ok(())
    })();
    let _ = crate::run(cp(&["down", "--volumes", "--yes"]).stdout(std::process::Stdio::null()));
    let _ = std::fs::remove_dir_all(&base);
    result
}
