//! Faults, each on real services: a run killed with SIGKILL mid-backup leaves no
//! manifest, is listed incomplete, the next run succeeds and prune removes the debris;
//! one flipped byte fails verify naming the artifact and makes restore refuse the set;
//! a destination that fills up fails the run without a manifest, prunes nothing and
//! leaves older sets intact; a second concurrent run fails fast naming the holder; a
//! wrong identity is a clean error; a service that is down fails alone and the set is
//! partial, saying which.

// The test mounts and unmounts a tmpfs by path on purpose (root only).
#![allow(clippy::disallowed_methods)]

mod support;

use std::time::{Duration, Instant};

use chrono::Utc;
use cp_backup::catalog::SetState;
use cp_backup::run;
use cp_core::names::CoreKind;
use cp_testkit::TestEnv;

/// The destination of the child side of the SIGKILL test.
const CHILD_DEST: &str = "CP_BACKUP_TEST_CHILD_DEST";

/// Redis and NATS only: small and fast, enough for every fault.
fn small(dest: &std::path::Path, extra: &[&str]) -> TestEnv {
    let mut sets = vec![
        format!("backup.destinations.local.path={}", dest.display()),
        "backup.enabled=true".to_owned(),
        "backup.services=[redis, nats]".to_owned(),
    ];
    sets.extend(extra.iter().map(|s| (*s).to_owned()));
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    TestEnv::only(&[CoreKind::Redis, CoreKind::Nats], &sets)
}

async fn up(t: &TestEnv) -> cp_runtime::access::Access {
    t.up().await.expect("up");
    let a = t.access().await;
    cp_seed::seed_all(&a, &t.env).await.expect("seed");
    let mut r = support::redis(&a).await;
    r.command(&["SET", "t:1:k", "v"]).await.unwrap();
    a
}

async fn take(
    t: &TestEnv,
    a: &cp_runtime::access::Access,
    services: &[CoreKind],
) -> Result<run::BackupReport, run::BackupError> {
    let _lock = run::lock(&t.state, "backup").unwrap();
    run::backup(&support::cx(t, a), services, None, Utc::now(), &run::Quiet).await
}

/// The child's side of the SIGKILL test: start a set, write part of an artifact, and
/// hang there until killed.
async fn child_that_dies_mid_backup() {
    let dest = std::env::var(CHILD_DEST).expect("the child is told its destination");
    let store = cp_backup::dest::Store::build(
        "local",
        &cp_core::model::Destination::Local { path: dest },
        std::path::Path::new("/"),
        &cp_runtime::secrets::SecretResolver::read_only(None),
    )
    .await
    .unwrap();
    let w = cp_backup::set::SetWriter {
        store,
        id: cp_backup::BackupId::new(Utc::now()),
        codec: cp_backup::pipeline::Codec {
            level: 3,
            workers: 0,
            recipients: std::sync::Arc::new(Vec::new()),
        },
        meter: Default::default(),
    };
    let mut done = w.artifact(CoreKind::Redis, "dump.rdb");
    done.write(vec![7u8; 100_000].into()).await.unwrap();
    done.finish().await.unwrap();
    let mut half = w.artifact(CoreKind::Nats, "streams/X.snapshot");
    half.write(vec![1u8; 3 << 20].into()).await.unwrap();
    println!("CHILD-WROTE");
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_backup_is_incomplete_and_pruned_after_the_next() {
    if cp_testkit::is_child() {
        return child_that_dies_mid_backup().await;
    }
    let dest = tempfile::tempdir().unwrap();
    let t = small(dest.path(), &[]);
    let a = up(&t).await;
    let mut child = cp_testkit::rerun_as_child(
        "a_run_killed_mid_backup_is_incomplete_and_pruned_after_the_next",
    )
    .env(CHILD_DEST, dest.path())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let child = cp_testkit::Down::process(child);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut line = String::new();
        use std::io::BufRead;
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child ended early"
        );
        if line.contains("CHILD-WROTE") {
            break;
        }
        assert!(Instant::now() < deadline);
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.pid().unwrap() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.now();
    let store = support::store(&t).await;
    let listed = run::list(&store, None).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].state, SetState::Incomplete);
    let debris = listed[0].id.clone();
    // The next run succeeds, and its prune removes the debris.
    let r = take(&t, &a, &[]).await.expect("the next run");
    assert_eq!(r.state, "complete");
    let pruned = r.pruned.expect("a full run prunes");
    assert_eq!(pruned.plan.delete.len(), 1, "{}", pruned.plan);
    assert_eq!(pruned.plan.delete[0].0, debris);
    let listed = run::list(&store, None).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, SetState::Complete);
    assert!(
        !dest.path().join(debris.as_str()).exists(),
        "its directory is gone too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_flipped_byte_fails_verify_and_restore_naming_the_artifact() {
    let dest = tempfile::tempdir().unwrap();
    let t = small(dest.path(), &[]);
    let a = up(&t).await;
    let r = take(&t, &a, &[]).await.unwrap();
    let store = support::store(&t).await;
    let m = run::manifest_of(&store, &r.id).await.unwrap();
    let (_, victim) = m.artifacts().find(|(k, _)| *k == CoreKind::Redis).unwrap();
    let path = dest.path().join(r.id.as_str()).join(victim.name.as_str());
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    let (_, report) = run::verify(&store, &r.id, None, None).await.unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains(victim.name.as_str()),
        "{}",
        report.problems[0]
    );
    assert!(
        report.problems[0].contains("SHA-256"),
        "{}",
        report.problems[0]
    );
    run::record_verification(&store, &r.id, &report, false, Utc::now())
        .await
        .unwrap();
    let listed = run::list(&store, None).await.unwrap();
    assert!(
        matches!(listed[0].state, SetState::Broken { .. }),
        "{:?}",
        listed[0].state
    );

    // Restore refuses before touching anything: the key written after the backup stays.
    let mut c = support::redis(&a).await;
    c.command(&["SET", "t:1:after", "x"]).await.unwrap();
    let e = run::precheck(&store, &m, &[CoreKind::Redis, CoreKind::Nats])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("refusing to restore") && e.contains(victim.name.as_str()),
        "{e}"
    );
    assert_eq!(
        c.command(&["GET", "t:1:after"])
            .await
            .unwrap()
            .text()
            .as_deref(),
        Some("x")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_concurrent_run_fails_fast_naming_the_holder() {
    let dest = tempfile::tempdir().unwrap();
    let t = small(dest.path(), &[]);
    let _held = run::lock(&t.state, "backup").unwrap();
    let started = Instant::now();
    let e = run::lock(&t.state, "backup").unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(
        e.contains(&format!("pid {} (`backup`) since ", std::process::id())),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_down_fails_alone_and_the_set_is_partial() {
    let dest = tempfile::tempdir().unwrap();
    let t = small(dest.path(), &[]);
    let a = up(&t).await;
    let pid = t.recorded_pid(CoreKind::Redis).expect("redis runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // Wait until it no longer answers.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cp_runtime::resp::Connection::connect(&a.redis.as_ref().unwrap().endpoint.addr())
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "redis still answers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = take(&t, &a, &[]).await.expect("the others complete");
    assert_eq!(r.state, "partial");
    assert!(r.pruned.is_none(), "a partial run prunes nothing");
    let redis = r
        .services
        .iter()
        .find(|s| s.service == CoreKind::Redis)
        .unwrap();
    assert!(
        !redis.ok && redis.error.as_deref().unwrap_or("").contains("redis"),
        "{redis:?}"
    );
    assert!(
        r.services
            .iter()
            .find(|s| s.service == CoreKind::Nats)
            .unwrap()
            .ok
    );
    let listed = run::list(&support::store(&t).await, None).await.unwrap();
    assert_eq!(
        listed[0].state,
        SetState::Partial {
            failed: vec![CoreKind::Redis]
        }
    );
    let m = cp_backup::metrics::Metrics::read(&t.state);
    assert_eq!(m.services[&CoreKind::Redis].last_run_success, 0);
    assert_eq!(
        m.services[&CoreKind::Redis].last_success_timestamp_seconds,
        0,
        "never succeeded"
    );
    assert_eq!(m.services[&CoreKind::Nats].last_run_success, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_identity_is_a_clean_error_and_nothing_is_restored() {
    let right = age::x25519::Identity::generate();
    let wrong = age::x25519::Identity::generate();
    let dest = tempfile::tempdir().unwrap();
    let recipient = format!("backup.encrypt_to=[{}]", right.to_public());
    let t = small(dest.path(), &[&recipient]);
    let a = up(&t).await;
    let r = take(&t, &a, &[CoreKind::Redis]).await.unwrap();
    let store = support::store(&t).await;
    let m = run::manifest_of(&store, &r.id).await.unwrap();
    assert!(m.encryption.is_some());
    let wrong = cp_backup::pipeline::Identity(std::sync::Arc::new(wrong));
    let (_, report) = run::verify(&store, &r.id, Some(&wrong), None)
        .await
        .unwrap();
    assert!(
        report.problems.iter().all(|p| p.contains("cannot decrypt")),
        "{:?}",
        report.problems
    );
    let mut c = support::redis(&a).await;
    c.command(&["SET", "t:1:after", "x"]).await.unwrap();
    let reader = cp_backup::set::SetReader {
        store,
        id: r.id.clone(),
        identity: Some(wrong),
    };
    let e = run::restore(
        &reader,
        &m,
        &[CoreKind::Redis],
        &run::Target {
            access: &a,
            source_unseal_keys: Vec::new(),
        },
    )
    .await
    .unwrap_err();
    let text = cp_runtime::error::chain(&e);
    assert!(text.contains("cannot decrypt"), "{text}");
    assert_eq!(
        c.command(&["GET", "t:1:after"])
            .await
            .unwrap()
            .text()
            .as_deref(),
        Some("x"),
        "nothing was restored"
    );
    // The right one works.
    let right = cp_backup::pipeline::Identity(std::sync::Arc::new(right));
    let (_, ok) = run::verify(&reader.store, &r.id, Some(&right), None)
        .await
        .unwrap();
    assert!(ok.problems.is_empty(), "{:?}", ok.problems);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_destination_fails_the_run_and_keeps_older_sets() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    // mount(8) is the judge of a full filesystem here; it has no install hint to give.
    #[allow(clippy::disallowed_methods)]
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .status()
        .expect("run mount");
    assert!(
        status.success(),
        "this test mounts a 1 MiB tmpfs and needs root to do it"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            #[allow(clippy::disallowed_methods)]
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    let t = small(&mnt, &["backup.compression_level=1"]);
    let a = up(&t).await;
    let first = take(&t, &a, &[]).await.expect("a small first set fits");
    // Then 4 MB of incompressible data.
    let mut c = support::redis(&a).await;
    for i in 0..4 {
        let big: String = (0..1_000_000)
            .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
            .collect::<String>()
            + &format!("{i}");
        c.command(&["SET", &format!("t:1:big{i}"), &big])
            .await
            .unwrap();
    }
    let e = take(&t, &a, &[CoreKind::Redis]).await.unwrap_err();
    let text = cp_runtime::error::chain(&e);
    assert!(
        text.contains("every service failed") && text.contains("writing to destination"),
        "{text}"
    );
    let store = support::store(&t).await;
    let listed = run::list(&store, None).await.unwrap();
    // The failed run aborted its uploads: whatever it left has no manifest.
    for e in listed.iter().filter(|e| e.id != first.id) {
        assert_eq!(e.state, SetState::Incomplete, "no manifest: {e:?}");
    }
    let older = listed
        .iter()
        .find(|e| e.id == first.id)
        .expect("the older set is still there");
    assert_eq!(older.state, SetState::Complete);
    let (_, report) = run::verify(&store, &first.id, None, None).await.unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}
