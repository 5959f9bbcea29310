//! The webhook queue: events after their change committed (they are already
//! in the outbox, so a failed send loses nothing: the sweeper relays them),
//! and delivery retries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::events::Event;
use crate::store::{Store, StoreError};
use crate::time::Timestamp;

/// What travels on the webhook queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WebhookMessage {
    /// An event to fan out to the account's subscribed endpoints (or to one
    /// endpoint only, for `webhook.test`).
    Event {
        event: Event,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint_id: Option<String>,
    },
    /// A delivery to attempt again.
    Delivery {
        account_id: String,
        endpoint_id: String,
        delivery_id: String,
    },
}

#[derive(Clone)]
pub struct EventBus {
    store: Store,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

fn sqs_error<E: std::error::Error + Send + Sync + 'static, R: std::fmt::Debug>(
    e: aws_sdk_sqs::error::SdkError<E, R>,
) -> StoreError {
    StoreError::Unavailable(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string())
}

impl EventBus {
    pub fn new(store: Store, sqs: aws_sdk_sqs::Client, queue_url: String) -> Self {
        EventBus {
            store,
            sqs,
            queue_url,
        }
    }

    pub async fn send(&self, message: &WebhookMessage, delay: Duration) -> Result<(), StoreError> {
        let body =
            serde_json::to_string(message).map_err(|e| StoreError::Internal(e.to_string()))?;
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .delay_seconds(delay.as_secs().min(900) as i32)
            .send()
            .await
            .map_err(sqs_error)?;
        Ok(())
    }

    /// Sends committed events and clears them from the outbox. A failure is
    /// logged: the events stay in the outbox for the sweeper.
    #[tracing::instrument(skip_all, fields(events = events.len()))]
    pub async fn publish(&self, events: &[Event]) {
        let mut sent = Vec::new();
        for event in events {
            let message = WebhookMessage::Event {
                event: event.clone(),
                endpoint_id: None,
            };
            match self.send(&message, Duration::ZERO).await {
                Ok(()) => sent.push(event.clone()),
                Err(e) => {
                    tracing::warn!(event_id = %event.id, error = %e, "event left in the outbox")
                }
            }
        }
        if let Err(e) = self.store.clear_outbox(&sent).await {
            tracing::warn!(error = %e, "sent events left in the outbox; they may be sent twice");
        }
    }

    /// Sends what the outbox still holds from before `before`.
    pub async fn relay(&self, before: Timestamp, limit: i32) -> Result<usize, StoreError> {
        let pending = self.store.pending_outbox(before, limit).await?;
        self.publish(&pending).await;
        Ok(pending.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged() {
        let m = WebhookMessage::Delivery {
            account_id: "a".into(),
            endpoint_id: "e".into(),
            delivery_id: "d".into(),
        };
        let v: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(v["type"], "delivery");
        assert_eq!(serde_json::from_value::<WebhookMessage>(v).unwrap(), m);
    }
}
