//! The commands on one environment: open a session (read-only, or holding the
//! environment's lock), ask the application layer, print its view.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use cp_app::ops::{self, Secrets};
use cp_app::up::{UpOptions, check_saved};
use cp_app::views::{JobResult, JobState, Trigger};
use cp_app::{AppError, Exit, JobRequest, Mode, Session};
use cp_core::envplan::SavedPlan;
use cp_core::names::ServiceName;

use super::{Failure, Outcome, connect, shown};
use crate::cli::{Command, Global, MigrateAction, Output, TenantAction};
use crate::output;

/// The mode a command opens its session in: read-only commands create nothing.
fn mode(command: &Command) -> Mode {
    match command {
        Command::Up { .. } => Mode::Mutating("up"),
        Command::Down { .. } => Mode::Mutating("down"),
        Command::Seed => Mode::Mutating("seed"),
        Command::Migrate {
            action: MigrateAction::Up | MigrateAction::Down { .. },
        } => Mode::Mutating("migrate"),
        Command::Tenant {
            action: TenantAction::Create { .. } | TenantAction::Delete { .. },
        } => Mode::Mutating("tenant"),
        // Point-in-time recovery swaps PostgreSQL's data directory: the environment lock.
        Command::Restore {
            to_time,
            to_lsn,
            to_latest,
            ..
        } if to_time.is_some() || to_lsn.is_some() || *to_latest => Mode::Mutating("restore"),
        // Backups, verifications and restores are jobs: the job takes the locks.
        _ => Mode::ReadOnly,
    }
}

/// Checks a command's arguments against the loaded environment before anything is
/// created or locked: invalid input touches nothing.
/// Returns the saved plan `up --plan` names, read before anything is touched.
fn preflight(env: &cp_core::Environment, command: &Command) -> Result<Option<SavedPlan>, AppError> {
    match command {
        Command::Up {
            services,
            timeout,
            plan,
            reinitialise,
            ..
        } => {
            parse_timeout(timeout)?;
            service_names(env, services)?;
            reinitialise_kinds(reinitialise)?;
            if plan.is_some() && !reinitialise.is_empty() {
                return Err(AppError::Usage(
                    "--reinitialise changes what a saved plan observed; run it without --plan, then make the plan again".into(),
                ));
            }
            plan.as_deref().map(read_plan).transpose()
        }
        Command::Plan { out: Some(file) } => check_out(file).map(|()| None),
        Command::Logs { service, .. } => {
            service_names(env, std::slice::from_ref(service)).map(|_| None)
        }
        Command::Tenant {
            action: TenantAction::Create { slug, .. },
        } => cp_seed::tenants::check_slug(slug)
            .map(|_| None)
            .map_err(|e| AppError::Usage(shown(&e.to_string()).into_owned())),
        Command::Tenant {
            action: TenantAction::Delete { tenant, .. },
        } => {
            if is_uuid(tenant) || cp_seed::tenants::check_slug(tenant).is_ok() {
                Ok(None)
            } else {
                Err(AppError::Usage(format!(
                    "`{}` is neither a tenant id (a UUID) nor a slug (1-63 lowercase letters, digits and `-`, e.g. `acme-corp`); `controlplane tenant list` shows them",
                    shown(tenant)
                )))
            }
        }
        _ => Ok(None),
    }
}

/// `plan --out FILE`: a file that can be written, checked before planning (a wrong
/// path is invalid input, exit 3, not a failure after the plan was made).
fn check_out(file: &Path) -> Result<(), AppError> {
    let name = file.display().to_string();
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let why = if file.is_dir() {
        Some("it is a directory")
    } else if !dir.is_dir() {
        Some("its directory does not exist")
    } else {
        None
    };
    match why {
        Some(why) => Err(AppError::Usage(format!(
            "--out {}: {why}; name a file in an existing directory",
            shown(&name)
        ))),
        None => Ok(()),
    }
}

/// Whether `s` is a UUID in its hyphenated form (a tenant id).
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `--reinitialise` names: stateful core services only.
fn reinitialise_kinds(names: &[String]) -> Result<Vec<cp_core::names::CoreKind>, AppError> {
    use cp_core::names::CoreKind;
    names
        .iter()
        .map(|n| {
            CoreKind::from_name(n)
                .filter(|k| matches!(k, CoreKind::Postgres | CoreKind::Vault | CoreKind::Nats))
                .ok_or_else(|| {
                    AppError::Usage(format!(
                        "--reinitialise {}: only postgres, vault and nats can be re-initialised (redis is a cache)",
                        shown(n)
                    ))
                })
        })
        .collect()
}

fn parse_timeout(text: &str) -> Result<Duration, AppError> {
    let usage = |why: String| AppError::Usage(format!("--timeout: {why}; write e.g. 90s or 5m"));
    match cp_core::units::Duration::parse(text) {
        Ok(d) if d.as_secs() == 0 => Err(usage(format!(
            "`{}` leaves no time to start anything",
            shown(text)
        ))),
        Ok(d) => Ok(Duration::from_secs(d.as_secs())),
        Err(e) => Err(usage(shown(&e.to_string()).into_owned())),
    }
}

pub(super) async fn open(
    global: &Global,
    command: &Command,
) -> Result<(Session, Option<SavedPlan>), Failure> {
    let prepared =
        cp_app::Prepared::new(&global.target(), Some(crate::progress::pull_observer())).await?;
    let saved = preflight(&prepared.env, command)?;
    let s = prepared.open(mode(command))?;
    // The plan document names the driver itself; `up` prints the notice or its plan,
    // whose heading says it (each notice once).
    if global.output == Output::Text
        && !matches!(command, Command::Plan { .. } | Command::Up { .. })
    {
        eprintln!("{}: {}", s.env().name, s.driver_reason());
    }
    Ok((s, saved))
}

fn service_names(
    env: &cp_core::Environment,
    names: &[String],
) -> Result<Vec<ServiceName>, AppError> {
    let known = env.service_names();
    names
        .iter()
        .map(|name| {
            known
                .iter()
                .find(|k| k.as_str() == name)
                .cloned()
                .ok_or_else(|| {
                    let all: Vec<&str> = known.iter().map(ServiceName::as_str).collect();
                    AppError::Usage(format!(
                        "no service `{}` in {}; known: {}",
                        shown(name),
                        env.name,
                        all.join(", ")
                    ))
                })
        })
        .collect()
}

fn read_plan(file: &Path) -> Result<SavedPlan, AppError> {
    let name = file.display().to_string();
    // A file named on the command line that cannot be read is a wrong argument, like a
    // file that is not a plan: invalid input (exit 3), one line saying what to do.
    let text = std::fs::read(file).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_owned(),
            std::io::ErrorKind::IsADirectory => "it is a directory".to_owned(),
            _ => e.to_string(),
        };
        AppError::Usage(format!(
            "--plan {}: {why}; save a plan with `controlplane plan --out FILE` first",
            shown(&name)
        ))
    })?;
    serde_json::from_slice(&text).map_err(|e| {
        AppError::Usage(format!(
            "{} is not a plan saved by `controlplane plan --out` ({e})",
            shown(&name)
        ))
    })
}

pub(crate) async fn run(global: &Global, command: Command) -> Outcome {
    if let Command::Drift = command {
        return drift(global).await;
    }
    if let Command::Rotate {
        what,
        services,
        yes,
    } = command
    {
        return rotate(global, what.into(), &services, yes).await;
    }
    let (s, loaded) = open(global, &command).await?;
    match command {
        Command::Plan { out } => {
            // The tier policy's acceptances and warnings, before what would change.
            if global.output == Output::Text {
                for p in cp_app::views::PolicyView::of(s.env()) {
                    eprintln!("{p}");
                }
            }
            let saved = cp_app::plan::plan(&s).await?;
            output::view(global.output, &saved.plan)?;
            if let Some(file) = out {
                let bytes = serde_json::to_vec_pretty(&saved).expect("a plan serializes");
                cp_runtime::state::write_atomic(&file, &bytes, 0o644)
                    .with_context(|| format!("cannot write the plan to {}", file.display()))?;
                if global.output == Output::Text {
                    eprintln!(
                        "saved to {}: `controlplane up --plan {}` applies exactly this plan",
                        file.display(),
                        file.display()
                    );
                }
            }
            Ok(if saved.plan.changes_pending {
                Exit::Pending
            } else {
                Exit::Success
            })
        }
        Command::Up {
            services,
            timeout,
            no_seed,
            backup,
            plan,
            reinitialise,
            yes,
        } => {
            let timeout = parse_timeout(&timeout)?;
            let services = service_names(s.env(), &services)?;
            let kinds = reinitialise_kinds(&reinitialise)?;
            if !kinds.is_empty() {
                let what = cp_app::up::reinitialise_preview(&s, &kinds).await?;
                let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                output::confirm(
                    &format!(
                        "`up --reinitialise {}` on {}",
                        names.join(" "),
                        s.env().name
                    ),
                    s.env().name.as_str(),
                    what,
                    yes,
                )?;
                let removed = cp_app::up::reinitialise(&s, &kinds).await?;
                if global.output == Output::Text {
                    eprintln!("re-initialising {}", names.join(", "));
                    for r in removed {
                        eprintln!("  - removed {r}");
                    }
                }
            }
            let saved = match (&plan, loaded) {
                (Some(file), Some(saved)) => {
                    check_saved(&s, &saved, &file.display().to_string()).await?;
                    if global.output == Output::Text {
                        eprintln!("{}: {}", s.env().name, s.driver_reason());
                    }
                    saved
                }
                _ => {
                    let saved = if no_seed {
                        cp_app::plan::plan_platform(&s).await?
                    } else {
                        cp_app::plan::plan(&s).await?
                    };
                    if global.output == Output::Text {
                        // The plan's heading names the driver and why.
                        if saved.plan.changes_pending {
                            eprintln!("{}", saved.plan);
                        } else {
                            eprintln!("{}: {}", s.env().name, s.driver_reason());
                        }
                    }
                    saved
                }
            };
            let progress = crate::progress::for_output(global.output);
            let opts = UpOptions {
                services,
                timeout,
                seed: !no_seed,
                backup,
            };
            let view = cp_app::up::up(&s, &saved, &opts, progress.as_ref()).await?;
            match global.output {
                // Each change was printed as it was made (the progress's `layer`).
                Output::Text => eprintln!("{}", view.summary()),
                Output::Json => output::json(&view)?,
            }
            Ok(Exit::Success)
        }
        Command::Down { volumes, yes } => {
            if ops::down_needs_confirmation(&s, volumes) {
                let what = ops::down_preview(&s, volumes).await?;
                let action = if volumes {
                    format!("`down --volumes` on {}", s.env().name)
                } else {
                    format!("`down` on {}", s.env().name)
                };
                output::confirm(&action, s.env().name.as_str(), what, yes)?;
            }
            let view = ops::down(&s, volumes).await?;
            output::view(global.output, &view)?;
            Ok(Exit::Success)
        }
        Command::Status {
            watch,
            show_secrets,
        } => {
            let secrets = if show_secrets {
                Secrets::Shown
            } else {
                Secrets::Hidden
            };
            // Clearing the screen only makes sense on a terminal.
            let clear = watch && std::io::stdout().is_terminal();
            loop {
                let view = ops::status(&s, secrets).await?;
                if clear {
                    output::out("\x1b[2J\x1b[H")?;
                }
                output::view(global.output, &view)?;
                if !watch {
                    return Ok(if view.healthy {
                        Exit::Success
                    } else {
                        Exit::Failure
                    });
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
        Command::Logs {
            service,
            follow,
            tail,
        } => {
            let svc = service_names(s.env(), std::slice::from_ref(&service))?.remove(0);
            let mut out = PipeAware(std::io::stdout());
            match cp_app::connect::logs(&s, &svc, tail, follow, &mut out).await {
                Ok(()) => Ok(Exit::Success),
                Err(_) if out.closed() => Err(Failure::Pipe),
                Err(e) => Err(e.into()),
            }
        }
        Command::Seed => {
            let view = ops::seed(&s).await?;
            show_changes(global.output, &view)?;
            Ok(Exit::Success)
        }
        Command::Migrate { action } => {
            match action {
                MigrateAction::Status => {
                    let view = ops::migrate_status(&s).await?;
                    output::view(global.output, &view)?;
                    if view.migrations.iter().any(|m| m.state == "changed") {
                        eprintln!(
                            "warning: an applied migration differs from the file shipped now; \
                             never edit an applied migration, add a new one"
                        );
                    }
                }
                MigrateAction::Up => show_changes(global.output, &ops::migrate(&s, None).await?)?,
                MigrateAction::Down { steps } => {
                    show_changes(global.output, &ops::migrate(&s, Some(steps)).await?)?;
                }
            }
            Ok(Exit::Success)
        }
        Command::Tenant { action } => {
            match action {
                TenantAction::Create { slug, name } => {
                    let view = ops::tenant_create(&s, &slug, name.as_deref()).await?;
                    match global.output {
                        Output::Json => output::json(&view)?,
                        Output::Text => {
                            output::out(&format!("{}\n", view.tenant.id))?;
                            eprintln!(
                                "tenant {}: {}",
                                view.tenant.slug,
                                if view.changed {
                                    "created"
                                } else {
                                    "already exists, nothing to change"
                                }
                            );
                            eprint!("{view}");
                        }
                    }
                }
                TenantAction::List => {
                    let view = ops::tenants(&s).await?;
                    output::view(global.output, &view)?;
                    if view.tenants.iter().any(|t| !t.complete) {
                        eprintln!(
                            "a tenant with a MISSING part: run `controlplane tenant create <slug>` again to finish it"
                        );
                    }
                }
                TenantAction::Delete { tenant, yes } => {
                    output::confirm(
                        &format!("`tenant delete {tenant}` on {}", s.env().name),
                        s.env().name.as_str(),
                        ops::tenant_delete_warning(&tenant),
                        yes,
                    )?;
                    let view = ops::tenant_delete(&s, &tenant).await?;
                    show_changes(global.output, &view)?;
                    // The tenant's API tokens go with it.
                    let given =
                        std::env::var_os("CONTROLPLANE_SERVER_DIR").map(std::path::PathBuf::from);
                    let store = cp_server::tokens::TokenStore::new(&super::serve::server_dir(
                        global,
                        given.as_ref(),
                    ));
                    match store.revoke_tenant(&view.tenant.id, &view.tenant.slug) {
                        Ok(names) if names.is_empty() => {}
                        Ok(names) => eprintln!("revoked the tenant's tokens: {}", names.join(", ")),
                        Err(e) => eprintln!(
                            "warning: the tenant's tokens could not be revoked ({}); run `controlplane token revoke` for each",
                            cp_runtime::error::chain(&e)
                        ),
                    }
                }
            }
            Ok(Exit::Success)
        }
        Command::Backup { base: true, .. } => {
            let view = cp_app::pitr::base_backup(&s).await?;
            match global.output {
                Output::Json => output::json(&view)?,
                Output::Text => {
                    output::out(&format!("{}\n", view.base.id))?;
                    eprint!("{view}");
                }
            }
            Ok(Exit::Success)
        }
        Command::Backup {
            action,
            services,
            destination,
            base: false,
        } => backup(global, &s, action, &services, destination.as_deref()).await,
        Command::Restore {
            to_time: Some(t),
            services,
            yes,
            ..
        } if !matches!(s.driver(), cp_app::driver::AnyDriver::Kube(_)) => {
            // One recovery point across services (PostgreSQL alone with
            // `--service postgres`).
            let at = cp_app::pitr::parse_time(&t)?;
            let asked = cp_app::backup::services(&services)?;
            let kinds = cp_app::moment::services(&s, &asked)?;
            let plan = cp_app::moment::plan(&s, at, &kinds).await?;
            let what = cp_app::moment::preview(&s, &plan).await?;
            output::confirm(
                &format!("`restore --to-time {t}` on {}", s.env().name),
                s.env().name.as_str(),
                what,
                yes,
            )?;
            let view = cp_app::moment::restore(&s, &plan).await?;
            show_changes(global.output, &view)?;
            Ok(Exit::Success)
        }
        Command::Restore {
            to_time,
            to_lsn,
            to_latest,
            services,
            yes,
            ..
        } if to_time.is_some() || to_lsn.is_some() || to_latest => {
            // PostgreSQL alone: a position in its WAL, or (on Kubernetes, where the
            // operator recovers a new Cluster) a moment.
            use cp_backup::pitr::RecoveryTarget;
            if cp_app::backup::services(&services)?
                .iter()
                .any(|k| *k != cp_core::names::CoreKind::Postgres)
            {
                return Err(cp_app::AppError::Usage(format!(
                    "on {}, a restore to a point in time restores PostgreSQL only; drop --service or name postgres",
                    s.env().name
                ))
                .into());
            }
            let target = match (to_time, to_lsn) {
                (Some(t), _) => RecoveryTarget::Time(cp_app::pitr::parse_time(&t)?),
                (None, Some(l)) => RecoveryTarget::Lsn(l),
                (None, None) => RecoveryTarget::Latest,
            };
            let what = cp_app::pitr::restore_preview(&s, &target).await?;
            output::confirm(
                &format!("`restore --to {target}` on {}", s.env().name),
                s.env().name.as_str(),
                what,
                yes,
            )?;
            let view = cp_app::pitr::restore(&s, &target).await?;
            show_changes(global.output, &view)?;
            Ok(Exit::Success)
        }
        Command::Drift | Command::Rotate { .. } => {
            unreachable!("handled before a session is opened")
        }
        Command::Restore {
            id,
            services,
            into_env,
            destination,
            yes,
            ..
        } => {
            let id = cp_app::backup::id(id.as_deref().unwrap_or_default())?;
            let services = cp_app::backup::services(&services)?;
            let other;
            let into = into_env.as_ref().map(|e| {
                let mut t = global.target();
                t.env = e.clone();
                t.state_dir = None;
                t
            });
            let target = match &into {
                None => &s,
                Some(t) => {
                    other = Session::open(t, Mode::ReadOnly, None).await?;
                    &other
                }
            };
            let all = if services.is_empty() {
                cp_core::names::CoreKind::ALL.to_vec()
            } else {
                services.clone()
            };
            let what = cp_app::backup::restore_preview(target, &all).await?;
            output::confirm(
                &format!("`restore {id}` on {}", target.env().name),
                target.env().name.as_str(),
                what,
                yes,
            )?;
            let request = JobRequest::Restore {
                id,
                services,
                destination,
                into,
            };
            let job = start(global, request).await?;
            let v = crate::progress::follow(global.output, &job).await?;
            let Some(JobResult::Restore(view)) = v.result else {
                return Err(Failure::Other(anyhow::anyhow!(
                    "a restore job ended without its view"
                )));
            };
            output::view(global.output, &view)?;
            Ok(Exit::Success)
        }
        Command::Psql { role, args } => connect::psql(&s, role, &args).await,
        Command::RedisCli { args } => connect::redis_cli(&s, &args).await,
        Command::Nats { action: None } => connect::nats_info(&s, global).await,
        Command::Nats {
            action: Some(action),
        } => connect::nats(&s, global, action).await,
        Command::VaultEnv => connect::vault_env(&s).await,
        Command::Validate { .. }
        | Command::Render { .. }
        | Command::Config
        | Command::Schema { .. }
        | Command::Completions { .. }
        | Command::Exporter { .. }
        | Command::Pitr { .. }
        | Command::Alerts
        | Command::Serve(_)
        | Command::Token(_) => unreachable!("not an environment command"),
    }
}

async fn backup(
    global: &Global,
    s: &Session,
    action: Option<crate::cli::BackupAction>,
    services: &[String],
    destination: Option<&str>,
) -> Outcome {
    use crate::cli::BackupAction;
    match action {
        None => {
            let request = JobRequest::Backup {
                services: cp_app::backup::services(services)?,
                destination: destination.map(str::to_owned),
            };
            // Where it runs (here, or on Kubernetes as a Job from the CronJob) is the
            // application layer's decision, the same as from the API.
            let job = start(global, request).await?;
            let v = crate::progress::follow(global.output, &job).await?;
            let ok = v.state == JobState::Succeeded;
            match v.result {
                Some(JobResult::Backup(view)) => match global.output {
                    Output::Json => output::json(&view)?,
                    Output::Text => {
                        output::out(&format!("{}\n", view.report.id))?;
                        eprint!("{view}");
                    }
                },
                Some(JobResult::Cluster(c)) => match global.output {
                    Output::Json => output::json(&c)?,
                    Output::Text => eprintln!(
                        "job {}: {}",
                        c.job,
                        if c.succeeded { "succeeded" } else { "failed" }
                    ),
                },
                _ => {}
            }
            Ok(if ok { Exit::Success } else { Exit::Failure })
        }
        Some(BackupAction::List { destination: d }) => {
            match d.as_deref().or(destination) {
                Some(cp_backup::run::ALL_DESTINATIONS) => {
                    let view = cp_app::backup::list_all(s).await?;
                    output::view(global.output, &view)?;
                    if view.destinations.iter().any(|d| d.error.is_some()) {
                        return Ok(Exit::Failure);
                    }
                }
                one => output::view(global.output, &cp_app::backup::list(s, one).await?)?,
            }
            Ok(Exit::Success)
        }
        Some(BackupAction::Verify {
            id,
            restore_drill,
            destination: d,
        }) => {
            let request = JobRequest::Verify {
                id: cp_app::backup::id(&id)?,
                destination: d.or(destination.map(str::to_owned)),
                drill: restore_drill,
            };
            let job = start(global, request).await?;
            let v = crate::progress::follow(global.output, &job).await?;
            let Some(JobResult::Verify(view)) = v.result else {
                return Err(Failure::Other(anyhow::anyhow!(
                    "a verify job ended without its view"
                )));
            };
            output::view(global.output, &view)?;
            Ok(if view.ok {
                Exit::Success
            } else {
                Exit::Failure
            })
        }
        Some(BackupAction::Prune {
            dry_run,
            destination: d,
        }) => {
            let view = cp_app::backup::prune(s, dry_run, d.as_deref().or(destination)).await?;
            output::view(global.output, &view)?;
            Ok(Exit::Success)
        }
    }
}

/// Starts `request` on the global flags' environment, as a job of this process.
/// `drift`: the job loads and opens the environment itself, so this loads it once.
async fn drift(global: &Global) -> Outcome {
    let prepared =
        cp_app::Prepared::new(&global.target(), Some(crate::progress::pull_observer())).await?;
    if global.output == Output::Text {
        eprintln!("{}: {}", prepared.env.name, prepared.driver_reason());
    }
    let job = cp_app::Jobs::new()
        .start_prepared(prepared, JobRequest::Drift, Trigger::Cli)
        .await?;
    let v = crate::progress::follow(global.output, &job).await?;
    let Some(JobResult::Drift(d)) = v.result else {
        return Err(Failure::Other(anyhow::anyhow!(
            "a drift job ended without its view"
        )));
    };
    output::view(global.output, &d)?;
    Ok(if d.drifted {
        Exit::Pending
    } else {
        Exit::Success
    })
}

/// `rotate`: refused before anything changes when a password in scope cannot be
/// written; passwords are confirmed (they end the old values); then a job.
async fn rotate(
    global: &Global,
    target: cp_app::views::rotate::RotateTarget,
    services: &[String],
    yes: bool,
) -> Outcome {
    use cp_core::names::CoreKind;
    let kinds = services
        .iter()
        .map(|n| {
            CoreKind::from_name(n).ok_or_else(|| {
                AppError::Usage(format!(
                    "--service {}: not a core service (postgres, redis, nats, vault)",
                    shown(n)
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let prepared =
        cp_app::Prepared::new(&global.target(), Some(crate::progress::pull_observer())).await?;
    cp_app::rotate::check(&prepared.env, target, &kinds)?;
    if target.passwords() {
        let what = cp_app::rotate::password_scope(&prepared.env, &kinds)
            .into_iter()
            .map(|s| format!("the current value of {s} (new connections need the new one)"))
            .collect();
        output::confirm(
            &format!("rotate {target}"),
            prepared.env.name.as_str(),
            what,
            yes,
        )?;
    }
    let job = cp_app::Jobs::new()
        .start_prepared(
            prepared,
            JobRequest::Rotate {
                target,
                services: kinds,
                only_due: false,
            },
            Trigger::Cli,
        )
        .await?;
    let v = crate::progress::follow(global.output, &job).await?;
    let Some(JobResult::Rotate(r)) = v.result else {
        return Err(Failure::Other(anyhow::anyhow!(
            "a rotation job ended without its view"
        )));
    };
    output::view(global.output, &r)?;
    Ok(Exit::Success)
}

async fn start(global: &Global, request: JobRequest) -> Result<cp_app::JobHandle, Failure> {
    Ok(cp_app::Jobs::new()
        .start(&global.target(), request, Trigger::Cli)
        .await?)
}

/// A change report: on stderr for people (stdout stays for data), JSON on stdout.
fn show_changes<T: serde::Serialize + std::fmt::Display>(
    format: Output,
    v: &T,
) -> Result<(), Failure> {
    match format {
        Output::Json => output::json(v)?,
        Output::Text => eprint!("{v}"),
    }
    Ok(())
}

/// stdout for `logs`, noting when the reader went away.
struct PipeAware(std::io::Stdout);

impl PipeAware {
    fn closed(&self) -> bool {
        use std::io::Write;
        self.0.lock().flush().is_err()
    }
}

impl std::io::Write for PipeAware {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
