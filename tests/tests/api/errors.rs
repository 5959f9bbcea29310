use keyhub::config::Tables;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{spawn_app, unique};

#[tokio::test]
async fn bad_bodies_get_invalid_request_with_the_field_and_reason() {
    let app = spawn_app().await;
    let cases = [
        (r#"{"name": "#, None, "malformed_json"),
        (r#"{}"#, Some("name"), "required_field_missing"),
        (
            r#"{"description": "no name"}"#,
            Some("name"),
            "required_field_missing",
        ),
        (r#"{"name": 42}"#, Some("name"), "invalid_type"),
        (
            r#"{"name": "x", "is_active": true}"#,
            Some("is_active"),
            "unknown_field",
        ),
        (
            r#"{"name": "x", "scopes": ["NOT A SCOPE"]}"#,
            Some("scopes[0]"),
            "invalid_value",
        ),
        (
            r#"{"name": "x", "expires_at": "yesterday"}"#,
            Some("expires_at"),
            "invalid_value",
        ),
        (
            r#"{"name": "x", "rate_limits": {"per_minute": -1}}"#,
            Some("rate_limits.per_minute"),
            "invalid_value",
        ),
        (r#"["name"]"#, None, "invalid_type"),
    ];
    for (body, field, reason) in cases {
        let r = app
            .raw(
                app.client
                    .post(app.url("/api/v1/api-keys"))
                    .bearer_auth(&app.admin_key)
                    .header("content-type", "application/json")
                    .body(body),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(r.code(), "invalid_request");
        assert_eq!(
            r.body["error"]["details"]["reason"], reason,
            "{body}: {}",
            r.body
        );
        if let Some(field) = field {
            assert_eq!(r.body["error"]["details"]["field"], field, "{body}");
        }
    }
    // Nothing was created by any of them.
    let list = app.get("/api/v1/api-keys", &app.admin_key).await;
    assert_eq!(list.body["total"], 1);
}

#[tokio::test]
async fn wrong_content_type_and_oversize_bodies() {
    let app = spawn_app().await;
    let r = app
        .raw(
            app.client
                .post(app.url("/api/v1/api-keys"))
                .bearer_auth(&app.admin_key)
                .header("content-type", "text/plain")
                .body(r#"{"name": "x"}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(r.code(), "unsupported_media_type");

    let big = json!({"name": "x", "description": "d".repeat(70 * 1024)});
    let r = app.post("/api/v1/api-keys", &app.admin_key, big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "payload_too_large");

    // A charset parameter is fine.
    let r = app
        .raw(
            app.client
                .post(app.url("/api/v1/api-keys"))
                .bearer_auth(&app.admin_key)
                .header("content-type", "application/json; charset=utf-8")
                .body(r#"{"name": "x"}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
}

#[tokio::test]
async fn bad_query_values_and_unknown_routes() {
    let app = spawn_app().await;
    for q in [
        "size=0",
        "size=101",
        "per_page=abc",
        "page=0",
        "sort=id",
        "order=sideways",
        "is_active=maybe",
        "environment=prod",
        "cursor=%%%",
        "colour=red",
        "size=1&size=2",
    ] {
        let r = app
            .get(&format!("/api/v1/api-keys?{q}"), &app.admin_key)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{q}: {}", r.body);
        assert_eq!(r.code(), "invalid_request", "{q}");
    }
    for (method, path) in [
        (Method::GET, "/api/v1/nothing"),
        (Method::GET, "/"),
        (Method::GET, "/api/v1/api-keys/a/b"),
    ] {
        let r = app.call(method, path, Some(&app.admin_key), None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.code(), "not_found");
    }
    // A malformed id is simply not found.
    let r = app
        .get("/api/v1/api-keys/not-a-key-id", &app.admin_key)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "not_found");
}

#[tokio::test]
async fn every_response_carries_x_request_id() {
    let app = spawn_app().await;
    let mut seen = std::collections::HashSet::new();
    for r in [
        app.get("/api/v1/whoami", &app.admin_key).await,
        app.get("/api/v1/whoami", "bad").await,
        app.call(Method::GET, "/api/v1/whoami", None, None).await,
        app.get("/nowhere", &app.admin_key).await,
        app.post("/api/v1/api-keys", &app.admin_key, json!({}))
            .await,
    ] {
        let id = r.header("x-request-id").expect("X-Request-Id").to_string();
        assert!(!id.is_empty());
        assert!(seen.insert(id), "request ids repeat");
    }
}

/// Deps whose DynamoDB is `endpoint`, for the failure paths.
async fn deps_with(endpoint: &str, tables: Tables) -> keyhub_api::Deps {
    let app_sdk = crate::helpers::sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&app_sdk)
            .endpoint_url(endpoint)
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::new(&app_sdk);
    let pepper = keyhub::domain::pepper::Pepper::new(&[9u8; 32]).unwrap();
    let resources = tables
        .env_vars()
        .iter()
        .map(|(var, name)| (var.to_string(), name.to_string()))
        .collect();
    let config = keyhub_tools::local::stack_config("x", &resources, |name| {
        resources
            .get(name)
            .cloned()
            .or_else(|| (name == "PEPPER_SECRET_ID").then(|| "unused".to_string()))
    })
    .unwrap();
    keyhub_api::Deps::new(ddb, sqs, pepper, None, config)
}

fn whoami_request(key: &str) -> lambda_http::Request {
    let mut req = lambda_http::Request::new(lambda_http::Body::Empty);
    *req.uri_mut() = "/api/v1/whoami".parse().unwrap();
    req.headers_mut()
        .insert("x-api-key", http::HeaderValue::from_str(key).unwrap());
    req
}

#[tokio::test]
async fn an_unreachable_database_is_503_with_retry_after_never_a_pass() {
    let deps = deps_with("http://127.0.0.1:9", Tables::for_stack("gone")).await;
    let key = keyhub::domain::apikey::ApiKey::generate(
        &Default::default(),
        keyhub::domain::apikey::Environment::Live,
    )
    .unwrap();
    let resp = keyhub_api::handle(&deps, whoami_request(key.expose())).await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert!(resp.headers().contains_key("x-request-id"));
    let body: serde_json::Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
    assert_eq!(body["error"]["code"], "service_unavailable");
}

#[tokio::test]
async fn a_missing_table_is_a_500_internal_error() {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap();
    let deps = deps_with(&endpoint, Tables::for_stack(&unique("missing"))).await;
    let key = keyhub::domain::apikey::ApiKey::generate(
        &Default::default(),
        keyhub::domain::apikey::Environment::Live,
    )
    .unwrap();
    let resp = keyhub_api::handle(&deps, whoami_request(key.expose())).await;
    assert_eq!(resp.status(), 500);
    let body: serde_json::Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
    assert_eq!(body["error"]["code"], "internal_error");
}

/// A corpus of hostile requests: each gets a contract-shaped answer (the
/// handler runs on this task, so a panic would fail the test).
#[tokio::test]
async fn hostile_input_never_panics() {
    let app = spawn_app().await;
    let bodies: Vec<Vec<u8>> = vec![
        vec![],
        b"null".to_vec(),
        b"\"string\"".to_vec(),
        b"{\"name\": \"\\u0000\"}".to_vec(),
        b"{\"name\": \"\xff\xfe\"}".to_vec(),
        vec![0xff; 100],
        "[".repeat(100_000).into_bytes(),
        format!(
            "{{\"name\": \"x\", \"metadata\": {}}}",
            "{\"a\":".repeat(200) + "1" + &"}".repeat(200)
        )
        .into_bytes(),
        b"{\"name\": \"x\", \"rate_limits\": {\"per_minute\": 1e400}}".to_vec(),
        b"{\"name\": \"x\", \"rate_limits\": {\"per_minute\": 18446744073709551616}}".to_vec(),
        b"{\"name\": \"x\", \"expires_at\": \"+275760-09-13T00:00:00Z\"}".to_vec(),
        b"{\"name\": \"x\", \"expires_at\": \"9999-12-31T23:59:59.999999999Z\"}".to_vec(),
        b"{\"grace_period_seconds\": 18446744073709551615}".to_vec(),
        b"{\"name\": \"x\", \"name\": \"y\"}".to_vec(),
    ];
    let (_, k) = app.create_key(serde_json::json!({"name": "target"})).await;
    let key_path = format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap());
    let paths = [
        "/api/v1/api-keys".to_string(),
        "/api/v1/accounts".to_string(),
        format!("{key_path}/rotate"),
        key_path.clone(),
        "/api/v1/api-keys/%00".to_string(),
        "/api/v1/api-keys/key_%F0%9F%92%A9".to_string(),
        "/api/v1/api-keys?page=99999999999999999999".to_string(),
        "/api/v1/api-keys?cursor=eyJ2aWV3Ijp7fX0".to_string(),
    ];
    for path in &paths {
        for method in [Method::POST, Method::PATCH, Method::GET] {
            for body in &bodies {
                let r = app
                    .raw(
                        app.client
                            .request(method.clone(), app.url(path))
                            .bearer_auth(&app.admin_key)
                            .header("content-type", "application/json")
                            .body(body.clone()),
                    )
                    .await;
                assert!(
                    r.status.as_u16() < 500,
                    "{method} {path}: {} {}",
                    r.status,
                    r.body
                );
                assert!(r.header("x-request-id").is_some());
            }
        }
    }
}
