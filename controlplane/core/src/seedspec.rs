//! What the seeder wants to exist, as plan [`Resource`]s: JetStream streams, Vault
//! mounts/keys/policies/AppRole/audit device, Redis ACL users, and per-tenant parts.
//!
//! Pure: the seeder observes the services, feeds both sides to [`crate::plan::plan`],
//! and applies the steps. Keeping the wanted state here means `plan` can show stream,
//! Vault and ACL changes next to container changes, and tests can check the exact
//! policies without a server.

use serde_json::{Value, json};

use crate::model::{
    Environment, PolicyRule, Stream, StreamDiscard, StreamRetention, StreamStorage, VaultCapability,
};
use crate::names::{ServiceName, StreamName};
use crate::plan::{Layer, Resource, ResourceId, UpdateMode};

fn core(name: &str) -> Option<ServiceName> {
    Some(ServiceName::new(name).expect("core service names are valid"))
}

/// The canonical spec of a stream, as JetStream's config compares.
pub fn stream_spec(s: &Stream) -> Value {
    json!({
        "subjects": s.subjects,
        "retention": match s.retention {
            StreamRetention::Limits => "limits",
            StreamRetention::Interest => "interest",
            StreamRetention::Workqueue => "workqueue",
        },
        "max_age_secs": s.max_age.as_secs(),
        "max_bytes": s.max_bytes.map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX)),
        "max_msgs": s.max_msgs.unwrap_or(-1),
        "storage": match s.storage { StreamStorage::File => "file", StreamStorage::Memory => "memory" },
        "replicas": s.replicas,
        "discard": match s.discard { StreamDiscard::Old => "old", StreamDiscard::New => "new" },
        "duplicate_window_secs": s.duplicate_window.as_secs(),
    })
}

/// Fields JetStream cannot change on an existing stream.
pub const STREAM_FIXED_FIELDS: &[&str] = &["/storage", "/retention"];

/// One resource per stream.
pub fn streams(env: &Environment) -> Vec<Resource> {
    if env.services.nats.is_none() {
        return Vec::new();
    }
    env.streams
        .iter()
        .map(|(name, s)| Resource {
            id: ResourceId::new(Layer::Streams, "stream", name.as_str()),
            service: core("nats"),
            spec: stream_spec(s),
            update: UpdateMode::InPlaceExcept(
                STREAM_FIXED_FIELDS
                    .iter()
                    .map(|f| (*f).to_owned())
                    .collect(),
            ),
        })
        .collect()
}

/// The stream name a resource id refers to.
pub fn stream_name(id: &ResourceId) -> Option<StreamName> {
    (id.layer == Layer::Streams)
        .then(|| StreamName::new(&id.name).ok())
        .flatten()
}

fn capability(c: VaultCapability) -> &'static str {
    match c {
        VaultCapability::Create => "create",
        VaultCapability::Read => "read",
        VaultCapability::Update => "update",
        VaultCapability::Patch => "patch",
        VaultCapability::Delete => "delete",
        VaultCapability::List => "list",
        VaultCapability::Deny => "deny",
        VaultCapability::Sudo => "sudo",
    }
}

/// A Vault policy document (HCL) from rules, in a stable order.
pub fn policy_hcl(rules: &[PolicyRule]) -> String {
    let mut out = String::new();
    for r in rules {
        let mut caps: Vec<&str> = r.capabilities.iter().map(|c| capability(*c)).collect();
        caps.sort_unstable();
        caps.dedup();
        let caps = caps
            .iter()
            .map(|c| format!("\"{c}\""))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "path \"{}\" {{\n  capabilities = [{caps}]\n}}\n",
            r.path
        ));
    }
    out
}

/// The Vault policy backups run under.
pub const BACKUP_POLICY: &str = "controlplane-backup";
/// The token role that mints backup tokens (orphan, only [`BACKUP_POLICY`]).
pub const BACKUP_TOKEN_ROLE: &str = "controlplane-backup";
/// The transit key of the backup canary (holds no data: it only proves that a
/// restored Vault decrypts what the backed-up one encrypted).
pub const CANARY_KEY: &str = "controlplane-backup-canary";

/// The backup policy: exactly the raft snapshot, and the canary key's encrypt and
/// decrypt. Restoring (`snapshot-force`) needs more and is not in it.
pub fn backup_policy_hcl(transit_mount: &str) -> String {
    format!(
        "path \"sys/storage/raft/snapshot\" {{\n  capabilities = [\"read\"]\n}}\n\
         path \"{transit_mount}/encrypt/{CANARY_KEY}\" {{\n  capabilities = [\"update\"]\n}}\n\
         path \"{transit_mount}/decrypt/{CANARY_KEY}\" {{\n  capabilities = [\"update\"]\n}}\n"
    )
}

/// Vault configuration: mounts, global transit keys, policies, the app's AppRole and
/// the file audit device (enabled first, before anything holds tenant data).
pub fn vault(env: &Environment) -> Vec<Resource> {
    if env.services.vault.is_none() {
        return Vec::new();
    }
    let v = &env.vault;
    let svc = core("vault");
    let res = |kind: &str, name: &str, spec: Value, update: UpdateMode| Resource {
        id: ResourceId::new(Layer::Vault, kind, name),
        service: svc.clone(),
        spec,
        update,
    };
    let mut out = vec![
        res(
            "audit",
            "file",
            // The path is the server configuration's (`serverconf::vault_audit_path`).
            json!({"type": "file"}),
            UpdateMode::Replace,
        ),
        res(
            "mount",
            &v.kv_mount,
            json!({"type": "kv", "options": {"version": "2"}}),
            UpdateMode::InPlaceExcept(vec!["/type".into()]),
        ),
        res(
            "mount",
            &v.transit_mount,
            json!({"type": "transit"}),
            UpdateMode::InPlaceExcept(vec!["/type".into()]),
        ),
    ];
    let canary = CANARY_KEY.to_owned();
    for k in v.keys.iter().chain(std::iter::once(&canary)) {
        out.push(res(
            "transit-key",
            k,
            json!({"type": "aes256-gcm96", "exportable": false, "allow_plaintext_backup": false, "deletion_allowed": false}),
            UpdateMode::InPlaceExcept(vec!["/type".into(), "/exportable".into(), "/allow_plaintext_backup".into()]),
        ));
    }
    for (name, rules) in &v.policies {
        out.push(res(
            "policy",
            name,
            json!({"policy": policy_hcl(rules)}),
            UpdateMode::InPlace,
        ));
    }
    out.push(res(
        "policy",
        BACKUP_POLICY,
        json!({"policy": backup_policy_hcl(&v.transit_mount)}),
        UpdateMode::InPlace,
    ));
    out.push(res(
        "token-role",
        BACKUP_TOKEN_ROLE,
        json!({"allowed_policies": [BACKUP_POLICY], "orphan": true, "renewable": false}),
        UpdateMode::InPlace,
    ));
    for app in env.apps.values() {
        if let Some(a) = &app.uses.vault {
            out.push(res(
                "policy",
                &a.role,
                json!({"policy": app_policy_hcl(&v.kv_mount, &a.paths)}),
                UpdateMode::InPlace,
            ));
            out.push(res(
                "approle",
                &a.role,
                json!({
                    "token_policies": [a.role],
                    "token_ttl": v.app_role.token_ttl.as_secs(),
                    "token_max_ttl": v.app_role.token_max_ttl.as_secs(),
                    "secret_id_ttl": v.app_role.token_max_ttl.as_secs() * 6,
                    "token_type": "service",
                }),
                UpdateMode::InPlace,
            ));
        }
    }
    out.push(res(
        "approle",
        &v.app_role.name,
        json!({
            "token_policies": v.app_role.policies,
            "token_ttl": v.app_role.token_ttl.as_secs(),
            "token_max_ttl": v.app_role.token_max_ttl.as_secs(),
            "secret_id_ttl": v.app_role.token_max_ttl.as_secs() * 6,
            "token_type": "service",
        }),
        UpdateMode::InPlace,
    ));
    out
}

/// The Redis ACL rule text of the application user: tenant-prefixed keys and
/// channels only, no administrative or dangerous commands.
pub fn redis_app_acl() -> &'static str {
    "~t:* &t:* +@all -@admin -@dangerous"
}

/// Redis ACL users the seeder manages (the admin user is the driver's).
pub fn redis(env: &Environment) -> Vec<Resource> {
    // The app's Redis user carries the same name as its database role.
    redis_users(env, crate::roles::APP)
}

fn redis_users(env: &Environment, app_user: &str) -> Vec<Resource> {
    if env.services.redis.is_none() {
        return Vec::new();
    }
    let mut out = vec![Resource {
        id: ResourceId::new(Layer::Cache, "acl-user", app_user),
        service: core("redis"),
        spec: json!({"rules": redis_app_acl()}),
        update: UpdateMode::InPlace,
    }];
    for app in env.apps.values() {
        if let Some(r) = &app.uses.redis {
            out.push(Resource {
                id: ResourceId::new(Layer::Cache, "acl-user", &r.user),
                service: core("redis"),
                spec: json!({"rules": app_redis_acl(&r.prefix)}),
                update: UpdateMode::InPlace,
            });
        }
    }
    out
}

/// The Redis ACL rules of an app's own user: keys and channels under its prefix, no
/// administrative or dangerous commands (validation keeps glob characters out of
/// the prefix, so the pattern covers the prefix and nothing else).
pub fn app_redis_acl(prefix: &str) -> String {
    format!("~{prefix}* &{prefix}* +@all -@admin -@dangerous")
}

/// An app's Vault policy: read its KV paths (each and what is below it), list their
/// metadata; nothing else (no transit, no other app's or tenant's subtree).
pub fn app_policy_hcl(kv_mount: &str, paths: &[String]) -> String {
    let mut out = String::new();
    for p in paths {
        out.push_str(&format!(
            "path \"{kv_mount}/data/{p}\" {{\n  capabilities = [\"read\"]\n}}\n\
             path \"{kv_mount}/data/{p}/*\" {{\n  capabilities = [\"read\"]\n}}\n\
             path \"{kv_mount}/metadata/{p}/*\" {{\n  capabilities = [\"list\"]\n}}\n"
        ));
    }
    out
}

/// What an app role's password reads as in a plan when it matches its setting.
pub const APP_PASSWORD_MATCHES: &str = "matches the app's setting";

/// An app's PostgreSQL parts as the plan shows them: its role (login, no superuser,
/// no BYPASSRLS, `search_path` its schema) and its database (own or the platform's)
/// with its schema.
pub fn app_postgres(env: &Environment) -> Vec<Resource> {
    if env.services.postgres.is_none() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for app in env.apps.values() {
        if let Some(p) = &app.uses.postgres {
            out.push(Resource {
                id: ResourceId::new(Layer::Database, "app-role", &p.role),
                service: core("postgres"),
                spec: json!({
                    "login": true,
                    "bypassrls": false,
                    "search_path": p.schema,
                    "password": APP_PASSWORD_MATCHES,
                }),
                update: UpdateMode::InPlace,
            });
            out.push(Resource {
                id: ResourceId::new(
                    Layer::Database,
                    "app-schema",
                    format!("{}.{}", p.database, p.schema),
                ),
                service: core("postgres"),
                spec: json!({"usage": [p.role]}),
                update: UpdateMode::InPlace,
            });
        }
    }
    out
}

/// A tenant's identity as every service names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantNames {
    /// Transit key: `tenant-<id>`.
    pub transit_key: String,
    /// KV path prefix under the KV mount: `tenants/<id>/`.
    pub kv_prefix: String,
    /// Policy name: `tenant-<id>`.
    pub policy: String,
    /// Redis key prefix: `t:<id>:`.
    pub redis_prefix: String,
    /// Redis ACL user limited to that prefix: `tenant-<id>`.
    pub redis_user: String,
}

/// Names of a tenant's parts. `id` is the tenant's UUID (hyphenated).
pub fn tenant_names(id: &str) -> TenantNames {
    TenantNames {
        transit_key: format!("tenant-{id}"),
        kv_prefix: format!("tenants/{id}/"),
        policy: format!("tenant-{id}"),
        redis_prefix: format!("t:{id}:"),
        redis_user: format!("tenant-{id}"),
    }
}

/// A tenant's Vault policy: its KV subtree and its transit key, by exact name. A
/// glob such as `transit/encrypt/tenant-1*` would also match `tenant-10`; exact paths
/// (and a `/` before every `*`) cannot.
pub fn tenant_policy_hcl(env: &Environment, id: &str) -> String {
    let n = tenant_names(id);
    let kv = &env.vault.kv_mount;
    let transit = &env.vault.transit_mount;
    format!(
        "path \"{kv}/data/{p}*\" {{\n  capabilities = [\"create\", \"delete\", \"read\", \"update\"]\n}}\n\
         path \"{kv}/metadata/{p}*\" {{\n  capabilities = [\"delete\", \"list\", \"read\"]\n}}\n\
         path \"{transit}/encrypt/{k}\" {{\n  capabilities = [\"update\"]\n}}\n\
         path \"{transit}/decrypt/{k}\" {{\n  capabilities = [\"update\"]\n}}\n\
         path \"{transit}/datakey/wrapped/{k}\" {{\n  capabilities = [\"update\"]\n}}\n",
        p = n.kv_prefix,
        k = n.transit_key,
    )
}

/// The Redis ACL rules of a tenant's user.
pub fn tenant_redis_acl(id: &str) -> String {
    let p = tenant_names(id).redis_prefix;
    format!("~{p}* &{p}* +@all -@admin -@dangerous")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_policies_name_exact_keys_and_subtrees() {
        let id = "0b7c5b6e-1111-4222-8333-944455556666";
        let n = tenant_names(id);
        assert_eq!(n.transit_key, format!("tenant-{id}"));
        assert_eq!(n.redis_prefix, format!("t:{id}:"));
        assert_eq!(
            tenant_redis_acl(id),
            format!("~t:{id}:* &t:{id}:* +@all -@admin -@dangerous")
        );
    }

    #[test]
    fn policy_hcl_is_stable() {
        let rules = vec![PolicyRule {
            path: "secret/data/x/*".into(),
            capabilities: vec![
                VaultCapability::Read,
                VaultCapability::List,
                VaultCapability::Read,
            ],
        }];
        assert_eq!(
            policy_hcl(&rules),
            "path \"secret/data/x/*\" {\n  capabilities = [\"list\", \"read\"]\n}\n"
        );
    }
}
