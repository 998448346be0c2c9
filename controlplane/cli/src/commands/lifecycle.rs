//! `plan`, `up`, `down`, `status`, `logs`: the same for every driver.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use cp_core::Environment;
use cp_core::names::ServiceName;
use cp_drivers::{Context, Driver, Health, ServiceState, ServiceStatus, engine};

use crate::cli::{Global, Output};

/// Exit code when `plan` finds pending changes (a CI drift gate).
pub(crate) const CHANGES_PENDING: u8 = 2;

/// Prints what `up` would do; never changes anything.
pub(crate) async fn plan<D: Driver>(
    driver: &D,
    env: &Environment,
    global: &Global,
) -> Result<ExitCode> {
    let plan = engine::plan(driver, env).await?;
    match global.output {
        Output::Text => println!("{plan}"),
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "environment": env.name,
                "driver": driver.kind(),
                "changes_pending": !plan.is_empty(),
                "plan": plan,
            }))?
        ),
    }
    Ok(if plan.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(CHANGES_PENDING)
    })
}

/// Brings services up and waits for them; prints the summary.
pub(crate) async fn up<D: Driver>(
    driver: &D,
    cx: Context<'_>,
    services: &[ServiceName],
    timeout: Duration,
    global: &Global,
) -> Result<engine::UpReport> {
    let progress = crate::progress::for_output(global.output);
    let report = engine::up(driver, cx, services, timeout, progress.as_ref()).await?;
    if global.output == Output::Text {
        if report.plan.is_empty() {
            eprintln!(
                "{}: nothing to change; {} service(s) answering ({} ms)",
                cx.env.name,
                report.ready.len(),
                report.elapsed_ms
            );
        } else {
            eprintln!(
                "{}: {} change(s) applied; {} service(s) answering after {} ms",
                cx.env.name,
                report.plan.steps.len(),
                report.ready.len(),
                report.elapsed_ms
            );
        }
    }
    Ok(report)
}

/// Stops everything; deletes data with `volumes`.
pub(crate) async fn down<D: Driver>(
    driver: &D,
    cx: Context<'_>,
    volumes: bool,
    global: &Global,
) -> Result<ExitCode> {
    let removed = driver.teardown(cx, volumes).await?;
    match global.output {
        Output::Text => {
            if removed.is_empty() {
                println!("{}: nothing was running", cx.env.name);
            }
            for r in &removed {
                println!("removed {r}");
            }
            if !volumes {
                println!("data kept; `down --volumes` deletes it");
            }
        }
        Output::Json => println!(
            "{}",
            serde_json::json!({"removed": removed, "volumes": volumes})
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn uptime(secs: Option<u64>) -> String {
    match secs {
        None => "-".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) if s < 172_800 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86_400),
    }
}

/// The status table.
pub(crate) fn status_table(statuses: &[ServiceStatus]) -> String {
    let mut rows = vec![[
        "SERVICE".to_owned(),
        "STATE".into(),
        "VERSION".into(),
        "UPTIME".into(),
        "ENDPOINT".into(),
        "HEALTH".into(),
    ]];
    for s in statuses {
        let state = match &s.state {
            ServiceState::Running => "running".to_owned(),
            ServiceState::Stopped(why) => format!("stopped ({why})"),
            ServiceState::Missing => "missing".to_owned(),
            ServiceState::Skipped(why) => format!("skipped ({why})"),
        };
        let health = match &s.health {
            Health::Healthy => "healthy".to_owned(),
            Health::Unhealthy(why) => format!("unhealthy: {why}"),
            Health::Unknown => "-".to_owned(),
        };
        rows.push([
            s.service.to_string(),
            state,
            s.version.clone().unwrap_or_else(|| "-".into()),
            uptime(s.uptime_secs),
            s.endpoint.clone().unwrap_or_else(|| "-".into()),
            health,
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Prints the status, repeatedly with `watch`.
pub(crate) async fn status<D: Driver>(
    driver: &D,
    cx: Context<'_>,
    watch: bool,
    global: &Global,
    urls: &(dyn Fn(&ServiceName) -> Option<serde_json::Value> + Sync),
) -> Result<ExitCode> {
    loop {
        let statuses = driver.status(cx).await?;
        match global.output {
            Output::Text => {
                if watch {
                    // Clear the screen between refreshes.
                    print!("\x1b[2J\x1b[H");
                }
                print!("{}", status_table(&statuses));
                std::io::stdout().flush()?;
            }
            Output::Json => {
                let items: Vec<serde_json::Value> = statuses
                    .iter()
                    .map(|s| {
                        let mut v = serde_json::to_value(s).expect("serializes");
                        if let Some(u) = urls(&s.service) {
                            v["connect"] = u;
                        }
                        v
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"environment": cx.env.name, "driver": driver.kind(), "services": items})
                );
            }
        }
        if !watch {
            let all_ok = statuses.iter().all(|s| {
                matches!(s.state, ServiceState::Running | ServiceState::Skipped(_))
                    && !matches!(s.health, Health::Unhealthy(_))
            });
            return Ok(if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Prints a service's log.
pub(crate) async fn logs<D: Driver>(
    driver: &D,
    env: &Environment,
    service: &str,
    tail: usize,
    follow: bool,
) -> Result<ExitCode> {
    let known = env.service_names();
    let Some(svc) = known.iter().find(|s| s.as_str() == service) else {
        let names: Vec<&str> = known.iter().map(ServiceName::as_str).collect();
        eprintln!(
            "error: no service `{service}` in {}; known: {}",
            env.name,
            names.join(", ")
        );
        return Ok(ExitCode::from(super::INVALID));
    };
    let mut out = std::io::stdout();
    driver.logs(env, svc, tail, follow, &mut out).await?;
    Ok(ExitCode::SUCCESS)
}
