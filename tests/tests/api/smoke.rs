//! Each function's real binary, run under a Lambda Runtime API emulator and
//! invoked with its sample from events/, against the local stack.

use std::path::PathBuf;
use std::time::Duration;

use keyhub_tools::emulator::invoke;
use serde_json::Value;

use crate::helpers::spawn_app;

fn binary(name: &str) -> PathBuf {
    // target/debug/deps/api-… → target/debug/<name>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` (make test does)",
        path.display()
    );
    path
}

fn sample(file: &str, key: &str) -> Value {
    let text = std::fs::read_to_string(format!("{}/../events/{file}", env!("CARGO_MANIFEST_DIR")))
        .unwrap();
    serde_json::from_str(&text.replace("kh_live_REPLACE_WITH_YOUR_KEY", key)).unwrap()
}

/// (function in template.yaml, binary, sample in events/, what a right answer looks like)
type Case = (&'static str, &'static str, &'static str, fn(&Value) -> bool);

#[tokio::test]
async fn every_function_answers_its_sample_event() {
    let app = spawn_app().await;
    let cases: [Case; 6] = [
        ("ApiFunction", "keyhub-api", "api-whoami.json", |v| {
            v["statusCode"] == 200
                && serde_json::from_str::<Value>(v["body"].as_str().unwrap_or("{}")).unwrap()["key"]
                    ["id"]
                    .is_string()
        }),
        (
            "AuthorizerFunction",
            "keyhub-authorizer",
            "authorizer-request.json",
            |v| {
                v["policyDocument"]["Statement"][0]["Effect"] == "Allow"
                    && v["context"]["scopes"] == "*"
            },
        ),
        (
            "ExampleFunction",
            "keyhub-example",
            "example-hello.json",
            |v| v["statusCode"] == 200 && v["multiValueHeaders"]["x-ratelimit-limit"].is_array(),
        ),
        ("UsageFunction", "keyhub-usage", "usage-sqs.json", |v| {
            v["batchItemFailures"] == serde_json::json!([])
        }),
        (
            "WebhooksFunction",
            "keyhub-webhooks",
            "webhooks-sqs.json",
            |v| v["batchItemFailures"] == serde_json::json!([]),
        ),
        (
            "SweeperFunction",
            "keyhub-sweeper",
            "sweeper-schedule.json",
            |v| v["expired"].is_u64() && v["relayed"].is_u64(),
        ),
    ];
    for (function, bin, file, ok) in cases {
        let env = app.stack.function_env(function).unwrap();
        let run = invoke(
            &binary(bin),
            &env,
            sample(file, &app.admin_key),
            Duration::from_secs(60),
        )
        .await
        .unwrap_or_else(|e| panic!("{function}: {e}"));
        let answer = run
            .result
            .unwrap_or_else(|e| panic!("{function} reported an error: {e}"));
        assert!(ok(&answer), "{function} answered {answer}");
        println!("{function}: cold start {:?}", run.cold_start);
    }
}

/// With every log level on (`LogLevel=trace` is a template value), no line
/// any function writes carries the key a request presented: not the raw
/// event lambda_runtime logs at TRACE, not the verify body.
#[tokio::test]
async fn no_log_line_carries_a_presented_key_even_at_trace() {
    let app = spawn_app().await;
    let (customer, _) = app
        .create_key(serde_json::json!({"name": "customer", "scopes": ["example:read"]}))
        .await;
    let mut verify = sample("api-whoami.json", &app.admin_key);
    for (field, value) in [
        ("resource", "/api/v1/keys/verify"),
        ("path", "/api/v1/keys/verify"),
        ("httpMethod", "POST"),
    ] {
        verify[field] = Value::from(value);
    }
    verify["requestContext"]["resourcePath"] = Value::from("/api/v1/keys/verify");
    verify["requestContext"]["httpMethod"] = Value::from("POST");
    verify["headers"]["Content-Type"] = Value::from("application/json");
    verify["multiValueHeaders"]["Content-Type"] = serde_json::json!(["application/json"]);
    verify["body"] = Value::from(serde_json::json!({ "key": customer }).to_string());
    let cases = [
        (
            "ApiFunction",
            "keyhub-api",
            sample("api-whoami.json", &app.admin_key),
        ),
        ("ApiFunction", "keyhub-api", verify),
        (
            "AuthorizerFunction",
            "keyhub-authorizer",
            sample("authorizer-request.json", &app.admin_key),
        ),
        (
            "ExampleFunction",
            "keyhub-example",
            sample("example-hello.json", &app.admin_key),
        ),
    ];
    for (function, bin, event) in cases {
        let mut env = app.stack.function_env(function).unwrap();
        env.retain(|(k, _)| k != "RUST_LOG");
        env.push(("RUST_LOG".to_string(), "trace".to_string()));
        let run = invoke(&binary(bin), &env, event, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{function}: {e}"));
        assert!(run.result.is_ok(), "{function}: {:?}", run.result);
        // The run really logged at TRACE (the SDK and hyper do)...
        assert!(
            run.logs.contains("TRACE"),
            "{function} logged nothing at TRACE"
        );
        // ...and no secret part of either key is in any line.
        for key in [&app.admin_key, &customer] {
            let secret = &key[key.len() - 20..];
            assert!(
                !run.logs.contains(secret),
                "{function} logged a presented key"
            );
        }
    }
}
