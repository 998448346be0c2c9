//! Redis ACL seeding against a real Redis (started by the process driver with its
//! `users.acl`): the app user can use keys under a tenant prefix `t:<id>:` and nothing
//! else, cannot run administrative commands, the user survives a reload from the ACL
//! file, a second seed changes nothing, and an out-of-band change is put back.

use cp_core::names::CoreKind;
use cp_runtime::probe::Endpoint;
use cp_runtime::resp::{Connection, Reply, RespError};
use cp_seed::RedisAccess;
use cp_testkit::TestEnv;

async fn started() -> (TestEnv, RedisAccess) {
    let t = TestEnv::only(&[CoreKind::Redis], &[]);
    t.up().await.expect("Redis comes up");
    let access = RedisAccess {
        endpoint: Endpoint::local(t.port(CoreKind::Redis)),
        admin_password: t.secret("services.redis.admin_password").await,
        app_password: t.secret("services.redis.app_password").await,
        app_users: Default::default(),
    };
    (t, access)
}

fn app_user(t: &TestEnv) -> String {
    cp_core::seedspec::redis(&t.env)[0].id.name.clone()
}

async fn login(a: &RedisAccess, user: &str, password: &str) -> Connection {
    let mut c = Connection::connect(&a.endpoint.addr()).await.unwrap();
    c.command(&["AUTH", user, password])
        .await
        .unwrap_or_else(|e| panic!("AUTH as {user}: {e}"));
    c
}

/// The server's refusal of `args`, which must be a permission error.
async fn refused(c: &mut Connection, args: &[&str]) -> String {
    match c.command(args).await {
        Err(RespError::Server { message, .. }) => {
            assert!(message.starts_with("NOPERM"), "{args:?}: {message}");
            message
        }
        other => panic!("{args:?} was not refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_user_is_limited_to_tenant_keys_and_seeding_twice_changes_nothing() {
    let (t, a) = started().await;
    let user = app_user(&t);
    let first = cp_seed::redis::seed(&a, &t.env).await.expect("first seed");
    assert_eq!(first.changes, [format!("created Redis ACL user {user}")]);

    let tenant = uuid::Uuid::new_v4();
    let key = format!("t:{tenant}:k");
    let mut app = login(&a, &user, a.app_password.expose()).await;
    assert_eq!(
        app.command(&["SET", &key, "v"]).await.unwrap(),
        Reply::Simple("OK".into())
    );
    assert_eq!(
        app.command(&["GET", &key]).await.unwrap().text().as_deref(),
        Some("v")
    );
    let m = refused(&mut app, &["SET", "other:k", "v"]).await;
    assert!(m.contains("key"), "{m}");
    refused(&mut app, &["GET", "k"]).await;
    refused(&mut app, &["ACL", "SETUSER", &user, "~*"]).await;
    refused(&mut app, &["ACL", "LIST"]).await;
    refused(&mut app, &["CONFIG", "GET", "aclfile"]).await;
    refused(&mut app, &["FLUSHALL"]).await;
    refused(&mut app, &["KEYS", "*"]).await;
    refused(&mut app, &["PUBLISH", "other", "x"]).await;
    app.command(&["PUBLISH", &format!("t:{tenant}:events"), "x"])
        .await
        .expect("tenant channels are allowed");
    // A wrong password is refused.
    let mut c = Connection::connect(&a.endpoint.addr()).await.unwrap();
    assert!(
        c.command(&["AUTH", &user, "not-the-password"])
            .await
            .is_err()
    );

    let second = cp_seed::redis::seed(&a, &t.env).await.expect("second seed");
    assert!(!second.changed(), "{:?}", second.changes);

    // Persisted: the ACL file has the user (by hash, never the password), and a
    // reload from it keeps the user working.
    let mut admin = login(&a, "admin", a.admin_password.expose()).await;
    let Reply::Array(Some(cfg)) = admin.command(&["CONFIG", "GET", "aclfile"]).await.unwrap()
    else {
        panic!("CONFIG GET aclfile")
    };
    let file = cfg[1].text().unwrap();
    // It holds the admin password's hash: this user's only, even after Redis
    // rewrote it (`ACL SAVE` creates it 0644).
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{file} is {mode:o}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&format!("user {user} on")), "{text}");
    assert!(
        !text.contains(a.app_password.expose()),
        "plaintext password in {file}"
    );
    admin.command(&["ACL", "LOAD"]).await.expect("ACL LOAD");
    let mut app = login(&a, &user, a.app_password.expose()).await;
    assert_eq!(
        app.command(&["GET", &key]).await.unwrap().text().as_deref(),
        Some("v")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_band_change_is_put_back() {
    let (t, a) = started().await;
    let user = app_user(&t);
    cp_seed::redis::seed(&a, &t.env).await.expect("seed");
    let mut admin = login(&a, "admin", a.admin_password.expose()).await;

    // Someone widens the app's keys by hand.
    admin
        .command(&["ACL", "SETUSER", &user, "~*"])
        .await
        .unwrap();
    let r = cp_seed::redis::seed(&a, &t.env).await.expect("repair");
    assert_eq!(
        r.changes,
        [format!("updated Redis ACL user {user} (keys differed)")]
    );
    let mut app = login(&a, &user, a.app_password.expose()).await;
    refused(&mut app, &["SET", "other:k", "v"]).await;

    // ... or lets it run CONFIG.
    admin
        .command(&["ACL", "SETUSER", &user, "+config"])
        .await
        .unwrap();
    let r = cp_seed::redis::seed(&a, &t.env).await.expect("repair");
    assert_eq!(
        r.changes,
        [format!("updated Redis ACL user {user} (commands differed)")]
    );
    refused(&mut app, &["CONFIG", "GET", "maxmemory"]).await;

    // ... or changes its password.
    admin
        .command(&["ACL", "SETUSER", &user, "resetpass", ">other"])
        .await
        .unwrap();
    let r = cp_seed::redis::seed(&a, &t.env).await.expect("repair");
    assert_eq!(
        r.changes,
        [format!("updated Redis ACL user {user} (password differed)")]
    );
    login(&a, &user, a.app_password.expose()).await;
    assert!(!cp_seed::redis::seed(&a, &t.env).await.unwrap().changed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_admin_password_says_what_to_do() {
    let (t, mut a) = started().await;
    a.admin_password = cp_runtime::secrets::Secret::new("pw-7f3a9c");
    let err = cp_seed::redis::seed(&a, &t.env)
        .await
        .expect_err("wrong admin password");
    assert_eq!(err.service(), "redis");
    assert!(err.message().contains("cannot log in as `admin`"), "{err}");
    assert!(
        err.hint
            .as_deref()
            .unwrap_or_default()
            .contains("services.redis.admin_password"),
        "{err}"
    );
    assert!(
        !err.to_string().contains("pw-7f3a9c"),
        "the password is not shown: {err}"
    );
}
