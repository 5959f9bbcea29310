//! The event outbox: `OUTBOX_SHARDS` partitions of the webhooks table. A
//! change writes its events here in its own transaction (`commit`), so an
//! event exists exactly when its change committed; the events are sent after
//! the commit and cleared, and the sweeper relays any whose send failed.
//!
//! Every change of every account writes here, so one partition would be a
//! hot partition (DynamoDB gives each about 1,000 writes a second): an event
//! goes to the shard its id hashes to, and the relay reads them all.

use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, Put, TransactWriteItem, Update, WriteRequest,
};

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use super::{Store, StoreError, TxFailure, backoff, classify, random_unit};
use crate::domain::events::Event;
use crate::domain::time::{self, Timestamp};

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

/// Partitions of the outbox.
pub const OUTBOX_SHARDS: u32 = 8;

/// Tries of a `BatchWriteItem` whose items DynamoDB left unprocessed.
const BATCH_ATTEMPTS: u32 = 5;

/// The partition an event's outbox item lives in: `outbox#0` to
/// `outbox#7`, by an FNV-1a hash of its id (random, so the shards fill
/// evenly).
pub fn outbox_shard(event_id: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in event_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("outbox#{}", h % OUTBOX_SHARDS)
}

/// Every partition of the outbox, as IAM's `dynamodb:LeadingKeys` must list
/// them for the functions that write events (template.yaml; a test holds
/// the two together).
pub fn outbox_partitions() -> Vec<String> {
    (0..OUTBOX_SHARDS).map(|i| format!("outbox#{i}")).collect()
}

fn outbox_key(event: &Event) -> (String, String) {
    (
        outbox_shard(&event.id),
        format!("{}#{}", time::format(&event.timestamp), event.id),
    )
}

/// Writes `requests` and then whatever DynamoDB leaves unprocessed (it may
/// under throttling, without failing the call), with `backoff` between
/// tries, `BATCH_ATTEMPTS` at most; `send` does one `BatchWriteItem` and
/// returns the unprocessed requests. Items still left are an error.
pub(crate) async fn write_all<F, Fut>(
    mut requests: Vec<WriteRequest>,
    mut send: F,
) -> Result<(), StoreError>
where
    F: FnMut(Vec<WriteRequest>) -> Fut,
    Fut: Future<Output = Result<Vec<WriteRequest>, StoreError>>,
{
    for attempt in 1..=BATCH_ATTEMPTS {
        if requests.is_empty() {
            return Ok(());
        }
        if attempt > 1 {
            tokio::time::sleep(backoff(attempt - 1, random_unit()).max(Duration::from_millis(5)))
                .await;
        }
        requests = send(requests).await?;
    }
    if requests.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Unavailable(format!(
            "{} writes still unprocessed after {BATCH_ATTEMPTS} tries",
            requests.len()
        )))
    }
}

impl Store {
    /// The outbox item of an event, for a change's transaction.
    pub(crate) fn outbox_item(&self, event: &Event) -> Result<TransactWriteItem, StoreError> {
        let (pk, sk) = outbox_key(event);
        let put = Put::builder()
            .table_name(&self.tables.webhooks)
            .item("pk", s(pk))
            .item("sk", s(sk))
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
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(TxFailure::Conditions(failed)) => Err((
                StoreError::Conflict("a condition failed".into()),
                failed.iter().position(|f| *f),
            )),
            Err(other) => Err((other.into_store_error(), None)),
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

    /// Writes a key's `usage.anomaly` event for an hour once: `false` if it
    /// was written before (another batch, a redelivery). The same marker
    /// as a rate-limit window's, named `anomaly#{key}#{hour}`.
    #[tracing::instrument(skip(self, event))]
    pub async fn announce_anomaly(
        &self,
        key_id: &str,
        hour: &str,
        expires_at: i64,
        event: &Event,
    ) -> Result<bool, StoreError> {
        self.announce_rate_limit(&format!("anomaly#{key_id}#{hour}"), expires_at, event)
            .await
    }

    /// Writes a window's `rate_limit.exceeded` event once: `false` if
    /// another request announced it first. The "announced" marker is an item
    /// of its own (`{window_id}#announced`, created under a condition in the
    /// event's transaction), not an attribute of the counter: a transaction
    /// on the counter item would make every request counting at that moment
    /// fail with a transaction conflict. The limiter then flags the window
    /// on the counter with a plain update (`Limiter::flag_announced`), so
    /// that later refusals in the window skip this call.
    #[tracing::instrument(skip(self, event))]
    pub async fn announce_rate_limit(
        &self,
        window_id: &str,
        expires_at: i64,
        event: &Event,
    ) -> Result<bool, StoreError> {
        let marker = Update::builder()
            .table_name(&self.tables.counters)
            .key("pk", s(format!("{window_id}#announced")))
            .update_expression("SET expires_at = :ttl")
            .condition_expression("attribute_not_exists(pk)")
            .expression_attribute_values(":ttl", AttributeValue::N(expires_at.to_string()))
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        self.commit_if(marker, std::slice::from_ref(event)).await
    }

    /// Outbox entries older than `before`, from every shard: events whose
    /// change committed but whose send did not (yet) happen. At most `limit`
    /// per shard.
    #[tracing::instrument(skip(self))]
    pub async fn pending_outbox(
        &self,
        before: Timestamp,
        limit: i32,
    ) -> Result<Vec<Event>, StoreError> {
        let reads = (0..OUTBOX_SHARDS).map(|shard| {
            self.client
                .query()
                .table_name(&self.tables.webhooks)
                .key_condition_expression("pk = :pk AND sk < :before")
                .expression_attribute_values(":pk", s(format!("outbox#{shard}")))
                .expression_attribute_values(":before", s(time::format(&before)))
                .limit(limit)
                .send()
        });
        let mut events: Vec<Event> = Vec::new();
        for out in futures::future::join_all(reads).await {
            let out = out.map_err(classify)?;
            events.extend(
                out.items
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|i| i.get("body").and_then(|b| b.as_s().ok()))
                    .filter_map(|b| serde_json::from_str::<Event>(b).ok()),
            );
        }
        events.sort_by(|a, b| (a.timestamp, &a.id).cmp(&(b.timestamp, &b.id)));
        Ok(events)
    }

    /// Clears sent events from the outbox, unprocessed items included.
    #[tracing::instrument(skip_all, fields(events = events.len()))]
    pub async fn clear_outbox(&self, events: &[Event]) -> Result<(), StoreError> {
        for chunk in events.chunks(25) {
            let requests = chunk
                .iter()
                .map(|e| {
                    let (pk, sk) = outbox_key(e);
                    let del = DeleteRequest::builder()
                        .key("pk", s(pk))
                        .key("sk", s(sk))
                        .build()
                        .map_err(|e| StoreError::Internal(e.to_string()))?;
                    Ok(WriteRequest::builder().delete_request(del).build())
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let table = &self.tables.webhooks;
            write_all(requests, |batch| async move {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(table, batch)
                    .send()
                    .await
                    .map_err(classify)?;
                let mut left: HashMap<String, Vec<WriteRequest>> =
                    out.unprocessed_items.unwrap_or_default();
                Ok(left.remove(table).unwrap_or_default())
            })
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn delete(n: usize) -> WriteRequest {
        WriteRequest::builder()
            .delete_request(
                DeleteRequest::builder()
                    .key("pk", s(format!("p{n}")))
                    .build()
                    .unwrap(),
            )
            .build()
    }

    #[tokio::test]
    async fn unprocessed_items_are_written_again_until_none_are_left() {
        let seen = Mutex::new(Vec::new());
        // DynamoDB leaves the last two of three, then the last of those.
        let result = write_all((0..3).map(delete).collect(), |batch| {
            seen.lock().unwrap().push(batch.len());
            async move { Ok(batch.into_iter().skip(1).collect()) }
        })
        .await;
        assert_eq!(result, Ok(()));
        assert_eq!(*seen.lock().unwrap(), vec![3, 2, 1]);
    }

    #[tokio::test]
    async fn items_left_unprocessed_for_good_are_an_error_after_bounded_tries() {
        let calls = Mutex::new(0);
        let result = write_all(vec![delete(1)], |batch| {
            *calls.lock().unwrap() += 1;
            async move { Ok(batch) }
        })
        .await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))));
        assert_eq!(*calls.lock().unwrap(), BATCH_ATTEMPTS);
    }

    #[test]
    fn events_spread_over_every_shard() {
        let mut counts = HashMap::new();
        for _ in 0..800 {
            let id = format!("evt_{}", crate::domain::base62::random(22).unwrap());
            *counts.entry(outbox_shard(&id)).or_insert(0) += 1;
        }
        assert_eq!(counts.len(), OUTBOX_SHARDS as usize);
        assert!(counts.values().all(|&n| n > 40), "{counts:?}");
        assert_eq!(outbox_shard("evt_x"), outbox_shard("evt_x"));
    }
}
