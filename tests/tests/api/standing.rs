//! What the console's overview and key page read beyond the key API: the
//! account's usage series over all its keys, and a key's rate-limit
//! standing, read without being spent.

use keyhub::domain::limits::{Limits, Plan};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, clear_of_minute_boundary, spawn_app, unique};

/// (2xx, 4xx, requests) of a tally.
fn classes(t: &Value) -> (u64, u64, u64) {
    let n = |v: &Value| v.as_u64().unwrap_or(u64::MAX);
    (
        n(&t["status"]["2xx"]),
        n(&t["status"]["4xx"]),
        n(&t["requests"]),
    )
}

/// The sum of a series' periods, so that a run across an hour boundary
/// still adds up.
fn summed(body: &Value) -> (u64, u64, u64) {
    body["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(classes)
        .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
}

async fn key_in(app: &TestApp, account: &str, scopes: &[&str]) -> (String, String) {
    app.direct_key(account, Plan::Pro, scopes, Limits::default())
        .await
}

#[tokio::test]
async fn the_account_series_sums_every_key_and_only_the_accounts_own() {
    let app = spawn_app().await;
    let account = unique("acct_series");
    // Twelve busy keys: more than the ten the console used to add up.
    let mut ok: u64 = 0;
    let mut missing: u64 = 0;
    for i in 0..12u64 {
        let (key, _) = key_in(&app, &account, &["keys:read"]).await;
        for _ in 0..=i % 3 {
            assert_eq!(app.get("/api/v1/whoami", &key).await.status, StatusCode::OK);
            ok += 1;
        }
        if i % 4 == 0 {
            let r = app
                .get("/api/v1/api-keys/key_0000000000000000000000", &key)
                .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND);
            missing += 1;
        }
    }
    // Another account's traffic, which must not show.
    let other = unique("acct_other");
    let (stranger, _) = key_in(&app, &other, &["usage:read"]).await;
    for _ in 0..5 {
        app.get("/api/v1/whoami", &stranger).await;
    }
    let (reader, _) = key_in(&app, &account, &["usage:read"]).await;
    assert!(app.drain_usage().await as u64 >= ok + missing + 5);

    let r = app.get("/api/v1/dashboard/usage", &reader).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["account_id"], account.as_str());
    assert_eq!(r.body["granularity"], "hour");
    assert_eq!(r.body["series"].as_array().unwrap().len(), 24);
    assert_eq!(classes(&r.body["totals"]), (ok, missing, ok + missing));
    assert_eq!(summed(&r.body), (ok, missing, ok + missing));
    assert!(r.body["series"][0]["start"].is_string());

    let r = app
        .get("/api/v1/dashboard/usage?granularity=day", &reader)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["series"].as_array().unwrap().len(), 30);
    assert_eq!(summed(&r.body), (ok, missing, ok + missing));

    // The other account sees its own five, none of these.
    let r = app.get("/api/v1/dashboard/usage", &stranger).await;
    assert_eq!(classes(&r.body["totals"]), (5, 0, 5));

    // A range before any traffic is all zeros, every period present.
    let r = app
        .get(
            "/api/v1/dashboard/usage?from=2020-01-01T00:00:00Z&to=2020-01-01T05:30:00Z",
            &reader,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["series"].as_array().unwrap().len(), 6);
    assert_eq!(classes(&r.body["totals"]), (0, 0, 0));

    // Bad parameters get the contract's 400, naming the parameter.
    for (query, field) in [
        ("granularity=week", "granularity"),
        ("from=yesterday", "from"),
        ("to=2026-13-01T00:00:00Z", "to"),
        ("window=1", "window"),
    ] {
        let r = app
            .get(&format!("/api/v1/dashboard/usage?{query}"), &reader)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
        assert_eq!(r.code(), "invalid_request", "{query}");
        assert_eq!(r.body["error"]["details"]["field"], field, "{query}");
    }
    // It needs usage:read.
    let (plain, _) = key_in(&app, &account, &["keys:read"]).await;
    let r = app.get("/api/v1/dashboard/usage", &plain).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "insufficient_scope");
}

#[tokio::test]
async fn a_redelivered_record_counts_once_in_the_account_series() {
    let app = spawn_app().await;
    let account = unique("acct_redeliver");
    let (key, _) = key_in(&app, &account, &["usage:read"]).await;
    for _ in 0..3 {
        app.get("/api/v1/whoami", &key).await;
    }
    // The queue's records, handed to the usage function twice.
    let source = app.stack.usage_source().await.expect("usage queue");
    let deps = app.stack.usage_deps();
    let mut batches = Vec::new();
    source
        .drain(|event| {
            batches.push(event.clone());
            keyhub_usage::handle(&deps, event)
        })
        .await
        .expect("drain");
    for event in batches {
        let again = keyhub_usage::handle(&deps, event).await;
        assert!(again.batch_item_failures.is_empty());
    }
    let r = app.get("/api/v1/dashboard/usage", &key).await;
    assert_eq!(classes(&r.body["totals"]), (3, 0, 3), "{}", r.body);
}

/// The key's and the account's windows as `rate_limit_status` gives them:
/// (limit, remaining, reset) per window.
fn standing(body: &Value, side: &str, window: &str) -> (u64, u64, i64) {
    let w = &body["rate_limit_status"][side][window];
    (
        w["limit"].as_u64().unwrap_or(u64::MAX),
        w["remaining"].as_u64().unwrap_or(u64::MAX),
        w["reset"].as_i64().unwrap_or(i64::MAX),
    )
}

#[tokio::test]
async fn a_keys_standing_shows_what_it_has_spent_and_reading_it_spends_nothing() {
    let app = spawn_app().await;
    let account = unique("acct_standing");
    let limits = Limits::new(50, 500, 5000);
    let (target, id) = app
        .direct_key(&account, Plan::Pro, &["keys:read"], limits)
        .await;
    let (reader, _) = key_in(&app, &account, &["keys:read"]).await;
    clear_of_minute_boundary().await;
    let n = 7;
    for _ in 0..n {
        assert_eq!(
            app.get("/api/v1/whoami", &target).await.status,
            StatusCode::OK
        );
    }
    let path = format!("/api/v1/api-keys/{id}");
    let first = app.get(&path, &reader).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let now = chrono::Utc::now().timestamp();
    let (limit, remaining, reset) = standing(&first.body, "key", "minute");
    assert_eq!((limit, remaining), (50, 50 - n));
    assert!(
        reset > now && reset <= now + 60 && reset % 60 == 0,
        "{reset}"
    );
    assert_eq!(standing(&first.body, "key", "hour").1, 500 - n);
    assert_eq!(standing(&first.body, "key", "day").1, 5000 - n);
    // The account: the target's seven and the reader's one request.
    let (account_limit, account_left, _) = standing(&first.body, "account", "minute");
    assert_eq!(account_left, account_limit - n - 1, "{}", first.body);

    // Read again: the key's standing is as it was; the account's has only
    // the second read's own request more.
    let second = app.get(&path, &reader).await;
    for window in ["minute", "hour", "day"] {
        assert_eq!(
            standing(&second.body, "key", window),
            standing(&first.body, "key", window),
            "{window}"
        );
    }
    assert_eq!(
        standing(&second.body, "account", "minute").1,
        account_left - 1
    );
    // And the key's own next request is counted from where it stood.
    let r = app.get("/api/v1/whoami", &target).await;
    let tightest: u64 = r.header("x-ratelimit-remaining").unwrap().parse().unwrap();
    assert_eq!(tightest, 50 - n - 1);
}
