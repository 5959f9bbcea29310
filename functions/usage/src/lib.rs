//! The usage function: aggregates usage records into DynamoDB, from two
//! sources, each counted once per request id:
//!
//! - API Gateway's access log, delivered by a CloudWatch Logs subscription
//!   (`handle_logs`): every request through the gateway whose authorizer
//!   named a key, in whatever language its backend is written;
//! - the usage queue (`handle`): records the guard sends itself, for
//!   requests whose key the function checked (the management API, verify).
//!
//! A record of a refused attempt (a 401 or 403 answered to a known key,
//! `refused`) is counted as a failed attempt of the key and its account
//! (`Store::apply_refusals`), never as usage.
//!
//! A record or line that cannot be parsed is logged and dropped (retrying
//! cannot fix it). A record whose write failed (its pack stayed contended,
//! DynamoDB was out, or DynamoDB refuses the record itself) is reported in
//! `batchItemFailures`, so only it comes back; a log batch with a failed
//! write fails the invocation, so that Lambda delivers the batch again, and
//! its records already written are duplicates then.

pub mod anomaly;
pub mod logs;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use serde_json::Value;
use std::sync::Mutex;
use std::time::Duration;

use keyhub::aws::store::{Maxima, Store, UsageOutcome};
use keyhub::domain::access_log::AccessLine;
use keyhub::domain::usage::UsageRecord;

pub struct Deps {
    pub store: Store,
    pub retention: Duration,
    pub aggregate_retention: Duration,
    /// What this warm environment knows of stored maxima.
    pub maxima: Mutex<Maxima>,
    /// `usage.anomaly` events, when there is a webhook queue to send them.
    pub anomalies: Option<anomaly::Anomalies>,
}

impl Deps {
    pub fn new(store: Store, retention: Duration, aggregate_retention: Duration) -> Self {
        Deps {
            store,
            retention,
            aggregate_retention,
            maxima: Mutex::new(Maxima::default()),
            anomalies: None,
        }
    }

    /// Checks every batch's keys for an hourly volume far above their
    /// trailing average (`anomaly`).
    pub fn with_anomalies(mut self, anomalies: Option<anomaly::Anomalies>) -> Self {
        self.anomalies = anomalies;
        self
    }
}

#[tracing::instrument(skip_all, fields(messages = event.records.len()))]
pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let mut records = Vec::with_capacity(event.records.len());
    let mut ids = Vec::with_capacity(event.records.len());
    for message in event.records {
        let id = message.message_id.unwrap_or_default();
        match UsageRecord::parse(message.body.as_deref().unwrap_or("")) {
            Ok(r) => {
                records.push(r);
                ids.push(id);
            }
            Err(reason) => tracing::warn!(message_id = %id, %reason, "dropping a bad usage record"),
        }
    }
    let (outcome, refusals) = apply(deps, records).await;
    tracing::info!(
        applied = outcome.applied,
        duplicates = outcome.duplicates,
        refused = refusals.applied,
        failed = outcome.failed.len(),
        "usage batch"
    );
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = outcome
        .failed
        .iter()
        .filter_map(|&i| ids.get(i))
        .filter(|id| !id.is_empty())
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id.clone();
            f
        })
        .collect();
    response
}

/// Applies a batch: usage records as usage, refused attempts as failed
/// attempts, each exactly once by request id. The first outcome covers the
/// whole batch (its `failed` indices are into `records`); the second says
/// what of it were refused attempts.
async fn apply(deps: &Deps, records: Vec<UsageRecord>) -> (UsageOutcome, UsageOutcome) {
    let (refused, used): (Vec<_>, Vec<_>) = records
        .into_iter()
        .enumerate()
        .partition(|(_, r)| r.refused);
    let (used_at, used): (Vec<usize>, Vec<UsageRecord>) = used.into_iter().unzip();
    let (refused_at, refused): (Vec<usize>, Vec<UsageRecord>) = refused.into_iter().unzip();
    let usage = deps
        .store
        .apply_usage(
            &used,
            deps.retention,
            deps.aggregate_retention,
            &deps.maxima,
        )
        .await;
    let refusals = if refused.is_empty() {
        UsageOutcome::default()
    } else {
        deps.store
            .apply_refusals(&refused, deps.retention, deps.aggregate_retention)
            .await
    };
    if let Some(a) = &deps.anomalies {
        // Boxed: its future nested in the batch's is too deep a type.
        Box::pin(a.check(&deps.store, &used, keyhub::domain::time::now())).await;
    }
    keyhub::metrics::usage_records_aggregated(usage.applied + refusals.applied);
    let mut all = UsageOutcome {
        applied: usage.applied + refusals.applied,
        duplicates: usage.duplicates + refusals.duplicates,
        failed: Vec::new(),
    };
    all.failed
        .extend(usage.failed.iter().filter_map(|&i| used_at.get(i)));
    all.failed
        .extend(refusals.failed.iter().filter_map(|&i| refused_at.get(i)));
    (all, refusals)
}

/// What became of a batch of access-log lines.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LogsOutcome {
    pub lines: usize,
    /// Lines that are a key's usage, written now.
    pub applied: usize,
    /// Lines already counted (a batch delivered again).
    pub duplicates: usize,
    /// Of `applied`, refused attempts of a known key (a 401 or 403 from
    /// the authorizer naming it), counted as failed attempts, not usage.
    pub refused: usize,
    /// Lines that are no key's usage (no key id, the authorizer failed).
    pub skipped: usize,
    /// Of `skipped`, 401s and 403s that named no key: no account to count
    /// them against, so they are logged (`auth_failures_unattributed`).
    pub unattributed: usize,
    /// Lines that did not parse, logged and dropped.
    pub malformed: usize,
}

/// A batch whose records could not all be written: Lambda retries the
/// invocation, and the written ones count as duplicates then.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {records} usage records from the access log not written")]
pub struct LogsError {
    pub failed: usize,
    pub records: usize,
}

/// Aggregates a CloudWatch Logs batch of API Gateway access-log lines
/// (`keyhub::domain::access_log::FORMAT`). A control message has no lines.
#[tracing::instrument(skip_all, fields(events = data.log_events.len()))]
pub async fn handle_logs(
    deps: &Deps,
    data: &aws_lambda_events::cloudwatch_logs::LogData,
) -> Result<LogsOutcome, LogsError> {
    let mut outcome = LogsOutcome::default();
    if data.message_type != logs::DATA_MESSAGE {
        tracing::info!(message_type = %data.message_type, "not a data message");
        return Ok(outcome);
    }
    let mut records = Vec::with_capacity(data.log_events.len());
    for entry in &data.log_events {
        outcome.lines += 1;
        let line = AccessLine::parse(&entry.message);
        if let Ok(l) = &line
            && l.is_unattributed_refusal()
        {
            outcome.unattributed += 1;
            tracing::info!(
                metric = "auth_failures_unattributed",
                request_id = %l.request_id,
                status = l.status,
                source_ip = l.source_ip.as_deref().unwrap_or("-"),
                route = l.route.as_deref().unwrap_or("-"),
                "refused attempt with no key"
            );
        }
        match line.and_then(|l| l.usage()) {
            Ok(Some(r)) => records.push(r),
            Ok(None) => outcome.skipped += 1,
            Err(reason) => {
                outcome.malformed += 1;
                tracing::warn!(metric = "access_log_lines_malformed", log_event = %entry.id, %reason, "skipping an access-log line")
            }
        }
    }
    let count = records.len();
    let (applied, refusals) = apply(deps, records).await;
    outcome.applied = applied.applied;
    outcome.duplicates = applied.duplicates;
    outcome.refused = refusals.applied;
    tracing::info!(
        lines = outcome.lines,
        applied = outcome.applied,
        duplicates = outcome.duplicates,
        refused = outcome.refused,
        skipped = outcome.skipped,
        unattributed = outcome.unattributed,
        malformed = outcome.malformed,
        failed = applied.failed.len(),
        "access-log batch"
    );
    if applied.failed.is_empty() {
        Ok(outcome)
    } else {
        Err(LogsError {
            failed: applied.failed.len(),
            records: count,
        })
    }
}

/// The function's one entry point, for both of its event sources: a
/// CloudWatch Logs subscription event, answered with nothing (or an error
/// for Lambda to retry), or an SQS batch, answered with its failures.
pub async fn handle_event(deps: &Deps, event: Value) -> Result<Value, String> {
    if logs::is_logs_event(&event) {
        let data = logs::decode(&event)?;
        handle_logs(deps, &data).await.map_err(|e| e.to_string())?;
        return Ok(Value::Null);
    }
    let event: SqsEvent =
        serde_json::from_value(event).map_err(|e| format!("neither logs nor SQS: {e}"))?;
    serde_json::to_value(handle(deps, event).await).map_err(|e| e.to_string())
}
