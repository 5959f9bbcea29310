//! The console's page and files as a browser gets them through the gateway:
//! no key needed, a strict Content-Security-Policy, content-hashed asset
//! names cached for good, the page itself always revalidated, and off with
//! `KEYHUB_CONSOLE=false` (template.yaml's `Console`). The browser tests of
//! the pages themselves are in `browser.rs`.

use reqwest::{Method, StatusCode};

use crate::helpers::{ROOMY_LIMITS, spawn_app, spawn_app_with};

/// The `console/<name>` references of the page, in order.
fn referenced(page: &str) -> Vec<String> {
    page.split("\"console/")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn the_page_loads_without_a_key_under_a_strict_policy() {
    let app = spawn_app().await;
    let r = app.call(Method::GET, "/console", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert!(r.header("x-request-id").is_some());
    let csp = r.header("content-security-policy").unwrap();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    let page = r.body.as_str().unwrap();
    assert!(page.contains("<title>keyhub console</title>"));
    // No third-party origin anywhere in the page.
    assert!(!page.contains("http://") && !page.contains("https://"));
    assert!(r.header("x-ratelimit-limit").is_none(), "not metered");
}

#[tokio::test]
async fn assets_are_named_by_their_content_and_cached_for_good() {
    let app = spawn_app().await;
    let page = app.call(Method::GET, "/console", None, None).await;
    let names = referenced(page.body.as_str().unwrap());
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("app.") && n.ends_with(".js"))
    );
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("console.") && n.ends_with(".css"))
    );
    for name in &names {
        let r = app
            .call(Method::GET, &format!("/console/{name}"), None, None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{name}");
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=31536000, immutable"),
            "{name}"
        );
        let ty = r.header("content-type").unwrap();
        let expected = match name.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected asset type {other:?}"),
        };
        assert_eq!(ty, expected, "{name}");
        // Modules import each other by hashed name too.
        if let Some(text) = r.body.as_str() {
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let file = line.rsplit('/').next().unwrap_or("");
                assert_eq!(file.matches('.').count(), 2, "{name}: {line}");
            }
        }
    }
    // The plain name is not served: a stale page cannot get a new file.
    let r = app.call(Method::GET, "/console/app.js", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");
}

#[tokio::test]
async fn other_methods_are_refused_and_head_has_no_body() {
    let app = spawn_app().await;
    let r = app.call(Method::POST, "/console", None, None).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.code(), "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = app.call(Method::HEAD, "/console", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, serde_json::Value::String(String::new()));
    assert!(r.header("content-security-policy").is_some());
}

#[tokio::test]
async fn console_false_turns_it_off() {
    let app = spawn_app_with(&[
        ("KEYHUB_RATE_LIMITS", ROOMY_LIMITS),
        ("KEYHUB_CONSOLE", "false"),
    ])
    .await;
    for path in ["/console", "/console/app.js"] {
        let r = app.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.code(), "not_found");
    }
    // The API itself is untouched.
    let r = app.get("/api/v1/whoami", &app.admin_key).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[test]
fn openapi_declares_the_console_without_a_key() {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(include_str!("../../../openapi.yaml")).unwrap();
    for path in keyhub_api::console::PATHS {
        let get = &doc["paths"][*path]["get"];
        assert_eq!(
            get["security"],
            serde_yaml_ng::Value::Sequence(vec![]),
            "{path}"
        );
        assert!(get["responses"]["404"].is_mapping(), "{path}");
    }
    assert!(
        doc["paths"]["/console"]["get"]["responses"]["200"]["content"]["text/html"].is_mapping()
    );
}
