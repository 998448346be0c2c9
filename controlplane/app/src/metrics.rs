//! The gauges of jobs, read at scrape time from what the jobs left: the
//! `controlplane_backup_*` gauges from each environment's `backup/metrics.json` (so
//! runs of the CLI or the CronJob count) and the `controlplane_drift_*` gauges from the
//! drift watch ([`crate::drift::Watch`]), `controlplane_transit_key_age_seconds` from
//! each environment's `rotation/state.json` ([`crate::rotate::Record`]),
//! `controlplane_tls_certificate_expiry_timestamp_seconds` from the certificates its
//! servers serve (`<unit>/tls/server.crt` in the state directory, as the process
//! platform keeps them), the `controlplane_pitr_*` series from `backup/pitr.json`
//! ([`crate::pitr::watch`]). A prometheus-client [`Collector`]: the server registers
//! it in its one registry.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

use crate::envs::Environments;
use crate::jobs::Jobs;

/// The certificate expiry gauge's name.
pub const CERT_EXPIRY_NAME: &str = "controlplane_tls_certificate_expiry_timestamp_seconds";

/// The server certificates in the state directory `dir`: each unit directory's
/// `tls/server.crt` (`postgres`, `nats-1`), by unit name.
pub fn server_certificates(
    dir: &cp_runtime::state::StateDir,
) -> Vec<(String, cp_runtime::tls::CertInfo)> {
    let Ok(entries) = std::fs::read_dir(dir.path()) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let info =
                cp_runtime::tls::CertInfo::read(&e.path().join(cp_runtime::tls::SERVER_CERT))?;
            Some((name, info))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Reads the jobs' gauges at each scrape.
#[derive(Debug)]
pub struct JobGauges {
    envs: Arc<Environments>,
    jobs: Jobs,
}

impl JobGauges {
    /// The gauges of `envs`' jobs in `jobs`.
    pub fn new(envs: Arc<Environments>, jobs: Jobs) -> Self {
        Self { envs, jobs }
    }
}

type Labels = Vec<(&'static str, String)>;

/// One metric family: its descriptor, then a sample per label set (nothing at all
/// when there are no samples, so an absent series stays absent).
fn write_family<V: Copy, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: prometheus_client::metrics::MetricType,
    samples: &[(Labels, V)],
    metric: impl Fn(V) -> M,
) -> Result<(), std::fmt::Error> {
    if samples.is_empty() {
        return Ok(());
    }
    let mut m = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in samples {
        metric(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

/// A gauge family.
fn family<V: prometheus_client::encoding::EncodeGaugeValue + Copy + std::fmt::Debug + Default>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: &[(Labels, V)],
) -> Result<(), std::fmt::Error>
where
    ConstGauge<V>: EncodeMetric,
{
    use prometheus_client::metrics::MetricType;
    write_family(
        encoder,
        name,
        help,
        MetricType::Gauge,
        values,
        ConstGauge::new,
    )
}

/// A counter family (`name` without `_total`: the encoder appends it).
fn counter_family(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: &[(Labels, u64)],
) -> Result<(), std::fmt::Error> {
    use prometheus_client::metrics::{MetricType, counter::ConstCounter};
    write_family(
        encoder,
        name,
        help,
        MetricType::Counter,
        values,
        ConstCounter::new,
    )
}

impl Collector for JobGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut last_success = Vec::new();
        let mut last_ok = Vec::new();
        let mut duration = Vec::new();
        let mut size = Vec::new();
        let mut configured = Vec::new();
        let mut last_run = Vec::new();
        let mut pending = Vec::new();
        let mut blocked = Vec::new();
        let mut checked = Vec::new();
        let mut key_age = Vec::new();
        let mut cert_expiry = Vec::new();
        let mut pitr_last = Vec::new();
        let mut pitr_failures = Vec::new();
        let mut pitr_pending = Vec::new();
        let mut pitr_start = Vec::new();
        let drift = self.jobs.drift().all();
        let now = chrono::Utc::now().timestamp();
        for t in self.envs.targets() {
            let env = t.env.clone();
            // Each transit key's age, from what the last rotation run read.
            if let Ok(Some(dir)) = cp_runtime::state::StateDir::open_existing(t.state_path()) {
                for (key, created) in crate::rotate::Record::read(&dir).keys {
                    key_age.push((
                        vec![("env", env.clone()), ("key", key)],
                        (now - created).max(0),
                    ));
                }
            }
            // PITR: what the last look at the archive and the archiver found.
            if let Ok(model) = self.envs.model(&env)
                && model.backup.as_ref().is_some_and(|b| b.pitr.is_some())
                && let Ok(Some(dir)) = cp_runtime::state::StateDir::open_existing(t.state_path())
            {
                let p = cp_backup::metrics::PitrMetrics::read(&dir);
                let l: Labels = vec![("env", env.clone())];
                if let Some(v) = p.last_archived_timestamp_seconds {
                    pitr_last.push((l.clone(), v));
                }
                if let Some(v) = p.archive_failures_total {
                    pitr_failures.push((l.clone(), u64::try_from(v).unwrap_or(0)));
                }
                if let Some(v) = p.archive_pending_segments {
                    pitr_pending.push((l.clone(), v));
                }
                if let Some(v) = p.window_start_timestamp_seconds {
                    pitr_start.push((l, v));
                }
            }
            if let Ok(model) = self.envs.model(&env)
                && model.tls.enabled()
                && let Ok(Some(dir)) = cp_runtime::state::StateDir::open_existing(t.state_path())
            {
                for (service, info) in server_certificates(&dir) {
                    cert_expiry.push((
                        vec![("env", env.clone()), ("service", service)],
                        info.not_after,
                    ));
                }
            }
            if let Ok(model) = self.envs.model(&env)
                && let Some(b) = &model.backup
            {
                // The first scrape that sees backups configured records when (once,
                // in the state directory; never for an environment not brought up).
                let dir = cp_runtime::state::StateDir::open_existing(t.state_path())
                    .ok()
                    .flatten();
                let m = dir
                    .as_ref()
                    .map(cp_backup::metrics::Metrics::read)
                    .unwrap_or_default();
                let c = dir
                    .as_ref()
                    .map(|d| {
                        cp_backup::metrics::Configured::ensure(
                            d,
                            &b.services,
                            chrono::Utc::now().timestamp(),
                        )
                    })
                    .unwrap_or_default();
                for s in &b.services {
                    let l: Labels = vec![("env", env.clone()), ("service", s.as_str().to_owned())];
                    if let Some(at) = c.services.get(s) {
                        configured.push((l.clone(), *at));
                    }
                    // 0 for a service that never ran: it has not failed.
                    last_run.push((
                        l.clone(),
                        cp_backup::metrics::ServiceMetrics::last_run(m.services.get(s)),
                    ));
                    let v = m.services.get(s).cloned().unwrap_or_default();
                    last_success.push((l.clone(), v.last_success_timestamp_seconds));
                    last_ok.push((l.clone(), i64::from(v.last_run_success)));
                    duration.push((l.clone(), v.duration_seconds));
                    size.push((l, i64::try_from(v.size_bytes).unwrap_or(i64::MAX)));
                }
            }
            let Some(d) = drift.get(&env) else { continue };
            if let Some(view) = &d.last {
                for l in &view.layers {
                    let labels: Labels =
                        vec![("env", env.clone()), ("layer", l.layer.as_str().to_owned())];
                    pending.push((labels.clone(), i64::try_from(l.pending).unwrap_or(i64::MAX)));
                    blocked.push((labels, i64::try_from(l.blocked).unwrap_or(i64::MAX)));
                }
            }
            if let Some(at) = d.last_success {
                checked.push((vec![("env", env.clone())], at.timestamp()));
            }
        }
        family(
            &mut encoder,
            "controlplane_backup_last_success_timestamp_seconds",
            "Unix time of the last successful backup (0: never).",
            &last_success,
        )?;
        family(
            &mut encoder,
            "controlplane_backup_last_run_success",
            "1 when the last backup run succeeded (0 too before the first run).",
            &last_ok,
        )?;
        family(
            &mut encoder,
            "controlplane_backup_duration_seconds",
            "Duration of the last backup run.",
            &duration,
        )?;
        family(
            &mut encoder,
            "controlplane_backup_size_bytes",
            "Stored size of the last successful backup.",
            &size,
        )?;
        family(
            &mut encoder,
            cp_backup::metrics::LAST_RUN_NAME,
            cp_backup::metrics::LAST_RUN_HELP,
            &last_run,
        )?;
        family(
            &mut encoder,
            cp_backup::metrics::CONFIGURED_NAME,
            cp_backup::metrics::CONFIGURED_HELP,
            &configured,
        )?;
        family(
            &mut encoder,
            "controlplane_drift_changes_pending",
            "Changes `controlplane up` would make, by layer, at the last drift check.",
            &pending,
        )?;
        family(
            &mut encoder,
            "controlplane_drift_blocked",
            "Changes `controlplane up` refuses, by layer, at the last drift check.",
            &blocked,
        )?;
        family(
            &mut encoder,
            "controlplane_transit_key_age_seconds",
            "Seconds since the newest version of a managed transit key was made, as the last rotation run read it.",
            &key_age,
        )?;
        family(
            &mut encoder,
            CERT_EXPIRY_NAME,
            "Unix time at which the certificate a server of the environment serves expires (renewed at tls.renew_at_percent of its lifetime).",
            &cert_expiry,
        )?;
        family(
            &mut encoder,
            "controlplane_pitr_last_archived_timestamp_seconds",
            "Unix time the newest WAL segment reached the PITR archive.",
            &pitr_last,
        )?;
        counter_family(
            &mut encoder,
            "controlplane_pitr_archive_failures",
            "Failed WAL archiving attempts (pg_stat_archiver.failed_count).",
            &pitr_failures,
        )?;
        family(
            &mut encoder,
            "controlplane_pitr_archive_pending_segments",
            "WAL files waiting to be archived (.ready in pg_wal/archive_status).",
            &pitr_pending,
        )?;
        family(
            &mut encoder,
            "controlplane_pitr_window_start_timestamp_seconds",
            "Unix time of the earliest moment a point-in-time restore can reach.",
            &pitr_start,
        )?;
        family(
            &mut encoder,
            "controlplane_drift_last_check_timestamp_seconds",
            "Unix time of the last successful drift check.",
            &checked,
        )?;
        Ok(())
    }
}
