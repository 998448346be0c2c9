//! Stream snapshots travel on controlplane's own inbox prefix, and the app user may
//! subscribe to its own prefix only: while a snapshot of a stream holding every
//! tenant's audit events runs, the app user receives nothing of it (the server refuses
//! its subscriptions to `_INBOX.>`, `_INBOX_CP.>` and `>`), yet it still gets replies
//! to its own requests.

use std::time::Duration;

use async_nats::jetstream;
use cp_core::names::CoreKind;
use cp_testkit::TestEnv;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_user_receives_nothing_of_a_running_snapshot() {
    let dest = tempfile::tempdir().unwrap();
    let d = format!("backup.destinations.local.path={}", dest.path().display());
    let t = TestEnv::only(
        &[CoreKind::Nats],
        &["backup.enabled=true", "backup.services=[nats]", &d],
    );
    t.up().await.expect("up");
    let a = t.access().await;
    cp_seed::seed_all(&a, &t.env).await.expect("seed");
    let n = a.nats.as_ref().unwrap();
    let js = cp_runtime::nats::jetstream_admin(n).await.unwrap();
    for i in 0..200 {
        js.publish(
            format!("events.audit.t{}", i % 3),
            (0..2048)
                .map(|_| rand::random::<u8>())
                .collect::<Vec<u8>>()
                .into(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }

    let nats = t.env.services.nats.as_ref().unwrap();
    let prefix = cp_core::serverconf::app_inbox_prefix(nats);
    let (tx, mut errors) = mpsc::unbounded_channel();
    let app = async_nats::ConnectOptions::new()
        .user_and_password(nats.app_user.clone(), n.app_password.expose().to_owned())
        .custom_inbox_prefix(prefix.clone())
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = e {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(n.endpoint.addr())
        .await
        .unwrap();
    // Its own replies still reach it.
    let names: Vec<String> = jetstream::new(app.clone())
        .stream_names()
        .try_collect()
        .await
        .unwrap();
    assert!(names.contains(&"AUDIT_EVENTS".to_owned()));

    let mut subs = Vec::new();
    for subject in ["_INBOX.>", "_INBOX_CP.>", ">", "$JS.SNAPSHOT.>"] {
        subs.push(app.subscribe(subject).await.unwrap());
        app.flush().await.unwrap();
        let e = tokio::time::timeout(Duration::from_secs(10), errors.recv())
            .await
            .unwrap_or_else(|_| panic!("the server accepted a subscription to {subject}"))
            .unwrap();
        assert!(
            e.contains("Permissions Violation") && e.contains(subject),
            "{e}"
        );
    }
    subs.push(app.subscribe(format!("{prefix}.>")).await.unwrap());
    let mut all = futures::stream::select_all(subs);

    // A snapshot of every stream runs while the app listens.
    let store = {
        let b = t.env.backup.as_ref().unwrap();
        cp_backup::dest::Store::open(&b.destinations, None, &t.root, &t.secrets)
            .await
            .unwrap()
    };
    let w = cp_backup::set::SetWriter {
        store,
        id: cp_backup::BackupId::new(chrono::Utc::now()),
        codec: cp_backup::run::codec(t.env.backup.as_ref().unwrap()).unwrap(),
        meter: Default::default(),
    };
    let part = cp_backup::nats::backup(&w, n).await.expect("snapshot");
    let audit = part
        .artifacts
        .iter()
        .find(|x| x.name.as_str().contains("AUDIT_EVENTS.snapshot"))
        .unwrap();
    assert!(
        audit.size > 100_000,
        "the snapshot carried the messages: {audit:?}"
    );
    app.flush().await.unwrap();
    let got = tokio::time::timeout(Duration::from_millis(500), all.next()).await;
    assert!(
        got.is_err(),
        "the app user received {:?}",
        got.unwrap().map(|m| m.subject)
    );
}
