//! The CloudEvents the control plane publishes about itself (`up.completed`,
//! `seed.completed`, `tenant.created`, `tenant.deleted`): CloudEvents 1.0 in
//! structured JSON mode, published to JetStream on a `SYSTEM_EVENTS` subject with the
//! ack awaited, and `Nats-Msg-Id` set to the event id so a retried publish is stored
//! once (within the stream's duplicate window).
//!
//! The publisher connects as the NATS admin user (the control plane's own identity:
//! the app must not be able to forge control-plane events if its subjects are ever
//! narrowed). The subject comes from the `SYSTEM_EVENTS` stream as the server has it,
//! so a publisher fails at `connect`, with a hint, when the streams were not seeded.
//! Seeding, tenants, backups and the server all publish through it.

use async_nats::jetstream::{self, message::PublishMessage};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::access::NatsAccess;
use crate::nats::ConnectError;

/// Why an event could not be published.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// NATS did not let us in.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The stream is missing (not seeded yet).
    #[error(
        "cannot read stream {STREAM}; the streams may not exist yet: run `controlplane seed` (or `up`) first"
    )]
    NoStream(#[source] jetstream::context::GetStreamError),
    /// The stream has no subject to publish under.
    #[error(
        "stream {STREAM} has no subject of the form `prefix.>` to publish events under (it has {subjects:?}); give `streams.{STREAM}.subjects` a subject such as `events.system.>`"
    )]
    NoSubject {
        /// The stream's subjects.
        subjects: Vec<String>,
    },
    /// The event type cannot be a subject.
    #[error(
        "event type `{kind}` is not usable as a NATS subject; use dot-separated words such as `tenant.created`"
    )]
    BadKind {
        /// The type.
        kind: String,
    },
    /// Publishing failed.
    #[error(
        "cannot publish {kind} to {subject}: {detail}; check that stream {STREAM} exists (`controlplane seed`) and NATS is up"
    )]
    Publish {
        /// The type.
        kind: String,
        /// The subject.
        subject: String,
        /// What the client said.
        detail: String,
    },
    /// The ack came from another stream.
    #[error(
        "{subject} was stored in stream {stream} instead of {STREAM}: two streams' subjects overlap; check `streams` in the environment"
    )]
    WrongStream {
        /// The subject.
        subject: String,
        /// Where it went.
        stream: String,
    },
}

/// The stream the control plane's events go to.
pub const STREAM: &str = "SYSTEM_EVENTS";

/// Every event type starts with this (`io.anumate.controlplane.up.completed`).
pub const TYPE_PREFIX: &str = "io.anumate.controlplane.";

/// One event, serialised as a CloudEvents 1.0 structured-mode JSON document.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Always `1.0`.
    pub specversion: &'static str,
    /// A fresh UUID (also the `Nats-Msg-Id`).
    pub id: Uuid,
    /// `/controlplane/<env>`; set by the publisher.
    pub source: String,
    /// `io.anumate.controlplane.<kind>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it happened (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    pub time: DateTime<Utc>,
    /// Always `application/json`.
    pub datacontenttype: &'static str,
    /// The tenant it is about (CloudEvents extension attribute `tenantid`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenantid: Option<Uuid>,
    /// The payload.
    pub data: Value,
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true))
}

impl Event {
    /// An event of `kind` (`up.completed`, `seed.completed`, `tenant.created`,
    /// `tenant.deleted`, or a full type starting with [`TYPE_PREFIX`]) carrying `data`.
    pub fn new(kind: &str, data: Value) -> Self {
        let kind = if kind.starts_with(TYPE_PREFIX) {
            kind.to_owned()
        } else {
            format!("{TYPE_PREFIX}{kind}")
        };
        Self {
            specversion: "1.0",
            id: Uuid::new_v4(),
            source: String::new(),
            kind,
            time: Utc::now(),
            datacontenttype: "application/json",
            tenantid: None,
            data,
        }
    }

    /// Marks the event as being about `tenant` (the `tenantid` extension attribute).
    #[must_use]
    pub fn tenant(mut self, tenant: Uuid) -> Self {
        self.tenantid = Some(tenant);
        self
    }

    /// The event type without [`TYPE_PREFIX`] (`tenant.created`).
    pub fn short_kind(&self) -> &str {
        self.kind.strip_prefix(TYPE_PREFIX).unwrap_or(&self.kind)
    }
}

/// Publishes events to `SYSTEM_EVENTS`.
#[derive(Debug, Clone)]
pub struct Publisher {
    js: jetstream::Context,
    source: String,
    /// Subjects are `<prefix>.<kind>` (`events.system.tenant.created`).
    prefix: String,
}

/// The subject prefix events go under, from the stream's subjects: the first subject
/// of the form `a.b.>` gives `a.b`.
fn subject_prefix(subjects: &[String]) -> Option<String> {
    subjects
        .iter()
        .find_map(|s| s.strip_suffix(".>"))
        .filter(|p| !p.is_empty() && !p.split('.').any(|t| t == "*" || t == ">"))
        .map(str::to_owned)
}

impl Publisher {
    /// Connects and finds where `SYSTEM_EVENTS` takes events.
    pub async fn connect(nats: &NatsAccess, env_name: &str) -> Result<Publisher, EventError> {
        let js = crate::nats::jetstream_admin(nats).await?;
        let info = js
            .get_stream(STREAM)
            .await
            .map_err(EventError::NoStream)?
            .cached_info()
            .clone();
        let prefix =
            subject_prefix(&info.config.subjects).ok_or_else(|| EventError::NoSubject {
                subjects: info.config.subjects.clone(),
            })?;
        Ok(Publisher {
            js,
            source: format!("/controlplane/{env_name}"),
            prefix,
        })
    }

    /// The subject an event goes to.
    pub fn subject(&self, event: &Event) -> String {
        format!("{}.{}", self.prefix, event.short_kind())
    }

    /// Publishes `event` and waits for JetStream to store it. Publishing the same
    /// event (same id) again stores nothing new.
    pub async fn publish(&self, mut event: Event) -> Result<(), EventError> {
        let kind = event.short_kind();
        if kind.is_empty()
            || kind
                .split('.')
                .any(|t| t.is_empty() || t == "*" || t == ">" || t.contains(char::is_whitespace))
        {
            return Err(EventError::BadKind { kind: event.kind });
        }
        if event.source.is_empty() {
            event.source.clone_from(&self.source);
        }
        let subject = self.subject(&event);
        let payload = serde_json::to_vec(&event).expect("an event serializes");
        let msg = PublishMessage::build()
            .payload(payload.into())
            .message_id(event.id.to_string())
            .header("Content-Type", "application/cloudevents+json");
        let failed = |e: &dyn std::fmt::Display| EventError::Publish {
            kind: event.kind.clone(),
            subject: subject.clone(),
            detail: e.to_string(),
        };
        let ack = self
            .js
            .send_publish(subject.clone(), msg)
            .await
            .map_err(|e| failed(&e))?
            .await
            .map_err(|e| failed(&e))?;
        if ack.stream != STREAM {
            return Err(EventError::WrongStream {
                subject,
                stream: ack.stream,
            });
        }
        tracing::debug!(
            event = %event.kind, id = %event.id, seq = ack.sequence, duplicate = ack.duplicate,
            "published event"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_from_stream_subjects() {
        assert_eq!(
            subject_prefix(&["events.system.>".into()]).as_deref(),
            Some("events.system")
        );
        assert_eq!(subject_prefix(&["events.*.>".into()]), None);
        assert_eq!(subject_prefix(&["events.system".into()]), None);
    }

    #[test]
    fn event_is_cloudevents_1_0() {
        let t = Uuid::new_v4();
        let e = Event::new("tenant.created", serde_json::json!({"name": "acme"})).tenant(t);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["type"], "io.anumate.controlplane.tenant.created");
        assert_eq!(v["tenantid"], t.to_string());
        assert_eq!(v["datacontenttype"], "application/json");
        assert!(DateTime::parse_from_rfc3339(v["time"].as_str().unwrap()).is_ok());
        assert_eq!(e.short_kind(), "tenant.created");
    }
}
