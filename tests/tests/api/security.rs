//! Security visibility (issue 13.6): refused attempts of known keys are
//! counted per key and account, never as usage; a bad key's 401s move no
//! account; usage keeps the source address, and the dashboard and a key's
//! usage show failed attempts and the top addresses. Through the local
//! gateway: the authorizer's refusals come from its access log, the
//! management API's from the guard's records.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const PYTHON: &str = "/python/hello";
/// The local gateway's callers: the tests, on loopback.
const LOCAL: &str = "127.0.0.1";

async fn key(app: &TestApp, scopes: &[&str]) -> (String, String) {
    let (key, object) = app
        .create_key(json!({"name": "security caller", "scopes": scopes}))
        .await;
    (key, object["id"].as_str().unwrap().to_string())
}

async fn read(app: &TestApp, path: &str) -> Value {
    let r = app.get(path, &app.admin_key).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    r.body
}

async fn key_usage(app: &TestApp, id: &str) -> Value {
    read(app, &format!("/api/v1/api-keys/{id}/usage")).await
}

fn address_requests(security: &Value, address: &str) -> Option<u64> {
    security["top_addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["address"] == address)
        .and_then(|a| a["requests"].as_u64())
}

#[tokio::test]
async fn wrong_scope_attempts_show_on_the_dashboard_and_the_key_without_usage() {
    let app = spawn_app().await;
    let (reader, id) = key(&app, &["example:read"]).await;
    app.drain_usage().await;
    let before = read(&app, "/api/v1/dashboard/stats").await;
    let failed_before = before["security"]["failed_attempts"]["total"]
        .as_u64()
        .unwrap();

    // Two Denies by the authorizer (no example:write), from its access log,
    // and one by the guard (no usage:read), from the guard's own record.
    for _ in 0..2 {
        let r = app.post(PYTHON, &reader, json!({})).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    }
    let r = app.get("/api/v1/dashboard/stats", &reader).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.code(), "insufficient_scope");
    // And one allowed request, so that the key has usage to compare.
    assert_eq!(app.get(PYTHON, &reader).await.status, StatusCode::OK);
    app.drain_usage().await;
    // Delivered again (as Lambda and SQS may): still counted once.
    app.drain_usage().await;

    let u = key_usage(&app, &id).await;
    let s = &u["security"];
    assert_eq!(s["failed_attempts"]["total"], 3, "{u}");
    assert_eq!(s["failed_attempts"]["403"], 3, "{u}");
    assert_eq!(s["failed_attempts"]["401"], 0, "{u}");
    assert_eq!(u["totals"]["requests"], 1, "refusals are not usage: {u}");
    let k = read(&app, &format!("/api/v1/api-keys/{id}")).await;
    assert_eq!(k["usage_count"], 1, "{k}");

    let d = read(&app, "/api/v1/dashboard/stats").await;
    assert_eq!(
        d["security"]["failed_attempts"]["total"].as_u64().unwrap(),
        failed_before + 3,
        "{d}"
    );
    assert_eq!(d["security"]["addresses_truncated"], false, "{d}");
}

#[tokio::test]
async fn a_bad_keys_401s_move_no_accounts_usage() {
    let app = spawn_app().await;
    let (reader, id) = key(&app, &["example:read"]).await;
    assert_eq!(app.get(PYTHON, &reader).await.status, StatusCode::OK);
    app.drain_usage().await;
    let key_before = read(&app, &format!("/api/v1/api-keys/{id}")).await;
    let dash_before = read(&app, "/api/v1/dashboard/stats").await;
    app.drain_usage().await;

    // A key of the right shape that does not exist, and one that does not
    // parse, at the authorizer and at the guard.
    let unknown = format!("{}x", &reader[..reader.len() - 1]);
    for bad in [unknown.as_str(), "kh_test_not-a-key"] {
        for path in [PYTHON, "/api/v1/api-keys"] {
            let r = app.get(path, bad).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}: {}", r.body);
        }
    }
    app.drain_usage().await;

    let key_after = read(&app, &format!("/api/v1/api-keys/{id}")).await;
    assert_eq!(key_after["usage_count"], key_before["usage_count"]);
    let u = key_usage(&app, &id).await;
    assert_eq!(u["security"]["failed_attempts"]["total"], 0, "{u}");
    let dash_after = read(&app, "/api/v1/dashboard/stats").await;
    // Only the admin key's own reads in between moved the totals.
    let calls = |d: &Value| d["total_api_calls"].as_u64().unwrap();
    assert!(
        calls(&dash_after) <= calls(&dash_before) + 3,
        "{dash_after}"
    );
    assert_eq!(
        dash_after["security"]["failed_attempts"], dash_before["security"]["failed_attempts"],
        "unattributed 401s are only logged"
    );
}

#[tokio::test]
async fn top_addresses_show_the_callers_address() {
    let app = spawn_app().await;
    let (reader, id) = key(&app, &["example:read"]).await;
    for _ in 0..3 {
        assert_eq!(app.get(PYTHON, &reader).await.status, StatusCode::OK);
    }
    app.drain_usage().await;

    let u = key_usage(&app, &id).await;
    let s = &u["security"];
    assert_eq!(address_requests(s, LOCAL), Some(3), "{u}");
    assert_eq!(s["top_addresses"].as_array().unwrap().len(), 1, "{u}");
    assert_eq!(s["addresses_day"], s["failed_attempts_to"], "{u}");
    let d = read(&app, "/api/v1/dashboard/stats").await;
    // The account's: this key's three and the admin key's own calls.
    assert!(address_requests(&d["security"], LOCAL).unwrap() >= 3, "{d}");
}

/// Waits out the last half minute of an hour, so that two bursts fall in
/// one hour.
async fn clear_of_hour_boundary() {
    let into_hour = chrono::Utc::now().timestamp().rem_euclid(3600);
    if into_hour > 3600 - 30 {
        tokio::time::sleep(std::time::Duration::from_secs(
            (3600 - into_hour + 1) as u64,
        ))
        .await;
    }
}

#[tokio::test]
async fn a_burst_after_a_quiet_day_raises_one_usage_anomaly_per_key_and_hour() {
    let mut env = crate::helpers::webhook_env("0.001");
    env.push(("KEYHUB_ANOMALY_MIN_REQUESTS", "20"));
    let app = crate::helpers::spawn_app_with(&env).await;
    let (url, rx) = crate::helpers::start_receiver(vec![]).await;
    app.webhook(&url, &["usage.anomaly"]).await;
    let (reader, id) = key(&app, &["example:read"]).await;
    clear_of_hour_boundary().await;
    let got = || {
        rx.requests()
            .iter()
            .map(|r| serde_json::from_str::<Value>(&r.body).unwrap())
            .collect::<Vec<_>>()
    };

    // Below the minimum: a quiet key's first requests.
    for _ in 0..5 {
        assert_eq!(app.get(PYTHON, &reader).await.status, StatusCode::OK);
    }
    app.drain_usage().await;
    app.pump_webhooks_until(std::time::Duration::from_secs(2), || false)
        .await;
    assert!(got().is_empty(), "{:?}", got());

    // The burst: 25 in the hour, after nothing in the 24 before.
    for _ in 0..20 {
        assert_eq!(app.get(PYTHON, &reader).await.status, StatusCode::OK);
    }
    app.drain_usage().await;
    app.pump_webhooks_until(std::time::Duration::from_secs(4), || !got().is_empty())
        .await;
    let events = got();
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["event"], "usage.anomaly");
    assert_eq!(e["data"]["key_id"], id.as_str());
    assert_eq!(e["data"]["requests"], 25);
    assert_eq!(e["data"]["trailing_hourly_average"], 0.0);

    // A second burst in the same hour: no second event.
    for _ in 0..25 {
        assert_eq!(app.get(PYTHON, &reader).await.status, StatusCode::OK);
    }
    app.drain_usage().await;
    app.pump_webhooks_until(std::time::Duration::from_secs(3), || false)
        .await;
    assert_eq!(got().len(), 1, "{:?}", got());
}
