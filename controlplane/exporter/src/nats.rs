//! NATS's JSON monitoring as Prometheus metrics, named and labelled as
//! prometheus-nats-exporter 0.15.0 (`-varz -jsz=all`, the compose image) names them,
//! so the same rules and dashboards read either exporter:
//!
//! - every number of `/varz` as `gnatsd_varz_<field>{server_id}` (nested objects
//!   flattened: `gnatsd_varz_jetstream_stats_memory`), and its `server_id`,
//!   `server_name` and `version` as `gnatsd_varz_<field>{server_id, value} 1`;
//! - `/jsz?consumers=true&config=true` as `jetstream_server_*` (server labels
//!   `server_id, server_name, cluster, domain, meta_leader, is_meta_leader`),
//!   `jetstream_stream_*` (plus `account, account_id, stream_name, stream_leader,
//!   is_stream_leader`) and `jetstream_consumer_*` (plus `consumer_name,
//!   consumer_leader, is_consumer_leader, consumer_desc`).
//!
//! Differences: `start` and `config_load_time` are not turned into timestamps, and
//! later prometheus-nats-exporters' `consumer_created` label (not in 0.15.0) is not
//! added.
//!
//! Pure: JSON in, exposition text out. Parsing is lenient (absent fields read as
//! empty or zero) because the shapes grow between server versions; the tests hold
//! nats-server 2.9.10's real output.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::Value;

/// The query the JetStream metrics come from.
pub const JSZ_QUERY: &str = "/jsz?consumers=true&config=true";
/// Where the server metrics come from.
pub const VARZ_PATH: &str = "/varz";

type Labels = Vec<(String, String)>;
type G = Gauge<f64, AtomicU64>;

/// `/jsz` as far as the metrics need it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Jsz {
    /// JetStream is off on this server.
    pub disabled: bool,
    /// Limits and domain.
    pub config: JszConfig,
    /// Streams on this server.
    pub streams: f64,
    /// Consumers on this server.
    pub consumers: f64,
    /// Messages stored.
    pub messages: f64,
    /// Bytes stored.
    pub bytes: f64,
    /// The meta group, when clustered.
    pub meta_cluster: Option<Meta>,
    /// Accounts with their streams (with `accounts=true` or `consumers=true`).
    pub account_details: Vec<Account>,
}

/// JetStream limits.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct JszConfig {
    /// Memory store limit.
    pub max_memory: f64,
    /// File store limit.
    pub max_storage: f64,
    /// JetStream domain.
    pub domain: String,
}

/// The JetStream meta group.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Meta {
    /// Cluster name.
    pub name: String,
    /// The leader's server name.
    pub leader: String,
}

/// An account's JetStream usage.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Account {
    /// Account name.
    pub name: String,
    /// Account id.
    pub id: String,
    /// Its streams.
    pub stream_detail: Vec<Stream>,
}

/// A group's leader.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Cluster {
    /// The leader's server name.
    pub leader: String,
}

/// One stream.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Stream {
    /// Its name.
    pub name: String,
    /// Its raft group (2.9 reports the leader even for a single server).
    pub cluster: Option<Cluster>,
    /// Counts and sequences.
    pub state: StreamState,
    /// Its consumers.
    pub consumer_detail: Vec<Consumer>,
}

/// A stream's state.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct StreamState {
    /// Messages stored.
    pub messages: f64,
    /// Bytes stored.
    pub bytes: f64,
    /// First sequence.
    pub first_seq: f64,
    /// Last sequence.
    pub last_seq: f64,
    /// Consumers.
    pub consumer_count: f64,
}

/// A pair of sequences.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Seqs {
    /// Consumer sequence.
    pub consumer_seq: f64,
    /// Stream sequence.
    pub stream_seq: f64,
}

/// A consumer's configuration, as far as labels need it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConsumerConfig {
    /// Its description.
    pub description: String,
}

/// One consumer.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Consumer {
    /// Its name.
    pub name: String,
    /// Its configuration (with `config=true`).
    pub config: Option<ConsumerConfig>,
    /// Its raft group.
    pub cluster: Option<Cluster>,
    /// Last delivered.
    pub delivered: Seqs,
    /// Everything up to here is acknowledged.
    pub ack_floor: Seqs,
    /// Delivered, not acknowledged.
    pub num_ack_pending: f64,
    /// Delivered more than once.
    pub num_redelivered: f64,
    /// Pull requests waiting.
    pub num_waiting: f64,
    /// In the stream, not yet delivered.
    pub num_pending: f64,
}

/// The metric families of one scrape, by name, each with its help and series.
#[derive(Default)]
struct Families {
    families: BTreeMap<String, (String, Family<Labels, G>)>,
    unlabelled: Vec<(String, String, G)>,
}

impl Families {
    fn set_unlabelled(&mut self, name: &str, help: &str, value: f64) {
        let g = G::default();
        g.set(value);
        self.unlabelled.push((name.to_owned(), help.to_owned(), g));
    }

    fn set(&mut self, name: &str, help: &str, labels: &Labels, value: f64) {
        let (_, family) = self
            .families
            .entry(name.to_owned())
            .or_insert_with(|| (help.to_owned(), Family::default()));
        family.get_or_create(labels).set(value);
    }

    fn encode(self) -> String {
        let mut registry = Registry::default();
        for (name, help, gauge) in self.unlabelled {
            registry.register(name, help, gauge);
        }
        for (name, (help, family)) in self.families {
            registry.register(name, help, family);
        }
        let mut out = String::new();
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn flag(b: bool) -> &'static str {
    if b { "true" } else { "false" }
}

/// What one scrape saw.
#[derive(Debug, Default)]
pub struct Scrape {
    /// `/varz`, when it answered.
    pub varz: Option<serde_json::Map<String, Value>>,
    /// `/jsz`, when it answered.
    pub jsz: Option<Jsz>,
}

/// The exposition text (OpenMetrics) for one scrape, with the exporter's own
/// `controlplane_exporter_build_info{version}` and `controlplane_exporter_nats_up`
/// (1 when `/varz` answered). While NATS does not answer there is no `gnatsd_*` or
/// `jetstream_*` series at all, as with prometheus-nats-exporter: the
/// `controlplane:service_up:min` recording rule reads NATS as down from that.
pub fn exposition(scrape: &Scrape, version: &str) -> String {
    let mut f = Families::default();
    f.set(
        "controlplane_exporter_build_info",
        "The controlplane build serving these metrics",
        &labels(&[("version", version)]),
        1.0,
    );
    f.set_unlabelled(
        "controlplane_exporter_nats_up",
        "1 when the NATS monitoring endpoint answered this scrape",
        if scrape.varz.is_some() { 1.0 } else { 0.0 },
    );
    let Some(varz) = &scrape.varz else {
        return f.encode();
    };
    let text = |k: &str| varz.get(k).and_then(Value::as_str).unwrap_or_default();
    let server_id = text("server_id");
    let server_name = text("server_name");
    varz_numbers(&mut f, varz, "gnatsd_varz", server_id);
    for key in ["server_id", "server_name", "version"] {
        f.set(
            &format!("gnatsd_varz_{key}"),
            &format!("{key} from /varz"),
            &labels(&[("server_id", server_id), ("value", text(key))]),
            1.0,
        );
    }
    if let Some(jsz) = &scrape.jsz {
        jetstream(&mut f, jsz, server_id, server_name);
    }
    f.encode()
}

/// `prefix_key` as a metric name: what is not a letter, digit or `_` becomes `_`,
/// runs of `_` collapse (`http_req_stats` + `/varz` = `http_req_stats_varz`).
fn metric_name(prefix: &str, key: &str) -> String {
    let mut out = String::with_capacity(prefix.len() + key.len() + 1);
    for c in format!("{prefix}_{key}").chars() {
        let c = if c.is_ascii_alphanumeric() { c } else { '_' };
        if !(c == '_' && out.ends_with('_')) {
            out.push(c);
        }
    }
    out.trim_end_matches('_').to_owned()
}

/// Every number under `map` as `<prefix>_<key>`, nested objects flattened.
fn varz_numbers(
    f: &mut Families,
    map: &serde_json::Map<String, Value>,
    prefix: &str,
    server_id: &str,
) {
    for (key, value) in map {
        let name = metric_name(prefix, key);
        match value {
            Value::Number(n) => {
                if let Some(v) = n.as_f64() {
                    let help = format!("{} from /varz", &name["gnatsd_varz_".len()..]);
                    f.set(&name, &help, &labels(&[("server_id", server_id)]), v);
                }
            }
            Value::Object(inner) => varz_numbers(f, inner, &name, server_id),
            _ => {}
        }
    }
}

fn jetstream(f: &mut Families, jsz: &Jsz, server_id: &str, server_name: &str) {
    let (cluster, meta_leader, is_meta_leader) = match &jsz.meta_cluster {
        Some(m) => (m.name.as_str(), m.leader.as_str(), m.leader == server_name),
        None => ("", "", true),
    };
    let server = labels(&[
        ("server_id", server_id),
        ("server_name", server_name),
        ("cluster", cluster),
        ("domain", &jsz.config.domain),
        ("meta_leader", meta_leader),
        ("is_meta_leader", flag(is_meta_leader)),
    ]);
    for (name, help, v) in [
        (
            "jetstream_server_jetstream_disabled",
            "JetStream disabled or not",
            if jsz.disabled { 1.0 } else { 0.0 },
        ),
        (
            "jetstream_server_max_memory",
            "JetStream Max Memory",
            jsz.config.max_memory,
        ),
        (
            "jetstream_server_max_storage",
            "JetStream Max Storage",
            jsz.config.max_storage,
        ),
        (
            "jetstream_server_total_streams",
            "Total number of streams in JetStream",
            jsz.streams,
        ),
        (
            "jetstream_server_total_consumers",
            "Total number of consumers in JetStream",
            jsz.consumers,
        ),
        (
            "jetstream_server_total_messages",
            "Total number of stored messages in JetStream",
            jsz.messages,
        ),
        (
            "jetstream_server_total_message_bytes",
            "Total number of bytes stored in JetStream",
            jsz.bytes,
        ),
    ] {
        f.set(name, help, &server, v);
    }
    let leader = |c: &Option<Cluster>| match c {
        Some(c) => (c.leader.clone(), c.leader == server_name),
        None => (String::new(), true),
    };
    for account in &jsz.account_details {
        for stream in &account.stream_detail {
            let (stream_leader, is_stream_leader) = leader(&stream.cluster);
            let mut sl = server.clone();
            sl.extend(labels(&[
                ("account", &account.name),
                ("account_id", &account.id),
                ("stream_name", &stream.name),
                ("stream_leader", &stream_leader),
                ("is_stream_leader", flag(is_stream_leader)),
            ]));
            let s = &stream.state;
            for (name, help, v) in [
                (
                    "jetstream_stream_total_messages",
                    "Total number of messages from a stream",
                    s.messages,
                ),
                (
                    "jetstream_stream_total_bytes",
                    "Total stored bytes from a stream",
                    s.bytes,
                ),
                (
                    "jetstream_stream_first_seq",
                    "First sequence from a stream",
                    s.first_seq,
                ),
                (
                    "jetstream_stream_last_seq",
                    "Last sequence from a stream",
                    s.last_seq,
                ),
                (
                    "jetstream_stream_consumer_count",
                    "Total number of consumers from a stream",
                    s.consumer_count,
                ),
            ] {
                f.set(name, help, &sl, v);
            }
            for c in &stream.consumer_detail {
                let (consumer_leader, is_consumer_leader) = leader(&c.cluster);
                let desc = c
                    .config
                    .as_ref()
                    .map(|c| c.description.as_str())
                    .unwrap_or_default();
                let mut cl = sl.clone();
                cl.extend(labels(&[
                    ("consumer_name", &c.name),
                    ("consumer_leader", &consumer_leader),
                    ("is_consumer_leader", flag(is_consumer_leader)),
                    ("consumer_desc", desc),
                ]));
                for (name, help, v) in [
                    (
                        "jetstream_consumer_delivered_consumer_seq",
                        "Latest sequence number of a stream consumer",
                        c.delivered.consumer_seq,
                    ),
                    (
                        "jetstream_consumer_delivered_stream_seq",
                        "Latest sequence number of a stream",
                        c.delivered.stream_seq,
                    ),
                    (
                        "jetstream_consumer_num_ack_pending",
                        "Number of pending acks from a consumer",
                        c.num_ack_pending,
                    ),
                    (
                        "jetstream_consumer_num_redelivered",
                        "Number of redelivered messages from a consumer",
                        c.num_redelivered,
                    ),
                    (
                        "jetstream_consumer_num_waiting",
                        "Number of inflight fetch requests from a pull consumer",
                        c.num_waiting,
                    ),
                    (
                        "jetstream_consumer_num_pending",
                        "Number of pending messages from a consumer",
                        c.num_pending,
                    ),
                    (
                        "jetstream_consumer_ack_floor_stream_seq",
                        "Number of ack floor stream seq from a consumer",
                        c.ack_floor.stream_seq,
                    ),
                    (
                        "jetstream_consumer_ack_floor_consumer_seq",
                        "Number of ack floor consumer seq from a consumer",
                        c.ack_floor.consumer_seq,
                    ),
                ] {
                    f.set(name, help, &cl, v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// nats-server 2.9.10's real `/varz` and `/jsz?consumers=true&config=true` with
    /// one stream (ORDERS, three messages) and one durable consumer (worker).
    fn real() -> Scrape {
        let varz = include_str!("../tests/nats-2.9/varz.json");
        let jsz = include_str!("../tests/nats-2.9/jsz.json");
        Scrape {
            varz: Some(serde_json::from_str(varz).unwrap()),
            jsz: Some(serde_json::from_str(jsz).unwrap()),
        }
    }

    /// The sample lines of `name`.
    fn lines<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
            .collect()
    }

    #[test]
    fn the_series_the_rules_select_come_with_the_labels_they_select_on() {
        let text = exposition(&real(), "0.1.0");
        let sid = "NBPQGBUWO7ZNTGHZHLIUL52SSLFWL574TBPZWPKAFFOE7MW7LPQTYFHQ";
        assert_eq!(
            lines(&text, "gnatsd_varz_connections"),
            [format!(
                "gnatsd_varz_connections{{server_id=\"{sid}\"}} 0.0"
            )]
        );
        let pending = lines(&text, "jetstream_consumer_num_pending");
        assert_eq!(pending.len(), 1, "{text}");
        for want in [
            "stream_name=\"ORDERS\"",
            "consumer_name=\"worker\"",
            "consumer_desc=\"the worker\"",
            "account=\"$G\"",
            "is_stream_leader=\"true\"",
            "is_meta_leader=\"true\"",
        ] {
            assert!(pending[0].contains(want), "{want} not in {}", pending[0]);
        }
        assert!(pending[0].ends_with(" 3.0"), "{}", pending[0]);
        let floor = lines(&text, "jetstream_consumer_ack_floor_stream_seq");
        assert!(floor.len() == 1 && floor[0].ends_with(" 0.0"), "{floor:?}");
        let msgs = lines(&text, "jetstream_stream_total_messages");
        assert!(msgs.len() == 1 && msgs[0].ends_with(" 3.0"), "{msgs:?}");
        let bytes = lines(&text, "jetstream_stream_total_bytes");
        assert!(
            bytes.len() == 1 && bytes[0].ends_with(" 144.0"),
            "{bytes:?}"
        );
        assert_eq!(
            lines(&text, "gnatsd_varz_version"),
            [format!(
                "gnatsd_varz_version{{server_id=\"{sid}\",value=\"2.9.10\"}} 1.0"
            )]
        );
        assert!(text.contains("controlplane_exporter_nats_up 1.0"), "{text}");
        // Every name is a valid metric name, `/varz`'s `http_req_stats: {"/varz": 1}`
        // included.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name: String = line
                .chars()
                .take_while(|c| *c != '{' && *c != ' ')
                .collect();
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
                    && !name.starts_with(|c: char| c.is_ascii_digit()),
                "{line}"
            );
        }
        assert_eq!(
            lines(&text, "gnatsd_varz_http_req_stats_varz"),
            [format!(
                "gnatsd_varz_http_req_stats_varz{{server_id=\"{sid}\"}} 1.0"
            )]
        );
        // Nested objects flattened, as prometheus-nats-exporter does.
        assert_eq!(
            lines(&text, "gnatsd_varz_jetstream_stats_storage"),
            [format!(
                "gnatsd_varz_jetstream_stats_storage{{server_id=\"{sid}\"}} 144.0"
            )]
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn without_an_answer_there_is_no_nats_series_at_all() {
        let text = exposition(&Scrape::default(), "0.1.0");
        assert!(!text.contains("gnatsd_"), "{text}");
        assert!(!text.contains("jetstream_"), "{text}");
        assert!(text.contains("controlplane_exporter_nats_up 0.0"), "{text}");
        assert!(text.contains("controlplane_exporter_build_info{version=\"0.1.0\"} 1.0"));
    }

    #[test]
    fn a_clustered_stream_names_its_leader() {
        let jsz: Jsz = serde_json::from_value(serde_json::json!({
            "meta_cluster": {"name": "c1", "leader": "n2"},
            "account_details": [{"name": "A", "id": "A", "stream_detail": [{
                "name": "S", "cluster": {"leader": "n2"}, "state": {"messages": 1},
                "consumer_detail": [{"name": "w", "num_pending": 5}]
            }]}]
        }))
        .unwrap();
        let varz = serde_json::json!({"server_id": "X", "server_name": "n1"});
        let text = exposition(
            &Scrape {
                varz: Some(varz.as_object().unwrap().clone()),
                jsz: Some(jsz),
            },
            "0",
        );
        let p = lines(&text, "jetstream_consumer_num_pending");
        assert!(p[0].contains("cluster=\"c1\""), "{}", p[0]);
        assert!(p[0].contains("is_meta_leader=\"false\""), "{}", p[0]);
        assert!(p[0].contains("stream_leader=\"n2\""), "{}", p[0]);
        assert!(p[0].contains("is_stream_leader=\"false\""), "{}", p[0]);
        assert!(p[0].contains("is_consumer_leader=\"true\""), "{}", p[0]);
    }
}
