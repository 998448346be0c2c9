//! Value types with a syntax: durations, CPU and memory quantities, secret references.
//!
//! Each parses once during validation and keeps the text the user wrote, so rendering
//! and `controlplane config` reproduce it exactly while checks compare numbers.

use std::fmt;

use serde::{Serialize, Serializer};

/// A value that does not have its type's syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// Not a duration.
    #[error("`{0}` is not a duration")]
    Duration(String),
    /// A duration beyond any schedule, retention or TTL that makes sense.
    #[error(
        "`{0}` is longer than 100 years, the longest duration controlplane accepts (a longer one is a typo, and would overflow the servers' own duration types)"
    )]
    DurationTooLong(String),
    /// Not a CPU quantity.
    #[error("`{0}` is not a CPU quantity (like `50m`, `0.5` or `2`)")]
    Cpu(String),
    /// Zero CPU.
    #[error("`{0}` is zero CPU")]
    ZeroCpu(String),
    /// Not a memory quantity.
    #[error("`{0}` is not a memory quantity (like `64Mi`, `1Gi` or `512M`)")]
    Memory(String),
    /// Zero bytes.
    #[error("`{0}` is zero bytes")]
    ZeroMemory(String),
    /// A Vault reference without its key.
    #[error("`{0}` has no `#key`: write vault://<path>#<key>")]
    VaultKey(String),
    /// A malformed Vault reference.
    #[error("`{0}` is not vault://<path>#<key>")]
    Vault(String),
    /// A malformed environment variable reference.
    #[error("`{0}` does not name an environment variable: write env://NAME")]
    EnvVar(String),
    /// Nothing.
    #[error("an empty secret")]
    EmptySecret,
}

/// A duration written like Prometheus and Go do: `30s`, `5m`, `1h30m`, `7d`, `2w`.
///
/// Keeps the text it was parsed from, so `7d` prints as `7d` (in `config` output and
/// in rendered files), while comparisons go by length: `7d` equals `1w`.
#[derive(Debug, Clone)]
pub struct Duration {
    secs: u64,
    text: String,
}

impl Duration {
    /// The longest duration accepted: 100 years of 365.25 days. Servers keep durations
    /// as nanoseconds in an `i64` (NATS, Go's `time.Duration`: about 292 years) or as
    /// seconds in narrower types; a bound well inside all of them means no conversion
    /// downstream can overflow or panic.
    pub const MAX_SECS: u64 = 36_525 * 86_400;

    /// A duration of seconds, spelled in the shortest exact way (`90` is `1m30s`).
    pub fn from_secs(secs: u64) -> Self {
        Self {
            secs,
            text: canonical(secs),
        }
    }

    /// Whole seconds.
    pub fn as_secs(&self) -> u64 {
        self.secs
    }

    /// As written (or, when computed, in the shortest exact spelling).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Parses `1h30m`-style text. Units: `s`, `m`, `h`, `d`, `w`.
    pub fn parse(s: &str) -> Result<Self, UnitError> {
        let err = || UnitError::Duration(s.to_owned());
        if s.is_empty() {
            return Err(err());
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in s.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let n: u64 = digits.parse().map_err(|_| err())?;
            digits.clear();
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                'w' => 604_800,
                _ => return Err(err()),
            };
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(err)?;
        }
        if !digits.is_empty() {
            return Err(err());
        }
        if total > Self::MAX_SECS {
            return Err(UnitError::DurationTooLong(s.to_owned()));
        }
        Ok(Self {
            secs: total,
            text: s.to_owned(),
        })
    }
}

/// The shortest exact spelling in Prometheus units: `90s` is `1m30s`, `86400s` is `1d`.
fn canonical(secs: u64) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut rest = secs;
    for (unit, n) in [
        ("w", 604_800),
        ("d", 86_400),
        ("h", 3600),
        ("m", 60),
        ("s", 1),
    ] {
        if rest >= n {
            out.push_str(&format!("{}{unit}", rest / n));
            rest %= n;
        }
    }
    out
}

impl PartialEq for Duration {
    fn eq(&self, other: &Self) -> bool {
        self.secs == other.secs
    }
}

impl Eq for Duration {}

impl PartialOrd for Duration {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Duration {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.secs.cmp(&other.secs)
    }
}

impl std::hash::Hash for Duration {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.secs.hash(state);
    }
}

impl fmt::Display for Duration {
    /// As written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// A Kubernetes CPU quantity: `50m`, `0.5`, `2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    text: String,
    millis: u64,
}

impl Cpu {
    /// Parses a CPU quantity.
    pub fn parse(s: &str) -> Result<Self, UnitError> {
        let err = || UnitError::Cpu(s.to_owned());
        let millis = if let Some(m) = s.strip_suffix('m') {
            m.parse::<u64>().map_err(|_| err())?
        } else {
            let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
            if frac.len() > 3 || (whole.is_empty() && frac.is_empty()) {
                return Err(err());
            }
            let whole: u64 = if whole.is_empty() {
                0
            } else {
                whole.parse().map_err(|_| err())?
            };
            let frac: u64 = if frac.is_empty() {
                0
            } else {
                format!("{frac:0<3}").parse().map_err(|_| err())?
            };
            whole
                .checked_mul(1000)
                .and_then(|w| w.checked_add(frac))
                .ok_or_else(err)?
        };
        if millis == 0 {
            return Err(UnitError::ZeroCpu(s.to_owned()));
        }
        Ok(Self {
            text: s.to_owned(),
            millis,
        })
    }

    /// Millicores.
    pub fn millis(&self) -> u64 {
        self.millis
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// A Kubernetes memory quantity: `64Mi`, `1Gi`, `512M`, `1000000`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    text: String,
    bytes: u64,
}

impl Memory {
    /// Parses a memory quantity.
    pub fn parse(s: &str) -> Result<Self, UnitError> {
        let err = || UnitError::Memory(s.to_owned());
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| err())?;
        let mult: u64 = match unit {
            "" => 1,
            "k" | "K" => 1000,
            "M" => 1000u64.pow(2),
            "G" => 1000u64.pow(3),
            "T" => 1000u64.pow(4),
            "Ki" => 1 << 10,
            "Mi" => 1 << 20,
            "Gi" => 1 << 30,
            "Ti" => 1 << 40,
            _ => return Err(err()),
        };
        let bytes = n.checked_mul(mult).ok_or_else(err)?;
        if bytes == 0 {
            return Err(UnitError::ZeroMemory(s.to_owned()));
        }
        Ok(Self {
            text: s.to_owned(),
            bytes,
        })
    }

    /// Bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Serialize for Cpu {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl Serialize for Memory {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// Where a secret's value comes from. The model never holds a production secret's
/// value: only dev may write one inline ([`SecretRef::Plain`]), and even that is
/// redacted whenever the model is printed or serialized.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `vault://<path>#<key>`: a key of a KV v2 secret (path without the `data/` part).
    Vault {
        /// KV path including the mount, e.g. `secret/anumate/postgres`.
        path: String,
        /// Key inside the secret.
        key: String,
    },
    /// `env://NAME`: read from the environment of the process that needs it.
    Env {
        /// Variable name.
        name: String,
    },
    /// `generate`: a random value created on first use and stored in the state
    /// directory (mode 0600). Dev only.
    Generate,
    /// An inline value. Dev only; never printed.
    Plain(String),
}

impl SecretRef {
    /// Parses a reference. Anything that is not `vault://`, `env://` or `generate` is
    /// an inline value (allowed only in dev; validation decides).
    pub fn parse(s: &str) -> Result<Self, UnitError> {
        if let Some(rest) = s.strip_prefix("vault://") {
            let Some((path, key)) = rest.split_once('#') else {
                return Err(UnitError::VaultKey(s.to_owned()));
            };
            if path.is_empty() || key.is_empty() || path.starts_with('/') {
                return Err(UnitError::Vault(s.to_owned()));
            }
            return Ok(Self::Vault {
                path: path.to_owned(),
                key: key.to_owned(),
            });
        }
        if let Some(name) = s.strip_prefix("env://") {
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(UnitError::EnvVar(s.to_owned()));
            }
            return Ok(Self::Env {
                name: name.to_owned(),
            });
        }
        if s == "generate" {
            return Ok(Self::Generate);
        }
        if s.is_empty() {
            return Err(UnitError::EmptySecret);
        }
        Ok(Self::Plain(s.to_owned()))
    }

    /// True for inline values.
    pub fn is_plain(&self) -> bool {
        matches!(self, Self::Plain(_))
    }
}

impl fmt::Display for SecretRef {
    /// The reference as written, with inline values redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Vault { path, key } => write!(f, "vault://{path}#{key}"),
            Self::Env { name } => write!(f, "env://{name}"),
            Self::Generate => f.write_str("generate"),
            Self::Plain(_) => f.write_str("<redacted>"),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_their_text_and_compare_by_length() {
        assert_eq!(Duration::parse("1h30m").unwrap().as_secs(), 5400);
        assert_eq!(Duration::parse("7d").unwrap().to_string(), "7d");
        assert_eq!(Duration::parse("90s").unwrap().to_string(), "90s");
        assert_eq!(
            serde_json::to_string(&Duration::parse("365d").unwrap()).unwrap(),
            "\"365d\""
        );
        assert_eq!(
            Duration::parse("7d").unwrap(),
            Duration::parse("1w").unwrap()
        );
        assert!(Duration::parse("59m").unwrap() < Duration::parse("1h").unwrap());
        assert_eq!(Duration::from_secs(90).to_string(), "1m30s");
        assert_eq!(Duration::from_secs(86_400 * 8).to_string(), "1w1d");
        assert!(Duration::parse("5").is_err());
        assert!(Duration::parse("m").is_err());
        assert!(Duration::parse("5y").is_err());
    }

    #[test]
    fn absurd_durations_are_refused_without_overflow() {
        assert_eq!(
            Duration::parse("36525d").unwrap().as_secs(),
            Duration::MAX_SECS
        );
        for text in [
            "36526d",
            "100000000000000d",
            "18446744073709551615s",
            "99999999999999999999999999s",
            "5218w",
            "1s36525d",
        ] {
            assert!(Duration::parse(text).is_err(), "{text} was accepted");
        }
        assert!(matches!(
            Duration::parse("100000000000000d"),
            Err(UnitError::DurationTooLong(_))
        ));
        // Memory and CPU quantities overflow into an error too, never a panic.
        assert!(Memory::parse("99999999999999999999Ti").is_err());
        assert!(Memory::parse("18446744073709551615Ti").is_err());
        assert!(Cpu::parse("18446744073709551615").is_err());
        assert!(Cpu::parse("99999999999999999999999m").is_err());
    }

    #[test]
    fn quantities() {
        assert_eq!(Cpu::parse("50m").unwrap().millis(), 50);
        assert_eq!(Cpu::parse("0.5").unwrap().millis(), 500);
        assert_eq!(Cpu::parse("2").unwrap().millis(), 2000);
        assert!(Cpu::parse("0").is_err());
        assert!(Cpu::parse("fast").is_err());
        assert_eq!(Memory::parse("64Mi").unwrap().bytes(), 64 << 20);
        assert_eq!(Memory::parse("1G").unwrap().bytes(), 1_000_000_000);
        assert!(Memory::parse("64MB").is_err());
    }

    #[test]
    fn secret_refs_never_print_plain_values() {
        let plain = SecretRef::parse("hunter2").unwrap();
        assert_eq!(format!("{plain} {plain:?}"), "<redacted> <redacted>");
        assert_eq!(serde_json::to_string(&plain).unwrap(), "\"<redacted>\"");
        assert_eq!(
            SecretRef::parse("vault://secret/anumate/pg#admin").unwrap(),
            SecretRef::Vault {
                path: "secret/anumate/pg".into(),
                key: "admin".into()
            }
        );
        assert!(SecretRef::parse("vault://secret/x").is_err());
        assert!(SecretRef::parse("env://1X").is_err());
    }
}
