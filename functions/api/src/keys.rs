//! `/api/v1/api-keys`: create, list, read, update, delete and rotate keys,
//! and deactivate or delete many at once.
//! Every read and write is scoped to the caller's account.

use keyhub::ApiError;
use keyhub::aws::store::StoreError;
use keyhub::domain::key::KeyPatch;
use keyhub::domain::key::{KeyRecord, KeyState, NewKey};
use keyhub::domain::pepper::KeyId;
use keyhub::domain::scope::Scopes;
use keyhub::domain::time;
use serde_json::{Value, json};

use crate::authority::Authority;
use crate::call::{Call, Reply};
use crate::listing::{ListQuery, paginate};
use crate::requests::{
    BulkAction, BulkKeys, CreateKey, DEFAULT_GRACE_SECONDS, MAX_GRACE_SECONDS, RotateKey,
    UpdateKey, When,
};

const KEY: &str = "API key";

fn not_found() -> ApiError {
    ApiError::NotFound { what: KEY }
}

/// The rules for what the calling key may do to keys.
fn authority<'a>(call: &'a Call<'_>) -> Authority<'a> {
    Authority {
        principal: call.principal,
        caller: call.caller,
        key_default: &call.deps.config.rate_limits.key_default,
    }
}

/// A key may only hand out scopes it holds itself.
pub(crate) fn may_grant(call: &Call<'_>, scopes: &Scopes) -> Result<(), ApiError> {
    authority(call).may_grant(scopes)
}

/// The key named in the path, if it belongs to the caller's account. A
/// malformed id cannot exist, so it is not found without a read.
async fn owned_key(call: &Call<'_>) -> Result<KeyRecord, ApiError> {
    let id = KeyId::parse(call.param("id")).ok_or_else(not_found)?;
    owned(call, &id).await
}

/// Key `id`, if it belongs to the caller's account; another account's is
/// not found, exactly as a missing one.
async fn owned(call: &Call<'_>, id: &KeyId) -> Result<KeyRecord, ApiError> {
    call.deps
        .store
        .get_account_key(&call.principal.account_id, id.as_str())
        .await
        .map_err(not_found_as_key)
}

fn not_found_as_key(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => not_found(),
        other => other.into(),
    }
}

fn view(call: &Call<'_>, record: &KeyRecord) -> Value {
    record.view(&call.deps.config.rate_limits, None)
}

pub async fn create(call: &Call<'_>) -> Reply {
    let body: CreateKey = call.body()?;
    let rules = authority(call);
    let scopes = body.scopes.unwrap_or_default();
    rules.may_grant(&scopes)?;
    // A time already past is taken as it is: the key is expired from the
    // start (openapi.yaml says so; no schema can say "in the future").
    let expires_at = rules.new_expiry(body.expires_at.map(|When(t)| t))?;
    let rate_limits = rules.new_limits(body.rate_limits.map(|l| l.0).unwrap_or_default())?;
    let settings = NewKey {
        account_id: call.principal.account_id.clone(),
        plan: call.principal.plan,
        name: body.name.0,
        description: body.description.map(|d| d.0),
        scopes,
        environment: body.environment.unwrap_or(call.caller.environment),
        expires_at,
        rate_limits,
        metadata: body.metadata.map(|m| m.0).unwrap_or_default(),
    };
    let deps = call.deps;
    let (key, record) = call.mint(settings)?;
    let events = call.event(
        &call.principal.account_id,
        keyhub::domain::events::EventKind::ApiKeyCreated,
        view(call, &record),
    );
    deps.store
        .put_key(&record, deps.config.max_keys_per_account, &events)
        .await?;
    call.publish(&events).await;
    tracing::info!(key_id = %record.id, "key created");
    Ok((201, record.view(&deps.config.rate_limits, Some(&key))))
}

pub async fn list(call: &Call<'_>) -> Reply {
    let query = ListQuery::parse(&keyhub::http::request::query(call.req)?)?;
    let keys = call
        .deps
        .store
        .list_keys(&call.principal.account_id)
        .await?;
    let page = paginate(keys, &query);
    let items: Vec<Value> = page.items.iter().map(|k| view(call, k)).collect();
    Ok((
        200,
        json!({
            "api_keys": items,
            "total": page.total,
            "page": page.page,
            "size": page.size,
            "total_pages": page.total_pages,
            "has_next": page.has_next,
            "next_cursor": page.next_cursor,
            // The product documents' names, beside the contract's: the
            // whole view is read to sort it, so the count is exact and free.
            "per_page": page.size,
            "total_items": page.total,
            "has_previous": page.has_previous,
        }),
    ))
}

pub async fn get(call: &Call<'_>) -> Reply {
    let record = owned_key(call).await?;
    let recent = call
        .deps
        .store
        .recent_usage(&record.id, crate::usage::RECENT)
        .await?;
    let mut body = view(call, &record);
    body["usage"] = recent.iter().map(crate::usage::recent_view).collect();
    body["rate_limit_status"] = rate_limit_status(call, &record).await;
    Ok((200, body))
}

/// Where the key and its account stand in each limited window, read from
/// the limiter's items without taking a unit: `{"key": {"minute": {limit,
/// remaining, reset}, ...}, "account": {...}, "environment": "live"}`,
/// unlimited windows left out. A test key's `account` is the account's test
/// keys' counter (`environment` says which), apart from the live keys'.
/// The account's standing includes the request that reads it when that
/// request's key is of the same account (it is, always) and environment:
/// the guard took its unit before this reads. `null` when the counters cannot be read: the key
/// itself is still worth answering with.
async fn rate_limit_status(call: &Call<'_>, record: &KeyRecord) -> Value {
    let p = keyhub::http::auth::Principal::from_record(record, call.deps.guard.policy());
    let checks = p.checks();
    let states = match call.deps.limiter.standing(&checks, call.now).await {
        Ok(states) => states,
        Err(e) => {
            tracing::warn!(error = %e, "rate-limit standing unavailable");
            return Value::Null;
        }
    };
    let mut out = json!({"key": {}, "account": {}, "environment": p.environment.as_str()});
    for (subject, s) in states {
        let side = if subject.starts_with("k#") {
            "key"
        } else {
            "account"
        };
        out[side][s.window.as_str()] =
            json!({"limit": s.limit, "remaining": s.remaining, "reset": s.reset});
    }
    out
}

/// Whether a change touches what the authorizer answers about a key (its
/// state, its scopes, the limits in its context), so that API Gateway's
/// cached answer must go; a new name, description or metadata does not.
fn changes_the_check(before: &KeyRecord, after: &KeyRecord) -> bool {
    before.is_active != after.is_active
        || before.scopes != after.scopes
        || before.rate_limits != after.rate_limits
        || before.expires_at != after.expires_at
}

pub async fn update(call: &Call<'_>) -> Reply {
    let body: UpdateKey = call.body()?;
    let id = KeyId::parse(call.param("id")).ok_or_else(not_found)?;
    let rules = authority(call);
    if let Some(scopes) = &body.scopes {
        rules.may_grant(scopes)?;
    }
    let expires_at = match body.expires_at {
        // A past time expires the key now.
        Some(Some(When(t))) => Some(Some(t)),
        Some(None) => Some(None),
        None => None,
    };
    let patch = KeyPatch {
        name: body.name.map(|n| n.0),
        description: body.description.map(|d| d.map(|d| d.0)),
        is_active: body.is_active,
        scopes: body.scopes,
        rate_limits: body.rate_limits.map(|l| l.map(|l| l.0).unwrap_or_default()),
        expires_at,
        metadata: body.metadata.map(|m| m.map(|m| m.0).unwrap_or_default()),
    };
    let (before, record) = change_key(call, &rules, &id, &patch, |_| Ok(())).await?;
    if changes_the_check(&before, &record) {
        call.flush_authorizer_cache().await;
    }
    Ok((200, view(call, &record)))
}

/// Applies `patch` to key `id` of the caller's account: read, check, change,
/// write unless changed meanwhile; the event carries the key as it now is.
/// One retry after a concurrent change, then 409. `refuse` is one more check
/// on the key as read (a bulk deactivation refuses an inactive key). The
/// change's event is sent and this environment forgets the key; API
/// Gateway's cache is the caller's to flush, once per request. Returns the
/// key before and after.
async fn change_key(
    call: &Call<'_>,
    rules: &Authority<'_>,
    id: &KeyId,
    patch: &KeyPatch,
    refuse: fn(&KeyRecord) -> Result<(), ApiError>,
) -> Result<(KeyRecord, KeyRecord), ApiError> {
    let mut tries = 0;
    let (before, record) = loop {
        let current = owned(call, id).await?;
        rules.may_act_on(&current)?;
        refuse(&current)?;
        if let Some(to) = patch.expires_at {
            rules.change_expiry(&current, to, call.now)?;
        }
        if patch.is_active == Some(true) {
            rules.reactivate(&current, call.now)?;
        }
        if let Some(to) = patch.rate_limits {
            rules.change_limits(&current, to)?;
        }
        let updated = current.apply(patch, call.now);
        let kind = if current.is_active && !updated.is_active {
            keyhub::domain::events::EventKind::ApiKeyRevoked
        } else {
            keyhub::domain::events::EventKind::ApiKeyUpdated
        };
        let events = call.event(&call.principal.account_id, kind, view(call, &updated));
        match call
            .deps
            .store
            .update_key(&current, patch, call.now, &events)
            .await
        {
            Ok(()) => {
                call.publish(&events).await;
                break (current, updated);
            }
            Err(StoreError::Conflict(_)) if tries == 0 => tries += 1,
            Err(e) => return Err(not_found_as_key(e)),
        }
    };
    call.deps.auth.forget(id);
    tracing::info!(key_id = %record.id, "key updated");
    Ok((before, record))
}

pub async fn delete(call: &Call<'_>) -> Reply {
    let id = KeyId::parse(call.param("id")).ok_or_else(not_found)?;
    delete_key(call, &authority(call), &id).await?;
    call.flush_authorizer_cache().await;
    Ok((200, json!({ "message": "API key deleted successfully" })))
}

/// Deletes key `id` of the caller's account. The delete holds only if the
/// key is as read (its scopes allowed it); after a concurrent change it is
/// decided again on the key as it now is, as an update is. One retry, then
/// 409. Sends the event and forgets the key, as `change_key` does.
async fn delete_key(call: &Call<'_>, rules: &Authority<'_>, id: &KeyId) -> Result<(), ApiError> {
    let mut tries = 0;
    loop {
        let doomed = owned(call, id).await?;
        rules.may_act_on(&doomed)?;
        let events = call.event(
            &call.principal.account_id,
            keyhub::domain::events::EventKind::ApiKeyDeleted,
            view(call, &doomed),
        );
        match call.deps.store.delete_key(&doomed, &events).await {
            Ok(()) => {
                call.publish(&events).await;
                break;
            }
            Err(StoreError::Conflict(_)) if tries == 0 => tries += 1,
            Err(e) => return Err(not_found_as_key(e)),
        }
    }
    call.deps.auth.forget(id);
    tracing::info!(key_id = %id, "key deleted");
    Ok(())
}

/// Keys changed at once by one bulk request: a few at a time, since each
/// delete also writes the account's key count, an item that concurrent
/// transactions contend for (the store retries that contention).
const BULK_CONCURRENCY: usize = 4;

/// `POST /api/v1/api-keys/bulk`: deactivate or delete up to 100 keys. Each
/// key is changed on its own, exactly as the single PATCH or DELETE would
/// change it (its own conditional write, event and retry), and has its own
/// result, in the order of `ids`; a key of another account is not found,
/// word for word as a missing one. 200 whatever the results: the request
/// itself was carried out, and each key's outcome is in its result.
pub async fn bulk(call: &Call<'_>) -> Reply {
    use futures::StreamExt;
    let body: BulkKeys = call.body()?;
    let rules = authority(call);
    let action = body.action;
    let results: Vec<(String, Result<(), ApiError>)> = futures::stream::iter(body.ids.0)
        .map(|id| {
            let rules = &rules;
            async move {
                let outcome = bulk_one(call, rules, action, &id).await;
                (id, outcome)
            }
        })
        .buffered(BULK_CONCURRENCY)
        .collect()
        .await;
    let succeeded = results.iter().filter(|(_, r)| r.is_ok()).count();
    // Every change a bulk request makes (deactivating, deleting) is one a
    // cached answer would contradict: one flush for them all.
    if succeeded > 0 {
        call.flush_authorizer_cache().await;
    }
    let failed = results.len() - succeeded;
    tracing::info!(
        action = action.as_str(),
        succeeded,
        failed,
        "bulk key change"
    );
    let results: Vec<Value> = results
        .into_iter()
        .map(|(id, outcome)| match outcome {
            Ok(()) => json!({"id": id, "status": 200}),
            Err(e) => {
                if let Some(cause) = e.cause() {
                    tracing::error!(key_id = %id, cause, "bulk key change failed");
                }
                json!({"id": id, "status": e.status(), "error": e.object()})
            }
        })
        .collect();
    Ok((
        200,
        json!({
            "action": action.as_str(),
            "results": results,
            "succeeded": succeeded,
            "failed": failed,
        }),
    ))
}

async fn bulk_one(
    call: &Call<'_>,
    rules: &Authority<'_>,
    action: BulkAction,
    id: &str,
) -> Result<(), ApiError> {
    // Of a key id's shape but no key's (its digits overflow): not found,
    // without a read, as in a single request's path.
    let id = KeyId::parse(id).ok_or_else(not_found)?;
    match action {
        BulkAction::Deactivate => {
            let patch = KeyPatch {
                is_active: Some(false),
                ..KeyPatch::default()
            };
            change_key(call, rules, &id, &patch, still_active)
                .await
                .map(|_| ())
        }
        BulkAction::Delete => delete_key(call, rules, &id).await,
    }
}

/// A bulk deactivation says which keys it switched off: one already off is
/// refused (409), not counted as done.
fn still_active(key: &KeyRecord) -> Result<(), ApiError> {
    if key.is_active {
        Ok(())
    } else {
        Err(ApiError::Conflict("the API key is already inactive".into()))
    }
}

pub async fn rotate(call: &Call<'_>) -> Reply {
    let body: RotateKey = call.body()?;
    let grace = body.grace_period_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    if grace > MAX_GRACE_SECONDS {
        return Err(ApiError::invalid(
            "grace_period_seconds",
            "invalid_value",
            format!("grace_period_seconds must be from 0 to {MAX_GRACE_SECONDS}"),
        ));
    }
    let old = owned_key(call).await?;
    if let Some(next) = &old.rotated_to {
        return Err(ApiError::Conflict(format!(
            "this key was already rotated; rotate its successor {next} instead"
        )));
    }
    match old.state(call.now) {
        KeyState::Usable => {}
        KeyState::Expired => {
            return Err(ApiError::Conflict(
                "an expired key cannot be rotated".into(),
            ));
        }
        KeyState::Inactive => {
            return Err(ApiError::Conflict(
                "an inactive key cannot be rotated".into(),
            ));
        }
    }
    // The new key's plaintext goes to the caller, so the caller must hold
    // every scope it carries.
    authority(call).may_act_on(&old)?;
    let deps = call.deps;
    let (key, new) = call.mint(old.settings())?;
    let grace_end = call.now + chrono::Duration::seconds(grace as i64);
    let old_expires_at = old.expires_at.map_or(grace_end, |t| t.min(grace_end));
    let previous = json!({
        "id": old.id,
        "expires_at": time::format(&old_expires_at),
    });
    let events = call.event(
        &call.principal.account_id,
        keyhub::domain::events::EventKind::ApiKeyRotated,
        json!({"key": view(call, &new), "previous_key": previous}),
    );
    deps.store
        .rotate_key(&old, &new, old_expires_at, call.now, &events)
        .await?;
    // With no grace the old key stops now, here as everywhere the cache
    // allows; with a grace this environment rereads its new expiry.
    if let Some(old_id) = old.key_id() {
        deps.auth.forget(&old_id);
    }
    call.publish(&events).await;
    // API Gateway's cached answers go too: with no grace the old key ends
    // now, and an answer cached before the rotation must not outlive it.
    // When a grace ends, the sweeper flushes as it marks the key expired.
    call.flush_authorizer_cache().await;
    tracing::info!(old = %old.id, new = %new.id, grace, "key rotated");
    let mut body = new.view(&deps.config.rate_limits, Some(&key));
    body["previous_key"] = previous;
    Ok((201, body))
}
