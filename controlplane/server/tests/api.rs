//! Every route through `router(state).oneshot`, with the platform services not
//! running (what the server must survive): the operational endpoints, the API's
//! answers and errors, the console's pages and forms, the security headers and
//! request ids, body and page caps, failed-login rate limiting, a read-only state
//! directory, and the access table agreeing with the router and the OpenAPI document.

// `chattr` is run directly: the test sets the state directory immutable (root only).
#![allow(clippy::disallowed_methods)]

mod common;

use common::{audit, console_login, fixture, req};
use cp_server::Role;
use http::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn operational_endpoints_answer_without_credentials() {
    let f = fixture();
    let h = req(Method::GET, "/healthz").send(&f.state).await;
    assert_eq!(
        (h.status, h.json()),
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let r = req(Method::GET, "/readyz").send(&f.state).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["ready"], true);
    assert_eq!(r.json()["audit_writable"], true);
    // A request first, so a counter exists.
    let _ = req(Method::GET, "/api/v1/environments")
        .bearer(&f.viewer)
        .send(&f.state)
        .await;
    let m = req(Method::GET, "/metrics").send(&f.state).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(
        m.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = m.text();
    assert!(
        text.contains(
            r#"http_requests_total{route="/api/v1/environments",method="GET",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
    let o = req(Method::GET, "/openapi.json").send(&f.state).await;
    assert_eq!(o.status, StatusCode::OK);
    assert_eq!(o.json()["openapi"], "3.1.0");
}

#[tokio::test]
async fn service_up_is_exported_per_environment_and_service() {
    let f = fixture();
    let s = req(
        Method::GET,
        "/api/v1/environments/dev/services?refresh=true",
    )
    .bearer(&f.viewer)
    .send(&f.state)
    .await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text());
    let text = req(Method::GET, "/metrics").send(&f.state).await.text();
    for svc in ["postgres", "redis", "nats", "vault"] {
        assert!(
            text.contains(&format!(
                r#"controlplane_service_up{{env="dev",service="{svc}"}} 0"#
            )),
            "{text}"
        );
    }
}

#[tokio::test]
async fn every_response_has_a_request_id_and_the_security_headers() {
    let f = fixture();
    for uri in [
        "/healthz",
        "/api/v1/environments",
        "/console/login",
        "/nope",
    ] {
        let a = req(Method::GET, uri).send(&f.state).await;
        let h = &a.headers;
        assert_eq!(h["x-request-id"].len(), 32, "{uri}");
        assert_eq!(h["x-frame-options"], "DENY", "{uri}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{uri}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{uri}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        // No TLS configured: no HSTS.
        assert!(h.get("strict-transport-security").is_none(), "{uri}");
    }
    // A sane client id is echoed; an unsafe one is replaced.
    let a = req(Method::GET, "/healthz")
        .header("x-request-id", "abc-123")
        .send(&f.state)
        .await;
    assert_eq!(a.headers["x-request-id"], "abc-123");
    let a = req(Method::GET, "/healthz")
        .header("x-request-id", "a b\"<")
        .send(&f.state)
        .await;
    assert_ne!(a.headers["x-request-id"], "a b\"<");
    // A routed path with another method: 405 naming the allowed ones.
    let t = req(Method::TRACE, "/api/v1/environments")
        .bearer(&f.viewer)
        .send(&f.state)
        .await;
    assert_eq!(t.status, StatusCode::METHOD_NOT_ALLOWED, "{}", t.text());
    assert_eq!(t.headers["allow"], "GET");
    let d = req(Method::PUT, "/api/v1/environments/dev/tenants/acme")
        .send(&f.state)
        .await;
    assert_eq!(d.headers["allow"], "GET, DELETE");
    // An unknown route is a JSON 404.
    let n = req(Method::GET, "/nope").send(&f.state).await;
    assert_eq!(
        (n.status, n.json()["error"].clone()),
        (StatusCode::NOT_FOUND, json!("not_found"))
    );
}

/// A handler that panics is a bug: the layers every route runs in answer 500 with the
/// request id and nothing internal, and the server goes on answering.
#[tokio::test]
async fn a_panicking_handler_answers_500_with_a_request_id() {
    use tower::ServiceExt as _;
    let f = fixture();
    let routes = axum::Router::new().route(
        "/boom",
        axum::routing::get(|| async {
            if std::hint::black_box(true) {
                panic!("a bug in a handler");
            }
            "unreachable"
        }),
    );
    let app = cp_server::outer_layers(routes, f.state.clone());
    let r = http::Request::builder()
        .uri("/boom")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.clone().oneshot(r).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.headers()["x-request-id"].len(), 32);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"], "internal", "{v}");
    assert!(
        !v["message"]
            .as_str()
            .unwrap()
            .contains("a bug in a handler"),
        "{v}"
    );
    // The real router still answers.
    let a = req(Method::GET, "/healthz").send(&f.state).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn hsts_and_secure_cookies_when_served_over_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = common::config(
        vec!["platform=process".into()],
        &tmp.path().join("dev"),
        &tmp.path().join("server"),
    );
    c.public_url = Some("https://cp.example.com".into());
    let state = cp_server::AppState::new(c);
    let a = req(Method::GET, "/console/login").send(&state).await;
    assert_eq!(
        a.headers["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
    let cookie = a.headers["set-cookie"].to_str().unwrap();
    assert!(
        cookie.contains("Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

#[tokio::test]
async fn environments_services_and_plan_answer_with_the_cli_views() {
    let f = fixture();
    let who = req(Method::GET, "/api/v1/whoami")
        .bearer(&f.editor)
        .send(&f.state)
        .await;
    assert_eq!(
        who.json(),
        json!({"actor": "token:editor", "role": "editor", "tenant": null, "via": "token"})
    );

    let s = req(Method::GET, "/api/v1/environments/dev/services")
        .bearer(&f.viewer)
        .send(&f.state)
        .await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text());
    let v = s.json();
    assert_eq!(v["environment"], "dev");
    assert_eq!(v["driver"], "process");
    assert_eq!(v["healthy"], false);
    let names: Vec<&str> = v["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    assert!(
        names.starts_with(&["postgres", "redis", "nats", "vault"]),
        "{names:?}"
    );
    assert!(s.headers.contains_key("age"));

    let l = req(Method::GET, "/api/v1/environments")
        .bearer(&f.viewer)
        .send(&f.state)
        .await;
    let e = &l.json()["environments"][0];
    assert_eq!(e["name"], "dev");
    assert_eq!(e["tier"], "dev");
    assert_eq!(e["healthy"], false);
    assert!(e["services_total"].as_u64().unwrap() >= 4, "{e}");
    let one = req(Method::GET, "/api/v1/environments/dev")
        .bearer(&f.viewer)
        .send(&f.state)
        .await;
    assert_eq!(one.json()["name"], "dev");
    let missing = req(Method::GET, "/api/v1/environments/nope")
        .bearer(&f.viewer)
        .send(&f.state)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let missing = req(Method::GET, "/api/v1/environments/nope/services")
        .bearer(&f.viewer)
        .send(&f.state)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let p = req(Method::GET, "/api/v1/environments/dev/plan")
        .bearer(&f.viewer)
        .send(&f.state)
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text());
    let plan = p.json();
    assert_eq!(plan["environment"], "dev");
    assert_eq!(plan["changes_pending"], true);
    assert!(
        plan["summary"]["deferred"]
            .as_array()
            .unwrap()
            .contains(&json!("database")),
        "{plan}"
    );

    let bad = req(
        Method::GET,
        "/api/v1/environments/dev/services?refresh=maybe",
    )
    .bearer(&f.viewer)
    .send(&f.state)
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
    assert_eq!(bad.json()["error"], "bad_request");
}

#[tokio::test]
async fn service_backed_routes_say_which_service_failed_with_a_502() {
    let f = fixture();
    for uri in [
        "/api/v1/environments/dev/streams",
        "/api/v1/environments/dev/tenants",
        "/api/v1/environments/dev/tenants/acme",
    ] {
        let a = req(Method::GET, uri).bearer(&f.viewer).send(&f.state).await;
        assert_eq!(a.status, StatusCode::BAD_GATEWAY, "{uri}: {}", a.text());
        assert_eq!(a.json()["error"], "service_failed", "{uri}");
    }
    let c = req(Method::POST, "/api/v1/environments/dev/tenants")
        .bearer(&f.editor)
        .json(json!({"slug": "acme"}))
        .send(&f.state)
        .await;
    assert_eq!(c.status, StatusCode::BAD_GATEWAY, "{}", c.text());
}

#[tokio::test]
async fn alert_rules_carry_the_environments_thresholds() {
    let f = fixture();
    let a = req(Method::GET, "/api/v1/environments/dev/alerts")
        .bearer(&f.viewer)
        .send(&f.state)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    let rules = v["rules"]["rules"].as_array().unwrap();
    let restart = rules
        .iter()
        .find(|r| r["key"] == "pod_restarting")
        .expect("pod_restarting");
    // dev.yaml sets it to 10 (the default is lower).
    assert_eq!(restart["threshold"], json!(10.0), "{restart}");
    let auth = rules
        .iter()
        .find(|r| r["key"] == "failed_auth_spike")
        .unwrap();
    assert_eq!(auth["enabled"], false);
    assert_eq!(v["prometheus"], json!(null));
    assert_eq!(v["firing"], json!(null));
}

/// Not told where (no `--prometheus`), the alerts and the timeline ask the Prometheus
/// the environment runs, where its driver says it answers (here nothing listens:
/// the views say it could not be asked); with no Prometheus the timeline is the
/// server's own.
#[tokio::test]
async fn alerts_and_the_timeline_ask_the_prometheus_the_environment_runs() {
    let port = cp_testkit::free_port();
    let f = common::fixture_with(|_| {
        vec![
            "monitoring.enabled=true".into(),
            format!("monitoring.prometheus.port={port}"),
        ]
    });
    let url = format!("http://127.0.0.1:{port}");
    let a = req(Method::GET, "/api/v1/environments/dev/alerts")
        .bearer(&f.viewer)
        .send(&f.state)
        .await
        .json();
    assert_eq!(a["prometheus"], json!(url), "{a}");
    assert!(a["firing_error"].is_string(), "{a}");
    let h = req(Method::GET, "/api/v1/environments/dev/history")
        .bearer(&f.viewer)
        .send(&f.state)
        .await
        .json();
    assert_eq!(h["alerts"]["prometheus"], json!(url), "{h}");
    assert!(h["alerts"]["error"].is_string(), "{h}");

    let f = fixture();
    let h = req(Method::GET, "/api/v1/environments/dev/history")
        .bearer(&f.viewer)
        .send(&f.state)
        .await
        .json();
    assert_eq!(h["alerts"]["prometheus"], json!(null), "{h}");
    assert_eq!(h["alerts"]["spans"], json!([]), "{h}");
}

#[tokio::test]
async fn bodies_are_validated_and_capped() {
    let f = fixture();
    let post = |body: Vec<u8>, ct: &str| {
        let mut r = req(Method::POST, "/api/v1/environments/dev/tenants")
            .bearer(&f.editor)
            .header("content-type", ct);
        r.body = body;
        r
    };
    let big = post(vec![b'a'; 20 * 1024], "application/json")
        .send(&f.state)
        .await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", big.text());
    let not_json = post(b"slug=acme".to_vec(), "text/plain")
        .send(&f.state)
        .await;
    assert_eq!(
        not_json.status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "{}",
        not_json.text()
    );
    let unknown = post(br#"{"slug":"a","extra":1}"#.to_vec(), "application/json")
        .send(&f.state)
        .await;
    assert_eq!(
        unknown.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown.text()
    );
    let bad_slug = post(br#"{"slug":"Not A Slug"}"#.to_vec(), "application/json")
        .send(&f.state)
        .await;
    assert_eq!(
        bad_slug.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        bad_slug.text()
    );
    assert!(
        bad_slug.json()["message"]
            .as_str()
            .unwrap()
            .contains("slug"),
        "{}",
        bad_slug.text()
    );
    // Deleting needs the confirmation, before anything is touched.
    let d = req(Method::DELETE, "/api/v1/environments/dev/tenants/acme")
        .bearer(&f.admin)
        .json(json!({"confirm": "other"}))
        .send(&f.state)
        .await;
    assert_eq!(d.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", d.text());
    assert_eq!(d.json()["error"], "confirmation_required");
}

#[tokio::test]
async fn every_mutation_is_audited_denied_or_allowed_with_its_result() {
    let f = fixture();
    let _ = req(Method::POST, "/api/v1/environments/dev/tenants")
        .json(json!({"slug": "acme"}))
        .send(&f.state)
        .await;
    let _ = req(Method::POST, "/api/v1/environments/dev/tenants")
        .bearer(&f.viewer)
        .json(json!({"slug": "acme"}))
        .header("x-request-id", "req-viewer")
        .send(&f.state)
        .await;
    let _ = req(Method::POST, "/api/v1/environments/dev/tenants")
        .bearer(&f.editor)
        .json(json!({"slug": "Bad Slug"}))
        .send(&f.state)
        .await;
    let e = audit(&f.state, &f.admin, "").await;
    let summary: Vec<(String, String, u64)> = e
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("token:editor".to_owned(), "failed".to_owned(), 422),
            ("token:editor".to_owned(), "allowed".to_owned(), 0),
            ("token:viewer".to_owned(), "denied".to_owned(), 403),
            ("anonymous".to_owned(), "denied".to_owned(), 401),
        ]
    );
    let viewer = &e[2];
    assert_eq!(viewer["request_id"], "req-viewer");
    assert_eq!(viewer["action"], "tenant.create");
    assert_eq!(viewer["target"], "/api/v1/environments/dev/tenants");
    assert_eq!(viewer["role"], "viewer");
    assert_eq!(viewer["client"], "127.0.0.1");
    // Reads are not audited.
    let _ = req(Method::GET, "/api/v1/environments")
        .bearer(&f.viewer)
        .send(&f.state)
        .await;
    assert_eq!(audit(&f.state, &f.admin, "").await.len(), 4);
    // Filters and pages.
    assert_eq!(audit(&f.state, &f.admin, "outcome=denied").await.len(), 2);
    assert_eq!(
        audit(&f.state, &f.admin, "actor=token:viewer").await.len(),
        1
    );
    assert_eq!(
        audit(&f.state, &f.admin, "action=tenant.delete")
            .await
            .len(),
        0
    );
    assert_eq!(
        audit(
            &f.state,
            &f.admin,
            "since=2000-01-01T00:00:00Z&until=2000-01-02T00:00:00Z"
        )
        .await
        .len(),
        0
    );
    let p = req(Method::GET, "/api/v1/audit?limit=3")
        .bearer(&f.admin)
        .send(&f.state)
        .await
        .json();
    assert_eq!(p["entries"].as_array().unwrap().len(), 3);
    assert_eq!(p["next_cursor"], 3);
    let p2 = req(Method::GET, "/api/v1/audit?limit=3&cursor=3")
        .bearer(&f.admin)
        .send(&f.state)
        .await
        .json();
    assert_eq!(p2["entries"].as_array().unwrap().len(), 1);
    assert_eq!(p2["next_cursor"], json!(null));
    for q in [
        "limit=0",
        "limit=201",
        "since=yesterday",
        "outcome=maybe",
        "bogus=1",
    ] {
        let a = req(Method::GET, &format!("/api/v1/audit?{q}"))
            .bearer(&f.admin)
            .send(&f.state)
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{q}: {}", a.text());
    }
    // The file is 0600 and every line is JSON.
    let path = f.tmp.path().join("server/audit.jsonl");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 4);
    assert!(!text.contains("cpt_"), "no token in the audit log");
}

#[tokio::test]
async fn a_hundred_failed_logins_from_one_address_are_rate_limited_while_another_logs_in() {
    let f = fixture();
    let mut limited = 0;
    for i in 0..100 {
        let a = req(Method::GET, "/api/v1/environments")
            .bearer(&format!("cpt_wrong{i}"))
            .from("127.0.0.7")
            .send(&f.state)
            .await;
        match a.status {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(limited, 90, "10 failures per minute, then refused");
    // Refused even with good credentials now, so guessing stops.
    let good = req(Method::GET, "/api/v1/environments")
        .bearer(&f.admin)
        .from("127.0.0.7")
        .send(&f.state)
        .await;
    assert_eq!(good.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(good.json()["error"], "rate_limited");
    // Another address is unaffected, on the API and the console.
    let other = req(Method::GET, "/api/v1/environments")
        .bearer(&f.admin)
        .from("127.0.0.8")
        .send(&f.state)
        .await;
    assert_eq!(other.status, StatusCode::OK);
    // The console login counts too.
    let form = req(Method::GET, "/console/login").send(&f.state).await;
    let csrf = common::set_cookie(&form.headers, "cp_login_csrf").unwrap();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let a = req(Method::POST, "/console/login")
            .header("cookie", &format!("cp_login_csrf={csrf}"))
            .form(&[("token", "cpt_nope"), ("csrf", &csrf)])
            .from("127.0.0.9")
            .send(&f.state)
            .await;
        statuses.push(a.status.as_u16());
    }
    assert_eq!(statuses[..10], [401; 10]);
    assert_eq!(statuses[10..], [429, 429]);
    let (_cookie, _csrf) = console_login(&f.state, &f.viewer).await;
}

#[tokio::test]
async fn with_the_state_directory_read_only_mutations_fail_clearly_and_reads_work() {
    let f = fixture();
    let dir = f.tmp.path().join("server");
    // Root ignores permission bits: make the directory and its files immutable.
    let _ = req(Method::POST, "/api/v1/environments/dev/tenants")
        .json(json!({}))
        .send(&f.state)
        .await;
    struct Immutable(Vec<std::path::PathBuf>);
    impl Drop for Immutable {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = std::process::Command::new("chattr")
                    .arg("-i")
                    .arg(p)
                    .status();
            }
        }
    }
    let paths = vec![
        dir.join("audit.jsonl"),
        dir.join("tokens.json"),
        dir.clone(),
    ];
    let _guard = Immutable(paths.clone());
    for p in &paths {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .arg(p)
            .status()
            .unwrap()
            .success();
        assert!(
            ok,
            "chattr +i {} (the tests need an ext4-like filesystem and root)",
            p.display()
        );
    }
    let c = req(Method::POST, "/api/v1/environments/dev/tenants")
        .bearer(&f.editor)
        .json(json!({"slug": "acme"}))
        .send(&f.state)
        .await;
    assert_eq!(c.status, StatusCode::SERVICE_UNAVAILABLE, "{}", c.text());
    assert_eq!(c.json()["error"], "audit_unavailable");
    assert!(
        c.json()["message"].as_str().unwrap().contains("read-only"),
        "{}",
        c.text()
    );
    // Reads, authentication and the audit log still work.
    let r = req(Method::GET, "/api/v1/environments/dev/services")
        .bearer(&f.viewer)
        .send(&f.state)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // The denial from before; the refused mutation left nothing (it could not).
    assert_eq!(audit(&f.state, &f.admin, "").await.len(), 1);
    let ready = req(Method::GET, "/readyz").send(&f.state).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["audit_writable"], false);
    // Token creation says why it cannot.
    let e = f
        .state
        .tokens
        .create("new", Role::Viewer, None, None)
        .unwrap_err();
    assert!(cp_server::state::ensure_private_dir(&dir).is_ok());
    assert!(e.to_string().contains("cannot write the token file"), "{e}");
}

#[tokio::test]
async fn the_console_logs_in_with_a_token_and_checks_csrf_on_every_form() {
    let f = fixture();
    // Without a session: to the login page.
    let a = req(Method::GET, "/console").send(&f.state).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.headers["location"], "/console/login");
    let root = req(Method::GET, "/").send(&f.state).await;
    assert_eq!(root.headers["location"], "/console");
    // The login form's own CSRF check.
    let bad = req(Method::POST, "/console/login")
        .form(&[("token", &f.admin), ("csrf", "x")])
        .send(&f.state)
        .await;
    assert_eq!(bad.status, StatusCode::FORBIDDEN);
    let wrong = {
        let form = req(Method::GET, "/console/login").send(&f.state).await;
        let c = common::set_cookie(&form.headers, "cp_login_csrf").unwrap();
        req(Method::POST, "/console/login")
            .header("cookie", &format!("cp_login_csrf={c}"))
            .form(&[("token", "cpt_wrong"), ("csrf", &c)])
            .send(&f.state)
            .await
    };
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text().contains("invalid token"));

    let (cookie, csrf) = console_login(&f.state, &f.admin).await;
    for uri in [
        "/console",
        "/console/env/dev",
        "/console/alerts",
        "/console/audit",
        "/console/audit?outcome=denied&actor=x",
    ] {
        let p = req(Method::GET, uri)
            .header("cookie", &cookie)
            .send(&f.state)
            .await;
        assert_eq!(p.status, StatusCode::OK, "{uri}: {}", p.text());
        let html = p.text();
        assert!(
            html.contains("<script src=\"/static/console.js\" defer></script>"),
            "{uri}"
        );
        assert!(
            !html.contains("<script>") && !html.contains("style="),
            "{uri}: nothing inline"
        );
        // Every form carries the CSRF token.
        assert_eq!(
            html.matches("<form").count(),
            html.matches(&format!("name=\"csrf\" value=\"{csrf}\""))
                .count(),
            "{uri}"
        );
    }
    let env = req(Method::GET, "/console/env/dev")
        .header("cookie", &cookie)
        .send(&f.state)
        .await
        .text();
    assert!(
        env.contains("postgres") && env.contains("Create tenant"),
        "{env}"
    );
    let nope = req(Method::GET, "/console/env/nope")
        .header("cookie", &cookie)
        .send(&f.state)
        .await;
    assert_eq!(nope.status, StatusCode::NOT_FOUND);

    // A form without its CSRF token is refused and audited.
    let no = req(Method::POST, "/console/env/dev/tenants")
        .header("cookie", &cookie)
        .form(&[("slug", "acme")])
        .send(&f.state)
        .await;
    assert_eq!(no.status, StatusCode::FORBIDDEN, "{}", no.text());
    let wrong = req(Method::POST, "/console/env/dev/tenants")
        .header("cookie", &cookie)
        .form(&[("slug", "acme"), ("csrf", "0000")])
        .send(&f.state)
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let denied = audit(
        &f.state,
        &f.admin,
        "outcome=denied&action=console.tenant_create",
    )
    .await;
    assert_eq!(denied.len(), 2);
    assert_eq!(denied[0]["detail"], "missing or wrong CSRF token");
    // With it, the action runs (and fails here: nothing runs) and says why on the page.
    let ok = req(Method::POST, "/console/env/dev/tenants")
        .header("cookie", &cookie)
        .form(&[("slug", "acme"), ("csrf", &csrf)])
        .send(&f.state)
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert!(
        ok.headers["location"]
            .to_str()
            .unwrap()
            .starts_with("/console/env/dev?error="),
        "{:?}",
        ok.headers
    );
    let failed = audit(
        &f.state,
        &f.admin,
        "action=console.tenant_create&outcome=failed",
    )
    .await;
    assert_eq!(
        failed.len(),
        1,
        "a redirect after a failure is audited as failed"
    );
    let del = req(Method::POST, "/console/env/dev/tenants/acme/delete")
        .header("cookie", &cookie)
        .form(&[("confirm", "nope"), ("csrf", &csrf)])
        .send(&f.state)
        .await;
    assert!(
        del.headers["location"].to_str().unwrap().contains("error="),
        "{:?}",
        del.headers
    );

    // Static assets.
    let css = req(Method::GET, "/static/console.css").send(&f.state).await;
    assert_eq!(css.headers["content-type"], "text/css; charset=utf-8");
    let js = req(Method::GET, "/static/console.js").send(&f.state).await;
    assert_eq!(js.headers["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(
        req(Method::GET, "/static/other.js")
            .send(&f.state)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Logging out ends the session.
    let out = req(Method::POST, "/console/logout")
        .header("cookie", &cookie)
        .form(&[("csrf", &csrf)])
        .send(&f.state)
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let after = req(Method::GET, "/console")
        .header("cookie", &cookie)
        .send(&f.state)
        .await;
    assert_eq!(after.headers["location"], "/console/login");
}

#[tokio::test]
async fn console_roles_hide_and_refuse_what_they_may_not_do() {
    let f = fixture();
    let (cookie, csrf) = console_login(&f.state, &f.viewer).await;
    let env = req(Method::GET, "/console/env/dev")
        .header("cookie", &cookie)
        .send(&f.state)
        .await
        .text();
    assert!(!env.contains("Create tenant"));
    let audit_page = req(Method::GET, "/console/audit")
        .header("cookie", &cookie)
        .send(&f.state)
        .await;
    assert_eq!(audit_page.status, StatusCode::FORBIDDEN);
    let c = req(Method::POST, "/console/env/dev/tenants")
        .header("cookie", &cookie)
        .form(&[("slug", "a"), ("csrf", &csrf)])
        .send(&f.state)
        .await;
    assert_eq!(c.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_event_stream_sends_the_status_of_every_environment() {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let f = fixture();
    let (cookie, _) = console_login(&f.state, &f.viewer).await;
    let mut r = http::Request::builder()
        .uri("/console/events")
        .header("cookie", &cookie)
        .body(axum::body::Body::empty())
        .unwrap();
    r.extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            1,
        ))));
    let res = cp_server::router(f.state.clone()).oneshot(r).await.unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let mut body = res.into_body();
    let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
        .await
        .expect("a first event at once")
        .unwrap()
        .unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert!(text.starts_with("event: status\ndata: "), "{text}");
    let data: serde_json::Value =
        serde_json::from_str(text.trim_start_matches("event: status\ndata: ").trim()).unwrap();
    assert_eq!(data[0]["name"], "dev");
    // A probe changes the cache: the stream sends again.
    cp_server::probe::probe(&f.state, "dev").await;
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame()).await;
    assert!(next.is_ok(), "a second event after the probe");
}

#[test]
fn the_router_and_the_access_table_agree() {
    // Every route in the table answers something other than the fallback's 404 for
    // an unknown route, and every API route is in the OpenAPI document.
    let doc = cp_server::openapi::document();
    for r in cp_server::routes::all() {
        if r.surface == cp_server::routes::Surface::Api {
            let m = r.method.as_str().to_lowercase();
            assert!(
                doc["paths"][r.path][&m].is_object(),
                "{} {} missing from /openapi.json",
                r.method,
                r.path
            );
            assert_eq!(doc["paths"][r.path][&m]["operationId"], r.action);
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let f = fixture();
    rt.block_on(async {
        for r in cp_server::routes::all() {
            let uri = r
                .path
                .replace("{env}", "dev")
                .replace("{tenant}", "acme")
                .replace("{backup}", "20261201T020000000Z-000000")
                .replace("{job}", "job-none")
                .replace("{file}", "console.css");
            let a = req(r.method.clone(), &uri).send(&f.state).await;
            let fallback = a.status == StatusCode::NOT_FOUND && a.text().contains("no such route");
            assert!(
                !fallback,
                "{} {} is in the access table but not routed",
                r.method, r.path
            );
            assert_ne!(
                a.status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{} {}: {}",
                r.method,
                r.path,
                a.text()
            );
        }
    });
    // Every schema the document references exists.
    let text = serde_json::to_string(&doc).unwrap();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "missing schema {name}"
        );
    }
}

#[tokio::test]
async fn backup_routes_enforce_roles_and_the_restore_confirmation() {
    let f = common::backup_fixture();
    let id = "20261201T020000000Z-000000";
    // A viewer lists but may not trigger or verify; an editor may not restore.
    let l = req(Method::GET, "/api/v1/environments/dev/backups")
        .bearer(&f.viewer)
        .send(&f.state)
        .await;
    assert_eq!(l.status, StatusCode::OK, "{}", l.text());
    assert_eq!(l.json()["sets"], json!([]));
    for (uri, tok) in [
        ("/api/v1/environments/dev/backups".to_owned(), &f.viewer),
        (
            format!("/api/v1/environments/dev/backups/{id}/verify"),
            &f.viewer,
        ),
        (
            format!("/api/v1/environments/dev/backups/{id}/restore"),
            &f.editor,
        ),
    ] {
        let a = req(Method::POST, &uri)
            .bearer(tok)
            .json(json!({}))
            .send(&f.state)
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{uri}: {}", a.text());
    }
    // Restore without, or with the wrong, confirmation: 400 saying what to send.
    for body in [json!({}), json!({"confirm": "20261130T020000000Z-000000"})] {
        let a = req(
            Method::POST,
            &format!("/api/v1/environments/dev/backups/{id}/restore"),
        )
        .bearer(&f.admin)
        .json(body)
        .send(&f.state)
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
        let msg = a.json()["message"].as_str().unwrap().to_owned();
        assert!(msg.contains(&format!("{{\"confirm\": \"{id}\"}}")), "{msg}");
    }
    // Confirmed, but no such set: 404 naming it.
    let a = req(
        Method::POST,
        &format!("/api/v1/environments/dev/backups/{id}/restore"),
    )
    .bearer(&f.admin)
    .json(json!({"confirm": id}))
    .send(&f.state)
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
    assert!(a.text().contains(id), "{}", a.text());
    // A malformed id and an unknown service say what is wrong.
    let a = req(
        Method::POST,
        "/api/v1/environments/dev/backups/yesterday/verify",
    )
    .bearer(&f.editor)
    .send(&f.state)
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert!(a.text().contains("not a backup id"), "{}", a.text());
    let a = req(Method::POST, "/api/v1/environments/dev/backups")
        .bearer(&f.editor)
        .json(json!({"services": ["mysql"]}))
        .send(&f.state)
        .await;
    assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text());
    assert!(a.text().contains("mysql"), "{}", a.text());
    let a = req(Method::GET, "/api/v1/jobs/job-none")
        .bearer(&f.viewer)
        .send(&f.state)
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND, "{}", a.text());
    // Every one of those mutations is in the audit log, denied or with its result.
    let entries = audit(&f.state, &f.admin, "action=backup.restore").await;
    assert!(
        entries.iter().any(|e| e["outcome"] == "denied"),
        "{entries:?}"
    );
    assert!(
        entries.iter().any(|e| e["outcome"] == "failed"),
        "{entries:?}"
    );
}

#[tokio::test]
async fn a_trigger_while_the_backup_lock_is_held_is_409_naming_the_holder() {
    let f = common::backup_fixture();
    let dir = cp_runtime::state::StateDir::open(f.tmp.path().join("dev"), "dev").unwrap();
    let held = cp_backup::run::lock(&dir, "backup (the test)").unwrap();
    let a = req(Method::POST, "/api/v1/environments/dev/backups")
        .bearer(&f.editor)
        .send(&f.state)
        .await;
    assert_eq!(a.status, StatusCode::CONFLICT, "{}", a.text());
    let msg = a.json()["message"].as_str().unwrap().to_owned();
    assert!(
        msg.contains(&format!("pid {}", std::process::id())) && msg.contains("backup (the test)"),
        "{msg}"
    );
    drop(held);
    // Free again: 202 and a job, which fails (nothing runs) and says why.
    let a = req(Method::POST, "/api/v1/environments/dev/backups")
        .bearer(&f.editor)
        .send(&f.state)
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    let job = a.json()["job"].as_str().unwrap().to_owned();
    // A second trigger while that job runs: 409 naming the job.
    let b = req(Method::POST, "/api/v1/environments/dev/backups")
        .bearer(&f.editor)
        .send(&f.state)
        .await;
    if b.status == StatusCode::CONFLICT {
        assert!(b.text().contains(&job), "{}", b.text());
    } else {
        // The first job already ended (nothing answers, so it can be quick).
        assert_eq!(b.status, StatusCode::ACCEPTED, "{}", b.text());
    }
    let ev = req(Method::GET, &format!("/api/v1/jobs/{job}/events"))
        .bearer(&f.viewer)
        .send(&f.state)
        .await;
    assert_eq!(ev.status, StatusCode::OK);
    let text = ev.text();
    let result = text
        .split("event: result\ndata: ")
        .nth(1)
        .and_then(|r| r.lines().next())
        .unwrap_or_else(|| panic!("no result event: {text}"));
    let v: serde_json::Value = serde_json::from_str(result).unwrap();
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["trigger"], "api");
}

#[tokio::test]
async fn backup_gauges_exist_for_every_backed_up_service_from_start() {
    let f = common::backup_fixture();
    let text = req(Method::GET, "/metrics").send(&f.state).await.text();
    for name in [
        "controlplane_backup_last_success_timestamp_seconds",
        "controlplane_backup_last_run_success",
        "controlplane_backup_duration_seconds",
        "controlplane_backup_size_bytes",
    ] {
        assert_eq!(
            text.matches(&format!("# TYPE {name} gauge")).count(),
            1,
            "{text}"
        );
        for svc in ["postgres", "redis", "nats", "vault"] {
            // Durations are floats: OpenMetrics writes them `0.0`.
            let series = format!("{name}{{env=\"dev\",service=\"{svc}\"}}");
            assert!(
                text.contains(&format!("{series} 0\n"))
                    || text.contains(&format!("{series} 0.0\n")),
                "{name} {svc}: {text}"
            );
        }
    }
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    // A run recorded in the state file (as the CLI writes it) shows at the next scrape.
    let dir = cp_runtime::state::StateDir::open(f.tmp.path().join("dev"), "dev").unwrap();
    let mut m = cp_backup::metrics::Metrics::read(&dir);
    m.record(
        cp_core::names::CoreKind::Redis,
        true,
        1_764_554_400,
        0.5,
        1234,
    );
    m.write(&dir).unwrap();
    let text = req(Method::GET, "/metrics").send(&f.state).await.text();
    assert!(
        text.contains(
            "controlplane_backup_last_success_timestamp_seconds{env=\"dev\",service=\"redis\"} 1764554400\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("controlplane_backup_size_bytes{env=\"dev\",service=\"redis\"} 1234\n"),
        "{text}"
    );
}

#[tokio::test]
async fn the_schedule_shows_the_next_run_and_missed_runs_are_counted() {
    use chrono::TimeZone;
    let f = common::backup_fixture();
    let s = req(Method::GET, "/api/v1/environments/dev/backups/schedule")
        .bearer(&f.viewer)
        .send(&f.state)
        .await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text());
    let v = s.json();
    assert_eq!(v["cron"], "0 2 * * *");
    assert!(
        v["next_run"].as_str().unwrap().ends_with("T02:00:00Z"),
        "{v}"
    );
    assert_eq!(v["running"], false, "{v}");
    // The pure part: daily at 02:00, last run three days and a bit ago.
    let sched = cp_core::model::Schedule {
        cron: "0 2 * * *".into(),
        max_interval: cp_core::units::Duration::from_secs(86_400),
    };
    let last = chrono::Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 5).unwrap();
    let now = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 7, 0, 0).unwrap();
    let m = cp_app::jobs::schedule::missed(&sched, last, now)
        .unwrap()
        .unwrap();
    assert_eq!(m.count, 3);
    assert_eq!(
        m.message,
        "missed 3 scheduled backup runs since 2026-11-28T02:00:05Z (no server ran `0 2 * * *`)"
    );
    let recent = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 2, 0, 1).unwrap();
    assert!(
        cp_app::jobs::schedule::missed(&sched, recent, now)
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_console_backups_page_shows_the_schedule_and_its_forms_need_csrf() {
    let f = common::backup_fixture();
    let (cookie, csrf) = console_login(&f.state, &f.editor).await;
    let page = req(Method::GET, "/console/env/dev/backups")
        .header("cookie", &cookie)
        .send(&f.state)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    assert!(html.contains("Back up now"), "{html}");
    assert!(html.contains("Next scheduled run"), "{html}");
    assert!(html.contains("<code>0 2 * * *</code>"), "{html}");
    let overview = req(Method::GET, "/console")
        .header("cookie", &cookie)
        .send(&f.state)
        .await
        .text();
    assert!(overview.contains("Last backup: "), "{overview}");
    assert!(overview.contains("never (none yet)"), "{overview}");
    // The trigger form without its CSRF token is refused; with it, a job starts.
    let bad = req(Method::POST, "/console/env/dev/backups")
        .header("cookie", &cookie)
        .form(&[])
        .send(&f.state)
        .await;
    assert_eq!(bad.status, StatusCode::FORBIDDEN, "{}", bad.text());
    let ok = req(Method::POST, "/console/env/dev/backups")
        .header("cookie", &cookie)
        .form(&[("csrf", &csrf)])
        .send(&f.state)
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text());
    let to = ok.headers["location"].to_str().unwrap();
    assert!(to.contains("job=job-"), "{to}");
}

#[tokio::test]
async fn pitr_series_come_from_the_last_look_at_the_archive() {
    let f = common::fixture_with(|tmp| {
        vec![
            format!(
                "backup.destinations.local.path={}",
                tmp.join("backups").display()
            ),
            "backup.pitr.enabled=true".to_owned(),
        ]
    });
    // Nothing recorded yet: no PITR series (an alert on them cannot fire on nothing).
    let text = req(Method::GET, "/metrics").send(&f.state).await.text();
    assert!(!text.contains("controlplane_pitr_"), "{text}");
    // What the PITR watch (or `backup list`) records shows at the next scrape.
    let dir = cp_runtime::state::StateDir::open(f.tmp.path().join("dev"), "dev").unwrap();
    cp_backup::metrics::PitrMetrics {
        checked_timestamp_seconds: 1_764_554_460,
        last_archived_timestamp_seconds: Some(1_764_554_400),
        archive_failures_total: Some(3),
        archive_pending_segments: Some(2),
        window_start_timestamp_seconds: Some(1_763_949_600),
        window_end_timestamp_seconds: Some(1_764_554_400),
    }
    .write(&dir)
    .unwrap();
    let text = req(Method::GET, "/metrics").send(&f.state).await.text();
    for (line, kind) in [
        (
            "controlplane_pitr_last_archived_timestamp_seconds{env=\"dev\"} 1764554400\n",
            "# TYPE controlplane_pitr_last_archived_timestamp_seconds gauge",
        ),
        (
            "controlplane_pitr_archive_failures_total{env=\"dev\"} 3\n",
            "# TYPE controlplane_pitr_archive_failures counter",
        ),
        (
            "controlplane_pitr_archive_pending_segments{env=\"dev\"} 2\n",
            "# TYPE controlplane_pitr_archive_pending_segments gauge",
        ),
        (
            "controlplane_pitr_window_start_timestamp_seconds{env=\"dev\"} 1763949600\n",
            "# TYPE controlplane_pitr_window_start_timestamp_seconds gauge",
        ),
    ] {
        assert!(text.contains(line), "{line}{text}");
        assert!(text.contains(kind), "{kind}\n{text}");
    }
}
