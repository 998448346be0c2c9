//! `controlplane backup` on Kubernetes: a Job is created from the rendered
//! `controlplane-backup` CronJob (its template, owned by it), its pod's log is followed,
//! and the Job's outcome is the result, on the in-process fake API server.

mod fake;

use std::time::Duration;

use cp_driver_kube::KubeDriver;
use cp_driver_kube::job::{JobError, run_from_cronjob};
use cp_runtime::project::Project;
use fake::{Fake, Rollout};
use serde_json::{Value, json};

const NS: &str = "anumate-staging";

fn setup() -> (Fake, kube::Client, Value) {
    let (fake, client) = Fake::new(Rollout::Never);
    let project = Project::new(cp_testkit::environments_dir());
    let env = project.load("staging", &[]).expect("staging loads").env;
    let driver = KubeDriver::new(client.clone(), &project.templates().unwrap()).unwrap();
    let cronjob = driver
        .objects(&env)
        .unwrap()
        .into_iter()
        .find(|o| o["kind"] == "CronJob")
        .expect("the render has the backup CronJob");
    fake.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    let mut cj = cronjob.clone();
    cj["metadata"]["uid"] = json!("cj-uid-1");
    fake.insert(cj);
    (fake, client, cronjob)
}

async fn the_job(fake: &Fake) -> Value {
    for _ in 0..500 {
        if let Some((_, j)) = fake.objects().into_iter().find(|(k, _)| k.1 == "Job") {
            return j;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no Job was created");
}

#[tokio::test]
async fn a_job_from_the_cronjob_is_followed_to_its_end() {
    let (fake, client, cronjob) = setup();
    assert_eq!(cronjob["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(cronjob["spec"]["schedule"], "0 2 * * *");
    let pod_spec = &cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod_spec["serviceAccountName"], "controlplane-backup");
    // Secrets by reference only.
    for e in pod_spec["containers"][0]["env"].as_array().unwrap() {
        assert!(
            e.get("value").is_none() || e["name"] == "CONTROLPLANE_ENV",
            "{e}"
        );
    }
    let run = tokio::spawn({
        let client = client.clone();
        async move {
            let mut out = Vec::new();
            let r = run_from_cronjob(
                &client,
                NS,
                "controlplane-backup",
                &[],
                Duration::from_secs(30),
                Duration::from_millis(10),
                &mut out,
            )
            .await;
            (r, String::from_utf8(out).unwrap())
        }
    });
    let job = the_job(&fake).await;
    let name = job["metadata"]["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("controlplane-backup-manual-"), "{name}");
    assert_eq!(
        job["spec"], cronjob["spec"]["jobTemplate"]["spec"],
        "the CronJob's own template"
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], "cj-uid-1");
    assert!(
        job["metadata"]["labels"]
            .get("controlplane.dev/environment")
            .is_none(),
        "up must not prune it"
    );
    fake.add_job_pod(
        NS,
        &format!("{name}-x7k2p"),
        &name,
        "backup started\n20261201T020000000Z-abcdef\n",
    );
    fake.set_status("Job", NS, &name, json!({"succeeded": 1}));
    let (r, out) = run.await.unwrap();
    let outcome = r.expect("followed");
    assert!(outcome.succeeded);
    assert!(out.contains("20261201T020000000Z-abcdef"), "{out}");

    // A failed run is reported as such.
    let (fake, client, _) = setup();
    let run = tokio::spawn(async move {
        let mut out = Vec::new();
        run_from_cronjob(
            &client,
            NS,
            "controlplane-backup",
            &[],
            Duration::from_secs(30),
            Duration::from_millis(10),
            &mut out,
        )
        .await
    });
    let job = the_job(&fake).await;
    let name = job["metadata"]["name"].as_str().unwrap().to_owned();
    fake.add_job_pod(
        NS,
        &format!("{name}-a"),
        &name,
        "error: postgres: connection refused\n",
    );
    fake.set_status("Job", NS, &name, json!({"failed": 1}));
    assert!(!run.await.unwrap().unwrap().succeeded);
}

#[tokio::test]
async fn without_the_cronjob_it_says_to_run_up() {
    let (_fake, client) = Fake::new(Rollout::Never);
    let mut out = Vec::new();
    let e = run_from_cronjob(
        &client,
        NS,
        "controlplane-backup",
        &[],
        Duration::from_secs(5),
        Duration::from_millis(10),
        &mut out,
    )
    .await
    .unwrap_err();
    assert!(matches!(e, JobError::NoCronJob { .. }), "{e}");
    assert!(e.to_string().contains("controlplane up"), "{e}");
}
