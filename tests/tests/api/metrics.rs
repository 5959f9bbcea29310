//! Metrics (issue 9, item 6): the embedded-metric-format lines the real
//! function binaries print to stdout (what CloudWatch Logs reads in Lambda),
//! parsed and checked; and the template's alarms and dashboard.

use crate::helpers::{binary, sample};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use keyhub::domain::limits::{Limits, Plan};
use keyhub::metrics::name;
use keyhub_tools::emulator::invoke;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{TestApp, clear_of_minute_boundary, spawn_app};

/// The request id the emulator gives its one invocation.
const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";
const NAMESPACE: &str = "keyhub/metrics-test";

/// One EMF document: its dimensions, metric names and values.
#[derive(Debug)]
struct Emf {
    namespace: String,
    dimensions: Vec<String>,
    metrics: Vec<String>,
    line: Value,
}

impl Emf {
    fn dim(&self, d: &str) -> &str {
        self.line[d].as_str().unwrap_or("")
    }
    fn value(&self, metric: &str) -> Option<u64> {
        self.line[metric].as_u64()
    }
}

/// The EMF lines among a process's output, each checked against the
/// specification's shape: one namespace, one dimension set whose every
/// dimension is a string member, every declared metric a number member.
fn emf_lines(logs: &str) -> Vec<Emf> {
    logs.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .map(|line| {
            let spec = &line["_aws"]["CloudWatchMetrics"];
            assert_eq!(spec.as_array().map(Vec::len), Some(1), "{line}");
            let spec = &spec[0];
            assert!(line["_aws"]["Timestamp"].is_u64(), "{line}");
            let sets = spec["Dimensions"].as_array().unwrap();
            assert_eq!(sets.len(), 1, "{line}");
            let dimensions: Vec<String> = sets[0]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_string())
                .collect();
            for d in &dimensions {
                assert!(line[d].is_string(), "dimension {d} has no value: {line}");
            }
            let metrics: Vec<String> = spec["Metrics"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["Name"].as_str().unwrap().to_string())
                .collect();
            for m in &metrics {
                assert!(line[m].is_number(), "metric {m} has no value: {line}");
            }
            Emf {
                namespace: spec["Namespace"].as_str().unwrap().to_string(),
                dimensions,
                metrics,
                line,
            }
        })
        .collect()
}

/// Runs a function's binary under the Runtime API emulator with one event,
/// as Lambda would with the template's environment; returns its answer and
/// the EMF lines it printed.
async fn run(
    app: &TestApp,
    function: &str,
    bin: &str,
    event: Value,
) -> (Result<Value, Value>, Vec<Emf>) {
    let mut env = app.stack.function_env(function).unwrap();
    env.push(("KEYHUB_METRICS_NAMESPACE".into(), NAMESPACE.into()));
    env.push(("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()));
    let inv = invoke(&binary(bin), &env, event, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{function}: {e}"));
    let lines = emf_lines(&inv.logs);
    for l in &lines {
        assert_eq!(l.namespace, NAMESPACE, "{function}: {:?}", l.line);
        assert_eq!(l.dimensions[0], "Function", "{function}: {:?}", l.line);
        assert_eq!(l.line["requestId"], REQUEST_ID, "{function}: {:?}", l.line);
        for d in &l.dimensions {
            let v = l.dim(d);
            assert!(
                !v.starts_with("key_") && !v.starts_with("acct_"),
                "{function}: an id as a dimension: {:?}",
                l.line
            );
        }
    }
    (inv.result, lines)
}

/// The one line of an invocation with exactly these dimensions.
fn line<'a>(lines: &'a [Emf], dimensions: &[&str]) -> &'a Emf {
    let found: Vec<&Emf> = lines
        .iter()
        .filter(|l| l.dimensions == dimensions)
        .collect();
    assert_eq!(found.len(), 1, "{dimensions:?} in {lines:#?}");
    found[0]
}

#[tokio::test]
async fn the_emf_lines_of_accepted_refused_rate_limited_and_aggregated_requests() {
    let app = spawn_app().await;
    clear_of_minute_boundary().await;
    let (key, _) = app
        .direct_key(
            &app.account_id,
            Plan::Pro,
            &["example:read"],
            Limits {
                per_minute: Some(1),
                per_hour: None,
                per_day: None,
            },
        )
        .await;

    // The authorizer accepts the key: one line, the cold start and the
    // acceptance together under the function's name.
    let (answer, lines) = run(
        &app,
        "AuthorizerFunction",
        "keyhub-authorizer",
        sample("authorizer-request.json", &key),
    )
    .await;
    let allow = answer.expect("the authorizer answers");
    assert_eq!(allow["policyDocument"]["Statement"][0]["Effect"], "Allow");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let only = line(&lines, &["Function"]);
    assert_eq!(only.dim("Function"), "authorizer");
    assert_eq!(only.value(name::KEYS_ACCEPTED), Some(1));
    assert_eq!(only.value(name::COLD_START), Some(1));
    assert!(!only.metrics.contains(&name::KEYS_REFUSED.to_string()));

    // A key one character off fails its checksum: refused, by its code, in
    // a line of its own; nothing accepted.
    let mut bad = key.clone();
    let last = bad.pop().unwrap();
    bad.push(if last == 'a' { 'b' } else { 'a' });
    let (answer, lines) = run(
        &app,
        "AuthorizerFunction",
        "keyhub-authorizer",
        sample("authorizer-request.json", &bad),
    )
    .await;
    assert!(answer.is_err(), "{answer:?}");
    let refused = line(&lines, &["Function", "Code"]);
    assert_eq!(refused.dim("Code"), "invalid_api_key");
    assert_eq!(refused.value(name::KEYS_REFUSED), Some(1));
    assert_eq!(refused.metrics, [name::KEYS_REFUSED]);
    let plain = line(&lines, &["Function"]);
    assert_eq!(plain.metrics, [name::COLD_START]);

    // The key's one request of the minute, through the local gateway.
    let r = app.get("/example/hello", &key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The next, to the example function's binary with the context the
    // authorizer gave: refused by the key's minute.
    let mut event = sample("example-hello.json", &key);
    let mut context = allow["context"].clone();
    context["principalId"] = allow["principalId"].clone();
    event["requestContext"]["authorizer"] = context;
    let (answer, lines) = run(&app, "ExampleFunction", "keyhub-example", event).await;
    let answer = answer.expect("the example function answers");
    assert_eq!(answer["statusCode"], 429, "{answer}");
    let limited = line(&lines, &["Function", "Subject", "Window"]);
    assert_eq!(limited.dim("Function"), "example");
    assert_eq!(limited.dim("Subject"), "key");
    assert_eq!(limited.dim("Window"), "minute");
    assert_eq!(limited.value(name::RATE_LIMITED), Some(1));
    assert_eq!(limited.metrics, [name::RATE_LIMITED]);
    // Behind the authorizer the example function checks no key itself.
    let plain = line(&lines, &["Function"]);
    assert_eq!(plain.metrics, [name::COLD_START]);

    // The management API checks its caller's key itself and sends a usage
    // record to the queue.
    let (answer, lines) = run(
        &app,
        "ApiFunction",
        "keyhub-api",
        sample("api-whoami.json", &app.admin_key),
    )
    .await;
    assert_eq!(answer.expect("the API answers")["statusCode"], 200);
    let plain = line(&lines, &["Function"]);
    assert_eq!(plain.dim("Function"), "api");
    assert_eq!(plain.value(name::KEYS_ACCEPTED), Some(1));
    assert_eq!(plain.value(name::USAGE_RECORDS_SENT), Some(1));
    assert_eq!(plain.value(name::USAGE_RECORDS_FAILED), None);

    // The usage function counts the records of its batch it wrote: the
    // sample's two, once for the whole batch.
    let (answer, lines) = run(
        &app,
        "UsageFunction",
        "keyhub-usage",
        sample("usage-sqs.json", &app.admin_key),
    )
    .await;
    assert_eq!(
        answer.expect("the usage function answers")["batchItemFailures"],
        serde_json::json!([])
    );
    let plain = line(&lines, &["Function"]);
    assert_eq!(plain.dim("Function"), "usage");
    assert_eq!(plain.value(name::USAGE_RECORDS_AGGREGATED), Some(2));
    assert_eq!(plain.value(name::COLD_START), Some(1));
}

/// template.yaml through the real SAM transform with its defaults
/// (`scripts/sam_transform.py`, stack name `keyhub`).
fn transformed() -> Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".local/venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `scripts/stack.sh setup` (make test does)",
        python.display()
    );
    let out = Command::new(python)
        .arg(root.join("scripts/sam_transform.py"))
        .output()
        .expect("run scripts/sam_transform.py");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// An alarm's metrics: (namespace, name, dimensions), from `MetricName` or
/// each `Metrics[].MetricStat`.
fn alarm_metrics(alarm: &Value) -> Vec<(String, String, Value)> {
    let p = &alarm["Properties"];
    let one = |m: &Value| {
        (
            m["Namespace"].as_str().unwrap_or("").to_string(),
            m["MetricName"].as_str().unwrap_or("").to_string(),
            m["Dimensions"].clone(),
        )
    };
    if p["MetricName"].is_string() {
        return vec![one(p)];
    }
    p["Metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["MetricStat"].is_object())
        .map(|m| one(&m["MetricStat"]["Metric"]))
        .collect()
}

fn dimension<'a>(dims: &'a Value, name: &str) -> &'a Value {
    dims.as_array()
        .and_then(|d| d.iter().find(|d| d["Name"] == name))
        .map(|d| &d["Value"])
        .unwrap_or(&Value::Null)
}

#[test]
fn the_template_alarms_and_dashboards_the_metrics() {
    let t = transformed();
    let resources = t["Resources"].as_object().unwrap();
    let of_type = |ty: &'static str| resources.iter().filter(move |(_, r)| r["Type"] == ty);

    // Every function writes to the stack's own namespace.
    for (id, f) in of_type("AWS::Lambda::Function") {
        assert_eq!(
            f["Properties"]["Environment"]["Variables"]["KEYHUB_METRICS_NAMESPACE"],
            "keyhub/keyhub",
            "{id}"
        );
    }

    let alarmed: Vec<(String, String, Value, &Value)> = of_type("AWS::CloudWatch::Alarm")
        .flat_map(|(_, a)| {
            alarm_metrics(a)
                .into_iter()
                .map(move |(ns, m, d)| (ns, m, d, &a["Properties"]))
        })
        .collect();
    let find = |ns: &str, metric: &str, dim: &str, value: &Value| {
        alarmed
            .iter()
            .find(|(n, m, d, _)| n == ns && m == metric && dimension(d, dim) == value)
            .map(|(_, _, _, p)| *p)
            .unwrap_or_else(|| panic!("no alarm on {ns} {metric} {dim}={value}"))
    };
    let r = |id: &str| serde_json::json!({ "Ref": id });
    for function in [
        "ApiFunction",
        "AuthorizerFunction",
        "UsageFunction",
        "WebhooksFunction",
        "SweeperFunction",
    ] {
        find("AWS/Lambda", "Throttles", "FunctionName", &r(function));
    }
    // The management API's REST API is named after the stack (SAM's title).
    let api_title = &resources["Api"]["Properties"]["Body"]["info"]["title"];
    assert_eq!(api_title, "keyhub");
    let errors = find("AWS/ApiGateway", "5XXError", "ApiName", api_title);
    assert_eq!(errors["Statistic"], "Average", "a rate: {errors}");
    let latency = find("AWS/ApiGateway", "Latency", "ApiName", api_title);
    assert_eq!(latency["ExtendedStatistic"], "p99");
    for queue in ["UsageQueue", "WebhookQueue"] {
        let age = serde_json::json!({ "Fn::GetAtt": [queue, "QueueName"] });
        find(
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            "QueueName",
            &age,
        );
    }
    find(
        "AWS/DynamoDB",
        "WriteThrottleEvents",
        "TableName",
        &r("CountersTable"),
    );

    // The dashboard is valid JSON once CloudFormation substitutes the
    // resources' names, and shows every metric keyhub writes.
    let (_, dashboard) = of_type("AWS::CloudWatch::Dashboard")
        .next()
        .expect("a dashboard");
    let body = &dashboard["Properties"]["DashboardBody"];
    let text = body["Fn::Sub"].as_str().or(body.as_str()).unwrap();
    let mut substituted = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        substituted.push_str(&rest[..at]);
        let end = rest[at..].find('}').unwrap();
        substituted.push_str("resource");
        rest = &rest[at + end + 1..];
    }
    substituted.push_str(rest);
    let parsed: Value = serde_json::from_str(&substituted)
        .unwrap_or_else(|e| panic!("the dashboard body is not JSON ({e}): {substituted}"));
    let widgets = parsed["widgets"].as_array().unwrap();
    let shown = widgets.iter().map(|w| w.to_string()).collect::<String>();
    for metric in name::ALL {
        assert!(
            shown.contains(&format!("\\\"{metric}\\\""))
                || shown.contains(&format!("\"{metric}\"")),
            "{metric} is not on the dashboard"
        );
    }
    assert!(shown.contains("keyhub/keyhub"), "the stack's namespace");
}
