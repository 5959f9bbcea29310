//! `/api/v1/webhooks`: endpoints, their signing secrets, test events and the
//! delivery log. Every read and write is scoped to the caller's account.

use std::time::Duration;

use keyhub::ApiError;
use keyhub::aws::eventbus::{EventBus, WebhookMessage};
use keyhub::aws::sealed::SecretBox;
use keyhub::aws::store::{EndpointPatch, StoreError};
use keyhub::domain::base62;
use keyhub::domain::events::Event;
use keyhub::domain::time;
use keyhub::domain::webhook::{Endpoint, SigningSecret};
use serde_json::{Value, json};

use crate::call::{Call, Reply};
use crate::requests::{CreateWebhook, UpdateWebhook};

const MAX_ENDPOINTS: usize = 20;
/// How long the old secret keeps signing after a rotation.
const ROTATION_OVERLAP: i64 = 24 * 3600;
const DEFAULT_PAGE: i32 = 20;
const MAX_PAGE: i32 = 100;

fn not_found(what: &'static str) -> impl Fn(StoreError) -> ApiError {
    move |e| match e {
        StoreError::NotFound => ApiError::NotFound { what },
        other => other.into(),
    }
}

/// The parts webhooks need; a deployment without them answers 500 and says
/// why in its log.
fn parts<'a>(call: &'a Call<'_>) -> Result<(&'a EventBus, &'a SecretBox), ApiError> {
    match (&call.deps.events, &call.deps.secrets) {
        (Some(bus), Some(secrets)) => Ok((bus, secrets)),
        _ => Err(ApiError::internal(
            "webhooks are not configured: set WEBHOOK_QUEUE_URL and WEBHOOK_KEY_SECRET_ID",
        )),
    }
}

fn check_url(call: &Call<'_>, url: &str) -> Result<String, ApiError> {
    call.deps
        .config
        .webhooks
        .addresses
        .check_url(url)
        .map(|u| u.to_string())
        .map_err(|m| ApiError::invalid("url", "invalid_value", format!("url: {m}")))
}

/// Whether `s` is `prefix` followed by exactly `len` base62 characters: the
/// shape of every id this API makes. Ids are checked before any read, so a
/// path segment of any length or content never reaches DynamoDB's own key
/// validation (which would answer a 500); an id of another shape cannot
/// exist, so it is simply not found.
fn has_shape(s: &str, prefix: &str, len: usize) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|rest| rest.len() == len && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// `wh_` and 20 base62 characters, as `create` makes them.
fn endpoint_id<'a>(call: &'a Call<'_>) -> Result<&'a str, ApiError> {
    let id = call.param("id");
    if has_shape(id, "wh_", 20) {
        Ok(id)
    } else {
        Err(ApiError::NotFound {
            what: "webhook endpoint",
        })
    }
}

/// `dlv_` and 22 base62 characters, as `Delivery::id_for` makes them.
fn is_delivery_id(id: &str) -> bool {
    has_shape(id, "dlv_", 22)
}

async fn owned_endpoint(call: &Call<'_>) -> Result<Endpoint, ApiError> {
    call.deps
        .store
        .get_endpoint(&call.principal.account_id, endpoint_id(call)?)
        .await?
        .ok_or(ApiError::NotFound {
            what: "webhook endpoint",
        })
}

fn with_secret(endpoint: &Endpoint, secret: &SigningSecret) -> Value {
    let mut v = endpoint.view();
    v["secret"] = Value::from(secret.expose());
    v
}

pub async fn create(call: &Call<'_>) -> Reply {
    let body: CreateWebhook = call.body()?;
    let (_, secrets) = parts(call)?;
    let url = check_url(call, &body.url)?;
    let account = &call.principal.account_id;
    if call.deps.store.list_endpoints(account).await?.len() >= MAX_ENDPOINTS {
        return Err(ApiError::Conflict(format!(
            "an account has at most {MAX_ENDPOINTS} webhook endpoints"
        )));
    }
    let id = format!(
        "wh_{}",
        base62::random(20).map_err(|e| ApiError::internal(format!("no random bytes: {e}")))?
    );
    let secret = SigningSecret::generate()
        .ok_or_else(|| ApiError::internal("no random bytes for a signing secret"))?;
    let sealed = secrets
        .seal(secret.bytes(), &id)
        .map_err(|e| ApiError::internal(format!("sealing the signing secret: {e}")))?;
    let endpoint = Endpoint {
        id,
        account_id: account.clone(),
        url,
        events: body.events.0,
        description: body.description.map(|d| d.0),
        is_active: body.is_active.unwrap_or(true),
        secret: sealed,
        previous_secret: None,
        previous_secret_expires_at: None,
        created_at: call.now,
        updated_at: call.now,
        failing_since: None,
        disabled_reason: None,
    };
    call.deps.store.put_endpoint(&endpoint).await?;
    tracing::info!(endpoint_id = %endpoint.id, "webhook endpoint created");
    Ok((201, with_secret(&endpoint, &secret)))
}

pub async fn list(call: &Call<'_>) -> Reply {
    let endpoints = call
        .deps
        .store
        .list_endpoints(&call.principal.account_id)
        .await?;
    Ok((
        200,
        json!({ "webhooks": endpoints.iter().map(Endpoint::view).collect::<Vec<_>>() }),
    ))
}

pub async fn get(call: &Call<'_>) -> Reply {
    Ok((200, owned_endpoint(call).await?.view()))
}

pub async fn update(call: &Call<'_>) -> Reply {
    let body: UpdateWebhook = call.body()?;
    let url = body
        .url
        .as_deref()
        .map(|u| check_url(call, u))
        .transpose()?;
    let patch = EndpointPatch {
        url,
        events: body.events.map(|e| e.0),
        description: body.description.map(|d| d.map(|d| d.0)),
        is_active: body.is_active,
    };
    let endpoint = call
        .deps
        .store
        .update_endpoint(
            &call.principal.account_id,
            endpoint_id(call)?,
            &patch,
            call.now,
        )
        .await
        .map_err(not_found("webhook endpoint"))?;
    Ok((200, endpoint.view()))
}

pub async fn delete(call: &Call<'_>) -> Reply {
    call.deps
        .store
        .delete_endpoint(&call.principal.account_id, endpoint_id(call)?)
        .await
        .map_err(not_found("webhook endpoint"))?;
    Ok((
        200,
        json!({ "message": "webhook endpoint deleted successfully" }),
    ))
}

pub async fn rotate_secret(call: &Call<'_>) -> Reply {
    let (_, secrets) = parts(call)?;
    let endpoint = owned_endpoint(call).await?;
    let secret = SigningSecret::generate()
        .ok_or_else(|| ApiError::internal("no random bytes for a signing secret"))?;
    let sealed = secrets
        .seal(secret.bytes(), &endpoint.id)
        .map_err(|e| ApiError::internal(format!("sealing the signing secret: {e}")))?;
    let until = call.now + chrono::Duration::seconds(ROTATION_OVERLAP);
    let endpoint = call
        .deps
        .store
        .rotate_endpoint_secret(&endpoint.account_id, &endpoint.id, &sealed, until, call.now)
        .await
        .map_err(not_found("webhook endpoint"))?;
    let mut body = with_secret(&endpoint, &secret);
    body["previous_secret_expires_at"] = Value::from(time::format(&until));
    Ok((200, body))
}

/// Sends a `webhook.test` event to this endpoint only.
pub async fn test(call: &Call<'_>) -> Reply {
    let (bus, _) = parts(call)?;
    let endpoint = owned_endpoint(call).await?;
    if !endpoint.is_active {
        return Err(ApiError::Conflict(
            "the endpoint is disabled; enable it first".into(),
        ));
    }
    let event = Event::new(
        keyhub::domain::events::EventKind::WebhookTest,
        &endpoint.account_id,
        json!({"endpoint_id": endpoint.id, "message": "This is a test event from keyhub."}),
        call.now,
    );
    let message = WebhookMessage::Event {
        event: event.clone(),
        endpoint_id: Some(endpoint.id.clone()),
    };
    bus.send(&message, Duration::ZERO).await?;
    Ok((
        202,
        json!({ "message": "test event queued", "event": event }),
    ))
}

fn page_query(call: &Call<'_>) -> Result<(i32, Option<String>), ApiError> {
    let q = keyhub::http::request::query(call.req)?;
    if let Some(k) = q
        .keys()
        .find(|k| !["limit", "per_page", "cursor"].contains(&k.as_str()))
    {
        return Err(ApiError::invalid(
            k.as_str(),
            "unknown_parameter",
            format!("unknown query parameter '{k}'; known: limit, per_page, cursor"),
        ));
    }
    // `per_page` is the documents' name for `limit` (as for the key list's
    // `size`); both are checked, and `limit` wins when both are sent.
    let number = |name: &str| -> Result<Option<i32>, ApiError> {
        q.get(name)
            .map(|v| {
                v.parse::<i32>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid(
                            name,
                            "invalid_value",
                            format!("{name} must be from 1 to {MAX_PAGE}"),
                        )
                    })
            })
            .transpose()
    };
    let (limit, per_page) = (number("limit")?, number("per_page")?);
    let limit = limit.or(per_page).unwrap_or(DEFAULT_PAGE);
    // The cursor is the id of the last delivery of the previous page, so any
    // id of the right shape is a position to continue after.
    let cursor = match q.get("cursor").filter(|c| !c.is_empty()) {
        None => None,
        Some(c) if is_delivery_id(c) => Some(format!("d#{c}")),
        Some(_) => {
            return Err(ApiError::invalid(
                "cursor",
                "invalid_value",
                "cursor is not one this API handed out",
            ));
        }
    };
    Ok((limit, cursor))
}

pub async fn deliveries(call: &Call<'_>) -> Reply {
    let (limit, cursor) = page_query(call)?;
    let endpoint = owned_endpoint(call).await?;
    let store = &call.deps.store;
    let has_previous = async {
        match cursor.as_deref() {
            Some(after) => store.deliveries_before(&endpoint.id, after).await,
            None => Ok(false),
        }
    };
    let ((items, next), total, has_previous) = futures::try_join!(
        store.list_deliveries(&endpoint.id, limit, cursor.as_deref()),
        store.count_deliveries(&endpoint.id),
        has_previous,
    )?;
    // The key list's paging names too: `per_page` (the page size asked
    // for), `total_items` (every delivery in the log) and `has_previous`.
    Ok((
        200,
        json!({
            "deliveries": items.iter().map(|d| d.view()).collect::<Vec<_>>(),
            "next_cursor": next.and_then(|sk| sk.strip_prefix("d#").map(str::to_string)),
            "per_page": limit,
            "total_items": total,
            "has_previous": has_previous,
        }),
    ))
}

async fn owned_delivery(
    call: &Call<'_>,
) -> Result<(Endpoint, keyhub::domain::webhook::Delivery), ApiError> {
    let not_found = ApiError::NotFound { what: "delivery" };
    let id = call.param("delivery_id");
    let endpoint = owned_endpoint(call).await?;
    if !is_delivery_id(id) {
        return Err(not_found);
    }
    let delivery = call
        .deps
        .store
        .get_delivery(&endpoint.id, id)
        .await?
        .ok_or(not_found)?;
    Ok((endpoint, delivery))
}

pub async fn delivery(call: &Call<'_>) -> Reply {
    let (_, delivery) = owned_delivery(call).await?;
    Ok((200, delivery.view()))
}

/// Sends a delivery again now, whatever became of it.
pub async fn retry(call: &Call<'_>) -> Reply {
    let (bus, _) = parts(call)?;
    let (endpoint, delivery) = owned_delivery(call).await?;
    if !endpoint.is_active {
        return Err(ApiError::Conflict(
            "the endpoint is disabled; enable it first".into(),
        ));
    }
    // A new retry chain: a message of the old one still queued is dropped.
    let chain = keyhub::aws::eventbus::new_chain();
    call.deps
        .store
        .restart_delivery(&endpoint.id, &delivery.id, &chain, call.now)
        .await
        .map_err(not_found("delivery"))?;
    let message = WebhookMessage::Delivery {
        account_id: endpoint.account_id.clone(),
        endpoint_id: endpoint.id.clone(),
        delivery_id: delivery.id.clone(),
        chain: Some(chain),
    };
    bus.send(&message, Duration::ZERO).await?;
    Ok((
        202,
        json!({ "message": "delivery queued", "delivery_id": delivery.id }),
    ))
}
