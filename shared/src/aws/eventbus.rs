//! The webhook queue: events after their change committed (they are already
//! in the outbox, so a failed send loses nothing: the sweeper relays them),
//! and delivery retries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::aws::store::{Store, StoreError};
use crate::domain::events::Event;
use crate::domain::time::Timestamp;

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
        /// The retry chain this message is (see `Delivery::retry_chain`);
        /// absent on messages queued before chains existed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chain: Option<String>,
    },
}

/// A new retry chain's token.
pub fn new_chain() -> String {
    crate::domain::base62::random(16)
        .unwrap_or_else(|_| crate::domain::time::now().timestamp_micros().to_string())
}

/// Whether `s` is `prefix` and `len` base62 characters (`len` 0: 1 to 64).
fn shaped(s: &str, prefix: &str, len: usize) -> bool {
    s.strip_prefix(prefix).is_some_and(|rest| {
        let fits = if len == 0 {
            (1..=64).contains(&rest.len())
        } else {
            rest.len() == len
        };
        fits && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || (len == 0 && b == b'_'))
    })
}

impl WebhookMessage {
    /// Checks a message taken off the queue before anything is sent for it:
    /// the worker trusts no message blindly (anyone who may send to the
    /// queue could forge one). Ids must have the shapes keyhub makes (an
    /// event's type is one keyhub sends, or it does not parse as an
    /// `EventKind`); that the named delivery and endpoint
    /// exist, for that account, the worker checks in the store.
    pub fn check(&self) -> Result<(), &'static str> {
        match self {
            WebhookMessage::Event { event, endpoint_id } => {
                if !shaped(&event.id, "evt_", 0) {
                    return Err("the event id is not an event id");
                }
                if !shaped(&event.account_id, "acct_", 0) {
                    return Err("the account id is not an account id");
                }
                if endpoint_id
                    .as_deref()
                    .is_some_and(|id| !shaped(id, "wh_", 20))
                {
                    return Err("the endpoint id is not an endpoint id");
                }
                Ok(())
            }
            WebhookMessage::Delivery {
                account_id,
                endpoint_id,
                delivery_id,
                chain,
            } => {
                if chain.as_deref().is_some_and(|c| !shaped(c, "", 0)) {
                    Err("the retry chain is not a token")
                } else if !shaped(account_id, "acct_", 0) {
                    Err("the account id is not an account id")
                } else if !shaped(endpoint_id, "wh_", 20) {
                    Err("the endpoint id is not an endpoint id")
                } else if !shaped(delivery_id, "dlv_", 22) {
                    Err("the delivery id is not a delivery id")
                } else {
                    Ok(())
                }
            }
        }
    }
}

#[derive(Clone)]
pub struct EventBus {
    store: Store,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    /// How long `publish` waits for the queue before leaving the rest to
    /// the relay.
    publish_timeout: Duration,
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
            publish_timeout: crate::config::AwsTimeouts::default().side_effect,
        }
    }

    /// Bounds `publish`'s sends (`Config::aws.side_effect`).
    pub fn with_publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
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
    /// logged: the events stay in the outbox for the sweeper. The sends
    /// together get `publish_timeout`: the events are safe in the outbox, so
    /// a hung queue must not hold the request that made them.
    #[tracing::instrument(skip_all, fields(events = events.len()))]
    pub async fn publish(&self, events: &[Event]) {
        let mut sent = Vec::new();
        let sends = async {
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
        };
        if tokio::time::timeout(self.publish_timeout, sends)
            .await
            .is_err()
        {
            tracing::warn!(
                metric = "events_left_in_outbox",
                unsent = events.len() - sent.len(),
                "the webhook queue did not answer in time; the relay will send the rest"
            );
        }
        if sent.is_empty() {
            return;
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
    use crate::domain::events::EventKind;

    #[test]
    fn messages_are_tagged() {
        let m = WebhookMessage::Delivery {
            account_id: "a".into(),
            endpoint_id: "e".into(),
            delivery_id: "d".into(),
            chain: Some("c".into()),
        };
        let v: serde_json::Value = serde_json::to_value(&m).unwrap();
        assert_eq!(v["type"], "delivery");
        assert_eq!(serde_json::from_value::<WebhookMessage>(v).unwrap(), m);
    }

    #[test]
    fn only_messages_shaped_like_keyhubs_pass_the_check() {
        let delivery = |a: &str, e: &str, d: &str| WebhookMessage::Delivery {
            chain: None,
            account_id: a.into(),
            endpoint_id: e.into(),
            delivery_id: d.into(),
        };
        let (wh, dlv) = (
            format!("wh_{}", "a".repeat(20)),
            format!("dlv_{}", "b".repeat(22)),
        );
        assert_eq!(delivery("acct_x1", &wh, &dlv).check(), Ok(()));
        assert!(delivery("", &wh, &dlv).check().is_err());
        assert!(delivery("acct_x1", "wh_../../x", &dlv).check().is_err());
        assert!(delivery("acct_x1", &wh, "dlv_short").check().is_err());
        let now = crate::domain::time::now();
        let event = |kind: EventKind, account: &str| WebhookMessage::Event {
            event: Event::new(kind, account, serde_json::json!({}), now),
            endpoint_id: None,
        };
        assert_eq!(event(EventKind::ApiKeyCreated, "acct_x1").check(), Ok(()));
        let mut stolen = serde_json::to_value(event(EventKind::ApiKeyCreated, "acct_x1")).unwrap();
        stolen["event"]["event"] = "api_key.stolen".into();
        assert!(serde_json::from_value::<WebhookMessage>(stolen).is_err());
        assert!(event(EventKind::ApiKeyCreated, "someone").check().is_err());
        let WebhookMessage::Event { event: e, .. } = event(EventKind::WebhookTest, "acct_x1")
        else {
            unreachable!()
        };
        let aimed = WebhookMessage::Event {
            event: e,
            endpoint_id: Some("not-an-endpoint".into()),
        };
        assert!(aimed.check().is_err());
    }
}
