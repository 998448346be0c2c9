//! `cargo xtask bench serve`: the status endpoint of `controlplane serve` (answered
//! from the prober's cache) under a bounded loopback load, against a bare axum
//! hello-world in the same run, both release builds, each in its own process. A Rust
//! load generator keeps a few HTTP/1.1 keep-alive connections busy for a fixed number
//! of requests; it reports requests per second, their ratio, p50/p99 latency, and the
//! server's resident memory after start-up and after 10 000 requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench::Size;

const CONNECTIONS: usize = 4;
// However slow the machine, the run stops.
const TIME_CAP: Duration = Duration::from_secs(120);

/// The bare server: `xtask bench-hello ADDR`.
pub(crate) fn hello(addr: &str) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "hello" }));
        let l = tokio::net::TcpListener::bind(addr).await?;
        axum::serve(l, app).await
    })?;
    Ok(())
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(crate::ports::free_port())
}

fn rss_kib(pid: u32) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")
}

fn wait_healthy(addr: &str, path: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = TcpStream::connect(addr) {
            let _ = s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            );
            let mut b = String::new();
            let _ = s.read_to_string(&mut b);
            if b.starts_with("HTTP/1.1 200") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!("{addr}{path} did not answer 200 within 60s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One keep-alive connection sending `n` requests; the latency of each.
fn connection(addr: &str, request: &[u8], n: usize, until: Instant) -> Result<Vec<Duration>> {
    let s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut w = s.try_clone()?;
    let mut r = BufReader::new(s);
    let mut lat = Vec::with_capacity(n);
    let mut line = String::new();
    for _ in 0..n {
        if Instant::now() > until {
            break;
        }
        let t = Instant::now();
        w.write_all(request)?;
        let mut len = 0usize;
        line.clear();
        r.read_line(&mut line)?;
        if !line.starts_with("HTTP/1.1 200") {
            bail!("unexpected answer: {line}");
        }
        loop {
            line.clear();
            r.read_line(&mut line)?;
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse()?;
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body)?;
        lat.push(t.elapsed());
    }
    Ok(lat)
}

struct Run {
    rps: f64,
    p50: Duration,
    p99: Duration,
    n: usize,
}

fn load(addr: &str, path: &str, token: Option<&str>, requests: usize) -> Result<Run> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n{auth}\r\n").into_bytes();
    let until = Instant::now() + TIME_CAP;
    let started = Instant::now();
    let handles: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let addr = addr.to_owned();
            let req = req.clone();
            std::thread::spawn(move || connection(&addr, &req, requests / CONNECTIONS, until))
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().expect("a load thread")?);
    }
    let elapsed = started.elapsed();
    all.sort();
    let pick = |q: f64| all[((all.len() as f64 * q).ceil() as usize).clamp(1, all.len()) - 1];
    Ok(Run {
        rps: all.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.50),
        p99: pick(0.99),
        n: all.len(),
    })
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn release_bin(name: &str) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| crate::project_root().join("target"), PathBuf::from)
        .join("release")
        .join(name)
}

pub(crate) fn run(size: Size) -> Result<()> {
    // The bare floor is this xtask's own `bench-hello`: built with the same profile as
    // the controlplane binary it is compared with.
    let (bin, xtask) = match size {
        Size::Full => {
            eprintln!("xtask: building controlplane and xtask (release)");
            crate::run(
                Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).args([
                    "build",
                    "--release",
                    "--quiet",
                    "-p",
                    "controlplane",
                    "-p",
                    "xtask",
                ]),
            )?;
            (release_bin("controlplane"), release_bin("xtask"))
        }
        Size::Smoke => (size.controlplane()?, std::env::current_exe()?),
    };
    let tmp = std::env::temp_dir().join(format!("cp-bench-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let result = measure(&bin, &xtask, &tmp, size);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn measure(bin: &Path, xtask: &Path, tmp: &Path, size: Size) -> Result<()> {
    let requests = size.pick(400, 20_000);
    let root = crate::project_root();
    let server_dir = tmp.join("server");
    let out = Command::new(bin)
        .args([
            "token",
            "create",
            "--role",
            "viewer",
            "--name",
            "bench",
            "--server-dir",
        ])
        .arg(&server_dir)
        .output()?;
    if !out.status.success() {
        bail!("token create: {}", String::from_utf8_lossy(&out.stderr));
    }
    let token = String::from_utf8(out.stdout)?.trim().to_owned();

    // The bare floor.
    let hello_addr = format!("127.0.0.1:{}", free_port()?);
    let _hello = Proc(
        Command::new(xtask)
            .args(["bench-hello", &hello_addr])
            .stdout(Stdio::null())
            .spawn()?,
    );
    wait_healthy(&hello_addr, "/")?;

    // The server, for dev with nothing running on free ports: the status cache holds
    // what the prober saw (every service missing), which is what the endpoint serves.
    let addr = format!("127.0.0.1:{}", free_port()?);
    let mut cmd = Command::new(bin);
    cmd.current_dir(&root)
        .args(["--env", "dev", "--state-dir"])
        .arg(tmp.join("dev"))
        .args(["--set", "platform=process"]);
    // Distinct, below the ephemeral range.
    let ports = crate::ports::free_ports(6);
    for (k, p) in [
        "services.postgres.port",
        "services.redis.port",
        "services.nats.port",
        "services.nats.monitor_port",
        "services.vault.port",
        "services.vault.cluster_port",
    ]
    .iter()
    .zip(&ports)
    {
        cmd.args(["--set", &format!("{k}={p}")]);
    }
    cmd.args(["serve", "--only", "dev", "--listen", &addr, "--server-dir"])
        .arg(&server_dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let server = Proc(cmd.spawn()?);
    let pid = server.0.id();
    wait_healthy(&addr, "/healthz")?;
    let path = "/api/v1/environments/dev/services";
    // The first probe fills the cache.
    load(&addr, path, Some(&token), CONNECTIONS).map(drop).ok();
    std::thread::sleep(Duration::from_secs(1));
    let rss_start = rss_kib(pid)?;

    let bare = load(&hello_addr, "/", None, requests)?;
    let ours = load(&addr, path, Some(&token), requests)?;
    std::thread::sleep(Duration::from_secs(1));
    let rss_after = rss_kib(pid)?;
    let served = ours.n + 1;

    println!(
        "bench serve: {CONNECTIONS} keep-alive connections, {requests} requests each target, loopback{}",
        size.note()
    );
    println!(
        "  bare axum hello-world:        {:>9.0} req/s   p50 {}   p99 {}",
        bare.rps,
        ms(bare.p50),
        ms(bare.p99)
    );
    println!(
        "  GET {path} (cache): {:>9.0} req/s   p50 {}   p99 {}",
        ours.rps,
        ms(ours.p50),
        ms(ours.p99)
    );
    println!(
        "  ratio controlplane/bare: {:.2} (aim: at least 0.5); p99 {} (aim: under 5 ms)",
        ours.rps / bare.rps,
        ms(ours.p99)
    );
    println!(
        "  controlplane serve RSS: {:.1} MB after start-up, {:.1} MB after {served} requests (aim: under 40 MB)",
        rss_start as f64 / 1024.0,
        rss_after as f64 / 1024.0
    );
    drop(server);
    Ok(())
}
