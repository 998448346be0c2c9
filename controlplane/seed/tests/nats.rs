//! JetStream seeding against a real NATS server (started by the process driver with
//! the server config from `cp_core::serverconf::nats_conf`): streams created from the
//! environment, a second run changes nothing, an in-place change is applied, a change
//! JetStream cannot make is refused before anything is touched, and the app user is
//! held to its subjects while the admin is not.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use cp_core::names::CoreKind;
use cp_seed::NatsAccess;
use cp_testkit::{TestEnv, load_dev};
use futures::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;

/// How long a test waits for something that takes milliseconds.
const WAIT: Duration = Duration::from_secs(10);

async fn started() -> (TestEnv, NatsAccess) {
    let t = TestEnv::only(&[CoreKind::Nats], &[]);
    t.up().await.expect("NATS comes up");
    let access = t.access().await.nats.expect("nats enabled");
    (t, access)
}

/// `t`'s environment with more `--set`s (the server keeps running).
fn with(t: &TestEnv, sets: &[&str]) -> cp_core::Environment {
    let mut all = t.sets.clone();
    all.extend(sets.iter().map(|s| (*s).to_owned()));
    load_dev(&all)
}

async fn client(a: &NatsAccess, user: &str, password: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .user_and_password(user.into(), password.into())
        .connect(a.endpoint.addr())
        .await
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
}

async fn admin(a: &NatsAccess) -> jetstream::Context {
    jetstream::new(client(a, "admin", a.admin_password.expose()).await)
}

async fn config(js: &jetstream::Context, name: &str) -> (stream::Config, u64) {
    let info = js
        .get_stream(name)
        .await
        .unwrap_or_else(|e| panic!("stream {name}: {e}"))
        .cached_info()
        .clone();
    (info.config, info.state.messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_created_once_and_a_second_seed_changes_nothing() {
    let (t, a) = started().await;
    let first = cp_seed::nats::seed(&a, &t.env).await.expect("first seed");
    let mut created = first.changes.clone();
    created.sort();
    assert_eq!(
        created,
        [
            "created stream APPROVAL_EVENTS",
            "created stream AUDIT_EVENTS",
            "created stream CAPSULE_EVENTS",
            "created stream EXECUTION_EVENTS",
            "created stream PLAN_EVENTS",
            "created stream SYSTEM_EVENTS",
            "created stream WEBHOOK_DELIVERY",
        ]
    );

    let js = admin(&a).await;
    let mut names: Vec<String> = js.stream_names().try_collect().await.unwrap();
    names.sort();
    assert_eq!(names.len(), 7, "{names:?}");
    // What the environment says, as the server has it (dev keeps audit for 30 days).
    let (audit, _) = config(&js, "AUDIT_EVENTS").await;
    assert_eq!(audit.subjects, ["events.audit.>"]);
    assert_eq!(audit.max_age, Duration::from_secs(30 * 86_400));
    assert_eq!(audit.discard, stream::DiscardPolicy::New);
    assert_eq!(audit.storage, stream::StorageType::File);
    assert_eq!(audit.num_replicas, 1);
    let (hooks, _) = config(&js, "WEBHOOK_DELIVERY").await;
    assert_eq!(hooks.retention, stream::RetentionPolicy::WorkQueue);
    assert_eq!(hooks.max_age, Duration::from_secs(3 * 86_400));

    let second = cp_seed::nats::seed(&a, &t.env).await.expect("second seed");
    assert!(!second.changed(), "{:?}", second.changes);
    assert_eq!(second.round_trips, 1, "one listing, no writes");
    let plan = cp_seed::nats::plan(&a, &t.env).await.unwrap();
    assert!(plan.is_empty(), "{plan}");
    assert_eq!(plan.unchanged, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_max_age_is_updated_in_place_keeping_messages() {
    let (t, a) = started().await;
    cp_seed::nats::seed(&a, &t.env).await.expect("seed");
    let js = admin(&a).await;
    js.publish("events.system.test", "kept".into())
        .await
        .unwrap()
        .await
        .expect("stored");

    let env = with(&t, &["streams.SYSTEM_EVENTS.max_age=1h"]);
    let plan = cp_seed::nats::plan(&a, &env).await.unwrap();
    assert_eq!(
        plan.to_string(),
        "  ~ stream SYSTEM_EVENTS\n      /max_age_secs: 604800 -> 3600\n\
         Plan: 0 to create, 1 to change, 0 to remove, 0 to start; 6 unchanged."
    );
    let report = cp_seed::nats::seed(&a, &env).await.expect("update");
    assert_eq!(
        report.changes,
        ["updated stream SYSTEM_EVENTS: max_age_secs 604800 -> 3600"]
    );
    let (cfg, messages) = config(&js, "SYSTEM_EVENTS").await;
    assert_eq!(cfg.max_age, Duration::from_secs(3600));
    assert_eq!(messages, 1, "updated in place, not recreated");

    let again = cp_seed::nats::seed(&a, &env).await.unwrap();
    assert!(!again.changed(), "{:?}", again.changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_or_retention_change_is_refused_and_nothing_is_touched() {
    let (t, a) = started().await;
    cp_seed::nats::seed(&a, &t.env).await.expect("seed");
    let env = with(
        &t,
        &[
            "streams.CAPSULE_EVENTS.storage=memory",
            "streams.PLAN_EVENTS.retention=interest",
            // An updatable change in the same run must not be applied either.
            "streams.SYSTEM_EVENTS.max_age=1h",
        ],
    );
    let err = cp_seed::nats::seed(&a, &env)
        .await
        .expect_err("storage and retention cannot change");
    let text = err.to_string();
    assert_eq!(err.service(), "nats");
    assert!(
        err.message().contains(
            "stream CAPSULE_EVENTS: storage is \"file\" but the environment wants \"memory\""
        ),
        "{text}"
    );
    assert!(
        err.message().contains(
            "stream PLAN_EVENTS: retention is \"limits\" but the environment wants \"interest\""
        ),
        "{text}"
    );
    assert!(err.message().contains("nothing was changed"), "{text}");
    let hint = err.hint.as_deref().unwrap_or_default();
    assert!(
        hint.contains(&format!(
            "`nats --server nats://{} --user admin --password \"$NATS_ADMIN_PASSWORD\" stream rm CAPSULE_EVENTS -f`",
            a.endpoint.addr()
        )),
        "{text}"
    );
    assert!(hint.contains("keep the old value"), "{text}");

    let js = admin(&a).await;
    assert_eq!(
        config(&js, "CAPSULE_EVENTS").await.0.storage,
        stream::StorageType::File
    );
    assert_eq!(
        config(&js, "PLAN_EVENTS").await.0.retention,
        stream::RetentionPolicy::Limits
    );
    assert_eq!(
        config(&js, "SYSTEM_EVENTS").await.0.max_age,
        Duration::from_secs(7 * 86_400)
    );
}

/// Collects the server's `-ERR`s sent to a client.
async fn watched(
    a: &NatsAccess,
    user: &str,
    password: &str,
) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    // The app user's replies come on its own inbox prefix; the admin's on the default.
    let inbox = if user == "admin" {
        "_INBOX".to_owned()
    } else {
        format!("_INBOX_{user}")
    };
    let c = async_nats::ConnectOptions::new()
        .custom_inbox_prefix(inbox)
        .user_and_password(user.into(), password.into())
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(e) = e {
                    let _ = tx.send(e.to_string());
                }
            }
        })
        .connect(a.endpoint.addr())
        .await
        .unwrap_or_else(|e| panic!("connect as {user}: {e}"));
    (c, rx)
}

/// Waits for the server error about `what`.
async fn violation(rx: &mut mpsc::UnboundedReceiver<String>, what: &str) {
    let got = tokio::time::timeout(WAIT, async {
        while let Some(e) = rx.recv().await {
            if e.contains(what) {
                return e;
            }
        }
        panic!("the connection closed before the server reported `{what}`");
    })
    .await
    .unwrap_or_else(|_| panic!("the server reported no `{what}`"));
    assert!(got.contains("Permissions Violation"), "{got}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_user_is_held_to_its_subjects_and_the_admin_is_not() {
    let (t, a) = started().await;
    cp_seed::nats::seed(&a, &t.env).await.expect("seed");
    let app_user = t.env.services.nats.as_ref().unwrap().app_user.clone();
    let (app, mut errors) = watched(&a, &app_user, a.app_password.expose()).await;

    // Its own subjects, through JetStream with the ack awaited.
    let js = jetstream::new(app.clone());
    let ack = js
        .publish("events.capsule.t1.created", "{}".into())
        .await
        .unwrap()
        .await
        .expect("the app publishes on its subjects");
    assert_eq!(ack.stream, "CAPSULE_EVENTS");
    let mut own = app.subscribe("events.plan.>").await.unwrap();
    app.publish("events.plan.x", "p".into()).await.unwrap();
    let m = tokio::time::timeout(WAIT, own.next())
        .await
        .expect("delivered")
        .unwrap();
    assert_eq!(m.subject.as_str(), "events.plan.x");

    // Anything else is refused by the server.
    app.publish("billing.invoices", "x".into()).await.unwrap();
    app.flush().await.unwrap();
    violation(&mut errors, "Publish to \"billing.invoices\"").await;
    let _sub = app.subscribe("billing.>").await.unwrap();
    app.flush().await.unwrap();
    violation(&mut errors, "Subscription to \"billing.>\"").await;
    // It uses streams but does not manage them.
    app.publish("$JS.API.STREAM.DELETE.CAPSULE_EVENTS", "".into())
        .await
        .unwrap();
    app.flush().await.unwrap();
    violation(
        &mut errors,
        "Publish to \"$JS.API.STREAM.DELETE.CAPSULE_EVENTS\"",
    )
    .await;
    assert!(admin(&a).await.get_stream("CAPSULE_EVENTS").await.is_ok());

    // The admin may use any subject.
    let (adm, mut admin_errors) = watched(&a, "admin", a.admin_password.expose()).await;
    let mut sub = adm.subscribe("billing.>").await.unwrap();
    adm.publish("billing.invoices", "ok".into()).await.unwrap();
    let m = tokio::time::timeout(WAIT, sub.next())
        .await
        .expect("delivered to the admin")
        .unwrap();
    assert_eq!(&m.payload[..], b"ok");
    assert!(admin_errors.try_recv().is_err(), "no errors for the admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_allowed_to_be_recreated_is_recreated_and_only_that_one() {
    let (t, a) = started().await;
    cp_seed::nats::seed(&a, &t.env).await.expect("seed");
    let js = admin(&a).await;
    js.publish("events.capsule.x", "old".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let recreate = cp_seed::nats::Options {
        recreate: vec![cp_core::names::StreamName::new("CAPSULE_EVENTS").unwrap()],
    };

    // Another blocked stream still stops the whole run.
    let both = with(
        &t,
        &[
            "streams.CAPSULE_EVENTS.storage=memory",
            "streams.PLAN_EVENTS.retention=interest",
        ],
    );
    let err = cp_seed::nats::seed_with(&a, &both, &recreate)
        .await
        .expect_err("PLAN_EVENTS is not allowed to be recreated");
    assert!(err.message().contains("stream PLAN_EVENTS"), "{err}");
    assert!(!err.message().contains("CAPSULE_EVENTS"), "{err}");
    assert_eq!(config(&js, "CAPSULE_EVENTS").await.1, 1, "untouched");

    let env = with(&t, &["streams.CAPSULE_EVENTS.storage=memory"]);
    let report = cp_seed::nats::seed_with(&a, &env, &recreate)
        .await
        .expect("recreate");
    assert_eq!(
        report.changes,
        [
            "recreated stream CAPSULE_EVENTS (its messages were deleted): storage \"file\" -> \"memory\""
        ]
    );
    let (cfg, messages) = config(&js, "CAPSULE_EVENTS").await;
    assert_eq!(cfg.storage, stream::StorageType::Memory);
    assert_eq!(messages, 0);
    assert!(!cp_seed::nats::seed(&a, &env).await.unwrap().changed());
}
