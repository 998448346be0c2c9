//! `seed`, `migrate` and `tenant`, and the seeding `up` does after bring-up: resolve
//! where the services answer and their credentials, then hand over to `cp_seed`.

use std::process::ExitCode;

use anyhow::{Context as _, Result};
use cp_core::names::ServiceName;
use cp_drivers::Driver as _;
use cp_seed::{Access, Report, SeedOutcome};
use serde_json::json;

use super::bringup::Session;
use crate::cli::{Global, MigrateAction, Output, TenantAction};
use crate::platform::AnyDriver;

/// Exit code when the thing asked for does not exist (`tenant delete` of no tenant).
const NOT_FOUND: u8 = 3;

async fn access(s: &Session) -> Result<Access> {
    Access::resolve(
        &s.env,
        |k| s.driver.endpoint(&s.env, &ServiceName::core(k)),
        &s.secrets,
        &s.state,
        s.driver.vault_keys_dir(),
    )
    .await
    .context("cannot reach the services to seed")
}

fn print_reports(reports: &[Report]) {
    for r in reports {
        if r.changes.is_empty() {
            eprintln!(
                "  {:<9} up to date ({} round trips)",
                r.service, r.round_trips
            );
        }
        for c in &r.changes {
            eprintln!("  {:<9} {c}", r.service);
        }
    }
}

fn print_outcome(global: &Global, o: &SeedOutcome) {
    match global.output {
        Output::Json => println!("{}", json!({"ok": true, "changed": o.changed(), "seed": o})),
        Output::Text => {
            eprintln!(
                "seed: {}",
                if o.changed() {
                    "applied"
                } else {
                    "nothing to change"
                }
            );
            print_reports(&o.reports);
            if o.revoked_root_token {
                eprintln!(
                    "  vault     revoked the bootstrap root token; later seeds need VAULT_TOKEN \
                     (a token with the `controlplane-seeder` policy)"
                );
            }
        }
    }
}

/// Runs after a successful `up`: seeds, then announces `up.completed`.
pub(crate) async fn after_up(s: &Session, global: &Global) -> Result<()> {
    if matches!(s.driver, AnyDriver::Kube(_)) {
        // The services answer inside the cluster only; seeding from here needs a
        // port-forward per service, which `up` does not open on its own.
        eprintln!(
            "seed: skipped on Kubernetes (services are reachable only in the cluster); \
             run `controlplane seed` with port-forwards, or from inside the cluster"
        );
        return Ok(());
    }
    let a = access(s).await?;
    let outcome = cp_seed::seed_all(&a, &s.env).await?;
    print_outcome(global, &outcome);
    if let Some(n) = &a.nats {
        let p = cp_seed::events::Publisher::connect(n, s.env.name.as_str()).await?;
        p.publish(cp_seed::events::Event::new(
            "up.completed",
            json!({"environment": s.env.name.as_str(), "seed_changed": outcome.changed()}),
        ))
        .await?;
    }
    Ok(())
}

/// `seed`.
pub(crate) async fn seed(s: &Session, global: &Global) -> Result<ExitCode> {
    let a = access(s).await?;
    let outcome = cp_seed::seed_all(&a, &s.env).await?;
    print_outcome(global, &outcome);
    Ok(ExitCode::SUCCESS)
}

fn pg(a: &Access) -> Result<&cp_seed::PgAccess> {
    a.postgres
        .as_ref()
        .context("this environment runs no PostgreSQL (services.postgres is not set)")
}

/// `migrate up|down|status`.
pub(crate) async fn migrate(
    s: &Session,
    global: &Global,
    action: MigrateAction,
) -> Result<ExitCode> {
    let a = access(s).await?;
    let pg = pg(&a)?;
    match action {
        MigrateAction::Up | MigrateAction::Down { .. } => {
            let r = match action {
                MigrateAction::Up => cp_seed::postgres::migrate_up(pg).await?,
                MigrateAction::Down { steps } => cp_seed::postgres::migrate_down(pg, steps).await?,
                MigrateAction::Status => unreachable!("handled below"),
            };
            match global.output {
                Output::Json => println!("{}", json!({"ok": true, "report": r})),
                Output::Text => {
                    eprintln!(
                        "migrate: {}",
                        if r.changed() {
                            "applied"
                        } else {
                            "nothing to change"
                        }
                    );
                    print_reports(std::slice::from_ref(&r));
                }
            }
        }
        MigrateAction::Status => {
            let st = cp_seed::postgres::migrate_status(pg).await?;
            match global.output {
                Output::Json => println!("{}", json!({"ok": true, "migrations": st})),
                Output::Text => {
                    println!("{:<16} {:<8} DESCRIPTION", "VERSION", "STATE");
                    for m in &st {
                        let state = match (m.applied, m.checksum_ok) {
                            (true, true) => "applied",
                            (true, false) => "CHANGED",
                            (false, _) => "pending",
                        };
                        println!("{:<16} {state:<8} {}", m.version, m.description);
                    }
                    if st.iter().any(|m| m.applied && !m.checksum_ok) {
                        eprintln!(
                            "warning: an applied migration differs from the file shipped now; \
                             never edit an applied migration, add a new one"
                        );
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tenant create|list|delete`.
pub(crate) async fn tenant(s: &Session, global: &Global, action: TenantAction) -> Result<ExitCode> {
    let a = access(s).await?;
    match action {
        TenantAction::Create { slug, name } => {
            let o = cp_seed::tenants::create(&a, &s.env, &slug, name.as_deref()).await?;
            match global.output {
                Output::Json => println!(
                    "{}",
                    json!({"ok": true, "changed": o.changed(), "tenant": o})
                ),
                Output::Text => {
                    println!("{}", o.tenant.id);
                    eprintln!(
                        "tenant {}: {}",
                        o.tenant.slug,
                        if o.changed() {
                            "created"
                        } else {
                            "already exists, nothing to change"
                        }
                    );
                    print_reports(&o.reports);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TenantAction::List => {
            let all = cp_seed::tenants::list(&a, &s.env).await?;
            match global.output {
                Output::Json => println!("{}", json!({"ok": true, "tenants": all})),
                Output::Text => {
                    println!(
                        "{:<36}  {:<20} {:<8} {:<8} {:<8} CREATED",
                        "ID", "SLUG", "KEY", "POLICY", "KV"
                    );
                    let yes = |b: bool| if b { "ok" } else { "MISSING" };
                    for t in &all {
                        let (k, p, kv) = t
                            .vault
                            .map_or(("-", "-", "-"), |v| (yes(v.key), yes(v.policy), yes(v.kv)));
                        println!(
                            "{:<36}  {:<20} {k:<8} {p:<8} {kv:<8} {}",
                            t.row.id,
                            t.row.slug,
                            t.row.created_at.format("%Y-%m-%d %H:%M")
                        );
                    }
                    if all.iter().any(|t| !t.complete()) {
                        eprintln!(
                            "a tenant with a MISSING part: run `controlplane tenant create <slug>` again to finish it"
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TenantAction::Delete { tenant, yes } => {
            if !yes {
                eprintln!(
                    "error: deleting a tenant destroys its encryption key and all its rows, and cannot be undone; \
                     add --yes to confirm"
                );
                return Ok(ExitCode::from(super::INVALID));
            }
            match cp_seed::tenants::delete(&a, &s.env, &tenant).await? {
                None => {
                    eprintln!("error: no tenant `{tenant}`; `controlplane tenant list` shows them");
                    Ok(ExitCode::from(NOT_FOUND))
                }
                Some(o) => {
                    match global.output {
                        Output::Json => println!("{}", json!({"ok": true, "tenant": o})),
                        Output::Text => {
                            eprintln!("tenant {} ({}): deleted", o.tenant.slug, o.tenant.id);
                            print_reports(&o.reports);
                        }
                    }
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
    }
}
