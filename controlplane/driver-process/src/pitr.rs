//! Point-in-time recovery on the process platform: PostgreSQL's continuous archiving
//! (`archive_command` = this binary's `pitr wal-push`, credentials of an object-store
//! destination in PostgreSQL's environment), the local archive directory PostgreSQL's
//! user writes, and a recovery into a new data directory that is swapped in only once
//! PostgreSQL has replayed to the target and promoted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cp_core::Environment;
use cp_core::model::Destination;
use cp_core::names::CoreKind;
use cp_core::serverconf;
use cp_drivers::DriverError;
use cp_runtime::secrets::Secret;

use crate::service::{ConfigFile, Launch, Program, SecretVar, Unit, service_dir};
use crate::{ProcessDriver, binary, procfs, spawn, user};

/// The archiver's configuration file, beside `postgresql.conf`.
pub const CONFIG: &str = "pitr.json";

/// The environment's PITR destination, when PITR is on.
pub fn destination(env: &Environment) -> Option<(&str, &Destination)> {
    let b = env.backup.as_ref()?;
    let p = b.pitr.as_ref()?;
    let d = b.destinations.get(&p.destination)?;
    Some((p.destination.as_str(), d))
}

/// The command line of this binary, as PostgreSQL's user runs it.
fn exe() -> String {
    binary::resolve(&Program::Controlplane)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "controlplane".into())
}

/// `restore_command` for a recovery.
pub fn restore_command(service_dir: &Path) -> String {
    format!(
        "{} pitr wal-fetch --config {} %f %p",
        serverconf::sh_word(&exe()),
        serverconf::sh_word(&service_dir.join(CONFIG).to_string_lossy())
    )
}

/// Adds continuous archiving to PostgreSQL's launch when `backup.pitr` is on.
pub(crate) fn extend(launch: &mut Launch, root: &Path, project_root: &Path, env: &Environment) {
    let Some((name, dest)) = destination(env) else {
        return;
    };
    let Some(p) = env.backup.as_ref().and_then(|b| b.pitr.as_ref()) else {
        return;
    };
    let dir = service_dir(root, Unit::Core(CoreKind::Postgres));
    let config = cp_backup_config(env, name, dest, project_root);
    let command = format!(
        "{} pitr wal-push --config {} %p %f",
        serverconf::sh_word(&exe()),
        serverconf::sh_word(&dir.join(CONFIG).to_string_lossy())
    );
    for f in &mut launch.files {
        if f.name == "postgresql.conf" {
            f.text.push_str(&serverconf::postgresql_pitr_conf(
                &command,
                p.archive_timeout.as_secs(),
            ));
        }
        if f.name == "pg_hba.conf" {
            let l = crate::service::layout(root, Unit::Core(CoreKind::Postgres), "run");
            f.text.push_str(&serverconf::pg_hba_pitr(&l));
        }
    }
    launch.files.push(ConfigFile {
        name: CONFIG,
        text: config,
        secret: None,
    });
    let var = |var: &str, setting: &str, r: &Option<cp_core::units::SecretRef>| {
        r.clone().map(|reference| SecretVar {
            var: var.to_owned(),
            setting: setting.to_owned(),
            reference,
        })
    };
    launch.secrets.extend(
        match dest {
            Destination::S3 {
                access_key_id,
                secret_access_key,
                ..
            } => vec![
                var(
                    "AWS_ACCESS_KEY_ID",
                    "backup.destinations (pitr).access_key_id",
                    access_key_id,
                ),
                var(
                    "AWS_SECRET_ACCESS_KEY",
                    "backup.destinations (pitr).secret_access_key",
                    secret_access_key,
                ),
            ],
            Destination::Gcs {
                service_account_key,
                ..
            } => vec![var(
                "GOOGLE_SERVICE_ACCOUNT_KEY",
                "backup.destinations (pitr).service_account_key",
                service_account_key,
            )],
            Destination::Azure { access_key, .. } => vec![var(
                "AZURE_STORAGE_ACCESS_KEY",
                "backup.destinations (pitr).access_key",
                access_key,
            )],
            Destination::Local { .. } => vec![],
        }
        .into_iter()
        .flatten(),
    );
}

/// `pitr.json`: the archive's place, no credential.
fn cp_backup_config(
    env: &Environment,
    name: &str,
    dest: &Destination,
    project_root: &Path,
) -> String {
    let target = pitr_target(dest, env.name.as_str(), project_root);
    serde_json::to_string_pretty(&serde_json::json!({
        "env": env.name.as_str(),
        "destination": name,
        "target": target,
    }))
    .expect("serializes")
}

/// The archive's place, as `cp_backup::pitr::Target` serializes it (this crate sits
/// below cp-backup, so it writes the same JSON by hand; a test reads it back).
fn pitr_target(dest: &Destination, env: &str, project_root: &Path) -> serde_json::Value {
    let join = |prefix: &str| {
        let p = prefix.trim_matches('/');
        if p.is_empty() {
            format!("pitr/{env}")
        } else {
            format!("{p}/pitr/{env}")
        }
    };
    match dest {
        Destination::Local { path } => serde_json::json!({
            "type": "local",
            "dir": local_dir(path, env, project_root),
        }),
        Destination::S3 {
            bucket,
            prefix,
            region,
            endpoint,
            ..
        } => serde_json::json!({
            "type": "s3", "bucket": bucket, "prefix": join(prefix),
            "region": region, "endpoint": endpoint,
        }),
        Destination::Gcs { bucket, prefix, .. } => {
            serde_json::json!({"type": "gcs", "bucket": bucket, "prefix": join(prefix)})
        }
        Destination::Azure {
            account,
            container,
            prefix,
            ..
        } => serde_json::json!({
            "type": "azure", "account": account, "container": container, "prefix": join(prefix),
        }),
    }
}

/// `<destination>/pitr/<env>` of a local destination.
pub fn local_dir(path: &str, env: &str, project_root: &Path) -> PathBuf {
    let dir = if Path::new(path).is_absolute() {
        PathBuf::from(path)
    } else {
        project_root.join(path)
    };
    dir.join("pitr").join(env)
}

/// Makes a local archive directory PostgreSQL's user can write: the destination
/// (made 0700 when new) gets search permission for others (0711: entering, not
/// listing; the sets inside stay 0700), `pitr/` is 0711, and `pitr/<env>` is the
/// user's own, 0700.
pub(crate) fn prepare_local(
    run_as: Option<&user::RunAs>,
    project_root: &Path,
    env: &Environment,
) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let Some((_, Destination::Local { path })) = destination(env) else {
        return Ok(());
    };
    let archive = local_dir(path, env.name.as_str(), project_root);
    let pitr = archive.parent().expect("has a parent").to_owned();
    let dest = pitr.parent().expect("has a parent").to_owned();
    // `wals/` too: made here, PostgreSQL's user's; a root-made one (a base backup
    // opening the archive first) would shut `archive_command` out.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(archive.join("wals"))?;
    if let Some(u) = run_as {
        for d in [&dest, &pitr] {
            let mode = std::fs::metadata(d)?.permissions().mode();
            if mode & 0o001 == 0 {
                std::fs::set_permissions(
                    d,
                    std::fs::Permissions::from_mode((mode & 0o7777) | 0o011),
                )?;
            }
        }
        u.own(&archive, true).map_err(std::io::Error::other)?;
    }
    Ok(())
}

/// What a recovery replays to.
#[derive(Debug, Clone)]
pub enum Goal {
    /// `recovery_target_time` (RFC 3339).
    Time(String),
    /// `recovery_target_lsn`.
    Lsn(String),
    /// The end of the archive.
    Latest,
}

/// WAL files waiting to be archived in `archive_status`.
fn pending_ready(status: &Path) -> usize {
    std::fs::read_dir(status)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".ready"))
                .count()
        })
        .unwrap_or(0)
}

/// A recovered data directory, ready to be swapped in.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// The new data directory.
    pub dir: PathBuf,
    /// What PostgreSQL said about where it stopped (its log's recovery lines).
    pub lines: Vec<String>,
}

const RECOVERY_LINES: [&str; 6] = [
    "recovery stopping",
    "last completed transaction",
    "redo done",
    "selected new timeline",
    "archive recovery complete",
    "consistent recovery state reached",
];

fn setup(detail: String) -> DriverError {
    DriverError::Setup {
        service: Unit::Core(CoreKind::Postgres).service(),
        detail,
    }
}

impl ProcessDriver {
    /// Restores a base backup (`tar`, read from `base`) into a new data directory
    /// beside the live one, replays the archive to `goal` with a PostgreSQL of its own
    /// (no TCP, its own socket directory), waits for it to promote, and stops it. The
    /// live data directory is not touched. `timeline`: the timeline to follow (the one
    /// the target is on; not always the newest: a restore to a time before an earlier
    /// restore follows the timeline that was live then, else PostgreSQL would replay
    /// the newer timeline's WAL past the target). `vars`: the destination's
    /// credentials for `restore_command`.
    pub async fn pitr_recover(
        &self,
        env: &Environment,
        base: &mut (dyn tokio::io::AsyncRead + Send + Unpin),
        goal: &Goal,
        timeline: u32,
        vars: Vec<(String, Secret)>,
        timeout: Duration,
    ) -> Result<Recovered, DriverError> {
        let Some(pg) = env.services.postgres.as_ref() else {
            return Err(setup("PostgreSQL is disabled in this environment".into()));
        };
        let dir = service_dir(&self.root, Unit::Core(CoreKind::Postgres));
        if !dir.join("postgresql.conf").exists() {
            return Err(setup(format!(
                "{} is missing: bring the environment up once (`controlplane up`) before restoring into it",
                dir.join("postgresql.conf").display()
            )));
        }
        let stage = dir.join("data.restoring");
        let run = dir.join("run-restoring");
        for d in [&stage, &run] {
            if d.exists() {
                std::fs::remove_dir_all(d)
                    .map_err(|e| setup(format!("removing {}: {e}", d.display())))?;
            }
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(d)
                .map_err(|e| setup(format!("creating {}: {e}", d.display())))?;
        }
        // The base backup, unpacked.
        let tar =
            cp_runtime::exec::find_binary("tar").map_err(|source| DriverError::MissingBinary {
                service: Unit::Core(CoreKind::Postgres).service(),
                source,
            })?;
        let mut child = cp_runtime::exec::tokio_command(&tar)
            .arg("-x")
            .arg("-f")
            .arg("-")
            .arg("-C")
            .arg(&stage)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| setup(format!("cannot run tar: {e}")))?;
        let mut stdin = child.stdin.take().expect("piped");
        let copied = tokio::io::copy(base, &mut stdin).await;
        drop(stdin);
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| setup(format!("tar: {e}")))?;
        if let Err(e) = copied {
            return Err(setup(format!(
                "reading the base backup: {}",
                cp_runtime::error::chain(&e)
            )));
        }
        if !out.status.success() {
            return Err(setup(format!(
                "unpacking the base backup failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        std::fs::write(stage.join("recovery.signal"), b"")
            .map_err(|e| setup(format!("writing recovery.signal: {e}")))?;
        let run_as = user::postgres_user().map_err(|e| setup(e.to_string()))?;
        if let Some(u) = &run_as {
            u.own(&stage, true).map_err(|e| setup(e.to_string()))?;
            u.own(&run, false).map_err(|e| setup(e.to_string()))?;
        }
        let major = pg
            .common
            .version
            .split('.')
            .next()
            .unwrap_or(&pg.common.version)
            .to_owned();
        let program = binary::resolve(&Program::Postgres {
            name: "postgres",
            major,
        })
        .map_err(|source| DriverError::MissingBinary {
            service: Unit::Core(CoreKind::Postgres).service(),
            source,
        })?;
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let mut args = crate::service::postgres_args(&dir, &stage);
        args.extend([
            "-c".into(),
            "listen_addresses=".into(),
            "-c".into(),
            format!("unix_socket_directories={}", s(&run)),
            "-c".into(),
            format!("restore_command={}", restore_command(&dir)),
            "-c".into(),
            format!("recovery_target_timeline={timeline}"),
            "-c".into(),
            "recovery_target_action=promote".into(),
        ]);
        match goal {
            Goal::Time(t) => args.extend(["-c".into(), format!("recovery_target_time={t}")]),
            Goal::Lsn(l) => args.extend(["-c".into(), format!("recovery_target_lsn={l}")]),
            Goal::Latest => {}
        }
        let log = dir.join("restore.log");
        let _ = std::fs::remove_file(&log);
        let pid = spawn::detached(
            &spawn::Spawn {
                program: &program,
                args: &args,
                env: &vars,
                cwd: &dir,
                log: &log,
                run_as: run_as.as_ref(),
            },
            &self.exits,
        )
        .map_err(|e| setup(format!("cannot start PostgreSQL on the restored data: {e}")))?;
        let start_time = procfs::stat(pid).map_or(0, |s| s.start_time);
        let alive = || procfs::stat(pid).is_some_and(|s| s.start_time == start_time && !s.exited());
        let deadline = Instant::now() + timeout;
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        let result = loop {
            let text = read_log();
            if text.contains("database system is ready to accept connections") {
                break Ok(());
            }
            if !alive() {
                break Err(text);
            }
            if Instant::now() > deadline {
                break Err(format!("{text}\n(not promoted within {timeout:?})"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // Promoted: the new timeline's history file (and the old timeline's last,
        // partial segment) wait in `pg_wal/archive_status` as `.ready`. Give the
        // archiver the time to ship them before stopping: a history file that never
        // reaches the archive makes the next restore pick the same timeline number
        // again, whose segments then clash with those already archived.
        if result.is_ok() {
            let status = stage.join("pg_wal/archive_status");
            let by = Instant::now() + Duration::from_secs(30);
            while Instant::now() < by && pending_ready(&status) > 0 && alive() {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        // Stopped either way (fast shutdown: a checkpoint, then exit).
        let p = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGINT);
        let stop_by = Instant::now() + Duration::from_secs(60);
        while alive() && Instant::now() < stop_by {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if alive() {
            let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(&run);
        let text = read_log();
        let lines: Vec<String> = text
            .lines()
            .filter(|l| RECOVERY_LINES.iter().any(|m| l.contains(m)))
            .map(str::to_owned)
            .collect();
        match result {
            Ok(()) => Ok(Recovered { dir: stage, lines }),
            Err(text) => {
                let why: Vec<&str> = text
                    .lines()
                    .filter(|l| {
                        l.contains("FATAL")
                            || l.contains("ERROR")
                            || l.contains("LOG:  recovery")
                            || l.contains("not")
                    })
                    .collect();
                let why: Vec<&str> = why.iter().rev().take(6).rev().copied().collect();
                let _ = std::fs::remove_dir_all(&stage);
                Err(setup(format!(
                    "the restored PostgreSQL did not reach the target; nothing was replaced: {}",
                    why.join(" | ")
                )))
            }
        }
    }

    /// Swaps a recovered data directory in: stops the live PostgreSQL, moves its
    /// data directory aside (returned: kept until removed by hand) and the recovered
    /// one in its place. Starting it again is the caller's (`up`).
    pub async fn pitr_swap(&self, recovered: &Recovered) -> Result<PathBuf, DriverError> {
        let unit = Unit::Core(CoreKind::Postgres);
        let dir = service_dir(&self.root, unit);
        if let Some(rec) = crate::record::Record::read(&self.root, &unit.name()) {
            self.stop_record(unit, &rec).await?;
        }
        let data = dir.join("data");
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = dir.join(format!("data.before-restore-{secs}"));
        if data.exists() {
            std::fs::rename(&data, &aside)
                .map_err(|e| setup(format!("moving {} aside: {e}", data.display())))?;
        }
        std::fs::rename(&recovered.dir, &data).map_err(|e| {
            setup(format!(
                "moving the restored data into {}: {e}",
                data.display()
            ))
        })?;
        Ok(aside)
    }
}

use std::os::unix::fs::DirBuilderExt as _;
