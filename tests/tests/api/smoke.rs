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
