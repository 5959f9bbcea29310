//! The sweeper, run on a schedule: it sends `api_key.expired` once for each
//! key past its expiry, `api_key.rotation_due` once for each key older than
//! the rotation period, and relays events that stayed in the outbox because
//! their send failed. Each key is found through a sparse index that holds
//! only the keys still owing an event, so a sweep reads only work to do.

use std::time::Duration;

use keyhub::aws::eventbus::EventBus;
use keyhub::aws::store::{Store, StoreError};
use keyhub::domain::events::Event;
use keyhub::domain::key::KeyRecord;
use keyhub::domain::limits::RateLimitPolicy;
use keyhub::domain::time::Timestamp;
use serde::Serialize;

pub struct Deps {
    pub store: Store,
    pub bus: EventBus,
    pub policy: RateLimitPolicy,
    pub rotation_period: Duration,
    /// Keys handled per kind per run, so a run fits the function's timeout.
    pub batch: i32,
    /// Flushes API Gateway's authorizer cache when keys expired (a rotated
    /// key's grace ended), so no cached answer keeps them working.
    pub flush: Option<keyhub::aws::flush::CacheFlush>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub expired: usize,
    pub rotation_due: usize,
    pub relayed: usize,
}

async fn settle(
    deps: &Deps,
    keys: Vec<KeyRecord>,
    flag: &str,
    kind: keyhub::domain::events::EventKind,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let mut sent = 0;
    for key in keys {
        let event = Event::new(kind, &key.account_id, key.view(&deps.policy, None), now);
        if deps.store.settle_key_event(&key, flag, &event).await? {
            deps.bus.publish(std::slice::from_ref(&event)).await;
            sent += 1;
        }
    }
    Ok(sent)
}

#[tracing::instrument(skip_all)]
pub async fn sweep(deps: &Deps, now: Timestamp) -> Result<Report, StoreError> {
    let expired = deps.store.keys_expired(now, deps.batch).await?;
    let expired = settle(
        deps,
        expired,
        "expiry_check",
        keyhub::domain::events::EventKind::ApiKeyExpired,
        now,
    )
    .await;
    // A store failure partway has settled some keys already, and the next
    // sweep will not find them again (their flag is gone): flush for them
    // before giving up, or their cached Allow outlives the expiry.
    if !matches!(expired, Ok(0))
        && let Some(flush) = &deps.flush
    {
        flush.flush().await;
    }
    let expired = expired?;
    let before = now - chrono::Duration::from_std(deps.rotation_period).unwrap_or_default();
    // A rotated key is not due: rotation removed its flag.
    let due = deps.store.keys_due_for_rotation(before, deps.batch).await?;
    let rotation_due = settle(
        deps,
        due,
        "rotation_check",
        keyhub::domain::events::EventKind::ApiKeyRotationDue,
        now,
    )
    .await?;
    // Events older than a minute are not in flight: their send failed.
    let relayed = deps
        .bus
        .relay(now - chrono::Duration::seconds(60), deps.batch)
        .await?;
    let report = Report {
        expired,
        rotation_due,
        relayed,
    };
    tracing::info!(?report, "sweep");
    Ok(report)
}
