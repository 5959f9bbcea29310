//! Usage from API Gateway's access log: the local gateway writes the
//! stage's lines in template.yaml's format and delivers them to the usage
//! function as a CloudWatch Logs subscription does (gzip, base64, batches),
//! so these go through the code path AWS runs. A backend in any language
//! behind the authorizer is metered with no code of its own, and a Rust
//! route's guard sends nothing on the request path.

use keyhub::domain::access_log::{AccessLine, FORMAT};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const PYTHON: &str = "/python/hello";
const RUST: &str = "/example/hello";

/// A key made through the API: (plaintext, id).
async fn key(app: &TestApp, scopes: &[&str]) -> (String, String) {
    let (key, object) = app
        .create_key(json!({"name": "access-log caller", "scopes": scopes}))
        .await;
    (key, object["id"].as_str().unwrap().to_string())
}

async fn key_object(app: &TestApp, id: &str) -> Value {
    let r = app
        .get(&format!("/api/v1/api-keys/{id}"), &app.admin_key)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

/// The lines of a subscription event.
fn lines(event: &Value) -> Vec<String> {
    keyhub_usage::logs::decode(event)
        .unwrap()
        .log_events
        .into_iter()
        .map(|e| e.message)
        .collect()
}

/// Counts what is queued for the usage function in SQS, running it.
async fn drain_queue_only(app: &TestApp) -> usize {
    let deps = app.stack.usage_deps();
    let source = app.stack.usage_source().await.unwrap();
    source
        .drain(|event| keyhub_usage::handle(&deps, event))
        .await
        .unwrap()
}

#[tokio::test]
async fn python_traffic_moves_usage_count_last_used_and_the_usage_list() {
    let app = spawn_app().await;
    let (reader, id) = key(&app, &["example:read", "usage:read"]).await;
    // Settle what making the key logged, so only Python's traffic follows.
    assert_eq!(key_object(&app, &id).await["usage_count"], 0);
    app.drain_usage().await;

    for _ in 0..3 {
        let r = app.get(PYTHON, &reader).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // Refused by the authorizer (the key lacks example:write): no usage.
    let r = app.post(PYTHON, &reader, json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // Nothing went through SQS: Python sends nothing, the gateway logs.
    assert_eq!(drain_queue_only(&app).await, 0);
    app.drain_usage().await;

    let k = key_object(&app, &id).await;
    assert_eq!(k["usage_count"], 3, "{k}");
    assert!(k["last_used"].is_string(), "{k}");
    let usage = k["usage"].as_array().unwrap();
    assert_eq!(usage.len(), 3, "{k}");
    for u in usage {
        assert_eq!(u["endpoint"], PYTHON, "{u}");
        assert_eq!(u["method"], "GET");
        assert_eq!(u["status_code"], 200);
    }
    let r = app
        .get(&format!("/api/v1/api-keys/{id}/usage"), &reader)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["totals"]["requests"], 3, "{}", r.body);
    assert_eq!(r.body["totals"]["status"]["2xx"], 3, "{}", r.body);
}

#[tokio::test]
async fn a_rust_route_behind_the_authorizer_is_counted_once_from_the_log_alone() {
    let app = spawn_app().await;
    let (reader, id) = key(&app, &["example:read"]).await;
    app.drain_usage().await;

    let r = app.get(RUST, &reader).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The guard sent no record of its own (KEYHUB_USAGE_FROM_ACCESS_LOG).
    assert_eq!(drain_queue_only(&app).await, 0);
    assert_eq!(app.drain_usage().await, 1, "one access-log line");
    let k = key_object(&app, &id).await;
    assert_eq!(k["usage_count"], 1, "{k}");
    assert_eq!(k["usage"][0]["endpoint"], RUST, "{k}");
    // Reading the key was a management API request of the admin key's:
    // the API checks keys itself, so it still sends its own record.
    assert!(drain_queue_only(&app).await >= 1);
    assert_eq!(key_object(&app, &id).await["usage_count"], 1);
}

#[tokio::test]
async fn a_batch_delivered_twice_counts_once() {
    let app = spawn_app().await;
    let (reader, id) = key(&app, &["example:read"]).await;
    app.drain_usage().await;
    for _ in 0..4 {
        assert_eq!(app.get(PYTHON, &reader).await.status, StatusCode::OK);
    }
    let event = app.access_log.take_event().expect("four lines");
    assert_eq!(lines(&event).len(), 4);
    app.access_log.deliver(&event).await.unwrap();
    app.access_log.deliver(&event).await.unwrap();
    assert_eq!(key_object(&app, &id).await["usage_count"], 4);
}

#[tokio::test]
async fn a_malformed_line_is_skipped_and_the_rest_of_its_batch_counted() {
    let app = spawn_app().await;
    let (reader, id) = key(&app, &["example:read"]).await;
    app.drain_usage().await;
    for _ in 0..3 {
        assert_eq!(app.get(PYTHON, &reader).await.status, StatusCode::OK);
    }
    let good = lines(&app.access_log.take_event().unwrap());
    let mut batch: Vec<(String, i64, String)> = Vec::new();
    for (i, message) in [
        good[0].clone(),
        "{\"requestId\": \"truncated".to_string(),
        good[1].clone(),
        good[2].replace("\"status\":\"200\"", "\"status\":\"two hundred\""),
        "START RequestId: not an access-log line".to_string(),
        good[2].clone(),
    ]
    .into_iter()
    .enumerate()
    {
        batch.push((i.to_string(), 0, message));
    }
    let event = keyhub_usage::logs::encode("/aws/apigateway/x", "s", "usage", &batch).unwrap();
    let data = keyhub_usage::logs::decode(&event).unwrap();
    let outcome = keyhub_usage::handle_logs(&app.stack.usage_deps(), &data)
        .await
        .unwrap();
    assert_eq!(outcome.lines, 6);
    assert_eq!(outcome.malformed, 3);
    assert_eq!(outcome.applied, 3);
    assert_eq!(key_object(&app, &id).await["usage_count"], 3);
    // A payload that is not even gzip is refused whole, for Lambda to
    // retry, and counts nothing.
    let broken = json!({"awslogs": {"data": "bm90IGd6aXA="}});
    assert!(app.access_log.deliver(&broken).await.is_err());
}

#[tokio::test]
async fn every_answer_is_logged_refusals_and_gateway_responses_included() {
    let app = spawn_app().await;
    let (reader, id) = key(&app, &["example:read"]).await;
    app.drain_usage().await;
    let ok = app.get(PYTHON, &reader).await;
    assert_eq!(ok.status, StatusCode::OK);
    let no_key = app.call(Method::GET, PYTHON, None, None).await;
    assert_eq!(no_key.status, StatusCode::UNAUTHORIZED);
    let garbage = app.get(PYTHON, "kh_live_garbage").await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
    let scope = app.post(PYTHON, &reader, json!({})).await;
    assert_eq!(scope.status, StatusCode::FORBIDDEN);
    let unknown = app.get("/no/such/route", &reader).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    let parsed: Vec<AccessLine> = lines(&app.access_log.take_event().unwrap())
        .iter()
        .map(|l| AccessLine::parse(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(parsed.len(), 5);
    let ids: Vec<Option<&str>> = [&ok, &no_key, &garbage, &scope, &unknown]
        .iter()
        .map(|r| r.header("x-request-id").or(r.header("x-amzn-requestid")))
        .collect();
    for (line, id) in parsed.iter().zip(&ids) {
        assert_eq!(Some(line.request_id.as_str()), *id);
        assert_eq!(line.source_ip.as_deref(), Some("127.0.0.1"));
    }
    let statuses: Vec<u16> = parsed.iter().map(|l| l.status).collect();
    assert_eq!(statuses, [200, 401, 401, 403, 404]);
    let types: Vec<Option<&str>> = parsed.iter().map(|l| l.response_type.as_deref()).collect();
    assert_eq!(
        types,
        [
            None,
            Some("UNAUTHORIZED"),
            Some("UNAUTHORIZED"),
            Some("ACCESS_DENIED"),
            Some("MISSING_AUTHENTICATION_TOKEN")
        ]
    );
    // The allowed request and the scope refusal name the key; only the
    // first is usage, the second a refused attempt of the key.
    assert_eq!(parsed[0].key_id.as_deref(), Some(id.as_str()));
    assert_eq!(
        parsed[0].account_id.as_deref(),
        Some(app.account_id.as_str())
    );
    assert_eq!(parsed[0].route.as_deref(), Some(PYTHON));
    assert_eq!(parsed[1].key_id, None);
    assert_eq!(parsed[3].key_id.as_deref(), Some(id.as_str()));
    assert_eq!(parsed[4].route, None);
    let usage: Vec<Option<bool>> = parsed
        .iter()
        .map(|l| l.usage().unwrap().map(|r| r.refused))
        .collect();
    assert_eq!(usage, [Some(false), None, None, Some(true), None]);
}

#[test]
fn the_template_writes_the_format_the_usage_function_reads() {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(keyhub_tools::template::TEMPLATE).unwrap();
    let setting = &doc["Globals"]["Api"]["AccessLogSetting"];
    assert_eq!(setting["Format"].as_str(), Some(FORMAT));
    // Every stage takes the Globals' setting: none sets its own.
    for (id, r) in doc["Resources"].as_mapping().unwrap() {
        if r["Type"].as_str() == Some("AWS::Serverless::Api") {
            assert!(
                r["Properties"]["AccessLogSetting"].is_null(),
                "{id:?} overrides the access-log format"
            );
        }
    }
}
