//! A backend in another language behind the authorizer: the Python function
//! in functions/python-example, run as Lambda runs it (awslambdaric over the
//! Runtime API emulator, one warm execution environment), reached through
//! the local gateway after the authorizer.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Resp, TestApp, spawn_app};

const HELLO: &str = "/python/hello";

/// A key made through the API: (plaintext, id).
async fn key(app: &TestApp, scopes: &[&str]) -> (String, String) {
    let (key, object) = app
        .create_key(json!({"name": "python caller", "scopes": scopes}))
        .await;
    (key, object["id"].as_str().unwrap().to_string())
}

fn pid(r: &Resp) -> u64 {
    r.body["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("{}", r.body))
}

#[tokio::test]
async fn a_key_with_the_scope_reaches_python_and_python_sees_who_it_is() {
    let app = spawn_app().await;
    let (reader, reader_id) = key(&app, &["example:read"]).await;

    let r = app.get(HELLO, &reader).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/json"));
    // What the authorizer put in the request context, read by Python.
    assert_eq!(r.body["key_id"], reader_id.as_str());
    assert_eq!(r.body["account_id"], app.account_id.as_str());
    assert_eq!(r.body["scopes"], json!(["example:read"]));
    assert_eq!(r.body["plan"], "enterprise");
    assert_eq!(r.body["method"], "GET");
    assert_eq!(r.body["path"], HELLO);
    // The proxy answer's multiValueHeaders become repeated headers.
    let served_by: Vec<_> = r.headers.get_all("x-served-by").iter().collect();
    assert_eq!(served_by, ["python", "awslambdaric"]);
    // API Gateway's request id reaches the function and comes back.
    assert_eq!(r.body["request_id"].as_str(), r.header("x-amzn-requestid"));

    // The other header the authorizer reads works as well.
    let r = app
        .raw(app.client.get(app.url(HELLO)).header("x-api-key", &reader))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["key_id"], reader_id.as_str());

    // POST needs example:write; a key with it gets its body echoed.
    let (writer, writer_id) = key(&app, &["example:write"]).await;
    let r = app.post(HELLO, &writer, json!({"n": 1})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["key_id"], writer_id.as_str());
    assert_eq!(r.body["received"], json!({"n": 1}));
}

#[tokio::test]
async fn refused_keys_get_the_contracts_errors_and_never_reach_python() {
    let app = spawn_app().await;
    let (unscoped, _) = key(&app, &["keys:read"]).await;
    let (reader, _) = key(&app, &["example:read"]).await;

    let r = app.get(HELLO, &unscoped).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.code(), "insufficient_scope");
    let r = app.post(HELLO, &reader, json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.code(), "insufficient_scope");
    let r = app.call(Method::GET, HELLO, None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.code(), "invalid_api_key");
    let r = app.get(HELLO, "kh_live_garbage").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert_eq!(r.code(), "invalid_api_key");

    // The first request Python ever sees is this one: none of the refused
    // ones were invoked.
    let r = app.get(HELLO, &reader).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["invocations"], 1, "{}", r.body);
}

#[tokio::test]
async fn one_warm_execution_environment_serves_request_after_request() {
    let app = spawn_app().await;
    let (reader, _) = key(&app, &["example:read"]).await;
    let mut answers: Vec<Value> = Vec::new();
    for _ in 0..5 {
        let r = app.get(HELLO, &reader).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        answers.push(r.body);
    }
    let first = answers[0]["pid"].as_u64().unwrap();
    for (i, a) in answers.iter().enumerate() {
        // The same process, its module state carried over: a warm start.
        assert_eq!(a["pid"].as_u64(), Some(first), "{a}");
        assert_eq!(a["invocations"].as_u64(), Some(i as u64 + 1), "{a}");
    }
    // Each invocation has its own Lambda request id.
    let ids: std::collections::BTreeSet<_> = answers
        .iter()
        .map(|a| a["aws_request_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), answers.len());
    // Not this test process, not a Rust handler in it.
    assert_ne!(first, u64::from(std::process::id()));
    let r = app.get(HELLO, &reader).await;
    assert_eq!(pid(&r), first);
}

#[test]
fn the_gateway_runs_each_process_function_as_the_template_declares_it() {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(keyhub_tools::template::TEMPLATE).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut runtimes = 0;
    for (id, r) in doc["Resources"].as_mapping().unwrap() {
        let props = &r["Properties"];
        let runtime = props["Runtime"].as_str().unwrap_or("provided.al2023");
        if runtime.starts_with("provided") {
            continue;
        }
        runtimes += 1;
        let id = id.as_str().unwrap();
        let (_, code, handler) = keyhub_tools::gateway::PROCESS_FUNCTIONS
            .iter()
            .find(|(f, _, _)| *f == id)
            .unwrap_or_else(|| panic!("the local gateway does not run {id} ({runtime})"));
        assert_eq!(
            props["CodeUri"].as_str().map(|c| c.trim_end_matches('/')),
            Some(*code)
        );
        assert_eq!(props["Handler"].as_str(), Some(*handler));
        let (module, _) = handler.rsplit_once('.').unwrap();
        assert!(root.join(code).join(format!("{module}.py")).is_file());
    }
    assert_eq!(runtimes, keyhub_tools::gateway::PROCESS_FUNCTIONS.len());
}
