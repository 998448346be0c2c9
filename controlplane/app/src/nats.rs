//! The operator's NATS commands (`nats pub`, `nats sub`, `nats stream ls|info`), as the
//! admin identity: seed 000's `nats pub events.test`, `sub events.*` and `stream ls`
//! need more than the least-privilege app user may do (it publishes and subscribes
//! only on the declared streams' subjects and cannot list streams; README "NATS").

use std::time::Duration;

use async_nats::jetstream;
use futures::{StreamExt as _, TryStreamExt as _};

use crate::error::AppError;
use crate::session::Session;
use crate::views::{
    NatsMessageView, NatsPublishView, NatsStreamInfoView, NatsStreamsView, StreamView,
};

/// How long a publish waits for JetStream's acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

fn failed(what: impl Into<String>, e: impl std::error::Error + Send + Sync + 'static) -> AppError {
    AppError::Nats {
        what: what.into(),
        source: Box::new(e),
    }
}

/// The NATS admin connection (`connect_admin`), with the environment's NATS
/// settings and endpoints for views that show them. One way in for every operator
/// command and `ops::nats`.
pub(crate) async fn admin(
    s: &Session,
) -> Result<
    (
        async_nats::Client,
        &cp_core::model::Nats,
        cp_runtime::access::NatsAccess,
    ),
    AppError,
> {
    let disabled = || AppError::Usage(format!("nats is disabled in {}", s.env.name));
    let n = s.env.services.nats.as_ref().ok_or_else(disabled)?;
    let access = s.access().await?;
    let a = access.nats.clone().ok_or_else(disabled)?;
    let client = cp_runtime::nats::connect_admin(&a)
        .await
        .map_err(cp_seed::SeedError::from)?;
    Ok((client, n, a))
}

fn jetstream(client: async_nats::Client) -> jetstream::Context {
    let mut js = jetstream::new(client);
    js.set_timeout(ACK_TIMEOUT);
    js
}

/// The stream whose subjects capture `subject`, among `streams` (name, subjects).
fn capturing<'a>(streams: &'a [(String, Vec<String>)], subject: &str) -> Option<&'a str> {
    streams
        .iter()
        .find(|(_, subjects)| subjects.iter().any(|p| subject_matches(p, subject)))
        .map(|(n, _)| n.as_str())
}

/// NATS subject matching: `*` matches one token, `>` the rest (one or more).
pub fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

async fn server_streams(js: &jetstream::Context) -> Result<Vec<jetstream::stream::Info>, AppError> {
    js.streams()
        .try_collect()
        .await
        .map_err(|e| failed("listing the streams", e))
}

/// `nats pub SUBJECT MSG`: publishes as the admin. A subject a stream captures is
/// published through JetStream and acknowledged (the view names the stream and the
/// sequence); any other subject is published plainly and flushed.
pub async fn publish(
    s: &Session,
    subject: &str,
    payload: Vec<u8>,
) -> Result<NatsPublishView, AppError> {
    let (client, _, _) = admin(s).await?;
    let js = jetstream(client.clone());
    let streams: Vec<(String, Vec<String>)> = server_streams(&js)
        .await?
        .into_iter()
        .map(|i| (i.config.name, i.config.subjects))
        .collect();
    let bytes = payload.len();
    let (stream, sequence) = match capturing(&streams, subject) {
        Some(name) => {
            let ack = js
                .publish(subject.to_owned(), payload.into())
                .await
                .map_err(|e| failed(format!("publishing to {subject}"), e))?
                .await
                .map_err(|e| {
                    failed(
                        format!("waiting for stream {name} to acknowledge {subject}"),
                        e,
                    )
                })?;
            (Some(ack.stream), Some(ack.sequence))
        }
        None => {
            client
                .publish(subject.to_owned(), payload.into())
                .await
                .map_err(|e| failed(format!("publishing to {subject}"), e))?;
            client
                .flush()
                .await
                .map_err(|e| failed(format!("flushing the publish to {subject}"), e))?;
            (None, None)
        }
    };
    Ok(NatsPublishView {
        subject: subject.to_owned(),
        bytes,
        stream,
        sequence,
    })
}

/// `nats sub SUBJECT`: a subscription as the admin, registered with the server when
/// this returns (so a publish after it is seen).
pub async fn subscribe(s: &Session, subject: &str) -> Result<async_nats::Subscriber, AppError> {
    let (client, _, _) = admin(s).await?;
    let sub = client
        .subscribe(subject.to_owned())
        .await
        .map_err(|e| failed(format!("subscribing to {subject}"), e))?;
    client
        .flush()
        .await
        .map_err(|e| failed(format!("subscribing to {subject}"), e))?;
    Ok(sub)
}

/// The next message of a subscription, as a view (`None` when the connection ends).
pub async fn next_message(sub: &mut async_nats::Subscriber) -> Option<NatsMessageView> {
    let m = sub.next().await?;
    Some(NatsMessageView {
        subject: m.subject.to_string(),
        data: String::from_utf8_lossy(&m.payload).into_owned(),
        bytes: m.payload.len(),
        reply: m.reply.map(|r| r.to_string()),
    })
}

fn stream_view(i: &jetstream::stream::Info, declared: bool) -> StreamView {
    StreamView {
        stream: i.config.name.clone(),
        missing: false,
        declared,
        subjects: i.config.subjects.clone(),
        messages: i.state.messages,
        bytes: i.state.bytes,
        consumers: i.state.consumer_count,
    }
}

/// `nats stream ls`: every stream on the server, and each declared one it lacks.
pub async fn streams(s: &Session) -> Result<NatsStreamsView, AppError> {
    let js = jetstream(admin(s).await?.0);
    let mut infos = server_streams(&js).await?;
    infos.sort_by(|a, b| a.config.name.cmp(&b.config.name));
    let mut streams: Vec<StreamView> = infos
        .iter()
        .map(|i| stream_view(i, s.env.streams.keys().any(|k| k.as_str() == i.config.name)))
        .collect();
    for (name, st) in &s.env.streams {
        if !infos.iter().any(|i| i.config.name == name.as_str()) {
            streams.push(StreamView {
                stream: name.to_string(),
                missing: true,
                declared: true,
                subjects: st.subjects.clone(),
                messages: 0,
                bytes: 0,
                consumers: 0,
            });
        }
    }
    Ok(NatsStreamsView { streams })
}

/// `nats stream info NAME`: one stream's configuration and state.
pub async fn stream_info(s: &Session, name: &str) -> Result<NatsStreamInfoView, AppError> {
    let js = jetstream(admin(s).await?.0);
    let infos = server_streams(&js).await?;
    let Some(i) = infos.iter().find(|i| i.config.name == name) else {
        return Err(AppError::NotFound(format!(
            "no stream {name} on the server (`controlplane nats stream ls` lists them)"
        )));
    };
    Ok(NatsStreamInfoView {
        stream: stream_view(i, s.env.streams.keys().any(|k| k.as_str() == name)),
        config: cp_seed::nats::observed_spec(&i.config),
        first_sequence: i.state.first_sequence,
        last_sequence: i.state.last_sequence,
    })
}

#[cfg(test)]
mod tests {
    use super::subject_matches;

    #[test]
    fn subjects_match_like_nats() {
        for (p, s, want) in [
            ("events.capsule.>", "events.capsule.created", true),
            ("events.capsule.>", "events.capsule", false),
            ("events.*", "events.test", true),
            ("events.*", "events.test.x", false),
            ("events.test", "events.test", true),
            (">", "a.b", true),
            ("a.b", "a", false),
        ] {
            assert_eq!(subject_matches(p, s), want, "{p} ~ {s}");
        }
    }
}
