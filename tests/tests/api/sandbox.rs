//! Sandbox keys: an account's `test` keys are counted apart from its `live`
//! keys, in the rate limits (their own account counter) and in the
//! account's usage (the dashboard shows live traffic unless asked for
//! test), so testing never spends production quota or shows in its numbers.

use reqwest::StatusCode;
use serde_json::{Value, json};

use keyhub::domain::apikey::Environment::{self, Live, Test};
use keyhub::domain::key::{NewKey, mint};
use keyhub::domain::limits::Plan;
use keyhub::domain::scope::Scopes;

use crate::helpers::{TestApp, clear_of_minute_boundary, spawn_app_with, unique};

/// Pro accounts share 8 requests a minute; keys and the admin's
/// enterprise account are roomy.
const LIMITS: &str = r#"{
    "key_default": {"per_minute": 100000, "per_hour": 1000000, "per_day": 10000000},
    "free": {"per_minute": 100000},
    "pro": {"per_minute": 8},
    "enterprise": {"per_minute": 100000}
}"#;

/// The same, with test keys held to 3 a minute, whatever the plan.
const TEST_LIMITS: &str = r#"{
    "key_default": {"per_minute": 100000, "per_hour": 1000000, "per_day": 10000000},
    "free": {"per_minute": 100000},
    "pro": {"per_minute": 8},
    "enterprise": {"per_minute": 100000},
    "test": {"per_minute": 3}
}"#;

/// A key of `environment` in a pro account, written straight to the
/// store, so that making it spends no quota: (plaintext, id).
async fn key(app: &TestApp, account: &str, environment: Environment) -> (String, String) {
    let settings = NewKey {
        account_id: account.to_string(),
        plan: Plan::Pro,
        name: environment.as_str().into(),
        description: None,
        scopes: Scopes::parse_all(["keys:read", "example:read", "usage:read"]).unwrap(),
        environment,
        expires_at: None,
        rate_limits: Default::default(),
        metadata: Default::default(),
    };
    let (key, record) = mint(
        &app.stack.pepper,
        &app.stack.config.key_prefix,
        settings,
        keyhub::domain::time::now(),
    )
    .unwrap();
    app.stack.store.put_key_uncounted(&record).await.unwrap();
    (key.expose().to_string(), record.id)
}

/// Calls until the account refuses; the successes before it.
async fn until_refused(app: &TestApp, path: &str, key: &str) -> (u64, Value) {
    for n in 0..20 {
        let r = app.get(path, key).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            return (n, r.body);
        }
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    panic!("{path} was never refused")
}

/// `rate_limit_status` of a key, read by `reader` (which spends a unit of
/// its own account's live counter before the read).
async fn status_of(app: &TestApp, reader: &str, id: &str) -> Value {
    let r = app.get(&format!("/api/v1/api-keys/{id}"), reader).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["rate_limit_status"].clone()
}

async fn read(app: &TestApp, key: &str, path: &str) -> Value {
    let r = app.get(path, key).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    r.body
}

#[tokio::test]
async fn a_test_key_exhausting_its_account_never_refuses_a_live_key_and_back() {
    let app = spawn_app_with(&[("KEYHUB_RATE_LIMITS", LIMITS)]).await;
    let account = unique("acct_sandbox");
    let (test, test_id) = key(&app, &account, Test).await;
    let (live, live_id) = key(&app, &account, Live).await;
    clear_of_minute_boundary().await;

    // Through the authorizer (its context names the environment): the
    // account's test keys have their own 8.
    let (passed, refused) = until_refused(&app, "/example/hello", &test).await;
    assert_eq!(passed, 8);
    assert_eq!(refused["error"]["details"]["limit"], 8, "{refused}");
    // The live keys' 8 are untouched: through the API's own key check and
    // through the authorizer.
    let r = app.get("/api/v1/whoami", &live).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("7"));
    let r = app.get("/example/hello", &live).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Each key's standing shows its own account counter.
    let s = status_of(&app, &live, &test_id).await;
    assert_eq!(s["environment"], "test", "{s}");
    assert_eq!(s["account"]["minute"]["limit"], 8, "{s}");
    assert_eq!(s["account"]["minute"]["remaining"], 0, "{s}");
    let s = status_of(&app, &live, &live_id).await;
    assert_eq!(s["environment"], "live", "{s}");
    // Two calls and two standing reads, each its unit taken before it read.
    assert_eq!(s["account"]["minute"]["remaining"], 4, "{s}");

    // The other way: live keys exhausting theirs leave the test keys'.
    let account = unique("acct_sandbox");
    let (test, _) = key(&app, &account, Test).await;
    let (live, _) = key(&app, &account, Live).await;
    let (passed, _) = until_refused(&app, "/api/v1/whoami", &live).await;
    assert_eq!(passed, 8);
    let r = app.get("/example/hello", &test).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("7"));
}

#[tokio::test]
async fn test_limits_hold_test_keys_whatever_the_plan() {
    let app = spawn_app_with(&[("KEYHUB_RATE_LIMITS", TEST_LIMITS)]).await;
    let account = unique("acct_sandbox");
    let (test, test_id) = key(&app, &account, Test).await;
    let (live, _) = key(&app, &account, Live).await;
    clear_of_minute_boundary().await;
    let r = app.get("/api/v1/whoami", &test).await;
    assert_eq!(r.body["limits"]["account"]["per_minute"], 3, "{}", r.body);
    let (passed, refused) = until_refused(&app, "/example/hello", &test).await;
    assert_eq!(
        (passed, &refused["error"]["details"]["limit"]),
        (2, &json!(3))
    );
    // The live key keeps the plan's 8.
    let r = app.get("/api/v1/whoami", &live).await;
    assert_eq!(r.body["limits"]["account"]["per_minute"], 8, "{}", r.body);
    let s = status_of(&app, &live, &test_id).await;
    assert_eq!(s["account"]["minute"]["limit"], 3, "{s}");
    assert_eq!(s["account"]["minute"]["remaining"], 0, "{s}");

    // An operator reads both sets on the account.
    let (id, _) = app.other_account().await;
    let r = app
        .get(&format!("/api/v1/accounts/{id}"), &app.admin_key)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["limits"]["per_minute"], 8, "{}", r.body);
    assert_eq!(r.body["test_limits"]["per_minute"], 3, "{}", r.body);
}

#[tokio::test]
async fn the_dashboard_shows_live_traffic_unless_asked_for_test() {
    let app = spawn_app_with(&[("KEYHUB_RATE_LIMITS", crate::helpers::ROOMY_LIMITS)]).await;
    let account = unique("acct_sandbox");
    let (test, _) = key(&app, &account, Test).await;
    let (live, _) = key(&app, &account, Live).await;

    // Test traffic through the guard (whoami), the authorizer's access log
    // (Python) and the guard behind the authorizer (Rust); one live call.
    for path in ["/api/v1/whoami", "/python/hello", "/example/hello"] {
        for _ in 0..2 {
            let r = app.get(path, &test).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        }
    }
    let r = app.get("/api/v1/whoami", &live).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.drain_usage().await;

    let series = read(&app, &live, "/api/v1/dashboard/usage?environment=test").await;
    assert_eq!(series["environment"], "test");
    assert_eq!(series["totals"]["requests"], 6, "{series}");
    let series = read(&app, &live, "/api/v1/dashboard/usage").await;
    assert_eq!(series["environment"], "live");
    assert_eq!(series["totals"]["requests"], 1, "{series}");

    // The two series reads, live, counted too.
    app.drain_usage().await;
    let stats = read(&app, &live, "/api/v1/dashboard/stats?environment=test").await;
    assert_eq!(stats["environment"], "test");
    assert_eq!(stats["total_api_calls"], 6, "{stats}");
    assert_eq!(stats["active_api_keys"], 1, "{stats}");
    assert_eq!(stats["api_keys"][0]["name"], "test", "{stats}");
    let stats = read(&app, &live, "/api/v1/dashboard/stats").await;
    assert_eq!(stats["environment"], "live");
    assert_eq!(stats["total_api_calls"], 3, "{stats}");
    assert_eq!(stats["active_api_keys"], 1, "{stats}");
    assert_eq!(stats["api_keys"][0]["name"], "live", "{stats}");

    for path in [
        "/api/v1/dashboard/usage?environment=sandbox",
        "/api/v1/dashboard/stats?environment=LIVE",
    ] {
        let r = app.get(path, &live).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
        assert_eq!(r.body["error"]["details"]["field"], "environment");
    }
}
