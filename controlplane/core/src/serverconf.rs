//! Server configuration files for the core services, from the model.
//!
//! One source for every platform: the process driver writes these into the state
//! directory, the docker driver mounts them, and the Kubernetes templates embed them
//! in ConfigMaps (through the `server_config` template function). None of them holds a
//! secret: NATS reads passwords from environment variables (`$NATS_APP_PASSWORD`), and
//! Redis's ACL file is written by the driver with password hashes.

use std::fmt::Write;

use crate::model::{Environment, Nats, Postgres, Redis, Vault, VaultMode};
use crate::names::StreamName;

/// Where a server listens and keeps its files, as seen by the server itself
/// (a state-dir path for processes, `/data` in a container).
#[derive(Debug, Clone)]
pub struct Layout {
    /// Address to bind (`127.0.0.1` for processes, `0.0.0.0` in a container).
    pub bind: String,
    /// Address other nodes and clients use to reach it (`127.0.0.1`, the service name).
    pub advertise: String,
    /// Data directory.
    pub data_dir: String,
    /// Directory for sockets and auxiliary files (ACL file, unix sockets).
    pub run_dir: String,
    /// Networks allowed to connect with a password (pg_hba), e.g. `127.0.0.1/32`.
    pub client_networks: Vec<String>,
    /// The server's working directory is `run_dir` (local processes): a relative
    /// Vault audit path is then written relative, the same text in every environment.
    /// OpenBao refuses to activate when a configured audit device's path differs from
    /// the one in its (restored) audit table, so this is what lets a raft snapshot of
    /// one environment restore into another.
    pub runs_in_run_dir: bool,
}

/// The value to put in a server's environment variable `var` for `value`.
/// nats-server parses a `$VAR` reference's value as configuration, so a password
/// starting with a digit would read as a number and stop the server: NATS variables
/// carry a quoted string. Other variables carry the value as is.
pub fn secret_env_value(var: &str, value: &str) -> String {
    if var == NATS_APP_PASSWORD_VAR
        || var == NATS_ADMIN_PASSWORD_VAR
        || (var.starts_with(NATS_APP_USER_VAR_PREFIX) && var.ends_with("_PASSWORD"))
    {
        nats_string(value)
    } else {
        value.to_owned()
    }
}

/// `text` as a double-quoted string of nats-server's configuration format: `"` and
/// `\` escaped, control characters as `\n`, `\t`, `\r` or dropped (validation refuses
/// them in every name written here; a state directory's path is the caller's).
pub fn nats_string(text: &str) -> String {
    let mut q = String::with_capacity(text.len() + 2);
    q.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                q.push('\\');
                q.push(c);
            }
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            c if c.is_control() => {}
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// `text` as a single-quoted `postgresql.conf` value: `'` doubled, `\` escaped (the
/// file's lexer reads backslash escapes inside quotes), line breaks as `\n`.
pub fn pg_string(text: &str) -> String {
    let mut q = String::with_capacity(text.len() + 2);
    q.push('\'');
    for c in text.chars() {
        match c {
            '\'' => q.push_str("''"),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            '\r' => q.push_str("\\r"),
            c if c.is_control() && c != '\t' => {}
            c => q.push(c),
        }
    }
    q.push('\'');
    q
}

/// `text` as an HCL double-quoted string: `"` and `\` escaped, and the template
/// introducers `${` and `%{` written as their literal escapes `$${` and `%%{`.
pub fn hcl_string(text: &str) -> String {
    let mut q = String::with_capacity(text.len() + 2);
    q.push('"');
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\\' => {
                q.push('\\');
                q.push(c);
            }
            '\n' => q.push_str("\\n"),
            '\t' => q.push_str("\\t"),
            '\r' => q.push_str("\\r"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                q.push(c);
                q.push(c);
            }
            c if c.is_control() => {}
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// `text` as one argument of `redis.conf`: bare when it has nothing Redis's line
/// splitter reads specially, else double-quoted with `"` and `\` escaped and control
/// characters as `\xhh`.
pub fn redis_arg(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '\'' | '\\'));
    if plain {
        return text.to_owned();
    }
    let mut q = String::with_capacity(text.len() + 2);
    q.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                q.push('\\');
                q.push(c);
            }
            c if c.is_ascii_control() => q.push_str(&format!("\\x{:02x}", c as u32)),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

/// Environment variable holding the NATS app user's password.
pub const NATS_APP_PASSWORD_VAR: &str = "NATS_APP_PASSWORD";
/// Environment variable holding the NATS admin user's password.
pub const NATS_ADMIN_PASSWORD_VAR: &str = "NATS_ADMIN_PASSWORD";
/// The NATS admin user controlplane uses to manage streams.
pub const NATS_ADMIN_USER: &str = "admin";
/// The NATS account the platform lives in.
pub const NATS_ACCOUNT: &str = "ANUMATE";
/// The Redis admin ACL user.
pub const REDIS_ADMIN_USER: &str = "admin";
/// The PostgreSQL bootstrap superuser.
pub const POSTGRES_SUPERUSER: &str = "postgres";

fn header(_env: &Environment, comment: &str) -> String {
    // No environment name here: the same text across environments keeps the
    // Kustomize overlays free of noise patches.
    format!("{comment} Generated by controlplane. Edit environments/*.yaml, not this file.\n")
}

/// `postgresql.conf` settings (included after the defaults initdb writes).
pub fn postgresql_conf(env: &Environment, pg: &Postgres, layout: &Layout) -> String {
    let mut s = header(env, "#");
    let _ = writeln!(s, "listen_addresses = {}", pg_string(&layout.bind));
    let _ = writeln!(s, "port = {}", pg.common.port);
    let _ = writeln!(
        s,
        "unix_socket_directories = {}",
        pg_string(&layout.run_dir)
    );
    let _ = writeln!(s, "password_encryption = 'scram-sha-256'");
    let _ = writeln!(s, "logging_collector = off");
    let _ = writeln!(s, "log_line_prefix = '%m [%p] %q%u@%d '");
    // Setting names are GUC names (validation refuses anything else).
    for (k, v) in &pg.settings {
        let _ = writeln!(s, "{k} = {}", pg_string(v));
    }
    s
}

/// `pg_hba.conf`: passwords (SCRAM) only, from the given networks and the socket.
pub fn pg_hba_conf(env: &Environment, layout: &Layout) -> String {
    let mut s = header(env, "#");
    s.push_str("# TYPE  DATABASE  USER  ADDRESS  METHOD\n");
    s.push_str("local   all       all            scram-sha-256\n");
    for net in &layout.client_networks {
        let _ = writeln!(s, "host    all       all   {net}  scram-sha-256");
    }
    s
}

/// `redis.conf`. Users live in the ACL file (`<run_dir>/users.acl`), written by the
/// driver with password hashes; the `default` user is off.
pub fn redis_conf(env: &Environment, redis: &Redis, layout: &Layout) -> String {
    let mut s = header(env, "#");
    let _ = writeln!(s, "bind {}", layout.bind);
    let _ = writeln!(s, "port {}", redis.common.port);
    let _ = writeln!(s, "protected-mode yes");
    let _ = writeln!(s, "daemonize no");
    let _ = writeln!(s, "dir {}", redis_arg(&layout.data_dir));
    let _ = writeln!(s, "dbfilename dump.rdb");
    let _ = writeln!(s, "save 900 1 300 10 60 10000");
    let _ = writeln!(
        s,
        "aclfile {}",
        redis_arg(&format!("{}/users.acl", layout.run_dir))
    );
    // Validation allows only a size and a policy name here; quoted all the same.
    if let Some(m) = &redis.maxmemory {
        let _ = writeln!(s, "maxmemory {}", redis_arg(m));
    }
    if let Some(p) = &redis.maxmemory_policy {
        let _ = writeln!(s, "maxmemory-policy {}", redis_arg(p));
    }
    s
}

/// The ACL line of the admin user, from the SHA-256 (hex) of its password.
pub fn redis_admin_acl(password_sha256_hex: &str) -> String {
    format!("user {REDIS_ADMIN_USER} on #{password_sha256_hex} ~* &* +@all")
}

/// Subjects the app may publish to and subscribe on: its streams' subjects.
fn app_subjects(env: &Environment) -> Vec<String> {
    let mut subjects: Vec<String> = env
        .streams
        .values()
        .flat_map(|s| s.subjects.iter().cloned())
        .collect();
    subjects.sort();
    subjects.dedup();
    subjects
}

fn quote_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| nats_string(i))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A node's name, as its configuration gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeName {
    /// Written into the file (processes, containers).
    Fixed(String),
    /// Read from this environment variable by the server (`$NATS_SERVER_NAME`): pods of
    /// one StatefulSet share one ConfigMap and each takes its own pod name.
    FromEnv(&'static str),
}

/// One node of NATS, as its configuration needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsNodeConf {
    /// Its `server_name`.
    pub name: NodeName,
    /// Client port.
    pub client: u16,
    /// HTTP monitoring port.
    pub monitor: u16,
    /// In a cluster: the route port, and a route to every node (its own included:
    /// nats-server recognises and skips a route to itself, so every node can share
    /// the list).
    pub cluster: Option<(u16, Vec<String>)>,
}

/// The environment variable a NATS pod's `server_name` comes from.
pub const NATS_SERVER_NAME_VAR: &str = "NATS_SERVER_NAME";

/// The inbox prefix the app user's connections must use (`ConnectOptions::
/// custom_inbox_prefix`, `nats.CustomInboxPrefix`): its subscribe permission covers
/// this prefix only, never `_INBOX.>`, so it cannot read replies meant for anyone
/// else: not controlplane's (`_INBOX_CP`, which carries stream snapshots, every
/// tenant's audit events among them), not another client's.
pub fn app_inbox_prefix(nats: &Nats) -> String {
    format!("_INBOX_{}", nats.app_user)
}

/// The prefix of the variables carrying the passwords of apps' NATS users
/// (`NATS_USER_CAPSULE_REGISTRY_PASSWORD`).
pub const NATS_APP_USER_VAR_PREFIX: &str = "NATS_USER_";

/// An app's NATS user as the server's configuration writes it.
#[derive(Debug, Clone)]
pub struct NatsAppUser<'e> {
    /// The app.
    pub app: &'e crate::names::ServiceName,
    /// Its user (`app-<app>`), subjects and password reference.
    pub uses: &'e crate::model::AppNats,
    /// The server's environment variable carrying the password.
    pub var: String,
    /// The setting the password comes from (and a generated one's name).
    pub setting: String,
}

/// Every app's NATS user, in app order.
pub fn nats_app_users(env: &Environment) -> Vec<NatsAppUser<'_>> {
    env.apps
        .iter()
        .filter_map(|(name, app)| {
            app.uses.nats.as_ref().map(|uses| NatsAppUser {
                app: name,
                uses,
                var: format!(
                    "{NATS_APP_USER_VAR_PREFIX}{}_PASSWORD",
                    name.as_str().replace('-', "_").to_ascii_uppercase()
                ),
                setting: format!("apps.{name}.uses.nats.password"),
            })
        })
        .collect()
}

/// The inbox prefix an app's NATS user must use for requests (its only subscription
/// beyond its subjects): `_INBOX_<user>`.
pub fn app_user_inbox_prefix(user: &str) -> String {
    format!("_INBOX_{user}")
}

/// `nats-server.conf` for a single server: one account with JetStream, an admin user
/// (manages streams) and the app user, who may publish and subscribe only on the
/// streams' subjects and use existing streams and consumers, never create or delete
/// them.
pub fn nats_conf(env: &Environment, nats: &Nats, layout: &Layout) -> String {
    nats_node_conf(
        env,
        nats,
        layout,
        &NatsNodeConf {
            name: NodeName::Fixed(format!("{}-{}-nats", env.project, env.name)),
            client: nats.common.port,
            monitor: nats.monitor_port,
            cluster: None,
        },
    )
}

/// The routes of every node of a NATS cluster on the process platform (loopback, the
/// ports of `topology::nats_nodes`).
pub fn nats_local_routes(env: &Environment, nats: &Nats) -> Vec<String> {
    crate::topology::nats_nodes(env, nats)
        .iter()
        .map(|n| format!("nats://127.0.0.1:{}", n.cluster))
        .collect()
}

/// `nats-server.conf` for one node: [`nats_conf`]'s account and users, this node's
/// name and ports, and in a cluster the `cluster` block (one cluster name, routes to
/// every node). JetStream replicates streams across the nodes by RAFT.
pub fn nats_node_conf(
    env: &Environment,
    nats: &Nats,
    layout: &Layout,
    node: &NatsNodeConf,
) -> String {
    let subjects = app_subjects(env);
    let mut publish = subjects.clone();
    publish.extend(
        [
            "$JS.API.INFO",
            "$JS.API.STREAM.NAMES",
            "$JS.API.STREAM.INFO.*",
            "$JS.API.CONSUMER.CREATE.>",
            "$JS.API.CONSUMER.DURABLE.CREATE.>",
            "$JS.API.CONSUMER.INFO.>",
            "$JS.API.CONSUMER.MSG.NEXT.>",
            "$JS.ACK.>",
            "$JS.FC.>",
        ]
        .map(String::from),
    );
    let mut subscribe = subjects;
    subscribe.push(format!("{}.>", app_inbox_prefix(nats)));
    let mut s = header(env, "#");
    match &node.name {
        NodeName::Fixed(name) => {
            let _ = writeln!(s, "server_name: {}", nats_string(name));
        }
        NodeName::FromEnv(var) => {
            let _ = writeln!(s, "server_name: ${var}");
        }
    }
    let _ = writeln!(s, "listen: \"{}:{}\"", layout.bind, node.client);
    let _ = writeln!(s, "http: \"{}:{}\"", layout.bind, node.monitor);
    if let Some((port, routes)) = &node.cluster {
        s.push_str("cluster {\n");
        let _ = writeln!(s, "  name: \"{}-{}-nats\"", env.project, env.name);
        let _ = writeln!(s, "  listen: \"{}:{port}\"", layout.bind);
        let _ = writeln!(s, "  routes: [{}]", quote_list(routes));
        s.push_str("}\n");
    }
    s.push_str("jetstream {\n");
    let _ = writeln!(s, "  store_dir: {}", nats_string(&layout.data_dir));
    let _ = writeln!(s, "  max_memory_store: {}", nats.max_memory.bytes());
    let _ = writeln!(s, "  max_file_store: {}", nats.max_file.bytes());
    // When the store is flushed to disk: `always` syncs before each acknowledgement;
    // unset, nats-server flushes every 2 minutes (services.nats.sync).
    // An interval is written in seconds: nats-server reads Go durations (no `d`).
    match &nats.sync {
        Some(crate::model::NatsSync::Always) => s.push_str("  sync_interval: always\n"),
        Some(crate::model::NatsSync::Interval(d)) => {
            let _ = writeln!(s, "  sync_interval: \"{}s\"", d.as_secs());
        }
        None => {}
    }
    s.push_str("}\n");
    s.push_str("accounts {\n");
    let _ = writeln!(s, "  {NATS_ACCOUNT} {{");
    s.push_str("    jetstream: enabled\n");
    s.push_str("    users: [\n");
    let _ = writeln!(
        s,
        "      {{ user: \"{NATS_ADMIN_USER}\", password: ${NATS_ADMIN_PASSWORD_VAR} }}"
    );
    let _ = writeln!(s, "      {{");
    let _ = writeln!(
        s,
        "        user: {}, password: ${NATS_APP_PASSWORD_VAR}",
        nats_string(&nats.app_user)
    );
    s.push_str("        permissions: {\n");
    let _ = writeln!(
        s,
        "          publish: {{ allow: [{}] }}",
        quote_list(&publish)
    );
    let _ = writeln!(
        s,
        "          subscribe: {{ allow: [{}] }}",
        quote_list(&subscribe)
    );
    s.push_str("        }\n");
    s.push_str("      }\n");
    // Each app's own user: exactly its subjects (and its own reply inbox), no
    // JetStream API: the streams are the operator's.
    for u in nats_app_users(env) {
        let _ = writeln!(s, "      {{");
        let _ = writeln!(
            s,
            "        user: {}, password: ${}",
            nats_string(&u.uses.user),
            u.var
        );
        s.push_str("        permissions: {\n");
        let allow = |list: &[String]| {
            if list.is_empty() {
                "deny: [\">\"]".to_owned()
            } else {
                format!("allow: [{}]", quote_list(list))
            }
        };
        let _ = writeln!(s, "          publish: {{ {} }}", allow(&u.uses.publish));
        let mut sub = u.uses.subscribe.clone();
        sub.push(format!("{}.>", app_user_inbox_prefix(&u.uses.user)));
        let _ = writeln!(s, "          subscribe: {{ {} }}", allow(&sub));
        s.push_str("        }\n");
        s.push_str("      }\n");
    }
    s.push_str("    ]\n");
    s.push_str("  }\n");
    s.push_str("}\n");
    s.push_str("no_auth_user: \"\"\n");
    s
}

/// One node of a Vault raft cluster, as its configuration needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultNodeConf {
    /// Its raft `node_id`, and the addresses it advertises; `None` where the server
    /// takes them from its environment (`VAULT_RAFT_NODE_ID`, `VAULT_API_ADDR`,
    /// `VAULT_CLUSTER_ADDR`, which OpenBao reads as well as its own `BAO_*` names):
    /// pods of one StatefulSet share one ConfigMap.
    pub identity: Option<VaultIdentity>,
    /// API port.
    pub api: u16,
    /// Cluster port.
    pub cluster: u16,
    /// `retry_join` leader API addresses: every node of the cluster (empty: one node).
    pub join: Vec<String>,
}

/// A Vault node's fixed identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultIdentity {
    /// raft `node_id`.
    pub node_id: String,
    /// `api_addr`.
    pub api_addr: String,
    /// `cluster_addr`.
    pub cluster_addr: String,
}

/// The `retry_join` addresses of a Vault cluster on the process platform.
pub fn vault_local_join(env: &Environment, vault: &Vault) -> Vec<String> {
    crate::topology::vault_nodes(env, vault)
        .iter()
        .map(|n| format!("http://127.0.0.1:{}", n.api))
        .collect()
}

/// OpenBao/Vault server configuration for a single server (raft mode; dev mode takes
/// flags instead).
pub fn vault_hcl(env: &Environment, vault: &Vault, layout: &Layout) -> Option<String> {
    vault_node_hcl(
        env,
        vault,
        layout,
        &VaultNodeConf {
            identity: Some(VaultIdentity {
                node_id: format!("{}-{}-vault-0", env.project, env.name),
                api_addr: format!("http://{}:{}", layout.advertise, vault.common.port),
                cluster_addr: format!("http://{}:{}", layout.advertise, vault.cluster_port),
            }),
            api: vault.common.port,
            cluster: vault.cluster_port,
            join: Vec::new(),
        },
    )
}

/// OpenBao/Vault configuration for one node: raft storage (with `retry_join` to every
/// node of a cluster, so nodes find the leader however they start), the listener,
/// telemetry and the file audit device.
pub fn vault_node_hcl(
    env: &Environment,
    vault: &Vault,
    layout: &Layout,
    node: &VaultNodeConf,
) -> Option<String> {
    if vault.mode == VaultMode::Dev {
        return None;
    }
    let mut s = header(env, "#");
    s.push_str("ui = false\n");
    s.push_str("disable_mlock = true\n");
    if let Some(id) = &node.identity {
        let _ = writeln!(s, "api_addr = \"{}\"", id.api_addr);
        let _ = writeln!(s, "cluster_addr = \"{}\"", id.cluster_addr);
    }
    s.push_str("listener \"tcp\" {\n");
    let _ = writeln!(s, "  address = \"{}:{}\"", layout.bind, node.api);
    let _ = writeln!(
        s,
        "  cluster_address = \"{}:{}\"",
        layout.bind, node.cluster
    );
    s.push_str("  tls_disable = true\n");
    // Prometheus reads /v1/sys/metrics without a token. Not a token by reference: with
    // one, a sealed OpenBao answers 503 ("Vault is sealed") to the scrape, so
    // `vault_core_unsealed` would exist only while unsealed and VaultSealed could never
    // fire; unauthenticated, it serves `vault_core_unsealed 0` while sealed. (The
    // metrics say nothing secret; the listener is loopback or cluster-internal.)
    s.push_str("  telemetry {\n    unauthenticated_metrics_access = true\n  }\n");
    s.push_str("}\n");
    s.push_str("storage \"raft\" {\n");
    let _ = writeln!(s, "  path = {}", hcl_string(&layout.data_dir));
    if let Some(id) = &node.identity {
        let _ = writeln!(s, "  node_id = \"{}\"", id.node_id);
    }
    // The default multiplier waits 5-10 s for the first leader election.
    s.push_str("  performance_multiplier = 1\n");
    for leader in &node.join {
        let _ = writeln!(
            s,
            "  retry_join {{\n    leader_api_addr = \"{leader}\"\n  }}"
        );
    }
    s.push_str("}\n");
    // A gauge not updated for prometheus_retention_time disappears: the pre-unseal
    // `vault_core_unsealed{cluster=""} 0` lingers that long after an unseal (the
    // VaultSealed rule folds the cluster label for it).
    s.push_str(
        "telemetry {\n  disable_hostname = true\n  prometheus_retention_time = \"30s\"\n}\n",
    );
    // Declared, not enabled through the API: the device exists before the first
    // request is answered, so nothing (tenant data included) goes unrecorded, and
    // OpenBao refuses API-created audit devices anyway.
    s.push_str("audit \"file\" \"file\" {\n  options {\n");
    let _ = writeln!(
        s,
        "    file_path = {}",
        hcl_string(&vault_audit_path(env, layout))
    );
    s.push_str("  }\n}\n");
    Some(s)
}

/// Where the file audit device writes: `vault.audit_log`, relative to the server's
/// run directory unless absolute.
pub fn vault_audit_path(env: &Environment, layout: &Layout) -> String {
    let p = &env.vault.audit_log;
    if p.starts_with('/') || layout.runs_in_run_dir {
        p.clone()
    } else {
        format!("{}/{p}", layout.run_dir.trim_end_matches('/'))
    }
}

/// A server's TLS files as the server sees them, and what the environment asks of
/// its listener (`tls` section). `None` from [`server_tls`] when TLS is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// The server certificate (PEM).
    pub cert: String,
    /// Its key (PEM).
    pub key: String,
    /// The environment's CA (PEM): what nodes of a cluster verify each other with.
    pub ca: String,
    /// Plaintext refused.
    pub required: bool,
    /// The lowest version accepted.
    pub min_version: crate::model::TlsVersion,
}

/// The TLS files in `dir` (`server.crt`, `server.key`, `ca.crt`), when the
/// environment has TLS on.
pub fn server_tls(env: &Environment, dir: &str) -> Option<ServerTls> {
    if !env.tls.enabled() {
        return None;
    }
    let dir = dir.trim_end_matches('/');
    Some(ServerTls {
        cert: format!("{dir}/server.crt"),
        key: format!("{dir}/server.key"),
        ca: format!("{dir}/ca.crt"),
        required: env.tls.required(),
        min_version: env.tls.min_version,
    })
}

/// A core server's configuration file, for [`with_tls`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerFile {
    /// [`postgresql_conf`]'s.
    PostgresqlConf,
    /// [`pg_hba_conf`]'s.
    PgHbaConf,
    /// [`redis_conf`]'s.
    RedisConf,
    /// [`nats_conf`]'s or [`nats_node_conf`]'s.
    NatsConf,
    /// [`vault_hcl`]'s or [`vault_node_hcl`]'s.
    VaultHcl,
}

/// `text`, a core server's configuration file as this module wrote it, with the
/// environment's TLS: the one place every platform (processes, containers, ConfigMaps)
/// takes its listeners' TLS settings from, so they agree.
pub fn with_tls(env: &Environment, file: ServerFile, text: &str, t: &ServerTls) -> String {
    match file {
        ServerFile::PostgresqlConf => format!("{text}{}", postgresql_tls_conf(t)),
        ServerFile::PgHbaConf if t.required => pg_hba_hostssl(text),
        ServerFile::PgHbaConf => text.to_owned(),
        ServerFile::RedisConf => match env.services.redis.as_ref() {
            Some(r) => format!("{text}{}", redis_tls_conf(r, t)),
            None => text.to_owned(),
        },
        ServerFile::NatsConf => nats_tls_conf(text, t),
        ServerFile::VaultHcl => vault_tls_hcl(text, t),
    }
}

/// The `pg_hba` rule that refuses every plaintext network connection, for a server
/// whose other rules we do not write (a CloudNativePG cluster's: the operator adds its
/// own `host` rules after the user's). With TLS required, the equivalent of
/// [`pg_hba_hostssl`].
pub const PG_HBA_REFUSE_PLAINTEXT: &str = "hostnossl all all all reject";

/// `ssl_min_protocol_version`'s value for `tls.min_version`.
pub fn pg_min_protocol(t: &ServerTls) -> String {
    format!("TLSv{}", t.min_version)
}

/// `postgresql.conf` lines for TLS (after [`postgresql_conf`]'s: the later setting
/// wins). PostgreSQL rereads the files on `pg_reload_conf()`.
pub fn postgresql_tls_conf(t: &ServerTls) -> String {
    let mut s = String::new();
    s.push_str(
        "ssl = on
",
    );
    let _ = writeln!(s, "ssl_cert_file = {}", pg_string(&t.cert));
    let _ = writeln!(s, "ssl_key_file = {}", pg_string(&t.key));
    let _ = writeln!(s, "ssl_min_protocol_version = '{}'", pg_min_protocol(t));
    s
}

/// `pg_hba.conf` (as [`pg_hba_conf`] wrote it) with `hostssl` for every network rule:
/// with TLS required a plaintext connection matches no rule and is refused.
pub fn pg_hba_hostssl(hba: &str) -> String {
    hba.lines()
        .map(|l| match l.strip_prefix("host    ") {
            Some(rest) => format!("hostssl {rest}\n"),
            None => format!("{l}\n"),
        })
        .collect()
}

/// `redis.conf` lines for TLS, after [`redis_conf`]'s: TLS on the configured port and
/// no plaintext port (Redis cannot serve both on one port, so `on` and `required` are
/// alike here). Redis takes a renewed certificate with `CONFIG SET tls-cert-file`.
pub fn redis_tls_conf(redis: &Redis, t: &ServerTls) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "port 0");
    let _ = writeln!(s, "tls-port {}", redis.common.port);
    let _ = writeln!(s, "tls-cert-file {}", redis_arg(&t.cert));
    let _ = writeln!(s, "tls-key-file {}", redis_arg(&t.key));
    let _ = writeln!(s, "tls-ca-cert-file {}", redis_arg(&t.ca));
    // Clients prove nothing with certificates: they authenticate as ACL users.
    let _ = writeln!(s, "tls-auth-clients no");
    let protocols = match t.min_version {
        crate::model::TlsVersion::V1_2 => "\"TLSv1.2 TLSv1.3\"",
        crate::model::TlsVersion::V1_3 => "TLSv1.3",
    };
    let _ = writeln!(s, "tls-protocols {protocols}");
    s
}

/// `nats-server.conf` with TLS: a `tls` block for clients (plaintext still accepted
/// with `on`), monitoring over https, and cluster routes over TLS verified against
/// the environment's CA. nats-server rereads the files on its reload signal (SIGHUP).
pub fn nats_tls_conf(conf: &str, t: &ServerTls) -> String {
    let block = |indent: &str, verify: bool| {
        let mut b = String::new();
        let _ = writeln!(b, "{indent}tls {{");
        let _ = writeln!(b, "{indent}  cert_file: {}", nats_string(&t.cert));
        let _ = writeln!(b, "{indent}  key_file: {}", nats_string(&t.key));
        let _ = writeln!(b, "{indent}  ca_file: {}", nats_string(&t.ca));
        if verify {
            let _ = writeln!(b, "{indent}  verify: true");
        }
        let _ = writeln!(b, "{indent}  timeout: 2");
        let _ = writeln!(b, "{indent}}}");
        b
    };
    let mut s = String::new();
    for line in conf.lines() {
        if let Some(rest) = line.strip_prefix("http: ") {
            let _ = writeln!(s, "https: {rest}");
        } else if line == "cluster {" {
            s.push_str(line);
            s.push('\n');
            s.push_str(&block("  ", true));
        } else {
            s.push_str(line);
            s.push('\n');
        }
    }
    s.push_str(&block("", false));
    if !t.required {
        s.push_str("allow_non_tls: true\n");
    }
    s
}

/// OpenBao's configuration with a TLS listener (OpenBao has no optional TLS: `on`
/// and `required` are alike here), `https://` addresses, and `retry_join` verifying
/// the leader against the environment's CA. OpenBao rereads the listener's files on
/// SIGHUP. Raft between nodes keeps its own mutual TLS on the cluster port.
pub fn vault_tls_hcl(hcl: &str, t: &ServerTls) -> String {
    let version = match t.min_version {
        crate::model::TlsVersion::V1_2 => "tls12",
        crate::model::TlsVersion::V1_3 => "tls13",
    };
    let mut s = String::new();
    for line in hcl.lines() {
        if line == "  tls_disable = true" {
            let _ = writeln!(s, "  tls_cert_file = {}", hcl_string(&t.cert));
            let _ = writeln!(s, "  tls_key_file = {}", hcl_string(&t.key));
            let _ = writeln!(s, "  tls_min_version = \"{version}\"");
        } else if let Some(rest) = line.strip_prefix("api_addr = \"http://") {
            let _ = writeln!(s, "api_addr = \"https://{rest}");
        } else if let Some(rest) = line.strip_prefix("cluster_addr = \"http://") {
            let _ = writeln!(s, "cluster_addr = \"https://{rest}");
        } else if let Some(rest) = line.strip_prefix("    leader_api_addr = \"http://") {
            let _ = writeln!(s, "    leader_api_addr = \"https://{rest}");
            let _ = writeln!(s, "    leader_ca_cert_file = {}", hcl_string(&t.ca));
        } else {
            s.push_str(line);
            s.push('\n');
        }
    }
    s
}

/// The stream a subject belongs to, if any (for the CloudEvents publisher).
pub fn stream_for_subject<'e>(env: &'e Environment, subject: &str) -> Option<&'e StreamName> {
    env.streams.iter().find_map(|(name, s)| {
        s.subjects
            .iter()
            .any(|f| crate::validate::subjects_overlap(f, subject))
            .then_some(name)
    })
}

// ---- Point-in-time recovery (issue 19): continuous WAL archiving. ----

/// `text` as one word of a POSIX shell command line (PostgreSQL runs
/// `archive_command` and `restore_command` through `sh -c`): single-quoted, a `'`
/// as `'\''`.
pub fn sh_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// `postgresql.conf` lines for continuous archiving: `archive_mode = on`,
/// `archive_command` (the caller's command, `%p`/`%f` in it), `archive_timeout` in
/// seconds (the RPO bound), and `wal_level = replica` (what archiving and
/// `pg_basebackup` need; PostgreSQL's default, spelled out).
pub fn postgresql_pitr_conf(archive_command: &str, archive_timeout_secs: u64) -> String {
    let mut s = String::from("# Point-in-time recovery (backup.pitr)\n");
    let _ = writeln!(s, "wal_level = 'replica'");
    let _ = writeln!(s, "archive_mode = 'on'");
    let _ = writeln!(s, "archive_command = {}", pg_string(archive_command));
    let _ = writeln!(s, "archive_timeout = {archive_timeout_secs}");
    s
}

/// `pg_hba.conf` lines letting the superuser make replication connections (what
/// `pg_basebackup` opens) from the socket and the client networks, with a password.
pub fn pg_hba_pitr(layout: &Layout) -> String {
    let mut s = String::from("# pg_basebackup (backup.pitr): the superuser only\n");
    let _ = writeln!(s, "local   replication {POSTGRES_SUPERUSER}  scram-sha-256");
    for net in &layout.client_networks {
        let _ = writeln!(
            s,
            "host    replication {POSTGRES_SUPERUSER}  {net}  scram-sha-256"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(sets: &[&str]) -> Environment {
        let mut files = crate::load::EnvFiles::default();
        files.files.insert(
            "dev".into(),
            crate::load::EnvFile {
                display: "dev.yaml".into(),
                text: Ok("backup: {enabled: false}\n\
                          vault: {policies: {anumate-app: [{path: x/*, capabilities: [read]}]}}\n"
                    .into()),
            },
        );
        let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
        crate::load::load(&files, "dev", &sets)
            .unwrap_or_else(|d| panic!("{d}"))
            .env
    }

    /// A hostile state directory (the one path the user chooses that lands in these
    /// files) with a quote, a backslash, a newline and a template introducer.
    fn hostile_layout() -> Layout {
        let dir = "/tmp/a\"b\\c\nd${x}%{y}'e".to_owned();
        Layout {
            bind: "127.0.0.1".into(),
            advertise: "127.0.0.1".into(),
            data_dir: dir.clone(),
            run_dir: dir,
            client_networks: vec!["127.0.0.1/32".into()],
            runs_in_run_dir: false,
        }
    }

    #[test]
    fn quoting_functions_escape_what_each_format_reads_specially() {
        assert_eq!(nats_string("a\"b\\c\nd"), r#""a\"b\\c\nd""#);
        assert_eq!(nats_string("x\u{1b}y"), r#""xy""#);
        assert_eq!(pg_string("it's a\\b\nc"), r"'it''s a\\b\nc'");
        assert_eq!(hcl_string("a\"${b}%{c}$d\\"), r#""a\"$${b}%%{c}$d\\""#);
        assert_eq!(redis_arg("/var/lib/redis"), "/var/lib/redis");
        assert_eq!(redis_arg("/a b\"c\n"), r#""/a b\"c\x0a""#);
        assert_eq!(secret_env_value(NATS_APP_PASSWORD_VAR, "1\"2"), r#""1\"2""#);
        assert_eq!(secret_env_value("OTHER", "1\"2"), "1\"2");
    }

    #[test]
    fn generated_configs_keep_hostile_paths_inside_their_quotes() {
        let e = env(&["services.postgres.settings.search_path=\"it's \\\\ here\""]);
        let layout = hostile_layout();
        let nats = nats_conf(&e, e.services.nats.as_ref().unwrap(), &layout);
        assert!(
            nats.contains(r#"store_dir: "/tmp/a\"b\\c\nd${x}%{y}'e""#),
            "{nats}"
        );
        assert!(nats.contains(r#"user: "anumate_app", password: $NATS_APP_PASSWORD"#));
        // The newline in the path starts no line of its own (checked for every file
        // below).
        let pg = postgresql_conf(&e, e.services.postgres.as_ref().unwrap(), &layout);
        assert!(
            pg.contains(r#"unix_socket_directories = '/tmp/a"b\\c\nd${x}%{y}''e'"#),
            "{pg}"
        );
        assert!(pg.contains(r"search_path = 'it''s \\ here'"), "{pg}");
        let redis = redis_conf(&e, e.services.redis.as_ref().unwrap(), &layout);
        assert!(
            redis.contains(r#"dir "/tmp/a\"b\\c\x0ad${x}%{y}'e""#),
            "{redis}"
        );
        let hcl = vault_hcl(&e, e.services.vault.as_ref().unwrap(), &layout).unwrap();
        assert!(
            hcl.contains(r#"path = "/tmp/a\"b\\c\nd$${x}%%{y}'e""#),
            "{hcl}"
        );
        assert!(
            hcl.contains(r#"file_path = "/tmp/a\"b\\c\nd$${x}%%{y}'e/vault-audit.log""#),
            "{hcl}"
        );
        for text in [&nats, &pg, &redis, &hcl] {
            assert!(!text.lines().any(|l| l.starts_with("d$")), "{text}");
        }
    }

    #[test]
    fn pitr_lines_quote_the_command() {
        assert_eq!(sh_word("/a/it's"), r"'/a/it'\''s'");
        let c = format!("{} pitr wal-push %p %f", sh_word("/a b/controlplane"));
        let conf = postgresql_pitr_conf(&c, 60);
        assert!(conf.contains("archive_mode = 'on'"), "{conf}");
        assert!(conf.contains("archive_timeout = 60"), "{conf}");
        assert!(
            conf.contains("archive_command = '''/a b/controlplane'' pitr wal-push %p %f'"),
            "{conf}"
        );
    }
}
