//! Rotation (`controlplane rotate keys|passwords|certificates|all`, and
//! `rotation.schedule` run by the jobs service): the servers' certificates (renewed by
//! the driver and reloaded without dropping connections: those past
//! `tls.renew_at_percent` on a scheduled run, every one when asked), transit keys through `cp_seed::rotate` (a new version, the
//! platform's own ciphertexts rewrapped, then `min_decryption_version` raised), and the
//! platform's passwords: a new value applied to the server, then written where the
//! value lives (`secrets.json` for `generate`, the KV entry for `vault://`), and taken
//! back on the server when it cannot be written, so no password is half-rotated.
//! `env://` and plaintext settings cannot be written: the whole request is refused
//! before anything changes, naming the variable to update.
//!
//! When each password and key was last rotated is kept in `rotation/state.json`
//! (0600); the key ages feed `controlplane_transit_key_age_seconds`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cp_core::model::Environment;
use cp_core::names::CoreKind;
use cp_core::settings::SecretSetting;
use cp_runtime::access::Access;
use cp_runtime::secrets::{self, Secret};
use cp_runtime::state::StateDir;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::session::Session;
use crate::views::rotate::{
    CertificateRenewalView, KeyRotationView, PasswordRotationView, RotateTarget, RotationView,
};
use cp_core::envplan::RotationDue;

/// Where the rotation record lives in the state directory.
pub const STATE_FILE: &str = "rotation/state.json";

/// What is recorded about rotations.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    /// When each password setting (by key path) was last rotated.
    #[serde(default)]
    pub passwords: BTreeMap<String, DateTime<Utc>>,
    /// Each managed transit key's newest version's creation time (unix seconds), as
    /// last read.
    #[serde(default)]
    pub keys: BTreeMap<String, i64>,
}

impl Record {
    /// The record in `dir` (empty when absent or unreadable).
    pub fn read(dir: &StateDir) -> Self {
        dir.read(STATE_FILE)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    fn write(&self, dir: &StateDir) -> Result<(), AppError> {
        dir.write_private(
            STATE_FILE,
            &serde_json::to_vec_pretty(self).expect("serializes"),
        )?;
        Ok(())
    }
}

/// The password settings rotation manages (NATS's are read by nats-server from its
/// environment at start, so a new value needs a restart: not rotated here yet).
fn password_settings(env: &Environment, services: &[CoreKind]) -> Vec<SecretSetting> {
    // The superuser and Redis's admin last: the others are changed with them.
    [
        SecretSetting::PostgresAdmin,
        SecretSetting::PostgresApp,
        SecretSetting::PostgresReadonly,
        SecretSetting::PostgresBackup,
        SecretSetting::PostgresSuperuser,
        SecretSetting::RedisApp,
        SecretSetting::RedisAdmin,
    ]
    .into_iter()
    .filter(|s| services.is_empty() || services.contains(&s.service()))
    .filter(|s| s.reference(env).is_some())
    .collect()
}

/// The password settings `rotate passwords` would change (of `services`, every one
/// when empty).
pub fn password_scope(env: &Environment, services: &[CoreKind]) -> Vec<SecretSetting> {
    password_settings(env, services)
}

/// Refuses, before anything changes, what cannot be rotated: a service without
/// passwords to rotate here, and any `env://` or plaintext setting in scope (every one
/// named, with the variable to update).
pub fn check(
    env: &Environment,
    target: RotateTarget,
    services: &[CoreKind],
) -> Result<(), AppError> {
    if target == RotateTarget::Certificates && !env.tls.enabled() {
        return Err(AppError::Usage(format!(
            "{}: tls.mode is off, so no server has a certificate to renew",
            env.name
        )));
    }
    if target.passwords() {
        if services.contains(&CoreKind::Nats) {
            return Err(AppError::Usage(
                "NATS users' passwords are read by nats-server from its environment when it starts, so a new value takes a NATS restart (every client reconnects); `rotate` does not do that yet: set a new value and run `controlplane up`".into(),
            ));
        }
        let refused: Vec<String> = password_settings(env, services)
            .into_iter()
            .filter_map(|s| {
                let r = s.reference(env)?;
                secrets::check_writable(s.path(), &r)
                    .err()
                    .map(|e| e.to_string())
            })
            .collect();
        if !refused.is_empty() {
            return Err(AppError::Usage(format!(
                "nothing was rotated: {} of the passwords in scope cannot be written by controlplane:\n  - {}\nnarrow the request with --service, or rotate those values yourself",
                refused.len(),
                refused.join("\n  - ")
            )));
        }
    }
    Ok(())
}

fn owner_text(o: &cp_seed::rotate::KeyOwner) -> String {
    match o {
        cp_seed::rotate::KeyOwner::Platform => "platform".into(),
        cp_seed::rotate::KeyOwner::Canary => "canary".into(),
        cp_seed::rotate::KeyOwner::Tenant(id) => format!("tenant {id}"),
    }
}

/// The tenants whose transit keys exist (from the key names: no database needed).
async fn tenant_ids(
    c: &cp_seed::vault::VaultClient,
    env: &Environment,
) -> Result<Vec<String>, AppError> {
    let names = c
        .list(&format!("{}/keys", env.vault.transit_mount))
        .await
        .map_err(|e| AppError::Seed(e.into()))?;
    Ok(names
        .into_iter()
        .filter_map(|n| n.strip_prefix("tenant-").map(str::to_owned))
        .collect())
}

fn age(now: DateTime<Utc>, at: i64) -> u64 {
    u64::try_from(now.timestamp() - at).unwrap_or(0)
}

/// When `setting`'s value was last set: its rotation, else when its service's data
/// was first initialised (the value was set then), else unknown.
fn password_set_at(s: &Session, rec: &Record, setting: SecretSetting) -> Option<DateTime<Utc>> {
    rec.passwords.get(setting.path()).copied().or_else(|| {
        cp_runtime::initialised::read(s.state_path(), setting.service().as_str())
            .ok()
            .flatten()
            .and_then(|r| DateTime::parse_from_rfc3339(&r.at).ok())
            .map(|t| t.with_timezone(&Utc))
    })
}

/// What is due: keys whose newest version and passwords whose value are older than
/// their period (keys only with `access`, whose Vault answers). Read-only.
pub async fn due(s: &Session, access: Option<&Access>) -> Result<Vec<RotationDue>, AppError> {
    let env = s.env();
    let now = Utc::now();
    let rec = Record::read(s.state());
    let mut out = Vec::new();
    let every = env.rotation.passwords_every.as_secs();
    for setting in password_settings(env, &[]) {
        if let Some(at) = password_set_at(s, &rec, setting) {
            let a = age(now, at.timestamp());
            if a > every {
                out.push(RotationDue {
                    kind: "password".into(),
                    name: setting.path().into(),
                    age_secs: a,
                    every_secs: every,
                });
            }
        }
    }
    if let Some(v) = access.and_then(|a| a.vault.as_ref()) {
        let c = cp_seed::vault::client(v)?;
        let tenants = tenant_ids(&c, env).await?;
        let every = env.rotation.keys_every.as_secs();
        for k in cp_seed::rotate::key_states(&c, env, &tenants).await? {
            if let Some(at) = k.latest_created {
                let a = age(now, at);
                if a > every {
                    out.push(RotationDue {
                        kind: "key".into(),
                        name: k.name,
                        age_secs: a,
                        every_secs: every,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Rotates `target` in the session's environment (opened mutating: it holds the
/// environment lock). With `only_due`, only what is older than its period.
pub async fn rotate(
    s: &Session,
    target: RotateTarget,
    services: &[CoreKind],
    only_due: bool,
) -> Result<RotationView, AppError> {
    let env = s.env();
    check(env, target, services)?;
    let mut view = RotationView {
        environment: env.name.to_string(),
        target,
        only_due,
        keys: Vec::new(),
        passwords: Vec::new(),
        certificates: Vec::new(),
        skipped: Vec::new(),
    };
    // Certificates first: they expire, and they need neither Vault nor a password.
    if target.certificates() && env.tls.enabled() {
        renew_certificates(s, services, only_due, &mut view).await?;
    }
    let mut rec = Record::read(s.state());
    let mut access = s.access().await?;
    let now = Utc::now();
    if target.keys() && (services.is_empty() || services.contains(&CoreKind::Vault)) {
        rotate_keys(env, &access, only_due, &mut rec, &mut view).await?;
        rec.write(s.state())?;
    }
    if target.passwords() {
        let every = env.rotation.passwords_every.as_secs();
        for setting in password_settings(env, services) {
            if only_due
                && password_set_at(s, &rec, setting)
                    .is_none_or(|at| age(now, at.timestamp()) <= every)
            {
                view.skipped.push(format!("{setting}: not due"));
                continue;
            }
            let p = rotate_password(s, &mut access, setting).await?;
            rec.passwords.insert(setting.path().to_owned(), Utc::now());
            rec.write(s.state())?;
            view.passwords.push(p);
        }
    }
    Ok(view)
}

async fn renew_certificates(
    s: &Session,
    services: &[CoreKind],
    only_due: bool,
    view: &mut RotationView,
) -> Result<(), AppError> {
    use cp_drivers::Driver as _;
    match s
        .driver()
        .renew_certificates(s.cx(), services, !only_due)
        .await?
    {
        None => view.skipped.push(format!(
            "certificates: the {} platform's certificates are not issued by controlplane",
            s.driver().name()
        )),
        Some(rows) => {
            view.certificates = rows
                .into_iter()
                .map(|r| CertificateRenewalView {
                    service: r.service.to_string(),
                    renewed: r.renewed,
                    reason: r.reason,
                    previous_serial: r.previous_serial,
                    serial: r.serial,
                    expires_at: DateTime::from_timestamp(r.not_after, 0)
                        .map(crate::views::rfc3339)
                        .unwrap_or_default(),
                    reload_ms: r.reload_ms,
                })
                .collect();
        }
    }
    Ok(())
}

async fn rotate_keys(
    env: &Environment,
    access: &Access,
    only_due: bool,
    rec: &mut Record,
    view: &mut RotationView,
) -> Result<(), AppError> {
    let Some(v) = &access.vault else {
        view.skipped
            .push("transit keys: Vault is not enabled".into());
        return Ok(());
    };
    let c = cp_seed::vault::client(v)?;
    let tenants = tenant_ids(&c, env).await?;
    let now = Utc::now();
    let every = env.rotation.keys_every.as_secs();
    for k in cp_seed::rotate::key_states(&c, env, &tenants).await? {
        let due = k.latest_created.is_none_or(|at| age(now, at) > every);
        if only_due && !due {
            if let Some(at) = k.latest_created {
                rec.keys.insert(k.name.clone(), at);
            }
            view.skipped
                .push(format!("transit key {}: not due", k.name));
            continue;
        }
        let r = cp_seed::rotate::rotate_key(&c, env, &k, env.rotation.keep_versions).await?;
        rec.keys.insert(k.name.clone(), now.timestamp());
        view.keys.push(KeyRotationView {
            key: r.name,
            owner: owner_text(&k.owner),
            from_version: r.versions.0,
            to_version: r.versions.1,
            min_decryption_version: r.min_decryption.1,
            rewrapped: r.rewrapped,
        });
    }
    Ok(())
}

fn stored_in(r: &cp_core::units::SecretRef) -> String {
    match r {
        cp_core::units::SecretRef::Generate => "the state file (secrets.json)".into(),
        other => other.to_string(),
    }
}

/// Rotates one password: applied, stored, and taken back when it cannot be stored.
async fn rotate_password(
    s: &Session,
    access: &mut Access,
    setting: SecretSetting,
) -> Result<PasswordRotationView, AppError> {
    let env = s.env();
    let reference = setting
        .reference(env)
        .expect("password_settings keeps set references");
    let new = secrets::new_value();
    let store = |new: Secret| {
        let reference = reference.clone();
        async move {
            s.secrets()
                .write(setting.path(), &reference, &new)
                .await
                .map_err(|e| AppError::Usage(cp_runtime::error::chain(&e)))
        }
    };
    match setting.service() {
        CoreKind::Postgres => {
            let pg = access
                .postgres
                .as_mut()
                .ok_or_else(|| AppError::Usage(format!("{setting}: PostgreSQL is not enabled")))?;
            let role = role_of(setting);
            let old = pg.password(role).clone();
            cp_seed::postgres::set_password(pg, role, &new).await?;
            if let Err(e) = store(new.clone()).await {
                // Take the server back to the value that is still stored.
                let mut with_new = pg.clone();
                if setting == SecretSetting::PostgresSuperuser {
                    with_new.superuser_password = new.clone();
                }
                cp_seed::postgres::set_password(&with_new, role, &old).await?;
                return Err(e);
            }
            set_pg(pg, setting, new);
            Ok(PasswordRotationView {
                setting: setting.path().into(),
                service: "postgres".into(),
                user: role.into(),
                stored_in: stored_in(&reference),
                clients: "sessions already open continue; new connections need the new value"
                    .into(),
            })
        }
        CoreKind::Redis => {
            let redis = access
                .redis
                .as_mut()
                .ok_or_else(|| AppError::Usage(format!("{setting}: Redis is not enabled")))?;
            let user = if setting == SecretSetting::RedisAdmin {
                cp_core::serverconf::REDIS_ADMIN_USER.to_owned()
            } else {
                cp_core::seedspec::redis(env)
                    .first()
                    .map(|r| r.id.name.clone())
                    .ok_or_else(|| AppError::Usage(format!("{setting}: no Redis app user")))?
            };
            let old = if setting == SecretSetting::RedisAdmin {
                redis.admin_password.clone()
            } else {
                redis.app_password.clone()
            };
            cp_seed::rotate::redis_add_password(redis, &user, &new).await?;
            if let Err(e) = store(new.clone()).await {
                cp_seed::rotate::redis_drop_password(redis, &user, &new).await?;
                return Err(e);
            }
            if setting == SecretSetting::RedisAdmin {
                redis.admin_password = new;
            } else {
                redis.app_password = new;
            }
            cp_seed::rotate::redis_drop_password(redis, &user, &old).await?;
            Ok(PasswordRotationView {
                setting: setting.path().into(),
                service: "redis".into(),
                user,
                stored_in: stored_in(&reference),
                clients: "both values were accepted during the switch; connections already authenticated stay so".into(),
            })
        }
        other => Err(AppError::Usage(format!(
            "{setting}: passwords of {other} are not rotated here"
        ))),
    }
}

fn role_of(setting: SecretSetting) -> &'static str {
    match setting {
        SecretSetting::PostgresSuperuser => cp_core::roles::SUPERUSER,
        SecretSetting::PostgresAdmin => cp_core::roles::ADMIN,
        SecretSetting::PostgresApp => cp_core::roles::APP,
        SecretSetting::PostgresReadonly => cp_core::roles::READONLY,
        _ => cp_core::roles::BACKUP,
    }
}

fn set_pg(pg: &mut cp_runtime::access::PgAccess, setting: SecretSetting, new: Secret) {
    match setting {
        SecretSetting::PostgresSuperuser => pg.superuser_password = new,
        SecretSetting::PostgresAdmin => pg.admin_password = new,
        SecretSetting::PostgresApp => pg.app_password = new,
        SecretSetting::PostgresReadonly => pg.readonly_password = new,
        _ => pg.backup_password = new,
    }
}
