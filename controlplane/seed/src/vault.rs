//! Vault (OpenBao or Vault) configuration: the file audit device (first, before
//! anything holds tenant data), KV v2 and transit mounts, the global `anumate-*`
//! transit keys (never exportable, never plaintext-backup-able), least-privilege
//! policies, the app's AppRole with finite TTLs, and each tenant's key, KV subtree and
//! policy.
//!
//! The wanted state comes from [`cp_core::seedspec::vault`]; this module observes the
//! same resources over Vault's HTTP API, lets the pure planner compare the two, and
//! applies the steps. A change Vault cannot make (a mount's type, a key made
//! exportable) is a blocked step and an error, never silently skipped.

use std::time::Duration;

use cp_core::model::Environment;
use cp_core::plan::{self, Action, Observed, ObservedState, Resource};
use cp_core::seedspec::{self, tenant_names, tenant_policy_hcl};
use serde_json::{Value, json};

use crate::{Report, SeedError, SeedErrorKind, VaultAccess};

const SERVICE: &str = "vault";

/// The Vault client (the one in `cp_runtime`, shared with backups, probes and the
/// server).
pub type VaultClient = cp_runtime::vault::Client;

/// A client holding the access's token; fails with what to do when there is none.
pub fn client(access: &VaultAccess) -> Result<VaultClient, SeedError> {
    Ok(access.client()?)
}

/// The policy a non-root token needs to run `seed` and manage tenants.
pub const SEEDER_POLICY: &str = "controlplane-seeder";

fn seeder_policy_hcl(env: &Environment) -> String {
    let kv = &env.vault.kv_mount;
    let transit = &env.vault.transit_mount;
    format!(
        "path \"sys/audit\" {{\n  capabilities = [\"read\", \"sudo\"]\n}}\n\
         path \"sys/audit/*\" {{\n  capabilities = [\"create\", \"update\", \"delete\", \"sudo\"]\n}}\n\
         path \"sys/mounts\" {{\n  capabilities = [\"read\"]\n}}\n\
         path \"sys/mounts/*\" {{\n  capabilities = [\"create\", \"read\", \"update\"]\n}}\n\
         path \"sys/auth\" {{\n  capabilities = [\"read\"]\n}}\n\
         path \"sys/auth/approle\" {{\n  capabilities = [\"create\", \"update\", \"sudo\"]\n}}\n\
         path \"sys/policies/acl/*\" {{\n  capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"]\n}}\n\
         path \"auth/approle/role/*\" {{\n  capabilities = [\"create\", \"read\", \"update\"]\n}}\n\
         path \"auth/token/roles/*\" {{\n  capabilities = [\"create\", \"read\", \"update\"]\n}}\n\
         path \"{transit}/keys/*\" {{\n  capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"]\n}}\n\
         path \"{kv}/data/tenants/*\" {{\n  capabilities = [\"create\", \"read\", \"update\"]\n}}\n\
         path \"{kv}/metadata/tenants/*\" {{\n  capabilities = [\"read\", \"list\", \"delete\"]\n}}\n"
    )
}

/// The wanted resources plus the seeder policy.
fn wanted(env: &Environment) -> Vec<Resource> {
    let mut out = seedspec::vault(env);
    if !out.is_empty() {
        out.push(Resource {
            id: cp_core::plan::ResourceId::new(
                cp_core::plan::Layer::Vault,
                "policy",
                SEEDER_POLICY,
            ),
            service: out[0].service.clone(),
            spec: json!({"policy": seeder_policy_hcl(env)}),
            update: cp_core::plan::UpdateMode::InPlace,
        });
    }
    out
}

fn present(r: &Resource, spec: Value) -> Observed {
    Observed {
        id: r.id.clone(),
        spec: Some(spec),
        state: ObservedState::Present,
    }
}

/// Observes each wanted resource in Vault.
async fn observe(c: &VaultClient, wanted: &[Resource]) -> Result<Vec<Observed>, SeedError> {
    let audits = c.read("sys/audit").await?.unwrap_or(Value::Null);
    let mounts = c.read("sys/mounts").await?.unwrap_or(Value::Null);
    // Newer servers answer under `data`; older ones at the top level too.
    let table = |v: &Value, key: &str| -> Option<Value> {
        v.get("data")
            .and_then(|d| d.get(key))
            .or_else(|| v.get(key))
            .cloned()
    };
    let mut out = Vec::new();
    for r in wanted {
        let name = &r.id.name;
        let found = match r.id.kind.as_str() {
            "audit" => table(&audits, &format!("{name}/")).map(|a| json!({"type": a["type"]})),
            "mount" => table(&mounts, &format!("{name}/")).map(|m| {
                let mut spec = json!({"type": m["type"]});
                if r.spec.get("options").is_some() {
                    spec["options"] =
                        json!({"version": m["options"]["version"].as_str().unwrap_or("1")});
                }
                spec
            }),
            "transit-key" => {
                match c
                    .read(&format!("{}/keys/{name}", transit_mount_of(wanted)))
                    .await?
                {
                    None => None,
                    Some(k) => {
                        let d = &k["data"];
                        Some(json!({
                            "type": d["type"],
                            "exportable": d["exportable"],
                            "allow_plaintext_backup": d["allow_plaintext_backup"],
                            "deletion_allowed": d["deletion_allowed"],
                        }))
                    }
                }
            }
            "policy" => c
                .read(&format!("sys/policies/acl/{name}"))
                .await?
                .map(|p| json!({"policy": p["data"]["policy"]})),
            "approle" => match c.read(&format!("auth/approle/role/{name}")).await? {
                None => None,
                Some(a) => {
                    let d = &a["data"];
                    Some(json!({
                        "token_policies": d["token_policies"],
                        "token_ttl": d["token_ttl"],
                        "token_max_ttl": d["token_max_ttl"],
                        "secret_id_ttl": d["secret_id_ttl"],
                        "token_type": d["token_type"],
                    }))
                }
            },
            "token-role" => c.read(&format!("auth/token/roles/{name}")).await?.map(|t| {
                let d = &t["data"];
                json!({
                    "allowed_policies": d["allowed_policies"],
                    "orphan": d["orphan"],
                    "renewable": d["renewable"],
                })
            }),
            other => {
                return Err(SeedErrorKind::UnknownVaultResource {
                    kind: other.to_owned(),
                }
                .into());
            }
        };
        if let Some(spec) = found {
            out.push(present(r, spec));
        }
    }
    Ok(out)
}

fn transit_mount_of(wanted: &[Resource]) -> &str {
    wanted
        .iter()
        .find(|r| r.id.kind == "mount" && r.spec["type"] == "transit")
        .map_or("transit", |r| r.id.name.as_str())
}

/// Makes one planned change.
async fn apply(
    c: &VaultClient,
    r: &Resource,
    replace: bool,
    transit: &str,
) -> Result<(), SeedError> {
    let name = &r.id.name;
    match r.id.kind.as_str() {
        "audit" => {
            // The server configuration declares the device (OpenBao refuses to
            // enable one through the API); a server without it is misconfigured.
            return Err(SeedError::from(SeedErrorKind::NoAuditDevice)
                .hint("declare it in the server configuration (`audit \"file\" \"file\" { options { file_path = ... } }`, as controlplane's rendered config does) and restart vault; on HashiCorp Vault run `vault audit enable file file_path=...`"));
        }
        "mount" => {
            if replace {
                c.write(
                    &format!("sys/mounts/{name}/tune"),
                    &json!({"options": r.spec["options"]}),
                )
                .await?;
            } else {
                c.write(&format!("sys/mounts/{name}"), &r.spec).await?;
            }
        }
        "transit-key" => {
            if !replace {
                c.write(&format!("{transit}/keys/{name}"), &json!({"type": r.spec["type"], "exportable": false, "allow_plaintext_backup": false}))
                    .await?;
            }
            c.write(
                &format!("{transit}/keys/{name}/config"),
                &json!({"deletion_allowed": r.spec["deletion_allowed"]}),
            )
            .await?;
        }
        "policy" => {
            c.write(&format!("sys/policies/acl/{name}"), &r.spec)
                .await?;
        }
        "token-role" => {
            c.write(&format!("auth/token/roles/{name}"), &r.spec)
                .await?;
        }
        "approle" => {
            let auths = c.read("sys/auth").await?.unwrap_or(Value::Null);
            let enabled = auths.get("approle/").is_some()
                || auths.get("data").and_then(|d| d.get("approle/")).is_some();
            if !enabled {
                c.write("sys/auth/approle", &json!({"type": "approle"}))
                    .await?;
            }
            c.write(&format!("auth/approle/role/{name}"), &r.spec)
                .await?;
        }
        other => {
            return Err(SeedErrorKind::UnknownVaultResource {
                kind: other.to_owned(),
            }
            .into());
        }
    }
    Ok(())
}

/// Observes what `seed` would change, without changing anything.
pub async fn plan(access: &VaultAccess, env: &Environment) -> Result<plan::Plan, SeedError> {
    let observed = observe_layer(access, env, &mut Report::new(SERVICE)).await?;
    Ok(plan::plan(&desired(env), &observed, false))
}

/// What the Vault layer wants (pure): `seedspec::vault` plus the seeder's own policy.
pub fn desired(env: &Environment) -> Vec<Resource> {
    wanted(env)
}

/// Observes every wanted resource over Vault's API (reads only).
pub async fn observe_layer(
    access: &VaultAccess,
    env: &Environment,
    report: &mut Report,
) -> Result<Vec<Observed>, SeedError> {
    let c = client(access)?;
    let seen = observe(&c, &wanted(env)).await;
    report.trips(c.round_trips());
    seen
}

/// Creates or changes what the environment declares. Seeding twice changes nothing.
pub async fn seed(access: &VaultAccess, env: &Environment) -> Result<Report, SeedError> {
    let mut observing = Report::new(SERVICE);
    let seen = observe_layer(access, env, &mut observing).await?;
    let plan = plan::plan(&wanted(env), &seen, false);
    let mut report = apply_plan(access, env, &plan).await?;
    report.trips(observing.round_trips);
    Ok(report)
}

/// Applies a Vault plan: refuses a blocked step before anything is touched, then the
/// audit device, mounts, keys, policies and the AppRole, in that order.
pub async fn apply_plan(
    access: &VaultAccess,
    env: &Environment,
    plan: &plan::Plan,
) -> Result<Report, SeedError> {
    let mut report = Report::new(SERVICE);
    if plan.is_empty() {
        return Ok(report);
    }
    let c = client(access)?;
    let want = wanted(env);
    if let Some((step, reason)) = plan.steps.iter().find_map(|s| match &s.action {
        Action::Blocked { reason, .. } => Some((s.id.to_string(), reason.clone())),
        _ => None,
    }) {
        return Err(SeedErrorKind::VaultBlocked { step, reason }.into());
    }
    // The planner sorts by id; audit first, then mounts, then what lives in them.
    let order = |kind: &str| match kind {
        "audit" => 0,
        "mount" => 1,
        "transit-key" => 2,
        "policy" => 3,
        _ => 4,
    };
    let mut steps: Vec<_> = plan.steps.iter().collect();
    steps.sort_by_key(|s| order(&s.id.kind));
    let transit = transit_mount_of(&want).to_owned();
    for s in steps {
        let Some(r) = &s.desired else { continue };
        let (replace, verb) = match &s.action {
            Action::Create => (false, "created"),
            Action::Update { .. } | Action::Replace { .. } => (true, "updated"),
            _ => continue,
        };
        apply(&c, r, replace, &transit).await?;
        report.change(format!("{verb} {} {}", r.id.kind, r.id.name));
    }
    report.trips(c.round_trips());
    Ok(report)
}

/// True when the token is a root token (its policies include `root`).
pub async fn token_is_root(access: &VaultAccess) -> Result<bool, SeedError> {
    let c = client(access)?;
    let me = c
        .read("auth/token/lookup-self")
        .await?
        .unwrap_or(Value::Null);
    Ok(me["data"]["policies"]
        .as_array()
        .is_some_and(|p| p.iter().any(|x| x == "root")))
}

/// Revokes the token the seeder holds when it is a root token (outside dev, after
/// seeding: a root token should not outlive bootstrap). Returns whether it did.
pub async fn revoke_root(access: &VaultAccess) -> Result<bool, SeedError> {
    if !token_is_root(access).await? {
        return Ok(false);
    }
    let c = client(access)?;
    c.write("auth/token/revoke-self", &json!({})).await?;
    Ok(true)
}

/// What Vault holds of one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TenantParts {
    /// Its transit key exists.
    pub key: bool,
    /// Its policy exists.
    pub policy: bool,
    /// Its KV subtree has an entry.
    pub kv: bool,
}

fn kv_meta_path(env: &Environment, id: &str) -> String {
    format!(
        "{}/data/{}meta",
        env.vault.kv_mount,
        tenant_names(id).kv_prefix
    )
}

/// Observes a tenant's parts.
pub async fn tenant_parts(
    c: &VaultClient,
    env: &Environment,
    id: &str,
) -> Result<TenantParts, SeedError> {
    let n = tenant_names(id);
    let v = &env.vault;
    Ok(TenantParts {
        key: c
            .read(&format!("{}/keys/{}", v.transit_mount, n.transit_key))
            .await?
            .is_some(),
        policy: c
            .read(&format!("sys/policies/acl/{}", n.policy))
            .await?
            .is_some(),
        kv: c.read(&kv_meta_path(env, id)).await?.is_some(),
    })
}

/// Creates a tenant's transit key, policy and KV subtree (each only if missing).
pub async fn create_tenant(
    access: &VaultAccess,
    env: &Environment,
    id: &str,
    slug: &str,
) -> Result<Report, SeedError> {
    let mut report = Report::new(SERVICE);
    let c = client(access)?;
    let n = tenant_names(id);
    let v = &env.vault;
    let key_path = format!("{}/keys/{}", v.transit_mount, n.transit_key);
    if c.read(&key_path).await?.is_none() {
        c.write(
            &key_path,
            &json!({"type": "aes256-gcm96", "exportable": false, "allow_plaintext_backup": false}),
        )
        .await?;
        report.change(format!("created transit key {}", n.transit_key));
    }
    let hcl = tenant_policy_hcl(env, id);
    let policy_path = format!("sys/policies/acl/{}", n.policy);
    let current = c
        .read(&policy_path)
        .await?
        .map(|p| p["data"]["policy"].clone());
    if current.as_ref().and_then(Value::as_str) != Some(hcl.as_str()) {
        c.write(&policy_path, &json!({"policy": hcl})).await?;
        report.change(format!("wrote policy {}", n.policy));
    }
    let meta = kv_meta_path(env, id);
    if c.read(&meta).await?.is_none() {
        c.write(&meta, &json!({"data": {"tenant_id": id, "slug": slug}}))
            .await?;
        report.change(format!("created {}/{}", v.kv_mount, n.kv_prefix));
    }
    report.trips(c.round_trips());
    Ok(report)
}

/// Destroys a tenant's transit key (crypto-shredding everything encrypted with it),
/// its KV subtree and its policy. Missing parts are fine: a crashed delete re-runs.
pub async fn delete_tenant(
    access: &VaultAccess,
    env: &Environment,
    id: &str,
) -> Result<Report, SeedError> {
    let mut report = Report::new(SERVICE);
    let c = client(access)?;
    let n = tenant_names(id);
    let v = &env.vault;
    let key_path = format!("{}/keys/{}", v.transit_mount, n.transit_key);
    if c.read(&key_path).await?.is_some() {
        c.write(
            &format!("{key_path}/config"),
            &json!({"deletion_allowed": true}),
        )
        .await?;
        c.delete(&key_path).await?;
        report.change(format!("destroyed transit key {}", n.transit_key));
    }
    let root = format!("{}/metadata/{}", v.kv_mount, n.kv_prefix);
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        for k in c.list(&format!("{root}{rel}")).await? {
            if k.ends_with('/') {
                stack.push(format!("{rel}{k}"));
            } else {
                c.delete(&format!("{root}{rel}{k}")).await?;
                report.change(format!("deleted {}/{}{rel}{k}", v.kv_mount, n.kv_prefix));
            }
        }
    }
    if c.read(&format!("sys/policies/acl/{}", n.policy))
        .await?
        .is_some()
    {
        c.delete(&format!("sys/policies/acl/{}", n.policy)).await?;
        report.change(format!("deleted policy {}", n.policy));
    }
    report.trips(c.round_trips());
    Ok(report)
}

/// A token for a tenant's policy only (tests and the server's tenant-scoped work).
pub async fn tenant_token(
    access: &VaultAccess,
    id: &str,
    ttl: Duration,
) -> Result<crate::Secret, SeedError> {
    let c = client(access)?;
    let answer = c
        .write(
            "auth/token/create",
            &json!({"policies": [tenant_names(id).policy], "no_default_policy": true, "ttl": format!("{}s", ttl.as_secs()), "renewable": false}),
        )
        .await?;
    answer["auth"]["client_token"]
        .as_str()
        .map(crate::Secret::new)
        .ok_or_else(|| {
            SeedErrorKind::VaultAnswer {
                request: "token create",
                missing: "a token",
            }
            .into()
        })
}

/// Logs in as the app through its AppRole (a fresh secret id each time): the token
/// and its TTL in seconds.
pub async fn app_login(
    access: &VaultAccess,
    env: &Environment,
) -> Result<(crate::Secret, u64), SeedError> {
    role_login(access, &env.vault.app_role.name).await
}

/// Logs in through the AppRole `role` (an app's own is `app-<app>`) with a fresh
/// secret id: the token and its TTL in seconds.
pub async fn role_login(
    access: &VaultAccess,
    role: &str,
) -> Result<(crate::Secret, u64), SeedError> {
    let c = client(access)?;
    let role_id = c
        .read(&format!("auth/approle/role/{role}/role-id"))
        .await?
        .and_then(|v| v["data"]["role_id"].as_str().map(str::to_owned))
        .ok_or_else(|| {
            SeedError::from(SeedErrorKind::NoRoleId {
                role: role.to_string(),
            })
            .hint("run `controlplane seed`")
        })?;
    let secret = c
        .write(&format!("auth/approle/role/{role}/secret-id"), &json!({}))
        .await?;
    let secret_id = secret["data"]["secret_id"].as_str().ok_or_else(|| {
        SeedError::from(SeedErrorKind::VaultAnswer {
            request: "secret-id",
            missing: "a secret id",
        })
    })?;
    let login = c
        .write(
            "auth/approle/login",
            &json!({"role_id": role_id, "secret_id": secret_id}),
        )
        .await?;
    let token = login["auth"]["client_token"].as_str().ok_or_else(|| {
        SeedError::from(SeedErrorKind::VaultAnswer {
            request: "AppRole login",
            missing: "a token",
        })
    })?;
    let ttl = login["auth"]["lease_duration"].as_u64().unwrap_or(0);
    Ok((crate::Secret::new(token), ttl))
}
