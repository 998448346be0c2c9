//! Shared by the server's tests: a state over the shipped `dev` environment (on free
//! ports, so nothing real is reached unless a test starts it), tokens of each role,
//! and `call`, which sends one request through `router(state).oneshot` from a given
//! client address.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::ConnectInfo;
use cp_server::{AppState, Config, Role};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// The state directory of the server and the environment, kept while the test runs.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub state: AppState,
    pub admin: String,
    pub editor: String,
    pub viewer: String,
}

pub fn target(sets: Vec<String>, state_dir: PathBuf) -> cp_app::Target {
    cp_app::Target {
        env: "dev".into(),
        environments: cp_testkit::repo_root().join("environments"),
        sets,
        state_dir: Some(state_dir),
    }
}

/// A server for `dev` with its state in `env_state`, its own in `server_dir`.
pub fn config(sets: Vec<String>, env_state: &Path, server_dir: &Path) -> Config {
    let mut c = Config::new(
        vec![target(sets, env_state.to_path_buf())],
        server_dir.to_path_buf(),
    );
    c.probe_interval = std::time::Duration::from_millis(300);
    c
}

pub fn token(state: &AppState, name: &str, role: Role, tenant: Option<&str>) -> String {
    state
        .tokens
        .create(name, role, tenant.map(str::to_owned), None)
        .unwrap()
}

/// `dev` on free ports with nothing running, `platform: process`.
pub fn fixture() -> Fixture {
    fixture_with(|_| Vec::new())
}

/// [`fixture`] with more `--set`s, made from the test's temp directory.
pub fn fixture_with(more: impl FnOnce(&Path) -> Vec<String>) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let mut sets = cp_testkit::port_sets();
    sets.push("platform=process".into());
    sets.extend(more(tmp.path()));
    let state = AppState::new(config(
        sets,
        &tmp.path().join("dev"),
        &tmp.path().join("server"),
    ));
    Fixture {
        admin: token(&state, "admin", Role::Admin, None),
        editor: token(&state, "editor", Role::Editor, None),
        viewer: token(&state, "viewer", Role::Viewer, None),
        state,
        tmp,
    }
}

/// What a request got back.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A request builder with the usual parts.
pub struct Req {
    pub method: Method,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub ip: String,
}

pub fn req(method: Method, uri: &str) -> Req {
    Req {
        method,
        uri: uri.to_owned(),
        headers: Vec::new(),
        body: Vec::new(),
        ip: "127.0.0.1".into(),
    }
}

impl Req {
    pub fn bearer(mut self, t: &str) -> Self {
        self.headers
            .push(("authorization".into(), format!("Bearer {t}")));
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn json(mut self, v: serde_json::Value) -> Self {
        self.headers
            .push(("content-type".into(), "application/json".into()));
        self.body = serde_json::to_vec(&v).unwrap();
        self
    }
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Self {
        self.headers.push((
            "content-type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
        self.body = serde_urlencoded::to_string(pairs).unwrap().into_bytes();
        self
    }
    pub fn from(mut self, ip: &str) -> Self {
        self.ip = ip.into();
        self
    }
    /// Sends the request and returns the response with its body still streaming
    /// (an event stream).
    pub async fn open(self, state: &AppState) -> http::Response<Body> {
        let mut b = Request::builder().method(self.method).uri(&self.uri);
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        let mut r = b.body(Body::from(self.body)).unwrap();
        let addr: SocketAddr = format!("{}:40000", self.ip).parse().unwrap();
        r.extensions_mut().insert(ConnectInfo(addr));
        cp_server::router(state.clone()).oneshot(r).await.unwrap()
    }

    pub async fn send(self, state: &AppState) -> Answer {
        let res = self.open(state).await;
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        Answer {
            status,
            headers,
            body,
        }
    }
}

/// A logged-in console session: (cookie header, csrf token).
pub async fn console_login(state: &AppState, token: &str) -> (String, String) {
    let form = req(Method::GET, "/console/login").send(state).await;
    assert_eq!(form.status, StatusCode::OK);
    let login_csrf = set_cookie(&form.headers, "cp_login_csrf").unwrap();
    let res = req(Method::POST, "/console/login")
        .header("cookie", &format!("cp_login_csrf={login_csrf}"))
        .form(&[("token", token), ("csrf", &login_csrf)])
        .send(state)
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text());
    let sid = set_cookie(&res.headers, "cp_session").unwrap();
    let cookie = format!("cp_session={sid}");
    let page = req(Method::GET, "/console")
        .header("cookie", &cookie)
        .send(state)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a csrf field")
        .to_owned();
    (cookie, csrf)
}

/// The value of a `Set-Cookie` of `name`.
pub fn set_cookie(h: &HeaderMap, name: &str) -> Option<String> {
    h.get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            v.split(';')
                .next()
                .and_then(|kv| kv.split_once('='))
                .filter(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
        })
}

/// The audit entries, newest first.
pub async fn audit(state: &AppState, admin: &str, query: &str) -> Vec<serde_json::Value> {
    let a = req(Method::GET, &format!("/api/v1/audit?{query}"))
        .bearer(admin)
        .send(state)
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    a.json()["entries"].as_array().unwrap().clone()
}

/// Reads a streaming body until it ends or `within` passes: true when it ended.
pub async fn ends_within(body: &mut Body, within: std::time::Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return false,
            Ok(None) => return true,
            Ok(Some(Err(e))) => panic!("the stream failed: {e}"),
            Ok(Some(Ok(_))) => {}
        }
    }
}

/// `dev` with nothing running (every service on a free port, so nothing real is
/// reached), the process platform, backups to a directory of the test, and a token of
/// each role.
pub fn backup_fixture() -> Fixture {
    fixture_with(|tmp| {
        vec![format!(
            "backup.destinations.local.path={}",
            tmp.join("backups").display()
        )]
    })
}
