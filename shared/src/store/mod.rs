//! DynamoDB storage. One `Store` per process, cloned cheaply into handlers.
//!
//! Table and index names here must match template.yaml; a test in `tests/`
//! checks that they do.

mod accounts;
mod keys;
mod outbox;
mod usage;
mod webhooks;

use std::sync::Arc;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

pub use keys::KeyPatch;
pub use usage::{EndpointHour, Maxima, RecentRequest, UsageOutcome, hour_start};
pub use webhooks::EndpointPatch;

use crate::error::ApiError;

/// The account index on the keys table: partition `account_id`, sort `created_at`.
pub const KEYS_BY_ACCOUNT_INDEX: &str = "by_account";
/// Keys that owe an `api_key.expired` event: partition `expiry_check`, sort `expires_at`.
pub const KEYS_EXPIRING_INDEX: &str = "expiring";
/// Keys that may owe an `api_key.rotation_due` event: partition
/// `rotation_check`, sort `created_at`.
pub const KEYS_AGING_INDEX: &str = "aging";

/// Table names, one per concern. In AWS they come from the function's
/// environment (template.yaml sets them); locally they are `{stack}-{suffix}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub keys: String,
    pub accounts: String,
    /// Rate-limit counters, one item per subject and window instance.
    pub counters: String,
    /// Usage: recent requests and per-hour sums.
    pub usage: String,
    /// Webhook endpoints, deliveries and the event outbox.
    pub webhooks: String,
}

impl Tables {
    /// The names template.yaml gives a stack: `!Sub "${AWS::StackName}-keys"`.
    pub fn for_stack(stack: &str) -> Self {
        Tables {
            keys: format!("{stack}-keys"),
            accounts: format!("{stack}-accounts"),
            counters: format!("{stack}-counters"),
            usage: format!("{stack}-usage"),
            webhooks: format!("{stack}-webhooks"),
        }
    }

    /// Pairs of (environment variable, table name), as the functions read them.
    pub fn env_vars(&self) -> [(&'static str, &str); 5] {
        [
            ("KEYS_TABLE", &self.keys),
            ("ACCOUNTS_TABLE", &self.accounts),
            ("COUNTERS_TABLE", &self.counters),
            ("USAGE_TABLE", &self.usage),
            ("WEBHOOKS_TABLE", &self.webhooks),
        ]
    }
}

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

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if matches!(e, StoreError::Unavailable(_) | StoreError::Internal(_)) {
            tracing::error!(error = %e, "storage failure");
        }
        match e {
            StoreError::NotFound => ApiError::NotFound { what: "resource" },
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Unavailable(_) => ApiError::ServiceUnavailable { retry_after: 1 },
            StoreError::Internal(_) => ApiError::Internal,
        }
    }
}

/// Sorts an SDK error into retryable or not. Service errors that mean "try
/// again" are listed by code; anything that never reached the service is
/// retryable too.
pub(crate) fn classify<E, R>(err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("Unknown");
            let message = format!("{code}: {}", se.err().message().unwrap_or(""));
            match code {
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "ServiceUnavailable"
                | "TransactionConflictException"
                | "TransactionInProgressException"
                | "LimitExceededException" => StoreError::Unavailable(message),
                _ => StoreError::Internal(message),
            }
        }
        SdkError::ConstructionFailure(_) => StoreError::Internal(format!("{err:?}")),
        _ => {
            StoreError::Unavailable(aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string())
        }
    }
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
