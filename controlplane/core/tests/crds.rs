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
    // Point-in-time recovery: a single instance (a one-instance Cluster) archiving to
    // S3, and production archiving to GCS instead.
    envs.push((
        "staging (one instance, PITR to S3)".into(),
        support::load_with("staging", PITR_STAGING),
    ));
    envs.push((
        "production (PITR to GCS)".into(),
        support::load_with("production", &["backup.pitr.destination=gcs"]),
    ));
    let mut out: Vec<(String, Vec<Value>)> = envs
        .into_iter()
        .map(|(label, env)| {
            let wanted = kustomize::index(&renderer.kubernetes_objects(&env, false).unwrap());
            let objects =
                kustomize::expected_overlay_output(env.name.as_str(), &env.namespace, &wanted)
                    .into_iter()
                    .filter(|o| !BUILT_IN_GROUPS.contains(&group(o)))
                    .collect();
            (label, objects)
        })
        .collect();
    // The Cluster a restore to a time creates.
    out.push((
        "production (restore to a time)".into(),
        vec![recovery_cluster(&support::load("production"))],
    ));
    out
}

/// Staging with one PostgreSQL instance and point-in-time recovery on.
const PITR_STAGING: &[&str] = &["backup.pitr.enabled=true"];

/// The time the restores of these tests go back to.
fn restore_target() -> chrono::DateTime<chrono::Utc> {
    "2026-12-07T17:30:05.25Z".parse().unwrap()
}

fn recovery_cluster(env: &cp_core::Environment) -> Value {
    cp_core::render::Renderer::new(&support::templates())
        .unwrap()
        .pitr_recovery_cluster(env, restore_target())
        .unwrap()
        .expect("PITR is on")
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
        "ObjectStore",
        "ScheduledBackup",
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
            let host = if svc == "postgres" && cp_core::topology::postgres_cnpg(&env) {
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

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name}"))
}

/// The Secret a `{name, key}` selector names is rendered (filled by `up`, or synced
/// by an ExternalSecret) and has that key.
fn assert_secret_has(objects: &[Value], selector: &Value) {
    let name = selector["name"].as_str().expect("a Secret name");
    let key = selector["key"].as_str().expect("a key");
    let filled = objects.iter().any(|o| {
        o["kind"] == "Secret" && o["metadata"]["name"] == name && o["stringData"].get(key).is_some()
    });
    let synced = objects.iter().any(|o| {
        o["kind"] == "ExternalSecret"
            && o["spec"]["target"]["name"] == name
            && o["spec"]["data"]
                .as_array()
                .is_some_and(|d| d.iter().any(|e| e["secretKey"] == key))
    });
    assert!(
        filled || synced,
        "no Secret {name} with key {key} is rendered"
    );
}

#[test]
fn pitr_on_kubernetes_archives_wal_through_the_barman_cloud_plugin_to_an_object_store() {
    let env = support::load("production");
    let objects = all_objects(&env);
    let cluster = find(&objects, "Cluster", "postgres");
    assert_eq!(
        cluster["spec"]["plugins"],
        json!([{"name": "barman-cloud.cloudnative-pg.io", "isWALArchiver": true,
                "parameters": {"barmanObjectName": "postgres-pitr", "serverName": "production"}}])
    );
    // The RPO bound, as on the other platforms.
    assert_eq!(
        cluster["spec"]["postgresql"]["parameters"]["archive_timeout"],
        "60s"
    );
    let store = find(&objects, "ObjectStore", "postgres-pitr");
    let c = &store["spec"]["configuration"];
    // Barman Cloud's layout under the destination, the environment as the server name.
    assert_eq!(c["destinationPath"], "s3://anumate-backups/production/pitr");
    assert_eq!(store["spec"]["retentionPolicy"], "7d");
    // Server-side encryption of WAL and base backups.
    assert_eq!(c["wal"]["encryption"], "AES256");
    assert_eq!(c["data"]["encryption"], "AES256");
    assert_eq!(
        store["spec"]["instanceSidecarConfiguration"]["env"],
        json!([{"name": "AWS_DEFAULT_REGION", "value": "eu-west-1"}])
    );
    // Credentials by reference only: each selector names a rendered Secret's key.
    for k in ["accessKeyId", "secretAccessKey"] {
        assert_secret_has(&objects, &c["s3Credentials"][k]);
    }
    let text = serde_json::to_string(store).unwrap();
    assert!(!text.contains("ANUMATE_BACKUP_S3"), "{text}");
    let sb = find(&objects, "ScheduledBackup", "postgres-base");
    // `0 3 * * *` with CloudNativePG's seconds field first.
    assert_eq!(sb["spec"]["schedule"], "0 0 3 * * *");
    assert_eq!(sb["spec"]["cluster"]["name"], "postgres");
    assert_eq!(sb["spec"]["method"], "plugin");
    assert_eq!(
        sb["spec"]["pluginConfiguration"]["name"],
        "barman-cloud.cloudnative-pg.io"
    );

    // GCS: the service account key by reference, no S3 encryption setting (GCS
    // encrypts every object at rest itself).
    let env = support::load_with("production", &["backup.pitr.destination=gcs"]);
    let objects = all_objects(&env);
    let c = &find(&objects, "ObjectStore", "postgres-pitr")["spec"]["configuration"];
    assert_eq!(c["destinationPath"], "gs://anumate-backups/production/pitr");
    assert_secret_has(&objects, &c["googleCredentials"]["applicationCredentials"]);
    assert!(c["wal"].get("encryption").is_none(), "{c}");
}

#[test]
fn a_single_postgres_with_pitr_on_kubernetes_is_a_one_instance_cluster() {
    // Without PITR, one instance is a StatefulSet.
    let plain = all_objects(&support::load("staging"));
    assert!(
        plain
            .iter()
            .any(|o| o["kind"] == "StatefulSet" && o["metadata"]["name"] == "postgres")
    );
    assert!(!plain.iter().any(|o| o["kind"] == "Cluster"));
    let objects = all_objects(&support::load_with("staging", PITR_STAGING));
    let cluster = find(&objects, "Cluster", "postgres");
    assert_eq!(cluster["spec"]["instances"], 1);
    assert_eq!(cluster["spec"]["plugins"][0]["isWALArchiver"], true);
    // One instance has no standby to wait for.
    assert!(cluster["spec"]["postgresql"].get("synchronous").is_none());
    assert!(
        !objects
            .iter()
            .any(|o| o["kind"] == "StatefulSet" && o["metadata"]["name"] == "postgres"),
        "the Cluster replaces the StatefulSet"
    );
    find(&objects, "ObjectStore", "postgres-pitr");
    find(&objects, "ScheduledBackup", "postgres-base");
}

#[test]
fn a_restore_to_a_time_renders_a_new_cluster_recovering_from_the_archive() {
    let env = support::load("production");
    let c = recovery_cluster(&env);
    assert_eq!(c["kind"], "Cluster");
    // A new Cluster beside the running one, named after the target.
    assert_eq!(c["metadata"]["name"], "postgres-pitr-20261207t173005");
    assert_eq!(c["metadata"]["namespace"], "anumate-production");
    let spec = &c["spec"];
    assert!(spec["bootstrap"].get("initdb").is_none(), "{spec}");
    let r = &spec["bootstrap"]["recovery"];
    assert_eq!(r["source"], "origin");
    assert_eq!(
        r["recoveryTarget"],
        json!({"targetTime": "2026-12-07 17:30:05.250000+00"})
    );
    // From the environment's archive...
    assert_eq!(
        spec["externalClusters"],
        json!([{"name": "origin", "plugin": {"name": "barman-cloud.cloudnative-pg.io",
                "parameters": {"barmanObjectName": "postgres-pitr", "serverName": "production"}}}])
    );
    // ...and archiving under a name of its own, never over the history it came from.
    assert_eq!(
        spec["plugins"][0]["parameters"]["serverName"],
        "production-postgres-pitr-20261207t173005"
    );
    assert_eq!(spec["instances"], 3);
    // Without PITR there is nothing to recover from.
    let renderer = cp_core::render::Renderer::new(&support::templates()).unwrap();
    assert!(
        renderer
            .pitr_recovery_cluster(&support::load("staging"), restore_target())
            .unwrap()
            .is_none()
    );
}

#[test]
fn pitr_on_kubernetes_to_a_local_or_azure_destination_is_refused_saying_why() {
    let e = load_errors(
        "staging",
        &[
            "backup.pitr.enabled=true",
            "backup.destinations.here.type=local",
            "backup.destinations.here.path=/var/backups",
            "backup.pitr.destination=here",
        ],
    );
    assert_eq!(
        e,
        vec![
            "backup.pitr.destination | point-in-time recovery on Kubernetes to `here`, a local directory: on Kubernetes the WAL archiver is CloudNativePG's Barman Cloud plugin, which writes to an object store only"
        ]
    );
    let e = load_errors(
        "staging",
        &[
            "backup.pitr.enabled=true",
            "backup.destinations.blob.type=azure",
            "backup.destinations.blob.account=anumate",
            "backup.destinations.blob.bucket=backups",
            "backup.pitr.destination=blob",
        ],
    );
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].contains("an Azure destination"), "{e:#?}");
}
