//! Redis ACL users: the application user (rules from `cp_core::seedspec::redis`, keys
//! and channels under the per-tenant prefix `t:<tenant-id>:`, no administrative or
//! dangerous commands). The admin user is the driver's (it writes `users.acl`).
//!
//! Observe, compare, write: `ACL GETUSER` is compared with what is wanted (commands by
//! their effect, as the server's own categories define them, because Redis rewrites
//! rule text: `+@all -@admin -@dangerous` reads back as `+@all -@dangerous`); only a
//! difference leads to `ACL SETUSER <user> reset ...` and, when the server has an ACL
//! file, `ACL SAVE`, so a restart keeps the user.

use std::collections::{BTreeMap, BTreeSet};

use cp_core::model::Environment;
use cp_core::plan::{self, Action, Layer, Observed, ObservedState, Plan, Resource, ResourceId};
use cp_core::seedspec;
use cp_core::serverconf::REDIS_ADMIN_USER;
use cp_core::settings::SecretSetting;
use cp_runtime::resp::{Connection, Reply, RespError};
use cp_runtime::secrets::Secret;
use serde_json::{Value, json};
use sha2::Digest;

use crate::{RedisAccess, RedisStep, Report, SeedError, SeedErrorKind};

const SERVICE: &str = "redis";

/// An ACL user the seeder manages.
#[derive(Debug, Clone)]
pub struct AclUser {
    /// The user name.
    pub name: String,
    /// Its rules (keys, channels, commands), as `ACL SETUSER` takes them.
    pub rules: String,
    /// Its password (sent as a SHA-256 hash, never in clear).
    pub password: Secret,
}

/// The users the environment wants: the application user and each app's own user
/// (its password from `redis.app_users`; an app whose password was not resolved is
/// left out, never given another's).
pub fn wanted_users(redis: &RedisAccess, env: &Environment) -> Vec<AclUser> {
    seedspec::redis(env)
        .into_iter()
        .filter_map(|r| {
            let password = if r.id.name == cp_core::roles::APP {
                redis.app_password.clone()
            } else {
                redis.app_users.get(&r.id.name)?.clone()
            };
            Some(AclUser {
                name: r.id.name.clone(),
                rules: r.spec["rules"]
                    .as_str()
                    .unwrap_or(seedspec::redis_app_acl())
                    .to_owned(),
                password,
            })
        })
        .collect()
}

/// Sets up the environment's ACL users, changing only what differs.
pub async fn seed(redis: &RedisAccess, env: &Environment) -> Result<Report, SeedError> {
    if env.services.redis.is_none() {
        return Ok(Report::new(SERVICE));
    }
    let mut report = Report::new(SERVICE);
    let observed = observe(redis, env, &mut report).await?;
    let plan = plan::plan(&desired(env), &observed, false);
    let mut applied = apply(redis, env, &plan).await?;
    applied.trips(report.round_trips);
    Ok(applied)
}

/// The spec of a user as the plan compares it: enabled, password (whether it matches
/// the setting, never its value), key and channel patterns, the command rules.
fn user_spec(password: &str, rules: &[String]) -> Value {
    let (keys, channels, commands) = split_rules(rules);
    json!({
        "enabled": true,
        "password": password,
        "keys": keys,
        "channels": channels,
        "commands": commands.join(" "),
        "selectors": [],
    })
}

fn password_matches() -> String {
    format!("matches {}", SecretSetting::RedisApp.path())
}

/// The users the environment wants, as plan resources (pure).
pub fn desired(env: &Environment) -> Vec<Resource> {
    seedspec::redis(env)
        .into_iter()
        .map(|mut r| {
            let rules: Vec<String> = r.spec["rules"]
                .as_str()
                .unwrap_or(seedspec::redis_app_acl())
                .split_whitespace()
                .map(str::to_owned)
                .collect();
            r.spec = user_spec(&password_matches(), &rules);
            r
        })
        .collect()
}

/// Reads the wanted users with `ACL GETUSER` (never writes). Commands are judged by
/// their effect: a user whose rule text differs but allows exactly the same commands
/// is reported with the wanted text.
pub async fn observe(
    redis: &RedisAccess,
    env: &Environment,
    report: &mut Report,
) -> Result<Vec<Observed>, SeedError> {
    let mut c = connect_admin(redis, report).await?;
    let mut cats = Categories::default();
    let mut out = Vec::new();
    for want in wanted_users(redis, env) {
        let name = want.name.as_str();
        report.trips(1);
        let reply = c.command(&["ACL", "GETUSER", name]).await.map_err(|e| {
            failed(
                RedisStep::ReadUser {
                    name: name.to_owned(),
                },
                e,
            )
        })?;
        let Some(have) = parse_getuser(&reply) else {
            continue;
        };
        let field = |k: &str| have.get(k).cloned().unwrap_or_default();
        let flags = field("flags");
        let password = if field("passwords") == [sha256_hex(want.password.expose())] {
            password_matches()
        } else if flags.iter().any(|f| f == "nopass") {
            "none (nopass)".to_owned()
        } else {
            format!("differs from {}", SecretSetting::RedisApp.path())
        };
        let (hk, hc, _) = split_rules(&field("keys"));
        let (_, hc2, _) = split_rules(&field("channels"));
        let wanted: Vec<String> = want.rules.split_whitespace().map(str::to_owned).collect();
        let (_, _, wcmd) = split_rules(&wanted);
        let hcmd = field("commands");
        let commands = if hcmd == wcmd {
            wcmd.join(" ")
        } else {
            let referenced: Vec<&String> = hcmd.iter().chain(wcmd.iter()).collect();
            cats.load(&mut c, &referenced, report).await?;
            if cats.allowed(&hcmd) == cats.allowed(&wcmd) {
                wcmd.join(" ")
            } else {
                hcmd.join(" ")
            }
        };
        let channels: BTreeSet<String> = hc.union(&hc2).cloned().collect();
        out.push(Observed {
            id: ResourceId::new(Layer::Cache, "acl-user", name),
            spec: Some(json!({
                "enabled": flags.iter().any(|f| f == "on"),
                "password": password,
                "keys": hk,
                "channels": channels,
                "commands": commands,
                "selectors": field("selectors"),
            })),
            state: ObservedState::Present,
        });
    }
    Ok(out)
}

/// Applies the plan's steps (`ACL SETUSER <user> reset ...`), then persists with `ACL
/// SAVE` when the server has an ACL file, so a restart keeps the users.
pub async fn apply(
    redis: &RedisAccess,
    env: &Environment,
    plan: &Plan,
) -> Result<Report, SeedError> {
    let mut report = Report::new(SERVICE);
    if plan.is_empty() {
        return Ok(report);
    }
    let users = wanted_users(redis, env);
    let mut c = connect_admin(redis, &mut report).await?;
    for step in &plan.steps {
        let Some(user) = users.iter().find(|u| u.name == step.id.name) else {
            continue;
        };
        let what = match &step.action {
            Action::Create => format!("created Redis ACL user {}", user.name),
            Action::Update { changes } => {
                let fields: BTreeSet<&str> = changes
                    .iter()
                    .map(|c| {
                        c.path
                            .trim_start_matches('/')
                            .split('/')
                            .next()
                            .unwrap_or("")
                    })
                    .collect();
                format!(
                    "updated Redis ACL user {} ({} differed)",
                    user.name,
                    fields.into_iter().collect::<Vec<_>>().join(", ")
                )
            }
            _ => continue,
        };
        set_user(&mut c, user, &mut report).await?;
        report.change(what);
    }
    if report.changed() {
        persist(&mut c, &mut report).await?;
    }
    Ok(report)
}

/// Makes `users` exist exactly as given (tenants' users go the same way). Persists
/// with `ACL SAVE` when something changed and the server has an ACL file.
pub async fn ensure_users(redis: &RedisAccess, users: &[AclUser]) -> Result<Report, SeedError> {
    let mut report = Report::new(SERVICE);
    let mut c = connect_admin(redis, &mut report).await?;
    let mut cats = Categories::default();
    for u in users {
        ensure_user(&mut c, u, &mut cats, &mut report).await?;
    }
    if report.changed() {
        persist(&mut c, &mut report).await?;
    }
    Ok(report)
}

fn failed(step: RedisStep, source: RespError) -> SeedError {
    SeedErrorKind::Redis { step, source }.into()
}

/// Connects and authenticates as the admin user.
pub(crate) async fn connect_admin(
    redis: &RedisAccess,
    report: &mut Report,
) -> Result<Connection, SeedError> {
    let addr = redis.endpoint.addr();
    let mut c = Connection::connect_to(&redis.endpoint).await.map_err(|e| {
        SeedError::from(SeedErrorKind::RedisConnect {
            addr: addr.clone(),
            source: e,
        })
        .hint("is Redis up? run `controlplane up` (or `controlplane status`) first")
    })?;
    report.trips(1);
    c.command(&["AUTH", REDIS_ADMIN_USER, redis.admin_password.expose()])
        .await
        .map_err(|e| {
            failed(
                RedisStep::LogIn {
                    user: REDIS_ADMIN_USER.to_owned(),
                },
                e,
            )
            .hint(
                "`services.redis.admin_password` does not match the server's ACL file; \
                 `controlplane up` rewrites the admin user in users.acl",
            )
        })?;
    Ok(c)
}

fn sha256_hex(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// `ACL GETUSER` as a map; `None` when the user does not exist.
fn parse_getuser(reply: &Reply) -> Option<BTreeMap<String, Vec<String>>> {
    let Reply::Array(Some(items)) = reply else {
        return None;
    };
    let mut out = BTreeMap::new();
    for pair in items.chunks(2) {
        let [k, v] = pair else { continue };
        let Some(key) = k.text() else { continue };
        let values = match v {
            Reply::Array(Some(vs)) => vs.iter().filter_map(Reply::text).collect(),
            Reply::Array(None) | Reply::Bulk(None) => Vec::new(),
            other => other
                .text()
                .map(|t| t.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default(),
        };
        out.insert(key, values);
    }
    Some(out)
}

/// Rule tokens of one kind: keys (`~`, `%`), channels (`&`), commands (`+`, `-`,
/// `allcommands`, `nocommands`).
fn split_rules(rules: &[String]) -> (BTreeSet<String>, BTreeSet<String>, Vec<String>) {
    let (mut keys, mut channels, mut commands) = (BTreeSet::new(), BTreeSet::new(), Vec::new());
    for r in rules {
        match r.as_str() {
            "allkeys" => {
                keys.insert("~*".to_owned());
            }
            "allchannels" => {
                channels.insert("&*".to_owned());
            }
            "allcommands" => commands.push("+@all".to_owned()),
            "nocommands" => commands.push("-@all".to_owned()),
            t if t.starts_with('~') || t.starts_with('%') => {
                keys.insert(t.to_owned());
            }
            t if t.starts_with('&') => {
                channels.insert(t.to_owned());
            }
            t if t.starts_with('+') || t.starts_with('-') => commands.push(t.to_owned()),
            _ => {}
        }
    }
    (keys, channels, commands)
}

/// The server's command table, fetched once and only when rule texts differ.
#[derive(Default)]
struct Categories {
    all: Option<BTreeSet<String>>,
    members: BTreeMap<String, BTreeSet<String>>,
}

impl Categories {
    async fn load(
        &mut self,
        c: &mut Connection,
        rules: &[&String],
        report: &mut Report,
    ) -> Result<(), SeedError> {
        let list = |r: Reply| match r {
            Reply::Array(Some(items)) => items.iter().filter_map(Reply::text).collect(),
            _ => BTreeSet::new(),
        };
        if self.all.is_none() {
            report.trips(1);
            let r = c
                .command(&["COMMAND", "LIST"])
                .await
                .map_err(|e| failed(RedisStep::ListCommands, e))?;
            self.all = Some(list(r));
        }
        for r in rules {
            let Some(cat) = r[1..].strip_prefix('@') else {
                continue;
            };
            if cat == "all" || self.members.contains_key(cat) {
                continue;
            }
            report.trips(1);
            let r = c.command(&["ACL", "CAT", cat]).await.map_err(|e| {
                failed(
                    RedisStep::ListCategory {
                        category: cat.to_string(),
                    },
                    e,
                )
            })?;
            let members: BTreeSet<String> = list(r);
            if let Some(all) = &mut self.all {
                all.extend(members.iter().cloned());
            }
            self.members.insert(cat.to_owned(), members);
        }
        Ok(())
    }

    /// The commands (and subcommands, `config|get`) the rules allow.
    fn allowed(&self, rules: &[String]) -> BTreeSet<String> {
        let all = self.all.clone().unwrap_or_default();
        let mut set = BTreeSet::new();
        for r in rules {
            let (add, what) = (r.starts_with('+'), &r[1..]);
            let affected: BTreeSet<String> = match what.strip_prefix('@') {
                Some("all") => all.clone(),
                Some(cat) => self.members.get(cat).cloned().unwrap_or_default(),
                None => all
                    .iter()
                    .filter(|c| *c == what || c.starts_with(&format!("{what}|")))
                    .cloned()
                    .chain(std::iter::once(what.to_owned()))
                    .collect(),
            };
            if add {
                set.extend(affected);
            } else {
                set.retain(|c| !affected.contains(c));
            }
        }
        set
    }
}

/// Why the existing user differs from the wanted one (`None`: it matches).
async fn difference(
    c: &mut Connection,
    have: &BTreeMap<String, Vec<String>>,
    want: &AclUser,
    cats: &mut Categories,
    report: &mut Report,
) -> Result<Option<String>, SeedError> {
    let field = |k: &str| have.get(k).cloned().unwrap_or_default();
    let flags = field("flags");
    if !flags.iter().any(|f| f == "on") || flags.iter().any(|f| f == "nopass") {
        return Ok(Some("flags".into()));
    }
    if field("passwords") != [sha256_hex(want.password.expose())] {
        return Ok(Some("password".into()));
    }
    if !field("selectors").is_empty() {
        return Ok(Some("selectors".into()));
    }
    let wanted: Vec<String> = want.rules.split_whitespace().map(str::to_owned).collect();
    let (wk, wc, wcmd) = split_rules(&wanted);
    let (hk, hc, _) = split_rules(&field("keys"));
    let (_, hc2, _) = split_rules(&field("channels"));
    if wk != hk {
        return Ok(Some("key patterns".into()));
    }
    if wc != hc.union(&hc2).cloned().collect() {
        return Ok(Some("channel patterns".into()));
    }
    let hcmd = field("commands");
    if hcmd != wcmd {
        let referenced: Vec<&String> = hcmd.iter().chain(wcmd.iter()).collect();
        cats.load(c, &referenced, report).await?;
        if cats.allowed(&hcmd) != cats.allowed(&wcmd) {
            return Ok(Some("commands".into()));
        }
    }
    Ok(None)
}

async fn ensure_user(
    c: &mut Connection,
    user: &AclUser,
    cats: &mut Categories,
    report: &mut Report,
) -> Result<(), SeedError> {
    let name = user.name.as_str();
    report.trips(1);
    let reply = c.command(&["ACL", "GETUSER", name]).await.map_err(|e| {
        failed(
            RedisStep::ReadUser {
                name: name.to_owned(),
            },
            e,
        )
    })?;
    let what = match parse_getuser(&reply) {
        None => format!("created Redis ACL user {name}"),
        Some(have) => match difference(c, &have, user, cats, report).await? {
            None => return Ok(()),
            Some(field) => format!("updated Redis ACL user {name} ({field} differed)"),
        },
    };
    set_user(c, user, report).await?;
    report.change(what);
    Ok(())
}

async fn set_user(
    c: &mut Connection,
    user: &AclUser,
    report: &mut Report,
) -> Result<(), SeedError> {
    let name = user.name.as_str();
    let hash = format!("#{}", sha256_hex(user.password.expose()));
    let mut args = vec!["ACL", "SETUSER", name, "reset", "on", hash.as_str()];
    args.extend(user.rules.split_whitespace());
    report.trips(1);
    c.command(&args).await.map_err(|e| {
        failed(
            RedisStep::SetUser {
                name: name.to_owned(),
            },
            e,
        )
        .hint("check the rule text in cp_core::seedspec (Redis names the bad rule above)")
    })?;
    Ok(())
}

/// `ACL SAVE` when the server keeps users in an ACL file; without one (a container
/// configured by command-line flags), users live until the next restart and the next
/// seed sets them again.
pub(crate) async fn persist(c: &mut Connection, report: &mut Report) -> Result<(), SeedError> {
    report.trips(1);
    let reply = c
        .command(&["CONFIG", "GET", "aclfile"])
        .await
        .map_err(|e| failed(RedisStep::ReadAclFile, e))?;
    let file = match reply {
        Reply::Array(Some(items)) => items.get(1).and_then(Reply::text).unwrap_or_default(),
        _ => String::new(),
    };
    if file.is_empty() {
        return Ok(());
    }
    report.trips(1);
    c.command(&["ACL", "SAVE"]).await.map_err(|e| {
        failed(RedisStep::SaveAcl { file: file.clone() }, e).hint(format!(
            "check that the Redis server can write {file} (its directory and mode)"
        ))
    })?;
    keep_private(std::path::Path::new(&file));
    Ok(())
}

/// `ACL SAVE` has Redis write the file itself, opened with mode 0644 and renamed over
/// the driver's 0600 copy; it holds the admin password's hash. When the server runs
/// on this machine as this user (the process platform), the file is ours: make it
/// 0600 again. Anything else (a container's path, another user's file) is left alone.
fn keep_private(file: &std::path::Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // `/proc/self` belongs to this process's effective user.
    let (Ok(meta), Ok(me)) = (std::fs::metadata(file), std::fs::metadata("/proc/self")) else {
        return;
    };
    if meta.is_file() && meta.uid() == me.uid() && meta.mode() & 0o077 != 0 {
        let _ = std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn rules_split_by_kind() {
        let (k, c, cmd) = split_rules(&v("~t:* &t:* +@all -@admin -@dangerous allkeys"));
        assert_eq!(k, BTreeSet::from(["~t:*".to_owned(), "~*".to_owned()]));
        assert_eq!(c, BTreeSet::from(["&t:*".to_owned()]));
        assert_eq!(cmd, v("+@all -@admin -@dangerous"));
    }

    #[test]
    fn commands_compare_by_effect() {
        let cats = Categories {
            all: Some(
                [
                    "get",
                    "set",
                    "config",
                    "config|get",
                    "acl|setuser",
                    "flushall",
                ]
                .map(String::from)
                .into(),
            ),
            members: BTreeMap::from([
                (
                    "admin".to_owned(),
                    ["config|get", "acl|setuser"].map(String::from).into(),
                ),
                (
                    "dangerous".to_owned(),
                    ["config|get", "acl|setuser", "flushall"]
                        .map(String::from)
                        .into(),
                ),
            ]),
        };
        let a = cats.allowed(&v("+@all -@admin -@dangerous"));
        assert_eq!(a, cats.allowed(&v("+@all -@dangerous")));
        assert_eq!(a, ["get", "set", "config"].map(String::from).into());
        assert_ne!(a, cats.allowed(&v("+@all -@admin")));
        assert!(!cats.allowed(&v("+@all -config")).contains("config|get"));
    }
}
