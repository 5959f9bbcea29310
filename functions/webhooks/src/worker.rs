//! The delivery worker: one I/O path (`attempt`) around the pure rules of
//! `keyhub::domain::webhook` (signing, the schedule, what an answer means).
//!
//! An event message fans out: one delivery per subscribed endpoint (its id
//! fixed by event and endpoint, so handling the message twice finds the same
//! deliveries and skips those already delivered), each tried at once. A
//! failed first attempt is queued as a delivery message, delayed by the first
//! step of the schedule; each later failure hides that message for the next
//! step (`ChangeMessageVisibility`) and reports it in `batchItemFailures`.
//! After the last attempt the message is moved to the dead-letter queue.

use std::time::Duration;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::future::join_all;
use keyhub::aws::eventbus::{EventBus, WebhookMessage};
use keyhub::aws::sealed::SecretBox;
use keyhub::aws::store::{Store, StoreError};
use keyhub::config::WebhookSettings;
use keyhub::domain::events::Event;
use keyhub::domain::time::{self, Timestamp};
use keyhub::domain::webhook::{
    self, Attempt, Delivery, DeliveryStatus, Endpoint, SigningSecret, Verdict,
};

use crate::client::DeliveryClient;

pub struct Deps {
    pub store: Store,
    pub bus: EventBus,
    pub secrets: SecretBox,
    pub client: DeliveryClient,
    pub settings: WebhookSettings,
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub dead_letter_url: Option<String>,
}

/// What to do with a delivery message after handling it.
enum Ack {
    Done,
    /// Hide the message for this long, then deliver it again.
    RetryIn(Duration),
    /// The last attempt failed: to the dead-letter queue.
    DeadLetter,
}

fn unsealed(deps: &Deps, endpoint: &Endpoint, sealed: &str) -> Option<SigningSecret> {
    deps.secrets
        .open(sealed, &endpoint.id)
        .ok()
        .and_then(SigningSecret::from_bytes)
}

/// The signed request for one attempt: a fresh timestamp, the same id.
fn signed_headers(
    deps: &Deps,
    endpoint: &Endpoint,
    delivery: &Delivery,
    now: Timestamp,
) -> Result<http::HeaderMap, String> {
    let current = unsealed(deps, endpoint, &endpoint.secret)
        .ok_or("the endpoint's secret cannot be opened")?;
    let previous = match (
        &endpoint.previous_secret,
        endpoint.previous_secret_expires_at,
    ) {
        (Some(p), Some(until)) if until > now => unsealed(deps, endpoint, p),
        _ => None,
    };
    let ts = now.timestamp();
    let body = delivery.payload.as_bytes();
    let mut h = http::HeaderMap::new();
    let mut put = |name: &'static str, value: String| {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    };
    put("content-type", "application/json".into());
    put("webhook-id", delivery.event_id.clone());
    put("webhook-timestamp", ts.to_string());
    put(
        "webhook-signature",
        webhook::signature_header(&current, previous.as_ref(), &delivery.event_id, ts, body),
    );
    put("x-signature", current.x_signature(body));
    Ok(h)
}

/// Makes one attempt and records it; says what comes next.
#[tracing::instrument(skip_all, fields(delivery_id = %delivery.id, endpoint_id = %endpoint.id))]
async fn attempt(deps: &Deps, endpoint: &Endpoint, delivery: &Delivery) -> Result<Ack, StoreError> {
    let now = time::now();
    let number = delivery.attempts.len() as u32 + 1;
    let answer = match signed_headers(deps, endpoint, delivery, now) {
        Ok(headers) => {
            deps.client
                .post(&endpoint.url, headers, delivery.payload.clone())
                .await
        }
        Err(e) => {
            tracing::error!(error = %e, "webhook not signed");
            crate::client::Answer {
                status: None,
                retry_after: None,
                body: None,
                error: Some(crate::client::class::SIGNING_FAILED.to_string()),
                latency: Duration::ZERO,
            }
        }
    };
    let verdict = webhook::judge(answer.status, answer.retry_after.as_deref(), now);
    let delay = match verdict {
        Verdict::Delivered | Verdict::Gone => None,
        Verdict::Retry { after } => {
            webhook::retry_delay(number, webhook::jitter(), deps.settings.retry_scale)
                .map(|d| after.unwrap_or(d))
        }
    };
    let next_attempt_at = delay.map(|d| now + chrono::Duration::from_std(d).unwrap_or_default());
    let status = match (verdict, delay) {
        (Verdict::Delivered, _) => DeliveryStatus::Delivered,
        (_, Some(_)) => DeliveryStatus::Pending,
        _ => DeliveryStatus::Failed,
    };
    let record = Attempt {
        attempt: number,
        at: now,
        status_code: answer.status,
        latency_ms: answer.latency.as_secs_f64() * 1000.0,
        response: answer.body,
        error: answer.error,
        next_attempt_at,
    };
    tracing::info!(attempt = number, status = ?answer.status, outcome = ?status, "webhook attempt");
    keyhub::metrics::webhook_attempt(match (verdict, delay) {
        (Verdict::Delivered, _) => "delivered",
        (Verdict::Gone, _) => "gone",
        (_, Some(_)) => "retrying",
        (_, None) => "failed",
    });
    deps.store
        .record_attempt(&endpoint.id, &delivery.id, &record, status)
        .await?;
    match verdict {
        Verdict::Delivered => {
            deps.store.endpoint_succeeded(endpoint).await?;
            return Ok(Ack::Done);
        }
        Verdict::Gone => {
            disable(deps, endpoint, "the endpoint answered 410 Gone", now).await?;
            return Ok(Ack::Done);
        }
        Verdict::Retry { .. } => {}
    }
    let since = deps.store.endpoint_failed(endpoint, now).await?;
    let failing_for = (now - since).to_std().unwrap_or_default();
    if failing_for >= deps.settings.disable_after {
        disable(
            deps,
            endpoint,
            &format!("every attempt failed since {}", time::format(&since)),
            now,
        )
        .await?;
    }
    Ok(match delay {
        Some(d) => Ack::RetryIn(d),
        None => Ack::DeadLetter,
    })
}

/// Turns an endpoint off and tells the account's other endpoints.
async fn disable(
    deps: &Deps,
    endpoint: &Endpoint,
    reason: &str,
    now: Timestamp,
) -> Result<(), StoreError> {
    let event = Event::new(
        keyhub::domain::events::EventKind::WebhookEndpointDisabled,
        &endpoint.account_id,
        serde_json::json!({"endpoint_id": endpoint.id, "url": endpoint.url, "reason": reason}),
        now,
    );
    if deps
        .store
        .disable_endpoint(endpoint, reason, now, std::slice::from_ref(&event))
        .await?
    {
        tracing::warn!(endpoint_id = %endpoint.id, reason, "endpoint disabled");
        deps.bus.publish(&[event]).await;
    }
    Ok(())
}

/// Sends a retry for later: the first retry is a new delivery message, the
/// start of the delivery's retry chain. Sent first and claimed after, so a
/// crash in between leaves a message that claims the delivery on arrival
/// (or is dropped, if another chain got there first), never a delivery
/// whose chain has no message.
async fn queue_retry(deps: &Deps, delivery: &Delivery, delay: Duration) -> Result<(), StoreError> {
    let chain = keyhub::aws::eventbus::new_chain();
    let message = WebhookMessage::Delivery {
        account_id: delivery.account_id.clone(),
        endpoint_id: delivery.endpoint_id.clone(),
        delivery_id: delivery.id.clone(),
        chain: Some(chain.clone()),
    };
    deps.bus.send(&message, delay).await?;
    deps.store
        .claim_retry_chain(&delivery.endpoint_id, &delivery.id, &chain)
        .await?;
    Ok(())
}

/// Whether a delivery message is the delivery's retry chain; a message of
/// no chain is believed only by a delivery that has none (queued before
/// chains existed).
async fn is_its_chain(
    deps: &Deps,
    delivery: &Delivery,
    chain: Option<&str>,
) -> Result<bool, StoreError> {
    match (delivery.retry_chain.as_deref(), chain) {
        (None, None) => Ok(true),
        (Some(own), Some(c)) => Ok(own == c),
        (Some(_), None) => Ok(false),
        (None, Some(c)) => {
            deps.store
                .claim_retry_chain(&delivery.endpoint_id, &delivery.id, c)
                .await
        }
    }
}

async fn to_dead_letter(deps: &Deps, body: &str) {
    let Some(url) = &deps.dead_letter_url else {
        return;
    };
    match deps
        .sqs
        .send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
    {
        Ok(_) => keyhub::metrics::delivery_dead_lettered(),
        Err(e) => {
            tracing::error!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "could not dead-letter a delivery")
        }
    }
}

/// Fans an event out and makes each first attempt.
async fn handle_event(deps: &Deps, event: &Event, only: Option<&str>) -> Result<(), StoreError> {
    let endpoints = deps.store.list_endpoints(&event.account_id).await?;
    let targets: Vec<&Endpoint> = endpoints
        .iter()
        .filter(|e| e.is_active)
        .filter(|e| match only {
            Some(id) => e.id == id,
            None => e.wants(event.event.as_str()),
        })
        .collect();
    let results = join_all(targets.into_iter().map(|endpoint| async move {
        let delivery = deps
            .store
            .put_delivery(&Delivery::new(event, endpoint, time::now()))
            .await?;
        if delivery.status != DeliveryStatus::Pending {
            return Ok(());
        }
        if delivery.retry_chain.is_some() {
            // Handled before, and its retries are queued: they carry on.
            return Ok(());
        }
        if !delivery.attempts.is_empty() {
            // This message came back after a first attempt whose retry may
            // not have been queued: queue it (if one was, the first of the
            // two to claim the delivery carries on and the other is dropped).
            let wait = delivery
                .next_attempt_at
                .and_then(|due| (due - time::now()).to_std().ok())
                .unwrap_or_default();
            return queue_retry(deps, &delivery, wait).await;
        }
        match attempt(deps, endpoint, &delivery).await? {
            Ack::Done => Ok(()),
            Ack::RetryIn(d) => queue_retry(deps, &delivery, d).await,
            Ack::DeadLetter => {
                to_dead_letter(deps, &delivery.payload).await;
                Ok(())
            }
        }
    }))
    .await;
    results.into_iter().collect()
}

/// A retry of one delivery.
async fn handle_delivery(
    deps: &Deps,
    account_id: &str,
    endpoint_id: &str,
    delivery_id: &str,
    chain: Option<&str>,
) -> Result<Ack, StoreError> {
    let Some(delivery) = deps.store.get_delivery(endpoint_id, delivery_id).await? else {
        return Ok(Ack::Done);
    };
    // A message naming another account's delivery is not to be believed:
    // nothing is sent, and nothing (cancelling it) is done to that delivery.
    if delivery.account_id != account_id || delivery.endpoint_id != endpoint_id {
        tracing::warn!(%delivery_id, "dropping a delivery message that names the wrong account");
        return Ok(Ack::Done);
    }
    if delivery.status != DeliveryStatus::Pending {
        return Ok(Ack::Done);
    }
    if !is_its_chain(deps, &delivery, chain).await? {
        tracing::info!(%delivery_id, "dropping a second retry chain");
        return Ok(Ack::Done);
    }
    let now = time::now();
    let endpoint = match deps.store.get_endpoint(account_id, endpoint_id).await? {
        Some(e) if e.is_active => e,
        _ => {
            deps.store
                .set_delivery_status(endpoint_id, delivery_id, DeliveryStatus::Canceled, now)
                .await?;
            return Ok(Ack::Done);
        }
    };
    // Delivered early (SQS delays are capped at 15 minutes): wait the rest.
    if let Some(due) = delivery.next_attempt_at
        && due > now + chrono::Duration::seconds(1)
    {
        return Ok(Ack::RetryIn((due - now).to_std().unwrap_or_default()));
    }
    attempt(deps, &endpoint, &delivery).await
}

/// Handles one SQS message; `Some(delay)` to hide it and report it failed.
async fn handle_message(deps: &Deps, message: &SqsMessage) -> Option<Duration> {
    let body = message.body.as_deref().unwrap_or("");
    let parsed: WebhookMessage = match serde_json::from_str(body) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(message_id = ?message.message_id, error = %e, "dropping a bad webhook message");
            return None;
        }
    };
    if let Err(reason) = parsed.check() {
        tracing::warn!(message_id = ?message.message_id, reason, "dropping a malformed webhook message");
        return None;
    }
    match parsed {
        WebhookMessage::Event { event, endpoint_id } => {
            match handle_event(deps, &event, endpoint_id.as_deref()).await {
                Ok(()) => None,
                Err(e) => {
                    tracing::warn!(event_id = %event.id, error = %e, "event not fanned out; SQS will bring it back");
                    Some(Duration::ZERO)
                }
            }
        }
        WebhookMessage::Delivery {
            account_id,
            endpoint_id,
            delivery_id,
            chain,
        } => match handle_delivery(
            deps,
            &account_id,
            &endpoint_id,
            &delivery_id,
            chain.as_deref(),
        )
        .await
        {
            Ok(Ack::Done) => None,
            Ok(Ack::RetryIn(d)) => Some(d),
            Ok(Ack::DeadLetter) => {
                to_dead_letter(deps, body).await;
                None
            }
            Err(e) => {
                tracing::warn!(%delivery_id, error = %e, "delivery not handled; SQS will bring it back");
                Some(Duration::ZERO)
            }
        },
    }
}

/// The Lambda handler: every message of the batch at once.
#[tracing::instrument(skip_all, fields(messages = event.records.len()))]
pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let outcomes = join_all(event.records.iter().map(|m| handle_message(deps, m))).await;
    let mut response = SqsBatchResponse::default();
    for (message, outcome) in event.records.iter().zip(outcomes) {
        let Some(delay) = outcome else { continue };
        let (Some(id), Some(receipt)) = (&message.message_id, &message.receipt_handle) else {
            continue;
        };
        let secs = delay.as_secs_f64().ceil() as i32;
        if secs > 0 {
            let hidden = deps
                .sqs
                .change_message_visibility()
                .queue_url(&deps.queue_url)
                .receipt_handle(receipt)
                .visibility_timeout(secs.min(webhook::MAX_DELAY.as_secs() as i32))
                .send()
                .await;
            if let Err(e) = hidden {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "could not delay a retry");
            }
        }
        let mut f = BatchItemFailure::default();
        f.item_identifier = id.clone();
        response.batch_item_failures.push(f);
    }
    response
}
