//! The shared test harness: the shipped `dev` environment brought up by the process
//! driver with real PostgreSQL, Redis, NATS and OpenBao servers on random free loopback
//! ports and a temporary state directory, driven through the engine like the CLI does,
//! and torn down (data included) when dropped, even when the test fails. Tests that
//! cannot start the servers fail loudly, naming what to install. [`promcheck`] judges
//! alert and recording rules against a real Prometheus.
//!
//! Every test helper that more than one test file needs lives here: the repository
//! root ([`repo_root`]), free ports below the ephemeral range ([`free_ports`]), the
//! cleanup guard ([`Down`]), golden files and their one refresh switch
//! ([`golden`], `CP_BLESS=1`), a missing tool ([`require_tool`]), an S3 server on loopback ([`moto`]), and a test binary
//! started again as a child ([`rerun_as_child`]), a scratch copy of the project and a
//! snapshot of a tree ([`project`]).

mod down;
mod golden;
mod moto;
pub mod ports;
pub mod project;
pub mod promcheck;

pub use down::{Down, processes_in};
pub use golden::{BLESS, bless_hint, blessing, diff, golden};
pub use moto::{Moto, moto};
pub use ports::{band, ephemeral_range, free_port, free_port_block, free_ports};

use std::path::{Path, PathBuf};
use std::time::Duration;

use cp_core::Environment;
use cp_core::names::{CoreKind, ServiceName};
use cp_core::plan::Plan;
use cp_driver_process::ProcessDriver;
use cp_drivers::DriverError;
use cp_drivers::contract::{Context, Driver, ServiceStatus};
use cp_drivers::engine::{self, Quiet, UpReport};
use cp_runtime::project::Project;
use cp_runtime::secrets::{Secret, SecretResolver};
use cp_runtime::state::StateDir;

/// The engine's deadline in these tests: generous for two busy cores; failures that
/// should be fast are asserted to be much faster.
pub const UP_TIMEOUT: Duration = Duration::from_secs(90);

/// The repository root (where `Cargo.toml`, `environments/` and `rendered/` are).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// The shipped environment files (`environments/`).
pub fn environments_dir() -> PathBuf {
    repo_root().join("environments")
}

/// The path of an external tool a test runs as its judge; fails the test, saying how
/// to install it, when it is missing. Never a skip: a check that did not run must not
/// show as passed.
pub fn require_tool(name: &str) -> PathBuf {
    cp_runtime::exec::find_binary(name).unwrap_or_else(|e| {
        panic!(
            "this test needs `{name}`: {e}
(`cargo xtask test` installs every tool the tests use)"
        )
    })
}

/// `--set` overrides moving every core service to a free port, with the monitoring
/// stack off (it would listen on its fixed ports; [`monitoring_port_sets`] puts it on
/// free ports too).
pub fn port_sets() -> Vec<String> {
    let mut sets = core_port_sets(&free_ports(6));
    sets.push("monitoring.enabled=false".into());
    sets
}

fn core_port_sets(p: &[u16]) -> Vec<String> {
    vec![
        format!("services.postgres.port={}", p[0]),
        format!("services.redis.port={}", p[1]),
        format!("services.nats.port={}", p[2]),
        format!("services.nats.monitor_port={}", p[3]),
        format!("services.vault.port={}", p[4]),
        format!("services.vault.cluster_port={}", p[5]),
    ]
}

/// `--set` overrides moving every core service and every part of the monitoring
/// stack to a free port (all chosen together, so distinct), with `controlplane
/// serve`'s scrape target off (a test that runs serve sets
/// `monitoring.controlplane.port`).
pub fn monitoring_port_sets() -> Vec<String> {
    let p = free_ports(13);
    let mut sets = core_port_sets(&p[..6]);
    sets.extend([
        "monitoring.enabled=true".into(),
        format!("monitoring.prometheus.port={}", p[6]),
        format!("monitoring.alertmanager.port={}", p[7]),
        format!("monitoring.grafana.port={}", p[8]),
        format!("monitoring.postgres_exporter.port={}", p[9]),
        format!("monitoring.redis_exporter.port={}", p[10]),
        format!("monitoring.nats_exporter.port={}", p[11]),
        format!("monitoring.node_exporter.port={}", p[12]),
        "monitoring.controlplane.enabled=false".into(),
    ]);
    sets
}

/// The project's templates (for the process driver's monitoring configuration).
pub fn templates() -> cp_core::render::Templates {
    Project::new(environments_dir())
        .templates()
        .expect("the repository's templates are readable")
}

/// Loads the shipped `dev` environment with `sets`.
pub fn load_dev(sets: &[String]) -> Environment {
    match Project::new(environments_dir()).load("dev", sets) {
        Ok(l) => l.env,
        Err(e) => panic!("environments/dev.yaml with {sets:?} does not load:\n{e}"),
    }
}

/// Fails loudly, naming what to install, when a service binary is missing.
pub fn require_binaries(driver: &ProcessDriver, env: &Environment) {
    let missing = driver.missing_binaries(env);
    assert!(
        missing.is_empty(),
        "these tests run the real servers; install what is missing:\n{}",
        missing
            .iter()
            .map(|(s, e)| format!("  {s}: {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `--set` overrides that leave only `kinds` of the core services enabled (and
/// nothing that needs the others).
pub fn only(kinds: &[CoreKind]) -> Vec<String> {
    let mut sets: Vec<String> = CoreKind::ALL
        .iter()
        .filter(|k| !kinds.contains(k))
        .map(|k| format!("services.{k}.enabled=false"))
        .collect();
    sets.extend(
        [
            "apps.capsule-registry.enabled=false",
            "monitoring.enabled=false",
            "backup.enabled=false",
        ]
        .map(String::from),
    );
    sets
}

/// One environment under test.
pub struct TestEnv {
    pub tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub env: Environment,
    pub driver: ProcessDriver,
    pub state: StateDir,
    pub secrets: SecretResolver,
    pub sets: Vec<String>,
}

impl TestEnv {
    /// The dev environment on free ports, plus `extra` overrides.
    pub fn new(extra: &[&str]) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("cp-process-")
            .tempdir()
            .expect("temp dir");
        let root = tmp.path().join("dev");
        Self::at(tmp, root, extra)
    }

    /// Only `kinds` of the core services, plus `extra` overrides.
    pub fn only(kinds: &[CoreKind], extra: &[&str]) -> Self {
        let mut sets = only(kinds);
        sets.extend(extra.iter().map(|s| (*s).to_owned()));
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        Self::new(&sets)
    }

    /// Like [`TestEnv::new`], without failing when a binary is missing (to test
    /// exactly that).
    pub fn new_unchecked(extra: &[&str]) -> Self {
        let tmp = tempfile::Builder::new()
            .prefix("cp-process-")
            .tempdir()
            .expect("temp dir");
        let root = tmp.path().join("dev");
        Self::build(tmp, root, extra, false)
    }

    /// The dev environment with its state in `root` (under `tmp`).
    pub fn at(tmp: tempfile::TempDir, root: PathBuf, extra: &[&str]) -> Self {
        Self::build(tmp, root, extra, true)
    }

    fn build(tmp: tempfile::TempDir, root: PathBuf, extra: &[&str], check: bool) -> Self {
        // The state directory's parent must be enterable by `postgres` when the
        // tests run as root (tempfile makes it 0700).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut sets = port_sets();
        sets.extend(extra.iter().map(|s| (*s).to_owned()));
        let env = load_dev(&sets);
        let driver = ProcessDriver::new(&root)
            .with_stop_grace(Duration::from_secs(10))
            .with_templates(&templates())
            .expect("the templates load");
        if check {
            require_binaries(&driver, &env);
        }
        let state = StateDir::open(&root, "dev").expect("state dir");
        let secrets = SecretResolver::new(Some(state.clone()));
        Self {
            tmp,
            root,
            env,
            driver,
            state,
            secrets,
            sets,
        }
    }

    pub fn cx(&self) -> Context<'_> {
        Context {
            env: &self.env,
            secrets: &self.secrets,
            state: &self.state,
        }
    }

    pub async fn up(&self) -> Result<UpReport, DriverError> {
        engine::up(&self.driver, self.cx(), &[], UP_TIMEOUT, &Quiet).await
    }

    pub async fn plan(&self) -> Plan {
        engine::plan(&self.driver, &self.env).await.expect("plan")
    }

    pub async fn status(&self) -> Vec<ServiceStatus> {
        self.driver.status(self.cx()).await.expect("status")
    }

    pub async fn down(&self, volumes: bool) -> Vec<String> {
        self.driver
            .teardown(self.cx(), volumes)
            .await
            .expect("down")
    }

    /// The value of the secret at `setting` (e.g. `services.postgres.app_password`).
    pub async fn secret(&self, setting: &str) -> Secret {
        let s = &self.env.services;
        let pg = || s.postgres.as_ref().expect("postgres enabled");
        let redis = || s.redis.as_ref().expect("redis enabled");
        let nats = || s.nats.as_ref().expect("nats enabled");
        let r = match setting {
            "services.postgres.superuser_password" => &pg().superuser_password,
            "services.postgres.admin_password" => &pg().admin_password,
            "services.postgres.app_password" => &pg().app_password,
            "services.postgres.readonly_password" => &pg().readonly_password,
            "services.postgres.backup_password" => &pg().backup_password,
            "services.redis.admin_password" => &redis().admin_password,
            "services.redis.app_password" => &redis().app_password,
            "services.nats.admin_password" => &nats().admin_password,
            "services.nats.app_password" => &nats().app_password,
            other => panic!("no such secret in the tests: {other}"),
        };
        self.secrets.resolve(setting, r).await.unwrap()
    }

    /// Endpoints and credentials of every enabled service, resolved as the CLI does.
    pub async fn access(&self) -> cp_runtime::access::Access {
        cp_runtime::access::Access::resolve(
            &self.env,
            |k| self.driver.endpoint(&self.env, &ServiceName::core(k)),
            &self.secrets,
            &self.state,
            "vault",
        )
        .await
        .expect("resolve access")
    }

    /// The Vault root token kept for dev (after `up`).
    pub async fn vault_root_token(&self) -> Secret {
        let v = self.env.services.vault.as_ref().expect("vault enabled");
        cp_runtime::vault::root_token(v, &self.secrets, &self.state, "vault")
            .await
            .expect("read the vault root token")
            .expect("up keeps a root token for dev")
    }

    /// `http://127.0.0.1:<port>` of the Vault server.
    pub fn vault_addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port(CoreKind::Vault))
    }

    pub fn port(&self, kind: CoreKind) -> u16 {
        self.driver
            .endpoint(&self.env, &ServiceName::core(kind))
            .expect("enabled")
            .port
    }

    /// The recorded pid of a service (from `process.json`, as a person would read it).
    pub fn recorded_pid(&self, kind: CoreKind) -> Option<u32> {
        let bytes = std::fs::read(self.root.join(kind.as_str()).join("process.json")).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
        v["pid"].as_u64().map(|p| p as u32)
    }

    /// Processes (pid, command line) working in the state directory.
    pub fn our_processes(&self) -> Vec<(u32, String)> {
        processes_in(&self.root)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Tear down from a fresh runtime on another thread: this may run while a
        // test's runtime is unwinding.
        let driver = self.driver.clone();
        let env = self.env.clone();
        let state = self.state.clone();
        let r = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let secrets = SecretResolver::new(Some(state.clone()));
            rt.block_on(driver.teardown(
                Context {
                    env: &env,
                    secrets: &secrets,
                    state: &state,
                },
                true,
            ))
        })
        .join();
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => eprintln!("cleanup of {} failed: {e}", self.root.display()),
            Err(_) => eprintln!("cleanup of {} panicked", self.root.display()),
        }
        // Like every `Down`: whatever still works in the state directory (a failed
        // teardown, a child's server) is killed by pid.
        Down::processes_in(&self.root).now();
    }
}

/// Set in a test binary started again by [`rerun_as_child`]: the name of the test
/// whose child side runs.
pub const CHILD: &str = "CP_TEST_CHILD";

/// Variables that tell a child started by [`spawn_child_up`] where to run `up`.
pub const CHILD_STATE: &str = "CP_PROCESS_TEST_CHILD_STATE";
pub const CHILD_SETS: &str = "CP_PROCESS_TEST_CHILD_SETS";

/// Starts this test binary again running only `test`, the calling test itself, with
/// [`CHILD`] set: the test's first line hands over to its child side
/// (`if cp_testkit::is_child() { ...; return; }`). The child side is thus no test of
/// its own, so nothing that asserts nothing shows as passed.
pub fn rerun_as_child(test: &str) -> std::process::Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = cp_runtime::exec::command(&exe);
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, test)
        .stdin(std::process::Stdio::null());
    cmd
}

/// Whether this process is a child started by [`rerun_as_child`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Starts this test binary again as a child that runs `up` on `t`'s state directory
/// and environment (the child side is [`child_up_main`]), with extra variables;
/// `test` is the calling test's name.
pub fn spawn_child_up(t: &TestEnv, test: &str, vars: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = rerun_as_child(test);
    cmd.env(CHILD_STATE, &t.root)
        .env(CHILD_SETS, t.sets.join("\n"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.spawn().expect("start the test binary as a child")
}

/// The child's side of [`spawn_child_up`]: `up` like the CLI, then exit (the servers
/// stay up). Returns false, doing nothing, when this process is not such a child.
pub async fn child_up_main() -> bool {
    if !is_child() {
        return false;
    }
    let (Ok(root), Ok(sets)) = (std::env::var(CHILD_STATE), std::env::var(CHILD_SETS)) else {
        panic!("a child started by spawn_child_up has {CHILD_STATE} and {CHILD_SETS} set");
    };
    let sets: Vec<String> = sets.lines().map(str::to_owned).collect();
    let env = load_dev(&sets);
    let driver = ProcessDriver::new(&root)
        .with_templates(&templates())
        .expect("the templates load");
    let state = StateDir::open(&root, "dev").expect("state dir");
    let secrets = SecretResolver::new(Some(state.clone()));
    let cx = Context {
        env: &env,
        secrets: &secrets,
        state: &state,
    };
    match engine::up(&driver, cx, &[], UP_TIMEOUT, &Quiet).await {
        Ok(r) => println!("child up: ready {:?}", r.ready.keys().collect::<Vec<_>>()),
        Err(e) => panic!("child up failed: {e}"),
    }
    true
}
