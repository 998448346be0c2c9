//! Built-in catalogues: the alert rules and dashboards every environment gets, with
//! their default thresholds (from the platforms this tool replaces).

use crate::raw::Severity;

/// What a rule's threshold means, for validation and for the docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdUnit {
    /// A fraction in (0, 1]: 0.05 is 5%.
    Fraction,
    /// Seconds.
    Seconds,
    /// A count (restarts, pending messages).
    Count,
    /// Events per second.
    PerSecond,
    /// The rule has no threshold.
    None,
}

/// A built-in alert rule's defaults.
#[derive(Debug, Clone, Copy)]
pub struct RuleDefault {
    /// Key under `alerts.rules` (`high_error_rate`).
    pub key: &'static str,
    /// Alert name (`HighErrorRate`).
    pub alert: &'static str,
    /// Default threshold.
    pub threshold: f64,
    /// Unit of the threshold.
    pub unit: ThresholdUnit,
    /// Default hold duration.
    pub for_: &'static str,
    /// Default severity.
    pub severity: Severity,
}

const fn rule(
    key: &'static str,
    alert: &'static str,
    threshold: f64,
    unit: ThresholdUnit,
    for_: &'static str,
    severity: Severity,
) -> RuleDefault {
    RuleDefault {
        key,
        alert,
        threshold,
        unit,
        for_,
        severity,
    }
}

/// Every built-in rule, in the order they are rendered. Every rule holds for a while
/// (`for` above zero) so its promtool tests can show it silent before that.
pub const RULES: &[RuleDefault] = &[
    rule(
        "service_down",
        "ServiceDown",
        0.0,
        ThresholdUnit::None,
        "1m",
        Severity::Critical,
    ),
    rule(
        "high_error_rate",
        "HighErrorRate",
        0.05,
        ThresholdUnit::Fraction,
        "5m",
        Severity::Critical,
    ),
    rule(
        "high_latency_p95",
        "HighLatencyP95",
        1.0,
        ThresholdUnit::Seconds,
        "5m",
        Severity::Warning,
    ),
    rule(
        "high_memory",
        "HighMemoryUsage",
        0.9,
        ThresholdUnit::Fraction,
        "5m",
        Severity::Warning,
    ),
    rule(
        "high_cpu",
        "HighCPUUsage",
        0.8,
        ThresholdUnit::Fraction,
        "10m",
        Severity::Warning,
    ),
    rule(
        "database_connection_failures",
        "DatabaseConnectionFailures",
        // PostgreSQL refuses connections once max_connections are in use: alert on
        // the share in use (pg_stat_database_numbackends / max_connections).
        0.9,
        ThresholdUnit::Fraction,
        "2m",
        Severity::Critical,
    ),
    rule(
        "redis_connection_failures",
        "RedisConnectionFailures",
        0.1,
        ThresholdUnit::PerSecond,
        "2m",
        Severity::Critical,
    ),
    rule(
        "pod_restarting",
        "PodRestartingTooOften",
        3.0,
        ThresholdUnit::Count,
        "5m",
        Severity::Warning,
    ),
    rule(
        "disk_space_low",
        "DiskSpaceLow",
        0.1,
        ThresholdUnit::Fraction,
        "5m",
        Severity::Critical,
    ),
    rule(
        "stream_consumer_lag",
        "StreamConsumerLag",
        1000.0,
        ThresholdUnit::Count,
        "10m",
        Severity::Warning,
    ),
    rule(
        "stream_processing_stalled",
        "StreamProcessingStalled",
        0.0,
        ThresholdUnit::None,
        "10m",
        Severity::Critical,
    ),
    rule(
        "failed_auth_spike",
        "FailedAuthSpike",
        1.0,
        ThresholdUnit::PerSecond,
        "5m",
        Severity::Warning,
    ),
    rule(
        "vault_sealed",
        "VaultSealed",
        0.0,
        ThresholdUnit::None,
        "1m",
        Severity::Critical,
    ),
    rule(
        "backup_failed",
        "BackupFailed",
        0.0,
        ThresholdUnit::None,
        // Long enough for a retry to succeed before anyone is paged.
        "5m",
        Severity::Critical,
    ),
    rule(
        "backup_too_old",
        "BackupTooOld",
        0.0,
        ThresholdUnit::Seconds,
        "5m",
        Severity::Critical,
    ),
    // `for` defaults to `drift.for`: what runs differs from the files for that long.
    rule(
        "environment_drifted",
        "EnvironmentDrifted",
        0.0,
        ThresholdUnit::None,
        "30m",
        Severity::Warning,
    ),
    // The threshold is three intervals of `drift.schedule`, derived as
    // `backup_too_old`'s is.
    rule(
        "drift_check_failing",
        "DriftCheckFailing",
        0.0,
        ThresholdUnit::Seconds,
        "1m",
        Severity::Warning,
    ),
    // The threshold defaults to `rotation.transit_keys.every` plus a day, in seconds.
    rule(
        "key_rotation_overdue",
        "KeyRotationOverdue",
        0.0,
        ThresholdUnit::Seconds,
        "1h",
        Severity::Warning,
    ),
    // The threshold (seconds before expiry) defaults to half of what is left of a
    // certificate's life after its renewal point (`tls.lifetime`,
    // `tls.renew_at_percent`): a renewal that is that late has failed. On only with
    // TLS on.
    rule(
        "certificate_expiring_soon",
        "CertificateExpiringSoon",
        0.0,
        ThresholdUnit::Seconds,
        "10m",
        Severity::Warning,
    ),
    // Rendered only with `backup.pitr` on. The threshold defaults to five times
    // `backup.pitr.archive_timeout`, at least five minutes, in seconds.
    rule(
        "wal_archiving_stalled",
        "WALArchivingStalled",
        0.0,
        ThresholdUnit::Seconds,
        "5m",
        Severity::Critical,
    ),
    // Rendered only with `backup.pitr` on. The threshold defaults to
    // `backup.pitr.recovery_window`, in seconds.
    rule(
        "pitr_window_short",
        "PITRWindowShort",
        0.0,
        ThresholdUnit::Seconds,
        "1h",
        Severity::Warning,
    ),
];

/// A built-in dashboard and its panel ids.
#[derive(Debug, Clone, Copy)]
pub struct BoardDefault {
    /// Name (`postgres`), also the file stem.
    pub name: &'static str,
    /// Title shown in Grafana.
    pub title: &'static str,
    /// Panel ids that `hide_panels` may name.
    pub panels: &'static [&'static str],
}

/// Every built-in dashboard.
pub const BOARDS: &[BoardDefault] = &[
    BoardDefault {
        name: "overview",
        title: "Platform overview",
        panels: &[
            "services-up",
            "request-rate",
            "error-rate",
            "latency-p95",
            "firing-alerts",
        ],
    },
    BoardDefault {
        name: "apps",
        title: "Applications",
        panels: &[
            "request-rate",
            "error-rate",
            "latency-p95",
            "cpu",
            "memory",
            "restarts",
        ],
    },
    BoardDefault {
        name: "postgres",
        title: "PostgreSQL",
        panels: &[
            "up",
            "connections",
            "transactions",
            "database-size",
            "deadlocks",
        ],
    },
    BoardDefault {
        name: "redis",
        title: "Redis",
        panels: &["up", "clients", "memory", "commands", "hit-rate"],
    },
    BoardDefault {
        name: "nats",
        title: "NATS JetStream",
        panels: &["up", "stream-messages", "consumer-pending", "stream-bytes"],
    },
    BoardDefault {
        name: "vault",
        title: "Vault",
        panels: &["sealed", "requests", "token-creation"],
    },
    BoardDefault {
        name: "backups",
        title: "Backups",
        panels: &["last-success-age", "last-run", "size", "duration"],
    },
];
