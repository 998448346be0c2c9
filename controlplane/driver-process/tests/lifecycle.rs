//! The dev environment's lifecycle on the process driver with the real servers:
//! cold `up`, real clients, a no-op second `up`, a killed service brought back,
//! `down` leaving nothing behind, a warm `up` that kept the data, `down --volumes`.

mod clients;
mod support;

use std::time::{Duration, Instant};

use cp_core::names::{CoreKind, ServiceName};
use cp_core::plan::Action;
use cp_drivers::contract::{Driver, Health, ServiceState};
use support::TestEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_up_serves_real_clients_survives_a_kill_and_comes_down_clean() {
    let t = TestEnv::new(&[]);

    // Cold: initdb, raft init + unseal, everything ready.
    let started = Instant::now();
    let report = t.up().await.expect("cold up");
    let cold = started.elapsed();
    let versions: Vec<String> = report
        .ready
        .iter()
        .map(|(s, v)| format!("{s} {v}"))
        .collect();
    assert_eq!(report.ready.len(), 4, "{versions:?}");
    eprintln!("timing: cold up to four ready: {cold:?} ({versions:?})");

    clients::pg_write(&t, "before-kill").await;
    clients::redis_roundtrip(&t).await;
    clients::nats_stream(&t).await;
    clients::vault_kv(&t).await;

    // A second up changes nothing and is fast.
    let plan = t.plan().await;
    assert!(plan.is_empty(), "second plan:\n{plan}");
    let started = Instant::now();
    let again = t.up().await.expect("second up");
    let noop = started.elapsed();
    assert!(again.plan.is_empty());
    eprintln!("timing: no-op up: {noop:?}");
    assert!(noop < Duration::from_secs(2), "a no-op up took {noop:?}");

    // Status: the four running and healthy, everything else skipped.
    let status = t.status().await;
    for s in &status {
        match CoreKind::from_name(s.service.as_str()) {
            Some(_) => {
                assert_eq!(s.state, ServiceState::Running, "{s:?}");
                assert_eq!(s.health, Health::Healthy, "{s:?}");
                assert!(s.version.is_some() && s.id.is_some(), "{s:?}");
            }
            None => assert_eq!(
                s.state,
                ServiceState::Skipped("needs a container platform (docker or kubernetes)".into()),
                "{s:?}"
            ),
        }
    }
    assert!(
        status
            .iter()
            .any(|s| s.service.as_str() == "capsule-registry")
    );

    // Kill postgres behind our back: status says it is down, plan says start, up
    // brings it back with its data.
    let pid = t.recorded_pid(CoreKind::Postgres).expect("recorded pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let pg = loop {
        let s = t.status().await;
        let pg = s
            .into_iter()
            .find(|s| s.service.as_str() == "postgres")
            .unwrap();
        if matches!(pg.state, ServiceState::Stopped(_)) || Instant::now() > deadline {
            break pg;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let ServiceState::Stopped(why) = &pg.state else {
        panic!("a killed postgres is reported as {:?}", pg.state);
    };
    assert!(
        why.contains("killed by signal 9") || why.contains("exited"),
        "{why}"
    );
    assert!(why.contains("postgres/log"), "{why}");
    let plan = t.plan().await;
    assert_eq!(plan.steps.len(), 1, "{plan}");
    assert!(
        matches!(plan.steps[0].action, Action::Start { .. }),
        "{plan}"
    );
    let back = t.up().await.expect("up after a kill");
    assert_eq!(back.plan.steps.len(), 1);
    assert_ne!(t.recorded_pid(CoreKind::Postgres), Some(pid));
    assert_eq!(clients::pg_rows(&t).await, vec!["before-kill"]);

    // Logs: the tail names what postgres said.
    let tail = t
        .driver
        .log_tail(&t.env, &ServiceName::core(CoreKind::Postgres), 50)
        .await
        .unwrap();
    assert!(
        tail.iter().any(|l| l.contains("database system is ready")),
        "{tail:#?}"
    );

    // The preview of `down` names the four servers by pid and changes nothing; down
    // then removes exactly those.
    let pids: Vec<u32> = CoreKind::ALL
        .iter()
        .filter_map(|k| t.recorded_pid(*k))
        .collect();
    let preview = t.driver.teardown_preview(t.cx(), false).await.unwrap();
    let expected: Vec<String> = CoreKind::ALL
        .iter()
        .map(|k| format!("process {k} (pid {})", t.recorded_pid(*k).unwrap()))
        .collect();
    assert_eq!(whats(&preview), expected);
    assert!(preview.iter().all(|r| !r.holds_data), "{preview:?}");
    assert_still_up(&t, &pids).await;

    // Down: every process gone, every port free, data kept.
    let started = Instant::now();
    let removed = t.down(false).await;
    eprintln!("timing: down: {:?}", started.elapsed());
    assert_eq!(removed, expected);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .is_ok_and(|s| s.contains(") Z ")),
            "pid {pid} survived down"
        );
    }
    assert_eq!(t.our_processes(), vec![], "processes left behind");
    for kind in CoreKind::ALL {
        let port = t.port(kind);
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "{kind}'s port {port} is still taken after down"
        );
    }

    // Warm up: data survived, vault unseals with its kept key.
    let started = Instant::now();
    t.up().await.expect("warm up");
    eprintln!("timing: warm up: {:?}", started.elapsed());
    assert_eq!(clients::pg_rows(&t).await, vec!["before-kill"]);
    clients::vault_kv(&t).await;

    // The preview of `down --volumes` adds every data directory and the dev keys,
    // which hold data, and changes nothing either.
    let pids: Vec<u32> = CoreKind::ALL
        .iter()
        .filter_map(|k| t.recorded_pid(*k))
        .collect();
    let preview = t.driver.teardown_preview(t.cx(), true).await.unwrap();
    let data: Vec<&str> = preview
        .iter()
        .filter(|r| r.holds_data)
        .map(|r| r.what.as_str())
        .collect();
    assert_eq!(preview.len() - data.len(), 4, "{preview:?}");
    for dir in [
        "postgres/data",
        "redis/data",
        "nats/jetstream",
        "vault/data",
    ] {
        let path = t.root.join(dir);
        assert!(
            data.iter()
                .any(|d| d.starts_with(&format!("data directory {} (", path.display()))),
            "{dir} is not listed: {data:?}"
        );
    }
    assert!(
        data.contains(&format!("vault keys {}", t.root.join("vault/init.json").display()).as_str()),
        "{data:?}"
    );
    assert_still_up(&t, &pids).await;

    // Down with volumes removes exactly that, compared once the servers have stopped
    // (a running server writes, so a data directory's size can change until then).
    t.down(false).await;
    let preview = t.driver.teardown_preview(t.cx(), true).await.unwrap();
    assert!(preview.iter().all(|r| r.holds_data), "{preview:?}");
    // Four data directories, Vault's audit log and its keys.
    assert_eq!(preview.len(), 6, "{preview:?}");
    let removed = t.down(true).await;
    assert_eq!(removed, whats(&preview));
    assert!(!t.root.join("postgres/data").exists());
    assert!(!t.root.join("vault/init.json").exists());
    assert!(
        t.driver
            .teardown_preview(t.cx(), true)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The `what` of each removal, in order.
fn whats(preview: &[cp_drivers::Removal]) -> Vec<String> {
    preview.iter().map(|r| r.what.clone()).collect()
}

/// The servers still run as recorded, with their data.
async fn assert_still_up(t: &TestEnv, pids: &[u32]) {
    let now: Vec<u32> = CoreKind::ALL
        .iter()
        .filter_map(|k| t.recorded_pid(*k))
        .collect();
    assert_eq!(now, pids, "the preview changed the recorded servers");
    for s in t.status().await {
        if CoreKind::from_name(s.service.as_str()).is_some() {
            assert_eq!(s.health, Health::Healthy, "{s:?}");
        }
    }
    assert_eq!(clients::pg_rows(t).await, vec!["before-kill"]);
}
