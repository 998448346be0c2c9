//! The CloudEvents publisher against a real NATS server with the seeded streams: an
//! event is stored in `SYSTEM_EVENTS` as a CloudEvents 1.0 structured JSON document
//! with every required attribute (and `tenantid` when about a tenant), publishing the
//! same event twice stores it once, and a publisher without the streams says what to do.

use async_nats::jetstream;
use cp_core::names::CoreKind;
use cp_seed::NatsAccess;
use cp_seed::events::{Event, Publisher};
use cp_testkit::TestEnv;
use serde_json::{Value, json};
use uuid::Uuid;

async fn started(seed: bool) -> (TestEnv, NatsAccess) {
    let t = TestEnv::only(&[CoreKind::Nats], &[]);
    t.up().await.expect("NATS comes up");
    let access = t.access().await.nats.expect("nats enabled");
    if seed {
        cp_seed::nats::seed(&access, &t.env)
            .await
            .expect("seed the streams");
    }
    (t, access)
}

async fn system_events(a: &NatsAccess) -> jetstream::stream::Stream {
    let c = async_nats::ConnectOptions::new()
        .user_and_password("admin".into(), a.admin_password.expose().into())
        .connect(a.endpoint.addr())
        .await
        .expect("connect as admin");
    jetstream::new(c)
        .get_stream("SYSTEM_EVENTS")
        .await
        .expect("SYSTEM_EVENTS exists")
}

/// The stored event on `subject`, with its `Nats-Msg-Id` and content type.
async fn stored(a: &NatsAccess, subject: &str) -> (Value, String, String) {
    let m = system_events(a)
        .await
        .get_last_raw_message_by_subject(subject)
        .await
        .unwrap_or_else(|e| panic!("no message on {subject}: {e}"));
    let header = |n: &str| {
        m.headers
            .get(n)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default()
    };
    let doc = serde_json::from_slice(&m.payload).expect("the payload is JSON");
    (doc, header("Nats-Msg-Id"), header("Content-Type"))
}

/// The CloudEvents 1.0 required attributes, and the optional ones we always set.
fn assert_cloudevent(doc: &Value, kind: &str) -> Uuid {
    let s = |k: &str| {
        doc[k]
            .as_str()
            .unwrap_or_else(|| panic!("`{k}` missing or not a string in {doc}"))
    };
    assert_eq!(s("specversion"), "1.0");
    let id: Uuid = s("id").parse().expect("id is a UUID");
    assert_eq!(s("source"), "/controlplane/dev");
    assert_eq!(s("type"), format!("io.anumate.controlplane.{kind}"));
    chrono::DateTime::parse_from_rfc3339(s("time")).expect("time is RFC 3339");
    assert_eq!(s("datacontenttype"), "application/json");
    assert!(doc.get("data").is_some(), "{doc}");
    // Extension attribute names are lower-case alphanumerics (CloudEvents 1.0).
    for k in doc.as_object().unwrap().keys() {
        assert!(
            k.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
            "attribute `{k}` is not a valid CloudEvents name"
        );
    }
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_event_is_stored_as_a_cloudevent_with_its_tenant() {
    let (_t, a) = started(true).await;
    let p = Publisher::connect(&a, "dev").await.expect("connect");
    let tenant = Uuid::new_v4();
    let event = Event::new("tenant.created", json!({"name": "acme"})).tenant(tenant);
    let sent = event.id;
    assert_eq!(p.subject(&event), "events.system.tenant.created");
    p.publish(event).await.expect("published and acked");

    let (doc, msg_id, content_type) = stored(&a, "events.system.tenant.created").await;
    let id = assert_cloudevent(&doc, "tenant.created");
    assert_eq!(id, sent);
    assert_eq!(msg_id, sent.to_string(), "Nats-Msg-Id is the event id");
    assert_eq!(content_type, "application/cloudevents+json");
    assert_eq!(doc["tenantid"], tenant.to_string());
    assert_eq!(doc["data"], json!({"name": "acme"}));

    // Not about a tenant: no `tenantid`.
    p.publish(Event::new("up.completed", json!({"services": ["nats"]})))
        .await
        .expect("published");
    let (doc, _, _) = stored(&a, "events.system.up.completed").await;
    assert_cloudevent(&doc, "up.completed");
    assert!(doc.get("tenantid").is_none(), "{doc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_published_twice_is_stored_once() {
    let (_t, a) = started(true).await;
    let p = Publisher::connect(&a, "dev").await.expect("connect");
    let event = Event::new("seed.completed", json!({"changes": 3}));
    p.publish(event.clone()).await.expect("first");
    p.publish(event.clone())
        .await
        .expect("a retry is acked too");
    assert_eq!(system_events(&a).await.cached_info().state.messages, 1);
    // A new event with the same content is a new event.
    p.publish(Event::new("seed.completed", json!({"changes": 3})))
        .await
        .unwrap();
    assert_eq!(system_events(&a).await.cached_info().state.messages, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_types_and_missing_streams_say_what_to_do() {
    let (t, a) = started(false).await;
    let err = Publisher::connect(&a, "dev")
        .await
        .expect_err("no streams yet");
    assert!(err.to_string().contains("SYSTEM_EVENTS"), "{err}");
    assert!(err.to_string().contains("controlplane seed"), "{err}");

    cp_seed::nats::seed(&a, &t.env).await.unwrap();
    let p = Publisher::connect(&a, "dev").await.expect("connect");
    let err = p
        .publish(Event::new("tenant.*", json!({})))
        .await
        .expect_err("a wildcard is not a subject");
    assert!(err.to_string().contains("tenant.*"), "{err}");
    assert_eq!(system_events(&a).await.cached_info().state.messages, 0);
}
