//! DynamoDB storage. One `Store` per process, cloned cheaply into handlers.
//!
//! Table and index names here must match template.yaml; a test in `tests/`
//! checks that they do.

mod accounts;
mod keys;
mod outbox;
mod security;
mod usage;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};

pub use outbox::{OUTBOX_SHARDS, outbox_partitions, outbox_shard};
pub use security::{ADDRESS_READ, Failed, Subject, TopAddresses};
pub use usage::{EndpointHour, Maxima, RecentRequest, UsageOutcome, hour_start};
pub use webhooks::{EndpointPatch, MAX_ENDPOINTS};

use crate::config::Tables;

/// The account index on the keys table: partition `account_id`, sort `created_at`.
pub const KEYS_BY_ACCOUNT_INDEX: &str = "by_account";
/// Keys that owe an `api_key.expired` event: partition `expiry_check`, sort `expires_at`.
pub const KEYS_EXPIRING_INDEX: &str = "expiring";
/// Keys that may owe an `api_key.rotation_due` event: partition
/// `rotation_check`, sort `created_at`.
pub const KEYS_AGING_INDEX: &str = "aging";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("item not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// Throttling, timeouts, a network failure: worth retrying later.
    #[error("DynamoDB unavailable: {0}")]
    Unavailable(String),
    #[error("DynamoDB error: {0}")]
    Internal(String),
}

/// Sorts an SDK error into retryable or not. Service errors that mean "try
/// again" are listed by code; anything that never reached the service
/// (a timeout, a refused connection) is retryable too.
pub(crate) fn classify<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown");
            let message = format!("{code}: {}", se.err().message().unwrap_or(""));
            if is_retryable_code(code) {
                StoreError::Unavailable(message)
            } else {
                StoreError::Internal(message)
            }
        }
        SdkError::ConstructionFailure(_) => StoreError::Internal(format!("{err:?}")),
        _ => {
            StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string())
        }
    }
}

/// Error codes of a whole call that mean "the same call may work later".
fn is_retryable_code(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "TransactionConflictException"
            | "TransactionInProgressException"
            | "LimitExceededException"
    )
}

/// Whether an error code is DynamoDB refusing for load (throttling), as
/// opposed to an outage: the rate limiter answers the first with 429 even
/// when it fails open.
pub fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "ThrottlingError"
            | "ProvisionedThroughputExceeded"
    )
}

/// What one cancellation reason of a `TransactionCanceledException` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The item was fine; another item cancelled the transaction.
    Fine,
    /// Its condition did not hold: the caller's to resolve.
    Condition,
    /// Another transaction held the item, or DynamoDB throttled it: the
    /// same transaction may pass a moment later.
    Retryable,
    /// DynamoDB refuses the write as written (too large, bad types): it
    /// will never pass.
    Invalid,
    /// Anything else.
    Other,
}

/// Sorts one cancellation reason code (`None` and `"None"` mean fine).
pub(crate) fn reason_of(code: Option<&str>) -> Reason {
    match code {
        None | Some("None") => Reason::Fine,
        Some("ConditionalCheckFailed") => Reason::Condition,
        Some(
            "TransactionConflict"
            | "ThrottlingError"
            | "ProvisionedThroughputExceeded"
            | "RequestLimitExceeded"
            | "InternalServerError",
        ) => Reason::Retryable,
        Some("ValidationError" | "ItemCollectionSizeLimitExceeded") => Reason::Invalid,
        Some(_) => Reason::Other,
    }
}

/// Why a transaction did not apply, as its caller must act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TxFailure {
    /// Conditions failed: `true` for each item whose condition failed.
    Conditions(Vec<bool>),
    /// Conflicts with other transactions, throttling, a timeout: retry.
    Retryable(String),
    /// DynamoDB refuses the items as written: retrying cannot help.
    Invalid(String),
    Other(StoreError),
}

impl TxFailure {
    /// The store error a caller reports once it stops retrying.
    pub(crate) fn into_store_error(self) -> StoreError {
        match self {
            TxFailure::Conditions(_) => StoreError::Conflict("a condition failed".into()),
            TxFailure::Retryable(m) => StoreError::Unavailable(m),
            TxFailure::Invalid(m) => StoreError::Internal(m),
            TxFailure::Other(e) => e,
        }
    }
}

/// Sorts a transaction's cancellation reasons: a failed condition is
/// definitive (the caller resolves it), then an invalid item (it never
/// passes), then conflicts and throttling (retryable).
pub(crate) fn classify_reasons(codes: &[Option<&str>], message: &str) -> TxFailure {
    let reasons: Vec<Reason> = codes.iter().map(|c| reason_of(*c)).collect();
    let message = format!(
        "{message} [{}]",
        codes
            .iter()
            .map(|c| c.unwrap_or("None"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if reasons.contains(&Reason::Condition) {
        TxFailure::Conditions(reasons.iter().map(|r| *r == Reason::Condition).collect())
    } else if reasons.contains(&Reason::Invalid) {
        TxFailure::Invalid(message)
    } else if reasons.contains(&Reason::Retryable) {
        TxFailure::Retryable(message)
    } else {
        TxFailure::Other(StoreError::Internal(message))
    }
}

/// Sorts a failed `TransactWriteItems`. Only a cancellation for contention
/// is `Retryable`: the SDK has already retried throttling of the whole call
/// and timeouts within its own budget, so retrying those again here would
/// multiply that budget.
pub(crate) fn classify_transaction<R>(err: SdkError<TransactWriteItemsError, R>) -> TxFailure
where
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if let Some(TransactWriteItemsError::TransactionCanceledException(tc)) = err.as_service_error()
    {
        let codes: Vec<Option<&str>> = tc.cancellation_reasons().iter().map(|r| r.code()).collect();
        return classify_reasons(&codes, "transaction cancelled");
    }
    if err.as_service_error().and_then(|e| e.code()) == Some("ValidationException") {
        return TxFailure::Invalid(aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string());
    }
    TxFailure::Other(classify(err))
}

/// Tries of a transaction that conflicts or is throttled, the first included.
pub(crate) const TX_ATTEMPTS: u32 = 6;

/// The pause before retry `attempt` (1-based) of a contended write: "full
/// jitter" (uniform in [0, min(cap, base * 2^(attempt-1))]), so writers that
/// collided once spread out instead of colliding again in step. `unit` is a
/// random number in [0, 1]. With the defaults the five pauses add up to at
/// most 775 ms, well inside a request's budget.
pub fn backoff(attempt: u32, unit: f64) -> Duration {
    const BASE_MS: f64 = 25.0;
    const CAP_MS: f64 = 400.0;
    let ceiling = (BASE_MS * 2f64.powi(attempt.saturating_sub(1).min(16) as i32)).min(CAP_MS);
    Duration::from_secs_f64(ceiling * unit.clamp(0.0, 1.0) / 1000.0)
}

/// A uniformly random number in [0, 1].
pub fn random_unit() -> f64 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX)
}

#[derive(Clone)]
pub struct Store {
    client: Client,
    tables: Arc<Tables>,
}

impl Store {
    pub fn new(client: Client, tables: Tables) -> Self {
        Store {
            client,
            tables: Arc::new(tables),
        }
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Every item of the usage table's partition `pk` whose sort key lies in
    /// `from..=to`, through all of DynamoDB's pages (a page stops at 1 MB):
    /// the per-hour and per-day sums are read this way.
    #[tracing::instrument(skip(self))]
    pub(crate) async fn usage_range(
        &self,
        pk: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<std::collections::HashMap<String, AttributeValue>>, StoreError> {
        let text = |v: &str| AttributeValue::S(v.to_string());
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.tables.usage)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", text(pk))
                .expression_attribute_values(":from", text(from))
                .expression_attribute_values(":to", text(to))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Runs a transaction. One cancelled because another transaction held an
    /// item, or for throttling, is tried again after `backoff`, up to
    /// `TX_ATTEMPTS` tries in all (under a second); a failed condition, an
    /// invalid item or an outage returns at once.
    #[tracing::instrument(skip_all, fields(items = items.len()))]
    pub(crate) async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TxFailure> {
        let mut attempt = 1;
        loop {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            match sent.map_err(classify_transaction) {
                Ok(_) => return Ok(()),
                Err(TxFailure::Retryable(reason)) if attempt < TX_ATTEMPTS => {
                    tracing::debug!(attempt, %reason, "transaction contended; retrying");
                    tokio::time::sleep(backoff(attempt, random_unit())).await;
                    attempt += 1;
                }
                Err(TxFailure::Retryable(reason)) => {
                    tracing::warn!(attempt, %reason, "transaction still contended; giving up");
                    return Err(TxFailure::Retryable(reason));
                }
                Err(other) => return Err(other),
            }
        }
    }
}

fn to_item<T: serde::Serialize>(
    value: &T,
) -> Result<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>, StoreError>
{
    serde_dynamo::to_item(value).map_err(|e| StoreError::Internal(format!("serialize item: {e}")))
}

fn from_item<T: serde::de::DeserializeOwned>(
    item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>,
) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Internal(format!("corrupt item: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancellation_reasons_are_sorted_by_what_the_caller_must_do() {
        let sorted = |codes: &[Option<&str>]| classify_reasons(codes, "t");
        assert_eq!(
            sorted(&[None, Some("ConditionalCheckFailed"), Some("None")]),
            TxFailure::Conditions(vec![false, true, false])
        );
        for retryable in [
            "TransactionConflict",
            "ThrottlingError",
            "ProvisionedThroughputExceeded",
        ] {
            assert!(
                matches!(
                    sorted(&[Some("None"), Some(retryable)]),
                    TxFailure::Retryable(_)
                ),
                "{retryable}"
            );
        }
        assert!(matches!(
            sorted(&[Some("ValidationError"), Some("TransactionConflict")]),
            TxFailure::Invalid(_)
        ));
        // A condition that failed is definitive even if another item conflicted.
        assert!(matches!(
            sorted(&[Some("TransactionConflict"), Some("ConditionalCheckFailed")]),
            TxFailure::Conditions(_)
        ));
        assert!(matches!(
            sorted(&[None, None]),
            TxFailure::Other(StoreError::Internal(_))
        ));
        assert!(matches!(
            TxFailure::Retryable("x".into()).into_store_error(),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn backoff_grows_is_capped_and_stays_inside_a_request() {
        assert_eq!(backoff(1, 1.0), Duration::from_millis(25));
        assert_eq!(backoff(3, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(30, 1.0), Duration::from_millis(400));
        assert_eq!(backoff(4, 0.0), Duration::ZERO);
        let worst: Duration = (1..TX_ATTEMPTS).map(|a| backoff(a, 1.0)).sum();
        assert!(worst < Duration::from_secs(1), "{worst:?}");
        for _ in 0..100 {
            assert!((0.0..=1.0).contains(&random_unit()));
        }
    }
}
