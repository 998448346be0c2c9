//! Typed names of backups: a set's id (its start time plus a random suffix, so ids
//! sort as the sets were taken) and an artifact's name inside a set.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A backup set's id: `20261201T021500000Z-3fa9c1`. The time is when the run started
/// (UTC); the suffix keeps two runs started in the same second apart.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackupId(String);

/// Why a text is not a backup id or an artifact name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not `YYYYMMDDTHHMMSSZ-xxxxxx`.
    #[error("`{0}` is not a backup id (expected e.g. `20261201T021500000Z-3fa9c1`)")]
    Id(String),
    /// Not a relative path of safe segments.
    #[error("`{0}` is not an artifact name (relative path of letters, digits, `.`, `_`, `-`, `/`)")]
    Artifact(String),
}

// Milliseconds too: a run that died and the next one may start in the same second,
// and ids must still sort in the order the runs started.
const TIME_FORMAT: &str = "%Y%m%dT%H%M%S%3fZ";

impl BackupId {
    /// A new id for a run starting at `at`, with a random suffix.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self::with_suffix(at, rand::random::<u32>() & 0x00ff_ffff)
    }

    /// An id with a chosen suffix (tests, simulated calendars).
    pub fn with_suffix(at: DateTime<Utc>, suffix: u32) -> Self {
        Self(format!(
            "{}-{:06x}",
            at.format(TIME_FORMAT),
            suffix & 0x00ff_ffff
        ))
    }

    /// Parses an id.
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let bad = || NameError::Id(s.to_owned());
        let (time, suffix) = s.split_once('-').ok_or_else(bad)?;
        if suffix.len() != 6 || !suffix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        NaiveDateTime::parse_from_str(time, TIME_FORMAT).map_err(|_| bad())?;
        Ok(Self(s.to_owned()))
    }

    /// When the run started.
    pub fn started(&self) -> DateTime<Utc> {
        let time = self.0.split_once('-').map_or("", |(t, _)| t);
        NaiveDateTime::parse_from_str(time, TIME_FORMAT)
            .map(|t| t.and_utc())
            .expect("checked when made")
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for BackupId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for BackupId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for BackupId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for BackupId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "BackupId".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{6}$",
            "description": "A backup set's id: its start time (UTC) and a random suffix."
        })
    }
}

/// An artifact's name inside a set, e.g. `postgres/table-0003.copy.zst`: a relative
/// path of safe segments (no `..`, no leading `/`), so it can never address anything
/// outside its set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArtifactName(String);

impl ArtifactName {
    /// Checks a name.
    pub fn new(s: impl Into<String>) -> Result<Self, NameError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 200
            && s.split('/').all(|seg| {
                !seg.is_empty()
                    && seg != "."
                    && seg != ".."
                    && seg
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            });
        if ok {
            Ok(Self(s))
        } else {
            Err(NameError::Artifact(s))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ArtifactName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for ArtifactName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ArtifactName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(s).map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for ArtifactName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ArtifactName".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "string", "description": "An artifact's path inside its set."})
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn ids_sort_by_time_and_round_trip() {
        let t = Utc.with_ymd_and_hms(2026, 12, 1, 2, 15, 0).unwrap();
        let a = BackupId::with_suffix(t, 0xabc);
        assert_eq!(a.as_str(), "20261201T021500000Z-000abc");
        assert_eq!(a.started(), t);
        assert_eq!(BackupId::parse(a.as_str()).unwrap(), a);
        let b = BackupId::with_suffix(t + chrono::Duration::milliseconds(1), 0);
        assert!(a < b);
        for bad in [
            "",
            "x",
            "20261201T021500Z",
            "20261301T021500Z-000abc",
            "20261201T021500Z-zzzzzz",
        ] {
            assert!(BackupId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn artifact_names_stay_inside_their_set() {
        for ok in [
            "postgres/pre-data.dump",
            "redis/dump.rdb",
            "nats/AUDIT_EVENTS.tar",
        ] {
            assert!(ArtifactName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a//b",
            "a/./b",
            "a b",
            "manifest\n",
        ] {
            assert!(ArtifactName::new(bad).is_err(), "{bad:?}");
        }
    }
}
