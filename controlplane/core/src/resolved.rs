//! The resolved environment written back in the file format: what `controlplane config`
//! prints.
//!
//! The model is not the file format: it holds what validation derived (a schedule's
//! longest gap, alert names, port numbers behind health checks) and leaves out what is
//! disabled. [`to_raw`] turns it back into a [`RawEnvironment`] with every default spelled
//! out and every switch explicit, so the output is a complete environment file: loaded
//! on its own (an empty or missing `base.yaml`), it gives the same model. Secrets stay
//! references; a dev inline value prints as `<redacted>`, never as itself.

use std::collections::BTreeMap;

use crate::catalog::{BOARDS, RULES, ThresholdUnit};
use crate::model::*;
use crate::raw::*;
use crate::units::{Cpu, Memory, SecretRef};

/// The environment as a complete environment file.
pub fn to_raw(env: &Environment) -> RawEnvironment {
    RawEnvironment {
        project: Some(env.project.clone()),
        tier: Some(env.tier),
        platform: Some(env.platform),
        namespace: Some(env.namespace.clone()),
        domain: Some(env.domain.clone()),
        services: services(&env.services),
        apps: env
            .apps
            .iter()
            .map(|(n, a)| (n.to_string(), Some(app(a))))
            .collect(),
        extras: env
            .extras
            .iter()
            .map(|(n, e)| (n.to_string(), Some(extra(e))))
            .collect(),
        monitoring: monitoring(env.monitoring.as_ref()),
        streams: env
            .streams
            .iter()
            .map(|(n, s)| (n.to_string(), Some(stream(s))))
            .collect(),
        vault: vault_config(&env.vault),
        backup: backup(env.backup.as_ref()),
        drift: RawDrift {
            schedule: Some(env.drift.schedule.cron.clone()),
            for_: Some(env.drift.for_.to_string()),
            webhook_url: env.drift.webhook_url.as_ref().and_then(secret),
        },
        rotation: RawRotation {
            schedule: Some(env.rotation.schedule.cron.clone()),
            transit_keys: RawRotateKeys {
                every: Some(env.rotation.keys_every.to_string()),
                keep_versions: Some(env.rotation.keep_versions),
            },
            passwords: RawRotatePasswords {
                every: Some(env.rotation.passwords_every.to_string()),
            },
        },
        alerts: alerts(env),
        dashboards: dashboards(&env.dashboards),
        accept: env
            .accept
            .iter()
            .map(|a| RawAccept {
                rule: a.rule.clone(),
                reason: a.reason.clone(),
            })
            .collect(),
        tls: tls(&env.tls),
        serve: crate::raw::RawServe {
            tokens: crate::raw::RawServeTokens {
                max_ttl: crate::raw::RawTokenMaxTtl {
                    viewer: env
                        .serve
                        .token_max_ttl
                        .viewer
                        .as_ref()
                        .map(ToString::to_string),
                    editor: env
                        .serve
                        .token_max_ttl
                        .editor
                        .as_ref()
                        .map(ToString::to_string),
                    admin: env
                        .serve
                        .token_max_ttl
                        .admin
                        .as_ref()
                        .map(ToString::to_string),
                },
            },
        },
    }
}

fn tls(t: &crate::model::Tls) -> RawTls {
    let (ca, ca_cert, ca_key) = match &t.ca {
        crate::model::TlsCa::Generate => (crate::raw::TlsCa::Generate, None, None),
        crate::model::TlsCa::VaultPki => (crate::raw::TlsCa::VaultPki, None, None),
        crate::model::TlsCa::Ref { cert, key } => {
            (crate::raw::TlsCa::Ref, secret(cert), secret(key))
        }
    };
    RawTls {
        mode: Some(t.mode),
        min_version: Some(t.min_version),
        lifetime: Some(t.lifetime.to_string()),
        renew_at_percent: Some(t.renew_at_percent),
        ca: Some(ca),
        ca_cert,
        ca_key,
        issuer: crate::raw::RawTlsIssuer {
            cluster_issuer: t.cluster_issuer.clone(),
        },
        acme_issuers: t
            .acme_issuers
            .iter()
            .map(|(name, a)| {
                (
                    name.clone(),
                    crate::raw::RawAcmeIssuer {
                        email: Some(a.email.clone()),
                        server: Some(a.server.clone()),
                        ingress_class: Some(a.ingress_class.clone()),
                    },
                )
            })
            .collect(),
    }
}

/// [`to_raw`] as YAML, without the `null`s and empty mappings of settings left unset.
pub fn to_yaml(env: &Environment) -> Result<String, serde_saphyr::SerializeError> {
    let mut value = serde_json::to_value(to_raw(env)).expect("the file format serializes");
    prune(&mut value);
    serde_saphyr::to_string(&value)
}

/// Drops `null`s and the mappings left empty by that. Nothing [`to_raw`] writes means
/// something as an empty mapping: blocks whose presence switches a feature on (an
/// ingress, autoscaling) always carry their resolved settings.
fn prune(v: &mut serde_json::Value) {
    use serde_json::Value as J;
    match v {
        J::Object(map) => {
            for child in map.values_mut() {
                prune(child);
            }
            map.retain(|_, c| !c.is_null() && !matches!(c, J::Object(m) if m.is_empty()));
        }
        J::Array(items) => items.iter_mut().for_each(prune),
        _ => {}
    }
}

fn secret(s: &SecretRef) -> Option<String> {
    Some(s.to_string())
}

fn resources(r: &Resources) -> Option<RawResources> {
    let amounts = |a: &Amounts| {
        (a.cpu.is_some() || a.memory.is_some()).then(|| RawResourceAmounts {
            cpu: a.cpu.as_ref().map(|c: &Cpu| c.as_str().to_owned()),
            memory: a.memory.as_ref().map(|m: &Memory| m.as_str().to_owned()),
        })
    };
    let (requests, limits) = (amounts(&r.requests), amounts(&r.limits));
    (requests.is_some() || limits.is_some()).then_some(RawResources { requests, limits })
}

/// The settings every core service has, in the raw shape; `enabled: false` when off.
macro_rules! common_out {
    ($raw:ident, $common:expr) => {{
        let c: &ServiceCommon = $common;
        $raw {
            enabled: Some(true),
            version: Some(c.version.clone()),
            image: Some(c.image.clone()),
            port: Some(c.port),
            replicas: Some(c.replicas),
            storage: Some(c.storage.as_str().to_owned()),
            resources: resources(&c.resources),
            ..$raw::default()
        }
    }};
}

fn disabled<T: Default>(set: impl FnOnce(&mut T)) -> T {
    let mut t = T::default();
    set(&mut t);
    t
}

fn services(s: &CoreServices) -> RawServices {
    RawServices {
        postgres: s.postgres.as_ref().map_or_else(
            || disabled(|p: &mut RawPostgres| p.enabled = Some(false)),
            |p| RawPostgres {
                database: Some(p.database.clone()),
                superuser_password: secret(&p.superuser_password),
                admin_password: secret(&p.admin_password),
                app_password: secret(&p.app_password),
                readonly_password: secret(&p.readonly_password),
                backup_password: secret(&p.backup_password),
                settings: p.settings.clone(),
                ..common_out!(RawPostgres, &p.common)
            },
        ),
        redis: s.redis.as_ref().map_or_else(
            || disabled(|r: &mut RawRedis| r.enabled = Some(false)),
            |r| RawRedis {
                admin_password: secret(&r.admin_password),
                app_password: secret(&r.app_password),
                maxmemory: r.maxmemory.clone(),
                maxmemory_policy: r.maxmemory_policy.clone(),
                ..common_out!(RawRedis, &r.common)
            },
        ),
        nats: s.nats.as_ref().map_or_else(
            || disabled(|n: &mut RawNats| n.enabled = Some(false)),
            |n| RawNats {
                monitor_port: Some(n.monitor_port),
                cluster_port: Some(n.cluster_port),
                app_user: Some(n.app_user.clone()),
                sync: n.sync.as_ref().map(ToString::to_string),
                app_password: secret(&n.app_password),
                admin_password: secret(&n.admin_password),
                max_memory: Some(n.max_memory.as_str().to_owned()),
                max_file: Some(n.max_file.as_str().to_owned()),
                ..common_out!(RawNats, &n.common)
            },
        ),
        vault: s.vault.as_ref().map_or_else(
            || disabled(|v: &mut RawVault| v.enabled = Some(false)),
            |v| RawVault {
                cluster_port: Some(v.cluster_port),
                mode: Some(v.mode),
                binary: Some(v.binary.clone()),
                dev_root_token: v.dev_root_token.as_ref().and_then(secret),
                unseal: Some(match &v.unseal {
                    UnsealKeys::State => "state".to_owned(),
                    UnsealKeys::Env(name) => format!("env://{name}"),
                }),
                ..common_out!(RawVault, &v.common)
            },
        ),
    }
}

fn app(a: &App) -> RawApp {
    RawApp {
        enabled: Some(true),
        image: Some(a.image.clone()),
        tag: Some(a.tag.clone()),
        port: Some(a.port),
        metrics_port: Some(a.metrics_port),
        replicas: Some(a.replicas),
        resources: resources(&a.resources),
        autoscaling: Some(a.autoscaling.as_ref().map_or_else(
            || disabled(|s: &mut RawAutoscaling| s.enabled = Some(false)),
            |s| RawAutoscaling {
                enabled: Some(true),
                min_replicas: Some(s.min_replicas),
                max_replicas: Some(s.max_replicas),
                cpu_utilization: s.cpu_utilization,
                memory_utilization: s.memory_utilization,
            },
        )),
        disruption_budget: Some(a.disruption_budget.as_ref().map_or_else(
            || disabled(|d: &mut RawDisruptionBudget| d.enabled = Some(false)),
            |d| RawDisruptionBudget {
                enabled: Some(true),
                min_available: Some(d.min_available),
            },
        )),
        health: Some(RawHealthPaths {
            liveness: Some(a.health.liveness.clone()),
            readiness: Some(a.health.readiness.clone()),
            initial_delay_seconds: Some(a.health.initial_delay_seconds),
            period_seconds: Some(a.health.period_seconds),
        }),
        ingress: Some(a.ingress.as_ref().map_or_else(
            || disabled(|i: &mut RawIngress| i.enabled = Some(false)),
            |i| RawIngress {
                enabled: Some(true),
                host: Some(i.host.clone()),
                path: Some(i.path.clone()),
                class: Some(i.class.clone()),
                tls: Some(i.tls),
                cluster_issuer: i.cluster_issuer.clone(),
            },
        )),
        log_level: Some(a.log_level),
        env: a.env.clone(),
        secrets: secrets(&a.secrets),
        depends_on: Some(a.depends_on.iter().map(ToString::to_string).collect()),
        uses: Some(app_uses(&a.uses)),
        worm_storage: a.worm_storage.as_ref().map(|w| RawWormStorage {
            path: Some(w.path.clone()),
            size: Some(w.size.as_str().to_owned()),
        }),
    }
}

fn app_uses(u: &AppUses) -> RawAppUses {
    RawAppUses {
        postgres: u.postgres.as_ref().map(|p| RawAppPostgres {
            database: p.own_database.then(|| p.database.clone()),
            schema: (!p.own_database).then(|| p.schema.clone()),
            role: Some(p.role.clone()),
            password: secret(&p.password),
        }),
        nats: u.nats.as_ref().map(|n| RawAppNats {
            publish: n.publish.clone(),
            subscribe: n.subscribe.clone(),
            password: secret(&n.password),
        }),
        redis: u.redis.as_ref().map(|r| RawAppRedis {
            prefix: Some(r.prefix.clone()),
            password: secret(&r.password),
        }),
        vault: u.vault.as_ref().map(|v| RawAppVault {
            paths: Some(v.paths.clone()),
        }),
        oidc: u.oidc.as_ref().map(|o| RawAppOidc {
            issuer_url: Some(o.issuer_url.clone()),
            client_id: Some(o.client_id.clone()),
            audience: o.audience.clone(),
        }),
    }
}

fn secrets(s: &BTreeMap<String, SecretRef>) -> BTreeMap<String, String> {
    s.iter().map(|(k, v)| (k.clone(), v.to_string())).collect()
}

fn extra(e: &Extra) -> RawExtra {
    RawExtra {
        enabled: Some(true),
        image: Some(e.image.clone()),
        command: e.command.clone(),
        args: e.args.clone(),
        ports: e.ports.clone(),
        env: e.env.clone(),
        secrets: secrets(&e.secrets),
        health: e.health.as_ref().map(|h| match h {
            // Validation split `PORTNAME/rest` and kept the path with its `/`.
            ExtraHealth::Http {
                port_name, path, ..
            } => RawExtraHealth {
                http: Some(format!("{port_name}{path}")),
                ..RawExtraHealth::default()
            },
            ExtraHealth::Tcp { port_name, .. } => RawExtraHealth {
                tcp: Some(port_name.clone()),
                ..RawExtraHealth::default()
            },
            ExtraHealth::Command { argv } => RawExtraHealth {
                command: Some(argv.clone()),
                ..RawExtraHealth::default()
            },
        }),
        volumes: e.volumes.clone(),
        storage: Some(e.storage.as_str().to_owned()),
        replicas: Some(e.replicas),
        resources: resources(&e.resources),
        depends_on: Some(e.depends_on.iter().map(ToString::to_string).collect()),
        metrics_port: e.metrics_port.clone(),
    }
}

fn monitoring(m: Option<&Monitoring>) -> RawMonitoring {
    let Some(m) = m else {
        return disabled(|r: &mut RawMonitoring| r.enabled = Some(false));
    };
    let component = |c: &Option<Component>| {
        Some(c.as_ref().map_or_else(
            || disabled(|r: &mut RawComponent| r.enabled = Some(false)),
            |c| RawComponent {
                enabled: Some(true),
                image: Some(c.image.clone()),
                port: Some(c.port),
                resources: resources(&c.resources),
            },
        ))
    };
    RawMonitoring {
        enabled: Some(true),
        scrape_interval: Some(m.scrape_interval.to_string()),
        evaluation_interval: Some(m.evaluation_interval.to_string()),
        prometheus: component(&m.prometheus),
        alertmanager: component(&m.alertmanager),
        grafana: component(&m.grafana),
        postgres_exporter: component(&m.postgres_exporter),
        redis_exporter: component(&m.redis_exporter),
        nats_exporter: component(&m.nats_exporter),
        node_exporter: component(&m.node_exporter),
        webhook_url: m.webhook_url.as_ref().and_then(secret),
        notify: Some(RawNotify {
            group_wait: Some(m.notify.group_wait.to_string()),
            group_interval: Some(m.notify.group_interval.to_string()),
            repeat_interval: Some(m.notify.repeat_interval.to_string()),
        }),
        controlplane: Some(m.controlplane.as_ref().map_or_else(
            || disabled(|r: &mut RawScrapeTarget| r.enabled = Some(false)),
            |t| RawScrapeTarget {
                enabled: Some(true),
                port: Some(t.port),
            },
        )),
        grafana_admin_password: secret(&m.grafana_admin_password),
    }
}

fn stream(s: &Stream) -> RawStream {
    RawStream {
        subjects: Some(s.subjects.clone()),
        retention: Some(s.retention),
        max_age: Some(s.max_age.to_string()),
        // The model keeps bytes only; a plain number of bytes is a valid quantity.
        max_bytes: s.max_bytes.map(|b| b.to_string()),
        max_msgs: s.max_msgs,
        storage: Some(s.storage),
        replicas: Some(s.replicas),
        discard: Some(s.discard),
        duplicate_window: Some(s.duplicate_window.to_string()),
        max_consumer_lag: Some(s.max_consumer_lag),
    }
}

fn vault_config(v: &VaultConfig) -> RawVaultConfig {
    RawVaultConfig {
        kv_mount: Some(v.kv_mount.clone()),
        transit_mount: Some(v.transit_mount.clone()),
        keys: Some(v.keys.clone()),
        policies: v
            .policies
            .iter()
            .map(|(name, rules)| {
                let rules = rules
                    .iter()
                    .map(|r| RawPolicyRule {
                        path: Some(r.path.clone()),
                        capabilities: Some(r.capabilities.clone()),
                    })
                    .collect();
                (name.clone(), Some(rules))
            })
            .collect(),
        app_role: Some(RawAppRole {
            name: Some(v.app_role.name.clone()),
            policies: Some(v.app_role.policies.clone()),
            token_ttl: Some(v.app_role.token_ttl.to_string()),
            token_max_ttl: Some(v.app_role.token_max_ttl.to_string()),
        }),
        audit_log: Some(v.audit_log.clone()),
        kubernetes_auth: Some(crate::raw::RawKubernetesAuth {
            mount_path: Some(v.kubernetes_auth.mount_path.clone()),
            role: Some(v.kubernetes_auth.role.clone()),
        }),
    }
}

fn backup(b: Option<&Backup>) -> RawBackup {
    let Some(b) = b else {
        return disabled(|r: &mut RawBackup| r.enabled = Some(false));
    };
    RawBackup {
        enabled: Some(true),
        schedule: Some(b.schedule.cron.clone()),
        services: Some(b.services.iter().map(|k| k.as_str().to_owned()).collect()),
        retention: Some(RawRetention {
            daily: Some(b.retention.daily),
            weekly: Some(b.retention.weekly),
            monthly: Some(b.retention.monthly),
        }),
        compression_level: Some(b.compression_level),
        pitr: Some(match &b.pitr {
            Some(p) => crate::raw::RawPitr {
                enabled: Some(true),
                archive_timeout: Some(p.archive_timeout.as_str().to_owned()),
                base_schedule: Some(p.base_schedule.cron.clone()),
                recovery_window: Some(p.recovery_window.as_str().to_owned()),
                destination: Some(p.destination.clone()),
            },
            None => crate::raw::RawPitr {
                enabled: Some(false),
                ..crate::raw::RawPitr::default()
            },
        }),
        encrypt_to: Some(b.encrypt_to.clone()),
        identity: b.identity.as_ref().and_then(secret),
        vault_token: b.vault_token.as_ref().and_then(secret),
        destinations: b
            .destinations
            .iter()
            .map(|(name, d)| {
                let d = match d {
                    Destination::Local { path } => RawDestination {
                        kind: Some(DestinationKind::Local),
                        path: Some(path.clone()),
                        ..RawDestination::default()
                    },
                    Destination::S3 {
                        bucket,
                        prefix,
                        region,
                        endpoint,
                        access_key_id,
                        secret_access_key,
                    } => RawDestination {
                        kind: Some(DestinationKind::S3),
                        bucket: Some(bucket.clone()),
                        prefix: Some(prefix.clone()),
                        region: region.clone(),
                        endpoint: endpoint.clone(),
                        access_key_id: access_key_id.as_ref().and_then(secret),
                        secret_access_key: secret_access_key.as_ref().and_then(secret),
                        ..RawDestination::default()
                    },
                    Destination::Gcs {
                        bucket,
                        prefix,
                        service_account_key,
                    } => RawDestination {
                        kind: Some(DestinationKind::Gcs),
                        bucket: Some(bucket.clone()),
                        prefix: Some(prefix.clone()),
                        service_account_key: service_account_key.as_ref().and_then(secret),
                        ..RawDestination::default()
                    },
                    Destination::Azure {
                        account,
                        container,
                        prefix,
                        access_key,
                    } => RawDestination {
                        kind: Some(DestinationKind::Azure),
                        bucket: Some(container.clone()),
                        prefix: Some(prefix.clone()),
                        account: Some(account.clone()),
                        secret_access_key: access_key.as_ref().and_then(secret),
                        ..RawDestination::default()
                    },
                };
                (name.clone(), Some(d))
            })
            .collect(),
        max_age: Some(b.max_age.to_string()),
    }
}

fn alerts(env: &Environment) -> RawAlerts {
    let mut rules = RawAlertRules::default();
    for def in RULES {
        let Some(r) = env.alerts.rules.get(def.key) else {
            continue;
        };
        // A rule without a threshold refuses one; `backup_too_old` follows
        // `backup.max_age` unless its threshold was set apart from it.
        let derived = env.backup.as_ref().map(|b| b.max_age.as_secs() as f64);
        let threshold = match def.unit {
            ThresholdUnit::None => None,
            _ if def.key == "backup_too_old" && derived.unwrap_or(0.0) == r.threshold => None,
            _ if def.key == "drift_check_failing"
                && (3 * env.drift.schedule.max_interval.as_secs()) as f64 == r.threshold =>
            {
                None
            }
            _ if def.key == "certificate_expiring_soon"
                && crate::validate::certificate_expiring_soon_default(&env.tls) == r.threshold =>
            {
                None
            }
            _ if def.key == "key_rotation_overdue"
                && (env.rotation.keys_every.as_secs() + 86_400) as f64 == r.threshold =>
            {
                None
            }
            _ if crate::validate::pitr_default(def.key, env.backup.as_ref())
                == Some(r.threshold) =>
            {
                None
            }
            _ => Some(r.threshold),
        };
        *rule_slot(&mut rules, def.key) = Some(RawRule {
            enabled: Some(r.enabled),
            for_: Some(r.for_.to_string()),
            severity: Some(r.severity),
            threshold,
        });
    }
    RawAlerts {
        rules,
        custom: Some(
            env.alerts
                .custom
                .iter()
                .map(|c| RawCustomRule {
                    alert: Some(c.alert.clone()),
                    expr: Some(c.expr.clone()),
                    for_: Some(c.for_.to_string()),
                    severity: Some(c.severity),
                    summary: Some(c.summary.clone()),
                })
                .collect(),
        ),
        runbook_base: Some(env.alerts.runbook_base.clone()),
    }
}

fn rule_slot<'r>(rules: &'r mut RawAlertRules, key: &str) -> &'r mut Option<RawRule> {
    match key {
        "service_down" => &mut rules.service_down,
        "high_error_rate" => &mut rules.high_error_rate,
        "high_latency_p95" => &mut rules.high_latency_p95,
        "high_memory" => &mut rules.high_memory,
        "high_cpu" => &mut rules.high_cpu,
        "database_connection_failures" => &mut rules.database_connection_failures,
        "redis_connection_failures" => &mut rules.redis_connection_failures,
        "pod_restarting" => &mut rules.pod_restarting,
        "disk_space_low" => &mut rules.disk_space_low,
        "stream_consumer_lag" => &mut rules.stream_consumer_lag,
        "stream_processing_stalled" => &mut rules.stream_processing_stalled,
        "failed_auth_spike" => &mut rules.failed_auth_spike,
        "vault_sealed" => &mut rules.vault_sealed,
        "backup_failed" => &mut rules.backup_failed,
        "backup_too_old" => &mut rules.backup_too_old,
        "environment_drifted" => &mut rules.environment_drifted,
        "drift_check_failing" => &mut rules.drift_check_failing,
        "key_rotation_overdue" => &mut rules.key_rotation_overdue,
        "certificate_expiring_soon" => &mut rules.certificate_expiring_soon,
        "wal_archiving_stalled" => &mut rules.wal_archiving_stalled,
        "pitr_window_short" => &mut rules.pitr_window_short,
        other => unreachable!("the catalogue has no rule `{other}` outside RawAlertRules"),
    }
}

fn dashboards(d: &Dashboards) -> RawDashboards {
    RawDashboards {
        enabled: Some(d.enabled),
        refresh: Some(d.refresh.to_string()),
        time_range: Some(d.time_range.to_string()),
        boards: BOARDS
            .iter()
            .map(|def| {
                let board = match d.boards.get(def.name) {
                    Some(b) => RawBoard {
                        enabled: Some(true),
                        hide_panels: Some(b.hide_panels.clone()),
                    },
                    None => disabled(|b: &mut RawBoard| b.enabled = Some(false)),
                };
                (def.name.to_owned(), Some(board))
            })
            .collect(),
    }
}
