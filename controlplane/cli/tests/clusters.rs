//! Clusters on the process platform end to end, through the `controlplane` binary:
//! a 3-node NATS cluster (streams replicated 3 ways) and a 3-node OpenBao raft
//! cluster come up through `up` and are seeded once; SIGKILL of the node leading a
//! stream's RAFT group loses no acknowledged message and publishes resume after the
//! election; SIGKILL of the active OpenBao node makes another active and the seeded
//! transit key still encrypts and decrypts; `status` shows the dead nodes down; `up`
//! brings them back and they rejoin (3 current stream peers, 3 raft voters); both
//! clusters are recorded as initialised, and with every node's data gone `plan` shows
//! them blocked and `up` refuses. The failover times are printed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::{controlplane, text};

use cp_core::names::CoreKind;
use serde_json::{Value, json};

const STREAM: &str = "CAPSULE_EVENTS";
const SUBJECT: &str = "events.capsule.failover";

/// A base port with the 15 ports above it free too (the nodes listen on base+i and
/// base+2i of each configured port).
fn port_block() -> u16 {
    cp_testkit::free_port_block(16)
}

fn status_json(state: &Path, sets: &[String]) -> Value {
    let o = controlplane(state, sets, &["--output", "json", "status"]);
    assert!(
        matches!(o.status.code(), Some(0 | 1)),
        "status failed:\n{}",
        text(&o)
    );
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("status json: {e}\n{}", text(&o)))
}

fn row<'v>(status: &'v Value, name: &str) -> &'v Value {
    status["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["service"] == name)
        .unwrap_or_else(|| panic!("{name} missing from status: {status}"))
}

fn recorded_pid(state: &Path, unit: &str) -> i32 {
    let rec: Value =
        serde_json::from_slice(&std::fs::read(state.join(unit).join("process.json")).unwrap())
            .unwrap();
    i32::try_from(rec["pid"].as_u64().expect("a pid")).unwrap()
}

fn kill9(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("SIGKILL");
}

/// A generated secret of the environment (kept in the state directory).
fn generated(state: &Path, setting: &str) -> String {
    let all: Value =
        serde_json::from_slice(&std::fs::read(state.join("secrets.json")).unwrap()).unwrap();
    let found = all
        .as_object()
        .and_then(|m| {
            m.iter()
                .find(|(k, _)| k.ends_with(setting))
                .and_then(|(_, v)| v.as_str().map(str::to_owned))
        })
        .or_else(|| all["secrets"][setting].as_str().map(str::to_owned));
    found.unwrap_or_else(|| {
        panic!(
            "{setting} not in secrets.json: keys {:?}",
            all.as_object().map(|m| m.keys().collect::<Vec<_>>())
        )
    })
}

async fn stream_info(client: &async_nats::Client) -> Value {
    let reply = client
        .request(format!("$JS.API.STREAM.INFO.{STREAM}"), "".into())
        .await
        .expect("stream info");
    serde_json::from_slice(&reply.payload).unwrap()
}

/// Node index of a server name `<project>-<env>-nats-<i>`.
fn node_of(name: &str) -> u16 {
    name.rsplit('-').next().unwrap().parse().unwrap()
}

async fn vault_health(port: u16) -> Option<u16> {
    let r = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/sys/health"))
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .ok()?;
    Some(r.status().as_u16())
}

async fn active_vault(ports: &[u16]) -> Option<u16> {
    for &p in ports {
        if vault_health(p).await == Some(200) {
            return Some(p);
        }
    }
    None
}

async fn vault_call(port: u16, token: &str, path: &str, body: Option<Value>) -> Value {
    let c = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/{path}");
    let req = match body {
        Some(b) => c.post(url).json(&b),
        None => c.get(url),
    };
    let r = req.header("X-Vault-Token", token).send().await.unwrap();
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: HTTP {status}: {v}");
    v
}

async fn raft_voters(port: u16, token: &str) -> (usize, usize) {
    let v = vault_call(port, token, "sys/storage/raft/configuration", None).await;
    let servers = v["data"]["config"]["servers"].as_array().unwrap().clone();
    let voters = servers.iter().filter(|s| s["voter"] == true).count();
    (servers.len(), voters)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_node_nats_and_openbao_fail_over_and_rejoin() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("dev");
    // However the test ends, no node outlives it.
    let _down = cp_testkit::Down::processes_in(&state);
    let base = port_block();
    let nats_ports: Vec<u16> = (0..3).map(|i| base + i).collect();
    let vault_ports: Vec<u16> = (0..3).map(|i| base + 9 + 2 * i).collect();
    let mut sets = cp_testkit::only(&[CoreKind::Nats, CoreKind::Vault]);
    sets.extend([
        "platform=process".to_owned(),
        format!("services.nats.port={base}"),
        format!("services.nats.monitor_port={}", base + 3),
        format!("services.nats.cluster_port={}", base + 6),
        "services.nats.replicas=3".to_owned(),
        format!("services.vault.port={}", base + 9),
        format!("services.vault.cluster_port={}", base + 10),
        "services.vault.replicas=3".to_owned(),
    ]);
    for s in [
        "CAPSULE_EVENTS",
        "PLAN_EVENTS",
        "EXECUTION_EVENTS",
        "APPROVAL_EVENTS",
        "AUDIT_EVENTS",
        "SYSTEM_EVENTS",
        "WEBHOOK_DELIVERY",
    ] {
        sets.push(format!("streams.{s}.replicas=3"));
    }

    // Cold up, seeded once: the plan afterwards has nothing to do.
    let t = Instant::now();
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "up failed:\n{}", text(&o));
    println!(
        "cold up of 3 NATS + 3 OpenBao nodes, seeded: {:?}",
        t.elapsed()
    );
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(o.status.code(), Some(0), "plan after up:\n{}", text(&o));

    let st = status_json(&state, &sets);
    for name in [
        "nats-0", "nats-1", "nats-2", "vault-0", "vault-1", "vault-2",
    ] {
        let r = row(&st, name);
        assert_eq!(r["state"]["state"], "running", "{name}: {r}");
        assert_eq!(r["health"]["health"], "healthy", "{name}: {r}");
    }

    // NATS: every client URL given; the stream is replicated on every node.
    let admin = generated(&state, "services.nats.admin_password");
    let urls: Vec<async_nats::ServerAddr> = nats_ports
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}").parse().unwrap())
        .collect();
    let client = async_nats::ConnectOptions::new()
        .user_and_password("admin".into(), admin.clone())
        .custom_inbox_prefix("_INBOX_CP")
        .connect(urls.clone())
        .await
        .expect("connect to the NATS cluster");
    let info = stream_info(&client).await;
    assert_eq!(info["config"]["num_replicas"], 3, "{info}");
    let leader = info["cluster"]["leader"]
        .as_str()
        .expect("a leader")
        .to_owned();
    let before = info["state"]["messages"].as_u64().unwrap();
    let leader_node = node_of(&leader);

    // Publish with acks (and message ids, so a retried publish is stored once) while
    // the leader is killed.
    let js = async_nats::jetstream::new(client.clone());
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let acks: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    let publisher = {
        let (acked, stop, acks, js) = (acked.clone(), stop.clone(), acks.clone(), js.clone());
        tokio::spawn(async move {
            let mut id = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", format!("failover-{id}").as_str());
                let attempt = async {
                    js.publish_with_headers(SUBJECT, headers, format!("message {id}").into())
                        .await?
                        .await
                        .map_err(async_nats::Error::from)
                };
                match tokio::time::timeout(Duration::from_secs(2), attempt).await {
                    Ok(Ok(_)) => {
                        id += 1;
                        acked.store(id, Ordering::SeqCst);
                        acks.lock().unwrap().push(Instant::now());
                    }
                    // Not acknowledged: the same message again.
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        })
    };
    let wait_acked = |n: u64, within: Duration| {
        let acked = acked.clone();
        async move {
            let end = Instant::now() + within;
            while acked.load(Ordering::SeqCst) < n {
                assert!(
                    Instant::now() < end,
                    "only {} publishes acknowledged, {n} wanted within {within:?}",
                    acked.load(Ordering::SeqCst)
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    wait_acked(50, Duration::from_secs(10)).await;
    let nats_leader_pid = recorded_pid(&state, &format!("nats-{leader_node}"));
    let killed_at = Instant::now();
    kill9(nats_leader_pid);
    let at_kill = acked.load(Ordering::SeqCst);
    // Publishes keep succeeding after the election (bounded).
    wait_acked(at_kill + 50, Duration::from_secs(10)).await;
    let first_after = acks
        .lock()
        .unwrap()
        .iter()
        .copied()
        .find(|t| *t > killed_at + Duration::from_millis(1))
        .expect("an ack after the kill");
    println!(
        "NATS leader {leader} killed: first acknowledged publish after {:?}",
        first_after - killed_at
    );
    stop.store(true, Ordering::SeqCst);
    publisher.await.unwrap();
    let total = acked.load(Ordering::SeqCst);
    // No acknowledged message lost.
    let end = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let info = stream_info(&client).await;
        if info["cluster"]["leader"].is_string() {
            break info;
        }
        assert!(
            Instant::now() < end,
            "no stream leader after the kill: {info}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(after["cluster"]["leader"], leader.as_str(), "{after}");
    assert_eq!(
        after["state"]["messages"].as_u64().unwrap(),
        before + total,
        "acknowledged {total} after {before}: {after}"
    );

    // OpenBao: kill the active node; another becomes active; the seeded key works.
    let token: Value =
        serde_json::from_slice(&std::fs::read(state.join("vault/init.json")).unwrap()).unwrap();
    let token = token["root_token"].as_str().unwrap().to_owned();
    let active = active_vault(&vault_ports)
        .await
        .expect("an active OpenBao node");
    let active_node = vault_ports.iter().position(|p| *p == active).unwrap();
    let killed_at = Instant::now();
    kill9(recorded_pid(&state, &format!("vault-{active_node}")));
    let end = Instant::now() + Duration::from_secs(30);
    let new_active = loop {
        let others: Vec<u16> = vault_ports
            .iter()
            .copied()
            .filter(|p| *p != active)
            .collect();
        if let Some(p) = active_vault(&others).await {
            break p;
        }
        assert!(
            Instant::now() < end,
            "no other OpenBao node became active within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "OpenBao active node vault-{active_node} killed: a new active node after {:?}",
        killed_at.elapsed()
    );
    let plaintext = "c2VjcmV0IGZvciB0aGUgY2x1c3Rlcg==";
    let enc = vault_call(
        new_active,
        &token,
        "transit/encrypt/anumate-config",
        Some(json!({"plaintext": plaintext})),
    )
    .await;
    let ciphertext = enc["data"]["ciphertext"].as_str().unwrap().to_owned();
    let dec = vault_call(
        new_active,
        &token,
        "transit/decrypt/anumate-config",
        Some(json!({"ciphertext": ciphertext})),
    )
    .await;
    assert_eq!(dec["data"]["plaintext"], plaintext);

    // status shows both dead nodes down, the others healthy; it exits 1.
    let o = controlplane(&state, &sets, &["--output", "json", "status"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let st: Value = serde_json::from_slice(&o.stdout).unwrap();
    for (name, dead) in [
        (format!("nats-{leader_node}"), true),
        (format!("vault-{active_node}"), true),
    ] {
        let r = row(&st, &name);
        assert_eq!(r["state"]["state"] != "running", dead, "{name}: {r}");
    }
    for i in 0..3 {
        if i != usize::from(leader_node) {
            assert_eq!(
                row(&st, &format!("nats-{i}"))["health"]["health"],
                "healthy"
            );
        }
        if i != active_node {
            assert_eq!(
                row(&st, &format!("vault-{i}"))["health"]["health"],
                "healthy"
            );
        }
    }

    // up brings them back and they rejoin.
    let t = Instant::now();
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "up after the kills:\n{}", text(&o));
    println!("up restarting the two dead nodes: {:?}", t.elapsed());
    let st = status_json(&state, &sets);
    for name in [
        "nats-0", "nats-1", "nats-2", "vault-0", "vault-1", "vault-2",
    ] {
        assert_eq!(
            row(&st, name)["health"]["health"],
            "healthy",
            "{name}: {st}"
        );
    }
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let info = stream_info(&client).await;
        let current = info["cluster"]["replicas"]
            .as_array()
            .map_or(0, |r| r.iter().filter(|p| p["current"] == true).count());
        if info["cluster"]["leader"].is_string() && current == 2 {
            assert_eq!(info["state"]["messages"].as_u64().unwrap(), before + total);
            break;
        }
        assert!(
            Instant::now() < end,
            "the stream has no 3 current peers after up: {info}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let active = active_vault(&vault_ports).await.expect("an active node");
    assert_eq!(raft_voters(active, &token).await, (3, 3));

    // Both clusters are recorded as initialised, OpenBao with its cluster id; with
    // every node's data gone, neither is started empty again.
    let rec = std::fs::read_to_string(state.join("initialised/vault.json"))
        .expect("an OpenBao cluster is recorded as initialised");
    assert!(rec.contains("cluster id "), "{rec}");
    assert!(state.join("initialised/nats.json").exists());
    let o = controlplane(&state, &sets, &["down"]);
    assert!(o.status.success(), "down:\n{}", text(&o));
    for i in 0..3 {
        std::fs::remove_dir_all(state.join(format!("vault-{i}/data"))).unwrap();
        std::fs::remove_dir_all(state.join(format!("nats-{i}/jetstream"))).unwrap();
    }
    let o = controlplane(&state, &sets, &["plan"]);
    assert_eq!(o.status.code(), Some(2), "plan:\n{}", text(&o));
    for kind in ["vault", "nats"] {
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(&format!(
                "(blocked: data missing: {kind} was initialised at"
            )),
            "{kind}:\n{}",
            text(&o)
        );
    }
    let o = controlplane(&state, &sets, &["up"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "up on missing data:\n{}",
        text(&o)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("the data directories of its nodes"),
        "{}",
        text(&o)
    );
    assert!(
        (0..3).all(|i| !state.join(format!("vault-{i}/data")).exists()),
        "a refused up started a node on an empty directory"
    );

    let o = controlplane(&state, &sets, &["down", "--volumes", "--yes"]);
    assert!(o.status.success(), "down:\n{}", text(&o));
}

/// What a 3-node NATS cluster keeps when every node is SIGKILLed right after the last
/// acknowledged publish: (acknowledged, the last acknowledged sequence, messages in
/// the stream after `up`, its last sequence).
async fn kill_every_node_after_acks(sync: &str) -> (u64, u64, u64, u64) {
    const SUBJECT: &str = "events.capsule.durability";
    const PUBLISHES: u64 = 300;
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("dev");
    // However the test ends, no node outlives it.
    let _down = cp_testkit::Down::processes_in(&state);
    let base = port_block();
    let nats_ports: Vec<u16> = (0..3).map(|i| base + i).collect();
    let mut sets = cp_testkit::only(&[CoreKind::Nats]);
    sets.extend([
        "platform=process".to_owned(),
        format!("services.nats.port={base}"),
        format!("services.nats.monitor_port={}", base + 3),
        format!("services.nats.cluster_port={}", base + 6),
        "services.nats.replicas=3".to_owned(),
        format!("services.nats.sync={sync}"),
        format!("streams.{STREAM}.replicas=3"),
    ]);
    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "up failed:\n{}", text(&o));
    // The configuration every node runs carries the setting.
    for i in 0..3 {
        let dir = state.join(format!("nats-{i}"));
        let conf = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "conf"))
            .unwrap_or_else(|| panic!("no .conf in {}", dir.display()));
        let conf = std::fs::read_to_string(conf).unwrap();
        assert!(conf.contains("sync_interval: "), "{conf}");
    }

    let admin = generated(&state, "services.nats.admin_password");
    let urls: Vec<async_nats::ServerAddr> = nats_ports
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}").parse().unwrap())
        .collect();
    let connect = || {
        async_nats::ConnectOptions::new()
            .user_and_password("admin".into(), admin.clone())
            .custom_inbox_prefix("_INBOX_CP")
            .connect(urls.clone())
    };
    let client = connect().await.expect("connect to the NATS cluster");
    let before = stream_info(&client).await["state"]["messages"]
        .as_u64()
        .unwrap();
    let js = async_nats::jetstream::new(client.clone());
    let mut last_seq = 0;
    for id in 0..PUBLISHES {
        let ack = js
            .publish(SUBJECT, format!("message {id}").into())
            .await
            .expect("publish")
            .await
            .expect("acknowledged");
        last_seq = ack.sequence;
    }
    // Every node at once, right after the last acknowledgement: no clean shutdown.
    let pids: Vec<i32> = (0..3)
        .map(|i| recorded_pid(&state, &format!("nats-{i}")))
        .collect();
    for pid in pids {
        kill9(pid);
    }
    drop(client);

    let o = controlplane(&state, &sets, &["up"]);
    assert!(o.status.success(), "up after the kills:\n{}", text(&o));
    let client = connect().await.expect("reconnect");
    let end = Instant::now() + Duration::from_secs(20);
    let info = loop {
        let info = tokio::time::timeout(Duration::from_secs(2), async {
            let reply = client
                .request(format!("$JS.API.STREAM.INFO.{STREAM}"), "".into())
                .await
                .ok()?;
            serde_json::from_slice::<Value>(&reply.payload).ok()
        })
        .await
        .ok()
        .flatten();
        if let Some(info) = info
            && info["cluster"]["leader"].is_string()
        {
            break info;
        }
        assert!(Instant::now() < end, "no stream leader after up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let found = info["state"]["messages"].as_u64().unwrap() - before;
    let found_last = info["state"]["last_seq"].as_u64().unwrap();
    let o = controlplane(&state, &sets, &["down", "--volumes", "--yes"]);
    assert!(o.status.success(), "down:\n{}", text(&o));
    (PUBLISHES, last_seq, found, found_last)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_sync_always_keeps_every_acknowledged_message_when_every_node_is_killed() {
    let (acked, last_seq, found, found_last) = kill_every_node_after_acks("always").await;
    println!(
        "sync always: {acked} acknowledged (last sequence {last_seq}); after SIGKILL of all 3 nodes and up: {found} (last sequence {found_last})"
    );
    assert_eq!(found, acked, "acknowledged messages lost");
    assert_eq!(found_last, last_seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_lazy_sync_reports_what_sigkill_of_every_node_loses() {
    // The server's default interval: reported, not asserted (a process kill leaves the
    // page cache, so this disk may lose nothing; a machine failure would).
    let (acked, last_seq, found, found_last) = kill_every_node_after_acks("2m").await;
    println!(
        "sync 2m: {acked} acknowledged (last sequence {last_seq}); after SIGKILL of all 3 nodes and up: {found} (last sequence {found_last}); lost {}",
        acked.saturating_sub(found)
    );
}
