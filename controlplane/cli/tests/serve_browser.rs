//! The console in a real browser: Debian's Chromium, headless, through chromedriver
//! (fantoccini over rustls). Log in with a token, see the four services healthy,
//! create and delete a tenant, read the audit entries those made, have a form
//! without its CSRF token refused, then kill one service's process and watch the
//! overview show it down without a reload. Phone width, keyboard focus and the
//! browser console are checked on the way. Every page is laid out at 1400 and 390 px
//! wide: nothing wider than the window, no table cut off, every cell's text visible
//! or in a title, and the charts present with text alternatives that say the API's
//! numbers; no word in a table breaks across lines (a phone stacks each row). With
//! PITR on, the backups page shows the recoverable window. Screenshots go to `target/tmp/console/` (and, with CP_BLESS=1, the ones
//! the README shows to `docs/`).

// Tests run the binaries they judge (ours, chromedriver, schemathesis) by path on purpose.
#![allow(clippy::disallowed_methods)]

mod common;
mod serve;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// chromedriver, stopped (by pid) when dropped, with its own temp directory (Chromium
/// keeps its profile and singleton files there), removed with the test.
fn chromedriver() -> (tempfile::TempDir, cp_testkit::Down, String) {
    let port = cp_testkit::free_port();
    let tmp = tempfile::tempdir().unwrap();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is installed (`apt-get install chromium chromium-driver`; `cargo xtask test` does it)");
    let url = format!("http://127.0.0.1:{port}");
    // Ready when it accepts a connection.
    serve::eventually(30, "chromedriver to listen", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (tmp, cp_testkit::Down::process(child), url)
}

/// The browser's console log since the last call (chromedriver's `se/log`).
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }
    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

async fn console_errors(c: &Client) -> Vec<String> {
    let v = c
        .issue_cmd(BrowserLog)
        .await
        .expect("read the browser's console");
    v.as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn text(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

async fn until(c: &Client, secs: u64, what: &str, css: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let t = text(c, css).await;
        if ok(&t) {
            return t;
        }
        if Instant::now() > deadline {
            let _ = shot(c, "timeout").await;
            panic!("timed out waiting for {what} ({css} shows {t:?})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn shot(c: &Client, name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, c.screenshot().await.unwrap()).unwrap();
    path
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium() {
    // With PITR on and a base backup taken, so the backups page has a window to show.
    let s = tokio::task::spawn_blocking(|| {
        serve::served_with(
            &[
                "backup.pitr.enabled=true".into(),
                "backup.pitr.archive_timeout=2s".into(),
            ],
            &[&["backup", "--base"]],
        )
    })
    .await
    .unwrap();
    // Bound in this order so chromedriver stops before its directory goes.
    let (_tmp, _driver, wd) = chromedriver();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"]}),
    );
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    let c = ClientBuilder::rustls()
        .unwrap()
        .capabilities(caps)
        .connect(&wd)
        .await
        .expect("a Chromium session");
    // Close the browser however the journey ends (a panic included), so no Chromium
    // is left behind holding the server's event stream open.
    let result =
        futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(journey(&c, &s))).await;
    let _ = c.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

async fn journey(c: &Client, s: &serve::Served) {
    // Log in.
    c.goto(&s.url("/console")).await.unwrap();
    assert!(
        c.current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/console/login")
    );
    // The keyboard reaches the token field first (it has focus) and submits with Enter.
    let active = js(
        c,
        "return document.activeElement && document.activeElement.id",
    )
    .await;
    assert_eq!(active, json!("token"));
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(&format!("{}\u{E007}", s.admin))
        .await
        .unwrap();
    serve_eventually(c, "the overview after login", |u| u.ends_with("/console")).await;

    // The four services healthy (the prober probes every second; the page updates).
    for svc in ["postgres", "redis", "nats", "vault"] {
        until(
            c,
            30,
            &format!("{svc} healthy"),
            &format!("[data-health=\"dev/{svc}\"]"),
            |t| t == "healthy",
        )
        .await;
    }
    until(c, 30, "4/4 healthy", "[data-env-summary=\"dev\"]", |t| {
        t.contains("4/4 healthy")
    })
    .await;
    let overview = shot(c, "overview").await;
    let docs = cp_testkit::repo_root().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    // Not a golden (screenshots differ by a pixel from run to run): refreshed by
    // CP_BLESS=1 for the README, never compared.
    if cp_testkit::blessing() {
        std::fs::copy(&overview, docs.join("console.png")).unwrap();
    }
    // Keyboard: the first Tab lands on the skip link.
    c.find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("\u{E004}")
        .await
        .unwrap();
    assert_eq!(
        js(c, "return document.activeElement.className").await,
        json!("skip")
    );

    // Phone width: nothing wider than the screen.
    c.set_window_size(390, 844).await.unwrap();
    let overflow = js(
        c,
        "return document.documentElement.scrollWidth - window.innerWidth",
    )
    .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "the overview scrolls sideways at phone width by {overflow}px"
    );
    shot(c, "overview-phone").await;
    c.set_window_size(1400, 900).await.unwrap();

    // Create a tenant on the environment's page.
    c.goto(&s.url("/console/env/dev")).await.unwrap();
    c.find(Locator::Css("#slug"))
        .await
        .unwrap()
        .send_keys("browser-co")
        .await
        .unwrap();
    c.find(Locator::Css("#name"))
        .await
        .unwrap()
        .send_keys("Browser Co")
        .await
        .unwrap();
    c.find(Locator::Css("#create-tenant"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(c, 30, "the created notice", ".notice", |t| {
        t.contains("tenant browser-co created")
    })
    .await;
    assert!(
        text(c, "[data-tenant=\"browser-co\"]")
            .await
            .contains("Browser Co")
    );
    shot(c, "tenant-created").await;

    // A form without its CSRF token is refused.
    js(
        c,
        "document.querySelector('form.stack input[name=csrf]').remove(); return 1",
    )
    .await;
    c.find(Locator::Css("#slug"))
        .await
        .unwrap()
        .send_keys("no-csrf")
        .await
        .unwrap();
    c.find(Locator::Css("#create-tenant"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(c, 10, "the CSRF refusal", "h1", |t| t.starts_with("403")).await;
    assert!(text(c, ".error").await.contains("CSRF"));

    // Delete it, confirming with its slug.
    c.goto(&s.url("/console/env/dev")).await.unwrap();
    c.find(Locator::Css("#confirm-browser-co"))
        .await
        .unwrap()
        .send_keys("browser-co")
        .await
        .unwrap();
    c.find(Locator::Css("[data-delete=\"browser-co\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    until(c, 30, "the deleted notice", ".notice", |t| {
        t.contains("tenant browser-co deleted")
    })
    .await;
    assert!(
        c.find(Locator::Css("[data-tenant=\"browser-co\"]"))
            .await
            .is_err()
    );

    // Trigger a backup and watch it complete, live (the page follows the job's SSE).
    c.goto(&s.url("/console/env/dev/backups")).await.unwrap();
    c.find(Locator::Css("[data-trigger-backup=\"dev\"]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let done = until(
        c,
        120,
        "the backup job succeeded",
        "[data-job-state]",
        |t| t.starts_with("succeeded") || t.starts_with("failed"),
    )
    .await;
    assert_eq!(done, "succeeded", "the backup job");
    assert!(
        text(c, "[data-job-events]").await.contains("postgres"),
        "the job's progress lists its services"
    );
    shot(c, "backup-done").await;
    c.goto(&s.url("/console/env/dev/backups")).await.unwrap();
    let state = text(c, "tr[data-set] td").await;
    assert_eq!(state, "complete", "the new set listed");

    // Every page at a wide window and at phone width: laid out within the window,
    // charts present and saying the API's numbers.
    for (width, height) in [(1400, 900), (390, 844)] {
        c.set_window_size(width, height).await.unwrap();
        for (page, name) in [
            ("/console", "overview"),
            ("/console/env/dev", "environment"),
            ("/console/env/dev/backups", "backups"),
            ("/console/alerts", "alerts"),
            ("/console/audit", "audit"),
        ] {
            c.goto(&s.url(page)).await.unwrap();
            fits(c, &format!("{page} at {width}px")).await;
            let png = shot(c, &format!("{name}-{width}")).await;
            if cp_testkit::blessing() && matches!(name, "overview" | "backups" | "alerts") {
                std::fs::copy(&png, docs.join(format!("console-{name}-{width}.png"))).unwrap();
            }
            match name {
                "overview" | "environment" => history_charts(c, s).await,
                "backups" => {
                    backup_charts(c, s).await;
                    pitr_window(c, s).await;
                }
                "alerts" => alert_chart(c, s).await,
                _ => {}
            }
        }
    }
    c.set_window_size(1400, 900).await.unwrap();

    // The audit page shows what those did.
    c.goto(&s.url("/console/audit")).await.unwrap();
    for (action, outcome) in [
        ("console.tenant_create", "succeeded"),
        ("console.tenant_delete", "succeeded"),
        ("console.tenant_create", "denied"),
        ("console.backup_trigger", "allowed"),
        ("console.login", "succeeded"),
    ] {
        let css = format!("tr[data-action=\"{action}\"][data-outcome=\"{outcome}\"]");
        assert!(
            c.find(Locator::Css(&css)).await.is_ok(),
            "no audit row {action} {outcome}"
        );
    }
    assert!(
        text(
            c,
            "tr[data-action=\"console.tenant_create\"][data-outcome=\"denied\"]"
        )
        .await
        .contains("CSRF")
    );
    shot(c, "audit").await;

    // The alerts page lists the rules with this environment's thresholds.
    c.goto(&s.url("/console/alerts")).await.unwrap();
    assert!(text(c, "main").await.contains("PodRestarting"));

    // Kill one service; the overview shows it down without a reload.
    c.goto(&s.url("/console")).await.unwrap();
    until(c, 30, "redis healthy", "[data-health=\"dev/redis\"]", |t| {
        t == "healthy"
    })
    .await;
    js(c, "window.__notReloaded = true; return 1").await;
    let pid = s.pid("redis");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    until(c, 30, "redis down", "[data-health=\"dev/redis\"]", |t| {
        t.starts_with("down")
    })
    .await;
    assert_eq!(
        js(c, "return window.__notReloaded === true").await,
        json!(true),
        "the page was reloaded"
    );
    let cls = js(
        c,
        "return document.querySelector('[data-health=\"dev/redis\"]').className",
    )
    .await;
    assert_eq!(cls, json!("bad"));
    assert!(
        text(c, "[data-env-summary=\"dev\"]")
            .await
            .contains("3/4 healthy")
    );
    shot(c, "redis-down").await;

    // Nothing went wrong in the browser (CSP violations and script errors are SEVERE).
    // The one 403 is the refused form above, on purpose.
    let errors: Vec<String> = console_errors(c)
        .await
        .into_iter()
        .filter(|e| !(e.contains("/console/env/dev/tenants ") && e.contains("status of 403")))
        .collect();
    assert!(
        errors.is_empty(),
        "the browser console has errors: {errors:#?}"
    );
}

/// An API document, as the admin reads it.
async fn api(s: &serve::Served, path: &str) -> Value {
    let r = reqwest::Client::new()
        .get(s.url(path))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    r.json().await.unwrap()
}

/// The page is no wider than the window, no table box scrolls sideways, every
/// table cell's text is either wholly visible or in a title, and no word in a table
/// is broken across lines ("post-/gres", "heal-/thy" at phone width).
async fn fits(c: &Client, what: &str) {
    let v = js(
        c,
        r#"
        const d = document.documentElement;
        // A phone's stacked tables keep their column headers for screen readers
        // only, in a visually hidden (1px) head: not laid out to be read.
        const unseen = cell => {
          const head = cell.closest('thead');
          return head && head.getBoundingClientRect().width <= 1;
        };
        // A word is broken when its characters sit on more than one line: a Range
        // over it has boxes at different heights. Visually hidden text (the phone's
        // hidden column headers, labels for screen readers) is not laid out to read.
        const broken = [];
        document.querySelectorAll('td, th').forEach(cell => {
          if (unseen(cell)) return;
          const walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
          for (let n = walk.nextNode(); n; n = walk.nextNode()) {
            if (n.parentElement.closest('.sr')) continue;
            for (const m of n.data.matchAll(/\S+/g)) {
              const r = document.createRange();
              r.setStart(n, m.index);
              r.setEnd(n, m.index + m[0].length);
              const lines = new Set([...r.getClientRects()]
                .filter(b => b.width > 0).map(b => Math.round(b.bottom)));
              if (lines.size > 1) broken.push(m[0]);
            }
          }
        });
        const cut = [];
        document.querySelectorAll('td, th').forEach(cell => {
          if (unseen(cell)) return;
          const text = cell.textContent.trim();
          const boxes = [cell, ...cell.querySelectorAll('span, a, code')];
          const clipped = boxes.some(e => e.clientWidth > 0 && e.scrollWidth > e.clientWidth + 1);
          if (!clipped) return;
          const titled = [cell, ...cell.querySelectorAll('[title]')]
            .some(e => e.title && e.title.trim() === text);
          if (!titled) cut.push(text);
        });
        const boxes = [...document.querySelectorAll('.scroll, table, svg.chart')]
          .filter(e => e.scrollWidth > e.clientWidth + 1
            || e.getBoundingClientRect().right > d.clientWidth + 1)
          .map(e => e.tagName + ' ' + (e.getAttribute('class') || ''));
        return {scroll: d.scrollWidth, client: d.clientWidth, cut, boxes, broken};
        "#,
    )
    .await;
    assert_eq!(v["broken"], json!([]), "{what}: words broken across lines");
    assert!(
        v["scroll"].as_i64().unwrap() <= v["client"].as_i64().unwrap(),
        "{what}: the page is wider than the window: {v}"
    );
    assert_eq!(
        v["boxes"],
        json!([]),
        "{what}: boxes wider than their place"
    );
    assert_eq!(v["cut"], json!([]), "{what}: cells cut off without a title");
}

/// The `<desc>` of the chart `key`.
async fn chart_desc(c: &Client, key: &str) -> String {
    let v = js(
        c,
        &format!(
            "const e = document.querySelector('svg[data-chart=\"{key}\"]'); \
             return e && e.getAttribute('role') === 'img' && e.querySelector('title').textContent \
               ? e.querySelector('desc').textContent : null"
        ),
    )
    .await;
    v.as_str()
        .unwrap_or_else(|| panic!("no chart {key} with a title and a desc"))
        .to_owned()
}

fn at(v: &Value) -> String {
    let t: chrono::DateTime<chrono::Utc> = v.as_str().unwrap().parse().unwrap();
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Health and drift of the last day: each sample the chart lists is one the API
/// answers (the API, asked after the page, may know one more).
async fn history_charts(c: &Client, s: &serve::Served) {
    let health = chart_desc(c, "health/dev").await;
    let drift = chart_desc(c, "drift/dev").await;
    let h = api(s, "/api/v1/environments/dev/history").await;
    let samples = h["samples"].as_array().unwrap();
    assert!(!samples.is_empty(), "the prober has sampled dev: {h}");
    let healthy: Vec<String> = samples
        .iter()
        .map(|x| {
            let failed = if x["probe_failed"] == true {
                ", probe failed"
            } else {
                ""
            };
            format!(
                "{}: {}/{} healthy{failed}",
                at(&x["at"]),
                x["services_up"],
                x["services_total"]
            )
        })
        .collect();
    for item in health.split("; ") {
        assert!(
            healthy.iter().any(|h| h == item),
            "health chart says `{item}`, the API {healthy:?}"
        );
    }
    let drifted: Vec<String> = samples
        .iter()
        .map(|x| {
            let what = match x["drifted"].as_bool() {
                Some(true) => "drifted",
                Some(false) => "no drift",
                None => "not checked",
            };
            format!("{}: {what}", at(&x["at"]))
        })
        .collect();
    for item in drift.split("; ") {
        assert!(
            drifted.iter().any(|d| d == item),
            "drift chart says `{item}`, the API {drifted:?}"
        );
    }
}

/// Per service, stored size and duration of its sets, oldest first, as the CLI
/// writes sizes and times.
async fn backup_charts(c: &Client, s: &serve::Served) {
    let list = api(s, "/api/v1/environments/dev/backups").await;
    let sets = list["sets"].as_array().unwrap();
    let mut services = std::collections::BTreeMap::<String, Vec<(String, u64, u64)>>::new();
    for set in sets.iter().rev() {
        for st in set["per_service"].as_array().unwrap() {
            if st["ok"] == true {
                services
                    .entry(st["service"].as_str().unwrap().to_owned())
                    .or_default()
                    .push((
                        set["id"].as_str().unwrap().to_owned(),
                        st["stored_size"].as_u64().unwrap(),
                        st["duration_ms"].as_u64().unwrap(),
                    ));
            }
        }
    }
    assert!(services.contains_key("postgres"), "{list}");
    for (service, points) in services {
        let points = &points[points.len().saturating_sub(10)..];
        let size: Vec<String> = points
            .iter()
            .map(|(id, stored, _)| format!("{id}: {}", cp_app::views::units::size(*stored)))
            .collect();
        let time: Vec<String> = points
            .iter()
            .map(|(id, _, ms)| format!("{id}: {}", cp_app::views::units::seconds(*ms)))
            .collect();
        assert_eq!(
            chart_desc(c, &format!("backup-size/{service}")).await,
            size.join("; ")
        );
        assert_eq!(
            chart_desc(c, &format!("backup-duration/{service}")).await,
            time.join("; ")
        );
    }
}

/// With PITR on, the backups page shows the recoverable window the API gives (its
/// ends to the second, its span and the archive's lag with units), visibly.
async fn pitr_window(c: &Client, s: &serve::Served) {
    let earliest = text(c, "[data-pitr-earliest=\"dev\"]").await;
    let latest = text(c, "[data-pitr-latest=\"dev\"]").await;
    let span = text(c, "[data-pitr-span=\"dev\"]").await;
    let lag = text(c, "[data-pitr-lag=\"dev\"]").await;
    let list = api(s, "/api/v1/environments/dev/backups").await;
    let w = &list["pitr"]["window"];
    assert!(
        w.is_object(),
        "the API has a window after backup --base: {list}"
    );
    assert_eq!(earliest, at(&w["earliest"]), "earliest restorable: {list}");
    // The archive moves on every 2 s: the page's latest is at most the API's (asked
    // after it) and after the earliest.
    let latest_at = latest.split(' ').next().unwrap_or_default();
    assert!(
        latest_at >= earliest.as_str() && latest_at <= at(&w["latest"]).as_str(),
        "latest restorable {latest:?}, the API {w}"
    );
    assert!(latest.contains("(timeline 1)"), "{latest}");
    let unit = |t: &str| {
        let n = t.trim_end_matches(['s', 'm', 'h', 'd']);
        !n.is_empty() && n.len() < t.len() && n.chars().all(|c| c.is_ascii_digit())
    };
    assert!(unit(&span), "the window's span with a unit: {span:?}");
    let (lag_value, since) = lag.split_once(' ').unwrap_or_default();
    assert!(unit(lag_value), "the archive lag with a unit: {lag:?}");
    assert!(since.starts_with("(last segment archived 20"), "{lag}");
    let shown = js(
        c,
        "const e = document.querySelector('[data-pitr-earliest=\"dev\"]');          const r = e.getBoundingClientRect();          return r.width > 0 && r.height > 0 && r.right <= document.documentElement.clientWidth",
    )
    .await;
    assert_eq!(shown, json!(true), "the window is on screen");
}

/// The 24-hour alert timeline says what the API's history says (a period still
/// open ends when each was asked, so the ends of periods are compared up to the
/// minute).
async fn alert_chart(c: &Client, s: &serve::Served) {
    let desc = chart_desc(c, "alerts/dev").await;
    let h = api(s, "/api/v1/environments/dev/history").await;
    let a = &h["alerts"];
    let spans = a["spans"].as_array().unwrap();
    let expected = if let Some(e) = a["error"].as_str() {
        format!("Prometheus could not be asked: {e}")
    } else if spans.is_empty() && a["prometheus"].is_null() {
        "nothing fired (this server's probes; no Prometheus)".to_owned()
    } else if spans.is_empty() {
        "nothing fired".to_owned()
    } else {
        a["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                format!(
                    "{} firing from {} to {}",
                    x["alert"].as_str().unwrap(),
                    at(&x["from"]),
                    at(&x["to"])
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    // Each item as (its text up to " to ", the end in seconds).
    let items = |t: &str| -> Vec<(String, Option<i64>)> {
        t.split("; ")
            .map(|item| match item.rsplit_once(" to ") {
                Some((head, to)) => (
                    head.to_owned(),
                    chrono::DateTime::parse_from_rfc3339(to)
                        .ok()
                        .map(|t| t.timestamp()),
                ),
                None => (item.to_owned(), None),
            })
            .collect()
    };
    let (shown, said) = (items(&desc), items(&expected));
    assert_eq!(shown.len(), said.len(), "chart `{desc}`, API {h}");
    for ((a, a_to), (b, b_to)) in shown.iter().zip(&said) {
        assert_eq!(a, b, "chart `{desc}`, API {h}");
        match (a_to, b_to) {
            (Some(x), Some(y)) => assert!((x - y).abs() <= 60, "chart `{desc}`, API {h}"),
            _ => assert_eq!(a_to, b_to, "chart `{desc}`, API {h}"),
        }
    }
}

async fn serve_eventually(c: &Client, what: &str, ok: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let u = c.current_url().await.unwrap();
        if ok(u.path()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what} (at {u})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
