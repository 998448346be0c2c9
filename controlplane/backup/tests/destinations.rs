//! A set kept at every destination (`backup` with no `--destination`, or `all`):
//! taken once, written to the first destination that accepts it, copied to the
//! others. Here four destinations: an S3 bucket that does not exist on `moto_server`
//! (sorted first, so the set is tried there and fails), two local directories, and an
//! S3 bucket that exists. The failure is reported for its destination alone; every
//! other destination holds the same complete set, which verifies.

use chrono::Utc;
use cp_backup::catalog::SetState;
use cp_backup::run;
use cp_core::names::CoreKind;
use cp_testkit::TestEnv;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_goes_to_every_destination_and_one_failure_hides_nothing() {
    let moto = cp_testkit::moto(&["kept"]);
    let endpoint = moto.endpoint.clone();
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    let s3 = |bucket: &str| {
        format!(
            "{{type: s3, bucket: {bucket}, prefix: dev/, region: us-east-1, endpoint: \"{endpoint}\", access_key_id: testing, secret_access_key: testing}}"
        )
    };
    let sets = [
        "backup.enabled=true".to_owned(),
        "backup.services=[redis, nats]".to_owned(),
        format!("backup.destinations.local.path={}", one.path().display()),
        format!(
            "backup.destinations.second={{type: local, path: \"{}\"}}",
            two.path().display()
        ),
        format!("backup.destinations.a-missing-bucket={}", s3("nowhere")),
        format!("backup.destinations.s3={}", s3("kept")),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let t = TestEnv::only(&[CoreKind::Redis, CoreKind::Nats], &sets);
    t.up().await.expect("the environment comes up");
    let a = t.access().await;
    cp_seed::seed_all(&a, &t.env).await.expect("seed");

    let report = {
        let _lock = run::lock(&t.state, "backup").unwrap();
        let cx = cp_backup::run::Context {
            env: &t.env,
            access: &a,
            state: &t.state,
            secrets: &t.secrets,
            project_root: t.root.as_path(),
        };
        run::backup(&cx, &[], None, Utc::now(), &run::Quiet)
            .await
            .expect("the set is kept somewhere, so the run succeeds")
    };
    assert_eq!(report.state, "complete", "{report:#?}");
    let line = |name: &str| {
        report
            .destinations
            .iter()
            .find(|d| d.destination == name)
            .unwrap_or_else(|| panic!("no line for {name}: {report:#?}"))
    };
    let bad = line("a-missing-bucket");
    assert!(!bad.ok && bad.how == "failed", "{report:#?}");
    assert!(
        bad.error
            .as_deref()
            .is_some_and(|e| e.contains("a-missing-bucket")),
        "the failure names its destination: {report:#?}"
    );
    assert_eq!(line("local").how, "written", "{report:#?}");
    assert_eq!(line("second").how, "copied from local", "{report:#?}");
    assert_eq!(line("s3").how, "copied from local", "{report:#?}");
    assert_eq!(report.destinations.len(), 4);
    assert!(!report.ok(), "a destination failed, so the run is not ok");

    // Every destination but the broken one lists the same complete set, which verifies.
    let b = t.env.backup.as_ref().unwrap();
    for name in ["local", "second", "s3"] {
        let store = cp_backup::dest::Store::open(&b.destinations, Some(name), &t.root, &t.secrets)
            .await
            .unwrap();
        let listed = run::list(&store, None).await.unwrap();
        assert_eq!(listed.len(), 1, "{name}: {listed:#?}");
        assert_eq!(listed[0].id, report.id, "{name}");
        assert_eq!(listed[0].state, SetState::Complete, "{name}");
        let (_, v) = run::verify(&store, &report.id, None, None).await.unwrap();
        assert!(v.problems.is_empty(), "{name}: {:?}", v.problems);
    }

    // One destination by name: only it.
    let only = {
        let _lock = run::lock(&t.state, "backup").unwrap();
        let cx = cp_backup::run::Context {
            env: &t.env,
            access: &a,
            state: &t.state,
            secrets: &t.secrets,
            project_root: t.root.as_path(),
        };
        run::backup(&cx, &[], Some("second"), Utc::now(), &run::Quiet)
            .await
            .unwrap()
    };
    assert_eq!(only.destinations.len(), 1);
    assert!(only.ok(), "{only:#?}");
    let unknown = run::selected_destinations(b, Some("nope")).unwrap_err();
    assert!(unknown.to_string().contains("(or `all`)"), "{unknown}");
}
