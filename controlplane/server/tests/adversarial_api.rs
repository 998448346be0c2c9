//! The API against hostile clients: a table of probes (bad JSON, wrong content types,
//! huge and deeply nested bodies, unknown routes and invented methods, hostile tenant
//! names and keys, unknown backup destinations and services, bad, expired and revoked
//! tokens, path traversal in every kind of id, overlong headers), each answered with
//! the expected 4xx in the server's one error shape and never a 5xx; invented methods
//! and paths that cannot grow `/metrics`; console sessions that end with their token;
//! and, against real PostgreSQL and OpenBao, tenant names and keys refused before the
//! database, tokens bound to a tenant's id and revoked with it, the audit log naming
//! what each change acted on, and tenant listings that read Vault once per interval.

mod common;

use common::{audit, console_login, req, token};
use cp_core::names::CoreKind;
use cp_server::{AppState, Role};
use http::{Method, StatusCode};
use serde_json::{Value, json};

/// Who a probe calls as.
#[derive(Debug, Clone, Copy)]
enum As {
    Nobody,
    Admin,
    Editor,
    Viewer,
    Expired,
    Revoked,
    Raw(&'static str),
}

/// One probe: what is sent, and the status and error code it must get.
struct Probe {
    what: &'static str,
    method: &'static str,
    uri: String,
    who: As,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    status: u16,
    code: Option<&'static str>,
}

fn p(what: &'static str, method: &'static str, uri: &str, who: As, status: u16) -> Probe {
    Probe {
        what,
        method,
        uri: uri.to_owned(),
        who,
        content_type: None,
        body: Vec::new(),
        headers: Vec::new(),
        status,
        code: None,
    }
}

impl Probe {
    fn json(mut self, v: Value) -> Self {
        self.content_type = Some("application/json");
        self.body = serde_json::to_vec(&v).unwrap();
        self
    }
    fn raw(mut self, ct: &'static str, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = Some(ct);
        self.body = body.into();
        self
    }
    fn header(mut self, k: &'static str, v: String) -> Self {
        self.headers.push((k, v));
        self
    }
    fn code(mut self, c: &'static str) -> Self {
        self.code = Some(c);
        self
    }
}

const TENANTS: &str = "/api/v1/environments/dev/tenants";
const BACKUPS: &str = "/api/v1/environments/dev/backups";
const SET: &str = "20261201T020000000Z-000000";

fn probes() -> Vec<Probe> {
    use As::*;
    let long = "a".repeat(5000);
    vec![
        // Bodies.
        p("truncated JSON", "POST", TENANTS, Editor, 400)
            .raw("application/json", br#"{"slug":"#.to_vec())
            .code("bad_request"),
        p("a JSON array, not an object", "POST", TENANTS, Editor, 422)
            .raw("application/json", b"[1,2,3]".to_vec())
            .code("invalid"),
        p("an unknown field", "POST", TENANTS, Editor, 422)
            .json(json!({"slug": "acme", "admin": true}))
            .code("invalid"),
        p("JSON nested 5000 deep", "POST", TENANTS, Editor, 422)
            .raw(
                "application/json",
                format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
            )
            .code("invalid"),
        p(
            "JSON nested 5000 deep in a field",
            "POST",
            TENANTS,
            Editor,
            400,
        )
        .raw(
            "application/json",
            format!(r#"{{"slug": "{}"#, "[".repeat(5000)),
        )
        .code("bad_request"),
        p("a body as text/plain", "POST", TENANTS, Editor, 415)
            .raw("text/plain", br#"{"slug":"acme"}"#.to_vec())
            .code("unsupported_media_type"),
        p("a body as a form", "POST", TENANTS, Editor, 415)
            .raw("application/x-www-form-urlencoded", b"slug=acme".to_vec())
            .code("unsupported_media_type"),
        p("a +json media type", "POST", TENANTS, Editor, 415)
            .raw("application/vnd.evil+json", br#"{"slug":"acme"}"#.to_vec())
            .code("unsupported_media_type"),
        p(
            "a body without a content type",
            "POST",
            TENANTS,
            Editor,
            415,
        )
        .raw("", br#"{"slug":"acme"}"#.to_vec())
        .code("unsupported_media_type"),
        p(
            "a text body to a route that takes none",
            "POST",
            "/api/v1/environments/dev/drift",
            Editor,
            415,
        )
        .raw("text/plain", b"now please".to_vec())
        .code("unsupported_media_type"),
        p("a backup trigger as XML", "POST", BACKUPS, Editor, 415)
            .raw("application/xml", b"<services/>".to_vec())
            .code("unsupported_media_type"),
        p("a 20 KiB body", "POST", TENANTS, Editor, 413)
            .raw(
                "application/json",
                format!(r#"{{"slug":"{}"}}"#, "a".repeat(20 * 1024)),
            )
            .code("too_large"),
        // Tenant names and slugs.
        p("an empty tenant name", "POST", TENANTS, Editor, 422)
            .json(json!({"slug": "acme", "name": ""}))
            .code("invalid"),
        p("a 5000-character tenant name", "POST", TENANTS, Editor, 422)
            .json(json!({"slug": "acme", "name": long}))
            .code("invalid"),
        p("a NUL in the tenant name", "POST", TENANTS, Editor, 422)
            .json(json!({"slug": "acme", "name": "acme\u{0}corp"}))
            .code("invalid"),
        p(
            "an escape sequence in the tenant name",
            "POST",
            TENANTS,
            Editor,
            422,
        )
        .json(json!({"slug": "acme", "name": "\u{1b}[2Jacme"}))
        .code("invalid"),
        p("a 5000-character slug", "POST", TENANTS, Editor, 422)
            .json(json!({"slug": long}))
            .code("invalid"),
        p("a NUL in the slug", "POST", TENANTS, Editor, 422)
            .json(json!({"slug": "ac\u{0}me"}))
            .code("invalid"),
        p("SQL in the slug", "POST", TENANTS, Editor, 422)
            .json(json!({"slug": "x'; DROP TABLE anumate.tenants; --"}))
            .code("invalid"),
        p("an empty slug", "POST", TENANTS, Editor, 422)
            .json(json!({"slug": ""}))
            .code("invalid"),
        // Backups.
        p(
            "an unknown backup destination",
            "POST",
            BACKUPS,
            Editor,
            422,
        )
        .json(json!({"destination": "s3-elsewhere"}))
        .code("invalid"),
        p("an unknown backup service", "POST", BACKUPS, Editor, 422)
            .json(json!({"services": ["mysql"]}))
            .code("invalid"),
        p(
            "verify at an unknown destination",
            "POST",
            &format!("{BACKUPS}/{SET}/verify"),
            Editor,
            422,
        )
        .json(json!({"destination": "../../etc"}))
        .code("invalid"),
        p(
            "restore from an unknown destination",
            "POST",
            &format!("{BACKUPS}/{SET}/restore"),
            Admin,
            422,
        )
        .json(json!({"confirm": SET, "destination": "nowhere"}))
        .code("invalid"),
        // Routes and methods.
        p("an unknown route", "GET", "/api/v1/nope", Admin, 404).code("not_found"),
        p(
            "an unknown API version",
            "GET",
            "/api/v2/environments",
            Admin,
            404,
        )
        .code("not_found"),
        p(
            "a routed path with TRACE",
            "TRACE",
            "/api/v1/environments",
            Viewer,
            405,
        )
        .code("method_not_allowed"),
        p(
            "an invented method on a routed path",
            "BREW",
            "/api/v1/environments",
            Viewer,
            405,
        )
        .code("method_not_allowed"),
        p(
            "an invented method on an unknown path",
            "PROPFIND",
            "/api/v1/x/y/z",
            Viewer,
            404,
        )
        .code("not_found"),
        p(
            "an unknown environment",
            "GET",
            "/api/v1/environments/prod/services",
            Viewer,
            404,
        )
        .code("not_found"),
        // Credentials.
        p("no credentials", "GET", "/api/v1/environments", Nobody, 401).code("unauthorized"),
        p(
            "a token that does not exist",
            "GET",
            "/api/v1/environments",
            Raw("cpt_0000"),
            401,
        )
        .code("unauthorized"),
        p(
            "a JWT with no OIDC configured",
            "GET",
            "/api/v1/environments",
            Raw("eyJhbGciOiJub25lIn0.e30."),
            401,
        )
        .code("unauthorized"),
        p(
            "an expired token",
            "GET",
            "/api/v1/environments",
            Expired,
            401,
        )
        .code("unauthorized"),
        p(
            "a revoked token",
            "GET",
            "/api/v1/environments",
            Revoked,
            401,
        )
        .code("unauthorized"),
        p(
            "a revoked token creating a tenant",
            "POST",
            TENANTS,
            Revoked,
            401,
        )
        .json(json!({"slug": "acme"}))
        .code("unauthorized"),
        p("a viewer creating a tenant", "POST", TENANTS, Viewer, 403)
            .json(json!({"slug": "acme"}))
            .code("forbidden"),
        p(
            "an editor reading the audit log",
            "GET",
            "/api/v1/audit",
            Editor,
            403,
        )
        .code("forbidden"),
        p(
            "a 10 KiB bearer",
            "GET",
            "/api/v1/environments",
            Nobody,
            401,
        )
        .header(
            "authorization",
            format!("Bearer cpt_{}", "f".repeat(10 * 1024)),
        )
        .code("unauthorized"),
        // Path traversal and hostile ids.
        p(
            "traversal as a tenant",
            "GET",
            &format!("{TENANTS}/..%2F..%2Fetc%2Fpasswd"),
            Viewer,
            404,
        )
        .code("not_found"),
        p(
            "a NUL as a tenant",
            "GET",
            &format!("{TENANTS}/acme%00"),
            Viewer,
            404,
        )
        .code("not_found"),
        p(
            "a 5000-character tenant key",
            "GET",
            &format!("{TENANTS}/{long}"),
            Viewer,
            404,
        )
        .code("not_found"),
        p(
            "deleting a traversal",
            "DELETE",
            &format!("{TENANTS}/..%2F..%2Fx"),
            Admin,
            404,
        )
        .json(json!({"confirm": "../../x"}))
        .code("not_found"),
        p(
            "traversal as an environment",
            "GET",
            "/api/v1/environments/..%2F..%2Fetc/services",
            Viewer,
            404,
        )
        .code("not_found"),
        p(
            "traversal as a job",
            "GET",
            "/api/v1/jobs/..%2F..%2Fetc%2Fpasswd",
            Viewer,
            404,
        )
        .code("not_found"),
        p(
            "traversal as a backup id",
            "POST",
            &format!("{BACKUPS}/..%2F..%2Fetc/verify"),
            Editor,
            400,
        )
        .code("bad_request"),
        p(
            "traversal as a static file",
            "GET",
            "/static/..%2F..%2FCargo.toml",
            Nobody,
            404,
        ),
        // Queries and headers.
        p(
            "a malformed audit limit",
            "GET",
            "/api/v1/audit?limit=abc",
            Admin,
            400,
        )
        .code("bad_request"),
        p(
            "an unknown query parameter",
            "GET",
            "/api/v1/environments/dev/services?refresh=yes&x=1",
            Viewer,
            400,
        )
        .code("bad_request"),
        p(
            "a 10 KiB request id",
            "GET",
            "/api/v1/environments",
            Viewer,
            200,
        )
        .header("x-request-id", "r".repeat(10 * 1024)),
    ]
}

#[tokio::test]
async fn hostile_requests_get_the_expected_4xx_and_never_a_5xx() {
    let f = common::backup_fixture();
    let expired = f
        .state
        .tokens
        .create(
            "old",
            Role::Admin,
            None,
            Some(chrono::Duration::seconds(-1)),
        )
        .unwrap();
    let revoked = token(&f.state, "gone", Role::Admin, None);
    f.state.tokens.revoke("gone").unwrap();
    let table = probes();
    assert!(table.len() >= 20, "{} probes", table.len());
    let mut failures = Vec::new();
    for probe in table {
        let method = Method::from_bytes(probe.method.as_bytes()).unwrap();
        let mut r = req(method, &probe.uri);
        let bearer = match probe.who {
            As::Nobody => None,
            As::Admin => Some(f.admin.clone()),
            As::Editor => Some(f.editor.clone()),
            As::Viewer => Some(f.viewer.clone()),
            As::Expired => Some(expired.clone()),
            As::Revoked => Some(revoked.clone()),
            As::Raw(t) => Some(t.to_owned()),
        };
        if let Some(b) = bearer {
            r = r.bearer(&b);
        }
        if let Some(ct) = probe.content_type.filter(|c| !c.is_empty()) {
            r = r.header("content-type", ct);
        }
        for (k, v) in &probe.headers {
            r = r.header(k, v);
        }
        r.body = probe.body;
        let a = r.send(&f.state).await;
        let what = probe.what;
        if a.status.is_server_error() {
            failures.push(format!("{what}: a {} ({})", a.status, a.text()));
            continue;
        }
        if a.status.as_u16() != probe.status {
            failures.push(format!(
                "{what}: {} where {} was expected ({})",
                a.status,
                probe.status,
                a.text()
            ));
            continue;
        }
        let id = a.headers["x-request-id"].to_str().unwrap().to_owned();
        assert!(id.len() <= 64, "{what}: request id {id}");
        if let Some(code) = probe.code {
            let body: Value = serde_json::from_slice(&a.body)
                .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", a.text()));
            if body["error"] != code {
                failures.push(format!(
                    "{what}: error {} where {code} was expected",
                    body["error"]
                ));
            }
            let message = body["message"].as_str().unwrap_or_default();
            if message.is_empty() || message.len() > 600 || message.contains('\0') {
                failures.push(format!("{what}: message {message:?}"));
            }
            if body["request_id"] != id.as_str() {
                failures.push(format!(
                    "{what}: the body names request {} not {id}",
                    body["request_id"]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n  {}", failures.join("\n  "));
    // Nothing of it created anything: no job started, no state written.
    let jobs = req(Method::GET, "/api/v1/jobs")
        .bearer(&f.viewer)
        .send(&f.state)
        .await;
    assert_eq!(jobs.json()["jobs"], json!([]), "{}", jobs.text());
    // Every refused mutation is in the audit log, with who and why.
    let denied = audit(&f.state, &f.admin, "outcome=denied&limit=200").await;
    assert!(
        denied
            .iter()
            .any(|e| e["status"] == 415 && e["actor"] == "token:editor"),
        "{denied:?}"
    );
}

const KNOWN_METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "other",
];

#[tokio::test]
async fn invented_methods_and_paths_cannot_grow_the_metrics() {
    use rand::Rng;
    let f = common::backup_fixture();
    let baseline = req(Method::GET, "/metrics")
        .send(&f.state)
        .await
        .text()
        .len();
    let mut rng = rand::rng();
    let word = |rng: &mut rand::rngs::ThreadRng, n: usize| -> String {
        (0..n)
            .map(|_| char::from(rng.random_range(b'A'..=b'Z')))
            .collect()
    };
    for i in 0..2000 {
        let method = Method::from_bytes(word(&mut rng, 8).as_bytes()).unwrap();
        let uri = match i % 3 {
            0 => "/api/v1/environments".to_owned(),
            1 => format!("/api/v1/{}", word(&mut rng, 12).to_lowercase()),
            _ => format!("/{}/{}", word(&mut rng, 6), word(&mut rng, 6)),
        };
        let a = req(method, &uri).bearer(&f.viewer).send(&f.state).await;
        assert!(
            a.status == StatusCode::METHOD_NOT_ALLOWED || a.status == StatusCode::NOT_FOUND,
            "{uri}: {}",
            a.status
        );
    }
    let m = req(Method::GET, "/metrics").send(&f.state).await;
    let text = m.text();
    assert!(
        text.len() < baseline + 8 * 1024,
        "/metrics grew from {baseline} to {} bytes",
        text.len()
    );
    let routes: Vec<&str> = cp_server::routes::all().map(|r| r.path).collect();
    let mut seen = 0;
    for line in text.lines().filter(|l| l.starts_with("http_request")) {
        let labels = line
            .split_once('{')
            .and_then(|(_, r)| r.split_once('}'))
            .map(|(l, _)| l)
            .unwrap_or_default();
        for kv in labels.split(',') {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let v = v.trim_matches('"');
            match k {
                "method" => assert!(KNOWN_METHODS.contains(&v), "{line}"),
                "route" => assert!(v == "unmatched" || routes.contains(&v), "{line}"),
                _ => {}
            }
        }
        seen += 1;
    }
    assert!(seen > 0, "{text}");
    assert!(
        text.contains(r#"http_requests_total{route="unmatched",method="other",status="405"} "#),
        "{text}"
    );
}

/// Logs in to the console with `tok` and checks a page loads.
async fn page(state: &AppState, cookie: &str) -> common::Answer {
    req(Method::GET, "/console")
        .header("cookie", cookie)
        .send(state)
        .await
}

#[tokio::test]
async fn revoking_or_expiring_a_token_ends_its_console_sessions_at_the_next_request() {
    let f = common::backup_fixture();
    let tok = token(&f.state, "alice", Role::Editor, None);
    let (cookie, csrf) = console_login(&f.state, &tok).await;
    let (cookie2, _) = console_login(&f.state, &tok).await;
    assert_eq!(page(&f.state, &cookie).await.status, StatusCode::OK);
    f.state.tokens.revoke("alice").unwrap();
    // Both sessions made with it end: pages send to the login page, forms change
    // nothing and are audited as denied.
    for c in [&cookie, &cookie2] {
        let a = page(&f.state, c).await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.text());
        assert_eq!(a.headers["location"], "/console/login");
    }
    let a = req(Method::POST, "/console/env/dev/tenants")
        .header("cookie", &cookie)
        .form(&[("slug", "acme"), ("csrf", &csrf)])
        .send(&f.state)
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.headers["location"], "/console/login");
    let entries = audit(&f.state, &f.admin, "action=console.tenant_create").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        (entries[0]["outcome"].clone(), entries[0]["status"].clone()),
        (json!("denied"), json!(401)),
        "{entries:?}"
    );
    // A token made again under the same name is another token: the old sessions stay
    // ended.
    let _again = token(&f.state, "alice", Role::Editor, None);
    assert_eq!(page(&f.state, &cookie).await.status, StatusCode::SEE_OTHER);

    // Expiry ends a session too (the server's clock moved past it, no sleeping).
    let short = f
        .state
        .tokens
        .create(
            "brief",
            Role::Viewer,
            None,
            Some(chrono::Duration::seconds(60)),
        )
        .unwrap();
    let (cookie, _) = console_login(&f.state, &short).await;
    assert_eq!(page(&f.state, &cookie).await.status, StatusCode::OK);
    f.state.clock.advance(chrono::Duration::seconds(61));
    let a = page(&f.state, &cookie).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.text());
    assert_eq!(a.headers["location"], "/console/login");
}

/// Listeners on every service port of the fixture's environment that accept and never
/// answer: a job that connects hangs there, so it runs as long as the test needs.
async fn black_holes(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let mut out = Vec::new();
    for set in &state.targets["dev"].sets {
        let Some(port) = set
            .split_once("port=")
            .and_then(|(_, p)| p.parse::<u16>().ok())
        else {
            continue;
        };
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        out.push(tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((sock, _)) = l.accept().await {
                held.push(sock);
            }
        }));
    }
    out
}

#[tokio::test]
async fn a_job_event_stream_ends_when_its_token_or_session_is_revoked_or_expires() {
    // A backup of Redis alone, whose password is given (nothing was brought up to
    // generate one), against a Redis that accepts and never answers: the job runs
    // as long as the test needs.
    let tmp = tempfile::tempdir().unwrap();
    let mut sets = cp_testkit::port_sets();
    sets.extend(
        cp_testkit::only(&[CoreKind::Redis])
            .into_iter()
            .filter(|s| s != "backup.enabled=false"),
    );
    sets.extend([
        "platform=process".to_owned(),
        "backup.services=[redis]".to_owned(),
        "services.redis.admin_password=never-checked".to_owned(),
        "services.redis.app_password=never-checked-either".to_owned(),
        format!(
            "backup.destinations.local.path={}",
            tmp.path().join("backups").display()
        ),
    ]);
    let state = AppState::new(common::config(
        sets,
        &tmp.path().join("dev"),
        &tmp.path().join("server"),
    ));
    let f = common::Fixture {
        admin: token(&state, "admin", Role::Admin, None),
        editor: token(&state, "editor", Role::Editor, None),
        viewer: token(&state, "viewer", Role::Viewer, None),
        state,
        tmp,
    };
    let holes = black_holes(&f.state).await;
    let a = req(Method::POST, "/api/v1/environments/dev/backups")
        .bearer(&f.editor)
        .json(json!({"services": ["redis"]}))
        .send(&f.state)
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text());
    let job = a.json()["job"].as_str().unwrap().to_owned();
    let api = format!("/api/v1/jobs/{job}/events");
    let console = format!("/console/jobs/{job}/events");
    let open_for = std::time::Duration::from_millis(1500);
    let ends_in = std::time::Duration::from_secs(3);

    // An API stream: open while the token holds, ended once it is revoked.
    let tok = token(&f.state, "follower", Role::Viewer, None);
    let res = req(Method::GET, &api).bearer(&tok).open(&f.state).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    assert!(
        !common::ends_within(&mut body, open_for).await,
        "the job ended or the stream closed by itself; the test needs a running job: {}",
        serde_json::to_string(&f.state.jobs.get(&job).unwrap().view()).unwrap()
    );
    f.state.tokens.revoke("follower").unwrap();
    assert!(
        common::ends_within(&mut body, ends_in).await,
        "the stream went on after its token was revoked"
    );

    // The console's stream of the same job, through a session: its token expiring
    // (the server's clock moved past it) ends it.
    let brief = f
        .state
        .tokens
        .create(
            "brief",
            Role::Viewer,
            None,
            Some(chrono::Duration::seconds(60)),
        )
        .unwrap();
    let (cookie, _) = console_login(&f.state, &brief).await;
    let res = req(Method::GET, &console)
        .header("cookie", &cookie)
        .open(&f.state)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    // The console's status stream of the same session ends with it.
    let res = req(Method::GET, "/console/events")
        .header("cookie", &cookie)
        .open(&f.state)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut status = res.into_body();
    assert!(!common::ends_within(&mut body, open_for).await);
    assert!(!common::ends_within(&mut status, std::time::Duration::from_millis(10)).await);
    f.state.clock.advance(chrono::Duration::seconds(61));
    assert!(
        common::ends_within(&mut body, ends_in).await,
        "the console's job stream went on after its session's token expired"
    );
    assert!(
        common::ends_within(&mut status, ends_in).await,
        "the console's status stream went on after its session's token expired"
    );
    let ended = req(Method::GET, &console)
        .header("cookie", &cookie)
        .send(&f.state)
        .await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER, "{}", ended.text());
    for h in holes {
        h.abort();
    }
}

// ---- Against real PostgreSQL and OpenBao ---------------------------------------

/// The lines of OpenBao's audit log that read `path`.
fn vault_reads(root: &std::path::Path, path: &str) -> usize {
    fn find(dir: &std::path::Path) -> Option<std::path::PathBuf> {
        for e in std::fs::read_dir(dir).ok()? {
            let p = e.ok()?.path();
            if p.is_dir() {
                if let Some(f) = find(&p) {
                    return Some(f);
                }
            } else if p.file_name().is_some_and(|n| n == "vault-audit.log") {
                return Some(p);
            }
        }
        None
    }
    let log = find(root).expect("OpenBao's audit log");
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter(|l| l.contains(r#""type":"request""#) && l.contains(path))
        .count()
}

#[tokio::test]
async fn a_failing_probe_shows_the_kind_of_refusal_never_the_servers_words() {
    let t = cp_testkit::TestEnv::only(&[CoreKind::Redis], &["platform=process"]);
    t.up().await.expect("redis comes up");
    // The server's configuration has another admin password than the one Redis
    // holds: every probe is refused, and Redis says why in its own words.
    let mut sets = t.sets.clone();
    sets.push("services.redis.admin_password=not-the-password".into());
    let server = tempfile::tempdir().unwrap();
    let state = AppState::new(common::config(sets, &t.root, server.path()));
    let viewer = token(&state, "viewer", Role::Viewer, None);
    let a = req(
        Method::GET,
        "/api/v1/environments/dev/services?refresh=true",
    )
    .bearer(&viewer)
    .send(&state)
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let body = a.text();
    let services = a.json();
    let redis = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "redis")
        .unwrap_or_else(|| panic!("no redis: {body}"))
        .clone();
    let health = redis["health"].to_string();
    assert!(health.contains("unhealthy"), "{redis}");
    // The kind of refusal, not Redis's sentence.
    assert!(
        health.contains("redis refused `AUTH`: WRONGPASS"),
        "{redis}"
    );
    assert!(!body.contains("username-password"), "{body}");
    assert!(!body.contains("not-the-password"), "{body}");
}

#[tokio::test]
async fn against_postgres_and_openbao() {
    let t = cp_testkit::TestEnv::only(
        &[CoreKind::Postgres, CoreKind::Vault],
        &["platform=process"],
    );
    t.up().await.expect("the services come up");
    let target = common::target(t.sets.clone(), t.root.clone());
    {
        let s = cp_app::Session::open(&target, cp_app::Mode::Mutating("seed"), None)
            .await
            .expect("a session");
        cp_app::ops::seed(&s).await.expect("seed");
    }
    let server = tempfile::tempdir().unwrap();
    let mut config = common::config(t.sets.clone(), &t.root, server.path());
    // Long enough that every listing below falls in one interval.
    config.probe_interval = std::time::Duration::from_secs(300);
    let state = AppState::new(config);
    let admin = token(&state, "admin", Role::Admin, None);
    let editor = token(&state, "editor", Role::Editor, None);

    // Hostile names and keys are refused before the database, naming the rule; no
    // answer carries the database's words.
    for (body, rule) in [
        (json!({"slug": "acme", "name": ""}), "empty"),
        (
            json!({"slug": "acme", "name": "a".repeat(5000)}),
            "longer than 200",
        ),
        (
            json!({"slug": "acme", "name": "a\u{0}b"}),
            "control character",
        ),
        (json!({"slug": "a".repeat(5000)}), "not a valid tenant slug"),
    ] {
        let a = req(Method::POST, TENANTS)
            .bearer(&editor)
            .json(body)
            .send(&state)
            .await;
        assert_eq!(a.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", a.text());
        assert!(
            a.json()["message"].as_str().unwrap().contains(rule),
            "{}",
            a.text()
        );
    }
    for key in ["acme%00", "..%2F..%2Fetc", &"b".repeat(5000)] {
        let a = req(Method::GET, &format!("{TENANTS}/{key}"))
            .bearer(&editor)
            .send(&state)
            .await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{key}: {}", a.text());
    }

    // A tenant made: the audit log names its slug and id.
    let a = req(Method::POST, TENANTS)
        .bearer(&editor)
        .json(json!({"slug": "acme", "name": "Acme Corp"}))
        .send(&state)
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text());
    let id = a.json()["tenant"]["id"].as_str().unwrap().to_owned();
    let e = &audit(&state, &admin, "action=tenant.create&outcome=succeeded").await[0];
    assert_eq!(e["subject"]["tenant_id"], id.as_str(), "{e}");
    assert_eq!(e["subject"]["tenant_slug"], "acme", "{e}");
    assert_eq!(e["subject"]["env"], "dev", "{e}");

    // Listing tenants reads each tenant's Vault parts once per probe interval.
    let key_path = format!("keys/tenant-{id}");
    let before = vault_reads(&t.root, &key_path);
    let list = || async {
        let l = req(Method::GET, TENANTS).bearer(&editor).send(&state).await;
        assert_eq!(l.status, StatusCode::OK, "{}", l.text());
        assert_eq!(l.json()["tenants"][0]["complete"], true, "{}", l.text());
    };
    list().await;
    assert_eq!(
        vault_reads(&t.root, &key_path),
        before + 1,
        "one read for the first listing"
    );
    for _ in 0..5 {
        list().await;
        let g = req(Method::GET, &format!("{TENANTS}/acme"))
            .bearer(&editor)
            .send(&state)
            .await;
        assert_eq!(g.status, StatusCode::OK, "{}", g.text());
    }
    assert_eq!(
        vault_reads(&t.root, &key_path),
        before + 1,
        "listing again within the probe interval read Vault again"
    );

    // A token scoped to the tenant is bound to its id; an unknown tenant resolves to
    // nothing (the CLI refuses it with exit 3).
    let s = cp_app::Session::open(&target, cp_app::Mode::ReadOnly, None)
        .await
        .unwrap();
    let found = cp_app::ops::tenant_find(&s, "acme").await.unwrap().unwrap();
    assert_eq!(found.id, id);
    assert!(
        cp_app::ops::tenant_find(&s, "globex")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        cp_app::ops::tenant_find(&s, "../x")
            .await
            .unwrap()
            .is_none()
    );
    let scoped = token(&state, "acme-dash", Role::Viewer, Some(&id));
    let l = req(Method::GET, TENANTS).bearer(&scoped).send(&state).await;
    assert_eq!(l.json()["tenants"][0]["slug"], "acme", "{}", l.text());
    // A token scoped by slug (made before tokens were bound to ids) is refused: it
    // would reach whatever tenant holds that slug later.
    let by_slug = token(&state, "acme-by-slug", Role::Viewer, Some("acme"));
    let l = req(Method::GET, TENANTS)
        .bearer(&by_slug)
        .send(&state)
        .await;
    assert_eq!(l.status, StatusCode::UNAUTHORIZED, "{}", l.text());
    // Deleting through the server revokes every token of the tenant, by id or slug.
    token(&state, "acme-stale", Role::Viewer, Some(&id));

    // Deleting the tenant revokes its tokens (and their console sessions), and the
    // audit log names the tenant and the tokens.
    let d = req(Method::DELETE, &format!("{TENANTS}/acme"))
        .bearer(&admin)
        .json(json!({"confirm": "acme"}))
        .send(&state)
        .await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.text());
    let e = &audit(&state, &admin, "action=tenant.delete&outcome=succeeded").await[0];
    assert_eq!(e["subject"]["tenant_id"], id.as_str(), "{e}");
    assert_eq!(e["subject"]["tenant_slug"], "acme", "{e}");
    assert_eq!(
        e["subject"]["tokens_revoked"],
        json!(["acme-dash", "acme-by-slug", "acme-stale"]),
        "{e}"
    );
    let l = req(Method::GET, TENANTS).bearer(&scoped).send(&state).await;
    assert_eq!(l.status, StatusCode::UNAUTHORIZED, "{}", l.text());
    // Made again under the same slug, it is another tenant.
    let a = req(Method::POST, TENANTS)
        .bearer(&editor)
        .json(json!({"slug": "acme"}))
        .send(&state)
        .await;
    assert_ne!(a.json()["tenant"]["id"], id.as_str());
    // The stale token, bound to the old id, is put back as if it had escaped the
    // revocation (made by an older server, or the tenant deleted by the CLI): it
    // authenticates, and sees nothing of the new `acme`.
    let stale = state
        .tokens
        .create("acme-stale-2", Role::Viewer, Some(id.clone()), None)
        .unwrap();
    let l = req(Method::GET, TENANTS).bearer(&stale).send(&state).await;
    assert_eq!(l.status, StatusCode::OK, "{}", l.text());
    assert_eq!(l.json()["tenants"], json!([]), "{}", l.text());
    let g = req(Method::GET, &format!("{TENANTS}/acme"))
        .bearer(&stale)
        .send(&state)
        .await;
    assert_eq!(g.status, StatusCode::NOT_FOUND, "{}", g.text());
}
