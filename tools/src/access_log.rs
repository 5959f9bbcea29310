//! The stage's access log and its CloudWatch Logs subscription, locally:
//! the gateway writes one line per request it answers, in template.yaml's
//! format filled in as API Gateway fills it (`keyhub::domain::access_log`),
//! and the lines reach the usage function in batches as the subscription
//! delivers them (gzip, base64, `{"awslogs": ...}`, through JSON text), so
//! that `make dev` and the tests count usage on the code path AWS runs.
//!
//! A batch goes when `batch` lines are waiting, when `run`'s timer ticks,
//! or when a test calls `flush`. A batch the usage function fails is
//! delivered again, as Lambda retries an asynchronous invocation (twice).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyhub::domain::access_log::{FORMAT, render};
use serde_json::Value;

/// Log group and filter names as the template's resources would have them.
pub const LOG_GROUP: &str = "/aws/apigateway/keyhub-local/access";
const LOG_STREAM: &str = "local";
const FILTER: &str = "usage";
/// Lambda retries an asynchronous invocation that failed twice.
const RETRIES: u32 = 2;

/// What the gateway learnt of one request on its way through: the values
/// of the format's `$context` variables it knows.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub request_id: Option<String>,
    pub resource_path: Option<String>,
    pub authorizer: HashMap<String, Value>,
}

/// Shared between the logging wrapper and the handler, through the
/// request's extensions.
pub type SeenSlot = Arc<Mutex<Seen>>;

/// Updates the slot, if the request has one.
pub fn note(slot: Option<&SeenSlot>, f: impl FnOnce(&mut Seen)) {
    if let Some(mut seen) = slot.and_then(|s| s.lock().ok()) {
        f(&mut seen);
    }
}

/// The gateway response API Gateway answered a request with itself
/// (`$context.error.responseType`), kept in the response's extensions.
#[derive(Debug, Clone)]
pub struct ResponseType(pub String);

/// One request as the access log sees it once answered.
pub struct Answered<'a> {
    pub seen: &'a Seen,
    pub method: &'a str,
    pub source_ip: &'a str,
    pub status: u16,
    pub response_type: Option<&'a str>,
    pub latency: Duration,
    pub request_time_ms: i64,
}

/// The access-log line API Gateway writes for `a`.
pub fn line(a: &Answered<'_>) -> String {
    render(FORMAT, |name| match name {
        "requestId" => a.seen.request_id.clone(),
        "resourcePath" => a.seen.resource_path.clone(),
        "httpMethod" => Some(a.method.to_string()),
        "status" => Some(a.status.to_string()),
        "responseLatency" => Some(a.latency.as_millis().to_string()),
        "identity.sourceIp" => Some(a.source_ip.to_string()),
        "requestTimeEpoch" => Some(a.request_time_ms.to_string()),
        "error.responseType" => a.response_type.map(str::to_string),
        other => other
            .strip_prefix("authorizer.")
            .and_then(|k| a.seen.authorizer.get(k))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            }),
    })
}

pub struct AccessLog {
    usage: keyhub_usage::Deps,
    /// Lines not yet delivered: (event id, timestamp in ms, message).
    pending: Mutex<Vec<(String, i64, String)>>,
    /// Batches the usage function failed, with the tries they have had.
    failed: Mutex<Vec<(Value, u32)>>,
    next_id: AtomicU64,
    batch: usize,
    /// Off, nothing is written (`make bench` measures the request path alone).
    enabled: AtomicBool,
    /// One delivery at a time, so that `flush` returns only once every
    /// line written before it has been through the usage function.
    delivering: tokio::sync::Mutex<()>,
}

impl AccessLog {
    pub fn new(usage: keyhub_usage::Deps, batch: usize) -> Self {
        AccessLog {
            usage,
            pending: Mutex::new(Vec::new()),
            failed: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
            batch: batch.max(1),
            enabled: AtomicBool::new(true),
            delivering: tokio::sync::Mutex::new(()),
        }
    }

    /// Turns writing on or off (it is on from the start).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    /// Writes a line; a full batch is delivered in the background.
    pub fn write(self: &Arc<Self>, message: String) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = chrono::Utc::now().timestamp_millis();
        let full = match self.pending.lock() {
            Ok(mut p) => {
                p.push((format!("{id:056}"), now, message));
                p.len() >= self.batch
            }
            Err(_) => false,
        };
        if full {
            let me = self.clone();
            tokio::spawn(async move {
                me.flush().await;
            });
        }
    }

    /// The waiting lines as one subscription event (taking them), if any.
    pub fn take_event(&self) -> Option<Value> {
        let lines = std::mem::take(&mut *self.pending.lock().ok()?);
        if lines.is_empty() {
            return None;
        }
        match keyhub_usage::logs::encode(LOG_GROUP, LOG_STREAM, FILTER, &lines) {
            Ok(event) => Some(event),
            Err(e) => {
                tracing::error!(error = %e, lines = lines.len(), "could not encode an access-log batch");
                None
            }
        }
    }

    /// Invokes the usage function with a subscription event, through JSON
    /// text as Lambda hands it over.
    pub async fn deliver(&self, event: &Value) -> Result<(), String> {
        let text = serde_json::to_string(event).map_err(|e| e.to_string())?;
        let event: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        keyhub_usage::handle_event(&self.usage, event)
            .await
            .map(|_| ())
    }

    /// Delivers every line written so far, and retries failed batches;
    /// returns how many lines went through the usage function.
    pub async fn flush(&self) -> usize {
        let _one = self.delivering.lock().await;
        let mut batches: Vec<(Value, u32)> = self
            .failed
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default();
        if let Some(event) = self.take_event() {
            batches.push((event, 0));
        }
        let mut delivered = 0;
        for (event, tries) in batches {
            let lines = keyhub_usage::logs::decode(&event)
                .map(|d| d.log_events.len())
                .unwrap_or(0);
            match self.deliver(&event).await {
                Ok(()) => delivered += lines,
                Err(e) if tries < RETRIES => {
                    tracing::warn!(error = %e, lines, "access-log batch failed; it comes again");
                    if let Ok(mut f) = self.failed.lock() {
                        f.push((event, tries + 1));
                    }
                }
                Err(e) => tracing::error!(
                    metric = "access_log_batches_dropped",
                    error = %e,
                    lines,
                    "access-log batch failed its last retry"
                ),
            }
        }
        delivered
    }

    /// Delivers on a timer, as the subscription does, until dropped.
    pub async fn run(self: Arc<Self>, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.flush().await;
        }
    }
}
