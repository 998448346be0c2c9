//! Monitoring on the process platform, proven by a real Prometheus: `controlplane up`
//! runs the dev environment with its monitoring stack (Prometheus, Alertmanager,
//! postgres_exporter, redis_exporter from the Debian packages, `controlplane
//! exporter nats`) on free loopback ports. Then:
//!
//! 1. every scrape target is up, Prometheus loaded every rendered rule, and every
//!    series selector of every alert rule, recording rule and dashboard query matches
//!    a series there, or is conditional with its reason ([`CONDITIONAL`]); a rule
//!    selecting a misspelt metric is a finding (also shown against this Prometheus);
//! 2. Redis is killed: `ServiceDown` for redis fires (its `for` shortened through the
//!    environment with `--set`), `controlplane alerts` lists it, and Alertmanager
//!    delivers it to a webhook receiver this test runs on loopback; `up` restarts
//!    Redis and the alert resolves, the receiver told so too.
//! 3. With `controlplane serve` running (scraped as job `controlplane`): after a
//!    backup of everything nothing fires; then Redis's backup fails (Redis killed
//!    again) and `BackupFailed` fires for redis from serve's `/metrics`; then its last
//!    success is made two days old in the backup state file serve reads at each scrape
//!    (backups stopped since; their first-configured time moved back too) and
//!    `BackupTooOld` fires for redis, not for the others.
//! 4. Drift: serve checks every minute (`drift.schedule`). A Vault policy deleted and
//!    a role altered out of band show in `controlplane_drift_changes_pending` for
//!    `vault` and `database`, `EnvironmentDrifted` fires in Prometheus and the drift
//!    webhook (a loopback receiver, its URL a secret reference) receives the summary;
//!    `up` repairs, the gauges return to 0 and the alert resolves.
//!
//! Scrape and evaluation intervals and Alertmanager's timers are shortened through
//! the environment too; every wait polls the real thing under a deadline.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod common;
use common::{controlplane, text};

use cp_runtime::probe::Endpoint;
use cp_runtime::prometheus::Prometheus;
use cp_testkit::promcheck::{self, Conditional, Expr, Origin};
use serde_json::Value;

const KUBE_STATE: &str = "kube-state-metrics: Kubernetes only";
const CADVISOR: &str = "cAdvisor (the kubelet): Kubernetes only";
const KUBELET: &str = "the kubelet's volume stats: Kubernetes only";
const KUBE_RECORDED: &str = "recorded on Kubernetes only (the PrometheusRule's variant of the rules); the apps dashboard reads it, per container";
const APPS: &str =
    "exported by the apps, which the process platform does not run (this test turns them off)";

/// The metrics that have no series on the process platform, and why. Exact names: a
/// misspelling of one of them is still a finding.
/// The PITR series exist only with `backup.pitr` on, which this test's dev leaves
/// off (cp-server's api test reads them from a real archive's window).
const PITR_OFF: &str =
    "exported only with backup.pitr on (off in this test's dev; the server's api test checks them)";
const CONDITIONAL: &[Conditional] = &[
    Conditional {
        metric: "controlplane_pitr_last_archived_timestamp_seconds",
        reason: PITR_OFF,
    },
    Conditional {
        metric: "controlplane_pitr_archive_pending_segments",
        reason: PITR_OFF,
    },
    Conditional {
        metric: "controlplane_pitr_window_start_timestamp_seconds",
        reason: PITR_OFF,
    },
    Conditional {
        metric: "namespace_pod_container:memory_usage:ratio",
        reason: KUBE_RECORDED,
    },
    Conditional {
        metric: "namespace_pod_container:cpu_usage:ratio_rate5m",
        reason: KUBE_RECORDED,
    },
    Conditional {
        metric: "namespace_pod_container:restarts:increase1h",
        reason: KUBE_RECORDED,
    },
    Conditional {
        metric: "kube_pod_container_status_restarts_total",
        reason: KUBE_STATE,
    },
    Conditional {
        metric: "kube_pod_container_resource_limits",
        reason: KUBE_STATE,
    },
    Conditional {
        metric: "container_memory_working_set_bytes",
        reason: CADVISOR,
    },
    Conditional {
        metric: "container_cpu_usage_seconds_total",
        reason: CADVISOR,
    },
    Conditional {
        metric: "kubelet_volume_stats_available_bytes",
        reason: KUBELET,
    },
    Conditional {
        metric: "kubelet_volume_stats_capacity_bytes",
        reason: KUBELET,
    },
    Conditional {
        metric: "http_requests_total",
        reason: APPS,
    },
    Conditional {
        metric: "http_request_duration_seconds_bucket",
        reason: APPS,
    },
    Conditional {
        metric: "controlplane_transit_key_age_seconds",
        reason: "serve exports it once a rotation run (`controlplane rotate keys` or a slot of `rotation.schedule`, daily by default) has read the keys",
    },
    Conditional {
        metric: "ALERTS",
        reason: "Prometheus's own series, only while an alert is pending or firing",
    },
];

/// `--set`s that make Prometheus scrape `controlplane serve` listening on
/// `127.0.0.1:port` as job `controlplane` (its `/metrics`).
fn serve_target_sets(port: u16) -> Vec<String> {
    vec![
        "monitoring.controlplane.enabled=true".into(),
        format!("monitoring.controlplane.port={port}"),
    ]
}

/// `controlplane serve --only dev` on `127.0.0.1:port` with the stack's `--set`s,
/// stopped (SIGTERM, then reaped) when dropped.
struct Serve {
    _down: cp_testkit::Down,
}

impl Serve {
    async fn start(stack: &Stack, port: u16, drift_hook: &str) -> Self {
        #[allow(clippy::disallowed_methods)] // the binary under test, by path
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_controlplane"));
        cmd.current_dir(cp_testkit::repo_root())
            .arg("--state-dir")
            .arg(&stack.state)
            .env_remove("CONTROLPLANE_ENV")
            .env_remove("CONTROLPLANE_ENVIRONMENTS")
            .env_remove("VAULT_TOKEN")
            // `drift.webhook_url=env://CP_DRIFT_HOOK`: a secret reference.
            .env("CP_DRIFT_HOOK", drift_hook);
        for s in &stack.sets {
            cmd.args(["--set", s]);
        }
        let server_dir = stack.state.with_file_name("server");
        cmd.args(["serve", "--only", "dev", "--probe-interval", "1s"])
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--server-dir")
            .arg(&server_dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let serve = Self {
            _down: cp_testkit::Down::process(cmd.spawn().expect("start controlplane serve")),
        };
        let url = format!("http://127.0.0.1:{port}/healthz");
        until(
            "serve answering /healthz",
            Duration::from_secs(30),
            || async {
                match reqwest::get(&url).await {
                    Ok(r) if r.status().is_success() => Ok(()),
                    Ok(r) => Err(r.status().to_string()),
                    Err(e) => Err(e.to_string()),
                }
            },
        )
        .await;
        serve
    }
}

/// Whether `alert` is firing for backups of `service`.
fn backup_alert(v: &Value, alert: &str, service: &str) -> bool {
    v["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|a| a["alert"] == alert && a["labels"]["service"] == service && a["state"] == "firing")
}

/// Polls `f` every 200 ms until it gives a value; panics with its last word at the
/// deadline.
async fn until<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() >= deadline => {
                panic!("{what}: not within {within:?}; last: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// An Alertmanager webhook receiver on loopback: keeps every notification's body.
struct Webhook {
    url: String,
    got: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    async fn start() -> Self {
        use axum::routing::post;
        let got: Arc<Mutex<Vec<Value>>> = Arc::default();
        let keep = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            post(move |body: String| {
                let keep = keep.clone();
                async move {
                    let v: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
                    keep.lock().unwrap().push(v);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, got }
    }

    /// How many notifications arrived so far.
    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    /// Whether a notification after the first `since` told of `alertname` for `job`
    /// with `status` (`firing`, `resolved`).
    fn told(&self, since: usize, alertname: &str, job: &str, status: &str) -> bool {
        self.got.lock().unwrap().iter().skip(since).any(|n| {
            n["alerts"].as_array().into_iter().flatten().any(|a| {
                a["labels"]["alertname"] == alertname
                    && a["labels"]["job"] == job
                    && a["status"] == status
            })
        })
    }

    fn bodies(&self) -> String {
        format!("{:#?}", self.got.lock().unwrap())
    }
}

/// The dev environment on the process platform with its monitoring stack, through
/// the `controlplane` binary, on free loopback ports; down with its data when
/// dropped, however the test ends.
struct Stack {
    /// First, so the environment goes before its directory.
    _down: cp_testkit::Down,
    _tmp: tempfile::TempDir,
    state: PathBuf,
    sets: Vec<String>,
    prometheus: Prometheus,
}

impl Stack {
    /// `controlplane up` (seeding too) with the test's `--set`s plus `extra`.
    fn up(extra: &[String]) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        // The postgres user must be able to enter the state directory when run as root.
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let state = tmp.path().join("dev");
        let mut sets = cp_testkit::monitoring_port_sets();
        sets.extend(
            [
                "platform=process",
                "apps.capsule-registry.enabled=false",
                "extras.jaeger.enabled=false",
                "extras.kong.enabled=false",
                "extras.rabbitmq.enabled=false",
                "extras.loki.enabled=false",
                "monitoring.scrape_interval=1s",
                "monitoring.evaluation_interval=1s",
            ]
            .map(String::from),
        );
        sets.push(format!(
            "backup.destinations.local.path={}",
            tmp.path().join("backups").display()
        ));
        sets.extend(extra.iter().cloned());
        let port = |key: &str| -> u16 {
            sets.iter()
                .rev()
                .find_map(|s| s.strip_prefix(&format!("{key}=")))
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no {key} among {sets:?}"))
        };
        let prometheus = Prometheus::new(&Endpoint::local(port("monitoring.prometheus.port")));
        let stack = Self {
            _down: common::down(&state, &sets),
            _tmp: tmp,
            state,
            sets,
            prometheus,
        };
        let o = stack.run(&["up"]);
        assert!(o.status.success(), "up failed:\n{}", text(&o));
        stack
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        controlplane(&self.state, &self.sets, args)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--output", "json"];
        all.extend_from_slice(args);
        let o = self.run(&all);
        serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}):\n{}", text(&o)))
    }

    /// The environment as the binary sees it (for the dashboards it renders).
    fn env(&self) -> cp_core::Environment {
        cp_testkit::load_dev(&self.sets)
    }

    fn pid(&self, service: &str) -> i32 {
        let rec: Value = serde_json::from_slice(
            &std::fs::read(self.state.join(service).join("process.json")).unwrap(),
        )
        .unwrap();
        i32::try_from(rec["pid"].as_u64().unwrap()).unwrap()
    }
}

/// Every alert and recording rule as Prometheus loaded it, and every dashboard
/// query of the environment's rendered boards.
async fn expressions(stack: &Stack) -> Vec<Expr> {
    let mut out = Vec::new();
    for g in stack.prometheus.rules().await.expect("rules") {
        for r in g.rules {
            let origin = match r.kind.as_str() {
                "alerting" => Origin::Alert(r.name),
                _ => Origin::Recording(r.name),
            };
            out.push(Expr {
                origin,
                expr: r.query,
            });
        }
    }
    let env = stack.env();
    let renderer = cp_core::render::Renderer::new(&cp_testkit::templates()).unwrap();
    let boards = renderer
        .env_files_in(&env, &format!("grafana/{}/dashboards/", env.name))
        .unwrap();
    for (file, text) in boards {
        let board: Value = serde_json::from_str(&text).unwrap();
        for panel in board["panels"].as_array().unwrap() {
            for t in panel["targets"].as_array().into_iter().flatten() {
                out.push(Expr {
                    origin: Origin::Dashboard(format!(
                        "{}/{}",
                        file.rsplit('/').next().unwrap(),
                        panel["title"].as_str().unwrap_or("?")
                    )),
                    expr: t["expr"].as_str().unwrap().to_owned(),
                });
            }
        }
    }
    out
}

/// How many alert and recording rules the driver's copy of the rule files holds.
fn rules_in_files(stack: &Stack) -> usize {
    ["alerts.yaml", "recording.yaml"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(stack.state.join("prometheus").join(f))
                .unwrap()
                .lines()
                .filter(|l| {
                    let l = l.trim_start();
                    l.starts_with("- alert:") || l.starts_with("- record:")
                })
                .count()
        })
        .sum()
}

/// A durable consumer on every stream and one message in each, as an app would
/// have: the per-stream and per-consumer JetStream series exist from then on.
async fn consume_every_stream(stack: &Stack) {
    let st = stack.json(&["status", "--show-secrets"]);
    let nats = st["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "nats")
        .unwrap();
    let url = nats["connect"]["admin"].as_str().expect("the admin URL");
    let (creds, addr) = url
        .strip_prefix("nats://")
        .unwrap()
        .rsplit_once('@')
        .unwrap();
    let (user, password) = creds.split_once(':').unwrap();
    let client = async_nats::ConnectOptions::new()
        .user_and_password(user.into(), password.into())
        .connect(addr)
        .await
        .expect("connect to NATS as admin");
    let js = async_nats::jetstream::new(client);
    for (name, stream) in &stack.env().streams {
        let s = js
            .get_stream(name.as_str())
            .await
            .expect("the seeded stream");
        s.create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("monitoring-test".into()),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("consumer on {name}: {e}"));
        let subject = stream.subjects[0].replace('>', "test").replace('*', "x");
        js.publish(subject, "{}".into())
            .await
            .unwrap()
            .await
            .unwrap_or_else(|e| panic!("publish to {name}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_everything_the_rules_select_and_a_dead_redis_pages() {
    let hook = Webhook::start().await;
    let drift_hook = Webhook::start().await;
    let serve_port = cp_testkit::free_port();
    let mut extra = serve_target_sets(serve_port);
    extra.extend([
        // ServiceDown holds 2s instead of 1m; Alertmanager tells within a second.
        "alerts.rules.service_down.for=2s".into(),
        // The backup alerts hold 1s instead of 5m.
        "alerts.rules.backup_failed.for=1s".into(),
        "alerts.rules.backup_too_old.for=1s".into(),
        "monitoring.notify.group_wait=1s".into(),
        "monitoring.notify.group_interval=1s".into(),
        "monitoring.notify.repeat_interval=1m".into(),
        format!("monitoring.webhook_url={}", hook.url),
        // The drift watch every minute, its alert after 1s of drift.
        "drift.schedule=\"* * * * *\"".into(),
        "drift.for=1s".into(),
        "drift.webhook_url=env://CP_DRIFT_HOOK".into(),
    ]);
    let stack = Stack::up(&extra);
    // A first backup of everything, so no backup alert has reason to fire, and serve
    // beside the stack.
    let o = stack.run(&["backup"]);
    assert!(o.status.success(), "backup failed:\n{}", text(&o));
    let _serve = Serve::start(&stack, serve_port, &drift_hook.url).await;

    // `status` shows the monitoring processes like any other, Grafana skipped;
    // node_exporter too (a unit of this platform, not a service of the model).
    let st = stack.json(&["status"]);
    let services = st["services"].as_array().unwrap();
    for name in [
        "prometheus",
        "alertmanager",
        "postgres-exporter",
        "redis-exporter",
        "nats-exporter",
        "node-exporter",
    ] {
        let s = services
            .iter()
            .find(|s| s["service"] == name)
            .unwrap_or_else(|| panic!("status lists no {name}: {st}"));
        assert_eq!(s["state"]["state"], "running", "{s}");
        assert_eq!(s["health"]["health"], "healthy", "{s}");
    }
    let grafana = services.iter().find(|s| s["service"] == "grafana").unwrap();
    assert_eq!(grafana["state"]["state"], "skipped", "{grafana}");
    assert!(
        grafana["state"]["detail"]
            .as_str()
            .unwrap()
            .contains("no Debian package"),
        "{grafana}"
    );
    let nats_exporter = services
        .iter()
        .find(|s| s["service"] == "nats-exporter")
        .unwrap();
    assert!(
        nats_exporter["version"]
            .as_str()
            .unwrap()
            .starts_with("controlplane "),
        "{nats_exporter}"
    );
    consume_every_stream(&stack).await;

    // 1. Every target up (every job the process config names), every rule loaded.
    let p = &stack.prometheus;
    let jobs = until("every target up", Duration::from_secs(30), || async {
        let targets = p.targets().await.map_err(|e| e.to_string())?;
        let down: Vec<String> = targets
            .iter()
            .filter(|t| t.health != "up")
            .map(|t| format!("{} {} ({})", t.labels["job"], t.health, t.last_error))
            .collect();
        if down.is_empty() {
            let mut jobs: Vec<String> = targets.iter().map(|t| t.labels["job"].clone()).collect();
            jobs.sort();
            Ok(jobs)
        } else {
            Err(down.join(", "))
        }
    })
    .await;
    assert_eq!(
        jobs,
        [
            "alertmanager",
            "controlplane",
            "nats",
            "node",
            "postgres",
            "prometheus",
            "redis",
            "vault"
        ]
    );
    let exprs = expressions(&stack).await;
    let loaded = exprs
        .iter()
        .filter(|e| !matches!(e.origin, Origin::Dashboard(_)))
        .count();
    assert_eq!(
        loaded,
        rules_in_files(&stack),
        "Prometheus loaded other rules"
    );

    // Every selector matches a series or is conditional. Recorded series and rates
    // need an evaluation or two after the first scrapes: poll.
    let report = until(
        "every selector matching",
        Duration::from_secs(40),
        || async {
            let r = promcheck::check(&exprs, CONDITIONAL, p)
                .await
                .map_err(|e| cp_runtime::error::chain(&e))?;
            if r.missing().is_empty() {
                Ok(r)
            } else {
                Err(format!("\n{r}"))
            }
        },
    )
    .await;
    eprintln!("selectors check:\n{report}");
    let present = report.present();
    for metric in [
        "pg_up",
        "redis_up",
        "gnatsd_varz_connections",
        "jetstream_consumer_num_pending",
        "jetstream_consumer_ack_floor_stream_seq",
        "jetstream_stream_total_messages",
        "vault_core_unsealed",
        "controlplane:service_up:min",
        "controlplane_backup_last_run_success",
        "controlplane_backup_last_success_timestamp_seconds",
        "env_service:controlplane_backup_age_seconds",
        // The host variants of the memory, CPU, disk and restart alerts: from
        // node_exporter and the scraped processes' start times.
        "node_memory_MemAvailable_bytes",
        "node_cpu_seconds_total",
        "node_filesystem_avail_bytes",
        "process_start_time_seconds",
        "redis_start_time_seconds",
        "namespace_instance:memory_usage:ratio",
        "namespace_instance:cpu_usage:ratio_rate5m",
        "namespace_instance_mountpoint:filesystem_available:ratio",
        "namespace_job_source:restarts:changes1h",
    ] {
        assert!(
            present.contains_key(metric),
            "{metric} has no series:\n{report}"
        );
    }
    // One pending-messages series per stream (each stream's StreamConsumerLag rule).
    assert_eq!(
        present["jetstream_consumer_num_pending"],
        stack.env().streams.len(),
        "{report}"
    );
    // The checker finds a misspelt metric in this very Prometheus.
    let mut typo = exprs.clone();
    typo.push(Expr {
        origin: Origin::Alert("Misspelt".into()),
        expr: r#"redis_upp{namespace="anumate-dev"} == 0"#.into(),
    });
    let r = promcheck::check(&typo, CONDITIONAL, p).await.unwrap();
    let missing: Vec<String> = r.missing().iter().map(|f| f.selector.clone()).collect();
    assert_eq!(missing, [r#"redis_upp{namespace="anumate-dev"}"#], "{r}");

    // Settled: nothing fires (the exporters' targets were down for a moment while
    // their servers started, which a 2s `for` may have paged for).
    until(
        "nothing firing once settled",
        Duration::from_secs(30),
        || async {
            let v = stack.json(&["alerts"]);
            let firing: Vec<&Value> = v["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["state"] == "firing")
                .collect();
            if firing.is_empty() {
                Ok(())
            } else {
                Err(format!("{firing:#?}"))
            }
        },
    )
    .await;
    // While OpenBao still serves its pre-unseal `vault_core_unsealed{cluster=""} 0`
    // beside the unsealed series (for its 30s prometheus_retention_time after the
    // unseal), VaultSealed is not even pending.
    let stale = p
        .query(r#"vault_core_unsealed{job="vault", cluster=""} == 0"#)
        .await
        .unwrap();
    let sealed = stack.json(&["alerts"])["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["alert"] == "VaultSealed");
    eprintln!(
        "vault: the pre-unseal series is {}",
        if stale.is_empty() {
            "gone already"
        } else {
            "still served"
        }
    );
    assert!(
        stale.is_empty() || !sealed,
        "VaultSealed on a stale series: {stale:?}"
    );
    let before = hook.count();

    // 2. Redis dies: ServiceDown for redis fires and reaches the webhook.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(stack.pid("redis")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let is_redis_down = |v: &Value| {
        v["alerts"].as_array().into_iter().flatten().any(|a| {
            a["alert"] == "ServiceDown" && a["labels"]["job"] == "redis" && a["state"] == "firing"
        })
    };
    until(
        "ServiceDown for redis firing",
        Duration::from_secs(40),
        || async {
            let v = stack.json(&["alerts"]);
            if is_redis_down(&v) {
                Ok(())
            } else {
                Err(v.to_string())
            }
        },
    )
    .await;
    let o = stack.run(&["alerts"]);
    assert!(o.status.success(), "{}", text(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("ServiceDown") && l.contains("firing") && l.contains("redis")),
        "{}",
        text(&o)
    );
    until(
        "the webhook told of it",
        Duration::from_secs(30),
        || async {
            if hook.told(before, "ServiceDown", "redis", "firing") {
                Ok(())
            } else {
                Err(hook.bodies())
            }
        },
    )
    .await;

    // Redis back: the alert resolves, in Prometheus and at the webhook.
    let o = stack.run(&["up", "--service", "redis", "--no-seed"]);
    assert!(o.status.success(), "{}", text(&o));
    until(
        "ServiceDown for redis resolved",
        Duration::from_secs(30),
        || async {
            let v = stack.json(&["alerts"]);
            let redis = v["alerts"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["alert"] == "ServiceDown" && a["labels"]["job"] == "redis");
            if redis { Err(v.to_string()) } else { Ok(()) }
        },
    )
    .await;
    until(
        "the webhook told of the resolution",
        Duration::from_secs(30),
        || async {
            if hook.told(before, "ServiceDown", "redis", "resolved") {
                Ok(())
            } else {
                Err(hook.bodies())
            }
        },
    )
    .await;

    // 3. Redis's backup fails: BackupFailed fires for redis from serve's /metrics.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(stack.pid("redis")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let o = stack.run(&["backup", "--service", "redis"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    until(
        "BackupFailed for redis firing",
        Duration::from_secs(40),
        || async {
            let v = stack.json(&["alerts"]);
            if backup_alert(&v, "BackupFailed", "redis") {
                Ok(())
            } else {
                Err(v.to_string())
            }
        },
    )
    .await;
    let v = stack.json(&["alerts"]);
    assert!(!backup_alert(&v, "BackupFailed", "postgres"), "{v}");
    assert!(!backup_alert(&v, "BackupTooOld", "redis"), "{v}");

    // Backups stopped two days ago for redis (its last success moved back in the
    // state file that serve reads at every scrape): BackupTooOld fires for redis only.
    let file = stack.state.join("backup").join("metrics.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let redis = &mut m["services"]["redis"]["last_success_timestamp_seconds"];
    let last = redis.as_i64().expect("redis backed up once");
    assert!(last > 0, "{m}");
    *redis = Value::from(last - 2 * 86_400);
    std::fs::write(&file, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    // Age runs from the later of the last success and when backups were first
    // configured (recorded at serve's first scrape): that moves back too.
    let file = stack.state.join("backup").join("configured.json");
    let mut c: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let since = &mut c["services"]["redis"];
    let at = since.as_i64().expect("backups configured for redis");
    *since = Value::from(at - 3 * 86_400);
    std::fs::write(&file, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    until(
        "BackupTooOld for redis firing",
        Duration::from_secs(40),
        || async {
            let v = stack.json(&["alerts"]);
            if backup_alert(&v, "BackupTooOld", "redis") {
                Ok(())
            } else {
                Err(v.to_string())
            }
        },
    )
    .await;
    let v = stack.json(&["alerts"]);
    for other in ["postgres", "nats", "vault"] {
        assert!(!backup_alert(&v, "BackupTooOld", other), "{other}: {v}");
    }

    // 4. Drift. Everything back in sync first (Redis is still dead from part 3).
    let o = stack.run(&["up"]);
    assert!(o.status.success(), "up failed:\n{}", text(&o));
    let p = &stack.prometheus;
    let layer_value = |samples: &[cp_runtime::prometheus::Sample], layer: &str| {
        samples
            .iter()
            .find(|x| x.metric.get("layer").map(String::as_str) == Some(layer))
            .map(|x| x.value)
    };
    let since = drift_hook.count();
    // Out of band, as an operator would: a policy deleted, a role altered.
    let o = stack.run(&[
        "psql",
        "--role",
        "superuser",
        "--",
        "-d",
        "anumate",
        "-v",
        "ON_ERROR_STOP=1",
        "-c",
        "ALTER ROLE anumate_app BYPASSRLS",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let init: Value =
        serde_json::from_slice(&std::fs::read(stack.state.join("vault/init.json")).unwrap())
            .unwrap();
    let vault_port: u16 = stack
        .sets
        .iter()
        .rev()
        .find_map(|s| s.strip_prefix("services.vault.port="))
        .and_then(|p| p.parse().ok())
        .expect("a vault port among the sets");
    cp_runtime::vault::Client::with_token(
        &format!("http://127.0.0.1:{vault_port}"),
        cp_runtime::secrets::Secret::new(init["root_token"].as_str().unwrap()),
    )
    .delete("sys/policies/acl/anumate-app")
    .await
    .unwrap();
    // Within the interval (a slot every minute), the gauges show both layers.
    until(
        "controlplane_drift_changes_pending above 0 for vault and database",
        Duration::from_secs(150),
        || async {
            let v = p
                .query("controlplane_drift_changes_pending{env=\"dev\"}")
                .await
                .map_err(|e| e.to_string())?;
            match (layer_value(&v, "vault"), layer_value(&v, "database")) {
                (Some(a), Some(b)) if a > 0.0 && b > 0.0 => Ok(()),
                _ => Err(format!("{v:?}")),
            }
        },
    )
    .await;
    let drifted = |v: &Value, layer: &str| {
        v["alerts"].as_array().into_iter().flatten().any(|a| {
            a["alert"] == "EnvironmentDrifted"
                && a["labels"]["layer"] == layer
                && a["state"] == "firing"
        })
    };
    until(
        "EnvironmentDrifted firing",
        Duration::from_secs(60),
        || async {
            let v = stack.json(&["alerts"]);
            if drifted(&v, "vault") && drifted(&v, "database") {
                Ok(())
            } else {
                Err(v.to_string())
            }
        },
    )
    .await;
    until(
        "the drift webhook received the summary",
        Duration::from_secs(30),
        || async {
            let got = drift_hook.got.lock().unwrap().clone();
            let hit = got.iter().skip(since).any(|d| {
                d["environment"] == "dev"
                    && d["drifted"] == true
                    && ["vault", "database"].iter().all(|l| {
                        d["resources"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|r| r["layer"] == *l)
                    })
            });
            if hit {
                Ok(())
            } else {
                Err(drift_hook.bodies())
            }
        },
    )
    .await;
    // `controlplane drift` prints the same view once: exit 2 while drifted.
    let o = stack.run(&["drift"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    // `up` repairs; the next check finds nothing and the alert resolves.
    let o = stack.run(&["up"]);
    assert!(o.status.success(), "up failed:\n{}", text(&o));
    until(
        "controlplane_drift_changes_pending back to 0",
        Duration::from_secs(150),
        || async {
            let v = p
                .query("sum(controlplane_drift_changes_pending{env=\"dev\"}) + sum(controlplane_drift_blocked{env=\"dev\"})")
                .await
                .map_err(|e| e.to_string())?;
            match v.first() {
                Some(x) if x.value == 0.0 => Ok(()),
                _ => Err(format!("{v:?}")),
            }
        },
    )
    .await;
    until(
        "EnvironmentDrifted resolved",
        Duration::from_secs(60),
        || async {
            let v = stack.json(&["alerts"]);
            if drifted(&v, "vault") || drifted(&v, "database") {
                Err(v.to_string())
            } else {
                Ok(())
            }
        },
    )
    .await;
    let o = stack.run(&["drift"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

/// Host metrics off Kubernetes: with the memory and disk thresholds set low through
/// `--set` (more than 1% of memory in use, less than 100% of a filesystem free),
/// `HighMemoryUsage` and `DiskSpaceLow` fire in the process platform's real
/// Prometheus from node_exporter's series, with their host labels and runbook, and
/// Alertmanager delivers both to a webhook on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn low_memory_and_disk_thresholds_fire_from_node_exporter_through_alertmanager_and_onto_the_console_timeline()
 {
    let hook = Webhook::start().await;
    let stack = Stack::up(&[
        "alerts.rules.high_memory.threshold=0.01".into(),
        "alerts.rules.high_memory.for=1s".into(),
        "alerts.rules.disk_space_low.threshold=1".into(),
        "alerts.rules.disk_space_low.for=1s".into(),
        "monitoring.notify.group_wait=1s".into(),
        "monitoring.notify.group_interval=1s".into(),
        format!("monitoring.webhook_url={}", hook.url),
    ]);
    // The alerts below come from node_exporter's series (`status` lists it: the
    // first test).
    let firing = |v: &Value, alert: &str| -> Option<Value> {
        v["alerts"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["alert"] == alert && a["state"] == "firing")
            .cloned()
    };
    for (alert, label) in [
        ("HighMemoryUsage", "instance"),
        ("DiskSpaceLow", "mountpoint"),
    ] {
        let a = until(
            &format!("{alert} firing"),
            Duration::from_secs(60),
            || async {
                let v = stack.json(&["alerts"]);
                firing(&v, alert).ok_or_else(|| v.to_string())
            },
        )
        .await;
        assert!(
            a["labels"][label].is_string(),
            "{alert} without {label}: {a}"
        );
        assert_eq!(a["labels"]["namespace"], stack.env().namespace, "{a}");
        until(
            &format!("the webhook told of {alert}"),
            Duration::from_secs(30),
            || async {
                let told = hook.got.lock().unwrap().iter().any(|n| {
                    n["alerts"].as_array().into_iter().flatten().any(|a| {
                        a["labels"]["alertname"] == alert
                            && a["status"] == "firing"
                            && a["annotations"]["runbook_url"]
                                == format!("docs/runbooks/{alert}.md")
                    })
                });
                if told { Ok(()) } else { Err(hook.bodies()) }
            },
        )
        .await;
    }

    // The console's alert timeline reads the Prometheus dev runs (serve is not told
    // where): the API's history names it, and the chart's text alternative lists
    // exactly the alerts Prometheus's ALERTS series say fired in the last day.
    let server_dir = stack.state.with_file_name("server");
    let o = stack.run(&[
        "token",
        "create",
        "--role",
        "admin",
        "--name",
        "admin",
        "--server-dir",
        server_dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "token create:\n{}", text(&o));
    let token = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    let port = cp_testkit::free_port();
    let _serve = Serve::start(&stack, port, "http://127.0.0.1:9/unused").await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let history: Value = http
        .get(format!("{base}/api/v1/environments/dev/history"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        history["alerts"]["prometheus"],
        stack.prometheus.url(),
        "{history}"
    );
    let cookie = console_login(&http, &base, &token).await;
    until(
        "the console's timeline to list what Prometheus says fired",
        Duration::from_secs(30),
        || async {
            let now = chrono::Utc::now().timestamp();
            let fired: std::collections::BTreeSet<String> = stack
                .prometheus
                .query_range(r#"ALERTS{alertstate="firing"}"#, now - 86_400, now, 600)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter_map(|s| s.metric.get("alertname").cloned())
                .collect();
            let page = http
                .get(format!("{base}/console/alerts"))
                .header("cookie", &cookie)
                .send()
                .await
                .map_err(|e| e.to_string())?
                .text()
                .await
                .map_err(|e| e.to_string())?;
            let desc = page
                .split(r#"data-chart="alerts/dev""#)
                .nth(1)
                .and_then(|r| r.split("<desc").nth(1))
                .and_then(|r| r.split_once('>').map(|(_, d)| d))
                .and_then(|r| r.split("</desc>").next())
                .ok_or_else(|| "no alerts/dev chart with a desc".to_owned())?;
            let shown: std::collections::BTreeSet<String> = desc
                .split("; ")
                .filter_map(|item| item.split_once(" firing from ").map(|(a, _)| a.to_owned()))
                .collect();
            if fired.contains("HighMemoryUsage") && shown == fired {
                Ok(())
            } else {
                Err(format!("Prometheus: {fired:?}; the chart: {desc}"))
            }
        },
    )
    .await;
}

/// Logs in to the console over HTTP as the login form does (its double-submit
/// cookie, then the token): the session's cookie header.
async fn console_login(http: &reqwest::Client, base: &str, token: &str) -> String {
    let cookie_of = |r: &reqwest::Response, name: &str| -> String {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|v| {
                v.split(';')
                    .next()
                    .and_then(|kv| kv.split_once('='))
                    .filter(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_owned())
            })
            .unwrap_or_else(|| panic!("no {name} cookie: {:?}", r.headers()))
    };
    let form = http
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap();
    let csrf = cookie_of(&form, "cp_login_csrf");
    let res = http
        .post(format!("{base}/console/login"))
        .header("cookie", format!("cp_login_csrf={csrf}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("token", token)
                .append_pair("csrf", &csrf)
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::SEE_OTHER);
    format!("cp_session={}", cookie_of(&res, "cp_session"))
}
