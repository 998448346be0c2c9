//! An in-process fake Kubernetes API server for the driver's tests: a `tower` service
//! behind a real `kube::Client`, so every request goes through kube's own URL building,
//! serialization and error decoding.
//!
//! It keeps objects keyed by (apiVersion, kind, namespace, name) and answers what the
//! driver uses: server-side apply (`PATCH` with `application/apply-patch+yaml` and a
//! `fieldManager`; the applied object replaces the previous one, as it does for a sole
//! manager that always applies whole objects; `resourceVersion` changes only when the
//! object changes, `generation` only when its spec does; Secrets' `stringData` is
//! folded into base64 `data` like the real server), `GET`, `LIST` with an equality
//! `labelSelector`, `DELETE` and `/version`. Namespaced objects need their Namespace
//! to exist, as on a real cluster. Workload status is set by the test, or by a rollout
//! policy ([`Rollout`]). Every request is recorded for assertions.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

/// Kinds the fake serves: (apiVersion, kind, plural, namespaced).
const KINDS: &[(&str, &str, &str, bool)] = &[
    ("v1", "Namespace", "namespaces", false),
    ("v1", "ConfigMap", "configmaps", true),
    ("v1", "Secret", "secrets", true),
    ("v1", "Service", "services", true),
    ("v1", "ServiceAccount", "serviceaccounts", true),
    ("rbac.authorization.k8s.io/v1", "Role", "roles", true),
    (
        "rbac.authorization.k8s.io/v1",
        "RoleBinding",
        "rolebindings",
        true,
    ),
    (
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
    ("v1", "Pod", "pods", true),
    ("apps/v1", "Deployment", "deployments", true),
    ("apps/v1", "StatefulSet", "statefulsets", true),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    (
        "policy/v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    ("networking.k8s.io/v1", "Ingress", "ingresses", true),
    (
        "networking.k8s.io/v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    ("batch/v1", "CronJob", "cronjobs", true),
    ("batch/v1", "Job", "jobs", true),
    (
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        "servicemonitors",
        true,
    ),
    (
        "monitoring.coreos.com/v1",
        "PrometheusRule",
        "prometheusrules",
        true,
    ),
    (
        "external-secrets.io/v1",
        "ExternalSecret",
        "externalsecrets",
        true,
    ),
    (
        "external-secrets.io/v1",
        "SecretStore",
        "secretstores",
        true,
    ),
    ("postgresql.cnpg.io/v1", "Cluster", "clusters", true),
    (
        "postgresql.cnpg.io/v1",
        "ScheduledBackup",
        "scheduledbackups",
        true,
    ),
    (
        "barmancloud.cnpg.io/v1",
        "ObjectStore",
        "objectstores",
        true,
    ),
    (
        "monitoring.coreos.com/v1",
        "PodMonitor",
        "podmonitors",
        true,
    ),
    (
        "monitoring.coreos.com/v1alpha1",
        "AlertmanagerConfig",
        "alertmanagerconfigs",
        true,
    ),
    // cert-manager, for environments with TLS on.
    ("cert-manager.io/v1", "Certificate", "certificates", true),
    ("cert-manager.io/v1", "Issuer", "issuers", true),
    (
        "cert-manager.io/v1",
        "ClusterIssuer",
        "clusterissuers",
        false,
    ),
];

/// An object's key: apiVersion, kind, namespace ("" when cluster-scoped), name.
pub type Key = (String, String, String, String);

/// How workloads roll out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// Ready as soon as applied (status written with the apply).
    Immediate,
    /// Never: status stays as the test leaves it.
    Never,
    /// Ready after this many reads of the workload (a controller catching up).
    AfterReads(u32),
}

/// One request, as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub content_type: Option<String>,
}

#[derive(Debug)]
struct State {
    objects: BTreeMap<Key, Value>,
    requests: Vec<Recorded>,
    rollout: Rollout,
    reads: BTreeMap<Key, u32>,
    next_rv: u64,
    /// Pod logs by (namespace, pod).
    logs: BTreeMap<(String, String), String>,
    /// Custom kinds (apiVersion, kind) whose definition is "not installed": the server
    /// answers 404 for them, as a real one does without the CRD.
    uninstalled: Vec<(String, String)>,
}

/// The fake API server.
#[derive(Debug, Clone)]
pub struct Fake {
    state: Arc<Mutex<State>>,
}

fn status(code: StatusCode, reason: &str, message: String) -> (StatusCode, Value) {
    (
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": message, "reason": reason, "code": code.as_u16()}),
    )
}

fn not_found(what: String) -> (StatusCode, Value) {
    status(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("{what} not found"),
    )
}

/// What a URL names.
struct Target {
    api_version: String,
    kind: String,
    namespace: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => ((*v).to_owned(), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, rest @ ..] => ((*ns).to_owned(), {
            let mut r = vec![*plural];
            r.extend_from_slice(rest);
            r
        }),
        other => (String::new(), other.to_vec()),
    };
    let plural = *rest.first()?;
    let (_, kind, _, namespaced) = KINDS
        .iter()
        .find(|(v, _, p, _)| *v == api_version && *p == plural)?;
    // `/api/v1/namespaces/<name>` is the Namespace itself.
    if !namespaced && !namespace.is_empty() {
        return None;
    }
    Some(Target {
        api_version,
        kind: (*kind).to_owned(),
        namespace,
        name: rest.get(1).map(|s| (*s).to_owned()),
        sub: rest.get(2).map(|s| (*s).to_owned()),
    })
}

/// The core `/api/v1/namespaces/<name>` path parses as a namespaced list of plural
/// `<name>`; recognise the Namespace object first.
fn namespace_target(path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", "v1", "namespaces"] => Some(Target {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: String::new(),
            name: None,
            sub: None,
        }),
        ["api", "v1", "namespaces", name] => Some(Target {
            api_version: "v1".into(),
            kind: "Namespace".into(),
            namespace: String::new(),
            name: Some((*name).to_owned()),
            sub: None,
        }),
        _ => None,
    }
}

fn matches_selector(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let (k, v) = term.split_once('=').unwrap_or((term, ""));
        let v = v.trim_start_matches('=');
        obj["metadata"]["labels"][k].as_str() == Some(v)
    })
}

/// Everything but server-owned metadata and status: what "changed" compares.
fn content(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o["metadata"].as_object_mut() {
        for f in [
            "resourceVersion",
            "uid",
            "generation",
            "creationTimestamp",
            "managedFields",
        ] {
            m.remove(f);
        }
    }
    if let Some(m) = o.as_object_mut() {
        m.remove("status");
    }
    o
}

fn b64(s: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | (u32::from(c) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn ready_status(obj: &Value) -> Value {
    if obj["kind"] == "Cluster" {
        // CloudNativePG's status of a cluster whose instances all run.
        let n = obj["spec"]["instances"].as_u64().unwrap_or(1);
        return json!({"instances": n, "readyInstances": n, "phase": "Cluster in healthy state"});
    }
    let replicas = obj["spec"]["replicas"].as_u64().unwrap_or(1);
    json!({"observedGeneration": obj["metadata"]["generation"], "replicas": replicas,
           "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas})
}

/// RFC 7386: objects merge key by key, `null` removes, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("an object now");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn is_workload(kind: &str) -> bool {
    kind == "StatefulSet" || kind == "Deployment" || kind == "Cluster"
}

impl Fake {
    /// A fake with no objects, and the client talking to it.
    pub fn new(rollout: Rollout) -> (Self, kube::Client) {
        let fake = Fake {
            state: Arc::new(Mutex::new(State {
                objects: BTreeMap::new(),
                requests: Vec::new(),
                rollout,
                reads: BTreeMap::new(),
                next_rv: 100,
                logs: BTreeMap::new(),
                uninstalled: Vec::new(),
            })),
        };
        let f = fake.clone();
        let service = tower::service_fn(move |req: Request<kube::client::Body>| {
            let f = f.clone();
            async move { Ok::<_, Infallible>(f.handle(req).await) }
        });
        (fake, kube::Client::new(service, "default"))
    }

    /// Serves `kind` of `api_version` no more, as if its CRD were not installed.
    pub fn uninstall(&self, api_version: &str, kind: &str) {
        self.state
            .lock()
            .unwrap()
            .uninstalled
            .push((api_version.to_owned(), kind.to_owned()));
    }

    pub fn set_rollout(&self, rollout: Rollout) {
        self.state.lock().unwrap().rollout = rollout;
    }

    /// Answers one request, as the client's service does (for a test that serves
    /// the fake on a socket, to a `controlplane` process).
    pub async fn answer(&self, req: Request<kube::client::Body>) -> Response<Full<Bytes>> {
        self.handle(req).await
    }

    async fn handle(&self, req: Request<kube::client::Body>) -> Response<Full<Bytes>> {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let query: BTreeMap<String, String> = req
            .uri()
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (k.to_owned(), decode(v))
            })
            .collect();
        let content_type = req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = req.into_body().collect().await.unwrap().to_bytes();
        self.state.lock().unwrap().requests.push(Recorded {
            method: method.to_string(),
            path: path.clone(),
            query: query.clone(),
            content_type: content_type.clone(),
        });
        if let Some(text) = self.log(&method, &path, &query) {
            return Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "text/plain")
                .body(Full::new(Bytes::from(text)))
                .unwrap();
        }
        let (code, value) = self.route(&method, &path, &query, content_type.as_deref(), &body);
        Response::builder()
            .status(code)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(serde_json::to_vec(&value).unwrap())))
            .unwrap()
    }

    fn route(
        &self,
        method: &Method,
        path: &str,
        query: &BTreeMap<String, String>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (StatusCode, Value) {
        if path == "/version" {
            return (
                StatusCode::OK,
                json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake", "gitCommit": "",
                       "gitTreeState": "clean", "buildDate": "", "goVersion": "", "compiler": "", "platform": "linux/amd64"}),
            );
        }
        let Some(t) = namespace_target(path).or_else(|| parse_path(path)) else {
            return not_found(format!(
                "the server could not find the requested resource {path}"
            ));
        };
        let mut st = self.state.lock().unwrap();
        if st
            .uninstalled
            .iter()
            .any(|(v, k)| *v == t.api_version && *k == t.kind)
        {
            return not_found(format!(
                "the server could not find the requested resource {path}"
            ));
        }
        match (method.as_str(), &t.name) {
            ("GET", None) => {
                let selector = query.get("labelSelector").cloned().unwrap_or_default();
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|((v, k, ns, _), o)| {
                        *v == t.api_version
                            && *k == t.kind
                            && (t.namespace.is_empty() || *ns == t.namespace)
                            && matches_selector(o, &selector)
                    })
                    .map(|(_, o)| o.clone())
                    .collect();
                let rv = st.next_rv.to_string();
                (
                    StatusCode::OK,
                    json!({"apiVersion": t.api_version, "kind": format!("{}List", t.kind),
                           "metadata": {"resourceVersion": rv}, "items": items}),
                )
            }
            ("GET", Some(name)) => {
                if t.sub.is_some() {
                    return not_found(format!("subresource {path}"));
                }
                let key = (
                    t.api_version.clone(),
                    t.kind.clone(),
                    t.namespace.clone(),
                    name.clone(),
                );
                let rollout = st.rollout;
                let reads = {
                    let r = st.reads.entry(key.clone()).or_insert(0);
                    *r += 1;
                    *r
                };
                let Some(obj) = st.objects.get_mut(&key) else {
                    return not_found(format!("{} {name}", t.kind));
                };
                if is_workload(&t.kind)
                    && let Rollout::AfterReads(n) = rollout
                    && reads > n
                {
                    let s = ready_status(obj);
                    obj["status"] = s;
                }
                (StatusCode::OK, obj.clone())
            }
            ("DELETE", Some(name)) => {
                let key = (
                    t.api_version.clone(),
                    t.kind.clone(),
                    t.namespace.clone(),
                    name.clone(),
                );
                match st.objects.remove(&key) {
                    Some(o) => (StatusCode::OK, o),
                    None => not_found(format!("{} {name}", t.kind)),
                }
            }
            ("PATCH", Some(name)) if content_type == Some("application/merge-patch+json") => {
                // A JSON merge patch (RFC 7386) of an existing object, as `kubectl
                // annotate` sends; the generation moves only when the spec changes.
                let key = (
                    t.api_version.clone(),
                    t.kind.clone(),
                    t.namespace.clone(),
                    name.clone(),
                );
                let Ok(patch) = serde_json::from_slice::<Value>(body) else {
                    return status(StatusCode::BAD_REQUEST, "BadRequest", "not JSON".into());
                };
                let rv = st.next_rv;
                let Some(obj) = st.objects.get_mut(&key) else {
                    return not_found(format!("{} {name}", t.kind));
                };
                let before = obj.clone();
                merge_patch(obj, &patch);
                if *obj != before {
                    obj["metadata"]["resourceVersion"] = json!(rv.to_string());
                    if obj["spec"] != before["spec"] {
                        let g = obj["metadata"]["generation"].as_u64().unwrap_or(1) + 1;
                        obj["metadata"]["generation"] = json!(g);
                    }
                }
                let out = obj.clone();
                st.next_rv += 1;
                (StatusCode::OK, out)
            }
            ("PATCH", Some(name)) => {
                if content_type != Some("application/apply-patch+yaml") {
                    return status(
                        StatusCode::UNSUPPORTED_MEDIA_TYPE,
                        "UnsupportedMediaType",
                        format!("the fake only implements server-side apply, not {content_type:?}"),
                    );
                }
                let Some(manager) = query.get("fieldManager").cloned() else {
                    return status(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        "PATCH with apply-patch+yaml requires a fieldManager".into(),
                    );
                };
                let applied: Value = match serde_json::from_slice(body) {
                    Ok(v) => v,
                    Err(_) => match serde_saphyr::from_str::<Value>(&String::from_utf8_lossy(body))
                    {
                        Ok(v) => v,
                        Err(e) => {
                            return status(StatusCode::BAD_REQUEST, "BadRequest", e.to_string());
                        }
                    },
                };
                if applied["metadata"]["name"].as_str() != Some(name)
                    || applied["kind"].as_str() != Some(&t.kind)
                    || applied["apiVersion"].as_str() != Some(&t.api_version)
                {
                    return status(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        format!(
                            "the body ({} {}) does not match the URL {path}",
                            applied["kind"], applied["metadata"]["name"]
                        ),
                    );
                }
                if !t.namespace.is_empty() {
                    let ns_key = (
                        "v1".to_owned(),
                        "Namespace".to_owned(),
                        String::new(),
                        t.namespace.clone(),
                    );
                    if !st.objects.contains_key(&ns_key) {
                        return not_found(format!("namespaces \"{}\"", t.namespace));
                    }
                }
                let key = (
                    t.api_version.clone(),
                    t.kind.clone(),
                    t.namespace.clone(),
                    name.clone(),
                );
                let mut new = applied;
                if !t.namespace.is_empty() {
                    new["metadata"]["namespace"] = json!(t.namespace);
                }
                if t.kind == "Secret"
                    && let Some(sd) = new.as_object_mut().and_then(|o| o.remove("stringData"))
                {
                    for (k, v) in sd.as_object().into_iter().flatten() {
                        new["data"][k] = json!(b64(v.as_str().unwrap_or("")));
                    }
                }
                let rollout = st.rollout;
                let next_rv = st.next_rv + 1;
                let old = st.objects.get(&key).cloned();
                // Another manager's fields: a conflict unless forced (simplified to
                // whole objects: the fake does not track fields individually).
                let other_manager = old
                    .as_ref()
                    .and_then(|o| {
                        o["metadata"]["managedFields"][0]["manager"]
                            .as_str()
                            .map(str::to_owned)
                    })
                    .filter(|m| *m != manager);
                if let Some(other) = other_manager
                    && query.get("force").map(String::as_str) != Some("true")
                {
                    return status(
                        StatusCode::CONFLICT,
                        "Conflict",
                        format!("Apply failed with 1 conflict: conflict with \"{other}\""),
                    );
                }
                let (rv, generation, uid, created, old_status) = match &old {
                    Some(o) => (
                        o["metadata"]["resourceVersion"].clone(),
                        o["metadata"]["generation"].as_u64().unwrap_or(1),
                        o["metadata"]["uid"].clone(),
                        o["metadata"]["creationTimestamp"].clone(),
                        o.get("status").cloned(),
                    ),
                    None => (
                        Value::Null,
                        0,
                        json!(format!("uid-{next_rv}")),
                        json!("2026-01-01T00:00:00Z"),
                        None,
                    ),
                };
                let changed = old.as_ref().is_none_or(|o| content(o) != new);
                let spec_changed = old
                    .as_ref()
                    .is_none_or(|o| o.get("spec") != new.get("spec"));
                let meta = new["metadata"].as_object_mut().unwrap();
                meta.insert("uid".into(), uid);
                meta.insert("creationTimestamp".into(), created);
                meta.insert(
                    "generation".into(),
                    json!(if spec_changed {
                        generation + 1
                    } else {
                        generation
                    }),
                );
                meta.insert(
                    "managedFields".into(),
                    json!([{"manager": manager, "operation": "Apply"}]),
                );
                if changed {
                    st.next_rv = next_rv;
                    meta.insert("resourceVersion".into(), json!(next_rv.to_string()));
                } else {
                    meta.insert("resourceVersion".into(), rv);
                }
                if let Some(s) = old_status {
                    new["status"] = s;
                }
                if is_workload(&t.kind) && rollout == Rollout::Immediate {
                    new["status"] = ready_status(&new);
                }
                let code = if old.is_some() {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                };
                st.objects.insert(key, new.clone());
                (code, new)
            }
            _ => status(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("the fake does not implement {method} {path}"),
            ),
        }
    }

    /// `GET .../namespaces/<ns>/pods/<pod>/log`: the pod's log, its last `tailLines`.
    fn log(&self, method: &Method, path: &str, query: &BTreeMap<String, String>) -> Option<String> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let ["api", "v1", "namespaces", ns, "pods", pod, "log"] = parts.as_slice() else {
            return None;
        };
        if method != Method::GET {
            return None;
        }
        let st = self.state.lock().unwrap();
        let text = st.logs.get(&((*ns).to_owned(), (*pod).to_owned()))?;
        let lines: Vec<&str> = text.lines().collect();
        let tail = query
            .get("tailLines")
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(lines.len())
            .min(lines.len());
        let mut out = lines[lines.len() - tail..].join("\n");
        out.push('\n');
        Some(out)
    }

    /// Adds a pod of a service (by its name label) with a log.
    pub fn add_pod(&self, namespace: &str, name: &str, service: &str, log: &str) {
        // The log first: a reader that lists the pod must find its log.
        self.state
            .lock()
            .unwrap()
            .logs
            .insert((namespace.to_owned(), name.to_owned()), log.to_owned());
        self.insert(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": service}},
            "spec": {"containers": [{"name": service, "image": "x"}]}}));
    }

    /// Adds the pod the Job controller would make for Job `job`, with a log.
    pub fn add_job_pod(&self, namespace: &str, name: &str, job: &str, log: &str) {
        // The log first: the driver follows it as soon as it lists the pod.
        self.state
            .lock()
            .unwrap()
            .logs
            .insert((namespace.to_owned(), name.to_owned()), log.to_owned());
        self.insert(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": {"job-name": job, "batch.kubernetes.io/job-name": job}},
            "spec": {"containers": [{"name": "backup", "image": "x"}]}}));
    }

    /// Adds or replaces an object as someone else made it (no field manager of
    /// ours; `managedFields` as given).
    pub fn insert(&self, mut obj: Value) {
        let mut st = self.state.lock().unwrap();
        st.next_rv += 1;
        obj["metadata"]["resourceVersion"] = json!(st.next_rv.to_string());
        obj["metadata"]["generation"] = json!(1);
        if obj["metadata"]["uid"].is_null() {
            // Unique per object made, as the API server's.
            obj["metadata"]["uid"] = json!(format!("uid-{}", st.next_rv));
        }
        st.objects.insert(key_of(&obj), obj);
    }

    /// Removes an object as someone else did (`kubectl delete`); true when it was held.
    pub fn remove(&self, key: &Key) -> bool {
        self.state.lock().unwrap().objects.remove(key).is_some()
    }

    /// Does what the StatefulSet controller does for every StatefulSet held: makes
    /// the claims of its `volumeClaimTemplates` (`<template>-<set>-<ordinal>`, one per
    /// replica), labelled with the template's labels and the set's selector labels,
    /// and keeps a claim that already exists under such a name as it is. Returns the
    /// keys of the claims it made.
    pub fn run_statefulset_controller(&self) -> Vec<Key> {
        let sets: Vec<Value> = self
            .objects()
            .into_values()
            .filter(|o| o["kind"] == "StatefulSet")
            .collect();
        let mut made = Vec::new();
        for set in sets {
            let name = set["metadata"]["name"].as_str().unwrap_or_default();
            let ns = set["metadata"]["namespace"].as_str().unwrap_or_default();
            let replicas = set["spec"]["replicas"].as_u64().unwrap_or(1);
            for t in set["spec"]["volumeClaimTemplates"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let mut labels = t["metadata"]["labels"].clone();
                if labels.is_null() {
                    labels = json!({});
                }
                for (k, v) in set["spec"]["selector"]["matchLabels"]
                    .as_object()
                    .into_iter()
                    .flatten()
                {
                    labels[k] = v.clone();
                }
                for ordinal in 0..replicas {
                    let claim = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": {"name": format!("{}-{name}-{ordinal}", t["metadata"]["name"].as_str().unwrap_or_default()),
                                     "namespace": ns, "labels": labels},
                        "spec": t["spec"]});
                    let key = key_of(&claim);
                    if !self.objects().contains_key(&key) {
                        self.insert(claim);
                        made.push(key);
                    }
                }
            }
        }
        made
    }

    /// Sets a workload's status.
    pub fn set_status(&self, kind: &str, namespace: &str, name: &str, status: Value) {
        let mut st = self.state.lock().unwrap();
        let obj = st
            .objects
            .values_mut()
            .find(|o| {
                o["kind"] == kind
                    && o["metadata"]["namespace"] == namespace
                    && o["metadata"]["name"] == name
            })
            .unwrap_or_else(|| panic!("no {kind} {namespace}/{name} in the fake"));
        obj["status"] = status;
    }

    /// Every object held.
    pub fn objects(&self) -> BTreeMap<Key, Value> {
        self.state.lock().unwrap().objects.clone()
    }

    /// Resource versions by key.
    pub fn versions(&self) -> BTreeMap<Key, String> {
        self.objects()
            .into_iter()
            .map(|(k, o)| {
                (
                    k,
                    o["metadata"]["resourceVersion"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned(),
                )
            })
            .collect()
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }
}

/// The key of an object.
pub fn key_of(obj: &Value) -> Key {
    (
        obj["apiVersion"].as_str().unwrap_or("").to_owned(),
        obj["kind"].as_str().unwrap_or("").to_owned(),
        obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        obj["metadata"]["name"].as_str().unwrap_or("").to_owned(),
    )
}

/// Percent-decoding of a query value.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        } else if b[i] == b'+' {
            out.push(b' ');
            i += 1;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
