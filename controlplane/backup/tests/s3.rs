//! The round trip through an S3 destination, encrypted: a real S3 protocol server on
//! loopback (`moto_server` from PyPI `moto[server]`, which `cargo xtask test`
//! installs), age recipients from `backup.encrypt_to`, the identity from
//! `backup.identity`. A fresh machine (another state directory) lists the set from
//! the bucket alone.

mod support;

use chrono::Utc;
use cp_backup::catalog::SetState;
use cp_backup::run;
use cp_backup::set::SetReader;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encrypted_round_trip_through_s3() {
    let s3 = cp_testkit::moto(&["anumate-backups"]);
    let identity = age::x25519::Identity::generate();
    let dest = tempfile::tempdir().unwrap();
    let offsite = format!(
        "backup.destinations.offsite={{type: s3, bucket: anumate-backups, prefix: dev/, region: us-east-1, endpoint: \"{}\", access_key_id: testing, secret_access_key: testing}}",
        s3.endpoint
    );
    let recipients = format!("backup.encrypt_to=[{}]", identity.to_public());
    use age::secrecy::ExposeSecret;
    let secret = format!("backup.identity={}", identity.to_string().expose_secret());
    let extra = [offsite.as_str(), recipients.as_str(), secret.as_str()];
    let a = support::env(dest.path(), &extra);
    let aa = support::up_and_seed(&a).await;
    let seeded = support::data(&a, &aa).await;
    let report = {
        let _lock = run::lock(&a.state, "backup").unwrap();
        run::backup(
            &support::cx(&a, &aa),
            &[],
            Some("offsite"),
            Utc::now(),
            &run::Quiet,
        )
        .await
        .expect("backup to S3")
    };
    assert_eq!(report.state, "complete", "{report:#?}");
    // Nothing went to the local directory.
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);

    // Another machine: a fresh environment with the same destination sees the set.
    let b = support::env(dest.path(), &extra);
    let bb = b.env.backup.as_ref().unwrap();
    let store =
        cp_backup::dest::Store::open(&bb.destinations, Some("offsite"), &b.root, &b.secrets)
            .await
            .unwrap();
    let listed = run::list(&store, Some(&b.state)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, SetState::Complete);
    assert!(
        b.state.join("backup/catalog-offsite.json").exists(),
        "the local cache is rebuilt"
    );
    let m = run::manifest_of(&store, &report.id).await.unwrap();
    let enc = m.encryption.as_ref().expect("encrypted");
    assert_eq!(
        enc.recipients,
        [cp_backup::manifest::recipient_fingerprint(
            &identity.to_public().to_string()
        )]
    );
    assert!(
        m.artifacts()
            .all(|(_, a)| a.name.as_str().ends_with(".zst.age"))
    );
    let key = run::identity(bb, &b.secrets)
        .await
        .unwrap()
        .expect("backup.identity");
    let (_, verified) = run::verify(&store, &report.id, Some(&key), None)
        .await
        .unwrap();
    assert!(verified.problems.is_empty(), "{:?}", verified.problems);

    let ba = support::up_and_seed(&b).await;
    let reader = SetReader {
        store,
        id: report.id.clone(),
        identity: Some(key),
    };
    let all = support::kinds();
    run::precheck(&reader.store, &m, &all).await.unwrap();
    run::restore(
        &reader,
        &m,
        &all,
        &run::Target {
            access: &ba,
            source_unseal_keys: support::unseal_keys(&a),
        },
    )
    .await
    .expect("restore from S3");
    assert_eq!(
        support::table_digests(&ba).await,
        support::table_digests(&aa).await
    );
    assert_eq!(support::streams(&ba).await, support::streams(&aa).await);
    assert_eq!(
        support::redis_keys(&ba).await,
        support::redis_keys(&aa).await
    );
    let v = cp_runtime::vault::Client::with_token(
        &ba.vault.as_ref().unwrap().addr,
        support::root(&a).await,
    );
    let plain = v
        .write(
            "transit/decrypt/anumate-config",
            &json!({"ciphertext": seeded.ciphertext}),
        )
        .await
        .unwrap();
    assert_eq!(plain["data"]["plaintext"], support::PLAINTEXT);
}
