//! The objects an environment declares on Kubernetes, and how they become plan
//! resources. Pure: no I/O.
//!
//! **Where the objects come from.** The renderer already computes, in-process, exactly
//! what `kubectl kustomize overlays/<env>` prints for an environment:
//! [`cp_core::render::kustomize::expected_overlay_output`] (the environment's objects in
//! its namespace with the environment label), and `cp-core` holds itself to that with a
//! test against the real `kubectl kustomize`. Using it means no temp directory and no
//! `kubectl` binary at run time; this crate's tests compare it with `kubectl kustomize`
//! again, as seen through the API server.
//!
//! **What the plan compares.** A live object carries fields the server and controllers
//! add (defaults, `status`, bookkeeping metadata). The observed spec is therefore the
//! live object *projected onto the shape of the desired one*: a field we set that was
//! changed elsewhere shows as a change, a default the server added does not. A field
//! dropped from the templates is still removed by the next apply of that object
//! (server-side apply drops fields its manager no longer sets), but it alone does not
//! make the plan show a change. Secrets compare by key only: their values are filled at
//! apply time and never enter a plan.

use std::collections::BTreeMap;

use cp_core::Environment;
use cp_core::names::ServiceName;
use cp_core::plan::{Layer, Resource, ResourceId, UpdateMode};
use cp_core::render::kustomize::{self, ENV_LABEL};
use cp_core::render::{RenderError, Renderer};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Map, Value, json};

/// The label naming the service an object belongs to.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";

/// Kinds this driver looks for when it observes and prunes, beyond those the
/// environment currently declares: every kind the templates can emit (so an object of
/// a kind the environment no longer uses is still found and removed).
/// PersistentVolumeClaims are deliberately absent: they hold data and go only with
/// `down --volumes`. Namespaces are never pruned (deleting one deletes everything in
/// it, including objects controlplane does not manage).
pub const KNOWN_KINDS: &[(&str, &str)] = &[
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("batch/v1", "CronJob"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("external-secrets.io/v1", "ExternalSecret"),
    ("external-secrets.io/v1", "SecretStore"),
];

/// The API resource (group, version, plural) of an `apiVersion` and kind.
pub fn api_resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind))
}

/// True for kinds that live outside namespaces.
pub fn cluster_scoped(kind: &str) -> bool {
    kustomize::cluster_scoped(kind)
}

/// The label selector of every object of `env`.
pub fn selector(env: &Environment) -> String {
    format!("{ENV_LABEL}={}", env.name)
}

/// The environment's objects, exactly as `kubectl kustomize overlays/<env>` gives them.
pub fn objects(renderer: &Renderer, env: &Environment) -> Result<Vec<Value>, RenderError> {
    let rendered = renderer.kubernetes_objects(env, false)?;
    let wanted = kustomize::index(&rendered);
    Ok(kustomize::expected_overlay_output(
        env.name.as_str(),
        &env.namespace,
        &wanted,
    ))
}

/// The plan id of an object: layer `platform`, its kind, its name.
pub fn id_of(obj: &Value) -> Option<ResourceId> {
    Some(ResourceId::new(
        Layer::Platform,
        obj["kind"].as_str()?,
        obj["metadata"]["name"].as_str()?,
    ))
}

/// The service an object belongs to, by its `app.kubernetes.io/name` label, when the
/// environment has such a service. Others (the namespace, network policies) are
/// shared and applied first.
pub fn service_of(env: &Environment, obj: &Value) -> Option<ServiceName> {
    let name = obj["metadata"]["labels"][NAME_LABEL].as_str()?;
    env.service_names().into_iter().find(|s| s.as_str() == name)
}

/// Fields Kubernetes refuses to change on an existing object: a change to one is
/// reported as blocked rather than failing halfway through `up`.
fn immutable_fields(kind: &str) -> Vec<String> {
    let fields: &[&str] = match kind {
        "StatefulSet" => &[
            "/spec/selector",
            "/spec/serviceName",
            "/spec/volumeClaimTemplates",
            "/spec/podManagementPolicy",
        ],
        "Deployment" => &["/spec/selector"],
        "Service" => &["/spec/clusterIP"],
        "PersistentVolumeClaim" => &["/spec/accessModes", "/spec/storageClassName"],
        _ => &[],
    };
    fields.iter().map(|f| (*f).to_owned()).collect()
}

/// The plan resources of the environment's objects.
pub fn resources(env: &Environment, objects: &[Value]) -> Vec<Resource> {
    objects
        .iter()
        .filter_map(|o| {
            let id = id_of(o)?;
            let fixed = immutable_fields(&id.kind);
            Some(Resource {
                service: service_of(env, o),
                update: if fixed.is_empty() {
                    UpdateMode::InPlace
                } else {
                    UpdateMode::InPlaceExcept(fixed)
                },
                // A Secret is compared by its keys, as it is observed (values never
                // enter a plan, fixed ones such as a basic-auth username included).
                spec: if id.kind == "Secret" {
                    secret_keys_only(o)
                } else {
                    o.clone()
                },
                id,
            })
        })
        .collect()
}

/// The kinds to observe: [`KNOWN_KINDS`] plus any other kind the environment declares
/// (except Namespaces), by kind name, at the apiVersion the environment uses for it.
pub fn kinds_to_observe(objects: &[Value]) -> BTreeMap<String, String> {
    let mut kinds: BTreeMap<String, String> = KNOWN_KINDS
        .iter()
        .map(|(v, k)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for o in objects {
        if let (Some(v), Some(k)) = (o["apiVersion"].as_str(), o["kind"].as_str())
            && k != "Namespace"
        {
            kinds.insert(k.to_owned(), v.to_owned());
        }
    }
    kinds
}

/// What to install for a custom resource group the cluster does not serve.
pub fn install_hint(api_version: &str) -> &'static str {
    match api_version.split('/').next().unwrap_or("") {
        "postgresql.cnpg.io" => {
            "install the CloudNativePG operator (v1.30 or later: https://cloudnative-pg.io/documentation/current/installation_upgrade/), or run PostgreSQL with replicas: 1"
        }
        "barmancloud.cnpg.io" => {
            "install CloudNativePG's Barman Cloud plugin (v0.14 or later: https://cloudnative-pg.io/plugin-barman-cloud/docs/installation/), or set backup.pitr.enabled: false"
        }
        "monitoring.coreos.com" => {
            "install the Prometheus operator's CRDs (prometheus-operator v0.93 or later, e.g. with kube-prometheus-stack), or set monitoring.enabled: false"
        }
        "cert-manager.io" => {
            "install cert-manager (v1.21 or later: https://cert-manager.io/docs/installation/); TLS on Kubernetes is its Certificates"
        }
        "external-secrets.io" => {
            "install External Secrets Operator v0.17 or later (it serves external-secrets.io/v1), or use env:// references"
        }
        _ => "install the operator that defines this custom resource",
    }
}

/// The live object as the plan sees it: projected onto the shape of `want` (see the
/// module documentation), Secrets reduced to their keys.
pub fn observed_spec(live: &Value, want: &Value) -> Value {
    let live = if live["kind"] == "Secret" {
        secret_keys_only(live)
    } else {
        live.clone()
    };
    project(&live, want)
}

fn project(live: &Value, want: &Value) -> Value {
    match (live, want) {
        (Value::Object(l), Value::Object(w)) => {
            let mut out = Map::new();
            for (k, wv) in w {
                if let Some(lv) = l.get(k) {
                    out.insert(k.clone(), project(lv, wv));
                }
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(w)) if l.len() == w.len() => {
            Value::Array(l.iter().zip(w).map(|(lv, wv)| project(lv, wv)).collect())
        }
        _ => live.clone(),
    }
}

/// A Secret with `data`/`stringData` replaced by `stringData` of empty values: the
/// shape the renderer gives it, so only a changed key list is a change.
fn secret_keys_only(live: &Value) -> Value {
    let mut out = live.clone();
    let mut keys = Map::new();
    for field in ["data", "stringData"] {
        if let Some(m) = live[field].as_object() {
            for k in m.keys() {
                keys.insert(k.clone(), json!(""));
            }
        }
    }
    if let Some(o) = out.as_object_mut() {
        o.remove("data");
        o.remove("stringData");
        if !keys.is_empty() || live.get("stringData").is_some() {
            o.insert("stringData".into(), Value::Object(keys));
        }
    }
    out
}

/// The annotation prefix naming the reference each key of a filled Secret comes from.
pub const FILL_PREFIX: &str = "controlplane.dev/fill.";

/// The keys of a Secret the driver fills at apply time (from its annotations).
pub fn fill_keys(obj: &Value) -> Vec<String> {
    if obj["kind"] != "Secret" {
        return Vec::new();
    }
    obj["metadata"]["annotations"]
        .as_object()
        .map(|a| {
            a.keys()
                .filter_map(|k| k.strip_prefix(FILL_PREFIX).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_ignores_server_defaults_and_keeps_drift() {
        let want = json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}});
        let live = json!({"spec": {"replicas": 3, "revisionHistoryLimit": 10,
            "template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "a", "image": "x:1", "imagePullPolicy": "IfNotPresent"}]}}},
            "status": {"readyReplicas": 3}});
        assert_eq!(
            observed_spec(&live, &want),
            json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "a", "image": "x:1"}]}}}})
        );
    }

    #[test]
    fn secrets_compare_by_key_only() {
        let want = json!({"kind": "Secret", "stringData": {"A": "", "B": ""}});
        let live = json!({"kind": "Secret", "data": {"A": "c2VjcmV0", "B": "eA=="}});
        assert_eq!(observed_spec(&live, &want), want);
        let live = json!({"kind": "Secret", "data": {"A": "c2VjcmV0"}});
        assert_eq!(
            observed_spec(&live, &want),
            json!({"kind": "Secret", "stringData": {"A": ""}})
        );
    }

    #[test]
    fn observes_known_and_declared_kinds_at_the_declared_version() {
        let declared = [
            json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret"}),
            json!({"apiVersion": "example.com/v1", "kind": "Widget"}),
            json!({"apiVersion": "v1", "kind": "Namespace"}),
        ];
        let kinds = kinds_to_observe(&declared);
        assert_eq!(kinds["ExternalSecret"], "external-secrets.io/v1");
        assert_eq!(kinds["Widget"], "example.com/v1");
        assert_eq!(kinds["StatefulSet"], "apps/v1");
        assert!(!kinds.contains_key("Namespace"));
        assert!(!kinds.contains_key("PersistentVolumeClaim"));
    }

    #[test]
    fn plurals_of_the_known_kinds() {
        let plurals: Vec<String> = KNOWN_KINDS
            .iter()
            .map(|(v, k)| api_resource(v, k).plural)
            .collect();
        assert_eq!(
            plurals,
            vec![
                "configmaps",
                "secrets",
                "services",
                "serviceaccounts",
                "roles",
                "rolebindings",
                "deployments",
                "statefulsets",
                "horizontalpodautoscalers",
                "poddisruptionbudgets",
                "ingresses",
                "networkpolicies",
                "cronjobs",
                "servicemonitors",
                "prometheusrules",
                "externalsecrets",
                "secretstores",
            ]
        );
    }
}
