//! Drives the SQS consumers the way Lambda's event source mapping does:
//! receive a batch, hand it to the function as an `SqsEvent` (through JSON, as
//! in Lambda), delete what succeeded, and leave each item the function
//! reported in `batchItemFailures` to come back after its visibility timeout
//! (and, past the queue's maxReceiveCount, to go to its dead-letter queue).

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName, QueueAttributeName,
};

use crate::Error;
use crate::template::SqsBatching;

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
    /// How `run` gathers a batch (`with_batching`); `None` hands over
    /// each poll's messages at once.
    pub batching: Option<SqsBatching>,
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
            batching: None,
        })
    }

    /// Gathers batches in `run` as the function's event source mapping
    /// does (template.yaml's `BatchSize` and batching window): a consumer
    /// handed each message alone does a write per record where Lambda's
    /// would do one per batch.
    pub fn with_batching(mut self, batching: Option<SqsBatching>) -> Self {
        self.batching = batching;
        self
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
        let messages = self.receive(batch, wait).await?;
        self.hand_over(messages, handler).await
    }

    /// One ReceiveMessage: up to `batch` messages (at most 10), waiting up to
    /// `wait` for the first.
    async fn receive(&self, batch: i32, wait: Duration) -> Result<Vec<Message>, Error> {
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
        Ok(out.messages.unwrap_or_default())
    }

    /// Messages gathered as the event source mapping gathers a batch: the
    /// first long poll waits up to `wait`; once one message is in hand,
    /// polls go on until `batching.batch_size` messages are or
    /// `batching.window` has passed since the first.
    async fn gather(&self, batching: SqsBatching, wait: Duration) -> Result<Vec<Message>, Error> {
        let mut messages = self.receive(10, wait).await?;
        if messages.is_empty() {
            return Ok(messages);
        }
        let deadline = tokio::time::Instant::now() + batching.window;
        while messages.len() < batching.batch_size {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            // ReceiveMessage waits whole seconds: a shorter remainder is a
            // short poll, and an empty one a pause, not a busy loop.
            let more = self
                .receive(
                    (batching.batch_size - messages.len()).min(10) as i32,
                    Duration::from_secs(left.as_secs()),
                )
                .await?;
            if more.is_empty() && left < Duration::from_secs(1) {
                tokio::time::sleep(left.min(Duration::from_millis(100))).await;
            }
            messages.extend(more);
        }
        Ok(messages)
    }

    /// Hands messages to the function as one `SqsEvent` and deletes the
    /// ones it did not report failed. Returns how many there were.
    async fn hand_over<F, Fut>(&self, messages: Vec<Message>, handler: F) -> Result<usize, Error>
    where
        F: FnOnce(SqsEvent) -> Fut,
        Fut: Future<Output = SqsBatchResponse>,
    {
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
        // DeleteMessageBatch takes at most 10 entries.
        for chunk in entries.chunks(10) {
            self.sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(chunk.to_vec()))
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
            let polled = match self.batching {
                Some(b) => match self.gather(b, Duration::from_secs(1)).await {
                    Ok(messages) => self.hand_over(messages, &mut handler).await,
                    Err(e) => Err(e),
                },
                None => {
                    self.poll_once(10, Duration::from_secs(1), &mut handler)
                        .await
                }
            };
            if let Err(e) = polled {
                tracing::warn!(worker = name, error = %e, "polling failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
