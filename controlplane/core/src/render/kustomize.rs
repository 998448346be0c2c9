//! Kustomize layout: a base rendered from `base.yaml` and one overlay per environment
//! holding only what differs, as precise JSON 6902 patches.
//!
//! Every object is rendered twice, from the base model and from the environment; the
//! overlay is their difference (patches for changed objects, resources for new ones,
//! delete patches for dropped ones). `kubectl kustomize overlays/<env>` therefore gives
//! exactly the environment's objects; a test holds us to that.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::plan::diff;

/// An object's identity within a namespace: group/version, kind, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ObjectKey {
    /// `apps/v1`.
    pub api_version: String,
    /// `Deployment`.
    pub kind: String,
    /// `capsule-registry`.
    pub name: String,
}

impl ObjectKey {
    /// The key of an object, if it has one.
    pub fn of(obj: &Value) -> Option<Self> {
        Some(Self {
            api_version: obj["apiVersion"].as_str()?.to_owned(),
            kind: obj["kind"].as_str()?.to_owned(),
            name: obj["metadata"]["name"].as_str()?.to_owned(),
        })
    }

    /// The file stem: `deployment-capsule-registry`.
    pub fn file_stem(&self) -> String {
        format!("{}-{}", self.kind.to_ascii_lowercase(), self.name)
    }

    fn target(&self) -> Value {
        let (group, version) = match self.api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", self.api_version.as_str()),
        };
        json!({"group": group, "version": version, "kind": self.kind, "name": self.name})
    }
}

/// The label the overlays add to every object, and to every StatefulSet's
/// `volumeClaimTemplates` (so the claims made from them carry it too).
pub const ENV_LABEL: &str = "controlplane.dev/environment";

/// Where the overlays put [`ENV_LABEL`] besides `metadata/labels`, in Kustomize's
/// field-spec notation.
const CLAIM_TEMPLATE_LABELS: &str = "spec/volumeClaimTemplates[]/metadata/labels";

/// Objects by key, in a stable order.
pub fn index(objects: &[Value]) -> BTreeMap<ObjectKey, Value> {
    objects
        .iter()
        .filter_map(|o| ObjectKey::of(o).map(|k| (k, o.clone())))
        .collect()
}

/// Emits canonical YAML for a value (the one formatting every file shares).
pub fn to_yaml(v: &Value) -> String {
    serde_saphyr::to_string(v).expect("JSON values serialize to YAML")
}

/// The base directory: one file per object and a kustomization listing them.
pub fn base_files(base: &BTreeMap<ObjectKey, Value>) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    let mut resources = Vec::new();
    for (key, obj) in base {
        let file = format!("{}.yaml", key.file_stem());
        files.insert(format!("kubernetes/base/{file}"), to_yaml(obj));
        resources.push(file);
    }
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    });
    files.insert(
        "kubernetes/base/kustomization.yaml".into(),
        to_yaml(&kustomization),
    );
    files
}

/// One overlay: namespace, environment label, added objects, patches, deletions.
pub fn overlay_files(
    env: &str,
    namespace: &str,
    base: &BTreeMap<ObjectKey, Value>,
    wanted: &BTreeMap<ObjectKey, Value>,
) -> BTreeMap<String, String> {
    let dir = format!("kubernetes/overlays/{env}");
    let mut files = BTreeMap::new();
    let mut resources = vec![json!("../../base")];
    let mut patches = Vec::new();
    for (key, obj) in wanted {
        match base.get(key) {
            None => {
                let file = format!("{}.yaml", key.file_stem());
                files.insert(format!("{dir}/{file}"), to_yaml(obj));
                resources.push(json!(file));
            }
            Some(b) => {
                let ops: Vec<Value> = diff(b, obj)
                    .into_iter()
                    .map(|c| match (c.before, c.after) {
                        (None, Some(v)) => json!({"op": "add", "path": c.path, "value": v}),
                        (Some(_), None) => json!({"op": "remove", "path": c.path}),
                        (_, v) => json!({"op": "replace", "path": c.path, "value": v}),
                    })
                    .collect();
                if !ops.is_empty() {
                    let file = format!("patches/{}.yaml", key.file_stem());
                    files.insert(format!("{dir}/{file}"), to_yaml(&Value::Array(ops)));
                    patches.push(json!({"path": file, "target": key.target()}));
                }
            }
        }
    }
    for key in base.keys().filter(|k| !wanted.contains_key(*k)) {
        let file = format!("patches/delete-{}.yaml", key.file_stem());
        let delete = json!({
            "$patch": "delete",
            "apiVersion": key.api_version,
            "kind": key.kind,
            "metadata": {"name": key.name},
        });
        files.insert(format!("{dir}/{file}"), to_yaml(&delete));
        patches.push(json!({"path": file}));
    }
    let mut kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "labels": [{
            "pairs": {ENV_LABEL: env},
            "includeSelectors": false,
            // The claims a StatefulSet makes carry its templates' labels: with this,
            // they carry the environment's, and teardown finds them by label alone.
            "fields": [{"path": CLAIM_TEMPLATE_LABELS, "kind": "StatefulSet", "create": true}],
        }],
        "resources": resources,
    });
    if !patches.is_empty() {
        kustomization["patches"] = Value::Array(patches);
    }
    // Kustomize gives every kind it does not know as cluster-scoped (custom ones such
    // as ClusterIssuer) the overlay's namespace, which the API server refuses: a
    // transformer, run after the namespace is set, takes it off again.
    let custom_cluster_kinds: std::collections::BTreeSet<&str> = wanted
        .keys()
        .map(|k| k.kind.as_str())
        .filter(|k| cluster_scoped(k) && CUSTOM_CLUSTER_SCOPED.contains(k))
        .collect();
    if !custom_cluster_kinds.is_empty() {
        let mut transformers = Vec::new();
        for kind in custom_cluster_kinds {
            let file = format!(
                "transformers/cluster-scoped-{}.yaml",
                kind.to_ascii_lowercase()
            );
            let transformer = json!({
                "apiVersion": "builtin",
                "kind": "PatchTransformer",
                "metadata": {"name": format!("cluster-scoped-{}", kind.to_ascii_lowercase())},
                "target": {"kind": kind},
                "patch": r#"[{"op": "remove", "path": "/metadata/namespace"}]"#,
            });
            files.insert(format!("{dir}/{file}"), to_yaml(&transformer));
            transformers.push(json!(file));
        }
        kustomization["transformers"] = Value::Array(transformers);
    }
    files.insert(format!("{dir}/kustomization.yaml"), to_yaml(&kustomization));
    files
}

/// Cluster-scoped kinds of custom resources: Kustomize does not know their scope.
const CUSTOM_CLUSTER_SCOPED: &[&str] = &["ClusterSecretStore", "ClusterIssuer"];

/// Kinds that are not namespaced, among those the templates emit.
pub fn cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "ClusterSecretStore"
            | "ClusterIssuer"
            | "PersistentVolume"
            | "StorageClass"
    )
}

/// What `kubectl kustomize overlays/<env>` must produce: the environment's objects in
/// its namespace with the environment label (on StatefulSets' claim templates too).
pub fn expected_overlay_output(
    env: &str,
    namespace: &str,
    wanted: &BTreeMap<ObjectKey, Value>,
) -> Vec<Value> {
    wanted
        .values()
        .map(|o| {
            let mut o = o.clone();
            if !cluster_scoped(o["kind"].as_str().unwrap_or("")) {
                o["metadata"]["namespace"] = json!(namespace);
            }
            o["metadata"]["labels"][ENV_LABEL] = json!(env);
            if o["kind"] == "StatefulSet"
                && let Some(templates) = o["spec"]["volumeClaimTemplates"].as_array_mut()
            {
                for t in templates {
                    t["metadata"]["labels"][ENV_LABEL] = json!(env);
                }
            }
            o
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlays_hold_only_differences() {
        let dep = |replicas: u32, image: &str| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                   "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}}})
        };
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "old"}, "data": {}});
        let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"}});
        let base = index(&[dep(1, "a:1"), cm]);
        let wanted = index(&[dep(3, "a:2"), hpa]);
        let files = overlay_files("production", "anumate-production", &base, &wanted);
        let names: Vec<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            vec![
                "kubernetes/overlays/production/horizontalpodautoscaler-web.yaml",
                "kubernetes/overlays/production/kustomization.yaml",
                "kubernetes/overlays/production/patches/delete-configmap-old.yaml",
                "kubernetes/overlays/production/patches/deployment-web.yaml",
            ]
        );
        assert_eq!(
            files["kubernetes/overlays/production/patches/deployment-web.yaml"],
            "- op: replace\n  path: /spec/replicas\n  value: 3\n- op: replace\n  path: /spec/template/spec/containers/0/image\n  value: a:2\n"
        );
    }
}
