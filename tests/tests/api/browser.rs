//! The console in a real browser: headless Chromium (Debian's `chromium`
//! and `chromium-driver`, which `scripts/stack.sh setup` installs) driven
//! over WebDriver against a test stack whose usage and webhook workers run
//! in the background, as under `make dev`. What a user does, end to end:
//! sign in, create and copy a key, find it in the list, see its usage move
//! after requests, rotate it, add a webhook and see its delivery, retry a
//! failed delivery, sign out. The run saves screenshots in
//! target/console-screenshots/, or in the folder `KEYHUB_SCREENSHOTS` names
//! (`make screenshots` points it at docs/console/, the README's copies), so a
//! test run never changes tracked files.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use keyhub_tools::receiver::Reply;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ROOMY_LIMITS, TestApp, spawn_app_with, start_receiver};

const WAIT: Duration = Duration::from_secs(20);

/// chromedriver on a free port, stopped when dropped, with a folder of its
/// own for Chromium's profile and temporary files (its `TMPDIR`), removed
/// when dropped: otherwise every run leaves `org.chromium.Chromium.*`
/// folders in /tmp.
struct Driver {
    child: tokio::process::Child,
    url: String,
    dir: PathBuf,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn program(names: &[&str]) -> PathBuf {
    for name in names {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = PathBuf::from(dir).join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "{names:?} not found: run `scripts/stack.sh setup` (make test does), which installs Debian's chromium and chromium-driver"
    );
}

async fn driver() -> Driver {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = std::env::temp_dir().join(crate::helpers::unique("keyhub-chromium-"));
    std::fs::create_dir_all(&dir).unwrap();
    let child = tokio::process::Command::new(program(&["chromedriver"]))
        .arg(format!("--port={port}"))
        .env("TMPDIR", &dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let http = crate::helpers::http_client();
    while http.get(format!("{url}/status")).send().await.is_err() {
        assert!(started.elapsed() < WAIT, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Driver { child, url, dir }
}

async fn browser(driver: &Driver, width: u32, height: u32) -> Client {
    let mut args = vec![
        "--headless=new".to_string(),
        "--disable-gpu".to_string(),
        "--disable-dev-shm-usage".to_string(),
        "--no-first-run".to_string(),
        format!("--window-size={width},{height}"),
        format!("--user-data-dir={}", driver.dir.join("profile").display()),
    ];
    // Chromium refuses to run as root with its sandbox.
    if std::env::var("USER").as_deref() == Ok("root") || is_root() {
        args.push("--no-sandbox".to_string());
    }
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": program(&["chromium", "chromium-browser"]),
            "args": args,
        },
    });
    let caps = match caps {
        Value::Object(m) => m,
        _ => unreachable!(),
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session of chromium")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
}

/// Clicks the element `css` once it is there.
async fn click(c: &Client, css: &str) {
    find(c, css).await.click().await.unwrap();
}

/// Types `text` into the field `css` once it is there.
async fn type_into(c: &Client, css: &str, text: &str) {
    find(c, css).await.send_keys(text).await.unwrap();
}

/// Waits until the page `section` has finished drawing.
async fn ready(c: &Client, section: &str) {
    find(c, &format!("body[data-ready=\"{section}\"]")).await;
}

/// Loads the console afresh at `hash` (the key stays in the tab's
/// sessionStorage), so that no earlier page's state is mistaken for the new
/// page's.
async fn load(c: &Client, app: &TestApp, hash: &str) {
    c.goto("about:blank").await.unwrap();
    c.goto(&format!("{}/console{hash}", app.base))
        .await
        .unwrap();
}

async fn go(c: &Client, app: &TestApp, hash: &str, section: &str) {
    load(c, app, hash).await;
    ready(c, section).await;
}

/// What the live region last announced, once it announces one of `texts`'
/// beginnings.
async fn announced(c: &Client, texts: &[&str]) -> String {
    let list = serde_json::to_string(texts).unwrap();
    let js = format!(
        "(t => {list}.some(x => t.startsWith(x)) ? t : null)(document.getElementById('status').textContent)"
    );
    until(c, &js, Value::is_string, "an announcement")
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A JS expression's value, polled until `done` holds it.
async fn until(c: &Client, js: &str, done: impl Fn(&Value) -> bool, what: &str) -> Value {
    let started = Instant::now();
    loop {
        let v = c
            .execute(&format!("return {js};"), vec![])
            .await
            .unwrap_or(Value::Null);
        if done(&v) {
            return v;
        }
        if started.elapsed() > WAIT {
            let page = c
                .execute("return document.querySelector('main').innerText;", vec![])
                .await
                .unwrap_or(Value::Null);
            panic!(
                "{what}: still {v}; the page reads:\n{}",
                page.as_str().unwrap_or("")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Saves what the window shows, with `css` scrolled to its middle.
async fn screenshot(c: &Client, name: &str, css: &str) {
    c.execute(
        "document.querySelector(arguments[0])?.scrollIntoView({block: 'center'});",
        vec![json!(css)],
    )
    .await
    .unwrap();
    let png = c.screenshot().await.expect("screenshot");
    let dir = std::env::var_os("KEYHUB_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots")
        });
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn sign_in(c: &Client, app: &TestApp, key: &str) {
    c.goto(&format!("{}/console", app.base)).await.unwrap();
    let input = find(c, "input[name=key]").await;
    input.send_keys(key).await.unwrap();
    click(c, "form.signin button[type=submit]").await;
}

/// The usage and webhook workers, polling as Lambda's event source
/// mappings do, for as long as the test runs.
async fn workers(app: &TestApp) {
    let usage = std::sync::Arc::new(app.stack.usage_deps());
    let source = app.stack.usage_source().await.unwrap();
    tokio::spawn(source.run("usage", move |event| {
        let usage = usage.clone();
        async move { keyhub_usage::handle(&usage, event).await }
    }));
    let hooks = std::sync::Arc::new(app.stack.webhook_deps().unwrap());
    let source = app.stack.webhook_source().await.unwrap();
    tokio::spawn(source.run("webhooks", move |event| {
        let hooks = hooks.clone();
        async move { keyhub_webhooks::handle(&hooks, event).await }
    }));
}

fn console_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("KEYHUB_RATE_LIMITS", ROOMY_LIMITS),
        ("KEYHUB_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8"),
        ("KEYHUB_WEBHOOK_ALLOW_HTTP", "true"),
        // Automatic retries far off (the first after about 8 minutes), so
        // that the one the test sees is the manual one.
        ("KEYHUB_WEBHOOK_RETRY_SCALE", "100"),
        ("KEYHUB_WEBHOOK_TIMEOUT_SECONDS", "5"),
    ]
}

#[tokio::test]
async fn a_user_manages_keys_usage_and_webhooks_in_the_console() {
    let app = spawn_app_with(&console_env()).await;
    workers(&app).await;
    let driver = driver().await;
    let c = browser(&driver, 1280, 900).await;

    // A wrong key is refused in the API's words.
    sign_in(&c, &app, "kh_live_not_a_real_key").await;
    let err = find(&c, "form.signin .error").await.text().await.unwrap();
    assert!(err.contains("invalid_api_key"), "{err}");

    // Sign in with the account's key.
    let input = find(&c, "input[name=key]").await;
    input.clear().await.unwrap();
    input.send_keys(&app.admin_key).await.unwrap();
    click(&c, "form.signin button[type=submit]").await;
    ready(&c, "overview").await;
    let stored = c
        .execute(
            "return [sessionStorage.length, localStorage.length, document.cookie];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        stored,
        json!([1, 0, ""]),
        "the key is in sessionStorage only"
    );

    // Create a key, shown once, and copy it.
    go(&c, &app, "#/keys", "keys").await;
    click(&c, "details.create-wrap > summary").await;
    type_into(&c, "form.create input[name=name]", "console key").await;
    for scope in ["keys:read", "usage:read"] {
        click(&c, &format!("form.create input[value=\"{scope}\"]")).await;
    }
    click(&c, "form.create button[type=submit]").await;
    let secret = find(&c, ".once input.secret").await;
    let plaintext = secret.prop("value").await.unwrap().unwrap_or_default();
    assert!(plaintext.starts_with("kh_live_"), "{plaintext}");
    click(&c, ".once button.copy").await;
    assert_eq!(
        announced(&c, &["Copied", "Could not copy"]).await,
        "Copied to the clipboard."
    );
    // The key shown is the real one.
    let me = app.get("/api/v1/whoami", &plaintext).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let id = me.body["key"]["id"].as_str().unwrap().to_string();

    // It is in the list, and search finds it.
    let row = until(
        &c,
        "[...document.querySelectorAll('table.keys tbody tr')].map(r => r.textContent).find(t => t.includes('console key')) || null",
        Value::is_string,
        "the new key in the list",
    )
    .await;
    assert!(row.as_str().unwrap().contains("live"));
    type_into(&c, "input[name=q]", "console").await;
    until(
        &c,
        "document.querySelectorAll('table.keys tbody tr').length",
        |v| v == &json!(1),
        "search for the new key",
    )
    .await;
    screenshot(&c, "keys", "table.keys").await;

    // Its usage moves after requests made with it.
    go(&c, &app, &format!("#/keys/{id}"), "keys").await;
    let before: u64 = find(&c, "figure.chart-box")
        .await
        .attr("data-total")
        .await
        .unwrap()
        .and_then(|t| t.parse().ok())
        .unwrap();
    for _ in 0..5 {
        let r = app.get("/api/v1/api-keys", &plaintext).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let started = Instant::now();
    loop {
        c.refresh().await.unwrap();
        ready(&c, "keys").await;
        let total: u64 = find(&c, "figure.chart-box")
            .await
            .attr("data-total")
            .await
            .unwrap()
            .and_then(|t| t.parse().ok())
            .unwrap();
        if total >= before + 5 {
            break;
        }
        assert!(
            started.elapsed() < WAIT,
            "usage stayed at {total} (before: {before})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let recent = find(&c, "main").await.text().await.unwrap();
    assert!(recent.contains("GET /api/v1/api-keys"), "recent requests");
    screenshot(&c, "key", "table.standing").await;

    // Rotate it: a new key shown once; the old one is marked rotated.
    click(&c, "button[aria-label=\"Rotate console key\"]").await;
    let grace = find(&c, "dialog input[name=grace_period_seconds]").await;
    grace.clear().await.unwrap();
    grace.send_keys("60").await.unwrap();
    click(&c, "dialog button[type=submit]").await;
    let rotated = find(&c, ".once input.secret").await;
    let new_key = rotated.prop("value").await.unwrap().unwrap_or_default();
    assert!(new_key.starts_with("kh_live_") && new_key != plaintext);
    let me = app.get("/api/v1/whoami", &new_key).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_ne!(me.body["key"]["id"].as_str(), Some(id.as_str()));
    until(
        &c,
        "[...document.querySelectorAll('.badge')].some(b => b.textContent === 'rotated')",
        |v| v == &json!(true),
        "the old key marked rotated",
    )
    .await;

    // A webhook endpoint; its test event fails once, then a manual retry
    // delivers it.
    let (url, receiver) = start_receiver(vec![Reply::status(500)]).await;
    go(&c, &app, "#/webhooks", "webhooks").await;
    click(&c, "details.create-wrap > summary").await;
    type_into(&c, "form.create input[name=url]", &url).await;
    click(&c, "form.create button[type=submit]").await;
    let secret = find(&c, ".once input.secret").await;
    let whsec = secret.prop("value").await.unwrap().unwrap_or_default();
    assert!(whsec.starts_with("whsec_"), "{whsec}");
    let page = find(&c, ".notice a")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    go(&c, &app, &page, "webhooks").await;
    c.execute(
        "[...document.querySelectorAll('button')].find(b => b.textContent === 'Send a test event').click()",
        vec![],
    )
    .await
    .unwrap();
    // The first delivery's status as the log shows it; until it is `want`,
    // a click on Refresh for the next look.
    let log_status = |want: &str| {
        format!(
            "(s => (s !== '{want}' && document.querySelector('#log-h + button')?.click(), s))\
             (document.querySelector('.delivery')?.dataset.status || null)"
        )
    };
    until(
        &c,
        &log_status("pending"),
        |v| v == &json!("pending"),
        "a failed first attempt",
    )
    .await;
    // The page reloads the log by itself 1.5 s after an action; let that
    // pass before using what it shows.
    tokio::time::sleep(Duration::from_secs(2)).await;
    until(
        &c,
        &log_status("pending"),
        |v| v == &json!("pending"),
        "the log after its reload",
    )
    .await;
    click(&c, ".delivery summary").await;
    let attempt = find(&c, ".delivery tbody tr").await.text().await.unwrap();
    assert!(attempt.contains("500"), "{attempt}");
    screenshot(&c, "webhooks", ".delivery").await;
    click(&c, ".delivery button.small").await;
    until(
        &c,
        &log_status("delivered"),
        |v| v == &json!("delivered"),
        "the manual retry delivered",
    )
    .await;
    assert_eq!(receiver.requests().len(), 2);

    // The overview with the calls made so far.
    go(&c, &app, "#/overview", "overview").await;
    find(&c, "figure.chart-box").await;
    let stats = find(&c, ".stats").await.text().await.unwrap();
    assert!(stats.contains("Active keys"), "{stats}");
    screenshot(&c, "overview", "h1").await;

    // Sign out: the key is forgotten.
    click(&c, "#signout").await;
    find(&c, "form.signin").await;
    let stored = c
        .execute("return sessionStorage.length;", vec![])
        .await
        .unwrap();
    assert_eq!(stored, json!(0));
    c.refresh().await.unwrap();
    find(&c, "form.signin").await;
    c.close().await.unwrap();
}

#[tokio::test]
async fn a_key_sees_only_what_its_scopes_allow_and_rate_limits_read_as_the_api_says() {
    let app = spawn_app_with(&console_env()).await;
    let limits = keyhub::domain::limits::Limits {
        per_minute: Some(4),
        ..Default::default()
    };
    let (key, _) = app
        .direct_key(
            &app.account_id,
            keyhub::domain::limits::Plan::Enterprise,
            &["keys:read"],
            limits,
        )
        .await;
    let driver = driver().await;
    // A phone's width.
    let c = browser(&driver, 390, 844).await;
    sign_in(&c, &app, &key).await;
    ready(&c, "keys").await;
    let nav = find(&c, "#nav").await.text().await.unwrap();
    assert!(nav.contains("Keys") && nav.contains("Account"), "{nav}");
    assert!(
        !nav.contains("Webhooks") && !nav.contains("Overview"),
        "{nav}"
    );
    let create = c
        .find_all(Locator::Css("details.create-wrap"))
        .await
        .unwrap();
    assert!(create.is_empty(), "no create form without keys:write");
    let actions = c.find_all(Locator::Css(".row-actions")).await.unwrap();
    assert!(actions.is_empty(), "no key actions without keys:write");
    // Nothing wider than the phone's screen but the tables' own scrollers.
    let overflow = c
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(overflow, json!(true), "the page scrolls sideways at 390 px");
    // Whoami and two lists spent 3 of the key's 4 a minute: the next pages
    // meet the limit, shown with the API's code and its Retry-After.
    let started = Instant::now();
    let text = loop {
        load(&c, &app, "#/keys").await;
        let shown = until(
            &c,
            "document.querySelector('main .error')?.textContent || (document.body.dataset.ready ? '' : null)",
            Value::is_string,
            "the keys page or an error",
        )
        .await;
        if shown != json!("") {
            break shown.as_str().unwrap_or_default().to_string();
        }
        assert!(started.elapsed() < WAIT * 3, "no 429 shown");
    };
    assert!(text.contains("rate_limit_exceeded"), "{text}");
    assert!(text.contains("Retry after"), "{text}");
    c.close().await.unwrap();
}

/// What the page breaks of WCAG AA that a script can see: text whose
/// contrast with the background it sits on is below 4.5:1 (3:1 for large
/// text), and controls without an accessible name. Disabled controls and
/// hidden elements are exempt, as WCAG has them.
const AUDIT: &str = r#"
const rgb = (c) => (c.match(/[\d.]+/g) || []).map(Number);
const lum = ([r, g, b]) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
  return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
};
const background = (el) => {
  for (let e = el; e; e = e.parentElement) {
    const c = rgb(getComputedStyle(e).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) return c.slice(0, 3);
  }
  return [255, 255, 255];
};
const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
const problems = [];
for (const el of document.querySelectorAll('body *')) {
  if (!shown(el) || el.closest('svg') || el.closest('[disabled]')) continue;
  const text = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (!text) continue;
  const st = getComputedStyle(el);
  const fg = rgb(st.color);
  const [a, b] = [lum(fg.slice(0, 3)), lum(background(el))];
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  const size = parseFloat(st.fontSize);
  const large = size >= 24 || (size >= 18.66 && Number(st.fontWeight) >= 700);
  if (ratio < (large ? 3 : 4.5)) problems.push(`contrast ${ratio.toFixed(2)}: ${el.tagName} "${el.textContent.trim().slice(0, 40)}"`);
}
const named = (el) => {
  const by = el.getAttribute('aria-labelledby');
  const byText = by ? by.split(/\s+/).map((id) => document.getElementById(id)?.textContent || '').join('') : '';
  const labels = el.labels ? [...el.labels].map((l) => l.textContent).join('') : '';
  const imgs = [...el.querySelectorAll('img[alt]')].map((i) => i.alt).join('');
  return [el.getAttribute('aria-label'), byText, labels, el.getAttribute('title'), el.textContent, imgs, el.type === 'submit' || el.type === 'button' ? el.value : '']
    .some((t) => t && t.trim());
};
for (const el of document.querySelectorAll('a[href], button, input, select, textarea, summary')) {
  if (!shown(el) || el.type === 'hidden') continue;
  if (!named(el)) problems.push(`no name: ${el.outerHTML.slice(0, 80)}`);
}
return problems;
"#;

/// Runs [`AUDIT`] on the page as it is; `page` names it in the failure.
async fn accessible(c: &Client, page: &str) {
    let problems = c.execute(AUDIT, vec![]).await.unwrap();
    assert_eq!(problems, json!([]), "{page}");
}

/// The number a chart says it draws (`data-total` of its figure).
async fn chart_totals(c: &Client) -> Vec<u64> {
    let v = until(
        c,
        "(f => f.length ? f.map(x => Number(x.dataset.total)) : null)([...document.querySelectorAll('figure.chart-box')])",
        Value::is_array,
        "the charts",
    )
    .await;
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn the_overview_adds_up_every_key_and_a_key_page_shows_its_standing() {
    let app = spawn_app_with(&console_env()).await;
    // Twelve keys with calls, more than the ten most used: the account's
    // charts count all of them.
    let mut calls = 0;
    for i in 0..12u64 {
        let (key, _) = app
            .direct_key(
                &app.account_id,
                keyhub::domain::limits::Plan::Enterprise,
                &["keys:read"],
                Default::default(),
            )
            .await;
        for _ in 0..=i % 4 {
            assert_eq!(app.get("/api/v1/whoami", &key).await.status, StatusCode::OK);
            calls += 1;
        }
    }
    // Counted now; the console's own calls stay queued, so they are not.
    app.drain_usage().await;
    let driver = driver().await;
    let c = browser(&driver, 1280, 900).await;
    sign_in(&c, &app, &app.admin_key).await;
    ready(&c, "overview").await;
    assert_eq!(
        chart_totals(&c).await,
        vec![calls, calls],
        "hour and day charts"
    );
    let stats = find(&c, ".stats").await.text().await.unwrap();
    assert!(stats.contains(&calls.to_string()), "{stats}");
    // Each chart has a text alternative: a label on the image saying its
    // total, and a table of its numbers.
    let alt = c
        .execute(
            "return [...document.querySelectorAll('figure.chart-box')].map(f => [\
               f.querySelector('svg[role=img]')?.getAttribute('aria-label') || '',\
               f.querySelectorAll('details table tbody tr').length]);",
            vec![],
        )
        .await
        .unwrap();
    for chart in alt.as_array().unwrap() {
        let label = chart[0].as_str().unwrap();
        assert!(label.contains(&format!("{calls} calls")), "{label}");
        assert!(chart[1].as_u64().unwrap() >= 1, "{chart}");
    }
    click(&c, "figure.chart-box details > summary").await;
    accessible(&c, "overview").await;
    go(&c, &app, "#/keys", "keys").await;
    click(&c, "details.create-wrap > summary").await;
    accessible(&c, "keys, with the create form").await;
    go(&c, &app, "#/webhooks", "webhooks").await;
    accessible(&c, "webhooks").await;
    go(&c, &app, "#/account", "account").await;
    accessible(&c, "account").await;

    // A key's page shows where it stands in each window, and looking again
    // spends nothing.
    let limits = keyhub::domain::limits::Limits::new(50, 500, 5000);
    let (key, id) = app
        .direct_key(
            &app.account_id,
            keyhub::domain::limits::Plan::Enterprise,
            &["keys:read"],
            limits,
        )
        .await;
    crate::helpers::clear_of_minute_boundary().await;
    for _ in 0..6 {
        assert_eq!(app.get("/api/v1/whoami", &key).await.status, StatusCode::OK);
    }
    // (Digit grouping is the browser's locale's: left out.)
    let standing = "[...document.querySelectorAll('table.standing tbody tr')].map(r => [...r.cells].slice(0, 2).map(c => c.textContent.replace(/[^0-9A-Za-z ()]/g, '')))";
    let want = json!([
        ["Minute", "44 of 50"],
        ["Hour (UTC)", "494 of 500"],
        ["Day (UTC)", "4994 of 5000"]
    ]);
    for _ in 0..2 {
        go(&c, &app, &format!("#/keys/{id}"), "keys").await;
        until(&c, standing, |v| v == &want, "the key's standing").await;
    }
    accessible(&c, "a key").await;
    c.close().await.unwrap();
}
