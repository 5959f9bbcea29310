//! The generated clients (clients/python, clients/typescript) against the
//! local stack. scripts/clients.sh generates them from the current
//! openapi.yaml first (once per test run), so a spec change a client cannot
//! follow fails here. Each client's own test (clients/*/test*/local_stack.*)
//! runs as a subprocess with the gateway's URL and a key; this side checks
//! what the server saw.

use std::path::{Path, PathBuf};
use std::time::Duration;

use keyhub::domain::limits::{Limits, Plan};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::OnceCell;

use crate::helpers::spawn_app;

#[derive(Clone, Copy)]
enum Lang {
    Python,
    TypeScript,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// scripts/clients.sh, once for every test in this run: it installs the
/// pinned generators when missing and regenerates both clients.
async fn generated() {
    static DONE: OnceCell<()> = OnceCell::const_new();
    DONE.get_or_init(|| async {
        let out = tokio::process::Command::new(root().join("scripts/clients.sh"))
            .output()
            .await
            .expect("run scripts/clients.sh");
        assert!(
            out.status.success(),
            "scripts/clients.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await;
}

/// Runs `lang`'s local_stack test in `scenario` against `base` with `key`;
/// its JSON line.
async fn run_client(lang: Lang, base: &str, scenario: &str, key: &str) -> Value {
    generated().await;
    let root = root();
    let generated = root.join(".local/clients");
    let mut cmd = match lang {
        Lang::Python => {
            let mut c = tokio::process::Command::new(generated.join("venv/bin/python"));
            c.arg(root.join("clients/python/tests/local_stack.py"));
            // No __pycache__ in the source tree.
            c.env("PYTHONDONTWRITEBYTECODE", "1");
            c.env(
                "PYTHONPATH",
                format!(
                    "{}:{}",
                    root.join("clients/python").display(),
                    generated.join("python").display()
                ),
            );
            c
        }
        Lang::TypeScript => {
            let mut c = tokio::process::Command::new("node");
            c.arg(generated.join("typescript/build/test/local_stack.js"));
            c
        }
    };
    // Nothing between the client and the gateway on 127.0.0.1.
    for proxy in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ] {
        cmd.env_remove(proxy);
    }
    let out = cmd
        .arg(scenario)
        .env("KEYHUB_BASE_URL", base)
        .env("KEYHUB_API_KEY", key)
        .output()
        .await
        .expect("start the client test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the client's {scenario} test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not a JSON line ({e}): {stdout}"))
}

/// Create, list, rotate (no grace) and delete a key through the client; the
/// server then has the first key retired and the rotated one gone.
async fn lifecycle(lang: Lang) {
    let app = spawn_app().await;
    let out = run_client(lang, &app.base, "lifecycle", &app.admin_key).await;
    let s = |k: &str| out[k].as_str().unwrap_or_else(|| panic!("{out}"));

    let created = app
        .get(
            &format!("/api/v1/api-keys/{}", s("created")),
            &app.admin_key,
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(created.body["name"], out_name(lang));
    assert_eq!(created.body["rotated_to"], s("rotated"));
    assert_eq!(
        app.get("/api/v1/whoami", s("created_key")).await.code(),
        "api_key_expired"
    );

    let rotated = app
        .get(
            &format!("/api/v1/api-keys/{}", s("rotated")),
            &app.admin_key,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::NOT_FOUND, "{}", rotated.body);
    assert_eq!(
        app.get("/api/v1/whoami", s("rotated_key")).await.code(),
        "invalid_api_key"
    );
}

fn out_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Python => "python client",
        Lang::TypeScript => "typescript client",
    }
}

/// Waits until 48 to 54 seconds into a minute: a key spent now is refused
/// with a Retry-After of 6 to 12 seconds (the fixed minute window's end), a
/// wait a test can afford. Nothing on the server is changed for this.
async fn late_in_minute() {
    let into = chrono::Utc::now().timestamp() % 60;
    let wait = if into < 48 {
        48 - into
    } else if into > 54 {
        60 - into + 48
    } else {
        0
    };
    tokio::time::sleep(Duration::from_secs(wait as u64)).await;
}

/// A key at its 2-per-minute limit: the client returns the 429 at once when
/// its wait budget is shorter than Retry-After, and with the default policy
/// retries once after Retry-After and gets through in the next window.
async fn one_429_retried(lang: Lang) {
    // Generating takes seconds: done before the key is spent, not inside
    // the few seconds left of its minute.
    generated().await;
    let app = spawn_app().await;
    let (key, _) = app
        .direct_key(
            &app.account_id,
            Plan::Enterprise,
            &["keys:read"],
            Limits {
                per_minute: Some(2),
                ..Limits::default()
            },
        )
        .await;
    late_in_minute().await;
    for _ in 0..2 {
        let r = app.get("/api/v1/api-keys", &key).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let r = app.get("/api/v1/api-keys", &key).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    let retry_after: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=13).contains(&retry_after), "{retry_after}");

    let out = run_client(lang, &app.base, "ratelimit", &key).await;
    assert_eq!(out["limit"], 2, "{out}");
    // The retried request's own 429 said how long to wait: the script's first
    // look at Retry-After was a moment earlier, so a second may have ticked
    // over in between (seen: 12 then 11).
    let (waited, first_look) = (
        out["waited"].as_f64().unwrap(),
        out["retry_after"].as_f64().unwrap(),
    );
    assert!(
        waited <= first_look && waited >= first_look - 2.0,
        "waited the Retry-After it was given: {out}"
    );
    assert!(out["retry_after"].as_u64().unwrap() <= retry_after, "{out}");
    // The retried request was the new window's first.
    assert_eq!(out["remaining_after"], 1, "{out}");
    // The server counted it once and the refused ones not at all: this is
    // the window's second request, its last.
    let r = app.get("/api/v1/api-keys", &key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
}

#[tokio::test]
async fn the_python_client_creates_lists_rotates_and_deletes_a_key() {
    lifecycle(Lang::Python).await;
}

#[tokio::test]
async fn the_typescript_client_creates_lists_rotates_and_deletes_a_key() {
    lifecycle(Lang::TypeScript).await;
}

#[tokio::test]
async fn the_python_client_retries_a_429_after_retry_after() {
    one_429_retried(Lang::Python).await;
}

#[tokio::test]
async fn the_typescript_client_retries_a_429_after_retry_after() {
    one_429_retried(Lang::TypeScript).await;
}

/// The retry rules no server answer here can show (a 503, a Retry-After
/// date, the attempt bound), against answers each client test makes up.
#[tokio::test]
async fn both_clients_retry_503_only_when_safe_and_at_most_three_times() {
    for lang in [Lang::Python, Lang::TypeScript] {
        let out = run_client(lang, "http://keyhub.invalid", "policy", "").await;
        assert_eq!(out["ok"], true, "{out}");
    }
}
