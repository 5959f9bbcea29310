//! Events: what happened to a key or an endpoint, as webhooks deliver it.
//! `{"id": "evt_…", "event": "api_key.created", "timestamp": "…",
//! "account_id": "…", "data": {…}}`, never with key material.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::base62;
use crate::time::{self, Timestamp};

/// One list: the enum, its wire names and `EVENT_TYPES` come from it.
macro_rules! event_kinds {
    ($($(#[$doc:meta])* $kind:ident = $name:literal,)*) => {
        /// What happened. On the wire (webhooks, the outbox, the queue) its
        /// name, `api_key.created`; a name keyhub does not send does not
        /// parse.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum EventKind {
            $($(#[$doc])* #[serde(rename = $name)] $kind,)*
        }

        impl EventKind {
            pub const ALL: &'static [EventKind] = &[$(EventKind::$kind),*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventKind::$kind => $name,)*
                }
            }
        }

        /// Every event type's name, as endpoints subscribe to them.
        pub const EVENT_TYPES: &[&str] = &[$($name),*];
    };
}

event_kinds! {
    ApiKeyCreated = "api_key.created",
    ApiKeyUpdated = "api_key.updated",
    ApiKeyRotated = "api_key.rotated",
    /// Deactivated (`is_active` turned false).
    ApiKeyRevoked = "api_key.revoked",
    ApiKeyDeleted = "api_key.deleted",
    ApiKeyExpired = "api_key.expired",
    ApiKeyRotationDue = "api_key.rotation_due",
    RateLimitExceeded = "rate_limit.exceeded",
    /// A key's hourly volume far above its trailing average (once per key
    /// and hour).
    UsageAnomaly = "usage.anomaly",
    WebhookTest = "webhook.test",
    WebhookEndpointDisabled = "webhook.endpoint_disabled",
    AccountPlanChanged = "account.plan_changed",
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub event: EventKind,
    #[serde(with = "time::rfc3339")]
    pub timestamp: Timestamp,
    pub account_id: String,
    pub data: Value,
}

/// An id that sorts by time: 8 base62 digits of milliseconds, then 14
/// random ones.
pub fn time_ordered_id(prefix: &str, at: &Timestamp) -> String {
    let millis = at.timestamp_millis().max(0) as u128;
    let rand = base62::random(14).unwrap_or_else(|_| "0".repeat(14));
    format!("{prefix}_{}{rand}", base62::encode_fixed(millis, 8))
}

impl Event {
    pub fn new(event: EventKind, account_id: &str, data: Value, now: Timestamp) -> Self {
        Event {
            id: time_ordered_id("evt", &now),
            event,
            timestamp: now,
            account_id: account_id.to_string(),
            data,
        }
    }

    pub fn body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time() {
        let a = time_ordered_id("evt", &time::parse("2026-01-01T00:00:00Z").unwrap());
        let b = time_ordered_id("evt", &time::parse("2026-01-01T00:00:00.001Z").unwrap());
        assert!(a < b, "{a} {b}");
        assert_eq!(a.len(), 4 + 8 + 14);
    }

    #[test]
    fn events_serialise_in_the_contract_shape() {
        let e = Event::new(
            EventKind::ApiKeyCreated,
            "acct_1",
            serde_json::json!({"id": "key_1"}),
            time::now(),
        );
        let v: Value = serde_json::from_str(&e.body()).unwrap();
        assert!(v["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(v["event"], "api_key.created");
        assert_eq!(v["account_id"], "acct_1");
        assert_eq!(v["data"]["id"], "key_1");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn the_list_of_types_is_the_enums_names() {
        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names, EVENT_TYPES);
        for k in EventKind::ALL {
            let wire = serde_json::to_value(k).unwrap();
            assert_eq!(wire, k.as_str());
            assert_eq!(serde_json::from_value::<EventKind>(wire).unwrap(), *k);
        }
        assert!(serde_json::from_str::<EventKind>(r#""api_key.stolen""#).is_err());
    }
}
