//! The docker driver against the real local Docker Engine and the local images of
//! `cargo xtask images` (built here on first use by the same code): the shipped dev
//! environment with images pointed at the local tags, random free ports, and a
//! project name of its own per test, cleaned up by a guard even when a test fails.

// Tests run the binaries they judge (ours, kubectl, promtool) by path on purpose.
#![allow(clippy::disallowed_methods)]

#[path = "../../../xtask/src/images.rs"]
#[allow(unreachable_pub, dead_code)]
mod images;

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cp_core::Environment;
use cp_core::names::ServiceName;
use cp_core::units::SecretRef;
use cp_driver_docker::{DockerDriver, VAULT_KEYS_DIR, docker_usable_at};
use cp_drivers::engine::{self, Quiet};
use cp_drivers::{Context, Driver, DriverError, Health, ServiceState};
use cp_runtime::project::Project;
use cp_runtime::resp;
use cp_runtime::secrets::{Secret, SecretResolver};
use cp_runtime::state::StateDir;
use sqlx::Connection;

const UP_TIMEOUT: Duration = Duration::from_secs(120);

/// Builds (once per machine) or finds the local images; panics loudly without Docker.
fn local_images() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        images::ensure(false)
            .map(drop)
            .map_err(|e| format!("{e:#}"))
    });
    if let Err(e) = r {
        panic!("the docker driver's tests need Docker and the local images: {e}");
    }
}

/// An error with its sources, for failure messages.
fn chain(e: &dyn std::error::Error) -> String {
    cp_runtime::error::chain(e)
}

fn svc(s: &str) -> ServiceName {
    ServiceName::new(s).unwrap()
}

/// One test's environment, driver and state; removes everything labelled with its
/// project when dropped, whatever happened.
struct Fixture {
    project: String,
    env: Environment,
    driver: DockerDriver,
    state: StateDir,
    secrets: SecretResolver,
    ports: HashMap<&'static str, u16>,
    _tmp: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let label = format!("label={}={}", cp_driver_docker::LABEL_PROJECT, self.project);
        let list = |args: &[&str]| -> Vec<String> {
            Command::new("docker")
                .args(args)
                .args(["--filter", &label, "-q"])
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        for (ls, rm) in [
            (&["ps", "-a"][..], &["rm", "-f", "-v"][..]),
            (&["network", "ls"][..], &["network", "rm"][..]),
            (&["volume", "ls"][..], &["volume", "rm", "-f"][..]),
        ] {
            let ids = list(ls);
            if !ids.is_empty() {
                let _ = Command::new("docker").args(rm).args(&ids).output();
            }
        }
    }
}

impl Fixture {
    /// The dev environment as project `cpt-<name>-<pid>`, on local images and free
    /// ports, with apps, Jaeger and monitoring off (their images do not exist here),
    /// plus `extra` sets.
    async fn new(
        name: &str,
        extra: impl FnOnce(&HashMap<&'static str, u16>) -> Vec<String>,
    ) -> Self {
        local_images();
        let project = format!("cpt-{name}-{}", std::process::id());
        let p = cp_testkit::free_ports(8);
        let ports: HashMap<&'static str, u16> = [
            "postgres",
            "redis",
            "nats",
            "nats-monitor",
            "vault",
            "vault-cluster",
            "x-client",
            "x-monitor",
        ]
        .into_iter()
        .zip(p)
        .collect();
        let mut sets: Vec<String> = vec![
            format!("project={project}"),
            "platform=docker".into(),
            format!("services.postgres.image={}", images::tag("postgres")),
            format!("services.postgres.port={}", ports["postgres"]),
            format!("services.redis.image={}", images::tag("redis")),
            format!("services.redis.port={}", ports["redis"]),
            format!("services.nats.image={}", images::tag("nats")),
            format!("services.nats.port={}", ports["nats"]),
            format!("services.nats.monitor_port={}", ports["nats-monitor"]),
            format!("services.vault.image={}", images::tag("vault")),
            format!("services.vault.port={}", ports["vault"]),
            format!("services.vault.cluster_port={}", ports["vault-cluster"]),
            "apps.capsule-registry.enabled=false".into(),
            "extras.jaeger.enabled=false".into(),
            "extras.kong.enabled=false".into(),
            "extras.rabbitmq.enabled=false".into(),
            "extras.loki.enabled=false".into(),
            "monitoring.enabled=false".into(),
        ];
        sets.extend(extra(&ports));
        let env = Project::new(cp_testkit::environments_dir())
            .load("dev", &sets)
            .unwrap_or_else(|e| panic!("dev does not load: {e:?}"))
            .env;
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path().join("dev"), "dev").unwrap();
        let secrets = SecretResolver::new(Some(state.clone()));
        let driver = DockerDriver::connect()
            .await
            .expect("the local engine answers");
        Self {
            project,
            env,
            driver,
            state,
            secrets,
            ports,
            _tmp: tmp,
        }
    }

    fn cx(&self) -> Context<'_> {
        Context {
            env: &self.env,
            secrets: &self.secrets,
            state: &self.state,
        }
    }

    async fn up(&self, services: &[ServiceName]) -> Result<engine::UpReport, DriverError> {
        engine::up(&self.driver, self.cx(), services, UP_TIMEOUT, &Quiet).await
    }

    async fn secret(&self, setting: &str) -> Secret {
        self.secrets
            .resolve(setting, &SecretRef::Generate)
            .await
            .unwrap()
    }

    fn container(&self, service: &str) -> String {
        format!("{}-dev-{service}", self.project)
    }

    fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("docker").args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Names of this project's containers (`ps -a`), networks or volumes (`... ls`).
    fn labelled(&self, what: &[&str]) -> Vec<String> {
        let label = format!("label={}={}", cp_driver_docker::LABEL_PROJECT, self.project);
        let format = if what[0] == "ps" {
            "{{.Names}}"
        } else {
            "{{.Name}}"
        };
        let mut args = what.to_vec();
        args.extend(["--filter", &label, "--format", format]);
        self.docker(&args)
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }
}

/// The generic extra `x`: the local image's NATS server, declared only through
/// settings (command, args, ports, env, a secret, a volume, an HTTP health check).
fn extra_x(client: u16, monitor: u16) -> Vec<String> {
    vec![
        format!("extras.x.image={}", images::tag("nats")),
        "extras.x.command=[/nats-server]".into(),
        format!("extras.x.args=[-p, '{client}', -m, '{monitor}', --store_dir, /data, --jetstream]"),
        format!("extras.x.ports.client={client}"),
        format!("extras.x.ports.monitor={monitor}"),
        "extras.x.health.http=monitor/healthz".into(),
        "extras.x.env.GREETING=hello".into(),
        "extras.x.secrets.TOKEN=generate".into(),
        "extras.x.volumes.data=/data".into(),
    ]
}

async fn check_postgres(f: &Fixture, create: bool) {
    let pw = f.secret("services.postgres.superuser_password").await;
    let url = format!(
        "postgres://postgres:{}@127.0.0.1:{}/postgres",
        pw.expose(),
        f.ports["postgres"]
    );
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    if create {
        sqlx::query("CREATE TABLE kept (v text)")
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO kept VALUES ('across restarts')")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let v: String = sqlx::query_scalar("SELECT v FROM kept")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, "across restarts");
    let listen: String = sqlx::query_scalar("SHOW listen_addresses")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(listen, "0.0.0.0", "our postgresql.conf is included");
}

async fn check_redis(f: &Fixture) {
    let addr = format!("127.0.0.1:{}", f.ports["redis"]);
    let mut anon = resp::Connection::connect(&addr).await.unwrap();
    assert!(
        anon.command(&["PING"]).await.is_err(),
        "the default user is off"
    );
    let pw = f.secret("services.redis.admin_password").await;
    let mut c = resp::Connection::connect(&addr).await.unwrap();
    c.command(&["AUTH", "admin", pw.expose()]).await.unwrap();
    assert_eq!(
        c.command(&["PING"]).await.unwrap(),
        resp::Reply::Simple("PONG".into())
    );
    c.command(&["SET", "k", "v"]).await.unwrap();
    assert_eq!(
        c.command(&["GET", "k"]).await.unwrap().text().as_deref(),
        Some("v")
    );
    // The ACL file holds the admin's password hash: Redis's own, 0600, from the
    // first start (not only after an `ACL SAVE` rewrote it).
    assert_eq!(
        f.docker(&[
            "exec",
            &f.container("redis"),
            "stat",
            "-c",
            "%a %U",
            "/data/users.acl"
        ])
        .trim(),
        "600 redis"
    );
}

async fn check_nats(f: &Fixture) {
    let pw = f.secret("services.nats.admin_password").await;
    let client = async_nats::ConnectOptions::new()
        .user_and_password("admin".into(), pw.expose().into())
        .connect(format!("127.0.0.1:{}", f.ports["nats"]))
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "DOCKER_TEST".into(),
        subjects: vec!["dockertest.>".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    let ack = js
        .publish("dockertest.hello", "hi".into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(ack.stream, "DOCKER_TEST");
}

async fn check_vault(f: &Fixture) {
    let vault = f.env.services.vault.as_ref().unwrap();
    let token = cp_runtime::vault::root_token(vault, &f.secrets, &f.state, VAULT_KEYS_DIR)
        .await
        .unwrap()
        .expect("dev keeps the root token");
    // The shared client retries the moment a fresh KV v2 mount upgrades its storage.
    let c = cp_runtime::vault::Client::with_token(
        &format!("http://127.0.0.1:{}", f.ports["vault"]),
        token,
    );
    c.write(
        "sys/mounts/kvtest",
        &serde_json::json!({"type": "kv", "options": {"version": "2"}}),
    )
    .await
    .unwrap();
    c.write(
        "kvtest/data/hello",
        &serde_json::json!({"data": {"greeting": "hi"}}),
    )
    .await
    .unwrap();
    let v = c.read("kvtest/data/hello").await.unwrap().unwrap();
    assert_eq!(v["data"]["data"]["greeting"], "hi");
}

/// Seeding works against the containers as it does against processes (the same
/// code, reaching them through the driver's endpoints and its Vault keys folder), and
/// a second run changes nothing.
async fn check_seed(f: &Fixture) {
    let access = cp_seed::Access::resolve(
        &f.env,
        |k| f.driver.endpoint(&f.env, &ServiceName::core(k)),
        &f.secrets,
        &f.state,
        f.driver.vault_keys_dir(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let first = cp_seed::seed_all(&access, &f.env)
        .await
        .unwrap_or_else(|e| panic!("seeding the containers: {e}"));
    assert!(first.changed());
    let services: Vec<&str> = first.reports.iter().map(|r| r.service).collect();
    assert_eq!(
        services,
        ["postgres", "nats", "redis", "vault", "tenants", "events"]
    );
    let second = cp_seed::seed_all(&access, &f.env).await.unwrap();
    assert!(!second.changed(), "{:?}", second.reports);
}

async fn check_extra(f: &Fixture) {
    let url = format!("http://127.0.0.1:{}/healthz", f.ports["x-monitor"]);
    let r = reqwest::get(&url).await.unwrap();
    assert!(r.status().is_success(), "{url}: {}", r.status());
    let env = f.docker(&[
        "inspect",
        "--format",
        "{{range .Config.Env}}{{println .}}{{end}}",
        &f.container("x"),
    ]);
    assert!(env.lines().any(|l| l == "GREETING=hello"), "{env}");
    let token = f.secret("extras.x.secrets.TOKEN").await;
    assert!(
        env.lines()
            .any(|l| l == format!("TOKEN={}", token.expose()))
    );
}

/// Every port of the fixture can be bound again.
fn assert_ports_free(f: &Fixture) {
    for (name, port) in &f.ports {
        assert!(
            TcpListener::bind(("127.0.0.1", *port)).is_ok(),
            "port {port} ({name}) is still taken"
        );
    }
}

#[tokio::test]
async fn dev_up_serves_everything_then_restarts_is_idempotent_and_tears_down() {
    let f = Fixture::new("life", |p| extra_x(p["x-client"], p["x-monitor"])).await;

    // Cold up: network, volumes, containers; each service answers a real request.
    let plan = engine::plan(&f.driver, &f.env).await.unwrap();
    assert_eq!(plan.counts().0, 1 + 5 + 5, "{plan}");
    let t = Instant::now();
    let report = f.up(&[]).await.unwrap_or_else(|e| panic!("{}", chain(&e)));
    let cold = t.elapsed();
    assert_eq!(
        report
            .ready
            .keys()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["nats", "postgres", "redis", "vault", "x"]
    );
    assert!(report.ready[&svc("postgres")].starts_with("15."));
    assert!(report.ready[&svc("redis")].starts_with("7.0"));
    assert!(report.ready[&svc("nats")].starts_with("2.9"));
    assert!(report.ready[&svc("vault")].contains("2.7"));
    check_postgres(&f, true).await;
    check_redis(&f).await;
    check_nats(&f).await;
    check_vault(&f).await;
    check_extra(&f).await;
    check_seed(&f).await;

    // Published on loopback only, restarted unless stopped, labelled with references.
    let pg = f.container("postgres");
    assert_eq!(
        f.docker(&[
            "inspect",
            "--format",
            "{{json .HostConfig.PortBindings}}",
            &pg
        ]),
        format!(
            "{{\"{0}/tcp\":[{{\"HostIp\":\"127.0.0.1\",\"HostPort\":\"{0}\"}}]}}",
            f.ports["postgres"]
        )
    );
    assert_eq!(
        f.docker(&[
            "inspect",
            "--format",
            "{{.HostConfig.RestartPolicy.Name}}",
            &pg
        ]),
        "unless-stopped"
    );
    let secrets_file = std::fs::read_to_string(f.state.join("secrets.json")).unwrap();
    let generated: HashMap<String, String> = serde_json::from_str(&secrets_file).unwrap();
    for c in f.labelled(&["ps", "-a"]) {
        let labels = f.docker(&["inspect", "--format", "{{json .Config.Labels}}", &c]);
        for (name, value) in &generated {
            assert!(!labels.contains(value), "{c}'s labels hold {name}");
        }
    }
    let status = f.driver.status(f.cx()).await.unwrap();
    for s in &status {
        assert_eq!(s.state, ServiceState::Running, "{s:?}");
        assert_eq!(s.health, Health::Healthy, "{s:?}");
        assert!(s.version.is_some() && s.id.is_some() && s.endpoint.is_some());
    }

    // A second up changes nothing, and is fast.
    let t = Instant::now();
    let again = f.up(&[]).await.unwrap();
    let noop = t.elapsed();
    assert!(again.plan.is_empty(), "{}", again.plan);
    assert!(engine::plan(&f.driver, &f.env).await.unwrap().is_empty());
    assert!(noop < Duration::from_secs(5), "no-op up took {noop:?}");

    // A killed container is reported down, and up brings it back.
    f.docker(&["kill", &f.container("redis")]);
    let status = f.driver.status(f.cx()).await.unwrap();
    let redis = status.iter().find(|s| s.service == svc("redis")).unwrap();
    assert!(
        matches!(&redis.state, ServiceState::Stopped(why) if why.contains("137")),
        "{redis:?}"
    );
    let plan = engine::plan(&f.driver, &f.env).await.unwrap();
    assert_eq!(plan.counts(), (0, 0, 0, 1, 0), "{plan}");
    f.up(&[]).await.unwrap();
    check_redis(&f).await;
    let tail = f.driver.log_tail(&f.env, &svc("redis"), 5).await.unwrap();
    assert!(
        tail.iter()
            .any(|l| l.contains("Ready to accept connections")),
        "{tail:?}"
    );

    // The preview of down lists the containers and the network, holding no data,
    // and changes nothing.
    let running = f.labelled(&["ps"]);
    let preview = f.driver.teardown_preview(f.cx(), false).await.unwrap();
    let mut expected: Vec<String> = ["nats", "postgres", "redis", "vault", "x"]
        .iter()
        .map(|s| format!("container {}", f.container(s)))
        .collect();
    expected.push(format!("network {}-dev", f.project));
    assert_eq!(whats(&preview), expected);
    assert!(preview.iter().all(|r| !r.holds_data), "{preview:?}");
    assert_eq!(f.labelled(&["ps"]), running);
    assert_eq!(running.len(), 5);

    // Down removes exactly that, frees every port and leaves no container or
    // network; data stays.
    let removed = f.driver.teardown(f.cx(), false).await.unwrap();
    assert_eq!(removed, whats(&preview));
    assert_ports_free(&f);
    assert!(f.labelled(&["ps", "-a"]).is_empty());
    assert!(f.labelled(&["network", "ls"]).is_empty());
    assert_eq!(f.labelled(&["volume", "ls"]).len(), 5);

    // Up again on the kept volumes: the data is there, Vault unseals with its key.
    f.up(&[]).await.unwrap();
    check_postgres(&f, false).await;

    // The preview of down --volumes adds the five volumes and Vault's kept keys,
    // which hold data; down --volumes removes exactly that and leaves nothing.
    let preview = f.driver.teardown_preview(f.cx(), true).await.unwrap();
    let data: Vec<String> = preview
        .iter()
        .filter(|r| r.holds_data)
        .map(|r| r.what.clone())
        .collect();
    let mut volumes: Vec<String> = f
        .labelled(&["volume", "ls"])
        .into_iter()
        .map(|v| format!("volume {v}"))
        .collect();
    volumes.sort();
    let listed_volumes: Vec<&String> = data.iter().filter(|d| d.starts_with("volume ")).collect();
    assert_eq!(listed_volumes, volumes.iter().collect::<Vec<_>>());
    assert!(
        data.contains(&format!(
            "file {}",
            f.state.join(VAULT_KEYS_DIR).join("init.json").display()
        )),
        "{data:?}"
    );
    assert_eq!(preview.len() - data.len(), 6, "{preview:?}");
    assert_eq!(f.labelled(&["volume", "ls"]).len(), 5);
    assert!(f.state.join(VAULT_KEYS_DIR).join("init.json").exists());
    let removed = f.driver.teardown(f.cx(), true).await.unwrap();
    assert_eq!(removed, whats(&preview));
    assert_ports_free(&f);
    assert!(f.labelled(&["ps", "-a"]).is_empty());
    assert!(f.labelled(&["network", "ls"]).is_empty());
    assert!(f.labelled(&["volume", "ls"]).is_empty());
    assert!(!f.state.join(VAULT_KEYS_DIR).join("init.json").exists());
    eprintln!("docker driver: cold up {cold:.2?}, no-op up {noop:.2?}");
}

/// The `what` of each removal, in order.
fn whats(preview: &[cp_drivers::Removal]) -> Vec<String> {
    preview.iter().map(|r| r.what.clone()).collect()
}

#[tokio::test]
async fn an_unreachable_engine_says_what_to_do() {
    for host in [
        "unix:///nonexistent/docker.sock",
        "/nonexistent/docker.sock",
    ] {
        let e = DockerDriver::connect_to(host).await.unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, DriverError::Unreachable { .. }), "{text}");
        assert!(text.contains("/nonexistent/docker.sock"), "{text}");
        assert!(text.contains("DOCKER_HOST"), "{text}");
        assert!(text.contains("--platform process"), "{text}");
    }
    let closed = cp_testkit::free_port();
    let e = DockerDriver::connect_to(&format!("tcp://127.0.0.1:{closed}"))
        .await
        .unwrap_err();
    assert!(matches!(e, DriverError::Unreachable { .. }), "{e}");
}

#[tokio::test]
async fn a_taken_port_is_named_with_its_setting() {
    let f = Fixture::new("port", |_| Vec::new()).await;
    let _taken = TcpListener::bind(("127.0.0.1", f.ports["redis"])).unwrap();
    let e = f.up(&[svc("redis")]).await.unwrap_err();
    match &e {
        DriverError::PortInUse {
            port,
            setting,
            service,
            ..
        } => {
            assert_eq!(*port, f.ports["redis"]);
            assert_eq!(setting, "services.redis.port");
            assert_eq!(service, &svc("redis"));
        }
        other => panic!("expected PortInUse, got {other}"),
    }
    assert!(e.to_string().contains("services.redis.port"), "{e}");
}

#[tokio::test]
async fn a_missing_image_is_neither_present_nor_pullable() {
    let f = Fixture::new("image", |_| {
        vec!["services.redis.image=controlplane-local/surely-missing:1".into()]
    })
    .await;
    let t = Instant::now();
    let e = f.up(&[svc("redis")]).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    let text = e.to_string();
    assert!(matches!(e, DriverError::ImageUnavailable { .. }), "{text}");
    assert!(
        text.contains("controlplane-local/surely-missing:1")
            && text.contains("neither present locally nor pullable")
            && text.contains("services.redis.image"),
        "{text}"
    );

    // `auto` decides from the local images alone, fast, in one short line.
    let t = Instant::now();
    let why = docker_usable_at(cp_driver_docker::DEFAULT_HOST, &f.env)
        .await
        .unwrap_err();
    let took = t.elapsed();
    let why = why.to_string();
    assert!(
        why.contains(
            "but 1 of 4 images are not present locally (controlplane-local/surely-missing:1)"
        ) && why.contains("cargo xtask images"),
        "{why}"
    );
    assert!(!why.contains('\n') && why.len() < 300, "{why}");
    assert!(took < Duration::from_secs(2), "{took:?}");

    let ok = Fixture::new("usable", |_| Vec::new()).await;
    let d = docker_usable_at(cp_driver_docker::DEFAULT_HOST, &ok.env)
        .await
        .unwrap();
    assert_eq!(d.engine_version(), ok.driver.engine_version());
    let t = Instant::now();
    let why = docker_usable_at("unix:///nonexistent/docker.sock", &ok.env)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        why,
        "no Docker engine answers at unix:///nonexistent/docker.sock (no socket there)"
    );
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
}

/// A socket that accepts connections and never answers (a hung engine): `auto` gives
/// up on it within a second. Needs no engine.
#[tokio::test]
async fn auto_gives_up_on_a_silent_engine_within_a_second() {
    let tmp = tempfile::tempdir().unwrap();
    let sock = tmp.path().join("docker.sock");
    let listener = tokio::net::UnixListener::bind(&sock).unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let env = Project::new(cp_testkit::environments_dir())
        .load("dev", &[])
        .unwrap()
        .env;
    let host = format!("unix://{}", sock.display());
    let t = Instant::now();
    let why = docker_usable_at(&host, &env).await.unwrap_err().to_string();
    let took = t.elapsed();
    silent.abort();
    assert_eq!(
        why,
        format!("no Docker engine answers at {host} (no answer within 1s)")
    );
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn a_container_that_exits_fails_fast_with_its_log() {
    let f = Fixture::new("crash", |p| {
        vec![
            format!("extras.boom.image={}", images::tag("redis")),
            "extras.boom.command=[sh, -c, 'echo boom: missing configuration >&2; exit 3']".into(),
            format!("extras.boom.ports.http={}", p["x-client"]),
            "extras.boom.health.http=http/".into(),
        ]
    })
    .await;
    let t = Instant::now();
    let e = f.up(&[svc("boom")]).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    match &e {
        DriverError::NotReady {
            service, log_tail, ..
        } => {
            assert_eq!(service, &svc("boom"));
            assert!(
                log_tail
                    .iter()
                    .any(|l| l.contains("boom: missing configuration")),
                "{log_tail:?}"
            );
        }
        other => panic!("expected NotReady, got {other}"),
    }
}

#[tokio::test]
async fn a_removed_postgres_volume_is_refused_not_recreated_empty() {
    let f = Fixture::new("vanished", |_| {
        [
            "services.redis.enabled=false",
            "services.nats.enabled=false",
            "services.vault.enabled=false",
            "backup.enabled=false",
        ]
        .map(String::from)
        .to_vec()
    })
    .await;
    f.up(&[]).await.expect("first up");
    let record = f.state.join("initialised/postgres.json");
    let rec = std::fs::read_to_string(&record).expect("up records postgres as initialised");
    // Read from the volume through the container, as on the process platform.
    assert!(rec.contains("system identifier "), "{rec}");
    let volumes = f.labelled(&["volume", "ls"]);
    assert!(!volumes.is_empty(), "postgres keeps its data on a volume");

    // The container and its volume go (`docker volume prune`, a wrong `rm`).
    f.docker(&["rm", "-f", &f.container("postgres")]);
    for v in &volumes {
        f.docker(&["volume", "rm", v]);
    }
    let gone = f.driver.vanished(f.cx()).await.expect("vanished");
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert!(
        gone[0]
            .reason
            .starts_with("data missing: postgres was initialised at")
            && gone[0].reason.contains("up --reinitialise postgres --yes"),
        "{}",
        gone[0].reason
    );
    let e = f.up(&[]).await.expect_err("a vanished volume is refused");
    assert!(
        matches!(e, DriverError::DataMissing { .. }),
        "{}",
        chain(&e)
    );
    assert!(
        f.labelled(&["volume", "ls"]).is_empty(),
        "a refused up created an empty volume"
    );

    // Confirmed (`up --reinitialise postgres --yes`): it starts empty.
    f.driver
        .reinitialise(f.cx(), &svc("postgres"))
        .await
        .expect("reinitialise");
    assert!(!record.exists());
    f.up(&[]).await.expect("up after reinitialise");
    assert!(record.exists());
    assert!(f.driver.vanished(f.cx()).await.unwrap().is_empty());
}
