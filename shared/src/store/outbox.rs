//! The event outbox: a partition of the webhooks table. A change writes its
//! events here in its own transaction (`commit`), so an event exists exactly
//! when its change committed; the events are sent after the commit and
//! cleared, and the sweeper relays any whose send failed.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, Put, TransactWriteItem, Update, WriteRequest,
};

use super::{Store, StoreError, classify};
use crate::events::Event;
use crate::time::{self, Timestamp};

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// Which items of a cancelled transaction failed their condition.
pub(crate) fn failed_conditions<R>(
    e: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, R>,
) -> Option<Vec<bool>> {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(tc)) => Some(
            tc.cancellation_reasons()
                .iter()
                .map(|r| r.code() == Some("ConditionalCheckFailed"))
                .collect(),
        ),
        _ => None,
    }
}

impl Store {
    /// The outbox item of an event, for a change's transaction.
    pub(crate) fn outbox_item(&self, event: &Event) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.tables.webhooks)
            .item("pk", s("outbox"))
            .item(
                "sk",
                s(format!("{}#{}", time::format(&event.timestamp), event.id)),
            )
            .item("body", s(event.body()))
            .item(
                "expires_at",
                AttributeValue::N((event.timestamp.timestamp() + 7 * 86_400).to_string()),
            );
        Ok(TransactWriteItem::builder()
            .put(
                put.build()
                    .map_err(|e| StoreError::Internal(e.to_string()))?,
            )
            .build())
    }

    /// Runs a transaction: the change's items, then its events' outbox items.
    /// `Conflict` when a condition failed, with which item failed first.
    pub(crate) async fn commit(
        &self,
        mut items: Vec<TransactWriteItem>,
        events: &[Event],
    ) -> Result<(), (StoreError, Option<usize>)> {
        for e in events {
            items.push(self.outbox_item(e).map_err(|e| (e, None))?);
        }
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match failed_conditions(&e) {
                Some(failed) if failed.iter().any(|f| *f) => Err((
                    StoreError::Conflict("a condition failed".into()),
                    failed.iter().position(|f| *f),
                )),
                _ => Err((classify(e), None)),
            },
        }
    }

    /// A conditional change with its events: `false` (and no events) when
    /// the condition did not hold.
    pub(crate) async fn commit_if(
        &self,
        change: Update,
        events: &[Event],
    ) -> Result<bool, StoreError> {
        let item = TransactWriteItem::builder().update(change).build();
        match self.commit(vec![item], events).await {
            Ok(()) => Ok(true),
            Err((StoreError::Conflict(_), Some(0))) => Ok(false),
            Err((e, _)) => Err(e),
        }
    }

    /// Marks a rate-limit counter as announced and writes its
    /// `rate_limit.exceeded` event, once per counter: `false` if another
    /// request announced it first.
    pub async fn announce_rate_limit(
        &self,
        counter_key: &str,
        event: &Event,
    ) -> Result<bool, StoreError> {
        let update = Update::builder()
            .table_name(&self.tables.counters)
            .key("pk", s(counter_key))
            .update_expression("SET announced = :true")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(announced)")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        self.commit_if(update, std::slice::from_ref(event)).await
    }

    /// Outbox entries older than `before`: events whose change committed but
    /// whose send did not (yet) happen.
    #[tracing::instrument(skip(self))]
    pub async fn pending_outbox(
        &self,
        before: Timestamp,
        limit: i32,
    ) -> Result<Vec<Event>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.tables.webhooks)
            .key_condition_expression("pk = :pk AND sk < :before")
            .expression_attribute_values(":pk", s("outbox"))
            .expression_attribute_values(":before", s(time::format(&before)))
            .limit(limit)
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|i| i.get("body").and_then(|b| b.as_s().ok()))
            .filter_map(|b| serde_json::from_str(b).ok())
            .collect())
    }

    /// Clears sent events from the outbox.
    pub async fn clear_outbox(&self, events: &[Event]) -> Result<(), StoreError> {
        for chunk in events.chunks(25) {
            let requests = chunk
                .iter()
                .map(|e| {
                    let del = DeleteRequest::builder()
                        .key("pk", s("outbox"))
                        .key("sk", s(format!("{}#{}", time::format(&e.timestamp), e.id)))
                        .build()
                        .map_err(|e| StoreError::Internal(e.to_string()))?;
                    Ok(WriteRequest::builder().delete_request(del).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            self.client
                .batch_write_item()
                .request_items(&self.tables.webhooks, requests)
                .send()
                .await
                .map_err(classify)?;
        }
        Ok(())
    }
}
