//! Metrics in CloudWatch's embedded metric format (EMF): JSON lines on
//! stdout with an `_aws` block, which CloudWatch Logs turns into metrics of
//! the namespace `KEYHUB_METRICS_NAMESPACE` (default `keyhub`) with no API
//! call and no IAM permission (Lambda already ships stdout to the log group).
//!
//! The code records through the `metrics` facade (the helpers below, so that
//! every name and dimension is spelled once); `metrics_cloudwatch_embedded`
//! is the recorder, installed only by a function's `main` ([`init`]). It sums
//! counters in memory, and [`flush`] writes them once at the end of each
//! invocation: one line per set of dimension values the invocation used,
//! whatever the number of events it handled. Without a recorder (the local
//! gateway, the tests that call handlers in-process) each helper is a load
//! and a branch.
//!
//! Dimensions are few and bounded: `Function` (the function's short name),
//! and per metric `Code` (an error code of the contract), `Subject` (`key`
//! or `account`), `Window` (`minute`, `hour`, `day`) or `Outcome`. Never a
//! key id or an account id: each value of a dimension is a metric billed on
//! its own, and ids are in the logs (`requestId` is a property of each EMF
//! line, so Logs Insights joins a metric line to its request's log lines).

use std::io::Write;
use std::sync::OnceLock;

use metrics::counter;
use metrics_cloudwatch_embedded::Collector;

/// The environment variable naming the namespace (template.yaml's Globals).
pub const NAMESPACE_VAR: &str = "KEYHUB_METRICS_NAMESPACE";
pub const DEFAULT_NAMESPACE: &str = "keyhub";

/// Metric names, as the template's alarms and dashboard name them.
pub mod name {
    /// A request's key (and, where checked, scope) accepted.
    pub const KEYS_ACCEPTED: &str = "KeysAccepted";
    /// A request's key refused, by `Code`.
    pub const KEYS_REFUSED: &str = "KeysRefused";
    /// A request refused by a rate limit, by `Subject` and `Window`.
    pub const RATE_LIMITED: &str = "RateLimited";
    /// A request refused because DynamoDB throttled its rate-limit counter
    /// (or the counter kept changing under it).
    pub const COUNTER_THROTTLES: &str = "CounterThrottles";
    pub const USAGE_RECORDS_SENT: &str = "UsageRecordsSent";
    /// Usage records lost on the way to the queue (an error or a timeout).
    pub const USAGE_RECORDS_FAILED: &str = "UsageRecordsFailed";
    /// Usage records (from the queue or the access log) written to the
    /// usage table by the usage function.
    pub const USAGE_RECORDS_AGGREGATED: &str = "UsageRecordsAggregated";
    /// Webhook attempts, by `Outcome`.
    pub const WEBHOOK_ATTEMPTS: &str = "WebhookAttempts";
    pub const DELIVERIES_DEAD_LETTERED: &str = "DeliveriesDeadLettered";
    /// 1 in the first invocation of an execution environment.
    pub const COLD_START: &str = "ColdStart";

    /// Every metric above (the template's dashboard shows each).
    pub const ALL: &[&str] = &[
        KEYS_ACCEPTED,
        KEYS_REFUSED,
        RATE_LIMITED,
        COUNTER_THROTTLES,
        USAGE_RECORDS_SENT,
        USAGE_RECORDS_FAILED,
        USAGE_RECORDS_AGGREGATED,
        WEBHOOK_ATTEMPTS,
        DELIVERIES_DEAD_LETTERED,
        COLD_START,
    ];
}

static COLLECTOR: OnceLock<&'static Collector> = OnceLock::new();

/// Installs the EMF recorder for `function` (`authorizer`, `api`, ...):
/// called once by a function's `main`, before its first invocation, which
/// then counts a cold start. A second call, or a failure, leaves metrics off
/// (logged), never the function.
pub fn init(function: &'static str) {
    let namespace = std::env::var(NAMESPACE_VAR)
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let built = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(namespace)
        .with_dimension("Function", function)
        .init();
    match built {
        Ok(collector) => {
            let level = line_level(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref());
            collector.set_property("level", level);
            let _ = COLLECTOR.set(collector);
            counter!(name::COLD_START).increment(1);
        }
        Err(e) => tracing::warn!(error = %e, "metrics off: the EMF recorder was not installed"),
    }
}

/// The `level` an EMF line carries so that Lambda's log-level filter keeps
/// it. Lambda filters a JSON line by its `level` field, and gives a line
/// without one the level INFO; with `ApplicationLogLevel` at WARN or ERROR
/// (template.yaml's `LogLevel`) a metric line without a level would be
/// dropped before CloudWatch reads its metrics. So a line is INFO, or the
/// configured level where that is higher: never below what is kept.
fn line_level(configured: Option<&str>) -> &'static str {
    match configured.map(str::to_ascii_uppercase).as_deref() {
        Some("WARN") => "WARN",
        Some("ERROR") => "ERROR",
        Some("FATAL") => "FATAL",
        _ => "INFO",
    }
}

/// The EMF lines of everything counted since the last call, each carrying
/// `request_id` as its `requestId` property; empty without a recorder or
/// when nothing was counted.
pub fn take(request_id: &str) -> Vec<u8> {
    let Some(collector) = COLLECTOR.get() else {
        return Vec::new();
    };
    let mut lines = Vec::with_capacity(512);
    collector.set_property("requestId", request_id);
    if let Err(e) = collector.flush(&mut lines) {
        tracing::warn!(error = %e, "metrics not written");
        return Vec::new();
    }
    lines
}

/// Runs one invocation's `work`, then writes what it counted ([`flush`]):
/// each function's handler wraps its work in this, so a line is written
/// once per invocation whatever the work returns.
pub async fn counted<T>(request_id: &str, work: impl std::future::Future<Output = T>) -> T {
    let out = work.await;
    flush(request_id);
    out
}

/// Writes the invocation's EMF lines to stdout, at the end of each
/// invocation. One `write_all` of whole lines on the locked stdout, so a log
/// line written by another thread cannot land inside one.
pub fn flush(request_id: &str) {
    let lines = take(request_id);
    if lines.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&lines).and_then(|()| out.flush());
}

pub fn key_accepted() {
    counter!(name::KEYS_ACCEPTED).increment(1);
}

/// `code` is the contract's error code (`invalid_api_key`, ...).
pub fn key_refused(code: &'static str) {
    counter!(name::KEYS_REFUSED, "Code" => code).increment(1);
}

/// `subject` is the counter's item key (`k#…`, `a#…`): only its kind is
/// recorded.
pub fn rate_limited(subject: &str, window: &'static str) {
    counter!(name::RATE_LIMITED, "Subject" => subject_kind(subject), "Window" => window)
        .increment(1);
}

pub fn counter_throttled() {
    counter!(name::COUNTER_THROTTLES).increment(1);
}

pub fn usage_record_sent() {
    counter!(name::USAGE_RECORDS_SENT).increment(1);
}

pub fn usage_record_failed() {
    counter!(name::USAGE_RECORDS_FAILED).increment(1);
}

pub fn usage_records_aggregated(n: usize) {
    if n > 0 {
        counter!(name::USAGE_RECORDS_AGGREGATED).increment(n as u64);
    }
}

/// `outcome`: `delivered`, `retrying`, `failed` (no retry left) or `gone`
/// (410: the endpoint is disabled).
pub fn webhook_attempt(outcome: &'static str) {
    counter!(name::WEBHOOK_ATTEMPTS, "Outcome" => outcome).increment(1);
}

pub fn delivery_dead_lettered() {
    counter!(name::DELIVERIES_DEAD_LETTERED).increment(1);
}

/// `key` for a key's counter, `account` for an account's (live or test).
fn subject_kind(subject: &str) -> &'static str {
    if subject.starts_with("a#") {
        "account"
    } else {
        "key"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn metric_lines_are_never_below_the_level_lambda_keeps() {
        assert_eq!(line_level(None), "INFO");
        assert_eq!(line_level(Some("TRACE")), "INFO");
        assert_eq!(line_level(Some("debug")), "INFO");
        assert_eq!(line_level(Some("INFO")), "INFO");
        assert_eq!(line_level(Some("warn")), "WARN");
        assert_eq!(line_level(Some("ERROR")), "ERROR");
        assert_eq!(line_level(Some("FATAL")), "FATAL");
        assert_eq!(line_level(Some("nonsense")), "INFO");
    }

    #[test]
    fn subjects_are_recorded_by_kind_only() {
        assert_eq!(subject_kind("k#key_1"), "key");
        assert_eq!(subject_kind("a#acct_1"), "account");
        assert_eq!(subject_kind("a#acct_1#test"), "account");
    }

    /// The only test here that installs the (process-wide) recorder; it
    /// records metrics no other unit test of this crate touches.
    #[test]
    fn an_invocation_writes_one_emf_line_per_dimension_set() {
        init("unit");
        for _ in 0..3 {
            webhook_attempt("delivered");
        }
        webhook_attempt("retrying");
        delivery_dead_lettered();
        let text = String::from_utf8(take("req-1")).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let with = |metric: &str| -> Vec<&Value> {
            lines.iter().filter(|l| l.get(metric).is_some()).collect()
        };
        let delivered: Vec<_> = with(name::WEBHOOK_ATTEMPTS)
            .into_iter()
            .filter(|l| l["Outcome"] == "delivered")
            .collect();
        assert_eq!(delivered.len(), 1, "{text}");
        let line = delivered[0];
        assert_eq!(line[name::WEBHOOK_ATTEMPTS], 3);
        assert_eq!(line["Function"], "unit");
        assert_eq!(line["requestId"], "req-1");
        let spec = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(spec["Namespace"], DEFAULT_NAMESPACE);
        assert_eq!(
            spec["Dimensions"],
            serde_json::json!([["Function", "Outcome"]])
        );
        assert!(line["_aws"]["Timestamp"].is_u64());
        // The cold start and the dead letter share the no-label line.
        let plain = with(name::DELIVERIES_DEAD_LETTERED);
        assert_eq!(plain.len(), 1, "{text}");
        assert_eq!(plain[0][name::COLD_START], 1);
        assert_eq!(
            plain[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["Function"]])
        );
        // Counted once: the next invocation starts from zero and says nothing.
        assert!(take("req-2").is_empty());
        webhook_attempt("retrying");
        let next = String::from_utf8(take("req-3")).unwrap();
        assert_eq!(next.lines().count(), 1, "{next}");
        let line: Value = serde_json::from_str(next.trim()).unwrap();
        assert_eq!(line["Outcome"], "retrying");
        assert_eq!(line[name::WEBHOOK_ATTEMPTS], 1);
        assert_eq!(line["requestId"], "req-3");
    }
}
