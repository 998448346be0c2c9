//! Against the real services (PostgreSQL, Redis, NATS and OpenBao started by the test
//! harness and seeded): tenants end to end, the RBAC matrix generated from the
//! OpenAPI document, and each managed service down in turn (the API answers, status
//! shows it down, authentication and the audit log still work).

mod common;

use common::{audit, req, token};
use cp_core::names::CoreKind;
use cp_server::{AppState, Role};
use http::{Method, StatusCode};
use serde_json::{Value, json};

struct Live {
    t: cp_testkit::TestEnv,
    state: AppState,
    admin: String,
    editor: String,
    viewer: String,
    _server: tempfile::TempDir,
    /// The local backup destination, removed with the test.
    _backups: tempfile::TempDir,
}

async fn live() -> Live {
    let backups = tempfile::tempdir().unwrap();
    let d = format!(
        "backup.destinations.local.path={}",
        backups.path().display()
    );
    let t = cp_testkit::TestEnv::new(&["platform=process", &d]);
    t.up().await.expect("the services come up");
    let server = tempfile::tempdir().unwrap();
    let target = common::target(t.sets.clone(), t.root.clone());
    {
        let s = cp_app::Session::open(&target, cp_app::Mode::Mutating("seed"), None)
            .await
            .expect("a session");
        cp_app::ops::seed(&s).await.expect("seed");
    }
    let state = AppState::new(common::config(t.sets.clone(), &t.root, server.path()));
    Live {
        admin: token(&state, "admin", Role::Admin, None),
        editor: token(&state, "editor", Role::Editor, None),
        viewer: token(&state, "viewer", Role::Viewer, None),
        state,
        t,
        _server: server,
        _backups: backups,
    }
}

async fn create(l: &Live, slug: &str) -> Value {
    let a = req(Method::POST, "/api/v1/environments/dev/tenants")
        .bearer(&l.editor)
        .json(json!({"slug": slug, "name": format!("{slug} corp")}))
        .send(&l.state)
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    a.json()
}

#[tokio::test]
async fn against_the_real_services() {
    let l = live().await;
    tenants_end_to_end(&l).await;
    backups_end_to_end(&l).await;
    rbac_matrix_from_the_openapi_document(&l).await;
    idle(&l).await;
    schedule_after_a_restart(&l).await;
    each_service_down_in_turn(&l).await;
}

async fn tenants_end_to_end(l: &Live) {
    let st = req(
        Method::GET,
        "/api/v1/environments/dev/services?refresh=true",
    )
    .bearer(&l.viewer)
    .send(&l.state)
    .await;
    assert_eq!(st.json()["healthy"], true, "{}", st.text());

    let v = create(l, "acme").await;
    assert_eq!(v["changed"], true);
    assert_eq!(v["tenant"]["slug"], "acme");
    let id = v["tenant"]["id"].as_str().unwrap().to_owned();
    let again = req(Method::POST, "/api/v1/environments/dev/tenants")
        .bearer(&l.editor)
        .json(json!({"slug": "acme"}))
        .send(&l.state)
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.json()["changed"], false);

    let list = req(Method::GET, "/api/v1/environments/dev/tenants")
        .bearer(&l.viewer)
        .send(&l.state)
        .await
        .json();
    let t = &list["tenants"][0];
    assert_eq!(
        (t["slug"].clone(), t["name"].clone(), t["complete"].clone()),
        (json!("acme"), json!("acme corp"), json!(true)),
        "{list}"
    );
    for key in ["acme", id.as_str()] {
        let g = req(
            Method::GET,
            &format!("/api/v1/environments/dev/tenants/{key}"),
        )
        .bearer(&l.viewer)
        .send(&l.state)
        .await;
        assert_eq!(g.status, StatusCode::OK, "{}", g.text());
        assert_eq!(g.json()["id"], id.as_str());
    }
    let streams = req(Method::GET, "/api/v1/environments/dev/streams")
        .bearer(&l.viewer)
        .send(&l.state)
        .await;
    assert_eq!(streams.status, StatusCode::OK, "{}", streams.text());
    assert!(
        streams.json()["streams"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["stream"] == "AUDIT_EVENTS" && s["missing"] == false)
    );
    let plan = req(Method::GET, "/api/v1/environments/dev/plan")
        .bearer(&l.viewer)
        .send(&l.state)
        .await;
    assert_eq!(plan.status, StatusCode::OK, "{}", plan.text());
    assert_eq!(
        plan.json()["changes_pending"],
        false,
        "after up and seed: {}",
        plan.text()
    );

    // A delete needs admin and the confirmation.
    let ed = req(Method::DELETE, "/api/v1/environments/dev/tenants/acme")
        .bearer(&l.editor)
        .json(json!({"confirm": "acme"}))
        .send(&l.state)
        .await;
    assert_eq!(ed.status, StatusCode::FORBIDDEN);
    let d = req(Method::DELETE, "/api/v1/environments/dev/tenants/acme")
        .bearer(&l.admin)
        .json(json!({"confirm": "acme"}))
        .send(&l.state)
        .await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text());
    assert!(
        d.json()["reports"]
            .to_string()
            .contains("destroyed transit key"),
        "{}",
        d.text()
    );
    let gone = req(Method::GET, "/api/v1/environments/dev/tenants/acme")
        .bearer(&l.viewer)
        .send(&l.state)
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    let again = req(Method::DELETE, "/api/v1/environments/dev/tenants/acme")
        .bearer(&l.admin)
        .json(json!({"confirm": "acme"}))
        .send(&l.state)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text());

    let actions: Vec<(String, String)> = audit(&l.state, &l.admin, "")
        .await
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for want in [
        ("tenant.create", "succeeded"),
        ("tenant.delete", "succeeded"),
        ("tenant.delete", "denied"),
        ("tenant.delete", "failed"),
    ] {
        assert!(
            actions.contains(&(want.0.to_owned(), want.1.to_owned())),
            "{want:?} in {actions:?}"
        );
    }
}

/// A well-formed id no set has (so an allowed restore finds nothing to replace).
const NO_SET: &str = "20200101T000000000Z-000000";

fn fill(path: &str, tenant: &str) -> String {
    path.replace("{env}", "dev")
        .replace("{tenant}", tenant)
        .replace("{backup}", NO_SET)
        .replace("{job}", "job-none")
}

fn body(op: &str, tenant: &str, n: usize) -> Option<Value> {
    match op {
        "tenant.create" => Some(json!({"slug": format!("rbac-{n}")})),
        "tenant.delete" => Some(json!({"confirm": tenant})),
        "backup.restore" => Some(json!({"confirm": NO_SET})),
        "backup.trigger" => Some(json!({"services": ["redis"]})),
        _ => None,
    }
}

async fn call(
    l: &Live,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> StatusCode {
    let mut r = req(method.to_uppercase().parse().unwrap(), path);
    if let Some(t) = token {
        r = r.bearer(t);
    }
    if let Some(b) = body {
        r = r.json(b);
    }
    r.send(&l.state).await.status
}

async fn rbac_matrix_from_the_openapi_document(l: &Live) {
    let doc = req(Method::GET, "/openapi.json")
        .send(&l.state)
        .await
        .json();
    let mine = create(l, "mine").await;
    create(l, "theirs").await;
    // Tokens are bound to the tenant's id (a slug can be re-used by a new tenant).
    let mine = mine["tenant"]["id"].as_str().expect("a tenant has an id");
    let scoped_admin = token(&l.state, "scoped-admin", Role::Admin, Some(mine));
    let scoped_viewer = token(&l.state, "scoped-viewer", Role::Viewer, Some(mine));
    let tokens = [
        (Role::Viewer, &l.viewer),
        (Role::Editor, &l.editor),
        (Role::Admin, &l.admin),
    ];
    let mut checked = 0;
    let mut n = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(least) = op["x-required-role"].as_str().and_then(Role::parse) else {
                continue;
            };
            let action = op["operationId"].as_str().unwrap();
            let scope = op["x-tenant-scope"].as_str().unwrap();
            let mutates = method != "get";
            let what = format!("{method} {path} ({action})");
            // Anonymous: 401 everywhere protected.
            n += 1;
            let s = call(
                l,
                method,
                &fill(path, "theirs"),
                None,
                body(action, "theirs", n),
            )
            .await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "anonymous {what}");
            // Each role: refused below the least role, allowed (not 401/403) from it.
            for (role, tok) in tokens {
                n += 1;
                // Allowed deletes act on a tenant made for them.
                let tenant = if mutates && role >= least {
                    let slug = format!("victim-{n}");
                    create(l, &slug).await;
                    slug
                } else {
                    "theirs".to_owned()
                };
                let s = call(
                    l,
                    method,
                    &fill(path, &tenant),
                    Some(tok),
                    body(action, &tenant, n),
                )
                .await;
                if role < least {
                    assert_eq!(s, StatusCode::FORBIDDEN, "{role} on {what}");
                } else {
                    assert!(
                        s != StatusCode::UNAUTHORIZED
                            && s != StatusCode::FORBIDDEN
                            && s.as_u16() < 500,
                        "{role} on {what}: {s}"
                    );
                }
                checked += 1;
            }
            // Tenant-scoped principals: never another tenant.
            for (tok, role) in [(&scoped_admin, Role::Admin), (&scoped_viewer, Role::Viewer)] {
                n += 1;
                let s = call(
                    l,
                    method,
                    &fill(path, "theirs"),
                    Some(tok),
                    body(action, "theirs", n),
                )
                .await;
                if role < least || scope == "denied" {
                    assert_eq!(s, StatusCode::FORBIDDEN, "scoped {role} on {what}");
                } else if scope == "own" {
                    assert!(
                        s == StatusCode::NOT_FOUND || s == StatusCode::FORBIDDEN,
                        "scoped {role} on another tenant: {what}: {s}"
                    );
                } else {
                    assert_eq!(s, StatusCode::OK, "scoped {role} on {what}");
                }
            }
            if mutates {
                assert!(
                    least >= Role::Editor,
                    "{what}: a mutation a viewer may call"
                );
            }
        }
    }
    assert!(checked >= 30, "{checked}");
    // Filtered: a scoped principal lists only its own tenant, and reads it.
    let list = req(Method::GET, "/api/v1/environments/dev/tenants")
        .bearer(&scoped_viewer)
        .send(&l.state)
        .await
        .json();
    let slugs: Vec<&str> = list["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["mine"]);
    let own = req(Method::GET, "/api/v1/environments/dev/tenants/mine")
        .bearer(&scoped_viewer)
        .send(&l.state)
        .await;
    assert_eq!(own.status, StatusCode::OK);
}

/// Waits for no backup to be running (the matrix triggers some).
async fn idle(l: &Live) {
    for _ in 0..600 {
        let dir = cp_runtime::state::StateDir::open(&l.t.root, "dev").unwrap();
        if cp_backup::run::lock(&dir, "test (waiting)").is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("a backup was still running after 60 s");
}

/// Trigger through the API, follow the SSE to the end, list, verify, and read the
/// gauges from `/metrics`.
async fn backups_end_to_end(l: &Live) {
    let started = std::time::Instant::now();
    let a = req(Method::POST, "/api/v1/environments/dev/backups")
        .bearer(&l.editor)
        .send(&l.state)
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    let job = a.json()["job"].as_str().unwrap().to_owned();
    let ev = req(Method::GET, &format!("/api/v1/jobs/{job}/events"))
        .bearer(&l.viewer)
        .send(&l.state)
        .await;
    assert_eq!(ev.status, StatusCode::OK);
    let text = ev.text();
    let finished = text.matches("event: progress\ndata: ").count();
    // Each of the four services started and finished.
    assert_eq!(finished, 8, "{text}");
    let result: Value = serde_json::from_str(
        text.split("event: result\ndata: ")
            .nth(1)
            .and_then(|r| r.lines().next())
            .unwrap_or_else(|| panic!("no result event: {text}")),
    )
    .unwrap();
    assert_eq!(result["state"], "succeeded", "{result}");
    let id = result["result"]["id"].as_str().unwrap().to_owned();
    eprintln!(
        "backup through the API: {id} in {} ms",
        started.elapsed().as_millis()
    );
    let j = req(Method::GET, &format!("/api/v1/jobs/{job}"))
        .bearer(&l.viewer)
        .send(&l.state)
        .await;
    assert_eq!(j.json()["state"], "succeeded");
    let list = req(Method::GET, "/api/v1/environments/dev/backups")
        .bearer(&l.viewer)
        .send(&l.state)
        .await
        .json();
    assert_eq!(list["sets"][0]["id"], id.as_str(), "{list}");
    assert_eq!(list["sets"][0]["state"]["state"], "complete", "{list}");
    let v = req(
        Method::POST,
        &format!("/api/v1/environments/dev/backups/{id}/verify"),
    )
    .bearer(&l.editor)
    .send(&l.state)
    .await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.text());
    assert_eq!(v.json()["ok"], true, "{}", v.text());
    let list = req(Method::GET, "/api/v1/environments/dev/backups")
        .bearer(&l.viewer)
        .send(&l.state)
        .await
        .json();
    assert_eq!(list["sets"][0]["state"]["state"], "verified", "{list}");
    let metrics = req(Method::GET, "/metrics").send(&l.state).await.text();
    for svc in ["postgres", "redis", "nats", "vault"] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "controlplane_backup_last_success_timestamp_seconds{{env=\"dev\",service=\"{svc}\"}}"
                ))
            })
            .unwrap_or_else(|| panic!("no gauge for {svc}: {metrics}"));
        let v: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(v > 1_700_000_000, "{line}");
        assert!(
            metrics.contains(&format!(
                "controlplane_backup_last_run_success{{env=\"dev\",service=\"{svc}\"}} 1\n"
            )),
            "{metrics}"
        );
    }
    // While a backup runs, a second trigger is 409 naming the running job.
    let a = req(Method::POST, "/api/v1/environments/dev/backups")
        .bearer(&l.editor)
        .send(&l.state)
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    let first = a.json()["job"].as_str().unwrap().to_owned();
    let b = req(Method::POST, "/api/v1/environments/dev/backups")
        .bearer(&l.editor)
        .send(&l.state)
        .await;
    assert_eq!(b.status, StatusCode::CONFLICT, "{}", b.text());
    assert!(b.text().contains(&first), "{}", b.text());
    idle(l).await;
}

/// A server restarted after its every-minute schedule went unrun for three minutes
/// (the state files say so): it reports the missed runs and catches up once.
async fn schedule_after_a_restart(l: &Live) {
    let dir = cp_runtime::state::StateDir::open(&l.t.root, "dev").unwrap();
    let old = chrono::Utc::now() - chrono::Duration::seconds(190);
    let mut m = cp_backup::metrics::Metrics::read(&dir);
    for s in m.services.values_mut() {
        s.last_success_timestamp_seconds = old.timestamp();
    }
    m.write(&dir).unwrap();
    dir.write(
        "backup/schedule.json",
        serde_json::to_vec(&json!({"last_run": old.to_rfc3339()}))
            .unwrap()
            .as_slice(),
        0o644,
    )
    .unwrap();
    let mut sets = l.t.sets.clone();
    sets.push("backup.schedule=\"* * * * *\"".into());
    let server = tempfile::tempdir().unwrap();
    let state = AppState::new(common::config(sets, &l.t.root, server.path()));
    let viewer = token(&state, "viewer", Role::Viewer, None);
    let task = {
        let (jobs, targets) = (state.jobs.clone(), state.envs.targets().cloned().collect());
        tokio::spawn(async move { jobs.run_schedules(targets).await })
    };
    let mut last = Value::Null;
    for _ in 0..600 {
        last = req(Method::GET, "/api/v1/environments/dev/backups/schedule")
            .bearer(&viewer)
            .send(&state)
            .await
            .json();
        if last["last_tick"]["outcome"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    task.abort();
    assert_eq!(last["running"], true, "{last}");
    let missed = &last["missed"];
    assert!(missed["count"].as_u64().unwrap() >= 3, "{last}");
    assert!(
        missed["message"].as_str().unwrap().starts_with(&format!(
            "missed {} scheduled backup runs since ",
            missed["count"]
        )),
        "{last}"
    );
    assert_eq!(last["last_tick"]["outcome"], "succeeded", "{last}");
    let next = chrono::DateTime::parse_from_rfc3339(last["next_run"].as_str().unwrap()).unwrap();
    assert!(
        next.timestamp() - chrono::Utc::now().timestamp() <= 60,
        "{last}"
    );
    idle(l).await;
}

fn kill(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

async fn each_service_down_in_turn(l: &Live) {
    for kind in CoreKind::ALL {
        let pid =
            l.t.recorded_pid(kind)
                .unwrap_or_else(|| panic!("{kind} runs"));
        // SIGINT: PostgreSQL's fast shutdown; the others stop on it too.
        kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let svc = loop {
            let a = req(
                Method::GET,
                "/api/v1/environments/dev/services?refresh=true",
            )
            .bearer(&l.viewer)
            .send(&l.state)
            .await;
            assert_eq!(
                a.status,
                StatusCode::OK,
                "{kind} down: the API answers: {}",
                a.text()
            );
            let v = a.json();
            let s = v["services"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["service"] == kind.as_str())
                .unwrap()
                .clone();
            if s["health"]["health"] != "healthy" {
                assert_eq!(v["healthy"], false);
                break s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{kind} still healthy after it was stopped"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert_ne!(svc["state"]["state"], "running_and_healthy", "{svc}");
        // Authentication and the audit log do not depend on it.
        let who = req(Method::GET, "/api/v1/whoami")
            .bearer(&l.viewer)
            .send(&l.state)
            .await;
        assert_eq!(who.status, StatusCode::OK);
        let denied = req(Method::POST, "/api/v1/environments/dev/tenants")
            .bearer(&l.viewer)
            .json(json!({"slug": "x"}))
            .send(&l.state)
            .await;
        assert_eq!(denied.status, StatusCode::FORBIDDEN);
        let e = audit(&l.state, &l.admin, "limit=1").await;
        assert_eq!(
            (e[0]["actor"].clone(), e[0]["outcome"].clone()),
            (json!("token:viewer"), json!("denied")),
            "{kind}"
        );
        let metrics = req(Method::GET, "/metrics").send(&l.state).await.text();
        assert!(
            metrics.contains(&format!(
                r#"controlplane_service_up{{env="dev",service="{kind}"}} 0"#
            )),
            "{kind}: {metrics}"
        );
        // Back up for the next one, once the old process has gone (OpenBao takes a
        // moment to seal).
        let gone = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')));
            if zombie {
                break;
            }
            assert!(
                std::time::Instant::now() < gone,
                "{kind} (pid {pid}) did not exit"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        l.t.up()
            .await
            .unwrap_or_else(|e| panic!("{kind} comes back: {e}"));
    }
}
