//! A backup of a Kubernetes environment runs as a Job made from its rendered
//! `controlplane-backup` CronJob whichever front end asks: `controlplane backup` and
//! `POST /api/v1/environments/{env}/backups` on `controlplane serve` both start a
//! `cp_app::jobs` backup, which decides where it runs. Both processes talk to the
//! in-process fake API server of `cp-driver-kube`'s tests, served on loopback, through
//! a kubeconfig.

// Tests run the binary they judge by path on purpose.
#![allow(clippy::disallowed_methods)]

#[path = "../../driver-kube/tests/fake/mod.rs"]
mod fake;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cp_driver_kube::KubeDriver;
use cp_runtime::project::Project;
use serde_json::{Value, json};

const NS: &str = "anumate-staging";

/// The fake with the namespace and the staging render's backup CronJob.
fn cluster() -> fake::Fake {
    let (fake, client) = fake::Fake::new(fake::Rollout::Never);
    let project = Project::new(cp_testkit::environments_dir());
    let env = project.load("staging", &[]).expect("staging loads").env;
    let driver = KubeDriver::new(client, &project.templates().unwrap()).unwrap();
    let mut cronjob = driver
        .objects(&env)
        .unwrap()
        .into_iter()
        .find(|o| o["kind"] == "CronJob")
        .expect("the render has the backup CronJob");
    cronjob["metadata"]["uid"] = json!("cj-uid-1");
    fake.insert(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}));
    fake.insert(cronjob);
    fake
}

/// Serves `fake` over HTTP on a free loopback port; its URL.
async fn serve(fake: fake::Fake) -> String {
    let port = cp_testkit::free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let fake = fake.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let res = fake
                .answer(http::Request::from_parts(
                    parts,
                    kube::client::Body::from(bytes),
                ))
                .await;
            let (parts, body) = res.into_parts();
            axum::response::Response::from_parts(parts, axum::body::Body::new(body))
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://127.0.0.1:{port}")
}

fn kubeconfig(dir: &Path, url: &str) -> std::path::PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\n\
             clusters: [{{name: fake, cluster: {{server: \"{url}\"}}}}]\n\
             users: [{{name: fake, user: {{token: fake}}}}]\n\
             contexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: default}}}}]\n\
             current-context: fake\n"
        ),
    )
    .unwrap();
    path
}

/// `controlplane --env staging ARGS` against the fake cluster.
fn cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_controlplane"));
    c.current_dir(cp_testkit::repo_root())
        .env("HOME", dir)
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env_remove("CONTROLPLANE_ENV")
        .env_remove("CONTROLPLANE_ENVIRONMENTS")
        .arg("--state-dir")
        .arg(dir.join("staging"))
        .args(["--env", "staging"])
        .args(args);
    c
}

/// The first Job not among `seen`, once the front end created it.
async fn new_job(fake: &fake::Fake, seen: &[String]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(name) = fake
            .objects()
            .into_iter()
            .filter(|(k, _)| k.1 == "Job")
            .map(|(_, j)| j["metadata"]["name"].as_str().unwrap().to_owned())
            .find(|n| !seen.contains(n))
        {
            return name;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no new Job was created from the CronJob");
}

/// The Job's pod logs `line` and the Job succeeds.
fn complete(fake: &fake::Fake, job: &str, line: &str) {
    fake.add_job_pod(NS, &format!("{job}-x7k2p"), job, &format!("{line}\n"));
    fake.set_status("Job", NS, job, json!({"succeeded": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_backup_is_a_job_from_the_cronjob_from_the_cli_and_the_api() {
    let fake = cluster();
    let url = serve(fake.clone()).await;
    let tmp = tempfile::tempdir().unwrap();
    kubeconfig(tmp.path(), &url);

    // The CLI.
    let mut c = cmd(tmp.path(), &["--output", "json", "backup"]);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("run controlplane backup");
    let (stdout, stderr) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let mut cli = cp_testkit::Down::process(child);
    let out = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap());
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let first = new_job(&fake, &[]).await;
    assert!(first.starts_with("controlplane-backup-manual-"), "{first}");
    complete(&fake, &first, "20261201T020000000Z-fromcli");
    let status = cli.wait(Duration::from_secs(60)).expect("backup ended");
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(status.success(), "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["job"], first.as_str(), "{v}");
    assert_eq!(v["succeeded"], true, "{v}");
    // Its log came as progress events, the same view the server streams.
    assert!(
        err.lines().any(|l| {
            serde_json::from_str::<Value>(l)
                .is_ok_and(|e| e["event"] == "log" && e["line"] == "20261201T020000000Z-fromcli")
        }),
        "{err}"
    );

    // The API.
    let server_dir = tmp.path().join("server");
    let o = cmd(
        tmp.path(),
        &[
            "token",
            "create",
            "--role",
            "editor",
            "--name",
            "ops",
            "--server-dir",
            server_dir.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let token = String::from_utf8(o.stdout).unwrap().trim().to_owned();
    let mut c = cmd(
        tmp.path(),
        &[
            "serve",
            "--only",
            "staging",
            "--listen",
            "127.0.0.1:0",
            "--server-dir",
            server_dir.to_str().unwrap(),
        ],
    );
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("start controlplane serve");
    let stderr = child.stderr.take().unwrap();
    let _serve = cp_testkit::Down::process(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("\"listening\"") {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("serve says where it listens");
    let addr = serde_json::from_str::<Value>(&line).unwrap()["fields"]["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("http://{addr}/api/v1/environments/staging/backups"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    let job_id = r.json::<Value>().await.unwrap()["job"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = new_job(&fake, std::slice::from_ref(&first)).await;
    complete(&fake, &second, "20261201T030000000Z-fromapi");
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        let v: Value = http
            .get(format!("http://{addr}/api/v1/jobs/{job_id}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["state"] != "running" || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["kind"], "backup", "{job}");
    assert_eq!(job["trigger"], "api", "{job}");
    assert_eq!(job["runs_on"]["where"], "kubernetes-job", "{job}");
    assert_eq!(job["runs_on"]["cronjob"], "controlplane-backup", "{job}");
    assert_eq!(job["runs_on"]["job"], second.as_str(), "{job}");
    assert_eq!(job["result"]["job"], second.as_str(), "{job}");
    assert!(
        job["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "log" && e["line"] == "20261201T030000000Z-fromapi"),
        "{job}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_restore_to_a_time_creates_a_recovering_cluster_beside_the_running_one_and_base_backups_stay_the_operators()
 {
    let fake = cluster();
    let url = serve(fake.clone()).await;
    let tmp = tempfile::tempdir().unwrap();
    kubeconfig(tmp.path(), &url);
    let restore = |extra: &[&str]| {
        let mut args = vec![
            "--set",
            "backup.pitr.enabled=true",
            "restore",
            "--to-time",
            "2026-12-07T17:30:05Z",
        ];
        args.extend_from_slice(extra);
        let mut c = cmd(tmp.path(), &args);
        c.stdin(Stdio::null());
        c.output().expect("run controlplane restore")
    };
    let clusters = |fake: &fake::Fake| -> Vec<Value> {
        fake.objects()
            .into_iter()
            .filter(|(k, _)| k.1 == "Cluster")
            .map(|(_, o)| o)
            .collect()
    };

    // Unconfirmed: refused, saying what it would do, and nothing created.
    let o = restore(&[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("postgres-pitr-20261207t173005"), "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert!(clusters(&fake).is_empty());

    // Confirmed: the recovery Cluster is applied, recovering to the time.
    let o = restore(&["--yes"]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{:?}: {out}{err}", o.status);
    assert!(err.contains("postgres-pitr-20261207t173005-rw"), "{err}");
    let applied = clusters(&fake);
    assert_eq!(applied.len(), 1, "{applied:#?}");
    let c = &applied[0];
    assert_eq!(c["metadata"]["name"], "postgres-pitr-20261207t173005");
    assert_eq!(c["metadata"]["namespace"], NS);
    assert_eq!(
        c["spec"]["bootstrap"]["recovery"]["recoveryTarget"]["targetTime"],
        "2026-12-07 17:30:05.000000+00"
    );
    assert_eq!(
        c["spec"]["externalClusters"][0]["plugin"]["parameters"]["serverName"],
        "staging"
    );

    // Only a time is a target on Kubernetes, said before anything is asked.
    let mut c = cmd(
        tmp.path(),
        &[
            "--set",
            "backup.pitr.enabled=true",
            "restore",
            "--to-latest",
            "--yes",
        ],
    );
    let o = c.stdin(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("takes --to-time"), "{err}");

    // Base backups there are the operator's ScheduledBackup's, never ours in its archive.
    let mut c = cmd(
        tmp.path(),
        &["--set", "backup.pitr.enabled=true", "backup", "--base"],
    );
    let o = c.stdin(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("ScheduledBackup `postgres-base`"), "{err}");
    assert!(
        !fake.objects().into_iter().any(|(k, _)| k.1 == "Job"),
        "no Job was started"
    );
}
