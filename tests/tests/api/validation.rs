//! What a schema-driven fuzzer found, each case through the local gateway:
//! input that used to reach DynamoDB's own validation (and come back as a
//! 500) is refused as 400 or not found first; integral numbers count as
//! integers; a required body is required; a method a path lacks is 405 with
//! `Allow`; answers that carry a secret are not cached.

use proptest::prelude::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with, webhook_env};

/// Metadata DynamoDB itself would refuse: an empty map key at any depth,
/// numbers outside its range.
fn hostile_metadata() -> Vec<Value> {
    vec![
        json!({"": "x"}),
        json!({"a": {"": 1}}),
        json!({"a": [{"": true}]}),
        json!({"big": 1e200}),
        json!({"tiny": 1e-200}),
        json!({"a": {"b": [-1e130]}}),
        json!({"a": {"b": {"c": {"d": 1}}}}),
    ]
}

async fn expect_invalid(r: crate::helpers::Resp, what: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.body);
    assert_eq!(r.code(), "invalid_request", "{what}");
    assert_eq!(
        r.body["error"]["details"]["reason"], "invalid_value",
        "{what}"
    );
}

#[tokio::test]
async fn metadata_dynamodb_would_refuse_is_a_400_on_create_put_and_patch() {
    let app = spawn_app().await;
    let (_, key) = app.create_key(json!({"name": "target"})).await;
    let path = format!("/api/v1/api-keys/{}", key["id"].as_str().unwrap());
    for metadata in hostile_metadata() {
        let body = json!({"name": "m", "metadata": metadata});
        let r = app.post("/api/v1/api-keys", &app.admin_key, body).await;
        expect_invalid(r, &format!("POST {metadata}")).await;
        for method in [Method::PUT, Method::PATCH] {
            let r = app
                .call(
                    method.clone(),
                    &path,
                    Some(&app.admin_key),
                    Some(json!({"metadata": metadata})),
                )
                .await;
            expect_invalid(r, &format!("{method} {metadata}")).await;
        }
    }
    // The key is as it was, and nothing else was created.
    let r = app.get(&path, &app.admin_key).await;
    assert_eq!(r.body["metadata"], json!({}));
    assert_eq!(
        app.get("/api/v1/api-keys", &app.admin_key).await.body["total"],
        2
    );
}

#[tokio::test]
async fn the_edges_of_dynamodbs_number_range_are_stored_and_read_back() {
    let app = spawn_app().await;
    let metadata = json!({
        "max": 9.99999999999999e125, "min": 1e-130, "neg": -9.99999999999999e125,
        "zero": 0, "negzero": -0.0, "u64": u64::MAX, "i64": i64::MIN, "pi": std::f64::consts::PI,
        "nested": {"list": [1, "two", null, false, ""], "obj": {"deep": ""}}, "empty": "",
    });
    let (_, key) = app
        .create_key(json!({"name": "edges", "metadata": metadata}))
        .await;
    let read = app
        .get(
            &format!("/api/v1/api-keys/{}", key["id"].as_str().unwrap()),
            &app.admin_key,
        )
        .await;
    assert!(
        same_json(&read.body["metadata"], &metadata),
        "{}",
        read.body
    );
}

#[tokio::test]
async fn ids_of_any_length_in_the_path_are_not_found_without_a_500() {
    let app = spawn_app_with(&webhook_env("1")).await;
    let (id, _) = app.webhook("http://127.0.0.1:9/hook", &["*"]).await;
    let long_wh = format!("wh_{}", "a".repeat(2000));
    let long_dlv = format!("dlv_{}", "b".repeat(2000));
    let paths = [
        (Method::GET, format!("/api/v1/webhooks/{long_wh}")),
        (Method::PUT, format!("/api/v1/webhooks/{long_wh}")),
        (Method::DELETE, format!("/api/v1/webhooks/{long_wh}")),
        (
            Method::POST,
            format!("/api/v1/webhooks/{long_wh}/rotate-secret"),
        ),
        (Method::POST, format!("/api/v1/webhooks/{long_wh}/test")),
        (
            Method::GET,
            format!("/api/v1/webhooks/{long_wh}/deliveries"),
        ),
        (
            Method::GET,
            format!("/api/v1/webhooks/{id}/deliveries/{long_dlv}"),
        ),
        (
            Method::POST,
            format!("/api/v1/webhooks/{id}/deliveries/{long_dlv}/retry"),
        ),
        (Method::GET, "/api/v1/webhooks/wh_short".to_string()),
        (
            Method::GET,
            format!("/api/v1/webhooks/{id}/deliveries/dlv_short"),
        ),
    ];
    for (method, path) in paths {
        let body = (method == Method::PUT).then(|| json!({"is_active": true}));
        let r = app
            .call(method.clone(), &path, Some(&app.admin_key), body)
            .await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {}: {}",
            &path[..60.min(path.len())],
            r.body
        );
        assert_eq!(r.code(), "not_found");
    }
    // A delivery cursor is a delivery id: anything else is a 400, not a read.
    for cursor in ["x".repeat(3000), "d#dlv_x".to_string(), "ZCNk".to_string()] {
        let r = app
            .get(
                &format!("/api/v1/webhooks/{id}/deliveries?cursor={cursor}"),
                &app.admin_key,
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    }
    let r = app
        .get(
            &format!(
                "/api/v1/webhooks/{id}/deliveries?cursor=dlv_{}",
                "0".repeat(22)
            ),
            &app.admin_key,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn integral_floats_count_as_integers() {
    let app = spawn_app().await;
    let (_, key) = app
        .create_key(json!({"name": "f", "rate_limits": {"per_minute": 1048576.0, "per_day": 5e6}}))
        .await;
    assert_eq!(key["rate_limits"]["per_minute"], 1048576);
    assert_eq!(key["rate_limits"]["per_day"], 5_000_000);
    let id = key["id"].as_str().unwrap();
    let r = app
        .post(
            &format!("/api/v1/api-keys/{id}/rotate"),
            &app.admin_key,
            json!({"grace_period_seconds": 3600.0}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // A fraction is still not a whole number.
    let r = app
        .post(
            "/api/v1/api-keys",
            &app.admin_key,
            json!({"name": "f", "rate_limits": {"per_minute": 1.5}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(
        r.body["error"]["details"]["field"],
        "rate_limits.per_minute"
    );
}

#[tokio::test]
async fn at_most_50_scopes_as_sent_repeats_included() {
    let app = spawn_app().await;
    let r = app
        .post(
            "/api/v1/api-keys",
            &app.admin_key,
            json!({"name": "s", "scopes": vec!["keys:read"; 51]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["error"]["details"]["field"], "scopes");
    let (_, key) = app
        .create_key(json!({"name": "s", "scopes": vec!["keys:read"; 50]}))
        .await;
    assert_eq!(key["scopes"], json!(["keys:read"]));
}

#[tokio::test]
async fn a_required_body_is_required() {
    let app = spawn_app_with(&webhook_env("1")).await;
    let (wh, _) = app.webhook("http://127.0.0.1:9/hook", &["*"]).await;
    let (_, key) = app.create_key(json!({"name": "target"})).await;
    let key_path = format!("/api/v1/api-keys/{}", key["id"].as_str().unwrap());
    for (method, path) in [
        (Method::PUT, format!("/api/v1/webhooks/{wh}")),
        (Method::PUT, key_path.clone()),
        (Method::PATCH, key_path.clone()),
        (Method::POST, "/api/v1/api-keys".to_string()),
    ] {
        let r = app
            .call(method.clone(), &path, Some(&app.admin_key), None)
            .await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{method} {path}: {}",
            r.body
        );
        assert_eq!(
            r.body["error"]["details"]["reason"], "required_field_missing",
            "{method} {path}"
        );
    }
    // Rotation's body is optional.
    let r = app
        .call(
            Method::POST,
            &format!("{key_path}/rotate"),
            Some(&app.admin_key),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn a_method_a_path_lacks_is_405_with_allow_and_an_unknown_path_404() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        (
            Method::TRACE,
            "/api/v1/api-keys/key_2sgXOxqc3QhsmIEJ5vB6iQ",
            "GET, PUT, PATCH, DELETE",
        ),
        (Method::POST, "/api/v1/whoami", "GET"),
        (Method::DELETE, "/api/v1/api-keys", "POST, GET"),
        (
            Method::GET,
            "/api/v1/webhooks/wh_x/deliveries/dlv_y/retry",
            "POST",
        ),
    ] {
        // With a key, without one, and with a bad one: the same answer.
        for key in [Some(app.admin_key.as_str()), None, Some("kh_live_nope")] {
            let r = app.call(method.clone(), path, key, None).await;
            assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(r.code(), "method_not_allowed");
            assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
        }
    }
    for path in ["/api/v1/nothing", "/api/v1/api-keys/a/b"] {
        let r = app
            .call(Method::TRACE, path, Some(&app.admin_key), None)
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.code(), "not_found");
    }
}

#[tokio::test]
async fn answers_that_carry_a_secret_are_not_stored_by_caches() {
    let app = spawn_app_with(&webhook_env("1")).await;
    let no_store = |r: &crate::helpers::Resp| r.header("cache-control") == Some("no-store");
    let r = app
        .post("/api/v1/api-keys", &app.admin_key, json!({"name": "k"}))
        .await;
    assert!(r.body["key"].is_string() && no_store(&r), "create key");
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            &format!("/api/v1/api-keys/{id}/rotate"),
            &app.admin_key,
            json!({}),
        )
        .await;
    assert!(r.body["key"].is_string() && no_store(&r), "rotate key");
    let r = app
        .post("/api/v1/accounts", &app.admin_key, json!({"name": "acme"}))
        .await;
    assert!(
        r.body["api_key"]["key"].is_string() && no_store(&r),
        "account"
    );
    let r = app
        .post(
            "/api/v1/webhooks",
            &app.admin_key,
            json!({"url": "http://127.0.0.1:9/hook", "events": ["*"]}),
        )
        .await;
    assert!(
        r.body["secret"].is_string() && no_store(&r),
        "create webhook"
    );
    let wh = r.body["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            &format!("/api/v1/webhooks/{wh}/rotate-secret"),
            &app.admin_key,
            json!({}),
        )
        .await;
    assert!(
        r.body["secret"].is_string() && no_store(&r),
        "rotate secret"
    );
    // Reads carry no secret: a private cache may keep them and revalidate
    // with their ETag.
    let r = app
        .get(&format!("/api/v1/api-keys/{id}"), &app.admin_key)
        .await;
    assert_eq!(r.header("cache-control"), Some("private, no-cache"));
}

/// JSON equality with numbers compared as numbers: DynamoDB keeps a number's
/// value, not how it was written (`1.0` reads back as `1`).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Any JSON value, nested up to four levels, with keys and numbers of every
/// kind (empty keys, huge and tiny floats, integers at the 64-bit edges).
fn any_json() -> impl Strategy<Value = Value> {
    let number = prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        (-330i32..330).prop_map(|e| Value::from(10f64.powi(e))),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        number,
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(".{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn any_metadata() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(".{0,8}", any_json(), 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// One metadata value through create, or PUT/PATCH of `key`: never a 5xx;
/// either refused as invalid_request, or stored so that it reads back equal.
async fn round_trip(app: &TestApp, key: &str, how: usize, metadata: &Value) -> Result<(), String> {
    let (r, id) = match how {
        0 => {
            let r = app
                .post(
                    "/api/v1/api-keys",
                    &app.admin_key,
                    json!({"name": "p", "metadata": metadata}),
                )
                .await;
            let id = r.body["id"].as_str().unwrap_or_default().to_string();
            (r, id)
        }
        _ => {
            let method = if how == 1 { Method::PUT } else { Method::PATCH };
            let r = app
                .call(
                    method,
                    &format!("/api/v1/api-keys/{key}"),
                    Some(&app.admin_key),
                    Some(json!({"metadata": metadata})),
                )
                .await;
            (r, key.to_string())
        }
    };
    if r.status.is_server_error() {
        return Err(format!("{}: {}", r.status, r.body));
    }
    if r.status == StatusCode::BAD_REQUEST {
        return match r.body["error"]["code"].as_str() {
            Some("invalid_request") => Ok(()),
            _ => Err(format!("400 with {}", r.body)),
        };
    }
    if !r.status.is_success() {
        return Err(format!("{}: {}", r.status, r.body));
    }
    let read = app
        .get(&format!("/api/v1/api-keys/{id}"), &app.admin_key)
        .await;
    if same_json(&read.body["metadata"], metadata) {
        Ok(())
    } else {
        Err(format!(
            "stored {metadata}, read back {}",
            read.body["metadata"]
        ))
    }
}

#[test]
fn any_metadata_is_refused_as_invalid_or_reads_back_equal() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let app = rt.block_on(spawn_app());
    let (_, key) = rt.block_on(app.create_key(json!({"name": "target"})));
    let key = key["id"].as_str().unwrap().to_string();
    let config = ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(metadata in any_metadata(), how in 0usize..3)| {
        let outcome = rt.block_on(round_trip(&app, &key, how, &metadata));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    });
}

/// Limits are an object: an array (which serde's derived struct reader
/// would take as the fields in order) is refused, as the schema says.
#[tokio::test]
async fn rate_limits_as_an_array_are_refused() {
    let app = spawn_app().await;
    for body in [
        json!({"name": "a", "rate_limits": [null, null]}),
        json!({"name": "a", "rate_limits": [5, 10, 20]}),
    ] {
        let r = app
            .post("/api/v1/api-keys", &app.admin_key, body.clone())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert_eq!(
            r.body["error"]["details"]["field"], "rate_limits",
            "{}",
            r.body
        );
    }
}
