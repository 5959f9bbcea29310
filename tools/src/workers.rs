//! Drives the SQS consumers the way Lambda's event source mapping does:
//! receive a batch, hand it to the function as an `SqsEvent` (through JSON, as
//! in Lambda), delete what succeeded, and leave each item the function
//! reported in `batchItemFailures` to come back after its visibility timeout
//! (and, past the queue's maxReceiveCount, to go to its dead-letter queue).

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
};

use crate::Error;

/// A long poll waits up to `wait` by design: the stack's short call bounds
/// (`AwsTimeouts`) would cut it off, and a receive cut off after SQS handed
/// out its messages hides them for the whole visibility timeout.
fn long_poll_timeouts(wait: Duration) -> aws_sdk_sqs::config::timeout::TimeoutConfig {
    aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(wait + Duration::from_secs(10))
        .operation_timeout(wait + Duration::from_secs(20))
        .build()
}

#[derive(Clone)]
pub struct SqsSource {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub queue_arn: String,
    /// Overrides the queue's visibility timeout for received messages (tests
    /// that let a worker die mid-batch need it short).
    pub visibility_timeout: Option<i32>,
}

impl SqsSource {
    pub async fn new(sqs: aws_sdk_sqs::Client, queue_url: &str) -> Result<Self, Error> {
        let arn = sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .unwrap_or_default();
        Ok(SqsSource {
            sqs,
            queue_url: queue_url.to_string(),
            queue_arn: arn,
            visibility_timeout: None,
        })
    }

    /// One poll: up to `batch` messages (10 at most, as one ReceiveMessage
    /// gives), waiting up to `wait` for the first. Returns how many came.
    pub async fn poll_once<F, Fut>(
        &self,
        batch: i32,
        wait: Duration,
        handler: F,
    ) -> Result<usize, Error>
    where
        F: FnOnce(SqsEvent) -> Fut,
        Fut: Future<Output = SqsBatchResponse>,
    {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(batch.clamp(1, 10))
            .wait_time_seconds(wait.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .set_visibility_timeout(self.visibility_timeout)
            .customize()
            .config_override(
                aws_sdk_sqs::config::Builder::default().timeout_config(long_poll_timeouts(wait)),
            )
            .send()
            .await?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(0);
        }
        let mut event = SqsEvent::default();
        for m in &messages {
            let mut e = SqsMessage::default();
            e.message_id = m.message_id.clone();
            e.receipt_handle = m.receipt_handle.clone();
            e.body = m.body.clone();
            e.md5_of_body = m.md5_of_body.clone();
            e.attributes = m
                .attributes
                .as_ref()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_string(), v.clone()))
                        .collect()
                })
                .unwrap_or_default();
            e.event_source = Some("aws:sqs".to_string());
            e.event_source_arn = Some(self.queue_arn.clone());
            e.aws_region = Some("us-east-1".to_string());
            event.records.push(e);
        }
        let event: SqsEvent = serde_json::from_value(serde_json::to_value(&event)?)?;
        let response = handler(event).await;
        let failed: Vec<String> = response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect();
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.message_id.as_ref().is_some_and(|id| failed.contains(id)))
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.clone()?)
                    .build()
                    .ok()
            })
            .collect();
        if !entries.is_empty() {
            self.sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await?;
        }
        Ok(messages.len())
    }

    /// Polls until the queue gives nothing: what a test needs to see every
    /// queued message handled before it looks.
    pub async fn drain<F, Fut>(&self, mut handler: F) -> Result<usize, Error>
    where
        F: FnMut(SqsEvent) -> Fut,
        Fut: Future<Output = SqsBatchResponse>,
    {
        let mut total = 0;
        loop {
            let n = self.poll_once(10, Duration::ZERO, &mut handler).await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Polls for ever, as the event source mapping does; errors are logged
    /// and retried after a pause.
    pub async fn run<F, Fut>(self, name: &'static str, mut handler: F)
    where
        F: FnMut(SqsEvent) -> Fut,
        Fut: Future<Output = SqsBatchResponse>,
    {
        loop {
            if let Err(e) = self
                .poll_once(10, Duration::from_secs(1), &mut handler)
                .await
            {
                tracing::warn!(worker = name, error = %e, "polling failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
