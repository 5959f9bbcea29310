//! The usage function: aggregates a batch of usage records from SQS into
//! DynamoDB. A record that cannot be parsed is logged and dropped (retrying
//! cannot fix it); a record whose write failed (its pack stayed contended,
//! DynamoDB was out, or DynamoDB refuses the record itself) is reported in
//! `batchItemFailures`, so only it comes back, and is counted once when it
//! does.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use std::sync::Mutex;
use std::time::Duration;

use keyhub::aws::store::{Maxima, Store};
use keyhub::domain::usage::UsageRecord;

pub struct Deps {
    pub store: Store,
    pub retention: Duration,
    pub aggregate_retention: Duration,
    /// What this warm environment knows of stored maxima.
    pub maxima: Mutex<Maxima>,
}

impl Deps {
    pub fn new(store: Store, retention: Duration, aggregate_retention: Duration) -> Self {
        Deps {
            store,
            retention,
            aggregate_retention,
            maxima: Mutex::new(Maxima::default()),
        }
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
    let outcome = deps
        .store
        .apply_usage(
            &records,
            deps.retention,
            deps.aggregate_retention,
            &deps.maxima,
        )
        .await;
    tracing::info!(
        applied = outcome.applied,
        duplicates = outcome.duplicates,
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
