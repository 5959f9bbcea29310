//! Conditional GETs: an `ETag` on key and webhook reads (and their lists),
//! `If-None-Match` answered 304 with no body, compared as RFC 9110 says.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Resp, TestApp, spawn_app, spawn_app_with, webhook_env};

async fn get_if(app: &TestApp, path: &str, if_none_match: Option<&str>) -> Resp {
    let mut req = app.client.get(app.url(path)).bearer_auth(&app.admin_key);
    if let Some(v) = if_none_match {
        req = req.header("if-none-match", v);
    }
    app.raw(req).await
}

fn etag(r: &Resp) -> String {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_private(r);
    r.header("etag").expect("an ETag").to_string()
}

/// A tagged answer depends on the caller's key: no shared cache may keep
/// it, and any cache must key it by the headers that carry the key.
fn assert_private(r: &Resp) {
    let cache = r.header("cache-control").unwrap_or_default();
    assert!(cache.contains("private"), "Cache-Control: {cache}");
    let vary = r.header("vary").unwrap_or_default().to_ascii_lowercase();
    for h in ["authorization", "x-api-key"] {
        assert!(vary.contains(h), "Vary: {vary}");
    }
}

/// 304: no body, the tag again, and the headers every answer has.
fn assert_not_modified(r: &Resp, tag: &str) {
    assert_eq!(r.status, StatusCode::NOT_MODIFIED, "{}", r.body);
    assert_eq!(r.body, json!(""), "a 304 has no body");
    assert_eq!(r.header("etag"), Some(tag));
    assert_private(r);
    assert!(r.header("x-request-id").is_some());
    assert!(r.header("x-ratelimit-limit").is_some());
}

#[tokio::test]
async fn a_key_read_has_a_weak_etag_that_changes_with_the_key_and_answers_304() {
    let app = spawn_app().await;
    let (_, key) = app.create_key(json!({"name": "polled"})).await;
    let path = format!("/api/v1/api-keys/{}", key["id"].as_str().unwrap());
    let first = etag(&get_if(&app, &path, None).await);
    // The body carries live counters (rate_limit_status), so the tag is weak.
    assert!(first.starts_with("W/\""), "{first}");
    assert_eq!(etag(&get_if(&app, &path, None).await), first);

    assert_not_modified(&get_if(&app, &path, Some(&first)).await, &first);
    // Weak comparison: the same opaque tag without W/ matches too.
    let strong_form = first.trim_start_matches("W/");
    assert_not_modified(&get_if(&app, &path, Some(strong_form)).await, &first);
    // A list matches when any member does; * matches any current key.
    let list = format!("\"nope\", {first}");
    assert_not_modified(&get_if(&app, &path, Some(&list)).await, &first);
    assert_not_modified(&get_if(&app, &path, Some("*")).await, &first);
    // No member matching, or no tag at all: the full answer.
    for other in ["\"nope\"", "W/\"nope\", \"also-not\"", "garbage"] {
        let r = get_if(&app, &path, Some(other)).await;
        assert_eq!(etag(&r), first, "{other}");
        assert_eq!(r.body["name"], "polled");
    }

    let r = app
        .patch(&path, &app.admin_key, json!({"name": "renamed"}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let after = get_if(&app, &path, Some(&first)).await;
    let changed = etag(&after);
    assert_ne!(changed, first, "a change gives a new tag");
    assert_eq!(
        after.body["name"], "renamed",
        "the old tag gets the new key"
    );
    assert_not_modified(&get_if(&app, &path, Some(&changed)).await, &changed);

    // An unknown key is 404 whatever the condition says.
    let r = get_if(
        &app,
        "/api/v1/api-keys/key_0000000000000000000000",
        Some("*"),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.header("etag").is_none());
}

#[tokio::test]
async fn a_key_list_has_a_strong_etag_that_changes_when_a_key_is_added() {
    let app = spawn_app().await;
    let path = "/api/v1/api-keys?size=5";
    let first = etag(&get_if(&app, path, None).await);
    assert!(first.starts_with('"'), "{first}");
    assert_not_modified(&get_if(&app, path, Some(&first)).await, &first);
    app.create_key(json!({"name": "new"})).await;
    let r = get_if(&app, path, Some(&first)).await;
    assert_ne!(etag(&r), first);
    assert_eq!(r.body["total"], 2);
}

#[tokio::test]
async fn a_webhook_read_has_a_strong_etag_that_changes_after_an_update() {
    let app = spawn_app_with(&webhook_env("0.001")).await;
    let (id, _) = app
        .webhook("http://127.0.0.1:9/hook", &["api_key.created"])
        .await;
    let path = format!("/api/v1/webhooks/{id}");
    let first = etag(&get_if(&app, &path, None).await);
    assert!(first.starts_with('"'), "a strong tag: {first}");
    assert_eq!(etag(&get_if(&app, &path, None).await), first);
    assert_not_modified(&get_if(&app, &path, Some(&first)).await, &first);
    assert_not_modified(
        &get_if(&app, &path, Some(&format!("W/{first}"))).await,
        &first,
    );

    let r = app
        .client
        .put(app.url(&path))
        .bearer_auth(&app.admin_key)
        .json(&json!({"description": "changed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = get_if(&app, &path, Some(&first)).await;
    assert_ne!(etag(&r), first);
    assert_eq!(r.body["description"], "changed");

    let list = etag(&get_if(&app, "/api/v1/webhooks", None).await);
    assert_not_modified(&get_if(&app, "/api/v1/webhooks", Some(&list)).await, &list);
}

#[tokio::test]
async fn an_if_none_match_that_is_not_ascii_is_ignored_not_a_server_error() {
    // Found by the fuzzer: `If-None-Match: ê` on GET /api/v1/webhooks.
    let app = spawn_app_with(&webhook_env("1")).await;
    for value in [&b"\xc3\xaa"[..], &b"\xea"[..], &b"W/\"\xc3\xaa\", *x"[..]] {
        for path in ["/api/v1/webhooks", "/api/v1/api-keys"] {
            let v = reqwest::header::HeaderValue::from_bytes(value).unwrap();
            let req = app
                .client
                .get(app.url(path))
                .bearer_auth(&app.admin_key)
                .header("if-none-match", v);
            let r = app.raw(req).await;
            assert_eq!(r.status, StatusCode::OK, "{path} {value:?}: {}", r.body);
        }
    }
}
