//! The backup metrics `controlplane serve` exports, in the names of ARCHITECTURE.md's
//! metrics contract, kept in two small state files: `backup/metrics.json`, which every
//! run updates (per service the last success time, whether the last run succeeded,
//! its duration and the size of the last successful backup), and
//! `backup/configured.json`, the time backups were first seen configured for each
//! service, written once (so a backup that never ran is measured from then, never
//! from the epoch).

use std::collections::BTreeMap;

use cp_core::names::CoreKind;
use cp_runtime::state::{StateDir, StateError};
use serde::{Deserialize, Serialize};

/// The file, inside the state directory.
pub const FILE: &str = "backup/metrics.json";

/// The first-configured times, inside the state directory.
pub const CONFIGURED_FILE: &str = "backup/configured.json";

/// One service's series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceMetrics {
    /// `controlplane_backup_last_success_timestamp_seconds` (0 until the first success).
    pub last_success_timestamp_seconds: i64,
    /// `controlplane_backup_last_run_success` (1 or 0).
    pub last_run_success: u8,
    /// `controlplane_backup_duration_seconds` (the last run).
    pub duration_seconds: f64,
    /// `controlplane_backup_size_bytes` (the last successful backup, as stored).
    pub size_bytes: u64,
    /// `controlplane_backup_last_run_timestamp_seconds` (0 until the first run; files
    /// written before it existed lack it).
    #[serde(default)]
    pub last_run_timestamp_seconds: i64,
}

impl ServiceMetrics {
    /// When the last run started, for `controlplane_backup_last_run_timestamp_seconds`:
    /// 0 for a service that never ran (`None`); for an entry written before the field
    /// existed (the service did run), its last success or 1, never 0.
    pub fn last_run(m: Option<&ServiceMetrics>) -> i64 {
        match m {
            None => 0,
            Some(m) if m.last_run_timestamp_seconds > 0 => m.last_run_timestamp_seconds,
            Some(m) => m.last_success_timestamp_seconds.max(1),
        }
    }
}

/// A series: its name, its help text and how to read its value.
type Series = (&'static str, &'static str, fn(&ServiceMetrics) -> String);

/// Every backed-up service's series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// By service.
    pub services: BTreeMap<CoreKind, ServiceMetrics>,
}

impl Metrics {
    /// Reads the file (empty when absent or unreadable: a metric is never invented).
    pub fn read(state: &StateDir) -> Metrics {
        state
            .read(FILE)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Records one run of `service`.
    pub fn record(
        &mut self,
        service: CoreKind,
        ok: bool,
        at_unix: i64,
        duration_seconds: f64,
        size: u64,
    ) {
        let m = self.services.entry(service).or_default();
        m.last_run_success = u8::from(ok);
        m.last_run_timestamp_seconds = at_unix;
        m.duration_seconds = duration_seconds;
        if ok {
            m.last_success_timestamp_seconds = at_unix;
            m.size_bytes = size;
        }
    }

    /// Writes the file atomically (0600, like every state file).
    pub fn write(&self, state: &StateDir) -> Result<(), StateError> {
        state.write_private(FILE, &serde_json::to_vec_pretty(self).expect("serializes"))
    }

    /// The Prometheus text exposition for environment `env` (the contract in
    /// ARCHITECTURE.md): every series of every service of `services` from the start
    /// (0 until its first run or success), and the first-configured time where
    /// `configured` has one.
    pub fn exposition(&self, env: &str, services: &[CoreKind], configured: &Configured) -> String {
        let mut out = String::new();
        let mut family = |name: &str, help: &str, value: &dyn Fn(CoreKind) -> Option<String>| {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for s in services {
                if let Some(v) = value(*s) {
                    out.push_str(&format!("{name}{{env=\"{env}\",service=\"{s}\"}} {v}\n"));
                }
            }
        };
        let series: [Series; 4] = [
            (
                "controlplane_backup_last_success_timestamp_seconds",
                "Unix time of the last successful backup (0: never).",
                |m| m.last_success_timestamp_seconds.to_string(),
            ),
            (
                "controlplane_backup_last_run_success",
                "1 when the last backup run succeeded (0 too before the first run).",
                |m| m.last_run_success.to_string(),
            ),
            (
                "controlplane_backup_duration_seconds",
                "Duration of the last backup run.",
                |m| m.duration_seconds.to_string(),
            ),
            (
                "controlplane_backup_size_bytes",
                "Stored size of the last successful backup.",
                |m| m.size_bytes.to_string(),
            ),
        ];
        for (name, help, value) in series {
            family(name, help, &|s| {
                Some(value(&self.services.get(&s).cloned().unwrap_or_default()))
            });
        }
        family(LAST_RUN_NAME, LAST_RUN_HELP, &|s| {
            Some(ServiceMetrics::last_run(self.services.get(&s)).to_string())
        });
        family(CONFIGURED_NAME, CONFIGURED_HELP, &|s| {
            configured.services.get(&s).map(i64::to_string)
        });
        out
    }
}

/// The name of the last-run gauge.
pub const LAST_RUN_NAME: &str = "controlplane_backup_last_run_timestamp_seconds";
/// Its help text.
pub const LAST_RUN_HELP: &str = "Unix time of the last backup run, failed or not (0: never ran).";

/// The name of the first-configured gauge.
pub const CONFIGURED_NAME: &str = "controlplane_backup_configured_timestamp_seconds";
/// Its help text.
pub const CONFIGURED_HELP: &str =
    "Unix time backups of the service were first configured (recorded once).";

/// When backups were first configured, per service: recorded once in
/// [`CONFIGURED_FILE`] and never moved, so `BackupTooOld` measures a backup that
/// never succeeded from then.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Configured {
    /// Unix seconds, by service.
    pub services: BTreeMap<CoreKind, i64>,
}

/// One writer at a time within a process (two scrapes at once); across processes the
/// file is replaced atomically and only ever gains services, so a race costs at most
/// a first-configured time a few seconds apart.
static CONFIGURED_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Configured {
    /// Reads the file (empty when absent or unreadable).
    pub fn read(state: &StateDir) -> Configured {
        state
            .read(CONFIGURED_FILE)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Records `now` for every service of `services` that has no time yet and returns
    /// what the file then holds. A service that already has a success recorded (an
    /// environment older than this file) is taken as configured at its last success,
    /// so upgrading never restarts the clock. When the file cannot be written, only
    /// what it held is returned: a time that is not on disk would move at every call.
    pub fn ensure(state: &StateDir, services: &[CoreKind], now_unix: i64) -> Configured {
        let _one = CONFIGURED_LOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = Configured::read(state);
        let missing: Vec<CoreKind> = services
            .iter()
            .filter(|s| !held.services.contains_key(s))
            .copied()
            .collect();
        if missing.is_empty() {
            return held;
        }
        let metrics = Metrics::read(state);
        let mut next = held.clone();
        for s in missing {
            let at = match metrics.services.get(&s) {
                Some(m) if m.last_success_timestamp_seconds > 0 => {
                    m.last_success_timestamp_seconds.min(now_unix)
                }
                _ => now_unix,
            };
            next.services.insert(s, at);
        }
        match state.write_private(
            CONFIGURED_FILE,
            &serde_json::to_vec_pretty(&next).expect("serializes"),
        ) {
            Ok(()) => next,
            Err(_) => held,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> (tempfile::TempDir, StateDir) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = StateDir::open(tmp.path().join("dev"), "dev").unwrap();
        (tmp, dir)
    }

    #[test]
    fn a_service_that_never_ran_says_so_and_is_measured_from_configured() {
        let mut m = Metrics::default();
        m.record(CoreKind::Redis, false, 2_000, 1.5, 0);
        let mut c = Configured::default();
        c.services.insert(CoreKind::Postgres, 1_000);
        let text = m.exposition("dev", &[CoreKind::Postgres, CoreKind::Redis], &c);
        // Postgres never ran: its last run and last success are 0 (never), and its
        // first-configured time is exported.
        assert!(text.contains("controlplane_backup_last_run_timestamp_seconds{env=\"dev\",service=\"postgres\"} 0\n"), "{text}");
        assert!(text.contains("controlplane_backup_last_success_timestamp_seconds{env=\"dev\",service=\"postgres\"} 0\n"), "{text}");
        assert!(text.contains("controlplane_backup_configured_timestamp_seconds{env=\"dev\",service=\"postgres\"} 1000\n"), "{text}");
        // Redis ran and failed: its outcome is 0; it has no configured time here.
        assert!(
            text.contains(
                "controlplane_backup_last_run_success{env=\"dev\",service=\"redis\"} 0\n"
            ),
            "{text}"
        );
        assert!(text.contains("controlplane_backup_last_run_timestamp_seconds{env=\"dev\",service=\"redis\"} 2000\n"), "{text}");
        assert!(
            !text.contains("configured_timestamp_seconds{env=\"dev\",service=\"redis\"}"),
            "{text}"
        );
    }

    #[test]
    fn first_configured_is_recorded_once_and_never_moves() {
        let (_tmp, dir) = state();
        let c = Configured::ensure(&dir, &[CoreKind::Postgres], 1_000);
        assert_eq!(c.services[&CoreKind::Postgres], 1_000);
        let c = Configured::ensure(&dir, &[CoreKind::Postgres, CoreKind::Nats], 5_000);
        assert_eq!(c.services[&CoreKind::Postgres], 1_000);
        assert_eq!(c.services[&CoreKind::Nats], 5_000);
        assert_eq!(Configured::read(&dir), c);
    }

    #[test]
    fn an_environment_with_earlier_successes_is_configured_at_its_last_success() {
        let (_tmp, dir) = state();
        let mut m = Metrics::default();
        m.record(CoreKind::Vault, true, 700, 0.1, 10);
        m.write(&dir).unwrap();
        let c = Configured::ensure(&dir, &[CoreKind::Vault], 9_000);
        assert_eq!(c.services[&CoreKind::Vault], 700);
    }

    #[test]
    fn state_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let (_tmp, dir) = state();
        Metrics::default().write(&dir).unwrap();
        Configured::ensure(&dir, &[CoreKind::Redis], 1);
        for f in [FILE, CONFIGURED_FILE] {
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
        let mode = std::fs::metadata(dir.join("backup"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
    }
}

/// The PITR status file, inside the state directory.
pub const PITR_FILE: &str = "backup/pitr.json";

/// What the last look at the PITR archive and `pg_stat_archiver` found
/// (`backup/pitr.json`): written by the jobs service's PITR watch and by `backup list`,
/// read at scrape time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PitrMetrics {
    /// When it was read.
    pub checked_timestamp_seconds: i64,
    /// `controlplane_pitr_last_archived_timestamp_seconds`: the newest segment in the
    /// archive (or `pg_stat_archiver.last_archived_time` when the archive cannot be
    /// listed).
    pub last_archived_timestamp_seconds: Option<i64>,
    /// `controlplane_pitr_archive_failures_total`: `pg_stat_archiver.failed_count`.
    pub archive_failures_total: Option<i64>,
    /// `controlplane_pitr_archive_pending_segments`: WAL files waiting to be archived
    /// (`.ready` in `pg_wal/archive_status`).
    pub archive_pending_segments: Option<i64>,
    /// `controlplane_pitr_window_start_timestamp_seconds`: the earliest restorable time.
    pub window_start_timestamp_seconds: Option<i64>,
    /// The latest restorable time.
    pub window_end_timestamp_seconds: Option<i64>,
}

impl PitrMetrics {
    /// Reads the file (the default when absent or unreadable).
    pub fn read(state: &StateDir) -> PitrMetrics {
        state
            .read(PITR_FILE)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Writes the file.
    pub fn write(&self, state: &StateDir) -> Result<(), StateError> {
        state.write_private(
            PITR_FILE,
            &serde_json::to_vec_pretty(self).expect("serializes"),
        )
    }
}
