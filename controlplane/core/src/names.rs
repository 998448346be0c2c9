//! Typed names: environment names, service names and kinds, stream names.
//!
//! No bare `String` crosses a module boundary where one of these is meant; each
//! constructor checks the syntax once so later code can rely on it.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Checks a DNS-1123 label (Kubernetes object names, container names): lowercase
/// alphanumerics and `-`, starting and ending with an alphanumeric, at most 63 chars.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Checks an identifier written into a server's configuration or an API path (a NATS
/// or Redis user, a Vault role, policy or transit key): an ASCII letter, then ASCII
/// letters, digits, `_` and `-`, at most 63 characters. Nothing in it needs quoting in
/// any of the formats controlplane writes (nats.conf, users.acl, HCL, YAML, SQL), and
/// it cannot be a NATS subject wildcard or separator.
pub fn is_identifier(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Checks a PostgreSQL identifier that is written unquoted (database names):
/// lowercase letter or `_`, then lowercase letters, digits and `_`, at most 63 bytes
/// (PostgreSQL's NAMEDATALEN).
pub fn is_pg_identifier(s: &str) -> bool {
    s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Checks a DNS name (ingress hosts, the domain): dot-separated DNS labels, at most
/// 253 characters.
pub fn is_dns_name(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A name that does not have its kind's syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// `base` and `schema` name other files.
    #[error("`{0}` is reserved and cannot name an environment")]
    ReservedEnv(String),
    /// Not a DNS label.
    #[error("`{0}` is not a valid environment name: use lowercase letters, digits and `-`")]
    Env(String),
    /// Not a DNS label.
    #[error(
        "`{0}` is not a valid service name: use lowercase letters, digits and `-` (at most 63), starting and ending with a letter or digit"
    )]
    Service(String),
    /// Not a JetStream stream name.
    #[error("`{0}` is not a valid stream name: use letters, digits, `_` and `-`")]
    Stream(String),
}

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_newtype! {
    /// An environment's name: the stem of `environments/<name>.yaml` (`dev`, `staging`).
    EnvName
}

impl EnvName {
    /// Accepts DNS labels other than `base` (which names the shared layer, not an
    /// environment) and `schema`.
    pub fn new(s: &str) -> Result<Self, NameError> {
        if s == "base" || s == "schema" {
            return Err(NameError::ReservedEnv(s.to_owned()));
        }
        if !is_dns_label(s) {
            return Err(NameError::Env(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name the shared layer (`base.yaml`) renders under, for the Kustomize base.
    pub fn base() -> Self {
        Self("base".to_owned())
    }
}

string_newtype! {
    /// The name of a service in an environment: a core service (`postgres`), an app, an
    /// extra container or a monitoring component. A DNS label.
    ServiceName
}

impl ServiceName {
    /// Accepts DNS labels.
    pub fn new(s: &str) -> Result<Self, NameError> {
        if is_dns_label(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError::Service(s.to_owned()))
        }
    }

    /// The name of a core service.
    pub fn core(kind: CoreKind) -> Self {
        Self(kind.as_str().to_owned())
    }
}

string_newtype! {
    /// A JetStream stream name (`CAPSULE_EVENTS`).
    StreamName
}

impl StreamName {
    /// Accepts letters, digits, `_` and `-`.
    pub fn new(s: &str) -> Result<Self, NameError> {
        if !s.is_empty()
            && s.len() <= 255
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(NameError::Stream(s.to_owned()))
        }
    }
}

/// The four core services every environment runs.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum CoreKind {
    /// PostgreSQL.
    Postgres,
    /// Redis.
    Redis,
    /// NATS with JetStream.
    Nats,
    /// Vault-compatible secrets server.
    Vault,
}

impl CoreKind {
    /// All four, in start order.
    pub const ALL: [CoreKind; 4] = [
        CoreKind::Postgres,
        CoreKind::Redis,
        CoreKind::Nats,
        CoreKind::Vault,
    ];

    /// The service name.
    pub fn as_str(self) -> &'static str {
        match self {
            CoreKind::Postgres => "postgres",
            CoreKind::Redis => "redis",
            CoreKind::Nats => "nats",
            CoreKind::Vault => "vault",
        }
    }

    /// Parses a service name.
    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for CoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("capsule-registry"));
        assert!(is_dns_label("a1"));
        assert!(!is_dns_label("Capsule"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label("a-"));
        assert!(!is_dns_label(""));
        assert!(!is_dns_label(&"a".repeat(64)));
    }

    #[test]
    fn identifiers_exclude_everything_a_config_format_would_need_quoted() {
        for ok in ["anumate_app", "app-1", "A", &"a".repeat(63)] {
            assert!(is_identifier(ok), "{ok}");
        }
        for bad in [
            "",
            "1app",
            "_app",
            "a\"b",
            "a b",
            "a.b",
            "a>",
            "a*",
            "a\nb",
            "a\\b",
            "a'b",
            "a{b",
            "a$b",
            "ä",
            &"a".repeat(64),
        ] {
            assert!(!is_identifier(bad), "{bad:?}");
        }
        assert!(is_pg_identifier("anumate_2"));
        assert!(is_pg_identifier("_x"));
        for bad in ["Anumate", "a-b", "a;drop", "a\"", "1a", ""] {
            assert!(!is_pg_identifier(bad), "{bad:?}");
        }
        assert!(is_dns_name("registry.anumate.io"));
        assert!(!is_dns_name("registry..io"));
        assert!(!is_dns_name("a\"b.io"));
    }

    #[test]
    fn env_names() {
        assert!(EnvName::new("dev").is_ok());
        assert!(EnvName::new("base").is_err());
        assert!(EnvName::new("Prod").is_err());
    }
}
