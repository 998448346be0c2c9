//! The Kubernetes driver against the in-process fake API server (`fake/`), with the
//! shipped `staging` environment and templates. No cluster is reachable here; the
//! fake answers through a real `kube::Client`, and `kubectl kustomize` of a fresh
//! render is the oracle for what the cluster must end up holding.
//!
//! Staging's generated Secrets refer to `env://ANUMATE_*`, which are not set in a test
//! run: the fixture points those references at `env://PATH` with `--set`, so values
//! really go through `env://` resolution at apply time.

// Tests run the binaries they judge (ours, kubectl, promtool) by path on purpose.
#![allow(clippy::disallowed_methods)]

mod fake;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use cp_core::Environment;
use cp_core::names::ServiceName;
use cp_core::plan::Action;
use cp_core::render::Renderer;
use cp_core::render::context::secret_bindings;
use cp_driver_kube::{FIELD_MANAGER, KubeDriver};
use cp_drivers::engine::{self, Quiet};
use cp_drivers::{Context, Driver, DriverError};
use cp_runtime::project::Project;
use cp_runtime::secrets::SecretResolver;
use cp_runtime::state::StateDir;
use fake::{Fake, Key, Rollout, key_of};
use serde_json::{Value, json};

const ENV: &str = "staging";
const NS: &str = "anumate-staging";

fn project() -> Project {
    Project::new(cp_testkit::environments_dir())
}

fn svc(s: &str) -> ServiceName {
    ServiceName::new(s).unwrap()
}

/// Staging with `sets`, its fill-at-apply secrets pointed at `env://PATH`.
fn load(sets: &[&str]) -> Environment {
    let p = project();
    let plain = p.load(ENV, &[]).expect("staging loads").env;
    let mut all: Vec<String> = secret_bindings(&plain)
        .values()
        .flatten()
        .filter(|b| b.source == "fill")
        .map(|b| format!("{}=env://PATH", b.path))
        .collect();
    all.sort();
    all.dedup();
    all.extend(sets.iter().map(|s| (*s).to_owned()));
    p.load(ENV, &all)
        .unwrap_or_else(|e| panic!("staging with {all:?} does not load: {e:?}"))
        .env
}

struct Fixture {
    fake: Fake,
    driver: KubeDriver,
    state: StateDir,
    secrets: SecretResolver,
    _tmp: tempfile::TempDir,
}

impl Fixture {
    fn new(rollout: Rollout) -> Self {
        let (fake, client) = Fake::new(rollout);
        let templates = project().templates().expect("templates read");
        let driver = KubeDriver::new(client, &templates)
            .unwrap()
            .with_poll(Duration::from_millis(20));
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path().join("state"), ENV).unwrap();
        let secrets = SecretResolver::new(Some(state.clone()));
        Self {
            fake,
            driver,
            state,
            secrets,
            _tmp: tmp,
        }
    }

    fn cx<'a>(&'a self, env: &'a Environment) -> Context<'a> {
        Context {
            env,
            secrets: &self.secrets,
            state: &self.state,
        }
    }

    async fn up(&self, env: &Environment) -> Result<engine::UpReport, DriverError> {
        engine::up(
            &self.driver,
            self.cx(env),
            &[],
            Duration::from_secs(20),
            &Quiet,
        )
        .await
    }
}

/// What `kubectl kustomize overlays/staging` gives for a fresh render of `env`.
fn kubectl_kustomize(env: &Environment) -> Vec<Value> {
    let p = project();
    let files = p.env_files().unwrap();
    let base = cp_core::load_base(&files).expect("base loads");
    let renderer = Renderer::new(&p.templates().unwrap()).unwrap();
    let out = renderer.render(&base, std::slice::from_ref(env)).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    for (path, text) in &out.files {
        let dest = tmp.path().join(path);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(dest, text).unwrap();
    }
    let overlay = tmp.path().join("kubernetes/overlays").join(ENV);
    let run = Command::new("kubectl")
        .arg("kustomize")
        .arg(&overlay)
        .output()
        .expect("kubectl must be installed (it bundles kustomize): the oracle of this test");
    assert!(
        run.status.success(),
        "kubectl kustomize failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = String::from_utf8(run.stdout).unwrap();
    serde_saphyr::from_str_multiple::<Value, Vec<Value>>(&text)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

/// An object without what the server adds; Secrets with their keys only.
fn normalize(obj: &Value) -> Value {
    let mut o = obj.clone();
    let m = o["metadata"].as_object_mut().unwrap();
    for f in [
        "resourceVersion",
        "uid",
        "generation",
        "creationTimestamp",
        "managedFields",
    ] {
        m.remove(f);
    }
    let o2 = o.as_object_mut().unwrap();
    o2.remove("status");
    if obj["kind"] == "Secret" {
        let mut keys = BTreeSet::new();
        for f in ["data", "stringData"] {
            if let Some(d) = o2.remove(f) {
                keys.extend(d.as_object().unwrap().keys().cloned());
            }
        }
        o2.insert("keys".into(), json!(keys));
    }
    o
}

fn by_key(objects: impl IntoIterator<Item = Value>) -> BTreeMap<Key, Value> {
    objects
        .into_iter()
        .map(|o| (key_of(&o), normalize(&o)))
        .collect()
}

fn deployment(name: &str) -> Key {
    (
        "apps/v1".into(),
        "Deployment".into(),
        NS.into(),
        name.into(),
    )
}

#[tokio::test]
async fn first_apply_holds_exactly_what_kubectl_kustomize_renders() {
    let fx = Fixture::new(Rollout::Immediate);
    let env = load(&[]);
    let report = fx.up(&env).await.expect("up succeeds against the fake");
    assert!(report.plan.steps.iter().all(|s| s.action == Action::Create));

    let held = by_key(fx.fake.objects().into_values());
    let expected = by_key(kubectl_kustomize(&env));
    assert_eq!(
        held.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>(),
        "the fake holds other objects than kubectl kustomize renders"
    );
    for (k, want) in &expected {
        assert_eq!(&held[k], want, "{k:?} differs from kubectl kustomize");
    }
    assert!(held.len() > 20, "staging has {} objects", held.len());

    // Every write is a server-side apply by `controlplane`, forced.
    let patches: Vec<_> = fx
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method != "GET")
        .collect();
    assert!(patches.len() >= held.len());
    for r in &patches {
        assert_eq!(r.method, "PATCH", "{r:?}");
        assert_eq!(
            r.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(
            r.query.get("fieldManager").map(String::as_str),
            Some(FIELD_MANAGER)
        );
        assert_eq!(r.query.get("force").map(String::as_str), Some("true"));
    }
    // Filled Secrets hold the resolved value, not the empty rendered one.
    let secret = &fx.fake.objects()[&(
        "v1".to_owned(),
        "Secret".to_owned(),
        NS.to_owned(),
        "postgres-secrets".to_owned(),
    )];
    assert_ne!(secret["data"]["POSTGRES_PASSWORD"], json!(""));
    assert!(secret.get("stringData").is_none());
    // ... which never reaches a plan.
    let path = std::env::var("PATH").unwrap();
    let plan = serde_json::to_string(&engine::plan(&fx.driver, &env).await.unwrap()).unwrap();
    assert!(!plan.contains(&path), "a secret value is in the plan");
}

#[tokio::test]
async fn drift_by_another_field_manager_is_planned_and_taken_back() {
    let fx = Fixture::new(Rollout::Immediate);
    let env = load(&[]);
    fx.up(&env).await.unwrap();
    let key: Key = (
        "v1".into(),
        "ConfigMap".into(),
        NS.into(),
        "redis-config".into(),
    );
    let mut edited = fx.fake.objects()[&key].clone();
    let original = edited["data"].clone();
    edited["data"] = json!({"redis.conf": "maxmemory 1mb\n"});
    edited["metadata"]["managedFields"] =
        json!([{"manager": "kubectl-edit", "operation": "Update"}]);
    fx.fake.insert(edited);

    let plan = engine::plan(&fx.driver, &env).await.unwrap();
    assert_eq!(plan.steps.len(), 1, "{plan}");
    assert_eq!(plan.steps[0].id.to_string(), "ConfigMap redis-config");
    assert!(matches!(plan.steps[0].action, Action::Update { .. }));
    // The fake refuses an unforced apply over another manager (409); ours is forced.
    fx.up(&env).await.unwrap();
    let now = &fx.fake.objects()[&key];
    assert_eq!(now["data"], original);
    assert_eq!(
        now["metadata"]["managedFields"][0]["manager"],
        json!(FIELD_MANAGER)
    );
    assert!(engine::plan(&fx.driver, &env).await.unwrap().is_empty());
}

#[tokio::test]
async fn second_up_changes_nothing() {
    let fx = Fixture::new(Rollout::Immediate);
    let env = load(&[]);
    fx.up(&env).await.unwrap();
    let before = fx.fake.versions();
    fx.fake.clear_requests();

    let plan = engine::plan(&fx.driver, &env).await.unwrap();
    assert!(plan.is_empty(), "a re-plan wants changes:\n{plan}");
    assert_eq!(plan.unchanged, before.len());
    let report = fx.up(&env).await.unwrap();
    assert!(report.plan.is_empty());
    assert_eq!(fx.fake.versions(), before);
    assert!(
        fx.fake.requests().iter().all(|r| r.method == "GET"),
        "a no-op up wrote: {:?}",
        fx.fake.requests()
    );
}

#[tokio::test]
async fn a_replica_change_updates_only_that_deployment() {
    let fx = Fixture::new(Rollout::Immediate);
    fx.up(&load(&[])).await.unwrap();
    let before = fx.fake.versions();

    let env = load(&["apps.capsule-registry.replicas=4"]);
    let plan = engine::plan(&fx.driver, &env).await.unwrap();
    assert_eq!(plan.steps.len(), 1, "{plan}");
    let step = &plan.steps[0];
    assert_eq!(step.id.to_string(), "Deployment capsule-registry");
    let Action::Update { changes } = &step.action else {
        panic!("expected an update, got {:?}", step.action);
    };
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].path, "/spec/replicas");
    assert_eq!(changes[0].before, Some(json!(2)));
    assert_eq!(changes[0].after, Some(json!(4)));

    fx.up(&env).await.unwrap();
    let after = fx.fake.versions();
    let changed: Vec<&Key> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(changed, vec![&deployment("capsule-registry")]);
    assert_eq!(
        fx.fake.objects()[&deployment("capsule-registry")]["spec"]["replicas"],
        json!(4)
    );
}

#[tokio::test]
async fn objects_no_longer_declared_are_pruned_and_others_untouched() {
    let fx = Fixture::new(Rollout::Immediate);
    fx.up(&load(&[])).await.unwrap();
    assert!(fx.fake.objects().contains_key(&deployment("jaeger")));
    let foreign = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "someone-elses", "namespace": NS, "labels": {"app.kubernetes.io/name": "jaeger"}}, "data": {}});
    let other_env = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "jaeger", "namespace": "anumate-production",
                     "labels": {"controlplane.dev/environment": "production"}}, "spec": {}});
    fx.fake.insert(foreign.clone());
    fx.fake.insert(other_env.clone());

    let env = load(&["extras.jaeger.enabled=false"]);
    let plan = engine::plan(&fx.driver, &env).await.unwrap();
    let deleted: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Delete)
        .map(|s| s.id.to_string())
        .collect();
    assert!(deleted.contains(&"Deployment jaeger".to_owned()), "{plan}");
    assert!(deleted.contains(&"Service jaeger".to_owned()), "{plan}");
    fx.up(&env).await.unwrap();

    let held = fx.fake.objects();
    for (_, kind, ns, name) in held.keys() {
        assert!(
            !(name == "jaeger" && ns == NS),
            "{kind} jaeger is still held after pruning"
        );
    }
    assert!(
        held.contains_key(&key_of(&foreign)),
        "an unlabelled object was pruned"
    );
    assert!(
        held.contains_key(&key_of(&other_env)),
        "another environment's object was pruned"
    );
    // And the rest is as declared now.
    let expected = by_key(kubectl_kustomize(&env));
    let ours: BTreeMap<Key, Value> = by_key(held.into_values())
        .into_iter()
        .filter(|(k, _)| *k != key_of(&foreign) && *k != key_of(&other_env))
        .collect();
    assert_eq!(ours, expected);
}

#[tokio::test]
async fn rollout_wait_names_the_workload_and_its_conditions_at_the_deadline() {
    let fx = Fixture::new(Rollout::Never);
    let env = load(&[]);
    let cx = fx.cx(&env);
    let plan = engine::plan(&fx.driver, &env).await.unwrap();
    for step in &plan.steps {
        fx.driver.apply(cx, step).await.unwrap();
    }
    fx.fake.set_status(
        "StatefulSet",
        NS,
        "postgres",
        json!({"observedGeneration": 1, "replicas": 1, "readyReplicas": 0, "updatedReplicas": 1,
               "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                               "message": "0/3 nodes are available: insufficient memory"}]}),
    );
    let log: String = (1..=30).map(|i| format!("line {i}\n")).collect();
    fx.fake.add_pod(
        NS,
        "postgres-0",
        "postgres",
        &(log + "FATAL: could not open file \"/etc/postgresql/postgresql.conf\"\n"),
    );
    let start = tokio::time::Instant::now();
    let err = fx
        .driver
        .wait_ready(cx, &svc("postgres"), start + Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(250));
    let DriverError::NotReady {
        detail, log_tail, ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!(
        detail,
        "StatefulSet postgres has not rolled out: readyReplicas 0/1; conditions: \
         PodScheduled=False (Unschedulable: 0/3 nodes are available: insufficient memory) \
         (deadline reached)"
    );
    assert_eq!(log_tail.len(), 20);
    assert_eq!(log_tail[0], "line 12");
    assert_eq!(
        log_tail[19],
        "FATAL: could not open file \"/etc/postgresql/postgresql.conf\""
    );
    let mut out = Vec::new();
    fx.driver
        .logs(&env, &svc("postgres"), 2, false, &mut out)
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "line 30\nFATAL: could not open file \"/etc/postgresql/postgresql.conf\"\n"
    );
    let err = fx
        .driver
        .logs(&env, &svc("redis"), 2, false, &mut Vec::new())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "redis did not become ready: it has no pod in namespace anumate-staging; run `controlplane up`"
    );

    let status = fx.driver.status(cx).await.unwrap();
    let pg = status
        .iter()
        .find(|s| s.service.as_str() == "postgres")
        .unwrap();
    assert!(
        matches!(&pg.state, cp_drivers::ServiceState::Stopped(why) if why.contains("readyReplicas 0/1")),
        "{pg:?}"
    );
    assert_eq!(pg.id.as_deref(), Some("StatefulSet/postgres"));
    assert_eq!(
        pg.endpoint.as_deref(),
        Some("postgres.anumate-staging.svc:5432")
    );

    // Through `up`, the first level fails and names its workloads.
    let err = engine::up(&fx.driver, cx, &[], Duration::from_millis(300), &Quiet)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("has not rolled out"), "{err}");

    // A controller that catches up after a few polls: ready.
    fx.fake.set_rollout(Rollout::AfterReads(3));
    let ready = fx
        .driver
        .wait_ready(
            cx,
            &svc("postgres"),
            tokio::time::Instant::now() + Duration::from_secs(10),
        )
        .await
        .unwrap();
    let image = fx.fake.objects()[&(
        "apps/v1".to_owned(),
        "StatefulSet".to_owned(),
        NS.to_owned(),
        "postgres".to_owned(),
    )]["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        image.ends_with(&format!(":{}", ready.version)),
        "{image} vs {}",
        ready.version
    );
    let report = fx.up(&env).await.unwrap();
    let status = fx.driver.status(cx).await.unwrap();
    let pg = status
        .iter()
        .find(|s| s.service.as_str() == "postgres")
        .unwrap();
    assert_eq!(pg.state, cp_drivers::ServiceState::Running);
    let with_workloads: BTreeSet<String> = fx
        .fake
        .objects()
        .values()
        .filter(|o| o["kind"] == "StatefulSet" || o["kind"] == "Deployment")
        // The control plane's own Deployment is not one of the environment's services.
        .filter(|o| o["metadata"]["name"] != "controlplane")
        .map(|o| {
            o["metadata"]["labels"]["app.kubernetes.io/name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for (service, version) in &report.ready {
        if with_workloads.contains(service.as_str()) {
            assert!(
                !version.is_empty() && version != "no workload",
                "{service}: {version}"
            );
        } else {
            // Secrets and config only (grafana, alertmanager: run by an operator).
            assert_eq!(version, "no workload", "{service}");
        }
    }
    let ready: BTreeSet<String> = report.ready.keys().map(|s| s.to_string()).collect();
    assert!(with_workloads.is_subset(&ready), "{ready:?}");
}

/// The `what` of each removal, in order.
fn whats(preview: &[cp_drivers::Removal]) -> Vec<String> {
    preview.iter().map(|r| r.what.clone()).collect()
}

#[tokio::test]
async fn teardown_deletes_only_our_labelled_objects_and_claims_by_label_only_with_volumes() {
    let fx = Fixture::new(Rollout::Immediate);
    let env = load(&[]);
    fx.up(&env).await.unwrap();
    let ours: BTreeSet<Key> = fx.fake.objects().into_keys().collect();
    let pvc = |name: &str, labels: Value| {
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": name, "namespace": NS, "labels": labels},
               "spec": {"accessModes": ["ReadWriteOnce"]}})
    };
    // Someone else's claim under the name postgres's first claim gets (the
    // controller then uses it as it is), and another environment's labelled claim.
    let squatter = pvc(
        "data-postgres-0",
        json!({"app.kubernetes.io/name": "postgres"}),
    );
    let other_env = pvc(
        "data-postgres-archive",
        json!({"controlplane.dev/environment": "production"}),
    );
    let foreign = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "registry-credentials", "namespace": NS}, "data": {}});
    for o in [&squatter, &other_env, &foreign] {
        fx.fake.insert(o.clone());
    }
    // The claims the StatefulSets make carry the environment label of their
    // templates.
    let made = fx.fake.run_statefulset_controller();
    let held = fx.fake.objects();
    let names: Vec<&str> = made.iter().map(|k| k.3.as_str()).collect();
    // Extras with volumes (Loki, RabbitMQ) are StatefulSets with claims too.
    assert_eq!(
        names,
        [
            "data-loki-0",
            "data-nats-0",
            "data-rabbitmq-0",
            "data-redis-0",
            "data-vault-0"
        ]
    );
    for k in &made {
        assert_eq!(
            held[k]["metadata"]["labels"]["controlplane.dev/environment"],
            json!(ENV),
            "{k:?}"
        );
    }
    // Claims the environment declares itself (the control plane's state) are claims
    // too: kept without volumes, removed with them.
    let declared_claims: BTreeSet<Key> = ours
        .iter()
        .filter(|k| k.1 == "PersistentVolumeClaim")
        .cloned()
        .collect();
    let claims: BTreeSet<Key> = made
        .iter()
        .cloned()
        .chain(declared_claims.iter().cloned())
        .collect();
    let namespace: Key = ("v1".into(), "Namespace".into(), String::new(), NS.into());

    // The preview changes nothing and lists exactly what the teardown then removes:
    // without volumes, no claim.
    let before = fx.fake.versions();
    fx.fake.clear_requests();
    let preview = fx
        .driver
        .teardown_preview(fx.cx(&env), false)
        .await
        .unwrap();
    assert_eq!(fx.fake.versions(), before);
    assert!(fx.fake.requests().iter().all(|r| r.method == "GET"));
    assert_eq!(
        preview.len(),
        ours.len() - 1 - declared_claims.len(),
        "{preview:?}"
    );
    assert!(preview.iter().all(|r| !r.holds_data), "{preview:?}");
    assert!(
        preview
            .iter()
            .all(|r| !r.what.starts_with("PersistentVolumeClaim")),
        "{preview:?}"
    );
    let removed = fx.driver.teardown(fx.cx(&env), false).await.unwrap();
    assert_eq!(removed, whats(&preview));
    assert!(removed.contains(&"StatefulSet postgres".to_owned()));
    let mut left: BTreeSet<Key> = claims.clone();
    left.extend([
        namespace.clone(),
        key_of(&squatter),
        key_of(&other_env),
        key_of(&foreign),
    ]);
    assert_eq!(
        fx.fake.objects().into_keys().collect::<BTreeSet<_>>(),
        left,
        "teardown left or removed the wrong objects"
    );

    // With volumes: the environment's labelled claims, asked for by label only, in
    // the environment's namespace.
    let before = fx.fake.versions();
    fx.fake.clear_requests();
    let preview = fx.driver.teardown_preview(fx.cx(&env), true).await.unwrap();
    assert_eq!(fx.fake.versions(), before);
    let claim_lists: Vec<_> = fx
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/persistentvolumeclaims"))
        .collect();
    assert!(!claim_lists.is_empty());
    for r in &claim_lists {
        assert_eq!(r.method, "GET");
        assert_eq!(
            r.path,
            format!("/api/v1/namespaces/{NS}/persistentvolumeclaims")
        );
        assert_eq!(
            r.query.get("labelSelector").map(String::as_str),
            Some("controlplane.dev/environment=staging")
        );
    }
    let expected: Vec<String> = claims
        .iter()
        .map(|k| format!("PersistentVolumeClaim {}", k.3))
        .collect();
    assert_eq!(whats(&preview), expected);
    assert!(preview.iter().all(|r| r.holds_data), "{preview:?}");
    let removed = fx.driver.teardown(fx.cx(&env), true).await.unwrap();
    assert_eq!(removed, expected);
    assert_eq!(
        fx.fake.objects().into_keys().collect::<BTreeSet<_>>(),
        BTreeSet::from([
            namespace,
            key_of(&squatter),
            key_of(&other_env),
            key_of(&foreign)
        ]),
        "a namespace, an unlabelled claim and another environment's are never deleted"
    );
}

#[tokio::test]
async fn a_change_kubernetes_refuses_is_blocked_before_anything_is_touched() {
    let fx = Fixture::new(Rollout::Immediate);
    fx.up(&load(&[])).await.unwrap();
    let before = fx.fake.versions();
    fx.fake.clear_requests();

    let env = load(&["services.postgres.storage=50Gi"]);
    let plan = engine::plan(&fx.driver, &env).await.unwrap();
    assert!(plan.is_blocked(), "{plan}");
    let blocked = plan
        .steps
        .iter()
        .find(|s| matches!(s.action, Action::Blocked { .. }))
        .unwrap();
    assert_eq!(blocked.id.to_string(), "StatefulSet postgres");
    let err = fx.up(&env).await.unwrap_err();
    assert!(
        err.to_string().contains("/spec/volumeClaimTemplates/0/spec/resources/requests/storage cannot change once created"),
        "{err}"
    );
    assert_eq!(fx.fake.versions(), before);
    assert!(fx.fake.requests().iter().all(|r| r.method == "GET"));
}

/// Staging outgrown one replica (PostgreSQL as a CloudNativePG cluster, NATS and
/// OpenBao as 3-node clusters), its fill-at-apply secrets pointed at `env://PATH`.
fn load_clustered() -> Environment {
    let clustered = [
        "services.postgres.replicas=3",
        "services.nats.replicas=3",
        "services.vault.replicas=3",
        "streams.AUDIT_EVENTS.replicas=3",
    ];
    let p = project();
    let sets: Vec<String> = clustered.iter().map(|s| (*s).to_owned()).collect();
    let plain = p.load(ENV, &sets).expect("clustered staging loads").env;
    let mut all: Vec<String> = secret_bindings(&plain)
        .values()
        .flatten()
        .filter(|b| b.source == "fill")
        .map(|b| format!("{}=env://PATH", b.path))
        .collect();
    all.sort();
    all.dedup();
    all.extend(sets);
    p.load(ENV, &all).unwrap_or_else(|e| panic!("{e:?}")).env
}

fn cluster_key() -> Key {
    (
        "postgresql.cnpg.io/v1".into(),
        "Cluster".into(),
        NS.into(),
        "postgres".into(),
    )
}

#[tokio::test]
async fn a_clustered_environment_applies_exactly_what_kubectl_kustomize_renders() {
    let fx = Fixture::new(Rollout::Immediate);
    let env = load_clustered();
    fx.up(&env).await.expect("up succeeds against the fake");
    let held = by_key(fx.fake.objects().into_values());
    let expected = by_key(kubectl_kustomize(&env));
    assert_eq!(
        held.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (k, want) in &expected {
        assert_eq!(&held[k], want, "{k:?} differs from kubectl kustomize");
    }
    let cluster = &held[&cluster_key()];
    assert_eq!(cluster["spec"]["instances"], 3);
    // The roles' basic-auth Secrets were filled at apply time, the username kept.
    let secrets = fx.fake.objects();
    let role = &secrets[&(
        "v1".to_owned(),
        "Secret".to_owned(),
        NS.to_owned(),
        "postgres-role-anumate-app-secrets".to_owned(),
    )];
    assert_eq!(role["type"], "kubernetes.io/basic-auth");
    assert_ne!(role["data"]["password"], json!(""));
    assert!(role["data"]["username"].is_string());
    // Clients reach the primary through the operator's `-rw` Service.
    let ep = fx.driver.endpoint(&env, &svc("postgres")).unwrap();
    assert_eq!(ep.addr(), format!("postgres-rw.{NS}.svc:5432"));
    // The Cluster rolled out as the operator reports it, and nothing is left to do.
    let statuses = fx.driver.status(fx.cx(&env)).await.unwrap();
    let pg = statuses
        .iter()
        .find(|s| s.service.as_str() == "postgres")
        .unwrap();
    assert_eq!(pg.version.as_deref(), Some("15"), "{pg:?}");
    let again = engine::plan(&fx.driver, &env).await.unwrap();
    assert!(again.is_empty(), "{again}");
}

#[tokio::test]
async fn without_the_cloudnativepg_crd_plan_refuses_and_up_applies_nothing() {
    let fx = Fixture::new(Rollout::Immediate);
    fx.fake.uninstall("postgresql.cnpg.io/v1", "Cluster");
    let env = load_clustered();
    let e = engine::plan(&fx.driver, &env)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("postgresql.cnpg.io/v1 Cluster")
            && e.contains("install the CloudNativePG operator"),
        "{e}"
    );
    let e = fx.up(&env).await.unwrap_err().to_string();
    assert!(e.contains("CloudNativePG"), "{e}");
    assert!(fx.fake.objects().is_empty(), "up applied objects");
    assert!(
        fx.fake.requests().iter().all(|r| r.method == "GET"),
        "a refused up wrote: {:?}",
        fx.fake.requests()
    );
}

#[tokio::test]
async fn without_cert_manager_a_tls_environment_is_refused_naming_it() {
    // Staging requires TLS: its certificates are cert-manager's.
    let fx = Fixture::new(Rollout::Immediate);
    fx.fake.uninstall("cert-manager.io/v1", "Certificate");
    let env = load(&[]);
    assert!(env.tls.required());
    let e = engine::plan(&fx.driver, &env)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cert-manager.io/v1 Certificate") && e.contains("install cert-manager"),
        "{e}"
    );
    let e = fx.up(&env).await.unwrap_err().to_string();
    assert!(e.contains("cert-manager"), "{e}");
    assert!(fx.fake.objects().is_empty(), "up applied objects");
}

#[tokio::test]
async fn down_hibernates_a_cloudnativepg_cluster_and_deletes_it_only_with_volumes() {
    let fx = Fixture::new(Rollout::Immediate);
    let env = load_clustered();
    fx.up(&env).await.unwrap();
    let preview = whats(
        &fx.driver
            .teardown_preview(fx.cx(&env), false)
            .await
            .unwrap(),
    );
    assert!(
        preview.contains(
            &"Cluster postgres (hibernated: its instances stop, its volumes and data stay)"
                .to_owned()
        ),
        "{preview:?}"
    );
    fx.driver.teardown(fx.cx(&env), false).await.unwrap();
    let held = fx.fake.objects();
    let cluster = held
        .get(&cluster_key())
        .expect("the Cluster is kept with its data");
    assert_eq!(
        cluster["metadata"]["annotations"]["cnpg.io/hibernation"],
        "on"
    );
    // Only with --volumes does the Cluster (and with it its claims) go.
    let preview = fx.driver.teardown_preview(fx.cx(&env), true).await.unwrap();
    let c = preview
        .iter()
        .find(|r| r.what == "Cluster postgres")
        .expect("listed");
    assert!(c.holds_data);
    fx.driver.teardown(fx.cx(&env), true).await.unwrap();
    assert!(!fx.fake.objects().contains_key(&cluster_key()));
}

#[tokio::test]
async fn a_deleted_claim_of_an_initialised_stateful_service_is_reported_not_replaced_silently() {
    let fx = Fixture::new(Rollout::Immediate);
    let env = load(&[]);
    fx.up(&env).await.unwrap();
    // The StatefulSet controller makes the claims with the pods; the next up finds
    // them and records them as what holds the data (by uid).
    let made = fx.fake.run_statefulset_controller();
    assert!(fx.driver.vanished(fx.cx(&env)).await.unwrap().is_empty());
    fx.up(&env).await.unwrap();
    let rec = cp_runtime::initialised::read(fx.state.path(), "nats")
        .unwrap()
        .unwrap_or_else(|| {
            let pvc: Vec<String> = fx
                .fake
                .requests()
                .iter()
                .filter(|r| format!("{r:?}").contains("persistentvolumeclaims"))
                .map(|r| format!("{r:?}"))
                .collect();
            panic!("nats is not recorded with its claims; made {made:?}; requests {pvc:?}")
        });
    assert_eq!(
        rec.volumes.keys().collect::<Vec<_>>(),
        ["data-nats-0"],
        "{rec:?}"
    );
    assert!(
        cp_runtime::initialised::read(fx.state.path(), "redis")
            .unwrap()
            .is_none(),
        "redis is a cache: no record"
    );
    assert!(fx.driver.vanished(fx.cx(&env)).await.unwrap().is_empty());

    // `kubectl delete pvc data-nats-0`: the pod goes, and the controller makes a new,
    // empty claim under the same name. Both are data lost.
    let claim = made.iter().find(|k| k.3 == "data-nats-0").unwrap().clone();
    assert!(fx.fake.remove(&claim));
    let gone = fx.driver.vanished(fx.cx(&env)).await.unwrap();
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0].service.as_str(), "nats");
    assert!(
        gone[0]
            .reason
            .starts_with("data missing: nats was initialised at")
            && gone[0].reason.contains("PersistentVolumeClaim data-nats-0")
            && gone[0].reason.contains("up --reinitialise nats --yes"),
        "{}",
        gone[0].reason
    );
    fx.fake.run_statefulset_controller();
    let gone = fx.driver.vanished(fx.cx(&env)).await.unwrap();
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert!(
        gone[0].reason.contains("a new, empty claim"),
        "{}",
        gone[0].reason
    );
    // Another up does not take the new claim as the data: it stays reported.
    let _ = fx.up(&env).await;
    assert_eq!(fx.driver.vanished(fx.cx(&env)).await.unwrap().len(), 1);
    // `down --volumes` deletes the claims on purpose: nothing is missing after.
    fx.driver.teardown(fx.cx(&env), true).await.unwrap();
    assert!(
        cp_runtime::initialised::read(fx.state.path(), "nats")
            .unwrap()
            .is_none()
    );
    assert!(fx.driver.vanished(fx.cx(&env)).await.unwrap().is_empty());
}
