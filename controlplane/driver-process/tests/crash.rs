//! Interrupted runs and Vault's keys, with the real servers: an `up` killed midway
//! (SIGKILL of the process running it, or its future dropped) converges on the next
//! `up`; outside dev, Vault's keys are shown once and never stored, a sealed Vault
//! with no key fails at once saying what to set, and the keys in the variable
//! unseal it.

mod clients;
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cp_core::names::CoreKind;
use cp_drivers::DriverError;
use cp_drivers::contract::{Driver, Health};
use cp_runtime::vault::InitKeys;
use support::TestEnv;

/// Waits (polling the file system) until `cond` holds; false at the deadline.
async fn until(deadline: Duration, cond: impl Fn() -> bool) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    false
}

async fn converges(t: &TestEnv) {
    let report = t.up().await.expect("the next up converges");
    assert_eq!(report.ready.len(), 4, "{:?}", report.ready);
    let plan = t.plan().await;
    assert!(plan.is_empty(), "{plan}");
    clients::pg_write(t, "after-crash").await;
    clients::vault_kv(t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_up_killed_during_initdb_converges() {
    // In the child this test starts again: `up`, to be killed midway.
    if support::child_up_main().await {
        return;
    }
    let t = TestEnv::new(&[]);
    let mut child = support::spawn_child_up(&t, "an_up_killed_during_initdb_converges", &[]);
    // The marker names the running initdb once it started.
    let marker = t.root.join("postgres/initdb.pending");
    let hit = until(Duration::from_secs(30), || {
        std::fs::read_to_string(&marker).is_ok_and(|s| s.contains("\"pid\""))
    })
    .await;
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        hit,
        "initdb never started in the child:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    converges(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_up_killed_during_vault_init_converges() {
    // In the child this test starts again: `up`, to be killed midway.
    if support::child_up_main().await {
        return;
    }
    let t = TestEnv::new(&[]);
    let mut child = support::spawn_child_up(&t, "an_up_killed_during_vault_init_converges", &[]);
    // Written just before `PUT /v1/sys/init`, whose answer (the keys) is then lost.
    let pending = t.root.join("vault/init.pending");
    let hit = until(Duration::from_secs(30), || pending.exists()).await;
    // Let the server finish the initialisation the child asked for, and kill the
    // child before it keeps the keys (if it is not too late).
    let api = cp_runtime::vault::VaultApi::new(&cp_runtime::probe::Endpoint::local(
        t.port(CoreKind::Vault),
    ));
    let end = Instant::now() + Duration::from_secs(30);
    while hit && Instant::now() < end && !t.root.join("vault/init.json").exists() {
        if api.seal_status().await.is_ok_and(|s| s.initialized) {
            break;
        }
    }
    child.kill().unwrap();
    let lost = !t.root.join("vault/init.json").exists();
    eprintln!("vault initialised by the killed child, keys lost: {lost}");
    let out = child.wait_with_output().unwrap();
    assert!(
        hit,
        "vault init never started in the child:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    converges(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_up_whose_future_is_dropped_midway_converges() {
    let t = TestEnv::new(&[]);
    for cut in [50, 400, 900] {
        let r = tokio::time::timeout(Duration::from_millis(cut), t.up()).await;
        assert!(r.is_err(), "up finished within {cut} ms");
    }
    converges(&t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_keys_outside_dev_are_shown_once_never_stored_and_unseal_from_the_env() {
    // In the child this test starts again: `up` with the keys in the variable.
    if support::child_up_main().await {
        return;
    }
    const VAR: &str = "CP_PROCESS_TEST_UNSEAL_KEYS";
    assert!(
        std::env::var(VAR).is_err(),
        "{VAR} must not be set for this test"
    );
    let mut t = TestEnv::only(
        &[CoreKind::Vault],
        &[&format!("services.vault.unseal=env://{VAR}")],
    );
    let shown: Arc<Mutex<Vec<InitKeys>>> = Arc::default();
    let sink = shown.clone();
    t.driver = t
        .driver
        .clone()
        .with_vault_announce(Arc::new(move |k: &InitKeys| {
            sink.lock().unwrap().push(k.clone())
        }));

    // Uninitialised: `up` initialises it, shows the keys once, unseals it.
    t.up().await.expect("first up initialises and unseals");
    let keys = {
        let shown = shown.lock().unwrap();
        assert_eq!(shown.len(), 1, "keys shown exactly once");
        shown[0].clone()
    };
    assert_eq!((keys.keys.len(), keys.threshold), (5, 3));
    // Nothing of them on disk.
    let mut files = vec![t.root.clone()];
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            let bytes = std::fs::read(&p).unwrap();
            for secret in keys.keys.iter().chain([&keys.root_token]) {
                let needle = secret.expose().as_bytes();
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} holds an unseal key or the root token",
                    p.display()
                );
            }
        }
    }

    // Restarted (sealed) with the variable unset: fails at once, saying what to set.
    t.down(false).await;
    let started = Instant::now();
    let e = t.up().await.expect_err("sealed without a key");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let DriverError::VaultSealed { detail } = &e else {
        panic!("expected VaultSealed, got {e}");
    };
    assert!(detail.contains(&format!("export {VAR}=")), "{detail}");
    assert_eq!(shown.lock().unwrap().len(), 1, "keys shown again");

    // Three of the five keys in the variable unseal it (a child process: this one
    // cannot set its own environment safely).
    let three: Vec<&str> = keys.keys[..3].iter().map(|k| k.expose()).collect();
    let child = support::spawn_child_up(
        &t,
        "vault_keys_outside_dev_are_shown_once_never_stored_and_unseal_from_the_env",
        &[(VAR, &three.join(","))],
    );
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "up with the keys in {VAR} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = t.status().await;
    assert_eq!(status[0].health, Health::Healthy, "{status:?}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("WARNING: vault was just initialised")
            && !String::from_utf8_lossy(&out.stderr)
                .contains("WARNING: vault was just initialised"),
        "an initialised vault was initialised again"
    );
    // The original root token still works: the same vault, unsealed.
    let r = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/v1/auth/token/lookup-self",
            t.port(CoreKind::Vault)
        ))
        .header("X-Vault-Token", keys.root_token.expose())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let _ = t.driver.kind();
}
