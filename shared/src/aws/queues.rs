//! The queues the functions send to: usage records go to SQS one per
//! request, best effort, so that a slow or failing queue never fails the
//! request a record describes.

use crate::domain::usage::UsageRecord;

/// Sends records to the usage queue: one SQS call per request.
#[derive(Clone)]
pub struct UsageSink {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    /// How long a request waits for its record's send.
    timeout: std::time::Duration,
}

impl UsageSink {
    pub fn new(sqs: aws_sdk_sqs::Client, queue_url: String) -> Self {
        UsageSink {
            sqs,
            queue_url,
            timeout: crate::config::AwsTimeouts::default().side_effect,
        }
    }

    /// Bounds each send (`Config::aws.side_effect`).
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sends one record, counted as `UsageRecordsSent` or
    /// `UsageRecordsFailed`. A failure or a send slower than the timeout is
    /// logged (with a `metric` field to count), not returned: losing a
    /// usage record must not fail, or stall, the request it describes.
    #[tracing::instrument(skip_all, fields(request_id = %record.request_id))]
    pub async fn send(&self, record: &UsageRecord) {
        let body = match serde_json::to_string(record) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "usage record not serialisable");
                crate::metrics::usage_record_failed();
                return;
            }
        };
        let send = self
            .sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send();
        match tokio::time::timeout(self.timeout, send).await {
            Ok(Ok(_)) => crate::metrics::usage_record_sent(),
            Ok(Err(e)) => {
                crate::metrics::usage_record_failed();
                tracing::warn!(
                    metric = "usage_records_dropped",
                    error = %aws_sdk_sqs::error::DisplayErrorContext(&e),
                    "usage record not sent"
                )
            }
            Err(_) => {
                crate::metrics::usage_record_failed();
                tracing::warn!(
                    metric = "usage_records_dropped",
                    timeout_ms = self.timeout.as_millis() as u64,
                    "usage record not sent: the queue did not answer in time"
                )
            }
        }
    }
}
