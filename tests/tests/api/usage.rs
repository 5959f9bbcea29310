//! Usage: records from the guard through SQS to the usage function, and the
//! statistics the API reads from its aggregates.

use std::collections::HashMap;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use aws_sdk_dynamodb::types::AttributeValue;
use keyhub::domain::limits::{Limits, Plan};
use keyhub::domain::usage::UsageRecord;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

async fn direct_key(
    app: &TestApp,
    account: &str,
    scopes: &[&str],
    per_minute: Option<u64>,
) -> (String, String) {
    let limits = Limits {
        per_minute,
        ..Limits::default()
    };
    app.direct_key(account, Plan::Pro, scopes, limits).await
}

fn record(key_id: &str, request_id: &str, status: u16, route: &str) -> UsageRecord {
    UsageRecord {
        request_id: request_id.to_string(),
        key_id: key_id.to_string(),
        account_id: "acct_usage".to_string(),
        environment: Default::default(),
        method: "GET".to_string(),
        route: route.to_string(),
        status,
        latency_ms: 12.5,
        time: keyhub::domain::time::now(),
        source_ip: None,
        refused: false,
    }
}

fn event(bodies: &[String]) -> SqsEvent {
    let mut e = SqsEvent::default();
    for (i, body) in bodies.iter().enumerate() {
        let mut m = SqsMessage::default();
        m.message_id = Some(format!("m{i}"));
        m.body = Some(body.clone());
        e.records.push(m);
    }
    e
}

async fn usage_count(app: &TestApp, key_id: &str) -> u64 {
    app.stack
        .store
        .get_key(key_id)
        .await
        .unwrap()
        .unwrap()
        .usage_count
}

#[tokio::test]
async fn counts_are_exact_and_the_key_shows_its_recent_requests() {
    let app = spawn_app().await;
    let (key, id) = direct_key(&app, &app.account_id, &["keys:read"], None).await;
    for _ in 0..23 {
        assert_eq!(app.get("/api/v1/whoami", &key).await.status, StatusCode::OK);
    }
    app.get("/api/v1/api-keys/key_0000000000000000000000", &key)
        .await; // a 404, counted too
    assert!(app.drain_usage().await >= 24);
    let r = app
        .get(&format!("/api/v1/api-keys/{id}"), &app.admin_key)
        .await;
    assert_eq!(r.body["usage_count"], 24);
    assert!(r.body["last_used"].is_string());
    let usage = r.body["usage"].as_array().unwrap();
    assert_eq!(usage.len(), 10, "the ten most recent requests");
    assert_eq!(usage[0]["endpoint"], "/api/v1/api-keys/{id}");
    assert_eq!(usage[0]["status_code"], 404);
    assert_eq!(usage[1]["endpoint"], "/api/v1/whoami");
    assert_eq!(usage[1]["method"], "GET");
    assert!(usage[1]["response_time"].as_f64().unwrap() >= 0.0);
    assert!(usage[0]["created_at"].as_str() >= usage[1]["created_at"].as_str());
}

#[tokio::test]
async fn a_redelivered_record_is_counted_once() {
    let app = spawn_app().await;
    let (_, id) = direct_key(&app, "acct_usage", &[], None).await;
    let deps = app.stack.usage_deps();
    let bodies: Vec<String> = (0..5)
        .map(|i| serde_json::to_string(&record(&id, &format!("req-{i}"), 200, "/x")).unwrap())
        .collect();
    let first = keyhub_usage::handle(&deps, event(&bodies)).await;
    assert!(first.batch_item_failures.is_empty());
    // The same batch again, then a batch mixing old and new records.
    keyhub_usage::handle(&deps, event(&bodies)).await;
    let mut mixed = bodies[3..].to_vec();
    mixed.push(serde_json::to_string(&record(&id, "req-new", 500, "/x")).unwrap());
    let again = keyhub_usage::handle(&deps, event(&mixed)).await;
    assert!(again.batch_item_failures.is_empty());
    assert_eq!(usage_count(&app, &id).await, 6);
    let totals = app
        .stack
        .store
        .account_usage("acct_usage", Default::default())
        .await
        .unwrap();
    assert_eq!((totals.requests, totals.s2xx, totals.s5xx), (6, 5, 1));
}

#[tokio::test]
async fn a_poison_record_is_dropped_without_blocking_the_others() {
    let app = spawn_app().await;
    let (_, id) = direct_key(&app, "acct_usage", &[], None).await;
    let deps = app.stack.usage_deps();
    let good =
        |i: usize| serde_json::to_string(&record(&id, &format!("ok-{i}"), 200, "/x")).unwrap();
    let bodies = vec![
        good(1),
        "{not json".to_string(),
        json!({"key_id": 7}).to_string(),
        good(2),
    ];
    let resp = keyhub_usage::handle(&deps, event(&bodies)).await;
    assert!(
        resp.batch_item_failures.is_empty(),
        "bad records are dropped, not retried"
    );
    assert_eq!(usage_count(&app, &id).await, 2);
}

#[tokio::test]
async fn a_failed_write_fails_only_its_own_records() {
    let app = spawn_app().await;
    let (_, good_id) = direct_key(&app, "acct_usage", &[], None).await;
    let (_, bad_id) = direct_key(&app, "acct_usage", &[], None).await;
    // Corrupt one key item so that adding to its count is refused.
    app.stack
        .store
        .client()
        .update_item()
        .table_name(&app.stack.config.tables.keys)
        .key("id", AttributeValue::S(bad_id.clone()))
        .update_expression("SET usage_count = :s")
        .expression_attribute_values(":s", AttributeValue::S("corrupt".into()))
        .send()
        .await
        .unwrap();
    let deps = app.stack.usage_deps();
    let mut bodies = Vec::new();
    for i in 0..30 {
        let key = if i == 7 { &bad_id } else { &good_id };
        bodies.push(serde_json::to_string(&record(key, &format!("r{i}"), 200, "/x")).unwrap());
    }
    let resp = keyhub_usage::handle(&deps, event(&bodies)).await;
    let failed: Vec<&str> = resp
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, vec!["m7"]);
    assert_eq!(usage_count(&app, &good_id).await, 29);
}

fn status_of(v: &Value) -> (u64, u64, u64, u64) {
    let s = &v["status"];
    (
        s["2xx"].as_u64().unwrap(),
        s["4xx"].as_u64().unwrap(),
        s["429"].as_u64().unwrap(),
        v["requests"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn statistics_match_a_hand_count_over_mixed_traffic() {
    let app = spawn_app().await;
    let account = "acct_stats";
    // A: 5 a minute, reads keys. B: writes keys.
    let (a, a_id) = direct_key(&app, account, &["keys:read"], Some(5)).await;
    let (b, b_id) = direct_key(&app, account, &["keys:*"], None).await;
    let (reader, _) = direct_key(&app, account, &["usage:read", "keys:read"], None).await;
    app.drain_usage().await;
    crate::helpers::clear_of_minute_boundary().await;

    // A: 8 × GET /whoami → 5 × 200 then 3 × 429.
    for _ in 0..8 {
        app.get("/api/v1/whoami", &a).await;
    }
    // B: 3 × GET /api-keys → 200; 2 × POST /api-keys with a bad body → 400;
    //    1 × GET /whoami → 200.
    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/api-keys", &b).await.status, StatusCode::OK);
    }
    for _ in 0..2 {
        assert_eq!(
            app.post("/api/v1/api-keys", &b, json!({})).await.status,
            StatusCode::BAD_REQUEST
        );
    }
    app.get("/api/v1/whoami", &b).await;
    app.drain_usage().await;

    // Per key, per endpoint.
    let a_usage = app
        .get(&format!("/api/v1/api-keys/{a_id}/usage"), &reader)
        .await;
    assert_eq!(a_usage.status, StatusCode::OK, "{}", a_usage.body);
    assert_eq!(status_of(&a_usage.body["totals"]), (5, 3, 3, 8));
    let b_usage = app
        .get(
            &format!("/api/v1/api-keys/{b_id}/usage?granularity=day"),
            &reader,
        )
        .await;
    assert_eq!(status_of(&b_usage.body["totals"]), (4, 2, 0, 6));
    let today = b_usage.body["series"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let endpoints: HashMap<String, Value> = today["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["endpoint"].as_str().unwrap().to_string(), e.clone()))
        .collect();
    assert_eq!(status_of(&endpoints["GET /api/v1/api-keys"]), (3, 0, 0, 3));
    assert_eq!(status_of(&endpoints["POST /api/v1/api-keys"]), (0, 2, 0, 2));
    assert_eq!(status_of(&endpoints["GET /api/v1/whoami"]), (1, 0, 0, 1));
    assert_eq!(b_usage.body["series"].as_array().unwrap().len(), 30);

    // The account's dashboard: 14 calls, 9 of them 2xx.
    let d = app.get("/api/v1/dashboard/stats", &reader).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.body);
    assert_eq!(d.body["total_api_calls"], 14);
    assert_eq!(d.body["api_usage"]["success_rate"], 64.3);
    assert!(d.body["api_usage"]["avg_response_time"].as_f64().unwrap() > 0.0);
    assert_eq!(d.body["active_api_keys"], 3);
    let listed: HashMap<&str, u64> = d.body["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["id"].as_str().unwrap(),
                k["usage_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed[a_id.as_str()], 8);
    assert_eq!(listed[b_id.as_str()], 6);
    assert_eq!(
        d.body["api_keys"][0]["id"],
        a_id.as_str(),
        "most used first"
    );

    // Usage needs usage:read, and another account's key is not found.
    assert_eq!(
        app.get(&format!("/api/v1/api-keys/{a_id}/usage"), &a)
            .await
            .code(),
        "insufficient_scope"
    );
    let (_, other) = app.other_account().await;
    let r = app
        .get(&format!("/api/v1/api-keys/{a_id}/usage"), &other)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .get(
            &format!("/api/v1/api-keys/{a_id}/usage?granularity=week"),
            &reader,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// Hands a batch to the usage function until it reports nothing failed, as
/// SQS would redeliver the reported items; returns the number of rounds.
async fn handle_until_done(deps: &keyhub_usage::Deps, bodies: Vec<String>) -> usize {
    let mut pending = bodies;
    for round in 1..=30 {
        let resp = keyhub_usage::handle(deps, event(&pending)).await;
        let failed: Vec<usize> = resp
            .batch_item_failures
            .iter()
            .filter_map(|f| f.item_identifier.strip_prefix('m')?.parse().ok())
            .collect();
        if failed.is_empty() {
            return round;
        }
        pending = failed.iter().map(|&i| pending[i].clone()).collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("usage records still failing after 30 redeliveries");
}

#[tokio::test]
async fn a_key_update_racing_usage_aggregation_never_fails_and_nothing_is_lost() {
    // Every transaction first meets another one holding its items, twice:
    // what a key update racing the usage writer (or two consumers) sees.
    let (url, armed) = crate::resilience::contended_dynamodb(2).await;
    let app = crate::resilience::spawn_through(crate::resilience::Behind::DynamoDb, &url).await;
    armed.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = app
        .prompt(
            reqwest::Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "raced"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let deps = app.stack.usage_deps();
    let (batches, per_batch, patches) = (8, 10, 16);
    let usage = futures::future::join_all((0..batches).map(|b| {
        let bodies: Vec<String> = (0..per_batch)
            .map(|i| {
                serde_json::to_string(&record(&id, &format!("race-{b}-{i}"), 200, "/x")).unwrap()
            })
            .collect();
        handle_until_done(&deps, bodies)
    }));
    let path = format!("/api/v1/api-keys/{id}");
    let updates = futures::future::join_all((0..patches).map(|i| {
        let path = path.clone();
        let app = &app;
        async move {
            app.prompt(
                reqwest::Method::PATCH,
                &path,
                Some(json!({"name": format!("raced {i}")})),
            )
            .await
        }
    }));
    let (rounds, answers) = tokio::join!(usage, updates);
    for r in &answers {
        assert!(
            r.status == StatusCode::OK || r.status == StatusCode::CONFLICT,
            "a PATCH racing usage answered {}: {}",
            r.status,
            r.body
        );
    }
    assert!(answers.iter().any(|r| r.status == StatusCode::OK));
    assert_eq!(
        rounds,
        vec![1; batches],
        "a contended batch is retried in place, not bounced back to SQS record by record"
    );
    let stored = app.stack.store.get_key(&id).await.unwrap().unwrap();
    assert_eq!(
        stored.usage_count,
        (batches * per_batch) as u64,
        "every record counted exactly once"
    );
}

#[tokio::test]
async fn every_range_a_schema_allows_has_an_answer() {
    let app = spawn_app().await;
    let id = app.admin_key_id.clone();
    let usage = |q: &str| format!("/api/v1/api-keys/{id}/usage?{q}");

    // from after to: an empty series, not an error.
    let r = app
        .get(
            &usage("from=2026-11-24T00:00:00Z&to=2026-11-01T00:00:00Z"),
            &app.admin_key,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["series"], json!([]));
    assert_eq!(r.body["from"], r.body["to"]);
    assert_eq!(r.body["totals"]["requests"], 0);

    // Longer than 744 hours: the last 744, ending with to's hour, said so.
    let r = app
        .get(
            &usage("from=2020-01-01T00:00:00Z&to=2026-11-24T05:30:00Z"),
            &app.admin_key,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["truncated"], true);
    let series = r.body["series"].as_array().unwrap();
    assert_eq!(series.len(), 744);
    assert_eq!(series[743]["start"], "2026-11-24T05:00:00.000Z");
    assert_eq!(r.body["to"], "2026-11-24T06:00:00.000Z");
    let r = app.get(&usage(""), &app.admin_key).await;
    assert_eq!(r.body["truncated"], false);

    // Any RFC 3339 time, outside what chrono can round by nanoseconds too.
    for q in [
        "from=1500-01-01T00:00:00Z&to=1500-01-01T05:00:00%2B02:00",
        "granularity=day&from=0000-01-01T00:00:00%2B23:59",
        "granularity=day&to=9999-12-31T23:59:59.999999999Z",
        "to=0000-01-01T00:00:00Z",
    ] {
        let r = app.get(&usage(q), &app.admin_key).await;
        assert_eq!(r.status, StatusCode::OK, "{q}: {}", r.body);
    }
    let r = app
        .get(
            &usage("from=1500-01-01T00:00:00Z&to=1500-01-01T05:00:00%2B02:00"),
            &app.admin_key,
        )
        .await;
    assert_eq!(r.body["series"].as_array().unwrap().len(), 4);
    assert_eq!(r.body["from"], "1500-01-01T00:00:00.000Z");
}
