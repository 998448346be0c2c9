//! Semantic validation: raw environment -> [`Environment`], or every problem found.
//!
//! Structural problems (unknown keys, wrong types) were caught by the schema check;
//! here are the rules that need the whole picture: defaults, secrets policy per tier,
//! port clashes, cron syntax, retention, disruption budgets, dependencies, `vault://`
//! references under the KV mount the rendered SecretStore reads.

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::{BOARDS, RULES, ThresholdUnit};
use crate::diag::{Diagnostic, Loc, SourceMap, closest};
use crate::model::*;
use crate::names::{
    CoreKind, EnvName, ServiceName, StreamName, is_dns_label, is_dns_name, is_identifier,
    is_pg_identifier,
};
use crate::raw::{self, RawEnvironment, RawResources};
use crate::tree::{Node, Path, PathSeg};
use crate::units::{Cpu, Duration, Memory, SecretRef};

/// Collects problems and resolves key paths to locations in the merged tree.
pub(crate) struct Cx<'a> {
    tree: &'a Node,
    sources: &'a SourceMap,
    /// Where to point when a missing key has no better place: the environment file.
    fallback: Loc,
    tier: Tier,
    /// Every `vault://` reference seen, by key path (checked against the KV mount once
    /// it is known).
    vault_refs: Vec<(String, String)>,
    pub(crate) errors: Vec<Diagnostic>,
}

impl<'a> Cx<'a> {
    pub(crate) fn new(tree: &'a Node, sources: &'a SourceMap, fallback: Loc) -> Self {
        Self {
            tree,
            sources,
            fallback,
            tier: Tier::Dev,
            vault_refs: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn path(p: &str) -> Path {
        Path::parse(p)
    }

    /// The location of a key path: a scalar value if present, else the key of the
    /// deepest mapping reached; the environment file when nothing of it exists.
    fn loc(&self, path: &str) -> crate::diag::Location {
        let segs = Self::path(path).0;
        let loc = match segs.first() {
            Some(PathSeg::Key(first)) if self.tree.get(first).is_some() => self.tree.locate(&segs),
            _ => self.fallback,
        };
        self.sources.locate(loc)
    }

    /// The location of a key itself (for "this key should not be here").
    fn key_loc(&self, path: &str) -> crate::diag::Location {
        let segs = Self::path(path).0;
        if let Some((PathSeg::Key(last), parent)) = segs.split_last() {
            let (node, complete) = self.tree.walk(parent);
            if complete && let Some(k) = node.key(last) {
                return self.sources.locate(k.loc);
            }
        }
        self.loc(path)
    }

    fn err(&mut self, path: &str, message: impl Into<String>) -> &mut Diagnostic {
        let d = Diagnostic::new(message).at(Some(self.loc(path))).path(path);
        self.errors.push(d);
        self.errors.last_mut().expect("just pushed")
    }

    fn duration(&mut self, path: &str, value: Option<&str>, default: &str) -> Duration {
        let text = value.unwrap_or(default);
        Duration::parse(text).unwrap_or_else(|e| {
            let too_long = matches!(e, crate::units::UnitError::DurationTooLong(_));
            let d = self.err(path, e.to_string());
            d.expected = Some(if too_long {
                format!("at most 100 years (`{}d`)", Duration::MAX_SECS / 86_400)
            } else {
                "a duration like `30s`, `5m`, `1h30m` or `7d`".into()
            });
            Duration::from_secs(0)
        })
    }

    fn memory(&mut self, path: &str, value: Option<&str>, default: &str) -> Memory {
        let text = value.unwrap_or(default);
        Memory::parse(text).unwrap_or_else(|e| {
            let d = self.err(path, e.to_string());
            d.expected = Some("a memory quantity like `64Mi`, `1Gi` or `512M`".into());
            Memory::parse(default).expect("defaults are valid")
        })
    }

    fn resources(&mut self, path: &str, raw: Option<&RawResources>) -> Resources {
        let Some(raw) = raw else {
            return Resources::default();
        };
        let mut amounts = |which: &str, r: Option<&raw::RawResourceAmounts>| {
            let mut a = Amounts::default();
            if let Some(r) = r {
                if let Some(cpu) = &r.cpu {
                    let p = format!("{path}.{which}.cpu");
                    match Cpu::parse(cpu) {
                        Ok(c) => a.cpu = Some(c),
                        Err(e) => {
                            self.err(&p, e.to_string()).expected =
                                Some("a CPU quantity like `50m`, `0.5` or `2`".into());
                        }
                    }
                }
                if let Some(mem) = &r.memory {
                    let p = format!("{path}.{which}.memory");
                    match Memory::parse(mem) {
                        Ok(m) => a.memory = Some(m),
                        Err(e) => {
                            self.err(&p, e.to_string()).expected =
                                Some("a memory quantity like `64Mi`, `1Gi` or `512M`".into());
                        }
                    }
                }
            }
            a
        };
        let requests = amounts("requests", raw.requests.as_ref());
        let limits = amounts("limits", raw.limits.as_ref());
        if let (Some(r), Some(l)) = (&requests.cpu, &limits.cpu)
            && l.millis() < r.millis()
        {
            self.err(
                &format!("{path}.limits.cpu"),
                format!(
                    "the CPU limit {} is below the request {}",
                    l.as_str(),
                    r.as_str()
                ),
            )
            .help = Some(
                "a limit must be at least the request; raise the limit or lower the request".into(),
            );
        }
        if let (Some(r), Some(l)) = (&requests.memory, &limits.memory)
            && l.bytes() < r.bytes()
        {
            self.err(
                &format!("{path}.limits.memory"),
                format!(
                    "the memory limit {} is below the request {}",
                    l.as_str(),
                    r.as_str()
                ),
            )
            .help = Some(
                "a limit must be at least the request; raise the limit or lower the request".into(),
            );
        }
        Resources { requests, limits }
    }

    /// A secret reference, checked against the tier's policy. `None` from the file
    /// means `generate` in dev and an error elsewhere.
    fn secret(&mut self, path: &str, value: Option<&str>) -> SecretRef {
        let Some(text) = value else {
            if self.tier == Tier::Dev {
                return SecretRef::Generate;
            }
            let tier = tier_name(self.tier);
            let d = self.err(path, format!("no secret given; {tier} needs a reference"));
            d.expected = Some("`vault://<path>#<key>` or `env://NAME`".into());
            d.help = Some(format!("set {path} in the {tier} environment file"));
            return SecretRef::Generate;
        };
        match SecretRef::parse(text) {
            Err(e) => {
                self.err(path, e.to_string()).expected =
                    Some("`vault://<path>#<key>`, `env://NAME` or (dev only) `generate`".into());
                SecretRef::Generate
            }
            Ok(r) => {
                if let SecretRef::Vault { path: kv_path, .. } = &r {
                    self.vault_refs.push((path.to_owned(), kv_path.clone()));
                }
                if self.tier != Tier::Dev {
                    let tier = tier_name(self.tier);
                    if r.is_plain() {
                        let d = self.err(path, format!("a plaintext secret in {tier}"));
                        *d = std::mem::replace(d, Diagnostic::new("")).redact_value();
                        d.expected = Some("`vault://<path>#<key>` or `env://NAME`".into());
                        d.help = Some("move the value into Vault or the deployment's environment; plaintext is accepted only in dev, and this one is now in version control: rotate it".to_string());
                    } else if r == SecretRef::Generate {
                        let d = self.err(path, format!("`generate` in {tier}"));
                        d.expected = Some("`vault://<path>#<key>` or `env://NAME`".into());
                        d.help = Some("generated secrets live only on a developer machine's state directory; reference a managed secret instead".into());
                    }
                }
                r
            }
        }
    }

    fn secrets_map(
        &mut self,
        path: &str,
        map: &BTreeMap<String, String>,
    ) -> BTreeMap<String, SecretRef> {
        let mut out = BTreeMap::new();
        for (k, v) in map {
            self.env_var_name(&format!("{path}.{k}"), k);
            let r = self.secret(&format!("{path}.{k}"), Some(v));
            out.insert(k.clone(), r);
        }
        out
    }

    fn env_var_name(&mut self, path: &str, name: &str) {
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            let loc = self.key_loc(path);
            self.errors.push(
                Diagnostic::new(format!("`{name}` is not a valid environment variable name"))
                    .at(Some(loc))
                    .path(path)
                    .expected("letters, digits and `_`, not starting with a digit"),
            );
        }
    }

    fn dns_name(&mut self, path: &str, name: &str, what: &str) -> Option<ServiceName> {
        match ServiceName::new(name) {
            Ok(n) => Some(n),
            Err(e) => {
                let loc = self.key_loc(path);
                self.errors.push(
                    Diagnostic::new(e.to_string())
                        .at(Some(loc))
                        .path(path)
                        .expected(format!(
                            "a {what} name that is a DNS label, e.g. `capsule-registry`"
                        )),
                );
                None
            }
        }
    }
}

impl Cx<'_> {
    /// A name written as is into a server's configuration or an API path: refused
    /// here, naming the field, the rule and a valid example, so no generator ever has
    /// to write a hostile one.
    fn identifier(&mut self, path: &str, value: &str, rule: Ident) -> bool {
        let (ok, what, expected, example): (fn(&str) -> bool, _, _, _) = match rule {
            Ident::Name(what, example) => (
                is_identifier,
                what,
                "an ASCII letter, then letters, digits, `_` and `-`, at most 63 characters",
                example,
            ),
            Ident::Postgres(what, example) => (
                is_pg_identifier,
                what,
                "a lowercase letter or `_`, then lowercase letters, digits and `_`, at most 63 characters",
                example,
            ),
            Ident::Dns(what, example) => (
                is_dns_label,
                what,
                "a DNS label: lowercase letters, digits and `-`, at most 63, starting and ending with a letter or digit",
                example,
            ),
            Ident::Host(what, example) => (
                is_dns_name,
                what,
                "a DNS name: dot-separated labels of lowercase letters, digits and `-`",
                example,
            ),
            Ident::Mount(what, example) => (
                is_mount_path,
                what,
                "`/`-separated segments of letters, digits, `-`, `_` and `.`, without leading or trailing `/`",
                example,
            ),
        };
        if ok(value) {
            return true;
        }
        let d = self.err(path, format!("`{value}` is not a valid {what}"));
        d.expected = Some(format!("{expected}, e.g. `{example}`"));
        false
    }

    /// A number outside the range that makes sense, with why.
    fn bound<T: PartialOrd + std::fmt::Display + Copy>(
        &mut self,
        path: &str,
        value: T,
        range: std::ops::RangeInclusive<T>,
        why: &str,
    ) -> bool {
        if range.contains(&value) {
            return true;
        }
        self.err(
            path,
            format!(
                "{value} is outside {} to {}: {why}",
                range.start(),
                range.end()
            ),
        )
        .expected = Some(format!(
            "a number from {} to {}",
            range.start(),
            range.end()
        ));
        false
    }
}

/// The rule an identifier follows, with what it names and a valid example.
#[derive(Clone, Copy)]
enum Ident {
    /// [`is_identifier`].
    Name(&'static str, &'static str),
    /// [`is_pg_identifier`].
    Postgres(&'static str, &'static str),
    /// [`is_dns_label`].
    Dns(&'static str, &'static str),
    /// [`is_dns_name`].
    Host(&'static str, &'static str),
    /// [`is_mount_path`].
    Mount(&'static str, &'static str),
}

/// A Vault mount path: `/`-separated segments of letters, digits, `-`, `_` and `.`.
fn is_mount_path(s: &str) -> bool {
    s.len() <= 255
        && s.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
}

/// An image tag (the OCI distribution spec's rule).
fn is_image_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// An HTTP path as the manifests and probes take it: printable ASCII without spaces,
/// quotes, backslashes or braces.
fn is_url_path(s: &str) -> bool {
    s.len() <= 1024
        && s.chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\' | '{' | '}' | '`'))
}

/// An image reference: no whitespace, quotes or control characters, at most 255.
fn image_ref(cx: &mut Cx<'_>, path: &str, image: &str) {
    let ok = !image.is_empty()
        && image.len() <= 255
        && image.chars().all(|c| {
            c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\' | '{' | '}' | '`' | '$')
        });
    if !ok {
        cx.err(path, format!("`{image}` is not an image reference"))
            .expected = Some(
            "a registry path without spaces or quotes, e.g. `ghcr.io/anumate/capsule-registry`"
                .into(),
        );
    }
}

/// The most replicas of an app or an extra: beyond this a number is a typo, not a
/// deployment (and every replica is a process on the process platform).
const MAX_APP_REPLICAS: u32 = 1000;

fn tier_name(t: Tier) -> &'static str {
    match t {
        Tier::Dev => "dev",
        Tier::Staging => "staging",
        Tier::Production => "production",
    }
}

/// Default images per core service and version.
fn default_image(kind: CoreKind, version: &str) -> String {
    match kind {
        CoreKind::Postgres => format!("postgres:{version}"),
        CoreKind::Redis => format!("redis:{version}"),
        CoreKind::Nats => format!("nats:{version}"),
        CoreKind::Vault => format!("openbao/openbao:{version}"),
    }
}

/// The default version of each core service: `data/server-versions.yaml`.
fn default_version(kind: CoreKind) -> &'static str {
    &crate::policy::versions_of(kind).default
}

fn default_port(kind: CoreKind) -> u16 {
    match kind {
        CoreKind::Postgres => 5432,
        CoreKind::Redis => 6379,
        CoreKind::Nats => 4222,
        CoreKind::Vault => 8200,
    }
}

struct CommonIn<'r> {
    enabled: Option<bool>,
    version: &'r Option<String>,
    image: &'r Option<String>,
    port: Option<u16>,
    replicas: Option<u32>,
    storage: &'r Option<String>,
    resources: &'r Option<RawResources>,
}

macro_rules! common_in {
    ($s:expr) => {
        CommonIn {
            enabled: $s.enabled,
            version: &$s.version,
            image: &$s.image,
            port: $s.port,
            replicas: $s.replicas,
            storage: &$s.storage,
            resources: &$s.resources,
        }
    };
}

fn common(cx: &mut Cx<'_>, kind: CoreKind, c: CommonIn<'_>) -> Option<ServiceCommon> {
    if c.enabled == Some(false) {
        return None;
    }
    let path = format!("services.{kind}");
    let version = c
        .version
        .clone()
        .unwrap_or_else(|| default_version(kind).to_owned());
    let replicas = c.replicas.unwrap_or(1);
    if replicas == 0 {
        cx.err(&format!("{path}.replicas"), "0 replicas").expected =
            Some("at least 1 (set `enabled: false` to turn the service off)".into());
    } else if replicas > crate::topology::MAX_CLUSTER {
        let max = crate::topology::MAX_CLUSTER;
        let d = cx.err(
            &format!("{path}.replicas"),
            format!(
                "replicas is {replicas}, but a cluster has at most {max} nodes: every write waits for a majority, so more nodes only slow it down"
            ),
        );
        d.expected = Some(format!("1 to {max}"));
    }
    if let Some(image) = c.image {
        image_ref(cx, &format!("{path}.image"), image);
    }
    if !c
        .version
        .as_deref()
        .is_none_or(|v| !v.is_empty() && v.len() <= 32 && is_url_path(v) && !v.contains('/'))
    {
        cx.err(
            &format!("{path}.version"),
            format!(
                "`{}` is not a version",
                c.version.as_deref().unwrap_or_default()
            ),
        )
        .expected = Some("a version like `15` or `2.9`".into());
    }
    Some(ServiceCommon {
        image: c
            .image
            .clone()
            .unwrap_or_else(|| default_image(kind, &version)),
        version,
        port: c.port.unwrap_or_else(|| default_port(kind)),
        replicas,
        storage: cx.memory(&format!("{path}.storage"), c.storage.as_deref(), "1Gi"),
        resources: cx.resources(&format!("{path}.resources"), c.resources.as_ref()),
    })
}

/// On Kubernetes, point-in-time recovery is CloudNativePG's Barman Cloud plugin, which
/// archives to an object store it reaches with credentials from Secrets: S3 and GCS
/// destinations are rendered as its `ObjectStore`; a local directory has no meaning
/// for pods on other nodes, and an Azure destination's storage account would have to
/// be a Secret too (not rendered yet).
fn check_pitr_kubernetes(cx: &mut Cx<'_>, env: &Environment) {
    if env.platform != Platform::Kubernetes {
        return;
    }
    let Some(b) = &env.backup else { return };
    let Some(p) = &b.pitr else { return };
    let Some(d) = b.destinations.get(&p.destination) else {
        return;
    };
    let why = match d {
        Destination::S3 { .. } | Destination::Gcs { .. } => return,
        Destination::Local { .. } => {
            "a local directory: on Kubernetes the WAL archiver is CloudNativePG's Barman Cloud plugin, which writes to an object store only"
        }
        Destination::Azure { .. } => {
            "an Azure destination: the Barman Cloud ObjectStore takes the storage account from a Secret, which controlplane does not render yet"
        }
    };
    let name = &p.destination;
    let d = cx.err(
        "backup.pitr.destination",
        format!("point-in-time recovery on Kubernetes to `{name}`, {why}"),
    );
    d.expected =
        Some("the name of an `s3` or `gcs` destination under `backup.destinations`".into());
    d.help = Some("add an S3 or GCS destination and name it in `backup.pitr.destination`, or set `backup.pitr.enabled: false`".into());
}

/// Which topologies exist (`topology.rs`): NATS and OpenBao clusters of 3 or more on
/// the process and Kubernetes platforms, PostgreSQL instances beyond one only as a
/// CloudNativePG `Cluster` on Kubernetes, one Redis. Anything else would run as
/// independent servers behind one address (split brain) and is refused, as is a stream
/// replicated more often than NATS has nodes.
fn check_topology(cx: &mut Cx<'_>, env: &Environment) {
    use crate::topology::{MAX_STREAM_REPLICAS, MIN_CLUSTER};
    let platform = env.platform;
    let clusters_here = matches!(platform, Platform::Process | Platform::Kubernetes);
    let s = &env.services;
    if let Some(pg) = &s.postgres
        && pg.common.replicas > 1
        && platform != Platform::Kubernetes
    {
        let n = pg.common.replicas;
        let d = cx.err(
            "services.postgres.replicas",
            format!(
                "replicas is {n}, but more than one PostgreSQL instance runs only as a CloudNativePG Cluster on Kubernetes; on the {platform} platform {n} instances would be {n} independent servers (split brain)"
            ),
        );
        d.expected = Some("1, or platform: kubernetes".into());
        d.help = Some("set replicas: 1 here (a local streaming standby is not implemented), or run this environment on Kubernetes with the CloudNativePG operator installed".into());
    }
    if let Some(r) = &s.redis
        && r.common.replicas > 1
    {
        let n = r.common.replicas;
        let d = cx.err(
            "services.redis.replicas",
            format!(
                "replicas is {n}, but controlplane runs Redis as one server: {n} replicas would be {n} independent servers behind one address (split brain)"
            ),
        );
        d.expected = Some("1".into());
        d.help = Some("set replicas: 1; replicated Redis needs Sentinel, which controlplane does not render yet".into());
    }
    let raft = [
        (
            CoreKind::Nats,
            "a NATS",
            s.nats.as_ref().map(|n| n.common.replicas),
        ),
        (
            CoreKind::Vault,
            "an OpenBao",
            s.vault.as_ref().map(|v| v.common.replicas),
        ),
    ];
    for (kind, product, replicas) in raft {
        let Some(n) = replicas else { continue };
        let path = format!("services.{kind}.replicas");
        if n == 2 {
            let d = cx.err(
                &path,
                format!(
                    "replicas is 2, but {product} cluster of 2 has no quorum once one node fails (raft needs a majority: 2 of 2)"
                ),
            );
            d.expected = Some(format!("1, or {MIN_CLUSTER} or more"));
            d.help = Some(format!(
                "set replicas: {MIN_CLUSTER} (it survives one node down) or 1"
            ));
        } else if n > MIN_CLUSTER && n % 2 == 0 && n <= crate::topology::MAX_CLUSTER {
            let d = cx.err(
                &path,
                format!(
                    "replicas is {n}, but {product} cluster of {n} survives no more failures than one of {} (raft needs a majority: {} of {n}) and splits into two halves without one",
                    n - 1,
                    n / 2 + 1
                ),
            );
            d.expected = Some(format!(
                "an odd number from {MIN_CLUSTER} to {}",
                crate::topology::MAX_CLUSTER
            ));
            d.help = Some(format!("set replicas: {} or {}", n - 1, n + 1));
        } else if n >= MIN_CLUSTER && !clusters_here {
            let d = cx.err(
                &path,
                format!(
                    "replicas is {n}, but {product} cluster runs on the process platform (local nodes) or on Kubernetes, and this environment's platform is {platform}"
                ),
            );
            d.expected = Some("platform: process or platform: kubernetes, or replicas: 1".into());
            d.help = Some("docker runs one node of each service; set platform explicitly (`auto` could pick docker)".into());
        }
    }
    if let Some(v) = &s.vault
        && v.common.replicas > 1
        && v.mode == crate::model::VaultMode::Dev
    {
        let d = cx.err(
            "services.vault.mode",
            format!("dev mode with {} replicas: a dev-mode server keeps its data in memory and cannot join a cluster", v.common.replicas),
        );
        d.expected = Some("mode: raft".into());
    }
    let nodes = s.nats.as_ref().map_or(1, |n| n.common.replicas.max(1));
    for (name, stream) in &env.streams {
        let r = stream.replicas;
        let path = format!("streams.{name}.replicas");
        if u32::from(r) > nodes {
            let d = cx.err(
                &path,
                format!("replicas is {r}, but NATS runs {nodes} node(s): a stream cannot have more replicas than there are servers"),
            );
            d.expected = Some(format!("at most {nodes} (services.nats.replicas)"));
            d.help = Some(format!(
                "set replicas: {} here, or run NATS with more nodes",
                nodes.min(u32::from(MAX_STREAM_REPLICAS))
            ));
        } else if r > MAX_STREAM_REPLICAS {
            cx.err(&path, format!("replicas is {r}, but JetStream replicates a stream at most {MAX_STREAM_REPLICAS} times"))
                .expected = Some(format!("1 to {MAX_STREAM_REPLICAS} (an odd number keeps a clear majority)"));
        }
    }
}

/// Validates a raw environment: always builds the model (with defaults where a value
/// was wrong) and pushes every problem into `cx`; the caller decides what errors mean.
pub(crate) fn validate(name: &EnvName, raw: RawEnvironment, cx: &mut Cx<'_>) -> Environment {
    let tier = raw.tier.unwrap_or(match name.as_str() {
        "production" | "prod" => Tier::Production,
        "staging" => Tier::Staging,
        _ => Tier::Dev,
    });
    cx.tier = tier;
    let project = raw.project.clone().unwrap_or_else(|| "anumate".to_owned());
    if !is_dns_label(&project) {
        cx.err(
            "project",
            format!("`{project}` is not a valid project name"),
        )
        .expected = Some("lowercase letters, digits and `-`, e.g. `anumate`".into());
    }
    let namespace = raw
        .namespace
        .clone()
        .unwrap_or_else(|| format!("{project}-{name}"));
    if !is_dns_label(&namespace) {
        cx.err(
            "namespace",
            format!("`{namespace}` is not a valid namespace"),
        )
        .expected = Some("a DNS label: lowercase letters, digits and `-`, at most 63".into());
    }
    let domain = raw
        .domain
        .clone()
        .unwrap_or_else(|| format!("{name}.{project}.local"));
    if raw.domain.is_some() {
        cx.identifier("domain", &domain, Ident::Host("domain", "anumate.io"));
    }

    let services = core_services(cx, &raw.services, tier);
    let apps = apps(cx, &raw, &domain);
    let extras = extras(cx, &raw);
    let monitoring = monitoring(cx, &raw.monitoring);
    let streams = streams(cx, &raw);
    let vault = vault_config(cx, &raw.vault);
    let backup = backup(cx, &raw.backup, &services);
    let drift = drift(cx, &raw.drift);
    let rotation = rotation(cx, &raw.rotation);
    let platform = raw.platform.unwrap_or(Platform::Auto);
    let tls = tls(cx, &raw.tls, tier, platform);
    let serve = serve(cx, &raw.serve);
    let alerts = alerts(cx, &raw.alerts, backup.as_ref(), &drift, &rotation, &tls);
    let dashboards = dashboards(cx, &raw.dashboards);

    let mut env = Environment {
        name: name.clone(),
        project,
        tier,
        platform,
        namespace,
        domain,
        services,
        apps,
        extras,
        monitoring,
        streams,
        vault,
        backup,
        drift,
        rotation,
        alerts,
        dashboards,
        accept: Vec::new(),
        policy: Vec::new(),
        tls,
        serve,
    };
    check_policy(cx, &mut env, &raw.accept);
    check_topology(cx, &env);
    check_pitr_kubernetes(cx, &env);
    check_ports(cx, &env);
    check_dependencies(cx, &env);
    check_vault_refs(cx, &env);
    env
}

/// `vault://` references render as ExternalSecrets read through one SecretStore: the
/// environment's Vault at the KV mount. A reference outside that mount, or (on
/// Kubernetes) without a Vault to read from, would render a secret that is never
/// created.
fn check_vault_refs(cx: &mut Cx<'_>, env: &Environment) {
    let refs = std::mem::take(&mut cx.vault_refs);
    let mount = env.vault.kv_mount.clone();
    // An invalid mount is one error already: no reference is "outside" it as well.
    let mount_invalid = cx
        .errors
        .iter()
        .any(|d| d.path.as_deref() == Some("vault.kv_mount"));
    for (path, kv_path) in &refs {
        if !mount_invalid && !kv_path.starts_with(&format!("{mount}/")) {
            let d = cx.err(
                path,
                format!("`vault://{kv_path}` is outside the KV mount `{mount}`"),
            );
            d.expected = Some(format!("a path under `{mount}/` (vault.kv_mount)"));
            d.help = Some("Kubernetes output reads vault:// references through one SecretStore on the KV mount; move the secret under it, or change vault.kv_mount".into());
        }
    }
    if let Some((path, _)) = refs.first()
        && env.platform == Platform::Kubernetes
        && env.services.vault.is_none()
    {
        let d = cx.err(
            path,
            "a `vault://` reference, but services.vault is disabled",
        );
        d.expected = Some("services.vault enabled, or `env://NAME` references".into());
        d.help = Some("on Kubernetes, ExternalSecrets read vault:// references from the environment's own Vault".into());
    }
}

fn core_services(cx: &mut Cx<'_>, raw: &raw::RawServices, tier: Tier) -> CoreServices {
    let pg = &raw.postgres;
    let postgres = common(cx, CoreKind::Postgres, common_in!(pg)).map(|common| Postgres {
        common,
        database: pg.database.clone().unwrap_or_else(|| "anumate".into()),
        superuser_password: cx.secret(
            "services.postgres.superuser_password",
            pg.superuser_password.as_deref(),
        ),
        admin_password: cx.secret(
            "services.postgres.admin_password",
            pg.admin_password.as_deref(),
        ),
        app_password: cx.secret("services.postgres.app_password", pg.app_password.as_deref()),
        readonly_password: cx.secret(
            "services.postgres.readonly_password",
            pg.readonly_password.as_deref(),
        ),
        backup_password: cx.secret(
            "services.postgres.backup_password",
            pg.backup_password.as_deref(),
        ),
        settings: pg.settings.clone(),
    });
    if let Some(p) = &postgres {
        let db = &p.database;
        if cx.identifier(
            "services.postgres.database",
            db,
            Ident::Postgres("PostgreSQL database name", "anumate"),
        ) && matches!(db.as_str(), "template0" | "template1")
        {
            cx.err(
                "services.postgres.database",
                format!("`{db}` is PostgreSQL's own template database"),
            )
            .expected = Some("a database of your own, e.g. `anumate`".into());
        }
        for (k, v) in &p.settings {
            let path = format!("services.postgres.settings.{k}");
            let guc = !k.is_empty()
                && k.len() <= 63
                && k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            if !guc {
                let loc = cx.key_loc(&path);
                cx.errors.push(
                    Diagnostic::new(format!("`{k}` is not a PostgreSQL setting name"))
                        .at(Some(loc))
                        .path(path.clone())
                        .expected(
                            "letters, digits, `_` and `.` (a GUC name), e.g. `max_connections`",
                        ),
                );
            }
            if v.contains(['\n', '\r']) {
                cx.err(&path, "a setting's value spans lines").expected =
                    Some("one line, e.g. `\"200\"`".into());
            }
        }
    }
    let r = &raw.redis;
    let redis = common(cx, CoreKind::Redis, common_in!(r)).map(|common| Redis {
        common,
        admin_password: cx.secret("services.redis.admin_password", r.admin_password.as_deref()),
        app_password: cx.secret("services.redis.app_password", r.app_password.as_deref()),
        maxmemory: r.maxmemory.clone(),
        maxmemory_policy: r.maxmemory_policy.clone(),
    });
    if let Some(m) = &r.maxmemory
        && !is_redis_memory(m)
    {
        cx.err(
            "services.redis.maxmemory",
            format!("`{m}` is not a Redis memory size"),
        )
        .expected = Some("a number of bytes with an optional unit (`b`, `k`, `kb`, `m`, `mb`, `g`, `gb`), e.g. `256mb`".into());
    }
    if let Some(p) = &r.maxmemory_policy
        && !REDIS_POLICIES.contains(&p.as_str())
    {
        let d = cx.err(
            "services.redis.maxmemory_policy",
            format!("`{p}` is not a Redis eviction policy"),
        );
        d.expected = Some(format!("one of {}", REDIS_POLICIES.join(", ")));
        if let Some(c) = closest(p, REDIS_POLICIES) {
            d.help = Some(format!("did you mean `{c}`?"));
        }
    }
    let n = &raw.nats;
    let nats = common(cx, CoreKind::Nats, common_in!(n)).map(|common| Nats {
        common,
        monitor_port: n.monitor_port.unwrap_or(8222),
        cluster_port: n.cluster_port.unwrap_or(6222),
        app_user: n.app_user.clone().unwrap_or_else(|| "anumate_app".into()),
        app_password: cx.secret("services.nats.app_password", n.app_password.as_deref()),
        admin_password: cx.secret("services.nats.admin_password", n.admin_password.as_deref()),
        max_memory: cx.memory("services.nats.max_memory", n.max_memory.as_deref(), "256Mi"),
        max_file: cx.memory("services.nats.max_file", n.max_file.as_deref(), "1Gi"),
        sync: None,
    });
    let nats = nats.map(|mut nats| {
        nats.sync = nats_sync(cx, n.sync.as_deref(), tier, &nats.common.version);
        nats
    });
    if let Some(n) = &nats {
        let user = &n.app_user;
        if cx.identifier(
            "services.nats.app_user",
            user,
            Ident::Name("NATS user name", "anumate_app"),
        ) && user == crate::serverconf::NATS_ADMIN_USER
        {
            cx.err(
                "services.nats.app_user",
                format!("`{user}` is the name of controlplane's own NATS admin user"),
            )
            .expected = Some("another name, e.g. `anumate_app`".into());
        }
    }
    let v = &raw.vault;
    let vault = common(cx, CoreKind::Vault, common_in!(v)).map(|common| {
        let mode = v.mode.unwrap_or(VaultMode::Raft);
        if mode == VaultMode::Dev && tier != Tier::Dev {
            let d = cx.err("services.vault.mode", format!("a dev-mode Vault in {}", tier_name(tier)));
            d.expected = Some("`raft`".into());
            d.help = Some("dev mode keeps everything in memory behind a fixed root token; use raft storage".into());
        }
        let dev_root_token = match (&v.dev_root_token, tier) {
            (None, _) => None,
            (Some(_), Tier::Dev) => Some(cx.secret("services.vault.dev_root_token", v.dev_root_token.as_deref())),
            (Some(_), t) => {
                let d = cx.err("services.vault.dev_root_token", format!("a development root token in {}", tier_name(t)));
                *d = std::mem::replace(d, Diagnostic::new("")).redact_value();
                d.expected = Some("no dev_root_token outside dev".into());
                d.help = Some("remove it; `up` initialises Vault and the bootstrap root token is revoked after seeding".into());
                None
            }
        };
        let unseal = match v.unseal.as_deref() {
            None if tier == Tier::Dev => UnsealKeys::State,
            None => {
                let d = cx.err("services.vault.unseal", format!("no unseal key source in {}", tier_name(tier)));
                d.expected = Some("`env://NAME` (comma-separated keys)".into());
                d.help = Some("outside dev unseal keys are never written to disk; name the variable that holds them".into());
                UnsealKeys::State
            }
            Some("state") if tier == Tier::Dev => UnsealKeys::State,
            Some("state") => {
                let d = cx.err("services.vault.unseal", format!("unseal keys on disk in {}", tier_name(tier)));
                d.expected = Some("`env://NAME`".into());
                d.help = Some("keeping unseal keys next to the data defeats sealing; pass them through the environment".into());
                UnsealKeys::State
            }
            Some(s) => match SecretRef::parse(s) {
                Ok(SecretRef::Env { name }) => UnsealKeys::Env(name),
                _ => {
                    cx.err("services.vault.unseal", format!("`{s}` is not an unseal key source"))
                        .expected = Some("`state` (dev only) or `env://NAME`".into());
                    UnsealKeys::State
                }
            },
        };
        Vault {
            common,
            cluster_port: v.cluster_port.unwrap_or(8201),
            mode,
            binary: v.binary.clone().unwrap_or_else(|| "bao".into()),
            dev_root_token,
            unseal,
        }
    });
    CoreServices {
        postgres,
        redis,
        nats,
        vault,
    }
}

/// `services.nats.sync`: `always` or an interval; unset, `always` in staging and
/// production when the server can honour it (else the server's default, which the
/// production rule `nats-sync-interval` then reports), nothing in dev. Set on a
/// server that cannot honour it (2.9), refused: nats-server 2.9 stops on the field.
fn nats_sync(cx: &mut Cx<'_>, raw: Option<&str>, tier: Tier, version: &str) -> Option<NatsSync> {
    let supported = crate::policy::nats_supports_sync(version);
    let Some(text) = raw else {
        return (tier != Tier::Dev && supported).then_some(NatsSync::Always);
    };
    let sync = if text == "always" {
        NatsSync::Always
    } else {
        match Duration::parse(text) {
            Ok(d) if d.as_secs() > 0 => NatsSync::Interval(d),
            _ => {
                cx.err(
                    "services.nats.sync",
                    format!("`{text}` is not a sync setting"),
                )
                .expected = Some("`always` or an interval like `1s`, `2m`".into());
                return None;
            }
        }
    };
    if !supported {
        let d = cx.err(
            "services.nats.sync",
            format!(
                "nats-server {version} cannot honour `sync` (its `sync_interval` came in 2.10)"
            ),
        );
        d.expected = Some("services.nats.version 2.10 or later".into());
        d.help = Some("nats-server 2.9 refuses `sync_interval` and stops; move to a supported NATS (see data/server-versions.yaml), or remove `sync`".into());
        return None;
    }
    Some(sync)
}

/// The tier policy (`policy.rs`): each broken rule is an error (or a warning) unless an
/// `accept:` entry names it with a reason; acceptances of unknown rules are refused,
/// and acceptances that cover nothing are shown as warnings.
fn check_policy(cx: &mut Cx<'_>, env: &mut Environment, raw: &[raw::RawAccept]) {
    use crate::policy::{Acceptance, Finding, Severity, rule_ids, violations};
    let ids = rule_ids();
    let mut accept = Vec::new();
    for (i, a) in raw.iter().enumerate() {
        if !ids.contains(&a.rule.as_str()) {
            let d = cx.err(
                &format!("accept[{i}].rule"),
                format!("`{}` is not a tier-policy rule", a.rule),
            );
            d.expected = Some(format!("one of {}", ids.join(", ")));
            if let Some(c) = closest(&a.rule, ids.clone()) {
                d.help = Some(format!("did you mean `{c}`?"));
            }
            continue;
        }
        if a.reason.trim().is_empty() {
            cx.err(
                &format!("accept[{i}].reason"),
                "an acceptance without a reason",
            )
            .expected = Some("why this environment may break the rule, in a sentence".into());
            continue;
        }
        accept.push(Acceptance {
            rule: a.rule.clone(),
            reason: a.reason.clone(),
        });
    }
    let mut findings = Vec::new();
    let found = violations(env, &crate::policy::today());
    for v in &found {
        if let Some(a) = accept.iter().find(|a| a.rule == v.rule) {
            findings.push(Finding {
                rule: v.rule.into(),
                path: v.path.clone(),
                message: v.message.clone(),
                accepted: Some(a.reason.clone()),
            });
            continue;
        }
        match v.severity {
            Severity::Warning => findings.push(Finding {
                rule: v.rule.into(),
                path: v.path.clone(),
                message: v.message.clone(),
                accepted: None,
            }),
            Severity::Error => {
                let tier = tier_name(env.tier);
                let d = cx.err(&v.path, format!("{} [{}]", v.message, v.rule));
                d.help = Some(format!(
                    "fix it, or accept it in the {tier} file with a reason: `accept: [{{rule: {}, reason: \"...\"}}]`",
                    v.rule
                ));
            }
        }
    }
    for a in &accept {
        if !found.iter().any(|v| v.rule == a.rule) {
            findings.push(Finding {
                rule: a.rule.clone(),
                path: "accept".into(),
                message:
                    "accepted, but this environment does not break the rule: remove the acceptance"
                        .into(),
                accepted: None,
            });
        }
    }
    env.accept = accept;
    env.policy = findings;
}

fn apps(cx: &mut Cx<'_>, raw: &RawEnvironment, domain: &str) -> BTreeMap<ServiceName, App> {
    let mut out = BTreeMap::new();
    for (name, app) in &raw.apps {
        let Some(app) = app else { continue };
        let path = format!("apps.{name}");
        let Some(sname) = cx.dns_name(&path, name, "app") else {
            continue;
        };
        if CoreKind::from_name(name).is_some() {
            cx.err(&path, format!("`{name}` is the name of a core service"))
                .help = Some("pick another name for the app".into());
        }
        if app.enabled == Some(false) {
            continue;
        }
        let Some(image) = app.image.clone() else {
            cx.err(&format!("{path}.image"), "no image given").expected =
                Some("an image without tag, e.g. `ghcr.io/anumate/capsule-registry`".into());
            continue;
        };
        let port = app.port.unwrap_or(8080);
        let replicas = app.replicas.unwrap_or(1);
        if replicas == 0 {
            cx.err(&format!("{path}.replicas"), "0 replicas").expected =
                Some("at least 1 (set `enabled: false` to turn the app off)".into());
        } else {
            cx.bound(
                &format!("{path}.replicas"),
                replicas,
                1..=MAX_APP_REPLICAS,
                "more replicas than that is a typo, not a deployment",
            );
        }
        if let Some(tag) = &app.tag
            && !is_image_tag(tag)
        {
            cx.err(&format!("{path}.tag"), format!("`{tag}` is not an image tag"))
                .expected = Some(
                "letters, digits, `_`, `.` and `-`, at most 128, not starting with `.` or `-`, e.g. `1.4.2`"
                    .into(),
            );
        }
        image_ref(cx, &format!("{path}.image"), &image);
        let autoscaling = app
            .autoscaling
            .as_ref()
            .filter(|a| a.enabled != Some(false))
            .map(|a| {
                let min = a.min_replicas.unwrap_or(replicas);
                let max = a.max_replicas.unwrap_or(min.max(1) * 3);
                if min == 0 {
                    cx.err(
                        &format!("{path}.autoscaling.min_replicas"),
                        "0 minimum replicas",
                    )
                    .expected = Some("at least 1".into());
                }
                cx.bound(
                    &format!("{path}.autoscaling.max_replicas"),
                    max,
                    0..=MAX_APP_REPLICAS,
                    "more replicas than that is a typo, not a deployment",
                );
                if max < min {
                    let d = cx.err(
                        &format!("{path}.autoscaling.max_replicas"),
                        format!("max_replicas {max} is below min_replicas {min}"),
                    );
                    d.expected = Some(format!("at least {min}"));
                }
                let cpu = a.cpu_utilization.or(if a.memory_utilization.is_none() {
                    Some(70)
                } else {
                    None
                });
                for (k, v) in [
                    ("cpu_utilization", cpu),
                    ("memory_utilization", a.memory_utilization),
                ] {
                    if let Some(v) = v
                        && (v == 0 || v > 100)
                    {
                        cx.err(&format!("{path}.autoscaling.{k}"), format!("{v}%"))
                            .expected = Some("a percentage from 1 to 100".into());
                    }
                }
                Autoscaling {
                    min_replicas: min,
                    max_replicas: max,
                    cpu_utilization: cpu,
                    memory_utilization: a.memory_utilization,
                }
            });
        let disruption_budget = app
            .disruption_budget
            .as_ref()
            .filter(|d| d.enabled != Some(false))
            .map(|d| DisruptionBudget {
                min_available: d.min_available.unwrap_or(1),
            });
        if let Some(pdb) = &disruption_budget {
            let floor = autoscaling.as_ref().map_or(replicas, |a| a.min_replicas);
            let what = if autoscaling.is_some() {
                "autoscaling.min_replicas"
            } else {
                "replicas"
            };
            if floor <= pdb.min_available {
                let d = cx.err(
                    &format!("{path}.disruption_budget.min_available"),
                    format!(
                        "minAvailable {} with {what} {floor}: {}",
                        pdb.min_available,
                        if floor < pdb.min_available {
                            "the budget can never be met"
                        } else {
                            "no pod may ever be evicted, so every node drain hangs"
                        }
                    ),
                );
                d.expected = Some(format!("min_available below {floor}"));
                d.help = Some(format!(
                    "raise {path}.{what} above {} or lower min_available",
                    pdb.min_available
                ));
            }
        }
        let health = app.health.clone().unwrap_or_default();
        for (k, v) in [
            ("initial_delay_seconds", health.initial_delay_seconds),
            ("period_seconds", health.period_seconds),
        ] {
            if let Some(v) = v {
                cx.bound(
                    &format!("{path}.health.{k}"),
                    v,
                    if k == "period_seconds" { 1 } else { 0 }..=3600,
                    "a probe waits at most an hour (Kubernetes takes a period of at least 1 s)",
                );
            }
        }
        for (k, p) in [
            ("liveness", &health.liveness),
            ("readiness", &health.readiness),
        ] {
            if let Some(p) = p
                && (!p.starts_with('/') || !is_url_path(p))
            {
                cx.err(
                    &format!("{path}.health.{k}"),
                    format!("`{p}` is not an absolute HTTP path"),
                )
                .expected = Some(
                    "a path starting with `/`, without spaces, quotes or control characters, e.g. `/health`"
                        .into(),
                );
            }
        }
        let ingress = app
            .ingress
            .as_ref()
            .filter(|i| i.enabled != Some(false))
            .map(|i| Ingress {
                host: i.host.clone().unwrap_or_else(|| format!("{name}.{domain}")),
                path: i.path.clone().unwrap_or_else(|| "/".into()),
                class: i.class.clone().unwrap_or_else(|| "nginx".into()),
                tls: i.tls.unwrap_or(false),
                cluster_issuer: i.cluster_issuer.clone(),
            });
        if let Some(i) = &ingress {
            let explicit = app.ingress.as_ref().and_then(|r| r.host.as_ref()).is_some();
            if explicit {
                // A wildcard host (`*.example.com`) is an Ingress rule's own syntax.
                cx.identifier(
                    &format!("{path}.ingress.host"),
                    i.host.strip_prefix("*.").unwrap_or(&i.host),
                    Ident::Host("host name", "registry.anumate.io"),
                );
            }
            if !i.path.starts_with('/') || !is_url_path(&i.path) {
                cx.err(
                    &format!("{path}.ingress.path"),
                    format!("`{}` is not an absolute HTTP path", i.path),
                )
                .expected = Some("a path starting with `/`, e.g. `/` or `/api`".into());
            }
            cx.identifier(
                &format!("{path}.ingress.class"),
                &i.class,
                Ident::Dns("ingress class", "nginx"),
            );
            if let Some(issuer) = &i.cluster_issuer {
                cx.identifier(
                    &format!("{path}.ingress.cluster_issuer"),
                    issuer,
                    Ident::Dns("ClusterIssuer name", "letsencrypt-prod"),
                );
            }
        }
        for k in app.env.keys() {
            cx.env_var_name(&format!("{path}.env.{k}"), k);
        }
        let secrets = cx.secrets_map(&format!("{path}.secrets"), &app.secrets);
        for k in app.env.keys().filter(|k| app.secrets.contains_key(*k)) {
            cx.err(
                &format!("{path}.secrets.{k}"),
                format!("`{k}` is both in env and secrets"),
            )
            .help = Some("keep it in one of them".into());
        }
        let depends_on = deps(cx, &format!("{path}.depends_on"), app.depends_on.as_deref());
        let uses = app_uses(cx, raw, &path, name, app.uses.as_ref());
        let worm_storage = app.worm_storage.as_ref().map(|w| {
            let w_path = format!("{path}.worm_storage");
            let mount = w.path.clone().unwrap_or_else(|| format!("/var/lib/{name}"));
            if !mount.starts_with('/') || !is_url_path(&mount) || mount == "/" {
                cx.err(
                    &format!("{w_path}.path"),
                    format!("`{mount}` is not an absolute path"),
                )
                .expected =
                    Some("an absolute directory, e.g. `/var/lib/anumate/capsule-content`".into());
            }
            WormStorage {
                path: mount,
                size: cx.memory(&format!("{w_path}.size"), w.size.as_deref(), "10Gi"),
            }
        });
        let mut env_plain = app.env.clone();
        if let Some(w) = &worm_storage {
            env_plain
                .entry("WORM_STORAGE_PATH".into())
                .or_insert_with(|| w.path.clone());
        }
        let app = App {
            image,
            tag: app.tag.clone().unwrap_or_else(|| "latest".into()),
            port,
            metrics_port: app.metrics_port.unwrap_or(port),
            replicas,
            resources: cx.resources(&format!("{path}.resources"), app.resources.as_ref()),
            autoscaling,
            disruption_budget,
            health: HealthPaths {
                liveness: health.liveness.unwrap_or_else(|| "/health".into()),
                readiness: health.readiness.unwrap_or_else(|| "/ready".into()),
                initial_delay_seconds: health.initial_delay_seconds.unwrap_or(5),
                period_seconds: health.period_seconds.unwrap_or(10),
            },
            ingress,
            log_level: app.log_level.unwrap_or(LogLevel::Info),
            env: env_plain,
            secrets,
            depends_on,
            uses,
            worm_storage,
        };
        out.insert(sname, app);
    }
    out
}

/// A Redis key prefix an ACL pattern can carry as is: no glob characters (`*`, `?`,
/// `[`, `\\`), which would widen `~<prefix>*` beyond the prefix, and nothing Redis'
/// ACL syntax splits on.
fn is_redis_prefix(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '/'))
}

/// An app's `uses`: each part validated (identifiers as identifiers, subjects valid
/// and not reserved, names not clashing with the platform's own), its credentials'
/// references checked against the tier.
fn app_uses(
    cx: &mut Cx<'_>,
    env: &RawEnvironment,
    path: &str,
    name: &str,
    raw: Option<&raw::RawAppUses>,
) -> AppUses {
    let Some(raw) = raw else {
        return AppUses::default();
    };
    let path = format!("{path}.uses");
    let s = &env.services;
    let platform_db = s
        .postgres
        .database
        .clone()
        .unwrap_or_else(|| "anumate".into());
    let missing = |cx: &mut Cx<'_>, part: &str, svc: &str, on: bool| {
        if !on {
            cx.err(
                &format!("{path}.{part}"),
                format!("the app uses {svc}, which this environment does not run"),
            )
            .help = Some(format!("enable services.{svc} or remove {path}.{part}"));
        }
    };
    let underscored = name.replace('-', "_");
    let postgres = raw.postgres.as_ref().map(|p| {
        let p_path = format!("{path}.postgres");
        missing(cx, "postgres", "postgres", s.postgres.enabled != Some(false));
        let (database, own, schema) = match (&p.database, &p.schema) {
            (Some(d), None) => (d.clone(), true, d.clone()),
            (None, Some(sc)) => (platform_db.clone(), false, sc.clone()),
            (Some(d), Some(sc)) => {
                cx.err(&format!("{p_path}.schema"), "both `database` and `schema` given")
                    .help = Some(format!(
                    "an app gets its own database `{d}` or a schema `{sc}` of the platform database, not both"
                ));
                (d.clone(), true, d.clone())
            }
            (None, None) => {
                cx.err(&p_path, "neither `database` nor `schema` given").expected = Some(
                    format!("`database: {underscored}` (its own database) or `schema: {underscored}`"),
                );
                (underscored.clone(), true, underscored.clone())
            }
        };
        let role = p.role.clone().unwrap_or_else(|| schema.clone());
        for (k, v) in [("database", &database), ("schema", &schema), ("role", &role)] {
            if (k == "database" && !own) || (k == "role" && p.role.is_none()) {
                continue;
            }
            cx.identifier(
                &format!("{p_path}.{k}"),
                v,
                Ident::Postgres("PostgreSQL name", "capsule_registry"),
            );
        }
        if crate::roles::MANAGED.contains(&role.as_str())
            || role == crate::roles::SUPERUSER
            || role.starts_with("pg_")
        {
            cx.err(&format!("{p_path}.role"), format!("`{role}` is a platform role"))
                .help = Some("an app gets a role of its own; pick another name".into());
        }
        if own && database == platform_db.clone() {
            cx.err(
                &format!("{p_path}.database"),
                format!("`{database}` is the platform database"),
            )
            .help = Some(format!("use `schema: {underscored}` for a schema in it, or another database name"));
        }
        if (!own && crate::roles::SCHEMAS.contains(&schema.as_str())) || schema == "public" {
            cx.err(&format!("{p_path}.schema"), format!("`{schema}` is a platform schema"))
                .help = Some("an app gets a schema of its own; pick another name".into());
        }
        AppPostgres {
            database,
            own_database: own,
            schema,
            role,
            password: cx.secret(&format!("{p_path}.password"), p.password.as_deref()),
        }
    });
    let nats = raw.nats.as_ref().map(|n| {
        let n_path = format!("{path}.nats");
        missing(cx, "nats", "nats", s.nats.enabled != Some(false));
        for (k, list) in [("publish", &n.publish), ("subscribe", &n.subscribe)] {
            for (i, subj) in list.iter().enumerate() {
                let at = format!("{n_path}.{k}[{i}]");
                if !valid_subject(subj) {
                    cx.err(&at, format!("`{subj}` is not a valid subject")).expected = Some(
                        "dot-separated tokens; `*` matches one token and `>` the rest (only last)"
                            .into(),
                    );
                } else if let Some((reserved, whose)) = reserved_subject(subj) {
                    let d = cx.err(
                        &at,
                        format!("`{subj}` overlaps `{reserved}`, the subjects of {whose}"),
                    );
                    d.expected = Some("subjects of your own, e.g. `events.capsule.>`".into());
                    d.help = Some(
                        "an app user gets exactly its subjects; JetStream's API and other clients' inboxes stay the operator's"
                            .into(),
                    );
                }
            }
        }
        if n.publish.is_empty() && n.subscribe.is_empty() {
            cx.err(&n_path, "no subjects").expected =
                Some("`publish` and/or `subscribe` lists, e.g. `publish: [\"events.capsule.>\"]`".into());
        }
        AppNats {
            user: format!("app-{name}"),
            publish: n.publish.clone(),
            subscribe: n.subscribe.clone(),
            password: cx.secret(&format!("{n_path}.password"), n.password.as_deref()),
        }
    });
    let redis = raw.redis.as_ref().map(|r| {
        let r_path = format!("{path}.redis");
        missing(cx, "redis", "redis", s.redis.enabled != Some(false));
        let prefix = r.prefix.clone().unwrap_or_else(|| format!("{name}:"));
        if !is_redis_prefix(&prefix) {
            cx.err(&format!("{r_path}.prefix"), format!("`{prefix}` is not a key prefix"))
                .expected = Some(
                "letters, digits, `:`, `-`, `_`, `.` and `/`, at most 64 (no glob characters), e.g. `capsule-registry:`"
                    .into(),
            );
        } else if prefix.starts_with("t:") {
            cx.err(&format!("{r_path}.prefix"), format!("`{prefix}` overlaps the tenants' prefix `t:`"))
                .help = Some("tenants' keys live under `t:<tenant-id>:`; pick another prefix".into());
        }
        AppRedis {
            user: format!("app-{name}"),
            prefix,
            password: cx.secret(&format!("{r_path}.password"), r.password.as_deref()),
        }
    });
    let vault = raw.vault.as_ref().map(|v| {
        let v_path = format!("{path}.vault");
        missing(cx, "vault", "vault", s.vault.enabled != Some(false));
        let paths = v
            .paths
            .clone()
            .unwrap_or_else(|| vec![format!("apps/{name}")]);
        if paths.is_empty() {
            cx.err(&format!("{v_path}.paths"), "no paths").expected =
                Some(format!("KV paths it may read, e.g. `[apps/{name}]`"));
        }
        for (i, p) in paths.iter().enumerate() {
            cx.identifier(
                &format!("{v_path}.paths[{i}]"),
                p,
                Ident::Mount("KV path", "apps/capsule-registry"),
            );
        }
        AppVault {
            role: format!("app-{name}"),
            paths,
        }
    });
    let oidc = raw.oidc.as_ref().map(|o| {
        let o_path = format!("{path}.oidc");
        let issuer = o.issuer_url.clone().unwrap_or_default();
        if !(issuer.starts_with("https://") || issuer.starts_with("http://"))
            || issuer.contains(|c: char| c.is_whitespace() || c.is_control())
        {
            cx.err(
                &format!("{o_path}.issuer_url"),
                format!("`{issuer}` is not an issuer URL"),
            )
            .expected = Some("an `https://` URL, e.g. `https://anumate.eu.auth0.com/`".into());
        }
        let client_id = o.client_id.clone().unwrap_or_default();
        for (k, v) in [
            ("client_id", Some(&client_id)),
            ("audience", o.audience.as_ref()),
        ] {
            if let Some(v) = v
                && (v.is_empty() || v.contains(|c: char| c.is_whitespace() || c.is_control()))
            {
                cx.err(&format!("{o_path}.{k}"), format!("`{v}` is not a {k}"))
                    .expected = Some("a non-empty value without spaces".into());
            }
        }
        AppOidc {
            issuer_url: issuer,
            client_id,
            audience: o.audience.clone(),
        }
    });
    AppUses {
        postgres,
        nats,
        redis,
        vault,
        oidc,
    }
}

fn deps(cx: &mut Cx<'_>, path: &str, raw: Option<&[String]>) -> Vec<ServiceName> {
    raw.unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match ServiceName::new(d) {
            Ok(n) => Some(n),
            Err(e) => {
                cx.err(&format!("{path}[{i}]"), e.to_string());
                None
            }
        })
        .collect()
}

fn extras(cx: &mut Cx<'_>, raw: &RawEnvironment) -> BTreeMap<ServiceName, Extra> {
    let mut out = BTreeMap::new();
    for (name, extra) in &raw.extras {
        let Some(extra) = extra else { continue };
        let path = format!("extras.{name}");
        let Some(sname) = cx.dns_name(&path, name, "service") else {
            continue;
        };
        if CoreKind::from_name(name).is_some() || raw.apps.contains_key(name) {
            cx.err(
                &path,
                format!("`{name}` is already the name of another service"),
            )
            .help = Some("service names are unique across services, apps and extras".into());
        }
        if extra.enabled == Some(false) {
            continue;
        }
        let Some(image) = extra.image.clone() else {
            cx.err(&format!("{path}.image"), "no image given").expected =
                Some("an image with tag, e.g. `rabbitmq:3.9-management`".into());
            continue;
        };
        for k in extra.ports.keys() {
            if !is_dns_label(k) || k.len() > 15 {
                let loc = cx.key_loc(&format!("{path}.ports.{k}"));
                cx.errors.push(
                    Diagnostic::new(format!("`{k}` is not a valid port name"))
                        .at(Some(loc))
                        .path(format!("{path}.ports.{k}"))
                        .expected("a DNS label of at most 15 characters (a Kubernetes port name)"),
                );
            }
        }
        let port_of = |cx: &mut Cx<'_>, p: &str, port_name: &str| -> Option<u16> {
            let found = extra.ports.get(port_name).copied();
            if found.is_none() {
                let known = extra.ports.keys().map(String::as_str).collect::<Vec<_>>();
                let d = cx.err(p, format!("no port named `{port_name}`"));
                d.expected = Some(format!(
                    "one of the names under {path}.ports: {}",
                    known.join(", ")
                ));
                if let Some(c) = closest(port_name, known) {
                    d.help = Some(format!("did you mean `{c}`?"));
                }
            }
            found
        };
        let health = extra.health.as_ref().and_then(|h| {
            let given = [h.http.is_some(), h.tcp.is_some(), h.command.is_some()]
                .iter()
                .filter(|b| **b)
                .count();
            if given != 1 {
                cx.err(
                    &format!("{path}.health"),
                    format!("{given} health checks given"),
                )
                .expected = Some("exactly one of `http`, `tcp` or `command`".into());
                return None;
            }
            if let Some(http) = &h.http {
                let p = format!("{path}.health.http");
                let (port_name, rest) = http.split_once('/').unwrap_or((http.as_str(), ""));
                let port = port_of(cx, &p, port_name)?;
                return Some(ExtraHealth::Http {
                    port_name: port_name.to_owned(),
                    port,
                    path: format!("/{rest}"),
                });
            }
            if let Some(tcp) = &h.tcp {
                let port = port_of(cx, &format!("{path}.health.tcp"), tcp)?;
                return Some(ExtraHealth::Tcp {
                    port_name: tcp.clone(),
                    port,
                });
            }
            let argv = h.command.clone().unwrap_or_default();
            if argv.is_empty() {
                cx.err(&format!("{path}.health.command"), "an empty command")
                    .expected =
                    Some("a command and its arguments, e.g. `[rabbitmq-diagnostics, ping]`".into());
                return None;
            }
            Some(ExtraHealth::Command { argv })
        });
        if let Some(mp) = &extra.metrics_port {
            port_of(cx, &format!("{path}.metrics_port"), mp);
        }
        image_ref(cx, &format!("{path}.image"), &image);
        if let Some(r) = extra.replicas {
            cx.bound(
                &format!("{path}.replicas"),
                r,
                1..=MAX_APP_REPLICAS,
                "more replicas than that is a typo, not a deployment",
            );
        }
        for (k, v) in &extra.volumes {
            if !is_dns_label(k) {
                let loc = cx.key_loc(&format!("{path}.volumes.{k}"));
                cx.errors.push(
                    Diagnostic::new(format!("`{k}` is not a valid volume name"))
                        .at(Some(loc))
                        .path(format!("{path}.volumes.{k}"))
                        .expected(
                            "a DNS label (it names a volume and a Kubernetes claim), e.g. `data`",
                        ),
                );
            }
            if !v.starts_with('/') || v.contains(|c: char| c.is_control() || c == '"') {
                cx.err(
                    &format!("{path}.volumes.{k}"),
                    format!("`{v}` is not an absolute path"),
                )
                .expected = Some("the absolute mount path inside the container".into());
            }
        }
        for k in extra.env.keys() {
            cx.env_var_name(&format!("{path}.env.{k}"), k);
        }
        let secrets = cx.secrets_map(&format!("{path}.secrets"), &extra.secrets);
        let depends_on = deps(
            cx,
            &format!("{path}.depends_on"),
            extra.depends_on.as_deref(),
        );
        out.insert(
            sname,
            Extra {
                image,
                command: extra.command.clone(),
                args: extra.args.clone(),
                ports: extra.ports.clone(),
                env: extra.env.clone(),
                secrets,
                health,
                volumes: extra.volumes.clone(),
                storage: cx.memory(&format!("{path}.storage"), extra.storage.as_deref(), "1Gi"),
                replicas: extra.replicas.unwrap_or(1),
                resources: cx.resources(&format!("{path}.resources"), extra.resources.as_ref()),
                depends_on,
                metrics_port: extra.metrics_port.clone(),
            },
        );
    }
    out
}

fn monitoring(cx: &mut Cx<'_>, raw: &raw::RawMonitoring) -> Option<Monitoring> {
    if raw.enabled == Some(false) {
        return None;
    }
    let component =
        |cx: &mut Cx<'_>, key: &str, c: &Option<raw::RawComponent>, image: &str, port: u16| {
            let c = c.clone().unwrap_or_default();
            if c.enabled == Some(false) {
                return None;
            }
            if let Some(i) = &c.image {
                image_ref(cx, &format!("monitoring.{key}.image"), i);
            }
            Some(Component {
                image: c.image.unwrap_or_else(|| image.to_owned()),
                port: c.port.unwrap_or(port),
                resources: cx
                    .resources(&format!("monitoring.{key}.resources"), c.resources.as_ref()),
            })
        };
    let prometheus = component(
        cx,
        "prometheus",
        &raw.prometheus,
        "prom/prometheus:v2.42.0",
        9091,
    );
    let alertmanager = component(
        cx,
        "alertmanager",
        &raw.alertmanager,
        // 0.26 or later: the rendered webhook receiver reads its URL (a secret)
        // from a file with `url_file`.
        "prom/alertmanager:v0.27.0",
        9093,
    );
    let grafana = component(cx, "grafana", &raw.grafana, "grafana/grafana:9.5.0", 3000);
    let postgres_exporter = component(
        cx,
        "postgres_exporter",
        &raw.postgres_exporter,
        "quay.io/prometheuscommunity/postgres-exporter:v0.15.0",
        9187,
    );
    let redis_exporter = component(
        cx,
        "redis_exporter",
        &raw.redis_exporter,
        "oliver006/redis_exporter:v1.58.0",
        9121,
    );
    let nats_exporter = component(
        cx,
        "nats_exporter",
        &raw.nats_exporter,
        "natsio/prometheus-nats-exporter:0.15.0",
        7777,
    );
    // 1.5.0: the version Debian's prometheus-node-exporter runs on the process platform.
    let node_exporter = component(
        cx,
        "node_exporter",
        &raw.node_exporter,
        "quay.io/prometheus/node-exporter:v1.5.0",
        9100,
    );
    let raw_notify = raw.notify.clone().unwrap_or_default();
    let notify = Notify {
        group_wait: cx.duration(
            "monitoring.notify.group_wait",
            raw_notify.group_wait.as_deref(),
            "30s",
        ),
        group_interval: cx.duration(
            "monitoring.notify.group_interval",
            raw_notify.group_interval.as_deref(),
            "5m",
        ),
        repeat_interval: cx.duration(
            "monitoring.notify.repeat_interval",
            raw_notify.repeat_interval.as_deref(),
            if cx.tier == Tier::Dev { "12h" } else { "4h" },
        ),
    };
    let controlplane = match raw.controlplane.clone().unwrap_or_default() {
        raw::RawScrapeTarget {
            enabled: Some(false),
            ..
        } => None,
        t => Some(ScrapeTarget {
            port: t.port.unwrap_or(7700),
        }),
    };
    let webhook_url = raw.webhook_url.as_deref().map(|w| {
        // A webhook URL is usually a secret (it carries a token) but may be plain in dev.
        cx.secret("monitoring.webhook_url", Some(w))
    });
    Some(Monitoring {
        scrape_interval: cx.duration(
            "monitoring.scrape_interval",
            raw.scrape_interval.as_deref(),
            "15s",
        ),
        evaluation_interval: cx.duration(
            "monitoring.evaluation_interval",
            raw.evaluation_interval.as_deref(),
            "30s",
        ),
        prometheus,
        alertmanager,
        grafana,
        postgres_exporter,
        redis_exporter,
        nats_exporter,
        node_exporter,
        webhook_url,
        notify,
        controlplane,
        grafana_admin_password: cx.secret(
            "monitoring.grafana_admin_password",
            raw.grafana_admin_password.as_deref(),
        ),
    })
}

fn streams(cx: &mut Cx<'_>, raw: &RawEnvironment) -> BTreeMap<StreamName, Stream> {
    let mut out = BTreeMap::new();
    let mut subjects_seen: Vec<(String, String, String)> = Vec::new();
    for (name, s) in &raw.streams {
        let Some(s) = s else { continue };
        let path = format!("streams.{name}");
        let sname = match StreamName::new(name) {
            Ok(n) => n,
            Err(e) => {
                let loc = cx.key_loc(&path);
                cx.errors.push(
                    Diagnostic::new(e.to_string())
                        .at(Some(loc))
                        .path(path.clone()),
                );
                continue;
            }
        };
        let subjects = s.subjects.clone().unwrap_or_default();
        if subjects.is_empty() {
            cx.err(&format!("{path}.subjects"), "no subjects").expected =
                Some("at least one subject, e.g. `[\"events.capsule.>\"]`".into());
        }
        for (i, subj) in subjects.iter().enumerate() {
            if !valid_subject(subj) {
                cx.err(
                    &format!("{path}.subjects[{i}]"),
                    format!("`{subj}` is not a valid subject"),
                )
                .expected = Some(
                    "dot-separated tokens; `*` matches one token and `>` the rest (only last)"
                        .into(),
                );
                continue;
            }
            if let Some((reserved, whose)) = reserved_subject(subj) {
                let d = cx.err(
                    &format!("{path}.subjects[{i}]"),
                    format!("`{subj}` overlaps `{reserved}`, the subjects of {whose}"),
                );
                d.expected = Some(
                    "subjects of your own, e.g. `events.capsule.>`; not `>`, `$...` or `_INBOX...`"
                        .into(),
                );
                d.help = Some("a stream over reserved subjects would record other clients' traffic and open them to the app user".into());
                continue;
            }
            for (other_stream, other_path, other) in &subjects_seen {
                if subjects_overlap(subj, other) {
                    let note = format!("{other_path} is set at {}", cx.loc(other_path));
                    let d = cx.err(
                        &format!("{path}.subjects[{i}]"),
                        format!("`{subj}` overlaps `{other}` of stream {other_stream}"),
                    );
                    d.notes.push(note);
                    d.help = Some(
                        "JetStream refuses streams with overlapping subjects; make them disjoint"
                            .into(),
                    );
                    // One clash per subject: a thousand streams on one subject are a
                    // thousand errors, not half a million.
                    break;
                }
            }
        }
        for (i, subj) in subjects.iter().enumerate() {
            subjects_seen.push((name.clone(), format!("{path}.subjects[{i}]"), subj.clone()));
        }
        let replicas = s.replicas.unwrap_or(1);
        if !(1..=5).contains(&replicas) {
            cx.err(&format!("{path}.replicas"), format!("{replicas} replicas"))
                .expected = Some("1 to 5".into());
        }
        if let Some(m) = s.max_msgs
            && m < -1
        {
            cx.err(&format!("{path}.max_msgs"), format!("{m} messages"))
                .expected = Some("a count of at least 1, or -1 for no limit".into());
        }
        let max_bytes = s.max_bytes.as_deref().map(|b| {
            cx.memory(&format!("{path}.max_bytes"), Some(b), "1Gi")
                .bytes()
        });
        out.insert(
            sname,
            Stream {
                subjects,
                retention: s.retention.unwrap_or(StreamRetention::Limits),
                max_age: cx.duration(&format!("{path}.max_age"), s.max_age.as_deref(), "7d"),
                max_bytes,
                max_msgs: s.max_msgs,
                storage: s.storage.unwrap_or(StreamStorage::File),
                replicas,
                discard: s.discard.unwrap_or(StreamDiscard::Old),
                duplicate_window: cx.duration(
                    &format!("{path}.duplicate_window"),
                    s.duplicate_window.as_deref(),
                    "2m",
                ),
                max_consumer_lag: s.max_consumer_lag.unwrap_or(1000),
            },
        );
    }
    out
}

/// Redis's eviction policies (`maxmemory-policy`).
const REDIS_POLICIES: [&str; 8] = [
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
];

/// A Redis memory size: digits and an optional unit (`redis.conf`'s syntax).
fn is_redis_memory(s: &str) -> bool {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    !num.is_empty()
        && num.parse::<u64>().is_ok()
        && matches!(
            unit.to_ascii_lowercase().as_str(),
            "" | "b" | "k" | "kb" | "m" | "mb" | "g" | "gb"
        )
}

/// Subjects a stream may not capture, with whose they are: JetStream's API and
/// acknowledgements, the system account, the KV and object stores, reply inboxes
/// (everyone's `_INBOX.>`, controlplane's own `_INBOX_CP`, which carries stream
/// snapshots, and every user's custom prefix `_INBOX_<user>`). A stream over any of
/// them would record other clients' traffic and put it in the app user's allow-lists.
pub(crate) const RESERVED_SUBJECTS: [(&str, &str); 7] = [
    ("$JS.>", "JetStream's API"),
    ("$SYS.>", "the NATS system account"),
    ("$KV.>", "JetStream key-value buckets"),
    ("$O.>", "JetStream object stores"),
    ("$NRG.>", "JetStream's RAFT groups"),
    ("_INBOX.>", "reply inboxes"),
    ("_INBOX_CP.>", "controlplane's own reply inbox"),
];

/// The reserved subject filter `subject` overlaps, if any ([`RESERVED_SUBJECTS`]; any
/// first token starting with `$` or `_INBOX` is reserved too).
fn reserved_subject(subject: &str) -> Option<(&'static str, &'static str)> {
    if let Some(r) = RESERVED_SUBJECTS
        .iter()
        .find(|(r, _)| subjects_overlap(subject, r))
    {
        return Some(*r);
    }
    let first = subject.split('.').next().unwrap_or_default();
    if first.starts_with('$') {
        return Some(("$*", "NATS's internal subjects"));
    }
    if first.starts_with("_INBOX") {
        return Some(("_INBOX*", "reply inboxes"));
    }
    None
}

fn valid_subject(s: &str) -> bool {
    let tokens: Vec<&str> = s.split('.').collect();
    !s.is_empty()
        && tokens.iter().enumerate().all(|(i, t)| {
            !t.is_empty()
                && !t.contains(char::is_whitespace)
                && !t.contains(|c: char| c.is_control() || c == '"' || c == '\\')
                && (*t == "*" || *t == ">" || !t.contains(['*', '>']))
                && (*t != ">" || i == tokens.len() - 1)
        })
}

/// Whether two subject filters can match a common subject.
pub(crate) fn subjects_overlap(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    let mut i = 0;
    loop {
        match (a.get(i), b.get(i)) {
            (Some(&">"), Some(_)) | (Some(_), Some(&">")) => return true,
            (Some(x), Some(y)) if *x == "*" || *y == "*" || x == y => i += 1,
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn vault_config(cx: &mut Cx<'_>, raw: &raw::RawVaultConfig) -> VaultConfig {
    let mut policies = BTreeMap::new();
    for (name, rules) in &raw.policies {
        let Some(rules) = rules else { continue };
        let path = format!("vault.policies.{name}");
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || name.is_empty()
        {
            let loc = cx.key_loc(&path);
            cx.errors.push(
                Diagnostic::new(format!("`{name}` is not a valid policy name"))
                    .at(Some(loc))
                    .path(path.clone())
                    .expected("letters, digits, `-` and `_`"),
            );
        }
        if name == "root" || name == "default" {
            cx.err(&path, format!("`{name}` is a built-in policy")).help = Some(
                "pick another name; controlplane does not rewrite Vault's built-in policies".into(),
            );
        }
        let mut out = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let rp = format!("{path}[{i}]");
            let Some(p) = r.path.clone().filter(|p| !p.is_empty()) else {
                cx.err(&format!("{rp}.path"), "no path").expected =
                    Some("an API path like `secret/data/anumate/*`".into());
                continue;
            };
            if p.len() > 512
                || !p
                    .chars()
                    .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\\' | '\''))
            {
                cx.err(&format!("{rp}.path"), format!("`{p}` is not a Vault API path"))
                    .expected = Some(
                    "printable ASCII without spaces, quotes or backslashes, e.g. `secret/data/anumate/*`"
                        .into(),
                );
            }
            let caps = r.capabilities.clone().unwrap_or_default();
            if caps.is_empty() {
                cx.err(&format!("{rp}.capabilities"), "no capabilities")
                    .expected = Some("a list such as `[read, list]`".into());
            }
            if let Some(j) = caps.iter().position(|c| *c == VaultCapability::Sudo) {
                cx.err(&format!("{rp}.capabilities[{j}]"), "`sudo` in a policy").help =
                    Some("controlplane's policies are least-privilege; give sudo by hand if you really need it".into());
            }
            out.push(PolicyRule {
                path: p,
                capabilities: caps,
            });
        }
        policies.insert(name.clone(), out);
    }
    let role = raw.app_role.clone().unwrap_or_default();
    let role_policies = role
        .policies
        .clone()
        .unwrap_or_else(|| vec!["anumate-app".into()]);
    for (i, p) in role_policies.iter().enumerate() {
        if !policies.contains_key(p) && p != "default" {
            let known: Vec<&str> = policies.keys().map(String::as_str).collect();
            let d = cx.err(
                &format!("vault.app_role.policies[{i}]"),
                format!("no policy named `{p}`"),
            );
            d.expected = Some(format!("one of vault.policies: {}", known.join(", ")));
            if let Some(c) = closest(p, known) {
                d.help = Some(format!("did you mean `{c}`?"));
            }
        }
    }
    let token_ttl = cx.duration("vault.app_role.token_ttl", role.token_ttl.as_deref(), "1h");
    let token_max_ttl = cx.duration(
        "vault.app_role.token_max_ttl",
        role.token_max_ttl.as_deref(),
        "4h",
    );
    if token_ttl.as_secs() == 0 || token_max_ttl.as_secs() == 0 {
        let key = if token_ttl.as_secs() == 0 {
            "token_ttl"
        } else {
            "token_max_ttl"
        };
        cx.err(
            &format!("vault.app_role.{key}"),
            "an unlimited token TTL (0 means no limit to Vault)",
        )
        .expected = Some("finite TTLs, e.g. `1h` and `4h`".into());
    } else if token_max_ttl < token_ttl {
        cx.err(
            "vault.app_role.token_max_ttl",
            format!("{token_max_ttl} is below token_ttl {token_ttl}"),
        )
        .expected = Some(format!("at least {token_ttl}"));
    }
    let keys = raw
        .keys
        .clone()
        .unwrap_or_else(|| vec!["anumate-config".into(), "anumate-audit".into()]);
    for (i, k) in keys.iter().enumerate() {
        if !cx.identifier(
            &format!("vault.keys[{i}]"),
            k,
            Ident::Name("transit key name", "anumate-config"),
        ) {
            continue;
        }
        if k.starts_with("tenant-") {
            cx.err(&format!("vault.keys[{i}]"), format!("`{k}` uses the tenant key prefix")).help =
                Some("`tenant-*` keys are created by `controlplane tenant create`; name global keys `anumate-*`".into());
        }
    }
    for (key, value) in [
        ("kv_mount", &raw.kv_mount),
        ("transit_mount", &raw.transit_mount),
    ] {
        if let Some(m) = value {
            cx.identifier(
                &format!("vault.{key}"),
                m,
                Ident::Mount("Vault mount path", "secret"),
            );
        }
    }
    if let Some(name) = &role.name {
        cx.identifier(
            "vault.app_role.name",
            name,
            Ident::Name("AppRole name", "anumate-app"),
        );
    }
    if let Some(a) = &raw.audit_log
        && (a.is_empty() || a.len() > 1024 || a.contains(|c: char| c.is_control()))
    {
        cx.err("vault.audit_log", format!("`{a}` is not a file path"))
            .expected = Some("a path on one line, e.g. `vault-audit.log`".into());
    }
    VaultConfig {
        kv_mount: raw.kv_mount.clone().unwrap_or_else(|| "secret".into()),
        transit_mount: raw
            .transit_mount
            .clone()
            .unwrap_or_else(|| "transit".into()),
        keys,
        policies,
        app_role: AppRole {
            name: role.name.unwrap_or_else(|| "anumate-app".into()),
            policies: role_policies,
            token_ttl,
            token_max_ttl,
        },
        audit_log: raw
            .audit_log
            .clone()
            .unwrap_or_else(|| "vault-audit.log".into()),
        kubernetes_auth: kubernetes_auth(cx, raw.kubernetes_auth.as_ref()),
    }
}

fn kubernetes_auth(cx: &mut Cx<'_>, raw: Option<&raw::RawKubernetesAuth>) -> KubernetesAuth {
    let raw = raw.cloned().unwrap_or_default();
    let mount_path = raw.mount_path.unwrap_or_else(|| "kubernetes".into());
    let segment = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if !mount_path.split('/').all(segment) {
        cx.err(
            "vault.kubernetes_auth.mount_path",
            format!("`{mount_path}` is not an auth mount path"),
        )
        .expected = Some(
            "a path like `kubernetes` or `k8s/staging`, without leading or trailing `/`".into(),
        );
    }
    let role = raw.role.unwrap_or_else(|| "external-secrets".into());
    if !segment(&role) {
        cx.err(
            "vault.kubernetes_auth.role",
            format!("`{role}` is not a Vault role name"),
        )
        .expected = Some("letters, digits, `-`, `_` and `.`".into());
    }
    KubernetesAuth { mount_path, role }
}

/// A five-field cron schedule at `key` (`default` when unset), with its longest gap.
fn schedule(cx: &mut Cx<'_>, key: &str, raw: Option<&str>, default: &str) -> Schedule {
    let cron = raw.unwrap_or(default).to_owned();
    let max_interval = match cron_max_interval(&cron) {
        Ok(d) => d,
        Err(e) => {
            let d = cx.err(key, format!("`{cron}`: {e}"));
            d.expected = Some(format!(
                "five fields: minute hour day-of-month month day-of-week, e.g. `{default}`"
            ));
            Duration::from_secs(86_400)
        }
    };
    Schedule { cron, max_interval }
}

fn drift(cx: &mut Cx<'_>, raw: &raw::RawDrift) -> Drift {
    let schedule = schedule(
        cx,
        "drift.schedule",
        raw.schedule.as_deref(),
        "*/10 * * * *",
    );
    let for_ = cx.duration("drift.for", raw.for_.as_deref(), "30m");
    let webhook_url = raw
        .webhook_url
        .as_deref()
        .map(|r| cx.secret("drift.webhook_url", Some(r)));
    Drift {
        schedule,
        for_,
        webhook_url,
    }
}

/// The `serve` section: a maximum API token lifetime per role.
fn serve(cx: &mut Cx<'_>, raw: &raw::RawServe) -> Serve {
    let m = &raw.tokens.max_ttl;
    let mut one = |role: &str, v: &Option<String>| {
        let path = format!("serve.tokens.max_ttl.{role}");
        let d = cx.duration(&path, v.as_deref(), "0s");
        let parsed = v.as_deref().is_some_and(|t| Duration::parse(t).is_ok());
        if parsed && d.as_secs() < 60 {
            cx.err(
                &path,
                format!("a token that may live at most {d} cannot be used"),
            )
            .expected = Some("at least `1m` (e.g. `24h`, `30d`)".into());
        }
        v.as_ref().map(|_| d)
    };
    Serve {
        token_max_ttl: TokenMaxTtl {
            viewer: one("viewer", &m.viewer),
            editor: one("editor", &m.editor),
            admin: one("admin", &m.admin),
        },
    }
}

/// A `tls.ca: ref` reference: required, and a `vault://` or `env://` reference in
/// every tier (a CA key written in an environment file would be in version control,
/// and `generate` would make a random string, not a CA).
fn ca_ref(cx: &mut Cx<'_>, path: &str, value: Option<&str>) -> SecretRef {
    let expected = "`vault://<path>#<key>` or `env://NAME` holding the PEM";
    let Some(text) = value else {
        let d = cx.err(path, "`tls.ca: ref` needs the CA certificate and its key");
        d.expected = Some(expected.into());
        return SecretRef::Generate;
    };
    let r = cx.secret(path, Some(text));
    // Outside dev, `secret` has refused both already.
    if cx.tier == Tier::Dev && (r.is_plain() || r == SecretRef::Generate) {
        let d = cx.err(
            path,
            "a CA for `tls.ca: ref` comes from a secret reference, not from the environment file",
        );
        *d = std::mem::replace(d, Diagnostic::new("")).redact_value();
        d.expected = Some(expected.into());
        d.help = Some("or use `tls.ca: generate` to have controlplane make one".into());
    }
    r
}

/// The `tls` section: `required` by default outside dev, where `off` is refused;
/// TLS 1.3 and 30-day certificates by default outside dev.
fn tls(cx: &mut Cx<'_>, raw: &raw::RawTls, tier: Tier, platform: Platform) -> Tls {
    let dev = tier == Tier::Dev;
    let mode = raw
        .mode
        .unwrap_or(if dev { TlsMode::Off } else { TlsMode::Required });
    if mode == TlsMode::Off && !dev {
        let tier = tier_name(tier);
        let d = cx.err(
            "tls.mode",
            format!(
                "TLS is off in {tier}: every connection would carry passwords and data in plaintext"
            ),
        );
        d.expected = Some("`required` (or `on` while clients move to TLS)".into());
        d.help = Some("remove `tls.mode: off`; `off` is accepted only in dev".into());
    }
    let min_version = raw.min_version.unwrap_or(if dev {
        TlsVersion::V1_2
    } else {
        TlsVersion::V1_3
    });
    let lifetime = cx.duration(
        "tls.lifetime",
        raw.lifetime.as_deref(),
        if dev { "90d" } else { "30d" },
    );
    if lifetime.as_secs() != 0 && lifetime.as_secs() < 60 {
        cx.err(
            "tls.lifetime",
            format!("a certificate lifetime of {lifetime} leaves no time to renew it"),
        )
        .expected = Some("at least `1m` (days in practice, e.g. `30d`)".into());
    }
    if platform == Platform::Kubernetes
        && mode != TlsMode::Off
        && lifetime.as_secs() != 0
        && lifetime.as_secs() < 3600
    {
        let d = cx.err(
            "tls.lifetime",
            format!("a certificate lifetime of {lifetime} on Kubernetes: cert-manager refuses a `Certificate` whose duration is under 1h"),
        );
        d.expected = Some("at least `1h` (e.g. `30d`)".into());
        d.help = Some("short lifetimes for renewal tests work on the process platform".into());
    }
    let renew_at_percent = raw.renew_at_percent.unwrap_or(67);
    cx.bound(
        "tls.renew_at_percent",
        renew_at_percent,
        10..=95,
        "a certificate is renewed once this share of its lifetime has passed",
    );
    let ca = match raw.ca.unwrap_or(raw::TlsCa::Generate) {
        raw::TlsCa::Generate => TlsCa::Generate,
        raw::TlsCa::VaultPki => {
            let d = cx.err(
                "tls.ca",
                "`vault-pki` certificates are not supported yet by this version of controlplane",
            );
            d.expected = Some("`generate` or `ref`".into());
            TlsCa::Generate
        }
        raw::TlsCa::Ref => {
            if platform == Platform::Kubernetes {
                let d = cx.err(
                    "tls.ca",
                    "`ref` on Kubernetes: cert-manager signs the services' certificates there, not controlplane",
                );
                d.expected = Some(
                    "`generate` (the OpenBao PKI issuer) or `tls.issuer.cluster_issuer`".into(),
                );
                d.help = Some("put the CA in a cert-manager CA `ClusterIssuer` and name it in `tls.issuer.cluster_issuer`".into());
            }
            let cert = ca_ref(cx, "tls.ca_cert", raw.ca_cert.as_deref());
            let key = ca_ref(cx, "tls.ca_key", raw.ca_key.as_deref());
            TlsCa::Ref { cert, key }
        }
    };
    for (path, given) in [("tls.ca_cert", &raw.ca_cert), ("tls.ca_key", &raw.ca_key)] {
        if given.is_some() && raw.ca != Some(raw::TlsCa::Ref) {
            cx.err(path, "set, but `tls.ca` is not `ref`").expected =
                Some("`tls.ca: ref`, or remove this setting".into());
        }
    }
    let cluster_issuer = raw.issuer.cluster_issuer.clone();
    if let Some(name) = &cluster_issuer {
        cx.identifier(
            "tls.issuer.cluster_issuer",
            name,
            Ident::Dns("ClusterIssuer name", "corp-ca"),
        );
    }
    let mut acme_issuers = BTreeMap::new();
    for (name, a) in &raw.acme_issuers {
        let path = format!("tls.acme_issuers.{name}");
        cx.identifier(
            &path,
            name,
            Ident::Dns("ClusterIssuer name", "letsencrypt-prod"),
        );
        let email = a.email.clone().unwrap_or_default();
        if !email.contains('@') || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            cx.err(
                &format!("{path}.email"),
                format!("`{email}` is not an e-mail address"),
            )
            .expected = Some("the ACME account's contact, e.g. `ops@example.com`".into());
        }
        let server = a
            .server
            .clone()
            .unwrap_or_else(|| crate::model::LETSENCRYPT_DIRECTORY.into());
        if !server.starts_with("https://")
            || server.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            cx.err(
                &format!("{path}.server"),
                format!("`{server}` is not an https:// URL"),
            )
            .expected = Some(format!(
                "an ACME directory, e.g. `{}`",
                crate::model::LETSENCRYPT_DIRECTORY
            ));
        }
        let ingress_class = a.ingress_class.clone().unwrap_or_else(|| "nginx".into());
        cx.identifier(
            &format!("{path}.ingress_class"),
            &ingress_class,
            Ident::Dns("ingress class", "nginx"),
        );
        acme_issuers.insert(
            name.clone(),
            crate::model::AcmeIssuer {
                email,
                server,
                ingress_class,
            },
        );
    }
    Tls {
        mode,
        min_version,
        lifetime,
        renew_at_percent,
        ca,
        cluster_issuer,
        acme_issuers,
    }
}

fn rotation(cx: &mut Cx<'_>, raw: &raw::RawRotation) -> Rotation {
    let schedule = schedule(
        cx,
        "rotation.schedule",
        raw.schedule.as_deref(),
        "0 3 * * *",
    );
    let before = cx.errors.len();
    let keys_every = cx.duration(
        "rotation.transit_keys.every",
        raw.transit_keys.every.as_deref(),
        "30d",
    );
    let passwords_every = cx.duration(
        "rotation.passwords.every",
        raw.passwords.every.as_deref(),
        "90d",
    );
    let keep_versions = raw.transit_keys.keep_versions.unwrap_or(2);
    if keep_versions == 0 {
        cx.err(
            "rotation.transit_keys.keep_versions",
            "0 versions decryptable would make every ciphertext unreadable",
        )
        .expected = Some("at least 1, e.g. `2`".into());
    }
    let parsed = cx.errors.len() == before;
    for (path, d) in [
        ("rotation.transit_keys.every", &keys_every),
        ("rotation.passwords.every", &passwords_every),
    ] {
        if parsed && d.as_secs() < 3600 {
            cx.err(path, format!("`{d}` is shorter than an hour"))
                .expected = Some("an hour or more, e.g. `30d`".into());
        }
    }
    Rotation {
        schedule,
        keys_every,
        keep_versions: keep_versions.max(1),
        passwords_every,
    }
}

fn backup(cx: &mut Cx<'_>, raw: &raw::RawBackup, services: &CoreServices) -> Option<Backup> {
    if raw.enabled == Some(false) {
        return None;
    }
    let Schedule { cron, max_interval } =
        schedule(cx, "backup.schedule", raw.schedule.as_deref(), "0 2 * * *");
    let mut kinds = Vec::new();
    let names = raw.services.clone().unwrap_or_else(|| {
        services
            .enabled()
            .iter()
            .map(|k| k.as_str().to_owned())
            .collect()
    });
    for (i, s) in names.iter().enumerate() {
        match CoreKind::from_name(s) {
            Some(k) if services.common(k).is_some() => kinds.push(k),
            Some(_) => {
                cx.err(
                    &format!("backup.services[{i}]"),
                    format!("`{s}` is disabled in this environment"),
                );
            }
            None => {
                let d = cx.err(
                    &format!("backup.services[{i}]"),
                    format!("`{s}` cannot be backed up"),
                );
                d.expected = Some("one of `postgres`, `redis`, `nats`, `vault`".into());
                if let Some(c) = closest(s, CoreKind::ALL.iter().map(|k| k.as_str())) {
                    d.help = Some(format!("did you mean `{c}`?"));
                }
            }
        }
    }
    let r = raw.retention.clone().unwrap_or_default();
    let retention = Retention {
        daily: r.daily.unwrap_or(7),
        weekly: r.weekly.unwrap_or(4),
        monthly: r.monthly.unwrap_or(6),
    };
    for (key, n, max, unit) in [
        ("daily", retention.daily, 3660, "days"),
        ("weekly", retention.weekly, 520, "weeks"),
        ("monthly", retention.monthly, 1200, "months"),
    ] {
        cx.bound(
            &format!("backup.retention.{key}"),
            n,
            0..=max,
            &format!("{max} {unit} is 10 years or more (100 for months) of backups; keep longer archives outside controlplane's retention"),
        );
    }
    if u64::from(retention.daily) + u64::from(retention.weekly) + u64::from(retention.monthly) == 0
    {
        let d = cx.err(
            "backup.retention",
            "a retention of zero: every backup would be pruned",
        );
        d.expected = Some("at least one of daily, weekly, monthly above 0, e.g. 7/4/6".into());
        d.help = Some("to stop taking backups set `backup.enabled: false` instead".into());
    } else if retention.daily == 0 {
        let d = cx.err("backup.retention.daily", "daily retention of zero");
        d.expected = Some("at least 1, so the newest backup is always kept".into());
    }
    let level = raw.compression_level.unwrap_or(3);
    if !(1..=19).contains(&level) {
        cx.err("backup.compression_level", format!("level {level}"))
            .expected = Some("1 to 19".into());
    }
    let encrypt_to = raw.encrypt_to.clone().unwrap_or_default();
    for (i, r) in encrypt_to.iter().enumerate() {
        if !r.starts_with("age1") {
            cx.err(
                &format!("backup.encrypt_to[{i}]"),
                format!("`{r}` is not an age recipient"),
            )
            .expected = Some("a public key starting with `age1`".into());
        }
    }
    let identity = raw
        .identity
        .as_deref()
        .map(|r| cx.secret("backup.identity", Some(r)));
    let vault_token = raw
        .vault_token
        .as_deref()
        .map(|r| cx.secret("backup.vault_token", Some(r)));
    let mut destinations = BTreeMap::new();
    for (name, d) in &raw.destinations {
        let Some(d) = d else { continue };
        // The name is in every backup set's manifest and in `--destination NAME`.
        if !is_identifier(name) {
            let path = format!("backup.destinations.{name}");
            let loc = cx.key_loc(&path);
            cx.errors.push(
                Diagnostic::new(format!("`{name}` is not a valid destination name"))
                    .at(Some(loc))
                    .path(path)
                    .expected("an ASCII letter, then letters, digits, `_` and `-`, e.g. `offsite`"),
            );
        } else if name == "all" {
            // `backup --destination all` means every destination.
            let path = format!("backup.destinations.{name}");
            let loc = cx.key_loc(&path);
            cx.errors.push(
                Diagnostic::new("`all` is reserved: `--destination all` means every destination")
                    .at(Some(loc))
                    .path(path)
                    .expected("another name, e.g. `offsite`"),
            );
        }
        if let Some(dest) = destination(cx, &format!("backup.destinations.{name}"), d) {
            destinations.insert(name.clone(), dest);
        }
    }
    if destinations.is_empty() {
        let d = cx.err("backup.destinations", "backups enabled but no destination");
        d.expected =
            Some("at least one destination, e.g. `local: {type: local, path: backups/dev}`".into());
    }
    let default_max_age = Duration::from_secs(max_interval.as_secs() + max_interval.as_secs() / 2);
    let max_age = raw
        .max_age
        .as_deref()
        .map(|m| cx.duration("backup.max_age", Some(m), "1d"))
        .unwrap_or(default_max_age);
    if raw.max_age.is_some() && max_age < max_interval {
        let d = cx.err(
            "backup.max_age",
            format!("{max_age} is shorter than the schedule's interval {max_interval}: the alert would always fire"),
        );
        d.expected = Some(format!("more than {max_interval}"));
    }
    let pitr = pitr(cx, raw.pitr.as_ref(), &destinations, services);
    Some(Backup {
        pitr,
        schedule: Schedule { cron, max_interval },
        services: kinds,
        retention,
        compression_level: level,
        encrypt_to,
        identity,
        vault_token,
        destinations,
        max_age,
    })
}

/// `backup.pitr`: `None` unless enabled. PostgreSQL must be enabled and the
/// destination must exist; `archive_timeout` is 1s to 1h (PostgreSQL's own range
/// starts at 1s; beyond an hour the RPO is not worth the name).
fn pitr(
    cx: &mut Cx<'_>,
    raw: Option<&raw::RawPitr>,
    destinations: &BTreeMap<String, Destination>,
    services: &CoreServices,
) -> Option<crate::model::Pitr> {
    let raw = raw?;
    if raw.enabled != Some(true) {
        return None;
    }
    if services.postgres.is_none() {
        cx.err(
            "backup.pitr.enabled",
            "point-in-time recovery without PostgreSQL",
        )
        .expected = Some("`services.postgres` enabled, or `backup.pitr.enabled: false`".into());
        return None;
    }
    let archive_timeout = cx.duration(
        "backup.pitr.archive_timeout",
        raw.archive_timeout.as_deref(),
        "60s",
    );
    if !(1..=3600).contains(&archive_timeout.as_secs()) {
        cx.err("backup.pitr.archive_timeout", format!("{archive_timeout}"))
            .expected = Some("1s to 1h (it bounds how much a lost disk loses)".into());
    }
    let base_schedule = schedule(
        cx,
        "backup.pitr.base_schedule",
        raw.base_schedule.as_deref(),
        "0 3 * * *",
    );
    let recovery_window = cx.duration(
        "backup.pitr.recovery_window",
        raw.recovery_window.as_deref(),
        "7d",
    );
    if recovery_window.as_secs() < 3600 {
        cx.err("backup.pitr.recovery_window", format!("{recovery_window}"))
            .expected = Some("at least 1h, e.g. `7d`".into());
    }
    let destination = match raw.destination.as_deref() {
        Some(name) if destinations.contains_key(name) => name.to_owned(),
        Some(name) => {
            let d = cx.err(
                "backup.pitr.destination",
                format!("no destination `{name}`"),
            );
            d.expected = Some("a name under `backup.destinations`".into());
            if let Some(c) = closest(name, destinations.keys().map(String::as_str)) {
                d.help = Some(format!("did you mean `{c}`?"));
            }
            return None;
        }
        None => destinations.keys().next()?.clone(),
    };
    Some(crate::model::Pitr {
        archive_timeout,
        base_schedule,
        recovery_window,
        destination,
    })
}

/// A destination of the kind its `type` says, with exactly that kind's settings: a
/// setting of another kind is an error (it would be silently ignored otherwise).
fn destination(cx: &mut Cx<'_>, path: &str, d: &raw::RawDestination) -> Option<Destination> {
    let kind = d.kind.unwrap_or(DestinationKind::Local);
    let kind_name = match kind {
        DestinationKind::Local => "local",
        DestinationKind::S3 => "s3",
        DestinationKind::Gcs => "gcs",
        DestinationKind::Azure => "azure",
    };
    let allowed: &[&str] = match kind {
        DestinationKind::Local => &["path"],
        DestinationKind::S3 => &[
            "bucket",
            "prefix",
            "region",
            "endpoint",
            "access_key_id",
            "secret_access_key",
        ],
        DestinationKind::Gcs => &["bucket", "prefix", "service_account_key"],
        DestinationKind::Azure => &["bucket", "prefix", "account", "secret_access_key"],
    };
    let given = [
        ("path", d.path.is_some()),
        ("bucket", d.bucket.is_some()),
        ("prefix", d.prefix.is_some()),
        ("region", d.region.is_some()),
        ("endpoint", d.endpoint.is_some()),
        ("access_key_id", d.access_key_id.is_some()),
        ("secret_access_key", d.secret_access_key.is_some()),
        ("account", d.account.is_some()),
        ("service_account_key", d.service_account_key.is_some()),
    ];
    let mut ok = true;
    for (key, set) in given {
        if set && !allowed.contains(&key) {
            ok = false;
            cx.err(
                &format!("{path}.{key}"),
                format!("`{key}` does not apply to a {kind_name} destination"),
            )
            .expected = Some(format!("one of {}", allowed.join(", ")));
        }
    }
    let secret = |cx: &mut Cx<'_>, key: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| cx.secret(&format!("{path}.{key}"), Some(s)))
    };
    let prefix = d.prefix.clone().unwrap_or_default();
    let dest = match kind {
        DestinationKind::Local => {
            let Some(p) = d.path.clone() else {
                cx.err(
                    &format!("{path}.path"),
                    "a local destination without a path",
                )
                .expected = Some("a directory, e.g. `backups/dev`".into());
                return None;
            };
            Destination::Local { path: p }
        }
        DestinationKind::S3 | DestinationKind::Gcs | DestinationKind::Azure => {
            let Some(bucket) = d.bucket.clone() else {
                cx.err(
                    &format!("{path}.bucket"),
                    "an object-store destination without a bucket",
                )
                .expected = Some("a bucket (or Azure container) name".into());
                return None;
            };
            match kind {
                DestinationKind::S3 => Destination::S3 {
                    bucket,
                    prefix,
                    region: d.region.clone(),
                    endpoint: d.endpoint.clone(),
                    access_key_id: secret(cx, "access_key_id", &d.access_key_id),
                    secret_access_key: secret(cx, "secret_access_key", &d.secret_access_key),
                },
                DestinationKind::Gcs => Destination::Gcs {
                    bucket,
                    prefix,
                    service_account_key: secret(cx, "service_account_key", &d.service_account_key),
                },
                _ => {
                    let Some(account) = d.account.clone() else {
                        cx.err(
                            &format!("{path}.account"),
                            "an azure destination without a storage account",
                        )
                        .expected = Some("the storage account's name".into());
                        return None;
                    };
                    Destination::Azure {
                        account,
                        container: bucket,
                        prefix,
                        access_key: secret(cx, "secret_access_key", &d.secret_access_key),
                    }
                }
            }
        }
    };
    ok.then_some(dest)
}

/// One field of a five-field cron expression: its name, how its values are called,
/// their range and the names it accepts instead of numbers.
struct CronField {
    name: &'static str,
    values: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    range: &'static str,
}

const CRON_FIELDS: [CronField; 5] = [
    CronField {
        name: "minute",
        values: "minutes",
        min: 0,
        max: 59,
        names: &[],
        range: "0-59",
    },
    CronField {
        name: "hour",
        values: "hours",
        min: 0,
        max: 23,
        names: &[],
        range: "0-23",
    },
    CronField {
        name: "day-of-month",
        values: "days of the month",
        min: 1,
        max: 31,
        names: &[],
        range: "1-31",
    },
    CronField {
        name: "month",
        values: "months",
        min: 1,
        max: 12,
        names: &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ],
        range: "1-12 or JAN-DEC",
    },
    CronField {
        name: "day-of-week",
        values: "days of the week",
        min: 0,
        max: 7,
        names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
        range: "0-7 or SUN-SAT",
    },
];

/// What is wrong with a cron schedule (without repeating the expression).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CronError {
    /// Not five fields.
    #[error("it has {fields} field{}, not 5", if *fields == 1 { "" } else { "s" })]
    FieldCount { fields: usize },
    /// A step of zero.
    #[error("the {field} field `{text}` steps by 0, but a step must be at least 1")]
    ZeroStep { field: &'static str, text: String },
    /// A value outside the field's range.
    #[error(
        "{}, but {values} run {range}",
        if value == text { format!("the {field} field is {value}") } else { format!("the {field} field `{text}` has {value}") }
    )]
    OutOfRange {
        field: &'static str,
        text: String,
        value: String,
        values: &'static str,
        range: &'static str,
    },
    /// croner refuses it; its message (trimmed of its full stop) is part of ours, as
    /// the diagnostic shows one line.
    #[error("not a valid cron schedule ({detail})")]
    Invalid { detail: String },
    /// No run in a year.
    #[error("it never runs")]
    Never,
}

/// Checks each field's values against its range, to say which field is wrong and what
/// it takes (croner only says "out of bounds"). What this does not understand (croner's
/// `L`, `W` and `#` extensions) is left to croner.
fn check_cron_fields(expr: &str) -> Result<(), CronError> {
    for (text, field) in expr.split_whitespace().zip(&CRON_FIELDS) {
        for item in text.split(',') {
            let (base, step) = match item.split_once('/') {
                Some((b, s)) => (b, Some(s)),
                None => (item, None),
            };
            if step.and_then(|s| s.parse::<u32>().ok()) == Some(0) {
                return Err(CronError::ZeroStep {
                    field: field.name,
                    text: text.to_owned(),
                });
            }
            if base == "*" || base == "?" {
                continue;
            }
            for value in base.split('-') {
                let known = match value.parse::<u32>() {
                    Ok(n) => (field.min..=field.max).contains(&n),
                    Err(_) if value.chars().all(|c| c.is_ascii_alphabetic()) => {
                        if value.is_empty() || field.names.is_empty() {
                            // Not a number nor a name this field takes: croner's `L` or
                            // a typo, either way croner has the last word.
                            true
                        } else {
                            field.names.iter().any(|n| n.eq_ignore_ascii_case(value))
                        }
                    }
                    Err(_) => true,
                };
                if !known {
                    return Err(CronError::OutOfRange {
                        field: field.name,
                        text: text.to_owned(),
                        value: value.to_owned(),
                        values: field.values,
                        range: field.range,
                    });
                }
            }
        }
    }
    Ok(())
}

/// The longest gap between consecutive runs of a five-field cron schedule, measured
/// over a year of runs from a fixed instant (pure: no clock). The error says what is
/// wrong without repeating the expression.
pub(crate) fn cron_max_interval(expr: &str) -> Result<Duration, CronError> {
    use chrono::TimeZone;
    if !expr.starts_with('@') {
        let fields = expr.split_whitespace().count();
        if fields != 5 {
            return Err(CronError::FieldCount { fields });
        }
        check_cron_fields(expr)?;
    }
    let cron: croner::Cron =
        expr.parse()
            .map_err(|e: croner::errors::CronError| CronError::Invalid {
                detail: e.to_string().trim_end_matches('.').to_owned(),
            })?;
    let start = chrono::Utc
        .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .expect("valid instant");
    // A schedule whose day, month and weekday fields are all `*` repeats every day,
    // so two days hold its longest gap (across midnight included); walking a year of
    // a `*/10` schedule minute by minute was most of a no-op `up`.
    let daily = {
        let f: Vec<&str> = expr.split_whitespace().collect();
        (f.len() == 5 && f[2..].iter().all(|x| *x == "*")) || matches!(expr, "@hourly" | "@daily")
    };
    let end = start + chrono::Duration::days(if daily { 2 } else { 400 });
    let mut prev: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut longest = 0i64;
    for (n, t) in cron.iter_after(start).enumerate() {
        if t > end || n > 600_000 {
            break;
        }
        if let Some(p) = prev {
            longest = longest.max((t - p).num_seconds());
        }
        prev = Some(t);
    }
    if prev.is_none() {
        return Err(CronError::Never);
    }
    Ok(Duration::from_secs(
        u64::try_from(longest.max(60)).unwrap_or(60),
    ))
}

/// `CertificateExpiringSoon`'s default threshold: half of what is left of a
/// certificate's life after its renewal point, in seconds.
pub(crate) fn certificate_expiring_soon_default(tls: &Tls) -> f64 {
    (tls.lifetime
        .as_secs()
        .saturating_sub(tls.renew_after_secs())
        / 2) as f64
}

/// The derived default threshold of a PITR rule (`None`: not a PITR rule).
pub(crate) fn pitr_default(key: &str, backup: Option<&Backup>) -> Option<f64> {
    let p = backup.and_then(|b| b.pitr.as_ref());
    match key {
        "wal_archiving_stalled" => {
            Some(p.map_or(300, |p| (5 * p.archive_timeout.as_secs()).max(300)) as f64)
        }
        "pitr_window_short" => Some(p.map_or(7 * 86_400, |p| p.recovery_window.as_secs()) as f64),
        _ => None,
    }
}

fn alerts(
    cx: &mut Cx<'_>,
    raw: &raw::RawAlerts,
    backup: Option<&Backup>,
    drift: &Drift,
    rotation: &Rotation,
    tls: &Tls,
) -> Alerts {
    let r = &raw.rules;
    let given: [(&str, &Option<raw::RawRule>); 21] = [
        ("service_down", &r.service_down),
        ("high_error_rate", &r.high_error_rate),
        ("high_latency_p95", &r.high_latency_p95),
        ("high_memory", &r.high_memory),
        ("high_cpu", &r.high_cpu),
        (
            "database_connection_failures",
            &r.database_connection_failures,
        ),
        ("redis_connection_failures", &r.redis_connection_failures),
        ("pod_restarting", &r.pod_restarting),
        ("disk_space_low", &r.disk_space_low),
        ("stream_consumer_lag", &r.stream_consumer_lag),
        ("stream_processing_stalled", &r.stream_processing_stalled),
        ("failed_auth_spike", &r.failed_auth_spike),
        ("vault_sealed", &r.vault_sealed),
        ("backup_failed", &r.backup_failed),
        ("backup_too_old", &r.backup_too_old),
        ("environment_drifted", &r.environment_drifted),
        ("drift_check_failing", &r.drift_check_failing),
        ("key_rotation_overdue", &r.key_rotation_overdue),
        ("certificate_expiring_soon", &r.certificate_expiring_soon),
        ("wal_archiving_stalled", &r.wal_archiving_stalled),
        ("pitr_window_short", &r.pitr_window_short),
    ];
    let mut rules = BTreeMap::new();
    for def in RULES {
        let (_, raw_rule) = given
            .iter()
            .find(|(k, _)| *k == def.key)
            .expect("catalogue matches RawAlertRules");
        let raw_rule = (*raw_rule).clone().unwrap_or_default();
        let path = format!("alerts.rules.{}", def.key);
        let mut threshold = raw_rule.threshold.unwrap_or(def.threshold);
        if def.key == "backup_too_old" && raw_rule.threshold.is_none() {
            threshold = backup.map_or(0.0, |b| b.max_age.as_secs() as f64);
        }
        if def.key == "drift_check_failing" && raw_rule.threshold.is_none() {
            threshold = (3 * drift.schedule.max_interval.as_secs()) as f64;
        }
        if def.key == "key_rotation_overdue" && raw_rule.threshold.is_none() {
            threshold = (rotation.keys_every.as_secs() + 86_400) as f64;
        }
        if def.key == "certificate_expiring_soon" && raw_rule.threshold.is_none() {
            threshold = certificate_expiring_soon_default(tls);
        }
        if raw_rule.threshold.is_none()
            && let Some(d) = pitr_default(def.key, backup)
        {
            threshold = d;
        }
        let default_for = if def.key == "environment_drifted" {
            drift.for_.to_string()
        } else {
            def.for_.to_owned()
        };
        if raw_rule.threshold.is_some() {
            let bad = !threshold.is_finite()
                || threshold > 1e15
                || match def.unit {
                    ThresholdUnit::Fraction => !(threshold > 0.0 && threshold <= 1.0),
                    ThresholdUnit::Seconds | ThresholdUnit::PerSecond => threshold <= 0.0,
                    ThresholdUnit::Count => threshold < 0.0 || threshold.fract() != 0.0,
                    ThresholdUnit::None => true,
                };
            if bad {
                let expected = match def.unit {
                    ThresholdUnit::Fraction => "a fraction above 0 and at most 1 (0.05 means 5%)",
                    ThresholdUnit::Seconds => "a number of seconds above 0",
                    ThresholdUnit::PerSecond => "a rate per second above 0",
                    ThresholdUnit::Count => "a whole number of at least 0",
                    ThresholdUnit::None => "no threshold: this rule has none",
                };
                cx.err(
                    &format!("{path}.threshold"),
                    format!("threshold {threshold}"),
                )
                .expected = Some(expected.into());
            }
        }
        let enabled = raw_rule.enabled.unwrap_or(true)
            && !(matches!(def.key, "backup_failed" | "backup_too_old") && backup.is_none())
            && (def.key != "certificate_expiring_soon" || tls.enabled());
        rules.insert(
            def.key.to_owned(),
            Rule {
                enabled,
                alert: def.alert.to_owned(),
                for_: cx.duration(
                    &format!("{path}.for"),
                    raw_rule.for_.as_deref(),
                    &default_for,
                ),
                severity: raw_rule.severity.unwrap_or(def.severity),
                threshold,
            },
        );
    }
    let mut custom = Vec::new();
    for (i, c) in raw
        .custom
        .clone()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let path = format!("alerts.custom[{i}]");
        let alert = c.alert.unwrap_or_default();
        if alert.is_empty()
            || !alert
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        {
            cx.err(
                &format!("{path}.alert"),
                format!("`{alert}` is not an alert name"),
            )
            .expected = Some("a CamelCase name, e.g. `QueueBacklog`".into());
        }
        if RULES.iter().any(|d| d.alert == alert) {
            cx.err(
                &format!("{path}.alert"),
                format!("`{alert}` is a built-in rule"),
            )
            .help = Some("change the built-in one under alerts.rules instead".into());
        }
        let Some(expr) = c.expr.filter(|e| !e.trim().is_empty()) else {
            cx.err(&format!("{path}.expr"), "no expression").expected =
                Some("a PromQL expression".into());
            continue;
        };
        custom.push(CustomRule {
            summary: c.summary.unwrap_or_else(|| alert.clone()),
            alert,
            expr,
            for_: cx.duration(&format!("{path}.for"), c.for_.as_deref(), "5m"),
            severity: c.severity.unwrap_or(Severity::Warning),
        });
    }
    let runbook_base = match raw.runbook_base.as_deref().map(str::trim) {
        None => "docs/runbooks".to_owned(),
        Some(b) if b.trim_end_matches('/').is_empty() || b.contains(char::is_whitespace) => {
            cx.err("alerts.runbook_base", format!("`{b}`")).expected =
                Some("a folder or URL without spaces, e.g. `docs/runbooks`".into());
            "docs/runbooks".to_owned()
        }
        Some(b) => b.trim_end_matches('/').to_owned(),
    };
    Alerts {
        rules,
        custom,
        runbook_base,
    }
}

fn dashboards(cx: &mut Cx<'_>, raw: &raw::RawDashboards) -> Dashboards {
    for name in raw.boards.keys() {
        if !BOARDS.iter().any(|b| b.name == name) {
            let path = format!("dashboards.boards.{name}");
            let loc = cx.key_loc(&path);
            let known: Vec<&str> = BOARDS.iter().map(|b| b.name).collect();
            let mut d = Diagnostic::new(format!("no dashboard named `{name}`"))
                .at(Some(loc))
                .path(path)
                .expected(format!("one of {}", known.join(", ")));
            if let Some(c) = closest(name, known) {
                d = d.help(format!("did you mean `{c}`?"));
            }
            cx.errors.push(d);
        }
    }
    let mut boards = BTreeMap::new();
    for def in BOARDS {
        let b = raw
            .boards
            .get(def.name)
            .cloned()
            .flatten()
            .unwrap_or_default();
        if b.enabled == Some(false) {
            continue;
        }
        let hide = b.hide_panels.unwrap_or_default();
        for (i, p) in hide.iter().enumerate() {
            if !def.panels.contains(&p.as_str()) {
                let d = cx.err(
                    &format!("dashboards.boards.{}.hide_panels[{i}]", def.name),
                    format!("dashboard `{}` has no panel `{p}`", def.name),
                );
                d.expected = Some(format!("one of {}", def.panels.join(", ")));
                if let Some(c) = closest(p, def.panels.iter().copied()) {
                    d.help = Some(format!("did you mean `{c}`?"));
                }
            }
        }
        boards.insert(def.name.to_owned(), Board { hide_panels: hide });
    }
    Dashboards {
        enabled: raw.enabled.unwrap_or(true),
        refresh: cx.duration("dashboards.refresh", raw.refresh.as_deref(), "30s"),
        time_range: cx.duration("dashboards.time_range", raw.time_range.as_deref(), "6h"),
        boards,
    }
}

/// Two services publishing the same host port cannot both start (process and docker).
fn check_ports(cx: &mut Cx<'_>, env: &Environment) {
    let kubernetes = env.platform == Platform::Kubernetes;
    let mut ports: Vec<(u16, String)> = Vec::new();
    for kind in env.services.enabled() {
        let c = env.services.common(kind).expect("enabled");
        ports.push((c.port, format!("services.{kind}.port")));
    }
    if let Some(n) = &env.services.nats {
        ports.push((n.monitor_port, "services.nats.monitor_port".into()));
        if crate::topology::nats_clustered(n) {
            ports.push((n.cluster_port, "services.nats.cluster_port".into()));
        }
        // Further nodes of a cluster listen on the next ports (topology.rs); a count
        // beyond a cluster's size was refused already, and is not expanded.
        let nodes = if n.common.replicas <= crate::topology::MAX_CLUSTER && !kubernetes {
            crate::topology::nats_nodes(env, n)
        } else {
            Vec::new()
        };
        let last = u64::from(n.common.port.max(n.monitor_port).max(n.cluster_port))
            + u64::from(n.common.replicas.saturating_sub(1));
        if nodes.len() > 1 && last > u64::from(u16::MAX) {
            cx.err(
                "services.nats.replicas",
                format!("node {} would listen on port {last}, above 65535 (node i listens on each configured port plus i)", nodes.len() - 1),
            )
            .expected = Some("lower services.nats ports".into());
        }
        for node in nodes.iter().skip(1) {
            let i = node.index;
            ports.push((node.client, format!("services.nats.port (node {i})")));
            ports.push((
                node.monitor,
                format!("services.nats.monitor_port (node {i})"),
            ));
            ports.push((
                node.cluster,
                format!("services.nats.cluster_port (node {i})"),
            ));
        }
    }
    if let Some(v) = &env.services.vault {
        ports.push((v.cluster_port, "services.vault.cluster_port".into()));
        let nodes = if v.common.replicas <= crate::topology::MAX_CLUSTER && !kubernetes {
            crate::topology::vault_nodes(env, v)
        } else {
            Vec::new()
        };
        let last = u64::from(v.common.port.max(v.cluster_port))
            + 2 * u64::from(v.common.replicas.saturating_sub(1));
        if nodes.len() > 1 && last > u64::from(u16::MAX) {
            cx.err(
                "services.vault.replicas",
                format!("node {} would listen on port {last}, above 65535 (node i listens on each configured port plus 2 i)", nodes.len() - 1),
            )
            .expected = Some("lower services.vault ports".into());
        }
        for node in nodes.iter().skip(1) {
            let i = node.index;
            ports.push((node.api, format!("services.vault.port (node {i})")));
            ports.push((
                node.cluster,
                format!("services.vault.cluster_port (node {i})"),
            ));
        }
    }
    for (name, app) in &env.apps {
        ports.push((app.port, format!("apps.{name}.port")));
        if app.metrics_port != app.port {
            ports.push((app.metrics_port, format!("apps.{name}.metrics_port")));
        }
    }
    for (name, e) in &env.extras {
        for (pn, p) in &e.ports {
            ports.push((*p, format!("extras.{name}.ports.{pn}")));
        }
    }
    if let Some(m) = &env.monitoring {
        for (key, c) in [
            ("prometheus", &m.prometheus),
            ("alertmanager", &m.alertmanager),
            ("grafana", &m.grafana),
            ("postgres_exporter", &m.postgres_exporter),
            ("redis_exporter", &m.redis_exporter),
            ("nats_exporter", &m.nats_exporter),
            ("node_exporter", &m.node_exporter),
        ] {
            if let Some(c) = c {
                ports.push((c.port, format!("monitoring.{key}.port")));
            }
        }
        if let Some(t) = &m.controlplane {
            ports.push((t.port, "monitoring.controlplane.port".into()));
        }
    }
    let mut first: BTreeMap<u16, String> = BTreeMap::new();
    for (port, path) in ports {
        if port == 0 {
            cx.err(
                &path,
                "port 0: a service needs a fixed port to be reached at",
            )
            .expected = Some("a port from 1 to 65535".into());
            continue;
        }
        if kubernetes {
            // Every pod has its own address: ports cannot clash across services.
            continue;
        }
        match first.get(&port) {
            None => {
                first.insert(port, path);
            }
            Some(other) => {
                let other_loc = cx.loc(other);
                let other = other.clone();
                let d = cx.err(&path, format!("port {port} is already used by {other}"));
                d.expected = Some("a port no other service of this environment publishes".into());
                d.notes.push(format!("{other} is set at {other_loc}"));
                d.help = Some(format!(
                    "change one of them, e.g. --set {path}={}",
                    port.saturating_add(1)
                ));
            }
        }
    }
}

/// Every `depends_on` names a service of this environment, and there is no cycle.
fn check_dependencies(cx: &mut Cx<'_>, env: &Environment) {
    let known: Vec<ServiceName> = env.service_names();
    let mut graph: BTreeMap<&ServiceName, &[ServiceName]> = BTreeMap::new();
    let entries: Vec<(String, &ServiceName, &[ServiceName])> = env
        .apps
        .iter()
        .map(|(n, a)| (format!("apps.{n}"), n, a.depends_on.as_slice()))
        .chain(
            env.extras
                .iter()
                .map(|(n, e)| (format!("extras.{n}"), n, e.depends_on.as_slice())),
        )
        .collect();
    for (path, name, deps) in &entries {
        graph.insert(name, deps);
        for (i, d) in deps.iter().enumerate() {
            if d == *name {
                cx.err(
                    &format!("{path}.depends_on[{i}]"),
                    format!("`{d}` depends on itself"),
                );
            } else if !known.contains(d) {
                let names: Vec<&str> = known.iter().map(ServiceName::as_str).collect();
                // The environment is not named: a mistake in base.yaml is the same
                // mistake in every environment, and should read the same.
                let dd = cx.err(
                    &format!("{path}.depends_on[{i}]"),
                    format!("no service named `{d}`"),
                );
                dd.expected = Some(format!("one of {}", names.join(", ")));
                if let Some(c) = closest(d.as_str(), names) {
                    dd.help = Some(format!("did you mean `{c}`?"));
                }
            }
        }
    }
    // Depth-first search for a cycle among apps and extras.
    fn visit<'g>(
        n: &'g ServiceName,
        graph: &BTreeMap<&'g ServiceName, &'g [ServiceName]>,
        stack: &mut Vec<&'g ServiceName>,
        done: &mut BTreeSet<&'g ServiceName>,
    ) -> Option<Vec<String>> {
        if let Some(pos) = stack.iter().position(|s| *s == n) {
            let mut cycle: Vec<String> = stack[pos..].iter().map(|s| s.to_string()).collect();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n);
        for d in graph.get(n).copied().unwrap_or_default() {
            if d != n
                && let Some(c) = visit(d, graph, stack, done)
            {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n);
        None
    }
    let mut done = BTreeSet::new();
    for (_, name, _) in &entries {
        if let Some(cycle) = visit(name, &graph, &mut Vec::new(), &mut done) {
            // Point at the list item of each edge: the first one carries the error, the
            // others are notes, so every place to break the cycle is named.
            let edge = |from: &str, to: &str| -> Option<String> {
                let (path, _, deps) = entries.iter().find(|(_, n, _)| n.as_str() == from)?;
                let i = deps.iter().position(|d| d.as_str() == to)?;
                Some(format!("{path}.depends_on[{i}]"))
            };
            let edges: Vec<String> = cycle
                .windows(2)
                .filter_map(|w| edge(&w[0], &w[1]))
                .collect();
            let Some((first, rest)) = edges.split_first() else {
                return;
            };
            let notes: Vec<String> = rest
                .iter()
                .map(|p| format!("{p} is set at {}", cx.loc(p)))
                .collect();
            let d = cx.err(first, format!("a dependency cycle: {}", cycle.join(" -> ")));
            d.notes = notes;
            d.help = Some(
                "services start in dependency order, so a cycle can never start; remove one of these dependencies".into(),
            );
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_overlap() {
        assert!(subjects_overlap("events.capsule.>", "events.*.created"));
        assert!(subjects_overlap("a.b", "a.b"));
        assert!(!subjects_overlap("events.capsule.>", "events.plan.>"));
        assert!(!subjects_overlap("a.b", "a.b.c"));
        assert!(subjects_overlap("a.>", "a.b.c"));
    }

    /// `path line:col` of every error of a dev environment written as one file.
    fn places(text: &str) -> Vec<String> {
        let mut files = crate::load::EnvFiles::default();
        files.files.insert(
            "dev".into(),
            crate::load::EnvFile {
                display: "dev.yaml".into(),
                text: Ok(text.into()),
            },
        );
        let errors = crate::load::load(&files, "dev", &[]).unwrap_err().0;
        errors
            .iter()
            .map(|d| {
                let l = d.location.as_ref().expect("a location");
                format!(
                    "{} {}:{}",
                    d.path.as_deref().unwrap_or(""),
                    l.line,
                    l.column
                )
            })
            .collect()
    }

    /// `path: message` of every error under `tls` and `serve` of a dev environment
    /// written as one file (without a base, other sections have errors of their own).
    fn messages(text: &str) -> Vec<String> {
        let mut files = crate::load::EnvFiles::default();
        files.files.insert(
            "dev".into(),
            crate::load::EnvFile {
                display: "dev.yaml".into(),
                text: Ok(text.into()),
            },
        );
        match crate::load::load(&files, "dev", &[]) {
            Ok(_) => Vec::new(),
            Err(e) => {
                e.0.iter()
                    .map(|d| format!("{}: {}", d.path.as_deref().unwrap_or(""), d.message))
                    .filter(|m| m.starts_with("tls") || m.starts_with("serve"))
                    .collect()
            }
        }
    }

    #[test]
    fn a_ca_from_references_needs_both_as_vault_or_env_references() {
        // Accepted: both given as references, off Kubernetes.
        let ok = "platform: process
tls: {mode: required, ca: ref, ca_cert: 'env://CA_CERT', ca_key: 'vault://secret/ca#key'}
";
        assert_eq!(messages(ok), Vec::<String>::new());
        // Missing, written in the file, generated, or on Kubernetes: refused, saying why.
        assert_eq!(
            messages("platform: process\ntls: {mode: required, ca: ref, ca_key: 'env://K'}\n"),
            ["tls.ca_cert: `tls.ca: ref` needs the CA certificate and its key"]
        );
        assert_eq!(
            messages(
                "platform: process\ntls: {mode: on, ca: ref, ca_cert: generate, ca_key: '-----BEGIN PRIVATE KEY-----'}\n"
            ),
            [
                "tls.ca_cert: a CA for `tls.ca: ref` comes from a secret reference, not from the environment file",
                "tls.ca_key: a CA for `tls.ca: ref` comes from a secret reference, not from the environment file",
            ]
        );
        assert_eq!(
            messages(
                "platform: kubernetes\ntls: {mode: on, ca: ref, ca_cert: 'env://C', ca_key: 'env://K'}\n"
            ),
            [
                "tls.ca: `ref` on Kubernetes: cert-manager signs the services' certificates there, not controlplane"
            ]
        );
        assert_eq!(
            messages("tls: {mode: on, ca_cert: 'env://C'}\n"),
            ["tls.ca_cert: set, but `tls.ca` is not `ref`"]
        );
    }

    #[test]
    fn certificates_shorter_than_cert_managers_minimum_are_refused_on_kubernetes() {
        assert_eq!(
            messages("platform: kubernetes\ntls: {mode: on, lifetime: 59m}\n"),
            [
                "tls.lifetime: a certificate lifetime of 59m on Kubernetes: cert-manager refuses a `Certificate` whose duration is under 1h"
            ]
        );
        assert_eq!(
            messages("platform: kubernetes\ntls: {mode: on, lifetime: 1h}\n"),
            Vec::<String>::new()
        );
        // Where controlplane issues them, minutes are fine (renewal tests use them).
        assert_eq!(
            messages("platform: process\ntls: {mode: on, lifetime: 2m}\n"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_token_max_ttl_is_a_usable_duration() {
        assert_eq!(
            messages("serve: {tokens: {max_ttl: {admin: 24h, viewer: 30s}}}\n"),
            ["serve.tokens.max_ttl.viewer: a token that may live at most 30s cannot be used"]
        );
        assert_eq!(
            messages("serve: {tokens: {max_ttl: {editor: 7d}}}\n"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn errors_in_lists_point_at_the_item() {
        let found = places(
            "services:
  postgres:
    database: Anumate
    port: 5432
vault:
  keys: [anumate-config, tenant-x]
  policies:
    anumate-app:
      - path: secret/*
        capabilities: [read, sudo]
  app_role:
    token_ttl: 0s
backup:
  services: [postgres, mysql]
  destinations: {local: {path: backups/dev}}
dashboards:
  boards:
    vault: {hide_panels: [no-such-panel]}
",
        );
        assert_eq!(
            found,
            [
                "services.postgres.database 3:15",
                "vault.policies.anumate-app[0].capabilities[1] 10:30",
                "vault.app_role.token_ttl 12:16",
                "vault.keys[1] 6:26",
                "backup.services[1] 14:24",
                "dashboards.boards.vault.hide_panels[0] 18:27",
            ]
        );
    }

    #[test]
    fn cron_intervals() {
        assert_eq!(cron_max_interval("0 2 * * *").unwrap().as_secs(), 86_400);
        assert_eq!(cron_max_interval("*/15 * * * *").unwrap().as_secs(), 900);
        // Daily schedules are measured over two days: the gap across midnight counts.
        assert_eq!(
            cron_max_interval("0 9,11 * * *").unwrap().as_secs(),
            22 * 3_600
        );
        assert_eq!(cron_max_interval("*/7 * * * *").unwrap().as_secs(), 420);
        assert_eq!(cron_max_interval("@hourly").unwrap().as_secs(), 3_600);
        assert_eq!(cron_max_interval("0 3 * * 0").unwrap().as_secs(), 604_800);
        assert!(cron_max_interval("0 2 * *").is_err());
        assert!(cron_max_interval("every day").is_err());
        assert_eq!(cron_max_interval("@daily").unwrap().as_secs(), 86_400);
        assert_eq!(cron_max_interval("0 0 * * 7").unwrap().as_secs(), 604_800);
        assert_eq!(
            cron_max_interval("0 0 * JAN,jul MON-fri")
                .unwrap()
                .as_secs(),
            // From the last Friday of July to the first weekday of January.
            cron_max_interval("0 0 * 1,7 1-5").unwrap().as_secs()
        );
    }

    #[test]
    fn cron_errors_name_the_field_and_its_range() {
        for (expr, why) in [
            ("0 25 * * *", "the hour field is 25, but hours run 0-23"),
            ("60 * * * *", "the minute field is 60, but minutes run 0-59"),
            (
                "0 0 0 * *",
                "the day-of-month field is 0, but days of the month run 1-31",
            ),
            (
                "0 0 1-32 * *",
                "the day-of-month field `1-32` has 32, but days of the month run 1-31",
            ),
            (
                "0 0 * 13 *",
                "the month field is 13, but months run 1-12 or JAN-DEC",
            ),
            (
                "0 0 * FOO *",
                "the month field is FOO, but months run 1-12 or JAN-DEC",
            ),
            (
                "0 0 * * 1,8",
                "the day-of-week field `1,8` has 8, but days of the week run 0-7 or SUN-SAT",
            ),
            (
                "*/0 * * * *",
                "the minute field `*/0` steps by 0, but a step must be at least 1",
            ),
        ] {
            assert_eq!(
                cron_max_interval(expr).unwrap_err().to_string(),
                why,
                "{expr}"
            );
        }
        assert_eq!(
            cron_max_interval("0 2 * *").unwrap_err().to_string(),
            "it has 4 fields, not 5"
        );
    }

    /// A dev environment that validates, plus `extra` (a YAML flow mapping's entries).
    const VALID: &str = "backup: {enabled: false}\nvault: {policies: {anumate-app: [{path: x/*, capabilities: [read]}]}}\n";

    /// Every error of `VALID` with `sets` applied: (key path, message).
    fn refused(sets: &[&str]) -> Vec<(String, String)> {
        let mut files = crate::load::EnvFiles::default();
        files.files.insert(
            "dev".into(),
            crate::load::EnvFile {
                display: "dev.yaml".into(),
                text: Ok(VALID.into()),
            },
        );
        let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
        match crate::load::load(&files, "dev", &sets) {
            Ok(_) => Vec::new(),
            Err(d) => {
                d.0.into_iter()
                    .map(|d| (d.path.unwrap_or_default(), d.message))
                    .collect()
            }
        }
    }

    #[test]
    fn the_valid_base_of_these_tests_is_valid() {
        assert_eq!(refused(&[]), Vec::<(String, String)>::new());
        assert_eq!(
            refused(&["streams.OK.subjects=[\"events.ok.>\"]"]),
            Vec::<(String, String)>::new()
        );
    }

    #[test]
    fn identifiers_written_into_server_configs_are_refused_when_hostile() {
        for (set, path) in [
            ("services.nats.app_user=a\"b", "services.nats.app_user"),
            ("services.nats.app_user=\"a b\"", "services.nats.app_user"),
            ("services.nats.app_user=app.>", "services.nats.app_user"),
            ("services.nats.app_user=admin", "services.nats.app_user"),
            (
                "services.postgres.database=x;drop",
                "services.postgres.database",
            ),
            (
                "services.postgres.database=template1",
                "services.postgres.database",
            ),
            (
                "services.postgres.settings={\"a = 1\": x}",
                "services.postgres.settings.a = 1",
            ),
            (
                "services.postgres.settings.work_mem=\"1\\nfsync = off\"",
                "services.postgres.settings.work_mem",
            ),
            (
                "services.redis.maxmemory=\"1mb\\nrequirepass x\"",
                "services.redis.maxmemory",
            ),
            (
                "services.redis.maxmemory_policy=allkeys-lru x",
                "services.redis.maxmemory_policy",
            ),
            ("vault.kv_mount=../sys", "vault.kv_mount"),
            ("vault.transit_mount=\"a\\\"b\"", "vault.transit_mount"),
            ("vault.keys=[\"a/b\"]", "vault.keys[0]"),
            ("vault.app_role.name=\"r\\\"x\"", "vault.app_role.name"),
            ("vault.audit_log=\"a\\nb\"", "vault.audit_log"),
            ("domain=\"a\\\"b.io\"", "domain"),
            ("services.nats.image=\"nats:2 x\"", "services.nats.image"),
            ("services.nats.version=\"2\\\"\"", "services.nats.version"),
        ] {
            let found = refused(&[set]);
            assert!(
                found.iter().any(|(p, _)| p == path),
                "{set}: expected an error at {path}, got {found:?}"
            );
        }
    }

    #[test]
    fn reserved_subjects_are_refused_and_own_subjects_accepted() {
        for subject in [
            "$JS.API.>",
            "$JS.*.>",
            "$JS.API.STREAM.INFO.X",
            ">",
            "*.API.>",
            "$SYS.>",
            "$KV.bucket.key",
            "$O.store.>",
            "_INBOX.>",
            "_INBOX.abc",
            "_INBOX_CP.>",
            "_INBOX_anumate_app.>",
            "$G",
        ] {
            let found = refused(&[&format!("streams.X.subjects=[\"{subject}\"]")]);
            assert!(
                found
                    .iter()
                    .any(|(p, m)| p == "streams.X.subjects[0]" && m.contains("overlaps")),
                "{subject} was not refused: {found:?}"
            );
        }
        for subject in ["events.x.>", "orders.*", "a.b.c"] {
            assert_eq!(
                refused(&[&format!("streams.X.subjects=[\"{subject}\"]")]),
                Vec::<(String, String)>::new(),
                "{subject}"
            );
        }
    }

    #[test]
    fn absurd_numbers_are_one_error_each_found_fast() {
        let started = std::time::Instant::now();
        for (set, path) in [
            ("services.nats.replicas=1000000", "services.nats.replicas"),
            (
                "services.vault.replicas=4294967295",
                "services.vault.replicas",
            ),
            ("services.nats.replicas=4", "services.nats.replicas"),
            (
                "apps.a={image: x, port: 9000, replicas: 4000000000}",
                "apps.a.replicas",
            ),
            (
                "streams.X={subjects: [x.>], max_age: 100000000000000d}",
                "streams.X.max_age",
            ),
            (
                "streams.X={subjects: [x.>], max_msgs: -5}",
                "streams.X.max_msgs",
            ),
            ("vault.app_role.token_ttl=0s", "vault.app_role.token_ttl"),
            (
                "backup={enabled: true, destinations: {l: {path: b}}, retention: {daily: 4294967295, weekly: 4294967295, monthly: 4294967295}}",
                "backup.retention.daily",
            ),
            (
                "alerts.rules.high_latency_p95.threshold=1e300",
                "alerts.rules.high_latency_p95.threshold",
            ),
            (
                "alerts.rules.high_error_rate.threshold=-0.0",
                "alerts.rules.high_error_rate.threshold",
            ),
        ] {
            let found = refused(&["platform=process", set]);
            let at: Vec<_> = found.iter().filter(|(p, _)| p == path).collect();
            assert_eq!(at.len(), 1, "{set}: {found:?}");
            assert!(found.len() <= 3, "{set}: {found:?}");
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "validation took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn ports_are_checked_on_every_platform_and_cluster_ports_stay_below_65536() {
        let found = refused(&["platform=kubernetes", "services.redis.port=0"]);
        assert!(
            found.iter().any(|(p, _)| p == "services.redis.port"),
            "{found:?}"
        );
        let found = refused(&[
            "platform=process",
            "services.nats.replicas=3",
            "services.nats.port=65534",
        ]);
        assert!(
            found
                .iter()
                .any(|(p, m)| p == "services.nats.replicas" && m.contains("above 65535")),
            "{found:?}"
        );
    }
}
