//! TLS on the process platform (`tls.mode: required`), against real servers: `up`,
//! `seed`, a backup, its restore drill and a restore work over TLS; the connect
//! helpers verify the server (`psql` with verify-full, `redis-cli --tls`); a
//! plaintext connection to each of PostgreSQL, Redis, NATS and OpenBao is refused; a
//! client trusting another CA is refused; TLS 1.3 is negotiated; a certificate past
//! its renewal point shows in `plan` and is renewed by `up` while a connection opened
//! before keeps working, and the listener then serves the new serial; the rotation
//! schedule run by `serve` renews due certificates the same way, and
//! `rotate certificates [--service S]` forces a renewal.

mod common;
use common::{controlplane, text};

use std::path::PathBuf;

use cp_runtime::probe::Endpoint;
use cp_runtime::tls::{Prelude, handshake};
use serde_json::Value;

fn port(sets: &[String], key: &str) -> u16 {
    sets.iter()
        .find_map(|s| s.strip_prefix(&format!("{key}=")))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{key} in {sets:?}"))
}

fn json(o: &std::process::Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("json: {e}\n{}", text(o)))
}

#[test]
fn required_tls_on_every_listener_with_verification_and_renewal() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("dev");
    let dest = tmp.path().join("backups");
    let mut sets = cp_testkit::port_sets();
    sets.extend([
        "platform=process".to_owned(),
        "apps.capsule-registry.enabled=false".to_owned(),
        "tls.mode=required".to_owned(),
        "tls.min_version=\"1.3\"".to_owned(),
        format!("backup.destinations.local.path={}", dest.display()),
    ]);
    let _down = common::down(&state, &sets);
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "up:\n{}", text(&o));

    // `status` names the CA clients trust.
    let o = controlplane(&state, &sets, &["-o", "json", "status"]);
    assert!(o.status.success(), "status:\n{}", text(&o));
    let ca = PathBuf::from(
        json(&o)["tls_ca"]
            .as_str()
            .unwrap_or_else(|| panic!("no tls_ca:\n{}", text(&o))),
    );
    assert!(ca.exists(), "{}", ca.display());

    // The connect helpers verify the server.
    let o = controlplane(
        &state,
        &sets,
        &[
            "psql",
            "--",
            "-tAc",
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ],
    );
    assert!(o.status.success(), "psql:\n{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "t|TLSv1.3");
    let o = controlplane(&state, &sets, &["redis-cli", "--", "PING"]);
    assert!(o.status.success(), "redis-cli:\n{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "PONG",
        "{}",
        text(&o)
    );
    let o = controlplane(&state, &sets, &["vault-env"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("VAULT_ADDR=https://") && out.contains("VAULT_CACERT="),
        "{out}"
    );

    // Seed again (nothing to change), a backup of every service, its drill, a restore.
    let o = controlplane(&state, &sets, &["seed"]);
    assert!(o.status.success(), "seed:\n{}", text(&o));
    let o = controlplane(&state, &sets, &["backup"]);
    assert!(o.status.success(), "backup:\n{}", text(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let o = controlplane(&state, &sets, &["backup", "verify", &id, "--restore-drill"]);
    assert!(o.status.success(), "drill:\n{}", text(&o));
    let o = controlplane(&state, &sets, &["restore", &id, "--yes"]);
    assert!(o.status.success(), "restore:\n{}", text(&o));

    let pg = Endpoint::local(port(&sets, "services.postgres.port"));
    let redis = Endpoint::local(port(&sets, "services.redis.port"));
    let nats = Endpoint::local(port(&sets, "services.nats.port"));
    let vault = Endpoint::local(port(&sets, "services.vault.port"));
    let listeners = [
        (&pg, Prelude::Postgres),
        (&redis, Prelude::None),
        (&nats, Prelude::NatsInfo),
        (&vault, Prelude::None),
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // TLS 1.3, verified against the environment's CA with the address as the name.
        for (ep, prelude) in listeners {
            let h = handshake(&ep.clone().with_tls(ca.clone()), prelude)
                .await
                .unwrap_or_else(|e| panic!("{}: {}", ep.addr(), cp_runtime::error::chain(&e)));
            assert_eq!(h.version, "TLSv1_3", "{}", ep.addr());
        }

        // A client trusting another CA is refused by each.
        let other = tempfile::tempdir().unwrap();
        let other_state = cp_runtime::state::StateDir::open(other.path(), "other").unwrap();
        cp_runtime::tls::Ca::ensure(&other_state, "other").unwrap();
        let other_ca = cp_runtime::tls::ca_path(other_state.path());
        for (ep, prelude) in listeners {
            let r = handshake(&ep.clone().with_tls(other_ca.clone()), prelude).await;
            assert!(r.is_err(), "{} accepted a client of another CA", ep.addr());
        }

        // Plaintext is refused by each.
        let e = pg
            .pg_options()
            .username("postgres")
            .database("postgres")
            .ssl_mode(sqlx::postgres::PgSslMode::Disable);
        let r = sqlx::ConnectOptions::connect(&e).await;
        let Err(err) = r else {
            panic!("plaintext PostgreSQL answered")
        };
        let err = err.to_string();
        assert!(err.contains("no encryption"), "{err}");
        let mut c = cp_runtime::resp::Connection::connect(&redis.addr()).await;
        let pong = match &mut c {
            Ok(c) => c.command(&["PING"]).await.ok(),
            Err(_) => None,
        };
        assert_eq!(pong, None, "plaintext Redis answered");
        let said = nats_plaintext(&nats).await;
        assert!(
            said.contains("\"tls_required\":true") && !said.contains("PONG"),
            "{said}"
        );
        let r = reqwest::Client::new()
            .get(format!("http://{}/v1/sys/health", vault.addr()))
            .send()
            .await;
        if let Ok(r) = r {
            assert_eq!(r.status().as_u16(), 400, "plaintext OpenBao answered");
        }
    });
}

/// What NATS says to a client that speaks plaintext after its `INFO`.
async fn nats_plaintext(ep: &Endpoint) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(ep.addr()).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    out.extend_from_slice(&buf[..n]);
    let _ = s
        .write_all(b"CONNECT {\"verbose\":false}\r\nPING\r\n")
        .await;
    let read = tokio::time::timeout(std::time::Duration::from_secs(3), s.read(&mut buf)).await;
    if let Ok(Ok(n)) = read {
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The password controlplane generated for `setting` (dev keeps it in the state
/// directory).
async fn generated(state: &std::path::Path, setting: &str) -> cp_runtime::secrets::Secret {
    let dir = cp_runtime::state::StateDir::open(state, "dev").unwrap();
    cp_runtime::secrets::SecretResolver::read_only(Some(dir))
        .resolve(setting, &cp_core::units::SecretRef::Generate)
        .await
        .unwrap()
}

#[test]
fn certificates_renew_at_their_point_and_servers_reload_without_dropping_connections() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("dev");
    let mut sets = cp_testkit::port_sets();
    sets.extend([
        "platform=process".to_owned(),
        "apps.capsule-registry.enabled=false".to_owned(),
        "backup.enabled=false".to_owned(),
        "tls.mode=required".to_owned(),
        // Due 6 s after issuance.
        "tls.lifetime=60s".to_owned(),
        "tls.renew_at_percent=10".to_owned(),
    ]);
    let _down = common::down(&state, &sets);
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "up:\n{}", text(&o));
    let ca = cp_runtime::tls::ca_path(&state);
    let ep = |key: &str| Endpoint::local(port(&sets, key)).with_tls(ca.clone());
    let pg = ep("services.postgres.port");
    let redis = ep("services.redis.port");
    let nats = ep("services.nats.port");
    let vault = ep("services.vault.port");
    let listeners = [
        (&pg, Prelude::Postgres),
        (&redis, Prelude::None),
        (&nats, Prelude::NatsInfo),
        (&vault, Prelude::None),
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let before: Vec<String> = rt.block_on(async {
        let mut v = Vec::new();
        for (ep, p) in listeners {
            v.push(handshake(ep, p).await.unwrap().cert.serial);
        }
        v
    });

    // One connection to each, opened now and used in a loop through the renewal.
    let held = Held::open(&rt, &state, [&pg, &redis, &nats, &vault]);
    std::thread::sleep(std::time::Duration::from_secs(7));

    // Past the renewal point: `plan` shows it, `up` renews.
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(o.status.code(), Some(2), "plan:\n{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("renewal due"), "{out}");
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "up:\n{}", text(&o));
    std::thread::sleep(std::time::Duration::from_secs(1));
    held.finish(&rt, 20);

    // Each listener now serves a new certificate from the same CA.
    rt.block_on(async {
        for ((ep, p), old) in listeners.into_iter().zip(&before) {
            let h = handshake(ep, p).await.unwrap();
            assert_ne!(
                &h.cert.serial,
                old,
                "{} serves its old certificate",
                ep.addr()
            );
        }
    });
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "renewed, nothing due:\n{}",
        text(&o)
    );
}

/// One connection to each of PostgreSQL, Redis, NATS and OpenBao, opened before a
/// renewal and used in a loop (every 50 ms) until [`Held::finish`].
struct Held {
    errors: std::sync::Arc<std::sync::atomic::AtomicU64>,
    rounds: std::sync::Arc<std::sync::atomic::AtomicU64>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    worker: tokio::task::JoinHandle<()>,
}

impl Held {
    fn open(rt: &tokio::runtime::Runtime, state: &std::path::Path, eps: [&Endpoint; 4]) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let [pg, redis, nats, vault] = eps;
        let errors = Arc::new(AtomicU64::new(0));
        let rounds = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        // The worker keeps running on the runtime; its handle is joined by `finish`.
        #[allow(clippy::async_yields_async)]
        let worker = rt.block_on(async {
            use sqlx::Connection as _;
            let pg_pw = generated(state, "services.postgres.superuser_password").await;
            let redis_pw = generated(state, "services.redis.admin_password").await;
            let nats_pw = generated(state, "services.nats.admin_password").await;
            let mut pgc = sqlx::postgres::PgConnection::connect_with(
                &pg.pg_options()
                    .username("postgres")
                    .password(pg_pw.expose())
                    .database("postgres"),
            )
            .await
            .unwrap();
            let mut rc = cp_runtime::resp::Connection::connect_to(redis)
                .await
                .unwrap();
            rc.command(&["AUTH", "admin", redis_pw.expose()])
                .await
                .unwrap();
            let nc = cp_runtime::probe::nats_tls(async_nats::ConnectOptions::new(), nats)
                .user_and_password("admin".into(), nats_pw.expose().to_owned())
                .connect(nats.addr())
                .await
                .unwrap();
            let vc = cp_runtime::vault::Client::at(vault);
            let (e, r, s) = (errors.clone(), rounds.clone(), stop.clone());
            tokio::spawn(async move {
                while !s.load(Ordering::Relaxed) {
                    let one: Result<i32, _> =
                        sqlx::query_scalar("SELECT 1").fetch_one(&mut pgc).await;
                    let ok = one.is_ok()
                        && rc.command(&["PING"]).await.is_ok()
                        && nc.request("$JS.API.INFO", "".into()).await.is_ok()
                        && vc.health().await.is_ok();
                    if !ok {
                        e.fetch_add(1, Ordering::Relaxed);
                    }
                    r.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                // The same PostgreSQL session throughout.
                let _ = pgc.close().await;
            })
        });
        Self {
            errors,
            rounds,
            stop,
            worker,
        }
    }

    /// Stops the loop; asserts it ran more than `min_rounds` rounds with no error.
    fn finish(self, rt: &tokio::runtime::Runtime, min_rounds: u64) -> u64 {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        rt.block_on(self.worker).unwrap();
        let rounds = self.rounds.load(Ordering::Relaxed);
        assert!(
            rounds > min_rounds,
            "the connections were used: {rounds} rounds"
        );
        assert_eq!(
            self.errors.load(Ordering::Relaxed),
            0,
            "a held connection failed"
        );
        rounds
    }
}

/// The serial each listener serves now.
fn serials(rt: &tokio::runtime::Runtime, listeners: &[(&Endpoint, Prelude)]) -> Vec<String> {
    rt.block_on(async {
        let mut v = Vec::new();
        for (ep, p) in listeners {
            v.push(handshake(ep, *p).await.unwrap().cert.serial);
        }
        v
    })
}

#[test]
fn the_scheduled_rotation_renews_due_certificates_and_rotate_certificates_forces_one() {
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("dev");
    let mut sets = cp_testkit::port_sets();
    sets.extend([
        "platform=process".to_owned(),
        "apps.capsule-registry.enabled=false".to_owned(),
        "backup.enabled=false".to_owned(),
        "tls.mode=required".to_owned(),
        // A two-minute certificate, due 12 s after issuance; the rotation schedule
        // (what `serve` runs) every minute.
        "tls.lifetime=120s".to_owned(),
        "tls.renew_at_percent=10".to_owned(),
        "rotation.schedule=\"* * * * *\"".to_owned(),
    ]);
    let _down = common::down(&state, &sets);
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "up:\n{}", text(&o));
    let ca = cp_runtime::tls::ca_path(&state);
    let ep = |key: &str| Endpoint::local(port(&sets, key)).with_tls(ca.clone());
    let (pg, redis, nats, vault) = (
        ep("services.postgres.port"),
        ep("services.redis.port"),
        ep("services.nats.port"),
        ep("services.vault.port"),
    );
    let listeners = [
        (&pg, Prelude::Postgres),
        (&redis, Prelude::None),
        (&nats, Prelude::NatsInfo),
        (&vault, Prelude::None),
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let before = serials(&rt, &listeners);
    let held = Held::open(&rt, &state, [&pg, &redis, &nats, &vault]);

    // `serve` runs the rotation schedule: its next slot renews every certificate
    // (each is due by then) and every listener serves a new serial.
    let server_dir = tmp.path().join("server");
    let serve_port = cp_testkit::free_port();
    let mut cmd = common::controlplane_cmd(&state, &sets, &["serve", "--only", "dev", "--listen"]);
    cmd.arg(format!("127.0.0.1:{serve_port}"))
        .arg("--server-dir")
        .arg(&server_dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let serve = cp_testkit::Down::process(cmd.spawn().expect("start controlplane serve"));
    let started = Instant::now();
    let renewed_at = loop {
        let now = serials(&rt, &listeners);
        if now.iter().zip(&before).all(|(n, b)| n != b) {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "no scheduled renewal within 150 s: before {before:?}, now {now:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!(
        "scheduled renewal: every listener served a new serial {renewed_at:?} after serve started"
    );
    // serve listens with HTTPS itself (one environment, TLS required, no proxy named
    // by --public-url): verified against the environment's CA; plain HTTP is refused.
    let https = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap()])
        .build()
        .unwrap();
    let o =
        rt.block_on(async { reqwest::get(format!("http://127.0.0.1:{serve_port}/healthz")).await });
    assert!(o.is_err(), "plain HTTP answered: {o:?}");
    let handshake_started = Instant::now();
    let h = rt.block_on(handshake(
        &Endpoint::local(serve_port).with_tls(ca.clone()),
        Prelude::None,
    ));
    let serve_handshake = handshake_started.elapsed();
    let h = h.unwrap();
    eprintln!(
        "serve's HTTPS handshake: {serve_handshake:?}, {}",
        h.version
    );
    let metrics = rt.block_on(async {
        let r = https
            .get(format!("https://127.0.0.1:{serve_port}/metrics"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        assert!(
            r.headers().contains_key("strict-transport-security"),
            "HSTS over HTTPS: {:?}",
            r.headers()
        );
        r.text().await.unwrap()
    });
    rt.block_on(async {
        for ((ep, p), service) in listeners.iter().zip(["postgres", "redis", "nats", "vault"]) {
            let h = handshake(ep, *p).await.unwrap();
            let line = format!(
                "controlplane_tls_certificate_expiry_timestamp_seconds{{env=\"dev\",service=\"{service}\"}} {}",
                h.cert.not_after
            );
            assert!(metrics.contains(&line), "no `{line}` in:\n{metrics}");
        }
    });
    drop(serve);
    let after_schedule = serials(&rt, &listeners);

    // `rotate certificates --service redis` renews Redis's now, due or not; the
    // others keep theirs.
    let o = controlplane(
        &state,
        &sets,
        &["-o", "json", "rotate", "certificates", "--service", "redis"],
    );
    assert!(o.status.success(), "rotate certificates:\n{}", text(&o));
    let v = json(&o);
    let certs = v["certificates"].as_array().expect("certificates");
    assert_eq!(certs.len(), 1, "{v}");
    assert_eq!(certs[0]["service"], "redis", "{v}");
    assert_eq!(certs[0]["renewed"], true, "{v}");
    assert_eq!(
        certs[0]["previous_serial"].as_str(),
        Some(after_schedule[1].as_str()),
        "{v}"
    );
    eprintln!(
        "rotate certificates --service redis: served after {} ms",
        certs[0]["reload_ms"]
    );
    assert!(
        certs[0]["reload_ms"].is_u64(),
        "the listener served it: {v}"
    );
    let now = serials(&rt, &listeners);
    assert_eq!(
        now[1],
        certs[0]["serial"].as_str().unwrap(),
        "Redis serves the new one"
    );
    for i in [0, 2, 3] {
        assert_eq!(now[i], after_schedule[i], "only Redis's was renewed");
    }

    // Everything forced: each server reloads, reporting how long it took.
    let o = controlplane(&state, &sets, &["-o", "json", "rotate", "certificates"]);
    assert!(o.status.success(), "rotate certificates:\n{}", text(&o));
    let v = json(&o);
    let certs = v["certificates"].as_array().expect("certificates");
    assert_eq!(certs.len(), 4, "{v}");
    for c in certs {
        assert_eq!(c["renewed"], true, "{v}");
        assert_eq!(c["reason"], "forced", "{v}");
        eprintln!(
            "forced renewal of {}: served after {} ms",
            c["service"], c["reload_ms"]
        );
        assert!(c["reload_ms"].is_u64(), "{v}");
    }
    let last = serials(&rt, &listeners);
    for (i, c) in certs.iter().enumerate() {
        assert_eq!(last[i], c["serial"].as_str().unwrap(), "{v}");
    }
    let rounds = held.finish(&rt, 100);
    eprintln!("held connections: {rounds} rounds, no error");

    // With TLS off there is nothing to renew, and `rotate certificates` says so.
    let mut off = sets.clone();
    off.retain(|s| !s.starts_with("tls."));
    off.push("tls.mode=off".into());
    let o = controlplane(&state, &off, &["rotate", "certificates"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("tls.mode is off"), "{}", text(&o));
}

/// `openssl` as an operator would run it: its output, or the test fails with it.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    #[allow(clippy::disallowed_methods)]
    let o = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(o.status.success(), "openssl {args:?}:\n{}", text(&o));
}

#[test]
fn a_ca_from_secret_references_issues_every_listeners_certificate() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let state = tmp.path().join("dev");
    // A CA made outside controlplane (a corporate one), a leaf certificate that is no
    // CA, and a key of neither.
    let d = tmp.path();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-subj",
        "/CN=corp test CA",
    ]);
    ca.extend([
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
    ]);
    ca.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    openssl(d, &ca);
    let mut leaf = vec!["req", "-x509"];
    leaf.extend(ec);
    leaf.extend([
        "-keyout", "leaf.key", "-out", "leaf.crt", "-subj", "/CN=leaf",
    ]);
    leaf.extend([
        "-days",
        "30",
        "-addext",
        "basicConstraints=critical,CA:FALSE",
    ]);
    openssl(d, &leaf);
    let read = |f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    let (ca_crt, ca_key, leaf_crt, leaf_key) = (
        read("ca.crt"),
        read("ca.key"),
        read("leaf.crt"),
        read("leaf.key"),
    );

    let mut sets = cp_testkit::port_sets();
    sets.extend([
        "platform=process".to_owned(),
        "apps.capsule-registry.enabled=false".to_owned(),
        "backup.enabled=false".to_owned(),
        "tls.mode=required".to_owned(),
        "tls.ca=ref".to_owned(),
        "tls.ca_cert=\"env://CP_TEST_CA_CERT\"".to_owned(),
        "tls.ca_key=\"env://CP_TEST_CA_KEY\"".to_owned(),
    ]);
    let _down = common::down(&state, &sets);
    let up = |cert: Option<&str>, key: &str| {
        let mut c = common::controlplane_cmd(&state, &sets, &["up"]);
        c.env("CP_TEST_CA_KEY", key);
        match cert {
            Some(cert) => c.env("CP_TEST_CA_CERT", cert),
            None => c.env_remove("CP_TEST_CA_CERT"),
        };
        c.output().expect("run controlplane")
    };

    // What cannot be used is refused, saying which setting and why, with nothing
    // issued from anything else.
    for (cert, key, says) in [
        (None, ca_key.as_str(), "export CP_TEST_CA_CERT"),
        (
            Some(leaf_crt.as_str()),
            leaf_key.as_str(),
            "tls.ca_cert holds `CN=leaf`, which is not a CA certificate",
        ),
        (
            Some(ca_crt.as_str()),
            leaf_key.as_str(),
            "tls.ca_key is not the key of the CA `CN=corp test CA` in tls.ca_cert",
        ),
    ] {
        let o = up(cert, key);
        assert!(!o.status.success(), "up accepted it:\n{}", text(&o));
        let out = text(&o);
        assert!(out.contains(says), "{out}");
        assert!(
            !out.contains("PRIVATE KEY"),
            "a key reached the output:\n{out}"
        );
        assert!(
            !state.join("tls/ca.crt").exists(),
            "a CA was kept from unusable references"
        );
    }

    // The referenced CA: every listener serves a certificate that verifies against
    // it alone, with the address as the name; status names the kept copy.
    let o = up(Some(&ca_crt), &ca_key);
    assert!(o.status.success(), "up:\n{}", text(&o));
    let o = controlplane(&state, &sets, &["-o", "json", "status"]);
    let kept = PathBuf::from(json(&o)["tls_ca"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(kept).unwrap(), ca_crt);
    let corp = d.join("ca.crt");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for (key, prelude) in [
            ("services.postgres.port", Prelude::Postgres),
            ("services.redis.port", Prelude::None),
            ("services.nats.port", Prelude::NatsInfo),
            ("services.vault.port", Prelude::None),
        ] {
            let ep = Endpoint::local(port(&sets, key)).with_tls(corp.clone());
            handshake(&ep, prelude)
                .await
                .unwrap_or_else(|e| panic!("{key}: {}", cp_runtime::error::chain(&e)));
        }
    });
    // The connect helper verifies PostgreSQL's certificate (verify-full) by it.
    let o = controlplane(
        &state,
        &sets,
        &[
            "psql",
            "--",
            "-tAc",
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        ],
    );
    assert!(o.status.success(), "psql:\n{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "t");
    // `openssl s_client` agrees: the chain ends at the corporate CA.
    #[allow(clippy::disallowed_methods)]
    let o = std::process::Command::new("openssl")
        .args(["s_client", "-verify_return_error", "-CAfile"])
        .arg(&corp)
        .args([
            "-connect",
            &format!("127.0.0.1:{}", port(&sets, "services.redis.port")),
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let said = text(&o);
    assert!(
        said.contains("Verify return code: 0 (ok)") && said.contains("i:CN = corp test CA"),
        "{said}"
    );
}
