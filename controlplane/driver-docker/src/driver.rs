//! [`DockerDriver`]: the [`Driver`] contract on the Docker Engine.
//!
//! One network per environment (`<project>-<env>`), named volumes per stateful
//! service, one container per service (`<project>-<env>-<service>`), all labelled with
//! the project and environment; containers also with their service and the spec they
//! were created from, which `observe` reads back so `plan` can diff. Ports are
//! published on 127.0.0.1 only; restart policy `unless-stopped`.
//!
//! **Invariant:** `observe` and `status` never change anything. **Invariant:** data
//! volumes are removed only by `teardown(volumes = true)`: `observe` reports only
//! the volumes the environment still declares, so a plan never deletes data.
//! **Invariant:** secret values exist only in the created container's environment
//! (resolved at apply time); labels and uploaded files hold references or hashes.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, ContainerStateStatusEnum,
    ContainerSummaryStateEnum, EndpointSettings, HostConfig, Mount, MountType,
    NetworkCreateRequest, NetworkingConfig, PortBinding, RestartPolicy, RestartPolicyNameEnum,
    VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, ListVolumesOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    StopContainerOptionsBuilder, UploadToContainerOptionsBuilder,
};
use cp_core::Environment;
use cp_core::names::{CoreKind, ServiceName};
use cp_core::plan::{Action, Layer, Observed, ObservedState, Resource, ResourceId, Step};
use cp_core::serverconf;
use cp_drivers::{
    Context, Driver, DriverError, DriverKind, Health, Removal, ServiceState, ServiceStatus,
    Vanished,
};
use cp_runtime::initialised;
use cp_runtime::probe::{Endpoint, Ready};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::archive;
use crate::client::{self, Engine, PullError, PullObserver, status_of};
use crate::ready::{self, Attempt};
use crate::spec::{
    self, CONFIG_DIR, ContainerSpec, KIND_CONTAINER, KIND_NETWORK, KIND_VOLUME, LABEL_SERVICE,
    LABEL_SPEC, PGDATA, REDIS_DATA,
};

/// Where the docker Vault's unseal keys (dev) and its initialisation journal live,
/// relative to the environment's state directory. Not the process driver's: each
/// platform's Vault has its own data, so each has its own keys.
pub const VAULT_KEYS_DIR: &str = "docker/vault";

/// How often readiness is polled (a polling interval, not a guess at readiness).
const POLL: Duration = Duration::from_millis(100);

/// Lines of log shown when a service fails.
const TAIL: usize = 20;

/// Seconds a container gets to stop cleanly before it is killed.
const STOP_SECS: i32 = 10;

/// The docker driver.
#[derive(Clone)]
pub struct DockerDriver {
    pub(crate) engine: Engine,
    pull_observer: Option<PullObserver>,
}

impl std::fmt::Debug for DockerDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerDriver")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl DockerDriver {
    /// Connects to the engine named by `DOCKER_HOST` (or the default socket) and
    /// negotiates the API version. [`DriverError::Unreachable`] says what to do when
    /// it does not answer.
    pub async fn connect() -> Result<Self, DriverError> {
        Self::connect_to(&client::host_from_env()).await
    }

    /// Connects to the engine at `host`: `unix:///var/run/docker.sock`, a bare socket
    /// path, or `tcp://127.0.0.1:2375`.
    pub async fn connect_to(host: &str) -> Result<Self, DriverError> {
        Ok(Self::on(Engine::connect(host).await?))
    }

    /// The driver on an engine already connected.
    pub(crate) fn on(engine: Engine) -> Self {
        Self {
            engine,
            pull_observer: None,
        }
    }

    /// Reports image pull progress to `observer` instead of the log.
    pub fn on_pull(mut self, observer: PullObserver) -> Self {
        self.pull_observer = Some(observer);
        self
    }

    /// The engine's address.
    pub fn host(&self) -> &str {
        &self.engine.host
    }

    /// The engine's version (`20.10.24`).
    pub fn engine_version(&self) -> &str {
        &self.engine.version
    }

    /// The negotiated API version (`1.41`).
    pub fn api_version(&self) -> &str {
        &self.engine.api_version
    }

    fn docker(&self) -> &bollard::Docker {
        &self.engine.docker
    }

    fn spec_of(env: &Environment, service: &ServiceName) -> Result<ContainerSpec, DriverError> {
        spec::container(env, service).ok_or_else(|| DriverError::Unsupported {
            service: service.clone(),
            reason: format!("is not declared in environment {}", env.name),
        })
    }

    /// Inspects a container by name; `None` when there is none.
    pub(crate) async fn inspect(
        &self,
        name: &str,
    ) -> Result<Option<ContainerInspectResponse>, DriverError> {
        match self.docker().inspect_container(name, None).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(self.engine.err(format!("inspecting container {name}"), e)),
        }
    }

    async fn ensure_network(&self, env: &Environment) -> Result<(), DriverError> {
        let name = spec::prefix(env);
        // Engines before API 1.44 accept duplicate network names: look first.
        let filters = HashMap::from([("name".to_owned(), vec![name.clone()])]);
        let existing = self
            .docker()
            .list_networks(Some(
                ListNetworksOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(|e| self.engine.err(format!("listing networks named {name}"), e))?;
        if let Some(n) = existing.iter().find(|n| n.name.as_deref() == Some(&name)) {
            if is_ours(env, n.labels.as_ref()) {
                return Ok(());
            }
            return Err(foreign("network", &name, "docker network rm"));
        }
        self.docker()
            .create_network(NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                labels: Some(spec::env_labels(env).into_iter().collect()),
                ..Default::default()
            })
            .await
            .map_err(|e| self.engine.err(format!("creating network {name}"), e))?;
        Ok(())
    }

    async fn ensure_volume(
        &self,
        env: &Environment,
        service: &ServiceName,
        name: &str,
    ) -> Result<(), DriverError> {
        match self.docker().inspect_volume(name).await {
            Ok(v) if is_ours(env, Some(&v.labels)) => return Ok(()),
            Ok(_) => return Err(foreign("volume", name, "docker volume rm")),
            Err(e) if status_of(&e) == Some(404) => {}
            Err(e) => return Err(self.engine.err(format!("inspecting volume {name}"), e)),
        }
        let mut labels = spec::env_labels(env);
        labels.insert(LABEL_SERVICE.into(), service.to_string());
        self.docker()
            .create_volume(VolumeCreateRequest {
                name: Some(name.to_owned()),
                driver: Some("local".into()),
                labels: Some(labels.into_iter().collect()),
                ..Default::default()
            })
            .await
            .map_err(|e| self.engine.err(format!("creating volume {name}"), e))?;
        Ok(())
    }

    async fn ensure_image(&self, c: &ContainerSpec) -> Result<(), DriverError> {
        if self.engine.has_image(&c.image).await? {
            return Ok(());
        }
        tracing::info!(image = %c.image, service = %c.service, "image not present: pulling");
        match self
            .engine
            .pull(&c.image, self.pull_observer.as_ref())
            .await
        {
            Ok(()) => Ok(()),
            Err(PullError::Engine(e)) => Err(e),
            Err(PullError::Refused(detail)) => Err(DriverError::ImageUnavailable {
                service: c.service.clone(),
                image: c.image.clone(),
                detail,
                setting: c.image_setting.clone(),
            }),
        }
    }

    /// Stops (cleanly, then forcibly) and removes a container and its anonymous
    /// volumes; nothing to do when it is gone.
    async fn remove_container(&self, name: &str) -> Result<bool, DriverError> {
        let stop = StopContainerOptionsBuilder::new().t(STOP_SECS).build();
        match self.docker().stop_container(name, Some(stop)).await {
            Ok(()) => {}
            Err(e) if matches!(status_of(&e), Some(304 | 404)) => {}
            Err(e) => return Err(self.engine.err(format!("stopping container {name}"), e)),
        }
        let rm = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        match self.docker().remove_container(name, Some(rm)).await {
            Ok(()) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(self.engine.err(format!("removing container {name}"), e)),
        }
    }

    async fn remove_volume(&self, name: &str) -> Result<bool, DriverError> {
        let opts = RemoveVolumeOptionsBuilder::new().force(false).build();
        match self.docker().remove_volume(name, Some(opts)).await {
            Ok(()) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(self.engine.err(format!("removing volume {name}"), e)),
        }
    }

    async fn remove_network(&self, name: &str) -> Result<bool, DriverError> {
        match self.docker().remove_network(name).await {
            Ok(()) => Ok(true),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(self.engine.err(format!("removing network {name}"), e)),
        }
    }

    /// A volume of PostgreSQL or OpenBao that is gone while the state directory
    /// records the service as initialised ([`initialised`]): its data vanished, and
    /// a new empty volume must not silently take its place. Read-only.
    async fn missing_volume(
        &self,
        state: &std::path::Path,
        c: &ContainerSpec,
    ) -> Result<Option<Vanished>, DriverError> {
        let Some(kind) = guarded(&c.service) else {
            return Ok(None);
        };
        let Some(rec) = initialised::read(state, kind.as_str())? else {
            return Ok(None);
        };
        for v in &c.volumes {
            match self.docker().inspect_volume(&v.name).await {
                Ok(_) => {}
                Err(e) if status_of(&e) == Some(404) => {
                    return Ok(Some(Vanished {
                        service: c.service.clone(),
                        reason: rec
                            .missing_reason(kind.as_str(), &format!("its volume {}", v.name)),
                    }));
                }
                Err(e) => {
                    return Err(self.engine.err(format!("inspecting volume {}", v.name), e));
                }
            }
        }
        // The volume is there; is it the database that was initialised? (A volume
        // removed and made again, or another one mounted, holds another cluster.)
        if kind == CoreKind::Postgres
            && let Some(was) = &rec.identity
            && let Some(now) = self.pg_system_identifier(&c.name).await
            && &now != was
        {
            let volume = c.volumes.first().map_or("", |v| v.name.as_str());
            return Ok(Some(Vanished {
                service: c.service.clone(),
                reason: rec.missing_reason(
                    kind.as_str(),
                    &format!(
                        "the database on its volume {volume} (it holds another one now, {now})"
                    ),
                ),
            }));
        }
        Ok(None)
    }

    /// PostgreSQL's system identifier, read from `global/pg_control` on its volume
    /// through the container (created, running or stopped); `None` when there is no
    /// container or no such file yet.
    async fn pg_system_identifier(&self, container: &str) -> Option<String> {
        let path = format!("{PGDATA}/global/pg_control");
        let opts = DownloadFromContainerOptionsBuilder::new()
            .path(&path)
            .build();
        let mut stream = self.docker().download_from_container(container, Some(opts));
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            tar.extend_from_slice(&chunk.ok()?);
        }
        initialised::pg_identity(&archive::first_file(&tar).ok()??)
    }

    /// [`Self::missing_volume`] as the error that stops `up`.
    async fn refuse_missing(&self, cx: Context<'_>, c: &ContainerSpec) -> Result<(), DriverError> {
        match self.missing_volume(cx.state.path(), c).await? {
            Some(v) => Err(DriverError::DataMissing {
                service: v.service,
                reason: v.reason,
            }),
            None => Ok(()),
        }
    }

    /// Creates the container of `c` (image, volumes, secrets, files) and starts it.
    async fn create(&self, cx: Context<'_>, c: &ContainerSpec) -> Result<(), DriverError> {
        let env = cx.env;
        self.refuse_missing(cx, c).await?;
        self.ensure_image(c).await?;
        for v in &c.volumes {
            self.ensure_volume(env, &c.service, &v.name).await?;
        }
        if let Some(old) = self.inspect(&c.name).await? {
            // Ours: left by a run interrupted between create and start. Not ours: stop.
            if !is_ours(env, old.config.as_ref().and_then(|c| c.labels.as_ref())) {
                return Err(foreign("container", &c.name, "docker rm -f"));
            }
            self.remove_container(&c.name).await?;
        }

        let mut env_vars: Vec<String> = c.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for (var, s) in &c.secret_env {
            let value = cx.secrets.resolve(&s.setting, &s.reference).await?;
            let value = match &s.template {
                Some(t) => cp_core::appenv::fill(
                    &cp_core::appenv::AppValue::WithSecret {
                        template: t.clone(),
                        setting: s.setting.clone(),
                        reference: s.reference.clone(),
                        var: var.clone(),
                    },
                    value.expose(),
                ),
                None => cp_core::serverconf::secret_env_value(var, value.expose()),
            };
            env_vars.push(format!("{var}={value}"));
        }
        let network = spec::prefix(env);
        let mut labels = spec::env_labels(env);
        labels.insert(LABEL_SERVICE.into(), c.service.to_string());
        labels.insert(LABEL_SPEC.into(), c.spec_json(&network).to_string());
        let port_key = |p: u16| format!("{p}/tcp");
        let body = ContainerCreateBody {
            image: Some(c.image.clone()),
            entrypoint: c.entrypoint.clone(),
            cmd: c.cmd.clone(),
            user: c.user.clone(),
            env: Some(env_vars),
            labels: Some(labels.into_iter().collect()),
            hostname: Some(c.service.to_string()),
            exposed_ports: Some(c.ports.iter().map(|p| port_key(p.port)).collect()),
            stop_signal: c.stop_signal.clone(),
            host_config: Some(HostConfig {
                port_bindings: Some(
                    c.ports
                        .iter()
                        .map(|p| {
                            (
                                port_key(p.port),
                                Some(vec![PortBinding {
                                    host_ip: Some("127.0.0.1".into()),
                                    host_port: Some(p.port.to_string()),
                                }]),
                            )
                        })
                        .collect(),
                ),
                mounts: Some(
                    c.volumes
                        .iter()
                        .map(|v| Mount {
                            target: Some(v.path.clone()),
                            source: Some(v.name.clone()),
                            typ: Some(MountType::VOLUME),
                            ..Default::default()
                        })
                        .collect(),
                ),
                restart_policy: Some(RestartPolicy {
                    name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                    maximum_retry_count: None,
                }),
                cap_add: (!c.cap_add.is_empty()).then(|| c.cap_add.clone()),
                network_mode: Some(network.clone()),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network,
                    EndpointSettings {
                        aliases: Some(vec![c.service.to_string()]),
                        ..Default::default()
                    },
                )])),
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::new().name(&c.name).build();
        self.docker()
            .create_container(Some(opts), body)
            .await
            .map_err(|e| self.engine.err(format!("creating container {}", c.name), e))?;

        if !c.files.is_empty() {
            let entries: Vec<archive::Entry<'_>> = c
                .files
                .iter()
                .map(|f| archive::Entry {
                    path: f.path.trim_start_matches('/'),
                    content: f.content.as_bytes(),
                    mode: 0o644,
                    owner: None,
                })
                .collect();
            let tar = archive::build(&[CONFIG_DIR.trim_start_matches('/')], &entries).map_err(
                |source| DriverError::Pack {
                    what: "configuration files",
                    source,
                },
            )?;
            self.upload(&c.name, "/", tar).await?;
        }
        if c.service.as_str() == CoreKind::Redis.as_str() {
            self.write_redis_acl(cx, c).await?;
        }
        self.start(c).await
    }

    async fn upload(&self, name: &str, path: &str, tar: Vec<u8>) -> Result<(), DriverError> {
        let opts = UploadToContainerOptionsBuilder::new().path(path).build();
        self.docker()
            .upload_to_container(name, Some(opts), bollard::body_full(tar.into()))
            .await
            .map_err(|e| self.engine.err(format!("uploading files into {name}"), e))
    }

    /// A file of a (created or running) container, `None` when it has none there.
    async fn read_file(&self, name: &str, path: &str) -> Result<Option<Vec<u8>>, DriverError> {
        let opts = DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let mut stream = self.docker().download_from_container(name, Some(opts));
        let mut tar = Vec::new();
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(b) => tar.extend_from_slice(&b),
                Err(e) if status_of(&e) == Some(404) => return Ok(None),
                Err(e) => return Err(self.engine.err(format!("reading {path} of {name}"), e)),
            }
        }
        Ok(archive::first_file(&tar).ok().flatten())
    }

    /// Writes Redis's ACL file on its volume: the `default` user off and the admin
    /// user with the SHA-256 of its password, keeping any other user saved there.
    async fn write_redis_acl(&self, cx: Context<'_>, c: &ContainerSpec) -> Result<(), DriverError> {
        let redis = cx
            .env
            .services
            .redis
            .as_ref()
            .expect("a redis container exists only when redis is enabled");
        let password = cx
            .secrets
            .resolve("services.redis.admin_password", &redis.admin_password)
            .await?;
        let path = format!("{REDIS_DATA}/users.acl");
        let old = self
            .read_file(&c.name, &path)
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        // Owned by the container's user (looked up in the image's own passwd: the
        // Docker Engine's `copyUIDGID` looks in the host's), so Redis reads it.
        let user = c.user.as_deref().unwrap_or("root");
        let passwd = self
            .read_file(&c.name, "/etc/passwd")
            .await?
            .unwrap_or_default();
        let owner = archive::passwd_ids(&String::from_utf8_lossy(&passwd), user).ok_or_else(
            || DriverError::Blocked(format!(
                "the image of {} has no user {user:?} in /etc/passwd to own users.acl; build the image with that user (`cargo xtask images --force`)",
                c.name
            )),
        )?;
        let hash = hex::encode(Sha256::digest(password.expose().as_bytes()));
        let content = redis_acl(&old, &serverconf::redis_admin_acl(&hash));
        let tar = archive::build(
            &[],
            &[archive::Entry {
                path: "users.acl",
                content: content.as_bytes(),
                mode: 0o600,
                owner: Some(owner),
            }],
        )
        .map_err(|source| DriverError::Pack {
            what: "the redis ACL file",
            source,
        })?;
        // It holds a credential hash: 0600, Redis's own.
        self.upload(&c.name, REDIS_DATA, tar).await
    }

    /// Starts a created or stopped container, checking its ports first.
    async fn start(&self, c: &ContainerSpec) -> Result<(), DriverError> {
        for p in &c.ports {
            if !port_free(p.port) {
                return Err(self.port_in_use(c, p.port).await);
            }
        }
        match self.docker().start_container(&c.name, None).await {
            Ok(()) => Ok(()),
            Err(e) if status_of(&e) == Some(304) => Ok(()),
            Err(e) => {
                let msg = client::message_of(&e);
                if msg.contains("address already in use") || msg.contains("already allocated") {
                    let port = c
                        .ports
                        .iter()
                        .find(|p| msg.contains(&format!(":{}", p.port)))
                        .or(c.ports.first())
                        .map_or(0, |p| p.port);
                    return Err(self.port_in_use(c, port).await);
                }
                Err(self.engine.err(format!("starting container {}", c.name), e))
            }
        }
    }

    async fn port_in_use(&self, c: &ContainerSpec, port: u16) -> DriverError {
        let setting = c
            .ports
            .iter()
            .find(|p| p.port == port)
            .map_or_else(String::new, |p| p.setting.clone());
        // A container publishing it is the usual holder; name it.
        let filters = HashMap::from([("publish".to_owned(), vec![port.to_string()])]);
        let holder = self
            .docker()
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .ok()
            .and_then(|cs| cs.into_iter().next())
            .and_then(|c| c.names.and_then(|n| n.into_iter().next()))
            .map(|n| format!("container {}", n.trim_start_matches('/')));
        DriverError::PortInUse {
            service: c.service.clone(),
            port,
            holder,
            setting,
        }
    }

    async fn unpause_or_start(&self, c: &ContainerSpec) -> Result<(), DriverError> {
        let paused = self
            .inspect(&c.name)
            .await?
            .and_then(|i| i.state)
            .and_then(|s| s.status)
            == Some(ContainerStateStatusEnum::PAUSED);
        if paused {
            return self.docker().unpause_container(&c.name).await.map_err(|e| {
                self.engine
                    .err(format!("unpausing container {}", c.name), e)
            });
        }
        self.start(c).await
    }

    /// The last `lines` lines of a container's output.
    pub(crate) async fn tail_of(&self, name: &str, lines: usize) -> Vec<String> {
        let opts = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&lines.to_string())
            .build();
        let mut text = String::new();
        let mut stream = self.docker().logs(name, Some(opts));
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&chunk.to_string());
        }
        let all: Vec<String> = text.lines().map(str::to_owned).collect();
        all[all.len().saturating_sub(lines)..].to_vec()
    }

    async fn list_env_containers(
        &self,
        env: &Environment,
    ) -> Result<Vec<bollard::models::ContainerSummary>, DriverError> {
        let filters = HashMap::from([("label".to_owned(), spec::env_filter(env))]);
        self.docker()
            .list_containers(Some(
                ListContainersOptionsBuilder::new()
                    .all(true)
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| self.engine.err("listing containers", e))
    }

    async fn list_env_volumes(&self, env: &Environment) -> Result<Vec<String>, DriverError> {
        let filters = HashMap::from([("label".to_owned(), spec::env_filter(env))]);
        let list = self
            .docker()
            .list_volumes(Some(
                ListVolumesOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(|e| self.engine.err("listing volumes", e))?;
        Ok(list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect())
    }

    async fn list_env_networks(&self, env: &Environment) -> Result<Vec<String>, DriverError> {
        let filters = HashMap::from([("label".to_owned(), spec::env_filter(env))]);
        let list = self
            .docker()
            .list_networks(Some(
                ListNetworksOptionsBuilder::new().filters(&filters).build(),
            ))
            .await
            .map_err(|e| self.engine.err("listing networks", e))?;
        Ok(list.into_iter().filter_map(|n| n.name).collect())
    }

    /// Polls until the service answers (see [`Driver::wait_ready`]).
    async fn wait(
        &self,
        cx: Context<'_>,
        c: &ContainerSpec,
        deadline: Instant,
    ) -> Result<Ready, DriverError> {
        let secrets = ready::ProbeSecrets::resolve(cx, c).await?;
        let mut restarts: Option<i64> = None;
        let mut wiped = false;
        loop {
            let info = self.inspect(&c.name).await?;
            if let Some(why) = ready::not_running(info.as_ref(), &mut restarts) {
                return Err(DriverError::NotReady {
                    service: c.service.clone(),
                    detail: why,
                    log_tail: self.tail_of(&c.name, TAIL).await,
                });
            }
            let last = match ready::attempt(self, cx, c, &secrets).await {
                Attempt::Ready(r) => return Ok(r),
                Attempt::Retry(why) => why,
                Attempt::Fatal(e) => return Err(e),
                Attempt::Wipe(why) if !wiped => {
                    // An initialisation whose keys were never kept: the data can never
                    // be unsealed, so it holds nothing. Start over, once.
                    tracing::warn!(service = %c.service, "{why}; removing its data and initialising again");
                    wiped = true;
                    self.remove_container(&c.name).await?;
                    for v in &c.volumes {
                        self.remove_volume(&v.name).await?;
                    }
                    ready::forget_vault_keys(cx)?;
                    self.create(cx, c).await?;
                    restarts = None;
                    continue;
                }
                Attempt::Wipe(why) => why,
            };
            if Instant::now() + POLL >= deadline {
                return Err(DriverError::NotReady {
                    service: c.service.clone(),
                    detail: last,
                    log_tail: self.tail_of(&c.name, TAIL).await,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Redis's ACL file: every user line of `old` except `default` and the admin, then
/// `default` off and the admin line.
fn redis_acl(old: &str, admin_line: &str) -> String {
    let admin = format!("user {} ", serverconf::REDIS_ADMIN_USER);
    let mut out: String = old
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !l.is_empty() && !l.starts_with("user default ") && !l.starts_with(&admin)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str("user default off\n");
    out.push_str(admin_line);
    out.push('\n');
    out
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// True when `labels` say the object belongs to `env`.
fn is_ours(env: &Environment, labels: Option<&HashMap<String, String>>) -> bool {
    let Some(labels) = labels else {
        return false;
    };
    spec::env_labels(env)
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
}

fn foreign(kind: &str, name: &str, remove: &str) -> DriverError {
    DriverError::Foreign {
        kind: kind.to_owned(),
        name: name.to_owned(),
        remove: remove.to_owned(),
    }
}

fn observed_state(state: Option<ContainerSummaryStateEnum>, status: Option<&str>) -> ObservedState {
    let why = || status.unwrap_or("not running").to_owned();
    match state {
        // Restarting: the engine is already bringing it back; readiness judges it.
        Some(ContainerSummaryStateEnum::RUNNING | ContainerSummaryStateEnum::RESTARTING) => {
            ObservedState::Running
        }
        _ => ObservedState::Stopped(why()),
    }
}

fn unix_seconds_since(rfc3339: &str) -> Option<u64> {
    let started = chrono::DateTime::parse_from_rfc3339(rfc3339).ok()?;
    let secs = (chrono::Utc::now() - started.with_timezone(&chrono::Utc)).num_seconds();
    u64::try_from(secs).ok()
}

impl Driver for DockerDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Docker
    }

    fn desired(&self, env: &Environment) -> Result<Vec<Resource>, DriverError> {
        Ok(spec::desired(env))
    }

    async fn observe(&self, env: &Environment) -> Result<Vec<Observed>, DriverError> {
        let mut out = Vec::new();
        for n in self.list_env_networks(env).await? {
            out.push(Observed {
                id: ResourceId::new(Layer::Platform, KIND_NETWORK, n),
                spec: None,
                state: ObservedState::Present,
            });
        }
        // Only volumes still declared: a plan never removes data.
        let declared: Vec<String> = spec::containers(env)
            .into_iter()
            .flat_map(|c| c.volumes.into_iter().map(|v| v.name))
            .collect();
        for v in self.list_env_volumes(env).await? {
            if declared.contains(&v) {
                out.push(Observed {
                    id: ResourceId::new(Layer::Platform, KIND_VOLUME, v),
                    spec: None,
                    state: ObservedState::Present,
                });
            }
        }
        for c in self.list_env_containers(env).await? {
            let Some(name) = c
                .names
                .as_ref()
                .and_then(|n| n.first())
                .map(|n| n.trim_start_matches('/').to_owned())
            else {
                continue;
            };
            let spec = c
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_SPEC))
                .and_then(|s| serde_json::from_str(s).ok());
            out.push(Observed {
                id: ResourceId::new(Layer::Platform, KIND_CONTAINER, name),
                spec,
                state: observed_state(c.state, c.status.as_deref()),
            });
        }
        Ok(out)
    }

    async fn apply(&self, cx: Context<'_>, step: &Step) -> Result<(), DriverError> {
        let id = &step.id;
        let kind = id.kind.as_str();
        let service = || {
            step.service
                .as_ref()
                .ok_or_else(|| DriverError::Blocked(format!("{id} belongs to no service")))
        };
        match (&step.action, kind) {
            (Action::Blocked { reason, .. }, _) => {
                Err(DriverError::Blocked(format!("{id}: {reason}")))
            }
            (Action::Delete, KIND_CONTAINER) => self.remove_container(&id.name).await.map(drop),
            (Action::Delete, KIND_VOLUME) => self.remove_volume(&id.name).await.map(drop),
            (Action::Delete, KIND_NETWORK) => self.remove_network(&id.name).await.map(drop),
            (_, KIND_NETWORK) => self.ensure_network(cx.env).await,
            (_, KIND_VOLUME) => {
                if let Ok(c) = Self::spec_of(cx.env, service()?) {
                    self.refuse_missing(cx, &c).await?;
                }
                self.ensure_volume(cx.env, service()?, &id.name).await
            }
            (action, KIND_CONTAINER) => {
                let c = Self::spec_of(cx.env, service()?)?;
                match action {
                    Action::Start { .. } => self.unpause_or_start(&c).await,
                    Action::Create => self.create(cx, &c).await,
                    _ => {
                        self.remove_container(&c.name).await?;
                        self.create(cx, &c).await
                    }
                }
            }
            (_, other) => Err(DriverError::Blocked(format!(
                "{id}: the docker driver has no resources of kind {other}"
            ))),
        }
    }

    async fn wait_ready(
        &self,
        cx: Context<'_>,
        service: &ServiceName,
        deadline: Instant,
    ) -> Result<Ready, DriverError> {
        let c = Self::spec_of(cx.env, service)?;
        let ready = self.wait(cx, &c, deadline).await?;
        // Answering (Vault: unsealed) on its volume: its data exists from here on.
        if let Some(kind) = guarded(service)
            && !c.volumes.is_empty()
        {
            let id = match (kind, c.main_port) {
                (CoreKind::Postgres, _) => self.pg_system_identifier(&c.name).await,
                (CoreKind::Vault, Some(port)) => {
                    cp_runtime::vault::VaultApi::new(&Endpoint::local(port))
                        .seal_status()
                        .await
                        .ok()
                        .and_then(|s| s.cluster_id)
                        .map(|i| format!("cluster id {i}"))
                }
                _ => None,
            };
            initialised::record(cx.state, kind.as_str(), id)?;
        }
        Ok(ready)
    }

    async fn vanished(&self, cx: Context<'_>) -> Result<Vec<Vanished>, DriverError> {
        let mut out = Vec::new();
        for c in spec::containers(cx.env) {
            out.extend(self.missing_volume(cx.state.path(), &c).await?);
        }
        Ok(out)
    }

    async fn reinitialise(
        &self,
        cx: Context<'_>,
        service: &ServiceName,
    ) -> Result<Vec<String>, DriverError> {
        let kind = cp_drivers::reinit::reinitialisable(service, &GUARDED)?;
        let c = Self::spec_of(cx.env, service)?;
        let mut removed = Vec::new();
        if self.remove_container(&c.name).await? {
            removed.push(Doomed::Container(c.name.clone()).removal().what);
        }
        for v in &c.volumes {
            if self.remove_volume(&v.name).await? {
                removed.push(Doomed::Volume(v.name.clone()).removal().what);
            }
        }
        let gone = cp_drivers::reinit::forget(cx, kind, VAULT_KEYS_DIR)?;
        removed.extend(gone.into_iter().map(|p| Doomed::KeyFile(p).removal().what));
        Ok(removed)
    }

    fn vault_keys_dir(&self) -> &'static str {
        VAULT_KEYS_DIR
    }

    fn endpoint(&self, env: &Environment, service: &ServiceName) -> Option<Endpoint> {
        spec::container(env, service)
            .and_then(|c| c.main_port)
            .map(Endpoint::local)
    }

    async fn status(&self, cx: Context<'_>) -> Result<Vec<ServiceStatus>, DriverError> {
        let mut out = Vec::new();
        for c in spec::containers(cx.env) {
            let endpoint = c.main_port.map(|p| Endpoint::local(p).addr());
            let Some(info) = self.inspect(&c.name).await? else {
                out.push(ServiceStatus {
                    service: c.service.clone(),
                    state: ServiceState::Missing,
                    version: None,
                    uptime_secs: None,
                    endpoint,
                    health: Health::Unknown,
                    id: None,
                });
                continue;
            };
            let st = info.state.clone().unwrap_or_default();
            let running = st.status == Some(ContainerStateStatusEnum::RUNNING);
            let (state, health, version) = if running {
                match ready::check_once(self, cx, &c).await {
                    Ok(r) => (ServiceState::Running, Health::Healthy, Some(r.version)),
                    Err(e) => {
                        // What kind of failure, never the server's words (they can
                        // name roles and users); the whole chain to the log.
                        tracing::info!(service = %c.service, error = %cp_runtime::error::chain(&e), "unhealthy");
                        (
                            ServiceState::Running,
                            Health::Unhealthy(cp_runtime::error::public(&e)),
                            None,
                        )
                    }
                }
            } else {
                let why = match st.status {
                    Some(s) => format!("{s} (exit code {})", st.exit_code.unwrap_or(0)),
                    None => "not running".into(),
                };
                (ServiceState::Stopped(why), Health::Unknown, None)
            };
            out.push(ServiceStatus {
                service: c.service.clone(),
                state,
                version,
                uptime_secs: if running {
                    st.started_at.as_deref().and_then(unix_seconds_since)
                } else {
                    None
                },
                endpoint,
                health,
                id: info.id.map(|id| id.chars().take(12).collect()),
            });
        }
        Ok(out)
    }

    async fn log_tail(
        &self,
        env: &Environment,
        service: &ServiceName,
        lines: usize,
    ) -> Result<Vec<String>, DriverError> {
        let c = Self::spec_of(env, service)?;
        if self.inspect(&c.name).await?.is_none() {
            return Ok(Vec::new());
        }
        Ok(self.tail_of(&c.name, lines).await)
    }

    async fn logs(
        &self,
        env: &Environment,
        service: &ServiceName,
        tail: usize,
        follow: bool,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(), DriverError> {
        let c = Self::spec_of(env, service)?;
        if self.inspect(&c.name).await?.is_none() {
            return Err(DriverError::NotReady {
                service: c.service.clone(),
                detail: format!("it has no container ({}); run `controlplane up`", c.name),
                log_tail: Vec::new(),
            });
        }
        let opts = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail.to_string())
            .build();
        let mut stream = self.docker().logs(&c.name, Some(opts));
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| self.engine.err(format!("reading the log of {}", c.name), e))?;
            out.write_all(chunk.as_ref())
                .and_then(|()| out.flush())
                .map_err(|source| DriverError::WriteLog { source })?;
        }
        Ok(())
    }

    async fn teardown_preview(
        &self,
        cx: Context<'_>,
        volumes: bool,
    ) -> Result<Vec<Removal>, DriverError> {
        Ok(self
            .doomed(cx, volumes)
            .await?
            .iter()
            .map(Doomed::removal)
            .collect())
    }

    async fn teardown(&self, cx: Context<'_>, volumes: bool) -> Result<Vec<String>, DriverError> {
        let doomed = self.doomed(cx, volumes).await?;
        if volumes {
            // The data goes on purpose: the next `up` starts these empty.
            for kind in [CoreKind::Postgres, CoreKind::Vault] {
                initialised::forget(cx.state.path(), kind.as_str())?;
            }
        }
        let (containers, rest): (Vec<&Doomed>, Vec<&Doomed>) = doomed
            .iter()
            .partition(|d| matches!(d, Doomed::Container(_)));
        // Containers together (each may take its stop timeout), then the rest in order.
        let stopped =
            futures::future::join_all(containers.iter().map(|d| self.remove_doomed(d))).await;
        let mut removed = Vec::new();
        for (d, r) in containers.iter().zip(stopped) {
            if r? {
                removed.push(d.removal().what);
            }
        }
        for d in rest {
            if self.remove_doomed(d).await? {
                removed.push(d.removal().what);
            }
        }
        Ok(removed)
    }
}

/// The stateful services whose data is guarded by an initialisation record.
fn guarded(service: &ServiceName) -> Option<CoreKind> {
    CoreKind::from_name(service.as_str()).filter(|k| GUARDED.contains(k))
}

/// The services whose initialisation this driver records (and can re-initialise).
const GUARDED: [CoreKind; 2] = [CoreKind::Postgres, CoreKind::Vault];

/// One thing a teardown of the docker driver removes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Doomed {
    Container(String),
    Network(String),
    Volume(String),
    /// A file of Vault's kept keys or initialisation journal.
    KeyFile(std::path::PathBuf),
}

impl Doomed {
    fn removal(&self) -> Removal {
        match self {
            Doomed::Container(n) => Removal::runtime(format!("container {n}")),
            Doomed::Network(n) => Removal::runtime(format!("network {n}")),
            Doomed::Volume(n) => Removal::data(format!("volume {n}")),
            Doomed::KeyFile(p) => Removal::data(format!("file {}", p.display())),
        }
    }
}

impl DockerDriver {
    /// What a teardown removes, read-only: the environment's labelled containers
    /// and networks; with `volumes` also its labelled volumes and the files Vault's
    /// key store keeps.
    async fn doomed(&self, cx: Context<'_>, volumes: bool) -> Result<Vec<Doomed>, DriverError> {
        let env = cx.env;
        let containers: Vec<String> = self
            .list_env_containers(env)
            .await?
            .into_iter()
            .filter_map(|c| c.names.and_then(|n| n.into_iter().next()))
            .map(|n| n.trim_start_matches('/').to_owned())
            .collect();
        let networks = self.list_env_networks(env).await?;
        let (vols, keys) = if volumes {
            (
                self.list_env_volumes(env).await?,
                ready::vault_key_files(cx),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        Ok(listed(containers, networks, vols, keys))
    }

    /// Removes one listed thing; false when it was already gone.
    async fn remove_doomed(&self, d: &Doomed) -> Result<bool, DriverError> {
        match d {
            Doomed::Container(n) => self.remove_container(n).await,
            Doomed::Network(n) => self.remove_network(n).await,
            Doomed::Volume(n) => self.remove_volume(n).await,
            Doomed::KeyFile(p) => match std::fs::remove_file(p) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(source) => Err(DriverError::File {
                    action: "remove",
                    path: p.to_path_buf(),
                    source,
                }),
            },
        }
    }
}

/// The teardown list in the order teardown acts: containers (which use the rest),
/// networks, volumes, key files; each kind by name (the engine lists in no stable
/// order, and a preview and its teardown must read alike).
fn listed(
    mut containers: Vec<String>,
    mut networks: Vec<String>,
    mut volumes: Vec<String>,
    key_files: Vec<std::path::PathBuf>,
) -> Vec<Doomed> {
    containers.sort();
    networks.sort();
    volumes.sort();
    containers
        .into_iter()
        .map(Doomed::Container)
        .chain(networks.into_iter().map(Doomed::Network))
        .chain(volumes.into_iter().map(Doomed::Volume))
        .chain(key_files.into_iter().map(Doomed::KeyFile))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_acl_keeps_other_users_and_replaces_ours() {
        let old = "user default on nopass ~* +@all\nuser admin on #old ~* &* +@all\nuser app on #x ~app:* +@read\n";
        assert_eq!(
            redis_acl(old, "user admin on #new ~* &* +@all"),
            "user app on #x ~app:* +@read\nuser default off\nuser admin on #new ~* &* +@all\n"
        );
        assert_eq!(
            redis_acl("", "user admin on #h ~* &* +@all"),
            "user default off\nuser admin on #h ~* &* +@all\n"
        );
    }

    #[test]
    fn teardown_lists_containers_first_and_marks_what_holds_data() {
        let list = listed(
            vec!["p-dev-redis".into(), "p-dev-nats".into()],
            vec!["p-dev".into()],
            vec!["p-dev-redis-data".into()],
            vec!["/s/docker/vault/init.json".into()],
        );
        let removals: Vec<(String, bool)> = list
            .iter()
            .map(|d| {
                let r = d.removal();
                (r.what, r.holds_data)
            })
            .collect();
        assert_eq!(
            removals,
            [
                ("container p-dev-nats".to_owned(), false),
                ("container p-dev-redis".to_owned(), false),
                ("network p-dev".to_owned(), false),
                ("volume p-dev-redis-data".to_owned(), true),
                ("file /s/docker/vault/init.json".to_owned(), true),
            ]
        );
    }

    #[test]
    fn restarting_containers_count_as_running() {
        assert_eq!(
            observed_state(Some(ContainerSummaryStateEnum::RESTARTING), None),
            ObservedState::Running
        );
        assert_eq!(
            observed_state(
                Some(ContainerSummaryStateEnum::EXITED),
                Some("Exited (137) 2 seconds ago")
            ),
            ObservedState::Stopped("Exited (137) 2 seconds ago".into())
        );
    }
}
