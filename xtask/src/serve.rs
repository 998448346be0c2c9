//! `cargo xtask up` ends by serving the console for dev: `controlplane serve` runs in
//! the background, detached (its own session, output to `.controlplane/server/serve.log`),
//! its pid in `.controlplane/server/serve.pid` so `cargo xtask down` stops exactly that
//! process. A fresh admin token (`dev-admin`) is printed with the URL.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Where the dev server's files go.
fn dir(root: &Path) -> PathBuf {
    root.join(".controlplane/server")
}

/// The listen address of the dev console.
pub(crate) const DEV_LISTEN: &str = "127.0.0.1:7700";

fn alive_serve(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            c.contains("controlplane") && c.contains(" serve")
        })
        .unwrap_or(false)
}

/// Stops the background server recorded in the pid file, if it runs.
pub(crate) fn stop(root: &Path) -> Result<()> {
    let pid_file = dir(root).join("serve.pid");
    let Ok(text) = std::fs::read_to_string(&pid_file) else {
        return Ok(());
    };
    let _ = std::fs::remove_file(&pid_file);
    let Ok(pid) = text.trim().parse::<u32>() else {
        return Ok(());
    };
    if !alive_serve(pid) {
        return Ok(());
    }
    eprintln!("xtask: stopping controlplane serve (pid {pid})");
    crate::run(Command::new("kill").args(["-TERM", &pid.to_string()]))?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while alive_serve(pid) {
        if Instant::now() > deadline {
            bail!("controlplane serve (pid {pid}) did not stop within 15s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Starts `controlplane serve` for dev in the background and prints the URL and an
/// admin token.
pub(crate) fn start(bin: &Path, root: &Path) -> Result<()> {
    stop(root)?;
    let d = dir(root);
    // The server's directory holds its tokens and audit log: 0700 from creation (its
    // parent as the umask has it: a service user may have to pass through).
    if let Some(parent) = d.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&d)
        .with_context(|| format!("creating {}", d.display()))?;
    // A fresh admin token for this run (the old one, if any, is revoked).
    let _ = Command::new(bin)
        .args(["token", "revoke", "dev-admin"])
        .stderr(Stdio::null())
        .status();
    let out = Command::new(bin)
        .args(["token", "create", "--role", "admin", "--name", "dev-admin"])
        .stderr(Stdio::inherit())
        .output()
        .context("creating the dev admin token")?;
    if !out.status.success() {
        bail!("controlplane token create failed");
    }
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let private = |name: &str| {
        std::os::unix::fs::OpenOptionsExt::mode(
            std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true),
            0o600,
        )
        .open(d.join(name))
        .with_context(|| format!("creating {name}"))
    };
    let log = private("serve.log")?;
    let mut cmd = Command::new(bin);
    cmd.args([
        "--env", "dev", "serve", "--only", "dev", "--listen", DEV_LISTEN,
    ])
    .stdin(Stdio::null())
    .stdout(log.try_clone()?)
    .stderr(log);
    // Its own process group, so the terminal's Ctrl-C does not reach it.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd.spawn().context("starting controlplane serve")?;
    let pid = child.id();
    std::io::Write::write_all(&mut private("serve.pid")?, format!("{pid}\n").as_bytes())
        .context("writing serve.pid")?;
    // Ready when /healthz answers (bounded).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if healthz(DEV_LISTEN) {
            break;
        }
        // Whether it exited, from the child itself: right after the spawn its
        // /proc cmdline can still be ours (before exec), which is no sign of death.
        let exited = child.try_wait().ok().flatten().is_some();
        if exited || Instant::now() > deadline {
            bail!(
                "controlplane serve did not answer on {DEV_LISTEN}; see {}",
                d.join("serve.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("console:  http://{DEV_LISTEN}/console   (log in with the token below)");
    println!("token:    {token}   (admin; `controlplane token list|revoke` manage tokens)");
    println!(
        "api:      curl -H 'Authorization: Bearer <token>' http://{DEV_LISTEN}/api/v1/environments"
    );
    println!(
        "serving:  pid {pid}, log {}; `cargo xtask down` stops it",
        d.join("serve.log").display()
    );
    Ok(())
}

/// One `GET /healthz` over a plain TCP connection.
pub(crate) fn healthz(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200")
}
