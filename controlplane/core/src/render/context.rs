//! The template context: the environment plus values derived from it once, in Rust,
//! so templates stay declarative (secret wiring, server configs, labels, images).
//!
//! Secrets appear only as bindings: which variable of which workload comes from which
//! reference. No secret value is ever in the context.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::model::{Environment, Tier};
use crate::names::CoreKind;
use crate::serverconf::{self, Layout};
use crate::units::SecretRef;

/// One secret environment variable of one workload.
#[derive(Debug, Clone, Serialize)]
pub struct SecretBinding {
    /// Variable inside the container (`POSTGRES_PASSWORD`).
    pub var: String,
    /// The model key path it comes from (`services.postgres.superuser_password`).
    pub path: String,
    /// The reference, printable (`vault://...`, `env://NAME`, `generate`, `<redacted>`).
    pub reference: String,
    /// `vault` (an ExternalSecret syncs it) or `fill` (a Secret controlplane fills at
    /// apply time from `env://`, `generate` or a dev value).
    pub source: &'static str,
    /// For `vault`: the KV path, including the mount.
    pub vault_path: Option<String>,
    /// For `vault`: the KV path below the mount, as the SecretStore (whose `path` is
    /// the mount) reads it.
    pub vault_remote_key: Option<String>,
    /// For `vault`: the key.
    pub vault_key: Option<String>,
    /// The Kubernetes Secret holding it (`<workload>-vault` or `<workload>-secrets`).
    pub k8s_secret: String,
    /// The key inside that Secret.
    pub k8s_key: String,
    /// The host variable docker-compose interpolates (`${NAME}`).
    pub compose_var: String,
}

/// The host variable name compose reads for a secret: `env://NAME` keeps its name;
/// anything else gets `CP_SECRET_<PATH>`.
pub fn compose_var(path: &str, r: &SecretRef) -> String {
    match r {
        SecretRef::Env { name } => name.clone(),
        _ => format!(
            "CP_SECRET_{}",
            path.chars()
                .map(|c| if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                })
                .collect::<String>()
        ),
    }
}

fn binding(workload: &str, var: &str, path: &str, r: &SecretRef, kv_mount: &str) -> SecretBinding {
    let (source, vault_path, vault_key, k8s_secret) = match r {
        SecretRef::Vault { path, key } => (
            "vault",
            Some(path.clone()),
            Some(key.clone()),
            format!("{workload}-vault"),
        ),
        _ => ("fill", None, None, format!("{workload}-secrets")),
    };
    // Validation keeps every vault:// reference under the KV mount.
    let vault_remote_key = vault_path.as_deref().map(|p| {
        p.strip_prefix(kv_mount)
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(p)
            .to_owned()
    });
    SecretBinding {
        var: var.to_owned(),
        path: path.to_owned(),
        reference: r.to_string(),
        source,
        vault_path,
        vault_remote_key,
        vault_key,
        k8s_secret,
        k8s_key: var.to_owned(),
        compose_var: compose_var(path, r),
    }
}

/// Every workload's secret bindings, by workload name.
pub fn secret_bindings(env: &Environment) -> BTreeMap<String, Vec<SecretBinding>> {
    let mut out: BTreeMap<String, Vec<SecretBinding>> = BTreeMap::new();
    let mut add = |w: &str, var: &str, path: &str, r: &SecretRef| {
        out.entry(w.to_owned())
            .or_default()
            .push(binding(w, var, path, r, &env.vault.kv_mount));
    };
    let s = &env.services;
    if let Some(pg) = &s.postgres {
        // The single server's (compose runs one everywhere; Kubernetes renders its
        // Secret only without CloudNativePG).
        add(
            "postgres",
            "POSTGRES_PASSWORD",
            "services.postgres.superuser_password",
            &pg.superuser_password,
        );
        if crate::topology::postgres_cnpg(env) {
            // CloudNativePG reads each role's password from a basic-auth Secret of its
            // own (`secret_shapes` gives them their type and username).
            for (workload, _, path, r) in cnpg_role_secrets(pg) {
                add(&workload, "password", path, r);
            }
            // The Barman Cloud ObjectStore's credentials, by reference.
            for (var, path, r) in pitr_store_secrets(env) {
                add(PITR_STORE, var, &path, r);
            }
        }
    }
    if let Some(r) = &s.redis {
        add(
            "redis",
            "REDIS_ADMIN_PASSWORD",
            "services.redis.admin_password",
            &r.admin_password,
        );
    }
    if let Some(n) = &s.nats {
        add(
            "nats",
            serverconf::NATS_ADMIN_PASSWORD_VAR,
            "services.nats.admin_password",
            &n.admin_password,
        );
        add(
            "nats",
            serverconf::NATS_APP_PASSWORD_VAR,
            "services.nats.app_password",
            &n.app_password,
        );
        for u in serverconf::nats_app_users(env) {
            add("nats", &u.var, &u.setting, &u.uses.password);
        }
    }
    if let Some(v) = &s.vault
        && let Some(t) = &v.dev_root_token
    {
        add(
            "vault",
            "BAO_DEV_ROOT_TOKEN_ID",
            "services.vault.dev_root_token",
            t,
        );
    }
    // The backup CronJob's pod resolves the environment's references itself: an
    // `env://NAME` reference is read from its variable NAME, which it gets from the
    // Secrets below (filled, or synced from Vault); never a value in the manifest.
    if let Some(b) = &env.backup {
        // Two settings naming the same `env://` variable need it once.
        let mut seen = std::collections::BTreeSet::new();
        let mut backup_secret = |path: &str, r: &SecretRef| {
            let var = compose_var(path, r);
            if seen.insert(var.clone()) {
                add(BACKUP_JOB, &var, path, r);
            }
        };
        if let Some(pg) = &s.postgres {
            backup_secret("services.postgres.backup_password", &pg.backup_password);
        }
        if let Some(r) = &s.redis {
            backup_secret("services.redis.admin_password", &r.admin_password);
        }
        if let Some(n) = &s.nats {
            backup_secret("services.nats.admin_password", &n.admin_password);
        }
        if let Some(t) = &b.vault_token {
            backup_secret("backup.vault_token", t);
        }
        for (name, d) in &b.destinations {
            let refs: Vec<(&str, &Option<SecretRef>)> = match d {
                crate::model::Destination::Local { .. } => Vec::new(),
                crate::model::Destination::S3 {
                    access_key_id,
                    secret_access_key,
                    ..
                } => vec![
                    ("access_key_id", access_key_id),
                    ("secret_access_key", secret_access_key),
                ],
                crate::model::Destination::Gcs {
                    service_account_key,
                    ..
                } => vec![("service_account_key", service_account_key)],
                crate::model::Destination::Azure { access_key, .. } => {
                    vec![("secret_access_key", access_key)]
                }
            };
            for (key, r) in refs {
                if let Some(r) = r {
                    backup_secret(&format!("backup.destinations.{name}.{key}"), r);
                }
            }
        }
    }
    for (name, app) in &env.apps {
        for (var, r) in &app.secrets {
            add(name.as_str(), var, &format!("apps.{name}.secrets.{var}"), r);
        }
        // The credentials of what the app uses, which its URLs expand (`app_env`).
        let dial = crate::appenv::in_cluster_dial(env, "");
        for v in crate::appenv::app_env(name, app, &dial).values() {
            if let crate::appenv::AppValue::WithSecret {
                setting,
                reference,
                var,
                ..
            } = v
            {
                add(name.as_str(), var, setting, reference);
            }
        }
    }
    for (name, e) in &env.extras {
        for (var, r) in &e.secrets {
            add(
                name.as_str(),
                var,
                &format!("extras.{name}.secrets.{var}"),
                r,
            );
        }
    }
    if let Some(m) = &env.monitoring {
        if m.grafana.is_some() {
            add(
                "grafana",
                "GF_SECURITY_ADMIN_PASSWORD",
                "monitoring.grafana_admin_password",
                &m.grafana_admin_password,
            );
        }
        if let (Some(_), Some(pg)) = (&m.postgres_exporter, &s.postgres) {
            add(
                "postgres-exporter",
                "DATA_SOURCE_PASS",
                "services.postgres.readonly_password",
                &pg.readonly_password,
            );
        }
        if let (Some(_), Some(r)) = (&m.redis_exporter, &s.redis) {
            add(
                "redis-exporter",
                "REDIS_PASSWORD",
                "services.redis.admin_password",
                &r.admin_password,
            );
        }
        if let (Some(_), Some(w)) = (&m.alertmanager, &m.webhook_url) {
            add("alertmanager", "WEBHOOK_URL", "monitoring.webhook_url", w);
        }
    }
    out
}

/// The namespace's SecretStore that ExternalSecrets read through, when a workload has
/// a `vault://` binding and the environment runs Vault (validation requires it on
/// Kubernetes): the environment's Vault by its Service, the KV v2 mount, Vault's
/// Kubernetes auth method as the ServiceAccount `external-secrets-vault`. Namespaced
/// rather than a ClusterSecretStore, so environments sharing a cluster never overwrite
/// each other's store and the kube driver prunes it with the rest of the namespace.
fn secret_store(env: &Environment, bindings: &BTreeMap<String, Vec<SecretBinding>>) -> Value {
    let any_vault = bindings.values().flatten().any(|b| b.source == "vault");
    match &env.services.vault {
        Some(v) if any_vault => json!({
            "service_account": "external-secrets-vault",
            "server": format!(
                "{}://vault.{}.svc:{}",
                if vault_tls(env) { "https" } else { "http" },
                env.namespace,
                v.common.port
            ),
            // OpenBao's listener is verified with its certificate's CA.
            "ca_secret": vault_tls(env).then_some("vault-tls"),
            "path": env.vault.kv_mount,
            "auth_mount": env.vault.kubernetes_auth.mount_path,
            "role": env.vault.kubernetes_auth.role,
        }),
        _ => Value::Null,
    }
}

/// OpenBao serves TLS: TLS is on and OpenBao is not a dev server (which stays plain
/// HTTP, as on the process platform).
pub fn vault_tls(env: &Environment) -> bool {
    env.tls.enabled()
        && env
            .services
            .vault
            .as_ref()
            .is_some_and(|v| v.mode != crate::model::VaultMode::Dev)
}

/// Server configuration files as containers see them (bind `0.0.0.0`, `/data`).
fn container_configs(env: &Environment) -> Value {
    let layout = |data: &str| Layout {
        bind: "0.0.0.0".into(),
        advertise: "127.0.0.1".into(),
        data_dir: data.into(),
        run_dir: "/run/controlplane".into(),
        client_networks: vec!["0.0.0.0/0".into(), "::/0".into()],
        runs_in_run_dir: false,
    };
    let s = &env.services;
    let mut c = serde_json::Map::new();
    if let Some(pg) = &s.postgres {
        let l = layout("/var/lib/postgresql/data");
        c.insert(
            "postgresql_conf".into(),
            json!(serverconf::postgresql_conf(env, pg, &l)),
        );
        c.insert(
            "pg_hba_conf".into(),
            json!(serverconf::pg_hba_conf(env, &l)),
        );
    }
    if let Some(r) = &s.redis {
        c.insert(
            "redis_conf".into(),
            json!(serverconf::redis_conf(env, r, &layout("/data"))),
        );
    }
    if let Some(n) = &s.nats {
        let l = layout("/data/jetstream");
        let conf = if crate::topology::nats_clustered(n) {
            // One ConfigMap for every pod: each takes its server name from its pod
            // name, and routes to every pod by its stable DNS name.
            let routes = (0..n.common.replicas)
                .map(|i| {
                    format!(
                        "nats://{}.nats.{}.svc:{}",
                        crate::topology::pod("nats", i),
                        env.namespace,
                        n.cluster_port
                    )
                })
                .collect();
            serverconf::nats_node_conf(
                env,
                n,
                &l,
                &serverconf::NatsNodeConf {
                    name: serverconf::NodeName::FromEnv(serverconf::NATS_SERVER_NAME_VAR),
                    client: n.common.port,
                    monitor: n.monitor_port,
                    cluster: Some((n.cluster_port, routes)),
                },
            )
        } else {
            serverconf::nats_conf(env, n, &l)
        };
        c.insert("nats_conf".into(), json!(conf));
    }
    if let Some(v) = &s.vault {
        let mut l = layout("/openbao/data");
        // In a cluster, peers reach Vault by its Service name.
        l.advertise = "vault".into();
        // The official images' log directory, writable by the `openbao` user: the
        // file audit device writes there.
        l.run_dir = "/openbao/logs".into();
        let hcl = if crate::topology::vault_clustered(v) {
            // One ConfigMap for every pod: node id and addresses come from each pod's
            // environment (VAULT_RAFT_NODE_ID, VAULT_API_ADDR, VAULT_CLUSTER_ADDR), and
            // every pod retries joining every pod until one leads.
            let join = (0..v.common.replicas)
                .map(|i| {
                    format!(
                        "http://{}.vault.{}.svc:{}",
                        crate::topology::pod("vault", i),
                        env.namespace,
                        v.common.port
                    )
                })
                .collect();
            serverconf::vault_node_hcl(
                env,
                v,
                &l,
                &serverconf::VaultNodeConf {
                    identity: None,
                    api: v.common.port,
                    cluster: v.cluster_port,
                    join,
                },
            )
        } else {
            serverconf::vault_hcl(env, v, &l)
        };
        c.insert("vault_hcl".into(), json!(hcl));
    }
    // The listeners' TLS, from the files every container mounts at TLS_DIR (a
    // dev-mode OpenBao has no configuration file and stays plain HTTP, as on the
    // process platform).
    if let Some(t) = serverconf::server_tls(env, TLS_DIR) {
        for (key, file) in [
            ("postgresql_conf", serverconf::ServerFile::PostgresqlConf),
            ("pg_hba_conf", serverconf::ServerFile::PgHbaConf),
            ("redis_conf", serverconf::ServerFile::RedisConf),
            ("nats_conf", serverconf::ServerFile::NatsConf),
            ("vault_hcl", serverconf::ServerFile::VaultHcl),
        ] {
            let with_tls = c
                .get(key)
                .and_then(Value::as_str)
                .map(|text| serverconf::with_tls(env, file, text, &t));
            if let Some(text) = with_tls {
                c.insert(key.into(), json!(text));
            }
        }
    }
    Value::Object(c)
}

/// Where containers find their TLS files (`server.crt`, `server.key`, `ca.crt`): a
/// cert-manager Secret's `tls.crt`, `tls.key` and `ca.crt` on Kubernetes, the
/// service's `tls/` folder of the state directory in compose.
pub const TLS_DIR: &str = "/etc/controlplane/tls";

/// The OpenBao PKI mount the Kubernetes `Issuer` signs through.
pub const PKI_MOUNT: &str = "pki";
/// The PKI role the `Issuer` signs with (allowed names: the services' DNS names).
pub const PKI_ROLE: &str = "services";
/// The Vault role (Kubernetes auth) cert-manager logs in with, bound to the
/// ServiceAccount [`PKI_SERVICE_ACCOUNT`].
pub const PKI_AUTH_ROLE: &str = "cert-manager";
/// The ServiceAccount cert-manager requests tokens for to log in to OpenBao.
pub const PKI_SERVICE_ACCOUNT: &str = "cert-manager-vault";

/// The DNS names of a Service `svc` in namespace `ns`, and of its StatefulSet's
/// first `pods` pods through the headless Service.
fn dns_names(svc: &str, ns: &str, pods: u32) -> Vec<String> {
    let mut names = vec![
        svc.to_owned(),
        format!("{svc}.{ns}"),
        format!("{svc}.{ns}.svc"),
        format!("{svc}.{ns}.svc.cluster.local"),
    ];
    for i in 0..pods {
        let pod = crate::topology::pod(svc, i);
        names.push(format!("{pod}.{svc}.{ns}.svc"));
        names.push(format!("{pod}.{svc}.{ns}.svc.cluster.local"));
    }
    names
}

/// What the Kubernetes and compose templates need for TLS (`null` when TLS is off):
/// the cert-manager issuer and one Certificate per core service (its Secret
/// `<service>-tls`), the issuers the environment manages, and what apps are given.
///
/// Issuers: with `tls.issuer.cluster_issuer`, that ClusterIssuer signs everything.
/// Otherwise a self-signed bootstrap CA (`controlplane-ca`) signs OpenBao's own
/// listener (its certificate cannot come from OpenBao before it runs, as on the
/// process platform), and the services' certificates come from OpenBao's PKI engine
/// through the Vault `Issuer` `openbao-pki` (Kubernetes auth), or from the bootstrap
/// CA when the environment runs no OpenBao.
fn tls(env: &Environment) -> Value {
    if !env.tls.enabled() {
        return Value::Null;
    }
    let ns = &env.namespace;
    let s = &env.services;
    let issuer_ref =
        |kind: &str, name: &str| json!({"group": "cert-manager.io", "kind": kind, "name": name});
    let (bootstrap, vault_issuer, services_issuer, vault_own_issuer) = match &env.tls.cluster_issuer
    {
        Some(name) => {
            let r = issuer_ref("ClusterIssuer", name);
            (false, Value::Null, r.clone(), r)
        }
        None => {
            let ca = issuer_ref("Issuer", "controlplane-ca");
            match s.vault.as_ref().filter(|_| vault_tls(env)) {
                Some(v) => (
                    true,
                    json!({
                        "name": "openbao-pki",
                        "server": format!("https://vault.{ns}.svc:{}", v.common.port),
                        "path": format!("{PKI_MOUNT}/sign/{PKI_ROLE}"),
                        "ca_secret": "vault-tls",
                        "auth_mount": format!("/v1/auth/{}", env.vault.kubernetes_auth.mount_path),
                        "role": PKI_AUTH_ROLE,
                        "service_account": PKI_SERVICE_ACCOUNT,
                    }),
                    issuer_ref("Issuer", "openbao-pki"),
                    ca,
                ),
                None => (true, Value::Null, ca.clone(), ca),
            }
        }
    };
    let mut certificates = Vec::new();
    let mut secrets = serde_json::Map::new();
    for kind in s.enabled() {
        let c = s.common(kind).expect("enabled");
        let name = kind.as_str();
        let dns: Vec<String> = if kind == CoreKind::Postgres && crate::topology::postgres_cnpg(env)
        {
            // The Services CloudNativePG makes for its cluster.
            ["postgres-rw", "postgres-r", "postgres-ro"]
                .iter()
                .flat_map(|svc| dns_names(svc, ns, 0))
                .collect()
        } else {
            dns_names(name, ns, c.replicas)
        };
        let secret = format!("{name}-tls");
        secrets.insert(name.into(), json!(secret));
        let issuer = if kind == CoreKind::Vault {
            &vault_own_issuer
        } else {
            &services_issuer
        };
        certificates.push(json!({
            "name": name,
            // `<service>.<ns>.svc`: what clients across namespaces dial.
            "common_name": dns[2],
            "secret": secret,
            "dns_names": dns,
            "issuer": issuer,
        }));
    }
    let ca_secret = s.enabled().first().map(|k| format!("{}-tls", k.as_str()));
    let acme: Vec<Value> = env
        .tls
        .acme_issuers
        .iter()
        .map(|(name, a)| json!({"name": name, "email": a.email, "server": a.server, "ingress_class": a.ingress_class}))
        .collect();
    json!({
        "dir": TLS_DIR,
        "required": env.tls.required(),
        "min_version": env.tls.min_version.to_string(),
        // cert-manager's Go durations; renewal at the same point as on the process
        // platform (renewBeforePercentage = what is left after renew_at_percent).
        "duration": format!("{}s", env.tls.lifetime.as_secs()),
        "renew_before_percentage": 100 - u32::from(env.tls.renew_at_percent),
        "bootstrap": bootstrap,
        "vault_issuer": vault_issuer,
        "certificates": certificates,
        "secrets": secrets,
        // The CA apps verify the services with: `ca.crt` of a service's Secret (only
        // that key is mounted).
        "ca_secret": ca_secret,
        "acme_issuers": acme,
        "app_env": env
            .apps
            .iter()
            .map(|(name, app)| {
                // What the app sets itself wins.
                let mut vars = app_tls_env(env);
                let dial = crate::appenv::in_cluster_dial(env, "");
                let uses = crate::appenv::app_env(name, app, &dial);
                vars.retain(|k, _| {
                    !app.env.contains_key(k) && !app.secrets.contains_key(k) && !uses.contains_key(k)
                });
                (name.to_string(), vars)
            })
            .collect::<BTreeMap<_, _>>(),
    })
}

/// The environment apps get when TLS is on: where each core service answers over
/// TLS (no credentials: those stay in the app's own secrets) and the CA to verify it
/// with, in the variables the usual clients read (libpq's `PGSSLMODE` and
/// `PGSSLROOTCERT`, the Vault CLI's `VAULT_CACERT`). Hosts are the short Service
/// names, which both platforms' certificates carry (an app runs in the services'
/// namespace on Kubernetes and on the same network in compose).
fn app_tls_env(env: &Environment) -> BTreeMap<String, String> {
    let s = &env.services;
    let ca = format!("{TLS_DIR}/ca.crt");
    let mut out = BTreeMap::new();
    if let Some(pg) = &s.postgres {
        let host = if crate::topology::postgres_cnpg(env) {
            "postgres-rw"
        } else {
            "postgres"
        };
        out.insert(
            "POSTGRES_URL".into(),
            format!(
                "postgres://{host}:{}/{}?sslmode=verify-full&sslrootcert={ca}",
                pg.common.port, pg.database
            ),
        );
        out.insert("PGSSLMODE".into(), "verify-full".into());
        out.insert("PGSSLROOTCERT".into(), ca.clone());
    }
    if let Some(r) = &s.redis {
        out.insert(
            "REDIS_URL".into(),
            format!("rediss://redis:{}", r.common.port),
        );
    }
    if let Some(n) = &s.nats {
        out.insert("NATS_URL".into(), format!("tls://nats:{}", n.common.port));
    }
    if let Some(v) = s.vault.as_ref().filter(|_| vault_tls(env)) {
        out.insert(
            "VAULT_ADDR".into(),
            format!("https://vault:{}", v.common.port),
        );
        out.insert("VAULT_CACERT".into(), ca.clone());
    }
    out.insert("SSL_CA_FILE".into(), ca);
    out
}

/// Ports each core service listens on, by name (for Services and probes).
fn core_ports(env: &Environment) -> Value {
    let mut out = serde_json::Map::new();
    for kind in env.services.enabled() {
        let c = env.services.common(kind).expect("enabled");
        let mut ports = serde_json::Map::new();
        match kind {
            CoreKind::Postgres => {
                ports.insert("postgres".into(), json!(c.port));
            }
            CoreKind::Redis => {
                ports.insert("redis".into(), json!(c.port));
            }
            CoreKind::Nats => {
                ports.insert("client".into(), json!(c.port));
                ports.insert(
                    "monitor".into(),
                    json!(env.services.nats.as_ref().expect("enabled").monitor_port),
                );
            }
            CoreKind::Vault => {
                ports.insert("http".into(), json!(c.port));
                ports.insert(
                    "cluster".into(),
                    json!(env.services.vault.as_ref().expect("enabled").cluster_port),
                );
            }
        }
        out.insert(kind.as_str().into(), Value::Object(ports));
    }
    Value::Object(out)
}

/// Requests and limits as Kubernetes wants them: unset values left out.
fn k8s_resources(r: &crate::model::Resources) -> Value {
    let amounts = |a: &crate::model::Amounts| {
        let mut m = serde_json::Map::new();
        if let Some(c) = &a.cpu {
            m.insert("cpu".into(), json!(c.as_str()));
        }
        if let Some(mem) = &a.memory {
            m.insert("memory".into(), json!(mem.as_str()));
        }
        m
    };
    let mut out = serde_json::Map::new();
    for (k, a) in [("requests", &r.requests), ("limits", &r.limits)] {
        let m = amounts(a);
        if !m.is_empty() {
            out.insert(k.into(), Value::Object(m));
        }
    }
    Value::Object(out)
}

/// Every workload's resources, by name.
fn resources(env: &Environment) -> Value {
    let mut out = serde_json::Map::new();
    for kind in env.services.enabled() {
        out.insert(
            kind.as_str().into(),
            k8s_resources(&env.services.common(kind).expect("enabled").resources),
        );
    }
    for (n, a) in &env.apps {
        out.insert(n.to_string(), k8s_resources(&a.resources));
    }
    for (n, e) in &env.extras {
        out.insert(n.to_string(), k8s_resources(&e.resources));
    }
    if let Some(m) = &env.monitoring {
        for (n, c) in m.components() {
            out.insert(n.to_string(), k8s_resources(&c.resources));
        }
    }
    Value::Object(out)
}

/// The basic-auth Secrets a CloudNativePG cluster reads passwords from: (workload
/// name, role, setting, reference), the superuser's first.
fn cnpg_role_secrets(
    pg: &crate::model::Postgres,
) -> Vec<(String, &'static str, &'static str, &SecretRef)> {
    use crate::roles;
    let role = |r: &'static str, path: &'static str, reference| {
        (
            format!("postgres-role-{}", r.replace('_', "-")),
            r,
            path,
            reference,
        )
    };
    vec![
        (
            "postgres-superuser".to_owned(),
            roles::SUPERUSER,
            "services.postgres.superuser_password",
            &pg.superuser_password,
        ),
        role(
            roles::ADMIN,
            "services.postgres.admin_password",
            &pg.admin_password,
        ),
        role(
            roles::APP,
            "services.postgres.app_password",
            &pg.app_password,
        ),
        role(
            roles::READONLY,
            "services.postgres.readonly_password",
            &pg.readonly_password,
        ),
        role(
            roles::BACKUP,
            "services.postgres.backup_password",
            &pg.backup_password,
        ),
    ]
}

/// The name of the Barman Cloud `ObjectStore` of an environment's point-in-time
/// recovery on Kubernetes, and of the workload whose Secrets hold its credentials.
pub const PITR_STORE: &str = "postgres-pitr";

/// The Barman Cloud plugin's name, as the Cluster, its ScheduledBackup and a
/// recovery's external cluster name it.
pub const BARMAN_CLOUD_PLUGIN: &str = "barman-cloud.cloudnative-pg.io";

/// The PITR destination's credentials on Kubernetes: (key in the Secret, setting,
/// reference). Unset credentials are the platform's (an IAM role, GKE's workload
/// identity) and have none.
fn pitr_store_secrets(env: &Environment) -> Vec<(&'static str, String, &SecretRef)> {
    use crate::model::Destination;
    let Some(b) = &env.backup else {
        return Vec::new();
    };
    let Some(p) = &b.pitr else {
        return Vec::new();
    };
    let name = &p.destination;
    let refs: Vec<(&'static str, &'static str, &Option<SecretRef>)> = match b.destinations.get(name)
    {
        Some(Destination::S3 {
            access_key_id,
            secret_access_key,
            ..
        }) => vec![
            ("ACCESS_KEY_ID", "access_key_id", access_key_id),
            ("ACCESS_SECRET_KEY", "secret_access_key", secret_access_key),
        ],
        Some(Destination::Gcs {
            service_account_key,
            ..
        }) => vec![(
            "APPLICATION_CREDENTIALS",
            "service_account_key",
            service_account_key,
        )],
        _ => Vec::new(),
    };
    refs.into_iter()
        .filter_map(|(var, key, r)| {
            r.as_ref()
                .map(|r| (var, format!("backup.destinations.{name}.{key}"), r))
        })
        .collect()
}

/// CloudNativePG's schedules have six fields, seconds first; ours have five.
pub fn cnpg_cron(five_fields: &str) -> String {
    format!("0 {five_fields}")
}

/// A recovery window as the ObjectStore's `retentionPolicy` (`<n>d`): whole days,
/// rounded up so the window kept is never shorter than the one asked for.
pub fn retention_policy(window: &crate::units::Duration) -> String {
    format!("{}d", window.as_secs().div_ceil(86_400).max(1))
}

/// What the Barman Cloud ObjectStore, the Cluster's plugin and the ScheduledBackup
/// need (`null` without PITR). The archive layout is Barman Cloud's:
/// `<destination prefix>pitr/<server name>/{wals,base}`, the server name being the
/// environment's, as on the process platform.
fn pitr_store(env: &Environment, bindings: &BTreeMap<String, Vec<SecretBinding>>) -> Value {
    use crate::model::Destination;
    let Some(b) = &env.backup else {
        return Value::Null;
    };
    let Some(p) = &b.pitr else {
        return Value::Null;
    };
    let by_var: BTreeMap<&str, Value> = bindings
        .get(PITR_STORE)
        .into_iter()
        .flatten()
        .map(|b| {
            (
                b.var.as_str(),
                json!({"name": b.k8s_secret, "key": b.k8s_key}),
            )
        })
        .collect();
    let key = |var: &str| by_var.get(var).cloned().unwrap_or(Value::Null);
    let (path, s3, gcs, endpoint, region, encryption) = match b.destinations.get(&p.destination) {
        Some(Destination::S3 {
            bucket,
            prefix,
            region,
            endpoint,
            ..
        }) => (
            format!("s3://{bucket}/{prefix}pitr"),
            json!({"access_key_id": key("ACCESS_KEY_ID"), "secret_access_key": key("ACCESS_SECRET_KEY")}),
            Value::Null,
            endpoint.clone(),
            region.clone(),
            // S3 encrypts each object with its own keys (SSE-S3); an
            // S3-compatible store behind `endpoint` may not implement it.
            endpoint.is_none().then_some("AES256"),
        ),
        Some(Destination::Gcs { bucket, prefix, .. }) => (
            // GCS encrypts every object at rest itself; the ObjectStore's
            // `encryption` setting is S3's and has no meaning here.
            format!("gs://{bucket}/{prefix}pitr"),
            Value::Null,
            json!({"application_credentials": key("APPLICATION_CREDENTIALS")}),
            None,
            None,
            None,
        ),
        // Validation refuses other kinds on Kubernetes.
        _ => return Value::Null,
    };
    json!({
        "name": PITR_STORE,
        "plugin": BARMAN_CLOUD_PLUGIN,
        "server_name": env.name,
        "destination_path": path,
        "endpoint_url": endpoint,
        "region": region,
        "encryption": encryption,
        "s3": s3,
        "gcs": gcs,
        "retention_policy": retention_policy(&p.recovery_window),
        "schedule": cnpg_cron(&p.base_schedule.cron),
        "archive_timeout": format!("{}s", p.archive_timeout.as_secs()),
    })
}

/// Secrets of a fixed shape, by workload: their type and keys with fixed values (a
/// basic-auth Secret's `username`). Others are Opaque with only their bindings.
fn secret_shapes(env: &Environment) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(pg) = &env.services.postgres
        && crate::topology::postgres_cnpg(env)
    {
        for (workload, role, _, _) in cnpg_role_secrets(pg) {
            out.insert(
                workload,
                json!({"type": "kubernetes.io/basic-auth", "fixed": {"username": role}}),
            );
        }
    }
    Value::Object(out)
}

/// What the CloudNativePG `Cluster` template needs (`null` when PostgreSQL is not a
/// CloudNativePG cluster): the image for the server version, each managed role with the
/// Secret holding its password, and the name of the superuser's Secret.
fn cnpg(env: &Environment, bindings: &BTreeMap<String, Vec<SecretBinding>>) -> Value {
    let Some(pg) = env
        .services
        .postgres
        .as_ref()
        .filter(|_| crate::topology::postgres_cnpg(env))
    else {
        return Value::Null;
    };
    let secret = |w: &str| {
        bindings
            .get(w)
            .and_then(|b| b.first())
            .map(|b| b.k8s_secret.clone())
    };
    let roles: Vec<Value> = cnpg_role_secrets(pg)
        .into_iter()
        .skip(1)
        .map(|(w, role, _, _)| {
            let backup = role == crate::roles::BACKUP;
            json!({
                "name": role,
                "secret": secret(&w),
                "bypassrls": backup,
                "in_roles": if backup { vec!["pg_read_all_data"] } else { Vec::new() },
            })
        })
        .collect();
    // TLS: the operator serves the cert-manager Secret, at the minimum version, and
    // with TLS required refuses plaintext before its own `host` rules.
    let mut parameters = pg.settings.clone();
    let mut pg_hba = Vec::new();
    if let Some(t) = serverconf::server_tls(env, TLS_DIR) {
        parameters.insert(
            "ssl_min_protocol_version".into(),
            serverconf::pg_min_protocol(&t),
        );
        if t.required {
            pg_hba.push(serverconf::PG_HBA_REFUSE_PLAINTEXT);
        }
    }
    let pitr = pitr_store(env, bindings);
    if let Some(t) = pitr["archive_timeout"].as_str() {
        // The RPO bound, as on the other platforms (CloudNativePG's default is 5min).
        parameters.insert("archive_timeout".into(), t.to_owned());
    }
    json!({
        "pitr": pitr,
        "parameters": parameters,
        "pg_hba": pg_hba,
        "image": format!("ghcr.io/cloudnative-pg/postgresql:{}", pg.common.version),
        "superuser_secret": secret("postgres-superuser"),
        "owner_secret": secret("postgres-role-anumate-admin"),
        "roles": roles,
        "host": "postgres-rw",
    })
}

/// The workload name of the backup CronJob (and its ServiceAccount and Secrets).
pub const BACKUP_JOB: &str = "controlplane-backup";

/// The image the backup CronJob runs: controlplane built from this repository, which
/// holds the project (`environments/`, `templates/`) at `/opt/controlplane`.
pub fn controlplane_image() -> String {
    format!("ghcr.io/anumate/controlplane:{}", env!("CARGO_PKG_VERSION"))
}

/// What the backup CronJob needs, when backups are enabled.
fn backup_job(env: &Environment) -> Value {
    match &env.backup {
        None => Value::Null,
        Some(b) => json!({
            "name": BACKUP_JOB,
            "schedule": b.schedule.cron,
            "image": controlplane_image(),
            "args": ["--environments", "/opt/controlplane/environments", "--env", env.name.as_str(),
                     "--state-dir", "/var/run/controlplane", "--output", "json", "backup"],
        }),
    }
}

/// Where a containerised Alertmanager reads the webhook URL (a secret) from, as
/// `url_file:` in alertmanager.yaml; the process driver replaces that line with the
/// URL itself in its private copy.
pub const ALERTMANAGER_WEBHOOK_URL_FILE: &str = "/etc/alertmanager/secrets/WEBHOOK_URL";

/// The whole context for one environment.
pub fn build(env: &Environment) -> Value {
    let bindings = secret_bindings(env);
    json!({
        "backup_job": backup_job(env),
        "env": env,
        "name": env.name,
        "project": env.project,
        "namespace": env.namespace,
        "dev": env.tier == Tier::Dev,
        "secret_store": secret_store(env, &bindings),
        "secret_shapes": secret_shapes(env),
        "cnpg": cnpg(env, &bindings),
        // Set only by `Renderer::pitr_recovery_cluster`.
        "recovery": null,
        "secrets": bindings,
        "configs": container_configs(env),
        "ports": core_ports(env),
        "resources": resources(env),
        "core": env.services.enabled().iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        "labels": {
            "app.kubernetes.io/part-of": env.project,
            "app.kubernetes.io/managed-by": "controlplane",
        },
        "alerting": super::monitoring::alerting(env),
        "alertmanager_webhook_url_file": ALERTMANAGER_WEBHOOK_URL_FILE,
        "boards": super::monitoring::boards(env),
        "tls": tls(env),
        "app_env": app_platform_env(env),
    })
}

/// Each app's platform-given environment ([`crate::appenv`]) as the templates write
/// it: `k8s` with the credential as `$(VAR)` (Kubernetes expands it from the Secret
/// bound before it), `compose` as `${VAR}` (compose interpolates it).
fn app_platform_env(env: &Environment) -> Value {
    let ca = format!("{TLS_DIR}/ca.crt");
    let dial = crate::appenv::in_cluster_dial(env, &ca);
    let mut out = serde_json::Map::new();
    for (name, app) in &env.apps {
        let vars: Vec<Value> = crate::appenv::app_env(name, app, &dial)
            .into_iter()
            .map(|(k, v)| match v {
                crate::appenv::AppValue::Plain { value } => {
                    json!({"var": k, "k8s": value, "compose": value})
                }
                crate::appenv::AppValue::WithSecret {
                    template,
                    setting,
                    reference,
                    var,
                } => {
                    let cv = compose_var(&setting, &reference);
                    json!({
                        "var": k,
                        "k8s": template.replace(crate::appenv::SECRET, &format!("$({var})")),
                        "compose": template.replace(
                            crate::appenv::SECRET,
                            &format!("${{{cv}:?set {cv} ({setting})}}"),
                        ),
                    })
                }
            })
            .collect();
        out.insert(name.to_string(), Value::Array(vars));
    }
    Value::Object(out)
}
