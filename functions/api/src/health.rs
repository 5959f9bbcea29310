//! `GET /api/v1/health`: whether the API's dependencies answer, for a status
//! page or a load balancer. It needs no key, so it reveals nothing but a
//! verdict per dependency (no table names, no AWS error text), and it is
//! cheap: one DescribeTable per table and one GetQueueAttributes per queue,
//! in parallel, each bounded by `PROBE_TIMEOUT`; none reads an item or uses
//! capacity. A verdict is kept for `CACHE_FOR`, so that a flood of health
//! calls makes a handful of AWS calls, not one set per request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::TableStatus;
use keyhub::ApiError;
use keyhub::http::request;
use lambda_http::{Body, Response};
use serde_json::{Map, Value, json};

use crate::call::Deps;

/// Longer than any healthy answer, short enough for a status page's own
/// timeout (commonly 10 s or more).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one verdict answers every health call of this instance.
pub const CACHE_FOR: Duration = Duration::from_secs(5);

/// What `Retry-After` says on a 503.
const RETRY_AFTER_SECONDS: u64 = 5;

/// The last verdict of this instance and when it was made.
#[derive(Clone, Default)]
pub struct Cache(Arc<Mutex<Option<Verdict>>>);

type Verdict = (Instant, Vec<Check>);

/// One dependency's verdict.
#[derive(Clone, Debug)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub latency_ms: u64,
}

/// The answer: 200 with each check when every dependency answers, else the
/// contract's 503 `service_unavailable`, with the checks in its details.
#[tracing::instrument(skip_all)]
pub async fn answer(deps: &Deps, request_id: &str) -> Response<Body> {
    let checks = checks(deps).await;
    let mut by_name = Map::new();
    for c in &checks {
        by_name.insert(
            c.name.to_string(),
            json!({"status": if c.ok { "ok" } else { "unavailable" }, "latency_ms": c.latency_ms}),
        );
    }
    let mut resp = if checks.iter().all(|c| c.ok) {
        request::json(200, &json!({"status": "ok", "checks": by_name}), request_id)
    } else {
        let err = ApiError::ServiceUnavailable {
            retry_after: RETRY_AFTER_SECONDS,
            cause: "a health check failed".to_string(),
        };
        let mut body = err.body(request_id);
        body["error"]["message"] = Value::from("a dependency of the API is unavailable");
        body["error"]["details"]["checks"] = Value::Object(by_name);
        let mut resp = request::json(503, &body, request_id);
        resp.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from(RETRY_AFTER_SECONDS),
        );
        resp
    };
    // A status page must see the state now, not a proxy's copy.
    resp.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    resp
}

/// The cached verdict if it is fresh, else a new one.
async fn checks(deps: &Deps) -> Vec<Check> {
    if let Ok(cached) = deps.health.0.lock()
        && let Some((at, checks)) = cached.as_ref()
        && at.elapsed() < CACHE_FOR
    {
        return checks.clone();
    }
    let checks = probe(deps).await;
    if let Ok(mut cached) = deps.health.0.lock() {
        *cached = Some((Instant::now(), checks.clone()));
    }
    checks
}

/// Every table the API reads or writes, and every queue it sends to.
async fn probe(deps: &Deps) -> Vec<Check> {
    let t = deps.store.tables();
    let tables = [
        ("keys_table", t.keys.clone()),
        ("accounts_table", t.accounts.clone()),
        ("counters_table", t.counters.clone()),
        ("usage_table", t.usage.clone()),
        ("webhooks_table", t.webhooks.clone()),
    ];
    let queues = [
        ("usage_queue", deps.config.usage_queue_url.clone()),
        ("webhook_queue", deps.config.webhooks.queue_url.clone()),
    ];
    let ddb = deps.store.client();
    let table_checks = tables
        .into_iter()
        .map(|(name, table)| timed(name, table_answers(ddb, table)));
    let queue_checks = queues
        .into_iter()
        .filter_map(|(name, url)| url.map(|url| timed(name, queue_answers(&deps.sqs, url))));
    let (mut out, queues) = futures::join!(
        futures::future::join_all(table_checks),
        futures::future::join_all(queue_checks)
    );
    out.extend(queues);
    out
}

async fn timed(name: &'static str, check: impl Future<Output = Result<(), String>>) -> Check {
    let started = Instant::now();
    let ok = match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(check = name, error = %e, "health check failed");
            false
        }
        Err(_) => {
            tracing::warn!(check = name, "health check timed out");
            false
        }
    };
    Check {
        name,
        ok,
        latency_ms: started.elapsed().as_millis() as u64,
    }
}

/// A table answers if it exists and serves reads and writes (ACTIVE, or
/// UPDATING, which still serves them).
async fn table_answers(ddb: &aws_sdk_dynamodb::Client, table: String) -> Result<(), String> {
    let out = ddb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .map_err(|e| aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())?;
    match out.table().and_then(|t| t.table_status()) {
        Some(TableStatus::Active | TableStatus::Updating) => Ok(()),
        other => Err(format!("table {table} is {other:?}")),
    }
}

async fn queue_answers(sqs: &aws_sdk_sqs::Client, url: String) -> Result<(), String> {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
}
