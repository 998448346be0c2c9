//! [`KubeDriver`]: the [`Driver`] contract on a Kubernetes API server.
//!
//! `desired` is the environment's rendered overlay (see [`crate::objects`]); `apply`
//! server-side applies one object with field manager `controlplane`; `observe` lists
//! the objects carrying the environment label; `wait_ready` waits for the service's
//! StatefulSets and Deployments to roll out; `teardown` deletes the labelled objects
//! that `teardown_preview` lists.
//!
//! **Force.** Every apply is forced (`force=true`): the environment files are the
//! declared owner of these objects, so a field another manager took over (a
//! `kubectl edit`, `kubectl scale`) is taken back rather than failing the whole `up`
//! with a conflict. The plan shows such drift before `up` overwrites it. (A field that
//! should belong to someone else, such as `replicas` under an autoscaler, must then
//! be left out of the templates.)
//!
//! **Invariants.** `observe`, `status` and `plan` never change anything. Only objects
//! labelled `controlplane.dev/environment=<env>` in the environment's namespace (and
//! labelled cluster-scoped objects of declared kinds) are ever deleted. Namespaces
//! are never deleted: that would delete everything in them, including objects
//! controlplane does not manage. PersistentVolumeClaims go only with
//! `down --volumes`, and only those labelled with the environment (never by name). Secret values are resolved at apply time, sent only in the
//! apply request, and never enter a plan, a log or an error.
//!
//! **Known limit.** Because a plan never sees secret values, a changed value behind an
//! unchanged reference (a rotated `env://` variable) is not a planned change: it is
//! written the next time its Secret is applied for another reason. To push one now,
//! delete the Secret (`kubectl delete secret <name> -n <namespace>`) and run `up`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use cp_core::Environment;
use cp_core::names::{CoreKind, ServiceName};
use cp_core::plan::{Action, Observed, ObservedState, Resource, ResourceId, Step};
use cp_core::render::context::secret_bindings;
use cp_core::render::{Renderer, Templates};
use cp_core::units::SecretRef;
use cp_drivers::{
    Context, Driver, DriverError, DriverKind, Health, Removal, ServiceState, ServiceStatus,
    Vanished,
};
use cp_runtime::initialised;
use cp_runtime::probe::{Endpoint, Ready, wait_for};
use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, LogParams, Patch, PatchParams};
use kube::core::ApiResource;
use kube::{Client, Error as KubeError};
use serde_json::Value;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::objects::{self, NAME_LABEL};
use crate::rollout;

/// How many log lines a readiness failure carries.
const LOG_TAIL_LINES: usize = 20;

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "controlplane";

/// What to tell someone whose cluster does not answer.
const UNREACHABLE_HINT: &str =
    "check `kubectl cluster-info` and KUBECONFIG, or use --set platform=process";

/// The Kubernetes driver.
pub struct KubeDriver {
    client: Client,
    renderer: Renderer,
    poll: Duration,
    namespace_ready: OnceCell<()>,
    /// The last rendering, by the serialized environment it was made from: rendering
    /// costs milliseconds and `up` asks for the objects once per service.
    rendered: Mutex<Option<(String, Vec<Value>)>>,
}

impl std::fmt::Debug for KubeDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeDriver")
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

/// Whether an API error is "not found" (an absent object, or a kind whose CRD is not
/// installed).
fn not_found(e: &KubeError) -> bool {
    matches!(e, KubeError::Api(s) if s.code == 404)
}

/// Why a workload is not ready yet, while waiting for it.
#[derive(Debug, thiserror::Error)]
enum Waiting {
    /// It has not rolled out.
    #[error(transparent)]
    Pending(rollout::Pending),
    /// It does not exist.
    #[error("{kind} {name} does not exist")]
    Missing { kind: String, name: String },
    /// Its status could not be read.
    #[error("cannot read its status")]
    Status {
        #[source]
        source: KubeError,
    },
}

/// An API error with what was being done, and what to do where we know.
fn api_error(what: String, e: KubeError) -> DriverError {
    match &e {
        KubeError::HyperError(_) | KubeError::Service(_) => DriverError::Unreachable {
            what: "Kubernetes API".into(),
            detail: format!("{what}: {e}"),
            hint: UNREACHABLE_HINT.into(),
        },
        KubeError::Api(s) if s.code == 403 => DriverError::Forbidden {
            doing: what,
            source: e.into(),
        },
        _ => DriverError::Request {
            doing: what,
            source: e.into(),
        },
    }
}

fn to_value(obj: &DynamicObject) -> Value {
    serde_json::to_value(obj).expect("API objects serialize")
}

impl KubeDriver {
    /// A driver talking through `client`, rendering with `templates`.
    pub fn new(client: Client, templates: &Templates) -> Result<Self, DriverError> {
        let renderer = Renderer::new(templates).map_err(|source| DriverError::Templates {
            which: "Kubernetes",
            source,
        })?;
        Ok(Self {
            client,
            renderer,
            poll: Duration::from_secs(1),
            namespace_ready: OnceCell::new(),
            rendered: Mutex::new(None),
        })
    }

    /// The cluster of the current kubeconfig (or the in-cluster service account), if
    /// its API server answers.
    pub async fn connect(templates: &Templates) -> Result<Self, DriverError> {
        let no_cluster = |detail: String| DriverError::NoCluster { detail };
        // kube's errors repeat themselves down their chain; the top line says it all.
        let config = kube::Config::infer()
            .await
            .map_err(|e| no_cluster(e.to_string()))?;
        let url = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| no_cluster(e.to_string()))?;
        client
            .apiserver_version()
            .await
            .map_err(|e| DriverError::Unreachable {
                what: "Kubernetes API".into(),
                detail: format!("{url}: {e}"),
                hint: UNREACHABLE_HINT.into(),
            })?;
        Self::new(client, templates)
    }

    /// The API client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// How often rollout status is polled (default 1 s).
    pub fn with_poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// The environment's objects, as `kubectl kustomize overlays/<env>` gives them.
    pub fn objects(&self, env: &Environment) -> Result<Vec<Value>, DriverError> {
        let key = serde_json::to_string(env).expect("the model serializes");
        if let Some((k, objects)) = &*self.rendered.lock().expect("not poisoned")
            && *k == key
        {
            return Ok(objects.clone());
        }
        let objects =
            objects::objects(&self.renderer, env).map_err(|source| DriverError::Render {
                which: "Kubernetes objects",
                env: env.name.to_string(),
                source,
            })?;
        *self.rendered.lock().expect("not poisoned") = Some((key, objects.clone()));
        Ok(objects)
    }

    fn api(&self, env: &Environment, ar: &ApiResource) -> Api<DynamicObject> {
        if objects::cluster_scoped(&ar.kind) {
            Api::all_with(self.client.clone(), ar)
        } else {
            Api::namespaced_with(self.client.clone(), &env.namespace, ar)
        }
    }

    fn api_of(&self, env: &Environment, obj: &Value) -> Api<DynamicObject> {
        let ar = objects::api_resource(
            obj["apiVersion"].as_str().unwrap_or("v1"),
            obj["kind"].as_str().unwrap_or(""),
        );
        self.api(env, &ar)
    }

    /// Lists the environment's objects of every kind it can have, labelled ours (one
    /// request per kind, all at once).
    async fn list_ours(
        &self,
        env: &Environment,
        kinds: &BTreeMap<String, String>,
    ) -> Result<Vec<Value>, DriverError> {
        Ok(self.list_ours_or_missing(env, kinds).await?.0)
    }

    /// [`Self::list_ours`], and the kinds (apiVersion, kind) the API server does not
    /// serve (a custom resource whose definition is not installed).
    async fn list_ours_or_missing(
        &self,
        env: &Environment,
        kinds: &BTreeMap<String, String>,
    ) -> Result<(Vec<Value>, Vec<(String, String)>), DriverError> {
        let lp = ListParams::default().labels(&objects::selector(env));
        let lists = kinds.iter().map(|(kind, api_version)| {
            let lp = &lp;
            async move {
                let ar = objects::api_resource(api_version, kind);
                match self.api(env, &ar).list(lp).await {
                    Ok(list) => Ok(list
                        .items
                        .iter()
                        .map(|o| {
                            let mut v = to_value(o);
                            // Lists leave out each item's apiVersion and kind.
                            v["apiVersion"] = Value::String(api_version.clone());
                            v["kind"] = Value::String(kind.clone());
                            v
                        })
                        .collect::<Vec<Value>>()),
                    // A custom resource whose definition is not installed: none exist.
                    Err(e) if not_found(&e) => Err(Ok((api_version.clone(), kind.clone()))),
                    Err(e) => Err(Err(api_error(
                        format!("cannot list {kind} objects of {}", env.name),
                        e,
                    ))),
                }
            }
        });
        let mut found = Vec::new();
        let mut missing = Vec::new();
        for r in futures::future::join_all(lists).await {
            match r {
                Ok(list) => found.extend(list),
                Err(Ok(kind)) => missing.push(kind),
                Err(Err(e)) => return Err(e),
            }
        }
        Ok((found, missing))
    }

    /// Server-side applies one object that is not part of the environment's rendered
    /// set (a restore's new CloudNativePG Cluster), in the environment's namespace.
    pub async fn apply_object(&self, env: &Environment, obj: &Value) -> Result<(), DriverError> {
        self.ensure_namespace(env).await?;
        self.ssa(env, obj).await
    }

    /// Server-side applies one object.
    async fn ssa(&self, env: &Environment, obj: &Value) -> Result<(), DriverError> {
        let name = obj["metadata"]["name"].as_str().unwrap_or("");
        let kind = obj["kind"].as_str().unwrap_or("");
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        self.api_of(env, obj)
            .patch(name, &pp, &Patch::Apply(obj))
            .await
            .map_err(|e| {
                let hint = if not_found(&e) {
                    format!(
                        " (does namespace {} exist, and is the kind's custom resource definition installed? ExternalSecret and SecretStore need External Secrets Operator v0.17 or later, ServiceMonitor the Prometheus operator)",
                        env.namespace
                    )
                } else {
                    String::new()
                };
                api_error(format!("cannot apply {kind} {name}{hint}"), e)
            })?;
        Ok(())
    }

    /// Applies the environment's Namespace (once per driver) so namespaced objects
    /// can be created whatever order the plan lists them in.
    async fn ensure_namespace(&self, env: &Environment) -> Result<(), DriverError> {
        self.namespace_ready
            .get_or_try_init(|| async {
                let objects = self.objects(env)?;
                if let Some(ns) = objects
                    .iter()
                    .find(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == *env.namespace)
                {
                    self.ssa(env, ns).await?;
                }
                Ok::<(), DriverError>(())
            })
            .await?;
        Ok(())
    }

    /// Fills a Secret's keys from the references its annotations name.
    async fn fill_secret(&self, cx: Context<'_>, obj: &mut Value) -> Result<(), DriverError> {
        let keys = objects::fill_keys(obj);
        if keys.is_empty() {
            return Ok(());
        }
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let bindings = secret_bindings(cx.env);
        for key in keys {
            let Some(b) = bindings
                .values()
                .flatten()
                .find(|b| b.k8s_secret == name && b.k8s_key == key)
            else {
                return Err(DriverError::Blocked(format!(
                    "Secret {name} asks for key {key}, which no setting of {} provides; render again (`controlplane render`) so templates and environment agree",
                    cx.env.name
                )));
            };
            let reference = SecretRef::parse(&b.reference)
                .map_err(|e| DriverError::Blocked(format!("{}: {e}", b.path)))?;
            if reference.is_plain() {
                return Err(DriverError::Blocked(format!(
                    "{} is an inline value, which controlplane does not put into a cluster; use env://NAME, vault://path#key or generate",
                    b.path
                )));
            }
            let value = cx.secrets.resolve(&b.path, &reference).await?;
            obj["stringData"][key.as_str()] = Value::String(value.expose().to_owned());
        }
        Ok(())
    }

    /// The service's StatefulSets and Deployments, as declared.
    fn workloads(
        &self,
        env: &Environment,
        service: &ServiceName,
    ) -> Result<Vec<Value>, DriverError> {
        Ok(self
            .objects(env)?
            .into_iter()
            .filter(|o| {
                matches!(
                    o["kind"].as_str(),
                    Some("StatefulSet" | "Deployment" | rollout::CNPG_CLUSTER)
                )
            })
            .filter(|o| objects::service_of(env, o).as_ref() == Some(service))
            .collect())
    }

    async fn get(&self, env: &Environment, obj: &Value) -> Result<Option<Value>, KubeError> {
        let name = obj["metadata"]["name"].as_str().unwrap_or("");
        Ok(self
            .api_of(env, obj)
            .get_opt(name)
            .await?
            .map(|o| to_value(&o)))
    }

    fn pods(&self, env: &Environment) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &env.namespace)
    }

    /// The first pod of a service, by its name label.
    async fn pod_of(
        &self,
        env: &Environment,
        service: &ServiceName,
    ) -> Result<Option<String>, DriverError> {
        let lp = ListParams::default().labels(&format!("{NAME_LABEL}={service}"));
        let pods = self
            .pods(env)
            .list(&lp)
            .await
            .map_err(|e| api_error(format!("cannot list the pods of {service}"), e))?;
        let mut names: Vec<String> = pods
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        names.sort();
        Ok(names.into_iter().next())
    }
}

impl Driver for KubeDriver {
    fn kind(&self) -> DriverKind {
        DriverKind::Kubernetes
    }

    fn desired(&self, env: &Environment) -> Result<Vec<Resource>, DriverError> {
        Ok(objects::resources(env, &self.objects(env)?))
    }

    async fn observe(&self, env: &Environment) -> Result<Vec<Observed>, DriverError> {
        let declared = self.objects(env)?;
        let wanted: BTreeMap<ResourceId, &Value> = declared
            .iter()
            .filter_map(|o| objects::id_of(o).map(|id| (id, o)))
            .collect();
        let (mut live, missing) = self
            .list_ours_or_missing(env, &objects::kinds_to_observe(&declared))
            .await?;
        // A declared kind the cluster does not serve: its operator is not installed.
        // Planning stops here, so `up` applies nothing rather than half the objects.
        let mut absent: Vec<String> = missing
            .iter()
            .filter(|(v, k)| {
                declared
                    .iter()
                    .any(|o| o["apiVersion"] == v.as_str() && o["kind"] == k.as_str())
            })
            .map(|(v, k)| format!("{v} {k}: {}", objects::install_hint(v)))
            .collect();
        absent.sort();
        absent.dedup();
        if !absent.is_empty() {
            return Err(DriverError::Blocked(format!(
                "the cluster does not serve these kinds, so nothing can be applied:\n  {}\ninstall what each line names, then run `controlplane plan` again",
                absent.join("\n  ")
            )));
        }
        // The namespace is observed only when declared (it is never pruned), and by
        // name: it may predate us and lack our label.
        for ns in declared.iter().filter(|o| o["kind"] == "Namespace") {
            match self.get(env, ns).await {
                Ok(Some(v)) => live.push(v),
                Ok(None) => {}
                Err(e) => {
                    return Err(api_error(
                        format!("cannot read namespace {}", env.namespace),
                        e,
                    ));
                }
            }
        }
        let mut out: Vec<Observed> = live
            .iter()
            .filter_map(|o| {
                let id = objects::id_of(o)?;
                // A claim we do not declare is a StatefulSet's (its template carries
                // our label): it holds data, so `up` never plans it away; only
                // `down --volumes` deletes claims.
                if id.kind == CLAIM && !wanted.contains_key(&id) {
                    return None;
                }
                let spec = wanted.get(&id).map(|w| objects::observed_spec(o, w));
                Some(Observed {
                    id,
                    spec,
                    state: ObservedState::Present,
                })
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out.dedup_by(|a, b| a.id == b.id);
        Ok(out)
    }

    async fn apply(&self, cx: Context<'_>, step: &Step) -> Result<(), DriverError> {
        match &step.action {
            Action::Blocked { reason, .. } => {
                Err(DriverError::Blocked(format!("{}: {reason}", step.id)))
            }
            Action::Delete => {
                let kinds = match self.objects(cx.env) {
                    Ok(objs) => objects::kinds_to_observe(&objs),
                    Err(_) => objects::kinds_to_observe(&[]),
                };
                let Some(api_version) = kinds.get(&step.id.kind) else {
                    return Err(DriverError::Blocked(format!(
                        "{}: controlplane does not know the API version of kind {}; delete it with kubectl",
                        step.id, step.id.kind
                    )));
                };
                let ar = objects::api_resource(api_version, &step.id.kind);
                match self
                    .api(cx.env, &ar)
                    .delete(&step.id.name, &DeleteParams::background())
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if not_found(&e) => Ok(()),
                    Err(e) => Err(api_error(format!("cannot delete {}", step.id), e)),
                }
            }
            Action::Create
            | Action::Start { .. }
            | Action::Update { .. }
            | Action::Replace { .. } => {
                let Some(desired) = &step.desired else {
                    return Err(DriverError::Blocked(format!(
                        "{}: the step carries no object to apply",
                        step.id
                    )));
                };
                // A Secret's plan spec holds its keys only; apply the rendered object
                // (its fixed values, such as a basic-auth username, included).
                let mut obj = if step.id.kind == "Secret" {
                    self.objects(cx.env)?
                        .into_iter()
                        .find(|o| objects::id_of(o).as_ref() == Some(&step.id))
                        .unwrap_or_else(|| desired.spec.clone())
                } else {
                    desired.spec.clone()
                };
                if !objects::cluster_scoped(&step.id.kind) {
                    self.ensure_namespace(cx.env).await?;
                }
                self.fill_secret(cx, &mut obj).await?;
                self.ssa(cx.env, &obj).await
            }
        }
    }

    async fn wait_ready(
        &self,
        cx: Context<'_>,
        service: &ServiceName,
        deadline: Instant,
    ) -> Result<Ready, DriverError> {
        let workloads = self.workloads(cx.env, service)?;
        for w in &workloads {
            let result = wait_for(deadline, self.poll, || async {
                match self.get(cx.env, w).await {
                    Ok(Some(live)) => rollout::rolled_out(&live).map_err(Waiting::Pending),
                    Ok(None) => Err(Waiting::Missing {
                        kind: w["kind"].as_str().unwrap_or("").to_owned(),
                        name: w["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                    }),
                    Err(source) => Err(Waiting::Status { source }),
                }
            })
            .await;
            if let Err(waiting) = result {
                let detail = cp_runtime::error::chain(&waiting);
                // The log says why more often than the status does; without a pod
                // (unschedulable, image not pulled) the conditions have said it.
                let log_tail = self
                    .log_tail(cx.env, service, LOG_TAIL_LINES)
                    .await
                    .unwrap_or_default();
                return Err(DriverError::NotReady {
                    service: service.clone(),
                    detail: format!("{detail} (deadline reached)"),
                    log_tail,
                });
            }
        }
        self.record_claims(cx, service, &workloads).await?;
        Ok(Ready {
            version: workloads
                .first()
                .map(rollout::version)
                .unwrap_or_else(|| "no workload".into()),
        })
    }

    async fn vanished(&self, cx: Context<'_>) -> Result<Vec<Vanished>, DriverError> {
        let mut out = Vec::new();
        for kind in GUARDED {
            if cx.env.services.common(kind).is_none() {
                continue;
            }
            let Some(rec) = initialised::read(cx.state.path(), kind.as_str())? else {
                continue;
            };
            let now = self.claims(cx.env, rec.volumes.keys()).await?;
            for (name, uid) in &rec.volumes {
                let what = match now.get(name) {
                    None => format!("its PersistentVolumeClaim {name}"),
                    Some(u) if u != uid => format!(
                        "its PersistentVolumeClaim {name} (deleted; the one of that name now is a new, empty claim)"
                    ),
                    Some(_) => continue,
                };
                out.push(Vanished {
                    service: ServiceName::core(kind),
                    reason: rec.missing_reason(kind.as_str(), &what),
                });
                break;
            }
        }
        Ok(out)
    }

    fn endpoint(&self, env: &Environment, service: &ServiceName) -> Option<Endpoint> {
        let objects = self.objects(env).ok()?;
        // A CloudNativePG cluster's primary answers at the `<name>-rw` Service the
        // operator creates (not one we render).
        if let Some(c) = objects.iter().find(|o| {
            o["kind"] == rollout::CNPG_CLUSTER && o["metadata"]["name"] == service.as_str()
        }) {
            let pg = env.services.postgres.as_ref()?;
            let name = c["metadata"]["name"].as_str()?;
            return Some(Endpoint::plain(
                format!("{name}-rw.{}.svc", env.namespace),
                pg.common.port,
            ));
        }
        let svc = objects
            .iter()
            .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == service.as_str())?;
        let port = u16::try_from(svc["spec"]["ports"][0]["port"].as_u64()?).ok()?;
        Some(Endpoint::plain(
            format!("{service}.{}.svc", env.namespace),
            port,
        ))
    }

    async fn status(&self, cx: Context<'_>) -> Result<Vec<ServiceStatus>, DriverError> {
        let mut out = Vec::new();
        for service in cx.env.service_names() {
            let workloads = self.workloads(cx.env, &service)?;
            let endpoint = self.endpoint(cx.env, &service).map(|e| e.addr());
            let Some(w) = workloads.first() else {
                out.push(ServiceStatus {
                    service,
                    state: ServiceState::Skipped("no workload is rendered for it".into()),
                    version: None,
                    uptime_secs: None,
                    endpoint,
                    health: Health::Unknown,
                    id: None,
                });
                continue;
            };
            let id = format!(
                "{}/{}",
                w["kind"].as_str().unwrap_or(""),
                w["metadata"]["name"].as_str().unwrap_or("")
            );
            let live = self
                .get(cx.env, w)
                .await
                .map_err(|e| api_error(format!("cannot read {id}"), e))?;
            let (state, health) = match &live {
                None => (ServiceState::Missing, Health::Unknown),
                Some(l) => match rollout::rolled_out(l) {
                    Ok(()) => (ServiceState::Running, Health::Healthy),
                    Err(why) => (
                        ServiceState::Stopped(why.to_string()),
                        Health::Unhealthy(why.to_string()),
                    ),
                },
            };
            out.push(ServiceStatus {
                service,
                state,
                version: live.as_ref().map(rollout::version),
                uptime_secs: None,
                endpoint,
                health,
                id: Some(id),
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
        let Some(pod) = self.pod_of(env, service).await? else {
            return Ok(Vec::new());
        };
        let lp = LogParams {
            tail_lines: i64::try_from(lines).ok(),
            ..LogParams::default()
        };
        let text = self
            .pods(env)
            .logs(&pod, &lp)
            .await
            .map_err(|e| api_error(format!("cannot read the log of pod {pod}"), e))?;
        Ok(text.lines().map(str::to_owned).collect())
    }

    async fn logs(
        &self,
        env: &Environment,
        service: &ServiceName,
        tail: usize,
        follow: bool,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<(), DriverError> {
        let Some(pod) = self.pod_of(env, service).await? else {
            return Err(DriverError::NotReady {
                service: service.clone(),
                detail: format!(
                    "it has no pod in namespace {}; run `controlplane up`",
                    env.namespace
                ),
                log_tail: Vec::new(),
            });
        };
        let lp = LogParams {
            tail_lines: i64::try_from(tail).ok(),
            follow,
            ..LogParams::default()
        };
        let stream = self
            .pods(env)
            .log_stream(&pod, &lp)
            .await
            .map_err(|e| api_error(format!("cannot read the log of pod {pod}"), e))?;
        let mut lines = stream.lines();
        let write_err = |source: std::io::Error| DriverError::WriteLog { source };
        while let Some(line) = lines.try_next().await.map_err(|e| DriverError::PodLog {
            pod: pod.to_string(),
            source: e.into(),
        })? {
            writeln!(out, "{line}").map_err(write_err)?;
        }
        Ok(())
    }

    async fn teardown_preview(
        &self,
        cx: Context<'_>,
        volumes: bool,
    ) -> Result<Vec<Removal>, DriverError> {
        Ok(self
            .doomed(cx.env, volumes)
            .await?
            .iter()
            .map(Doomed::removal)
            .collect())
    }

    async fn teardown(&self, cx: Context<'_>, volumes: bool) -> Result<Vec<String>, DriverError> {
        let env = cx.env;
        let mut removed = Vec::new();
        for d in self.doomed(env, volumes).await? {
            let ar = objects::api_resource(&d.api_version, &d.id.kind);
            if d.hibernate {
                let patch =
                    serde_json::json!({"metadata": {"annotations": {CNPG_HIBERNATION: "on"}}});
                self.api(env, &ar)
                    .patch(&d.id.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(|e| api_error(format!("cannot hibernate {}", d.id), e))?;
                removed.push(d.removal().what);
                continue;
            }
            match self
                .api(env, &ar)
                .delete(&d.id.name, &DeleteParams::background())
                .await
            {
                Ok(_) => removed.push(d.removal().what),
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(api_error(format!("cannot delete {}", d.id), e)),
            }
        }
        if volumes {
            // The claims were deleted on purpose: the next `up` starts them empty.
            for kind in GUARDED {
                initialised::forget(cx.state.path(), kind.as_str())?;
            }
        }
        Ok(removed)
    }
}

/// An object a teardown deletes (or, for a CloudNativePG cluster kept with its data,
/// hibernates).
struct Doomed {
    id: ResourceId,
    api_version: String,
    hibernate: bool,
}

impl Doomed {
    fn removal(&self) -> Removal {
        if self.hibernate {
            Removal::runtime(format!(
                "{} (hibernated: its instances stop, its volumes and data stay)",
                self.id
            ))
        } else if self.id.kind == CLAIM || self.id.kind == rollout::CNPG_CLUSTER {
            // Deleting a CloudNativePG Cluster deletes its claims (they are owned).
            Removal::data(self.id.to_string())
        } else {
            Removal::runtime(self.id.to_string())
        }
    }
}

/// The annotation that hibernates a CloudNativePG cluster (its pods go, its claims
/// stay), the operator's declarative hibernation.
const CNPG_HIBERNATION: &str = "cnpg.io/hibernation";

/// The kind that holds a StatefulSet's data.
const CLAIM: &str = "PersistentVolumeClaim";

/// The services whose data is guarded (`cp_runtime::initialised`): a claim of theirs
/// deleted is data lost, never silently replaced by the new, empty claim the
/// StatefulSet controller makes. Redis is a cache (see ARCHITECTURE.md).
const GUARDED: [CoreKind; 3] = [CoreKind::Postgres, CoreKind::Vault, CoreKind::Nats];

/// The claims a StatefulSet's controller makes for it: `<template>-<set>-<ordinal>`,
/// one per replica and claim template.
fn claim_names(set: &Value) -> Vec<String> {
    if set["kind"] != "StatefulSet" {
        return Vec::new();
    }
    let name = set["metadata"]["name"].as_str().unwrap_or_default();
    let replicas = set["spec"]["replicas"].as_u64().unwrap_or(1);
    set["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["metadata"]["name"].as_str())
        .flat_map(|t| (0..replicas).map(move |i| format!("{t}-{name}-{i}")))
        .collect()
}

impl KubeDriver {
    /// The claims of `names` that exist, with their `uid`s. Read-only.
    async fn claims<'a>(
        &self,
        env: &Environment,
        names: impl IntoIterator<Item = &'a String>,
    ) -> Result<BTreeMap<String, String>, DriverError> {
        let api = self.api(env, &objects::api_resource("v1", CLAIM));
        let mut out = BTreeMap::new();
        for name in names {
            let claim = api
                .get_opt(name)
                .await
                .map_err(|e| api_error(format!("cannot read PersistentVolumeClaim {name}"), e))?;
            if let Some(uid) = claim.and_then(|c| c.metadata.uid) {
                out.insert(name.clone(), uid);
            }
        }
        Ok(out)
    }

    /// Once a guarded service rolled out: records its claims (with their `uid`s) as
    /// what holds its data, when every claim its StatefulSets need exists (the
    /// controller makes them with the pods; the next `up` records them otherwise).
    async fn record_claims(
        &self,
        cx: Context<'_>,
        service: &ServiceName,
        workloads: &[Value],
    ) -> Result<(), DriverError> {
        let Some(kind) = CoreKind::from_name(service.as_str()).filter(|k| GUARDED.contains(k))
        else {
            return Ok(());
        };
        let names: Vec<String> = workloads.iter().flat_map(claim_names).collect();
        if names.is_empty() {
            return Ok(());
        }
        let found = self.claims(cx.env, &names).await?;
        if found.len() == names.len() {
            initialised::record_volumes(cx.state, kind.as_str(), found)?;
        }
        Ok(())
    }
}

impl KubeDriver {
    /// What a teardown deletes, read-only: every object labelled with the environment
    /// in its namespace, of the kinds it can have; with `volumes` also its
    /// PersistentVolumeClaims, by the same label only. (A StatefulSet's claims carry
    /// its `volumeClaimTemplates` labels, which the overlays give the environment
    /// label; a claim someone else made with a look-alike name is not ours.)
    async fn doomed(&self, env: &Environment, volumes: bool) -> Result<Vec<Doomed>, DriverError> {
        // Tear down even when the templates no longer render: then by the known kinds.
        let mut kinds = objects::kinds_to_observe(&self.objects(env).unwrap_or_default());
        // Claims hold data: never without `volumes`, even if a template declared one.
        kinds.remove(CLAIM);
        if volumes {
            kinds.insert(CLAIM.to_owned(), "v1".to_owned());
        }
        let live = self.list_ours(env, &kinds).await?;
        let mut doomed: Vec<Doomed> = live
            .iter()
            .filter_map(|o| {
                let id = objects::id_of(o)?;
                Some(Doomed {
                    // Without `volumes`, a CloudNativePG cluster is hibernated: deleting
                    // it would delete the claims it owns.
                    hibernate: !volumes && id.kind == rollout::CNPG_CLUSTER,
                    id,
                    api_version: o["apiVersion"].as_str().unwrap_or("v1").to_owned(),
                })
            })
            .collect();
        // Claims last: their pods go first, so the claims are not held open.
        doomed.sort_by_key(|d| d.id.kind == CLAIM);
        Ok(doomed)
    }
}
