//! JetStream: every stream through `$JS.API.STREAM.SNAPSHOT.<name>` and back through
//! `$JS.API.STREAM.RESTORE.<name>`, with consumers, messages and sequence numbers.
//!
//! Snapshot: the request names a deliver subject on controlplane's own inbox prefix
//! (`_INBOX_CP`, which the app user may not subscribe to); the server sends chunks
//! there, each with a reply subject that is acknowledged once the chunk is written
//! (that is the flow control: the server holds back while chunks are unacknowledged),
//! and an empty message with status 204 at the end (an error status otherwise). The
//! snapshot reply's config and state are kept beside the data; restore sends them
//! back, then the chunks, each as a request awaiting its acknowledgement, then an
//! empty message whose reply is the restored stream's info.

use async_nats::jetstream;
use bytes::Bytes;
use cp_core::names::CoreKind;
use cp_runtime::access::NatsAccess;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::error::ServiceError;
use crate::manifest::{Detail, ServiceRecord, StreamRecord};
use crate::set::{Part, SetReader, SetWriter, find};

const S: CoreKind = CoreKind::Nats;

/// Bytes per snapshot chunk (the server's default is 128 KiB; it must stay under the
/// server's max_payload).
const CHUNK: usize = 128 * 1024;

fn nats_err(doing: impl Into<String>) -> impl FnOnce(String) -> ServiceError {
    let doing = doing.into();
    move |detail| ServiceError::Nats { doing, detail }
}

/// A JetStream API request with a JSON reply; an `error` in the reply is an error.
async fn api(
    client: &async_nats::Client,
    subject: String,
    body: Value,
) -> Result<Value, ServiceError> {
    let doing = format!("request {subject}");
    let msg = tokio::time::timeout(
        cp_runtime::nats::TIMEOUT,
        client.request(subject, serde_json::to_vec(&body).expect("json").into()),
    )
    .await
    .map_err(|_| nats_err(doing.clone())("no answer in time".into()))?
    .map_err(|e| nats_err(doing.clone())(e.to_string()))?;
    let v: Value = serde_json::from_slice(&msg.payload)
        .map_err(|e| nats_err(doing.clone())(format!("not JSON: {e}")))?;
    if let Some(e) = v.get("error") {
        return Err(nats_err(doing)(e.to_string()));
    }
    Ok(v)
}

async fn consumer_names(
    client: &async_nats::Client,
    stream: &str,
) -> Result<Vec<String>, ServiceError> {
    let v = api(
        client,
        format!("$JS.API.CONSUMER.NAMES.{stream}"),
        json!({}),
    )
    .await?;
    let mut names: Vec<String> = v["consumers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    Ok(names)
}

async fn snapshot_stream(
    w: &SetWriter,
    client: &async_nats::Client,
    name: &str,
) -> Result<(Vec<crate::manifest::Artifact>, StreamRecord), ServiceError> {
    let doing = format!("snapshot of {name}");
    let deliver = client.new_inbox();
    let mut sub = client
        .subscribe(deliver.clone())
        .await
        .map_err(|e| nats_err(doing.clone())(e.to_string()))?;
    let consumers = consumer_names(client, name).await?;
    let reply = api(
        client,
        format!("$JS.API.STREAM.SNAPSHOT.{name}"),
        json!({"deliver_subject": deliver, "chunk_size": CHUNK, "no_consumers": false, "jsck": false}),
    )
    .await?;
    let state = &reply["state"];
    let record_base = (
        state["messages"].as_u64().unwrap_or(0),
        state["first_seq"].as_u64().unwrap_or(0),
        state["last_seq"].as_u64().unwrap_or(0),
    );
    let mut data = w.artifact(S, &format!("streams/{name}.snapshot"));
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(60), sub.next())
            .await
            .map_err(|_| nats_err(doing.clone())("no chunk for 60 s".into()))?
            .ok_or_else(|| nats_err(doing.clone())("the subscription ended".into()))?;
        if msg.payload.is_empty() {
            match msg.status {
                Some(s) if s.as_u16() >= 400 => {
                    return Err(nats_err(doing)(format!(
                        "the server stopped it: {} {}",
                        s.as_u16(),
                        msg.description.unwrap_or_default()
                    )));
                }
                _ => break,
            }
        }
        data.write(msg.payload.clone()).await?;
        if let Some(r) = msg.reply {
            client
                .publish(r, Bytes::new())
                .await
                .map_err(|e| nats_err(doing.clone())(e.to_string()))?;
        }
    }
    let _ = sub.unsubscribe().await;
    let data = data.finish().await?;
    let mut meta = w.artifact(S, &format!("streams/{name}.meta.json"));
    meta.write(
        serde_json::to_vec(&json!({"config": reply["config"], "state": reply["state"]}))
            .expect("json")
            .into(),
    )
    .await?;
    let meta = meta.finish().await?;
    let record = StreamRecord {
        name: name.to_owned(),
        messages: record_base.0,
        first_seq: record_base.1,
        last_seq: record_base.2,
        consumers,
        artifact: data.name.clone(),
    };
    Ok((vec![meta, data], record))
}

/// Snapshots every stream of the account, one after the other.
pub async fn backup(w: &SetWriter, nats: &NatsAccess) -> Result<Part, ServiceError> {
    let client = cp_runtime::nats::connect_admin(nats).await?;
    let version = client.server_info().version.clone();
    let js = jetstream::new(client.clone());
    let mut names: Vec<String> = js
        .stream_names()
        .try_collect()
        .await
        .map_err(|e| nats_err("listing streams")(e.to_string()))?;
    names.sort();
    let mut artifacts = Vec::new();
    let mut streams = Vec::new();
    for n in &names {
        let (a, r) = snapshot_stream(w, &client, n).await?;
        artifacts.extend(a);
        streams.push(r);
    }
    Ok(Part {
        server_version: Some(version),
        artifacts,
        detail: Detail::Nats { streams },
    })
}

/// The streams the target has now (what a restore replaces).
pub async fn holdings(nats: &NatsAccess) -> Result<Vec<String>, ServiceError> {
    let client = cp_runtime::nats::connect_admin(nats).await?;
    let js = jetstream::new(client);
    let mut out = Vec::new();
    let names: Vec<String> = js
        .stream_names()
        .try_collect()
        .await
        .map_err(|e| nats_err("listing streams")(e.to_string()))?;
    for n in names {
        let msgs = js
            .get_stream(&n)
            .await
            .map(|s| s.cached_info().state.messages)
            .unwrap_or(0);
        if msgs > 0 {
            out.push(format!("stream {n} ({msgs} messages)"));
        }
    }
    out.sort();
    Ok(out)
}

/// What a restored stream holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The stream.
    pub name: String,
    /// Messages.
    pub messages: u64,
    /// Last sequence.
    pub last_seq: u64,
}

/// Restores every stream of `rec` (an existing stream of the same name is deleted
/// first) and checks its message count and last sequence against the manifest.
pub async fn restore(
    r: &SetReader,
    rec: &ServiceRecord,
    nats: &NatsAccess,
) -> Result<Vec<Restored>, ServiceError> {
    let Detail::Nats { streams } = &rec.detail else {
        return Err(ServiceError::NotInSet {
            service: S,
            detail: "no stream list in the manifest".into(),
        });
    };
    let client = cp_runtime::nats::connect_admin(nats).await?;
    let mut out = Vec::new();
    for s in streams {
        let doing = format!("restore of {}", s.name);
        let missing = || ServiceError::NotInSet {
            service: S,
            detail: format!("no artifacts for stream {}", s.name),
        };
        let meta =
            find(&rec.artifacts, S, &format!("streams/{}.meta", s.name)).ok_or_else(missing)?;
        let data = rec
            .artifacts
            .iter()
            .find(|a| a.name == s.artifact)
            .ok_or_else(missing)?;
        let meta: Value = serde_json::from_slice(&r.read_small(meta).await?)
            .map_err(|e| nats_err(doing.clone())(format!("its metadata is not JSON: {e}")))?;
        // Replace: a restore cannot land on an existing stream.
        let _ = api(
            &client,
            format!("$JS.API.STREAM.DELETE.{}", s.name),
            json!({}),
        )
        .await;
        let reply = api(
            &client,
            format!("$JS.API.STREAM.RESTORE.{}", s.name),
            json!({"config": meta["config"], "state": meta["state"]}),
        )
        .await?;
        let deliver = reply["deliver_subject"]
            .as_str()
            .ok_or_else(|| nats_err(doing.clone())("no deliver_subject in the reply".into()))?
            .to_owned();
        let mut src = r.open(data).await?;
        let send = |payload: Bytes| {
            let client = client.clone();
            let deliver = deliver.clone();
            let doing = doing.clone();
            async move {
                let m = tokio::time::timeout(
                    std::time::Duration::from_secs(60),
                    client.request(deliver, payload),
                )
                .await
                .map_err(|_| nats_err(doing.clone())("no acknowledgement for 60 s".into()))?
                .map_err(|e| nats_err(doing.clone())(e.to_string()))?;
                Ok::<_, ServiceError>(m)
            }
        };
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut filled = 0;
            while filled < CHUNK {
                let n = src.read(&mut buf[filled..]).await.map_err(|source| {
                    crate::pipeline::PipelineError::Io {
                        artifact: data.name.clone(),
                        what: "reading",
                        source,
                    }
                })?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            buf.truncate(filled);
            let ack = send(Bytes::from(buf)).await?;
            if !ack.payload.is_empty()
                && let Ok(v) = serde_json::from_slice::<Value>(&ack.payload)
                && let Some(e) = v.get("error")
            {
                return Err(nats_err(doing)(e.to_string()));
            }
        }
        let done = send(Bytes::new()).await?;
        let v: Value = serde_json::from_slice(&done.payload).unwrap_or(Value::Null);
        if let Some(e) = v.get("error") {
            return Err(nats_err(doing)(e.to_string()));
        }
        let info = api(
            &client,
            format!("$JS.API.STREAM.INFO.{}", s.name),
            json!({}),
        )
        .await?;
        let got = Restored {
            name: s.name.clone(),
            messages: info["state"]["messages"].as_u64().unwrap_or(0),
            last_seq: info["state"]["last_seq"].as_u64().unwrap_or(0),
        };
        if got.messages != s.messages || got.last_seq != s.last_seq {
            return Err(nats_err(doing)(format!(
                "restored {} messages up to sequence {}, the manifest says {} up to {}",
                got.messages, got.last_seq, s.messages, s.last_seq
            )));
        }
        let consumers = consumer_names(&client, &s.name).await?;
        if consumers != s.consumers {
            return Err(nats_err(doing)(format!(
                "restored consumers {consumers:?}, the manifest says {:?}",
                s.consumers
            )));
        }
        out.push(got);
    }
    Ok(out)
}

/// What trimming a stream back to a moment removed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Trimmed {
    /// The stream.
    pub stream: String,
    /// Messages stored after the moment, deleted.
    pub removed: u64,
    /// Messages left.
    pub kept: u64,
    /// When the newest message left was stored.
    pub newest_kept: Option<chrono::DateTime<chrono::Utc>>,
}

/// Deletes from every stream of `streams` the messages stored after `at` (each
/// JetStream message carries the time the server stored it). The server stamps
/// messages in sequence order, so the scan runs from the last sequence down and stops
/// at the first message stored at or before `at`. A stream with `deny_delete` refuses,
/// and the error names it.
pub async fn trim_after(
    nats: &NatsAccess,
    streams: &[String],
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Trimmed>, ServiceError> {
    let client = cp_runtime::nats::connect_admin(nats).await?;
    let mut out = Vec::new();
    for name in streams {
        let info = api(&client, format!("$JS.API.STREAM.INFO.{name}"), json!({})).await?;
        let first = info["state"]["first_seq"].as_u64().unwrap_or(0);
        let last = info["state"]["last_seq"].as_u64().unwrap_or(0);
        let mut removed = 0;
        let mut newest_kept = None;
        let mut seq = last;
        while seq >= first.max(1) {
            let doing = format!("trimming {name} to {}", at.to_rfc3339());
            let got = tokio::time::timeout(
                cp_runtime::nats::TIMEOUT,
                client.request(
                    format!("$JS.API.STREAM.MSG.GET.{name}"),
                    serde_json::to_vec(&json!({ "seq": seq }))
                        .expect("json")
                        .into(),
                ),
            )
            .await
            .map_err(|_| nats_err(doing.clone())("no answer in time".into()))?
            .map_err(|e| nats_err(doing.clone())(e.to_string()))?;
            let v: Value = serde_json::from_slice(&got.payload)
                .map_err(|e| nats_err(doing.clone())(format!("not JSON: {e}")))?;
            // A sequence already deleted (an interior hole) has no message: skip it.
            if v.get("error").is_none() {
                let stored = v["message"]["time"]
                    .as_str()
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .ok_or_else(|| nats_err(doing.clone())(format!("message {seq} has no time")))?;
                if stored <= at {
                    newest_kept = Some(stored);
                    break;
                }
                api(
                    &client,
                    format!("$JS.API.STREAM.MSG.DELETE.{name}"),
                    json!({ "seq": seq, "no_erase": true }),
                )
                .await
                .map_err(|e| {
                    nats_err(doing.clone())(format!(
                        "message {seq} could not be deleted (a stream with deny_delete cannot be trimmed): {}",
                        cp_runtime::error::chain(&e)
                    ))
                })?;
                removed += 1;
            }
            seq -= 1;
        }
        let info = api(&client, format!("$JS.API.STREAM.INFO.{name}"), json!({})).await?;
        out.push(Trimmed {
            stream: name.clone(),
            removed,
            kept: info["state"]["messages"].as_u64().unwrap_or(0),
            newest_kept,
        });
    }
    Ok(out)
}
