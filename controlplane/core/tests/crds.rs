//! Every custom resource a fresh render emits is one the operator versions we support
//! would accept: its apiVersion is served by their published CRDs (vendored under
//! `tests/crds/`, see the README there) and it passes the CRD's schema with strict field
//! validation. ExternalSecrets name a secret store rendered alongside them, and the
//! environment settings that store is built from are validated.

mod crd_schema;
mod support;

use std::collections::BTreeSet;
use std::path::PathBuf;

use cp_core::render::kustomize;
use crd_schema::Crds;
use serde_json::{Value, json};

fn crds() -> Crds {
    Crds::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/crds"))
}

/// API groups Kubernetes itself serves (among them every group the templates use):
/// objects in these are not custom resources. Anything else needs a vendored CRD.
const BUILT_IN_GROUPS: &[&str] = &[
    "",
    "apps",
    "autoscaling",
    "batch",
    "policy",
    "networking.k8s.io",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
];

fn group(obj: &Value) -> &str {
    let v = obj["apiVersion"].as_str().unwrap_or_default();
    v.split_once('/').map_or("", |(g, _)| g)
}

/// The custom resources of every shipped environment, as `kubectl kustomize
/// overlays/<env>` prints them, from an in-process render.
fn rendered_custom_resources() -> Vec<(String, Vec<Value>)> {
    let renderer = cp_core::render::Renderer::new(&support::templates()).unwrap();
    let mut envs: Vec<(String, cp_core::Environment)> = support::ENVS
        .iter()
        .map(|name| ((*name).to_owned(), support::load(name)))
        .collect();
    // Production outgrown one replica, and staging's cluster with a vault:// role
    // password (an ExternalSecret templating a basic-auth Secret).
    envs.push((
        "production (clustered)".into(),
        support::load_with("production", support::CLUSTERED),
    ));
    let mut staging = support::CLUSTERED.to_vec();
    staging.push("services.postgres.app_password=vault://secret/anumate/postgres#app");
    envs.push((
        "staging (clustered)".into(),
        support::load_with("staging", &staging),
    ));
    // TLS from an existing ClusterIssuer, and the ACME ClusterIssuer its Ingress
    // names managed by the environment.
    envs.push((
        "production (cluster issuer, managed ACME issuer)".into(),
        support::load_with(
            "production",
            &[
                "tls.issuer.cluster_issuer=corp-ca",
                "tls.acme_issuers.letsencrypt-prod.email=ops@anumate.io",
            ],
        ),
    ));
    envs.into_iter()
        .map(|(label, env)| {
            let wanted = kustomize::index(&renderer.kubernetes_objects(&env, false).unwrap());
            let objects =
                kustomize::expected_overlay_output(env.name.as_str(), &env.namespace, &wanted)
                    .into_iter()
                    .filter(|o| !BUILT_IN_GROUPS.contains(&group(o)))
                    .collect();
            (label, objects)
        })
        .collect()
}

fn label(obj: &Value) -> String {
    format!(
        "{} {}/{}",
        obj["apiVersion"].as_str().unwrap_or("?"),
        obj["kind"].as_str().unwrap_or("?"),
        obj["metadata"]["name"].as_str().unwrap_or("?")
    )
}

#[test]
fn rendered_custom_resources_validate_against_the_vendored_crds() {
    let crds = crds();
    let mut problems = Vec::new();
    let mut kinds = BTreeSet::new();
    for (env, objects) in rendered_custom_resources() {
        for obj in &objects {
            kinds.insert(obj["kind"].as_str().unwrap_or_default().to_owned());
            match crds.validate(obj) {
                Err(errors) => {
                    for e in errors {
                        problems.push(format!("{env}: {}: {e}", label(obj)));
                    }
                }
                // The overlay's namespace must agree with the CRD's scope: the API
                // server refuses a namespace on a cluster-scoped object.
                Ok(crd) if crd.namespaced != obj["metadata"]["namespace"].is_string() => {
                    problems.push(format!(
                        "{env}: {}: the CRD's scope is {}, the rendered object {} a namespace (see kustomize::cluster_scoped)",
                        label(obj),
                        if crd.namespaced { "Namespaced" } else { "Cluster" },
                        if crd.namespaced { "lacks" } else { "has" },
                    ));
                }
                Ok(_) => {}
            }
        }
        // An ExternalSecret whose store is not rendered creates nothing.
        for es in objects.iter().filter(|o| o["kind"] == "ExternalSecret") {
            let store = &es["spec"]["secretStoreRef"];
            let kind = store["kind"].as_str().unwrap_or("SecretStore");
            if !objects
                .iter()
                .any(|o| o["kind"] == kind && o["metadata"]["name"] == store["name"])
            {
                problems.push(format!(
                    "{env}: {}: references the {kind} {}, which is not rendered",
                    label(es),
                    store["name"]
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "rendered custom resources the vendored CRDs reject:\n{}",
        problems.join("\n")
    );
    // The render must actually have exercised the operators' CRDs.
    for kind in [
        "ExternalSecret",
        "SecretStore",
        "ServiceMonitor",
        "PrometheusRule",
        "Cluster",
        "PodMonitor",
        "Certificate",
        "Issuer",
        "ClusterIssuer",
    ] {
        assert!(
            kinds.contains(kind),
            "no {kind} rendered in any environment (rendered kinds: {kinds:?})"
        );
    }
}

#[test]
fn a_v1beta1_external_secret_is_refused_naming_the_version() {
    // What the templates rendered before External Secrets Operator v0.17 stopped
    // serving v1beta1.
    let es = json!({
        "apiVersion": "external-secrets.io/v1beta1",
        "kind": "ExternalSecret",
        "metadata": {"name": "app-vault", "namespace": "anumate-staging"},
        "spec": {
            "refreshInterval": "1h",
            "secretStoreRef": {"kind": "SecretStore", "name": "vault"},
            "target": {"name": "app-vault", "creationPolicy": "Owner"},
            "data": [{"secretKey": "A", "remoteRef": {"key": "anumate/a", "property": "a"}}]
        }
    });
    let errors = crds().validate(&es).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("version v1beta1 is not served")
            && errors[0].contains("external-secrets-v2.9.0")
            && errors[0].ends_with("it serves v1"),
        "{errors:?}"
    );
    // The same object at v1 passes, so the refusal is about the version alone.
    let mut v1 = es;
    v1["apiVersion"] = json!("external-secrets.io/v1");
    assert!(crds().validate(&v1).is_ok());
}

#[test]
fn a_clustered_postgres_is_a_cloudnativepg_cluster_with_managed_roles() {
    let (_, objects) = rendered_custom_resources()
        .into_iter()
        .find(|(l, _)| l == "staging (clustered)")
        .unwrap();
    let cluster = objects
        .iter()
        .find(|o| o["kind"] == "Cluster")
        .expect("a Cluster");
    assert_eq!(cluster["spec"]["instances"], 3);
    let roles: Vec<&str> = cluster["spec"]["managed"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "anumate_admin",
            "anumate_app",
            "anumate_readonly",
            "anumate_backup"
        ]
    );
    let backup = &cluster["spec"]["managed"]["roles"][3];
    assert_eq!(backup["bypassrls"], true);
    assert_eq!(backup["inRoles"][0], "pg_read_all_data");
    // The app's password from Vault: an ExternalSecret that templates a basic-auth
    // Secret with the role's username, and the Cluster reads that Secret.
    let es = objects
        .iter()
        .find(|o| {
            o["kind"] == "ExternalSecret"
                && o["metadata"]["name"] == "postgres-role-anumate-app-vault"
        })
        .expect("an ExternalSecret for the app role");
    assert_eq!(
        es["spec"]["target"]["template"]["type"],
        "kubernetes.io/basic-auth"
    );
    assert_eq!(
        es["spec"]["target"]["template"]["data"]["username"],
        "anumate_app"
    );
    assert_eq!(
        cluster["spec"]["managed"]["roles"][1]["passwordSecret"]["name"],
        "postgres-role-anumate-app-vault"
    );
}

#[test]
fn a_typo_in_a_rendered_service_monitor_is_an_unknown_field() {
    // The vendored schemas are strict where the operators' are: a misspelt field in a
    // real rendered object is reported, not silently pruned by the API server.
    let (_, objects) = rendered_custom_resources().remove(0);
    let mut sm = objects
        .into_iter()
        .find(|o| o["kind"] == "ServiceMonitor")
        .expect("dev renders ServiceMonitors");
    assert!(crds().validate(&sm).is_ok());
    sm["spec"]["endpoints"][0]["scrapeInterval"] = json!("15s");
    assert_eq!(
        crds().validate(&sm).unwrap_err(),
        vec!["unknown field \"spec.endpoints[0].scrapeInterval\""]
    );
}

fn load_errors(env: &str, sets: &[&str]) -> Vec<String> {
    let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
    match cp_core::load(&support::shipped(), env, &sets) {
        Ok(_) => Vec::new(),
        Err(d) => {
            d.0.iter()
                .map(|d| format!("{} | {}", d.path.clone().unwrap_or_default(), d.message))
                .collect()
        }
    }
}

#[test]
fn the_secret_store_settings_are_validated() {
    // The SecretStore reads one KV mount of the environment's own Vault: a reference
    // elsewhere, or no Vault on Kubernetes, would render a secret never created.
    assert_eq!(
        load_errors(
            "staging",
            &["apps.capsule-registry.secrets.DATABASE_URL=vault://kv/anumate/db#url"]
        ),
        vec![
            "apps.capsule-registry.secrets.DATABASE_URL | `vault://kv/anumate/db` is outside the KV mount `secret`"
        ]
    );
    let e = load_errors("production", &["services.vault.enabled=false"]);
    assert!(
        e.contains(&"apps.capsule-registry.secrets.OIDC_CLIENT_SECRET | a `vault://` reference, but services.vault is disabled".to_owned()),
        "{e:#?}"
    );
    assert_eq!(
        load_errors(
            "staging",
            &[
                "vault.kubernetes_auth.mount_path=/kubernetes",
                "vault.kubernetes_auth.role=external secrets"
            ]
        ),
        vec![
            "vault.kubernetes_auth.mount_path | `/kubernetes` is not an auth mount path",
            "vault.kubernetes_auth.role | `external secrets` is not a Vault role name",
        ]
    );
    // Both are rendered as set.
    let env = cp_core::load(
        &support::shipped(),
        "staging",
        &[
            "vault.kubernetes_auth.mount_path=k8s/staging".to_owned(),
            "vault.kubernetes_auth.role=eso".to_owned(),
        ],
    )
    .unwrap()
    .env;
    let renderer = cp_core::render::Renderer::new(&support::templates()).unwrap();
    let objects = renderer.kubernetes_objects(&env, false).unwrap();
    let store = objects
        .iter()
        .find(|o| o["kind"] == "SecretStore")
        .expect("staging renders its SecretStore");
    assert_eq!(
        store["spec"]["provider"]["vault"]["auth"]["kubernetes"],
        json!({"mountPath": "k8s/staging", "role": "eso", "serviceAccountRef": {"name": "external-secrets-vault"}})
    );
    assert!(crds().validate(store).is_ok());
}

/// The environment's objects, every kind, as `kubectl kustomize` prints them.
fn all_objects(env: &cp_core::Environment) -> Vec<Value> {
    let renderer = cp_core::render::Renderer::new(&support::templates()).unwrap();
    let wanted = kustomize::index(&renderer.kubernetes_objects(env, false).unwrap());
    kustomize::expected_overlay_output(env.name.as_str(), &env.namespace, &wanted)
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn with_tls_every_core_service_serves_a_cert_manager_certificate_from_a_rendered_issuer() {
    for (label, env) in [
        ("staging", support::load("staging")),
        (
            "production (clustered)",
            support::load_with("production", support::CLUSTERED),
        ),
    ] {
        assert!(env.tls.required(), "{label}: TLS is required outside dev");
        let objects = all_objects(&env);
        let find = |kind: &str, name: &str| {
            objects
                .iter()
                .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
                .unwrap_or_else(|| panic!("{label}: no {kind}/{name}"))
        };
        let ns = &env.namespace;
        for svc in ["postgres", "redis", "nats", "vault"] {
            let cert = find("Certificate", svc);
            let spec = &cert["spec"];
            assert_eq!(spec["secretName"], format!("{svc}-tls"), "{label}");
            assert_eq!(spec["privateKey"]["rotationPolicy"], "Always", "{label}");
            // 30 days, renewed with a third left (renew_at_percent 67).
            assert_eq!(spec["duration"], "2592000s", "{label}");
            assert_eq!(spec["renewBeforePercentage"], 33, "{label}");
            let dns = strings(&spec["dnsNames"]);
            let host = if svc == "postgres"
                && env.services.postgres.as_ref().unwrap().common.replicas > 1
            {
                "postgres-rw"
            } else {
                svc
            };
            for name in [
                host.to_owned(),
                format!("{host}.{ns}.svc"),
                format!("{host}.{ns}.svc.cluster.local"),
            ] {
                assert!(
                    dns.contains(&name.as_str()),
                    "{label}: {svc}: {name} not in {dns:?}"
                );
            }
            // Every StatefulSet pod by its headless name (routes and raft joins).
            if let Some(sts) = objects
                .iter()
                .find(|o| o["kind"] == "StatefulSet" && o["metadata"]["name"] == svc)
            {
                let replicas = sts["spec"]["replicas"].as_u64().unwrap();
                for i in 0..replicas {
                    let pod = format!("{svc}-{i}.{svc}.{ns}.svc");
                    assert!(dns.contains(&pod.as_str()), "{label}: {pod} not in {dns:?}");
                }
                // The Secret is mounted where the server configuration reads it.
                let volumes = sts["spec"]["template"]["spec"]["volumes"]
                    .as_array()
                    .unwrap();
                assert!(
                    volumes
                        .iter()
                        .any(|v| v["secret"]["secretName"] == format!("{svc}-tls")),
                    "{label}: {svc} does not mount its certificate"
                );
            }
            let issuer = &spec["issuerRef"];
            assert_eq!(issuer["kind"], "Issuer", "{label}");
            find("Issuer", issuer["name"].as_str().unwrap());
        }
        // OpenBao's own listener comes from the bootstrap CA, the others from OpenBao's
        // PKI through the Vault issuer, which trusts OpenBao's listener by that CA.
        assert_eq!(
            find("Certificate", "vault")["spec"]["issuerRef"]["name"],
            "controlplane-ca"
        );
        assert_eq!(
            find("Certificate", "redis")["spec"]["issuerRef"]["name"],
            "openbao-pki"
        );
        let vault = &find("Issuer", "openbao-pki")["spec"]["vault"];
        assert_eq!(vault["server"], format!("https://vault.{ns}.svc:8200"));
        assert_eq!(vault["caBundleSecretRef"]["name"], "vault-tls");
        assert_eq!(
            vault["auth"]["kubernetes"]["serviceAccountRef"]["name"],
            "cert-manager-vault"
        );
        // The servers' configurations take TLS the way the process platform's do.
        let conf = |cm: &str, key: &str| {
            find("ConfigMap", cm)["data"][key]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let redis = conf("redis-config", "redis.conf");
        assert!(
            redis.contains("port 0\n") && redis.contains("tls-port 6379\n"),
            "{label}: {redis}"
        );
        assert!(
            redis.contains("tls-cert-file /etc/controlplane/tls/server.crt"),
            "{label}"
        );
        let nats = conf("nats-config", "nats.conf");
        assert!(
            nats.contains("https: ")
                && nats.contains("cert_file: \"/etc/controlplane/tls/server.crt\""),
            "{label}: {nats}"
        );
        assert!(!nats.contains("allow_non_tls"), "{label}");
        let hcl = conf("vault-config", "config.hcl");
        assert!(
            hcl.contains("tls_min_version = \"tls13\"") && !hcl.contains("tls_disable"),
            "{label}: {hcl}"
        );
        match objects.iter().find(|o| o["kind"] == "Cluster") {
            Some(cluster) => {
                let spec = &cluster["spec"];
                assert_eq!(spec["certificates"]["serverTLSSecret"], "postgres-tls");
                assert_eq!(spec["certificates"]["serverCASecret"], "postgres-tls");
                assert_eq!(
                    spec["postgresql"]["parameters"]["ssl_min_protocol_version"],
                    "TLSv1.3"
                );
                assert_eq!(
                    strings(&spec["postgresql"]["pg_hba"]),
                    ["hostnossl all all all reject"]
                );
            }
            None => {
                let pg = conf("postgres-config", "postgresql.conf");
                assert!(
                    pg.contains("ssl = on") && pg.contains("ssl_min_protocol_version = 'TLSv1.3'"),
                    "{label}"
                );
                let hba = conf("postgres-config", "pg_hba.conf");
                assert!(
                    hba.contains("hostssl") && !hba.lines().any(|l| l.starts_with("host ")),
                    "{label}: {hba}"
                );
            }
        }
        // Apps reach the services over TLS and verify them with the CA.
        let app = &find("ConfigMap", "capsule-registry-config")["data"];
        assert!(
            app["POSTGRES_URL"]
                .as_str()
                .unwrap()
                .contains("sslmode=verify-full"),
            "{label}"
        );
        // The app uses Redis and Vault (`apps.<app>.uses`): its own REDIS_URL (with
        // its user) and VAULT_ADDR come from there, not from this credential-less set.
        assert!(app["REDIS_URL"].is_null(), "{label}");
        assert!(app["VAULT_ADDR"].is_null(), "{label}");
        assert_eq!(app["NATS_URL"], "tls://nats:4222");
        // PGSSLROOTCERT comes with the app's own DATABASE_URL (`uses.postgres`).
        assert!(app["PGSSLROOTCERT"].is_null(), "{label}");
    }
}

#[test]
fn an_existing_cluster_issuer_signs_everything_and_managed_acme_issuers_are_rendered() {
    let env = support::load_with(
        "production",
        &[
            "tls.issuer.cluster_issuer=corp-ca",
            "tls.acme_issuers.letsencrypt-prod.email=ops@anumate.io",
        ],
    );
    let objects = all_objects(&env);
    assert!(
        !objects.iter().any(|o| o["kind"] == "Issuer"),
        "no Issuer of our own with a ClusterIssuer named"
    );
    for c in objects.iter().filter(|o| o["kind"] == "Certificate") {
        assert_eq!(c["spec"]["issuerRef"]["kind"], "ClusterIssuer");
        assert_eq!(c["spec"]["issuerRef"]["name"], "corp-ca");
    }
    let acme = objects
        .iter()
        .find(|o| o["kind"] == "ClusterIssuer" && o["metadata"]["name"] == "letsencrypt-prod")
        .expect("the ClusterIssuer the Ingress names");
    assert!(acme["metadata"]["namespace"].is_null(), "cluster-scoped");
    assert_eq!(acme["spec"]["acme"]["email"], "ops@anumate.io");
    assert_eq!(
        acme["spec"]["acme"]["server"],
        "https://acme-v02.api.letsencrypt.org/directory"
    );
    let ingress = objects
        .iter()
        .find(|o| o["kind"] == "Ingress")
        .expect("an Ingress");
    assert_eq!(
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
        "letsencrypt-prod"
    );
}
