//! What an app's environment gets from the platform it `uses` (`apps.<app>.uses`):
//! `DATABASE_URL`, `EVENTS_NATS_URL`, `REDIS_URL`, `VAULT_ADDR`, `OIDC_*`, with TLS
//! URLs and the CA where the platform serves TLS. One function for every platform:
//! the caller says where each core service answers ([`Dial`]); URLs that carry the
//! app's own password hold [`SECRET`] where it goes, and name the setting it comes
//! from, so each platform fills it its own way (the process platform resolves it,
//! Kubernetes expands `$(VAR)` from a Secret, compose interpolates `${VAR}`).
//!
//! Pure: no secret value ever passes through here.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::model::{App, Environment};
use crate::names::{CoreKind, ServiceName};
use crate::units::SecretRef;

/// Where the app's password goes in a [`AppValue::WithSecret`] template.
pub const SECRET: &str = "{secret}";

/// Where a core service answers, as the app dials it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dial {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The CA file (as the app sees it) when the service serves TLS.
    pub ca: Option<String>,
}

/// One variable of an app's environment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AppValue {
    /// A value as is.
    Plain {
        /// The value.
        value: String,
    },
    /// A value carrying the app's credential at [`SECRET`] (percent-encoded there).
    WithSecret {
        /// The value with [`SECRET`] in place of the credential.
        template: String,
        /// The setting the credential comes from (`apps.<app>.uses.<service>.password`).
        setting: String,
        /// Its reference.
        #[serde(skip)]
        reference: SecretRef,
        /// The variable a platform carries the credential in on its own
        /// (`CP_POSTGRES_PASSWORD`), for `$(VAR)` / `${VAR}` expansion.
        var: String,
    },
}

fn plain(v: impl Into<String>) -> AppValue {
    AppValue::Plain { value: v.into() }
}

/// The credential's setting path for an app and service.
pub fn setting(app: &ServiceName, service: &str) -> String {
    format!("apps.{app}.uses.{service}.password")
}

/// The app's platform-given environment. Variables the app sets itself (`env`,
/// `secrets`) are left out: what the app sets wins.
pub fn app_env(
    app_name: &ServiceName,
    app: &App,
    dial: &dyn Fn(CoreKind) -> Option<Dial>,
) -> BTreeMap<String, AppValue> {
    let mut out = BTreeMap::new();
    let u = &app.uses;
    let with =
        |template: String, service: &str, reference: &SecretRef, var: &str| AppValue::WithSecret {
            template,
            setting: setting(app_name, service),
            reference: reference.clone(),
            var: var.to_owned(),
        };
    if let (Some(p), Some(d)) = (&u.postgres, dial(CoreKind::Postgres)) {
        let tls = d.ca.as_ref().map_or(String::new(), |ca| {
            format!("?sslmode=verify-full&sslrootcert={ca}")
        });
        out.insert(
            "DATABASE_URL".into(),
            with(
                format!(
                    "postgresql://{}:{SECRET}@{}:{}/{}{tls}",
                    p.role, d.host, d.port, p.database
                ),
                "postgres",
                &p.password,
                "CP_POSTGRES_PASSWORD",
            ),
        );
        if let Some(ca) = &d.ca {
            out.insert("PGSSLMODE".into(), plain("verify-full"));
            out.insert("PGSSLROOTCERT".into(), plain(ca.clone()));
        }
    }
    if let (Some(n), Some(d)) = (&u.nats, dial(CoreKind::Nats)) {
        let scheme = if d.ca.is_some() { "tls" } else { "nats" };
        out.insert(
            "EVENTS_NATS_URL".into(),
            with(
                format!("{scheme}://{}:{SECRET}@{}:{}", n.user, d.host, d.port),
                "nats",
                &n.password,
                "CP_NATS_PASSWORD",
            ),
        );
        out.insert("EVENTS_ENABLED".into(), plain("true"));
        out.insert(
            "EVENTS_NATS_INBOX_PREFIX".into(),
            plain(crate::serverconf::app_user_inbox_prefix(&n.user)),
        );
        if let Some(ca) = &d.ca {
            out.insert("EVENTS_NATS_CA".into(), plain(ca.clone()));
        }
    }
    if let (Some(r), Some(d)) = (&u.redis, dial(CoreKind::Redis)) {
        let scheme = if d.ca.is_some() { "rediss" } else { "redis" };
        out.insert(
            "REDIS_URL".into(),
            with(
                format!("{scheme}://{}:{SECRET}@{}:{}/0", r.user, d.host, d.port),
                "redis",
                &r.password,
                "CP_REDIS_PASSWORD",
            ),
        );
        out.insert("REDIS_KEY_PREFIX".into(), plain(r.prefix.clone()));
    }
    if let (Some(v), Some(d)) = (&u.vault, dial(CoreKind::Vault)) {
        let scheme = if d.ca.is_some() { "https" } else { "http" };
        out.insert(
            "VAULT_ADDR".into(),
            plain(format!("{scheme}://{}:{}", d.host, d.port)),
        );
        out.insert("VAULT_APPROLE".into(), plain(v.role.clone()));
        if let Some(ca) = &d.ca {
            out.insert("VAULT_CACERT".into(), plain(ca.clone()));
        }
    }
    if let Some(o) = &u.oidc {
        out.insert("OIDC_ENABLED".into(), plain("true"));
        out.insert("OIDC_ISSUER_URL".into(), plain(o.issuer_url.clone()));
        out.insert("OIDC_CLIENT_ID".into(), plain(o.client_id.clone()));
        if let Some(a) = &o.audience {
            out.insert("OIDC_AUDIENCE".into(), plain(a.clone()));
        }
    }
    out.retain(|k, _| !app.env.contains_key(k) && !app.secrets.contains_key(k));
    out
}

/// Where the core services answer for an app inside the platform's network (a
/// Kubernetes namespace, a compose project): the short Service names, the CA at
/// `ca` for the services that serve TLS there.
pub fn in_cluster_dial<'e>(
    env: &'e Environment,
    ca: &str,
) -> impl Fn(CoreKind) -> Option<Dial> + use<'e> {
    let ca = ca.to_owned();
    move |kind| {
        let c = env.services.common(kind)?;
        let host = if kind == CoreKind::Postgres && crate::topology::postgres_cnpg(env) {
            "postgres-rw".to_owned()
        } else {
            kind.as_str().to_owned()
        };
        let tls = env.tls.enabled()
            && (kind != CoreKind::Vault || crate::render::context::vault_tls(env));
        Some(Dial {
            host,
            port: c.port,
            ca: tls.then(|| ca.clone()),
        })
    }
}

/// Percent-encodes a credential for a URL's userinfo.
pub fn encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A [`AppValue`] filled with the credential's value.
pub fn fill(value: &AppValue, secret: &str) -> String {
    match value {
        AppValue::Plain { value } => value.clone(),
        AppValue::WithSecret { template, .. } => template.replace(SECRET, &encode_userinfo(secret)),
    }
}
