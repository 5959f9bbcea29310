//! Events: what happened to a key or an endpoint, as webhooks deliver it.
//! `{"id": "evt_…", "event": "api_key.created", "timestamp": "…",
//! "account_id": "…", "data": {…}}`, never with key material.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::base62;
use crate::time::{self, Timestamp};

pub const EVENT_TYPES: &[&str] = &[
    "api_key.created",
    "api_key.updated",
    "api_key.rotated",
    "api_key.revoked",
    "api_key.deleted",
    "api_key.expired",
    "api_key.rotation_due",
    "rate_limit.exceeded",
    "webhook.test",
    "webhook.endpoint_disabled",
    "account.plan_changed",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub event: String,
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
    pub fn new(event: &str, account_id: &str, data: Value, now: Timestamp) -> Self {
        Event {
            id: time_ordered_id("evt", &now),
            event: event.to_string(),
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
            "api_key.created",
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
}
