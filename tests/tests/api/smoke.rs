//! Each function's real binary, run under a Lambda Runtime API emulator and
//! invoked with its sample from events/, against the local stack.

use crate::helpers::{binary, sample};
use std::time::Duration;

use keyhub_tools::emulator::invoke;
use serde_json::Value;

use crate::helpers::spawn_app;

/// The request id the emulator gives every invocation.
const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

/// What Lambda sets in a function's environment from the template's
/// `LoggingConfig` (`LogFormat: JSON`, `ApplicationLogLevel`).
fn lambda_logging(level: &str) -> [(String, String); 2] {
    [
        ("AWS_LAMBDA_LOG_FORMAT".to_string(), "JSON".to_string()),
        ("AWS_LAMBDA_LOG_LEVEL".to_string(), level.to_string()),
    ]
}

/// (function in template.yaml, binary, sample in events/, what a right answer looks like)
type Case = (&'static str, &'static str, &'static str, fn(&Value) -> bool);

#[tokio::test]
async fn every_function_answers_its_sample_event() {
    let app = spawn_app().await;
    let cases: [Case; 7] = [
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
        // Access-log lines from a CloudWatch Logs subscription (base64 of
        // gzip): answered with nothing, an error being Lambda's retry.
        ("UsageFunction", "keyhub-usage", "usage-logs.json", |v| {
            v.is_null()
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
        println!(
            "{function}: init {:?}, first invocation {:?}",
            run.init, run.duration
        );
    }
}

/// The emulator splits a cold start as Lambda's REPORT line does: the
/// function's init (process start to its first `GET /next`: configuration,
/// the pepper read from Secrets Manager) apart from the first invocation
/// (the event handed out to the answer), the two adding up to the wait.
#[tokio::test]
async fn the_emulator_reports_init_apart_from_the_first_invocation() {
    let app = spawn_app().await;
    for (function, bin, file) in [
        (
            "AuthorizerFunction",
            "keyhub-authorizer",
            "authorizer-request.json",
        ),
        ("ApiFunction", "keyhub-api", "api-whoami.json"),
    ] {
        let env = app.stack.function_env(function).unwrap();
        let run = invoke(
            &binary(bin),
            &env,
            sample(file, &app.admin_key),
            Duration::from_secs(60),
        )
        .await
        .unwrap_or_else(|e| panic!("{function}: {e}"));
        assert!(run.result.is_ok(), "{function}: {:?}", run.result);
        assert!(run.init > Duration::ZERO, "{function}: no init: {run:?}");
        assert!(
            run.duration > Duration::ZERO,
            "{function}: no first invocation: {run:?}"
        );
        assert_eq!(run.init + run.duration, run.cold_start, "{function}");
    }
}

/// With every log level on (`LogLevel=trace` is a template value: Lambda
/// then sets `AWS_LAMBDA_LOG_LEVEL=TRACE`; `RUST_LOG=trace` as a developer
/// would), no line any function writes carries the key a request presented:
/// not the raw event lambda_runtime logs at TRACE, not the verify body.
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
        env.extend(lambda_logging("TRACE"));
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

/// Lambda's logging controls reach the functions: with the template's
/// `LoggingConfig` (JSON, an application level), every line a function
/// writes is one JSON object, none is below the level, and every line of an
/// invocation names its request (`requestId`, as Lambda's own JSON logs do),
/// so CloudWatch Logs Insights can filter one request's lines.
#[tokio::test]
async fn log_lines_are_json_with_the_request_id_at_the_configured_level() {
    let app = spawn_app().await;
    const LEVELS: [&str; 5] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"];
    for level in ["DEBUG", "WARN"] {
        let mut env = app.stack.function_env("ApiFunction").unwrap();
        env.retain(|(k, _)| k != "RUST_LOG");
        env.extend(lambda_logging(level));
        let run = invoke(
            &binary("keyhub-api"),
            &env,
            sample("api-whoami.json", &app.admin_key),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        assert!(run.result.is_ok(), "{:?}", run.result);
        let lines: Vec<Value> = run
            .logs
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))
            })
            .collect();
        let lowest = LEVELS.iter().position(|l| *l == level).unwrap();
        for line in &lines {
            // An EMF line (keyhub::metrics) has a level too: Lambda gives a
            // line without one INFO and drops it under WARN, metrics and all.
            if line.get("_aws").is_some() {
                assert_eq!(line["requestId"], REQUEST_ID, "{line}");
            }
            let at = LEVELS
                .iter()
                .position(|l| line["level"] == *l)
                .unwrap_or_else(|| panic!("no level: {line}"));
            assert!(at >= lowest, "a line below {level}: {line}");
            if let Some(id) = line.get("requestId") {
                assert_eq!(id, REQUEST_ID, "{line}");
            }
        }
        if level == "DEBUG" {
            // The invocation's lines (the SDK's calls at DEBUG) all name it.
            let in_request: Vec<&Value> = lines
                .iter()
                .filter(|l| l["requestId"] == REQUEST_ID)
                .collect();
            assert!(
                in_request.iter().any(|l| l["level"] == "DEBUG"),
                "no DEBUG line names the request: {}",
                run.logs
            );
            // From the invocation's first line to its last, none is without it.
            let first = lines.iter().position(|l| l["requestId"] == REQUEST_ID);
            let last = lines.iter().rposition(|l| l["requestId"] == REQUEST_ID);
            if let (Some(first), Some(last)) = (first, last) {
                for line in &lines[first..=last] {
                    assert_eq!(line["requestId"], REQUEST_ID, "{line}");
                }
            }
        }
    }
}
