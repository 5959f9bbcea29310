//! A stored API key (never its plaintext) and the key object clients see.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::apikey::{ApiKey, Environment, KeyPrefix};
use crate::limits::{Limits, Plan, RateLimitPolicy};
use crate::pepper::{KeyDigest, KeyId, Pepper};
use crate::scope::Scopes;
use crate::time::{self, Timestamp};

/// A partial update. `None` leaves a field alone; for the optional fields
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub is_active: Option<bool>,
    pub scopes: Option<Scopes>,
    pub rate_limits: Option<Limits>,
    pub expires_at: Option<Option<Timestamp>>,
    pub metadata: Option<Map<String, Value>>,
}

/// One DynamoDB item per key, keyed by `id`. `plan` is copied from the account
/// so that checking a key needs that one item and nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub account_id: String,
    pub digest: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub prefix: String,
    pub last4: String,
    pub scopes: Scopes,
    pub environment: Environment,
    pub is_active: bool,
    pub plan: Plan,
    #[serde(with = "time::rfc3339")]
    pub created_at: Timestamp,
    #[serde(with = "time::rfc3339")]
    pub updated_at: Timestamp,
    #[serde(
        default,
        with = "time::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<Timestamp>,
    #[serde(
        default,
        with = "time::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_used: Option<Timestamp>,
    #[serde(default)]
    pub usage_count: u64,
    #[serde(default)]
    pub rate_limits: Limits,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Set on the old key when it is rotated: the id of its successor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotated_to: Option<String>,
    /// `pending` while the sweeper still owes an `api_key.expired` event:
    /// the partition key of the sparse `expiring` index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry_check: Option<String>,
    /// `pending` while the sweeper still owes an `api_key.rotation_due`
    /// event: the partition key of the sparse `aging` index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_check: Option<String>,
    /// The version of the pepper that made `digest` (keys written before
    /// versions were recorded were all made by the first).
    #[serde(default = "first_pepper_version")]
    pub pepper_version: u32,
}

fn first_pepper_version() -> u32 {
    crate::pepper::FIRST_PEPPER_VERSION
}

/// How many keys an account may hold unless configured otherwise
/// (`KEYHUB_MAX_KEYS_PER_ACCOUNT`): listing reads an account's keys whole,
/// and a runaway script should meet a clear 409, not a slow dashboard.
pub const DEFAULT_MAX_KEYS_PER_ACCOUNT: u32 = 1_000;

/// The value of `expiry_check` and `rotation_check` while an event is owed.
pub const PENDING: &str = "pending";

/// The settings a new key is made with.
#[derive(Debug, Clone, PartialEq)]
pub struct NewKey {
    pub account_id: String,
    pub plan: Plan,
    pub name: String,
    pub description: Option<String>,
    pub scopes: Scopes,
    pub environment: Environment,
    pub expires_at: Option<Timestamp>,
    pub rate_limits: Limits,
    pub metadata: Map<String, Value>,
}

/// Whether a key may be used right now, and if not, why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Usable,
    Inactive,
    Expired,
}

impl KeyRecord {
    pub fn new(key: &ApiKey, digest: &KeyDigest, settings: NewKey, now: Timestamp) -> Self {
        KeyRecord {
            id: digest.key_id().as_str().to_string(),
            account_id: settings.account_id,
            digest: digest.to_hex(),
            name: settings.name,
            description: settings.description,
            prefix: key.display_prefix().to_string(),
            last4: key.last4().to_string(),
            scopes: settings.scopes,
            environment: settings.environment,
            is_active: true,
            plan: settings.plan,
            created_at: now,
            updated_at: now,
            expires_at: settings.expires_at,
            last_used: None,
            usage_count: 0,
            rate_limits: settings.rate_limits,
            metadata: settings.metadata,
            rotated_to: None,
            expiry_check: settings.expires_at.map(|_| PENDING.to_string()),
            rotation_check: Some(PENDING.to_string()),
            pepper_version: crate::pepper::FIRST_PEPPER_VERSION,
        }
    }

    /// The same settings, for the key that replaces this one on rotation.
    pub fn settings(&self) -> NewKey {
        NewKey {
            account_id: self.account_id.clone(),
            plan: self.plan,
            name: self.name.clone(),
            description: self.description.clone(),
            scopes: self.scopes.clone(),
            environment: self.environment,
            expires_at: self.expires_at,
            rate_limits: self.rate_limits,
            metadata: self.metadata.clone(),
        }
    }

    /// The record after `patch`, as `Store::update_key` will write it.
    pub fn apply(&self, patch: &KeyPatch, now: Timestamp) -> KeyRecord {
        let mut k = self.clone();
        if let Some(v) = &patch.name {
            k.name = v.clone();
        }
        if let Some(v) = &patch.description {
            k.description = v.clone();
        }
        if let Some(v) = patch.is_active {
            k.is_active = v;
        }
        if let Some(v) = &patch.scopes {
            k.scopes = v.clone();
        }
        if let Some(v) = &patch.rate_limits {
            k.rate_limits = *v;
        }
        if let Some(v) = &patch.expires_at {
            k.expires_at = *v;
            k.expiry_check = v.map(|_| PENDING.to_string());
        }
        if let Some(v) = &patch.metadata {
            k.metadata = v.clone();
        }
        k.updated_at = now;
        k
    }

    pub fn key_id(&self) -> Option<KeyId> {
        KeyId::parse(&self.id)
    }

    /// Expiry wins over deactivation: an expired key cannot be re-activated
    /// into use, so "expired" is the more useful thing to tell the caller.
    pub fn state(&self, now: Timestamp) -> KeyState {
        if self.expires_at.is_some_and(|t| t <= now) {
            KeyState::Expired
        } else if !self.is_active {
            KeyState::Inactive
        } else {
            KeyState::Usable
        }
    }

    /// The key object of the contract; `key` only right after create or rotate.
    pub fn view(&self, policy: &RateLimitPolicy, key: Option<&ApiKey>) -> Value {
        let limits = self.rate_limits.or(&policy.key_default);
        let mut v = serde_json::json!({
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "prefix": self.prefix,
            "last4": self.last4,
            "scopes": self.scopes,
            "environment": self.environment,
            "is_active": self.is_active,
            "created_at": time::format(&self.created_at),
            "updated_at": time::format(&self.updated_at),
            "expires_at": self.expires_at.as_ref().map(time::format),
            "last_used": self.last_used.as_ref().map(time::format),
            "usage_count": self.usage_count,
            "rate_limits": limits,
            "metadata": self.metadata,
        });
        if let Some(rotated_to) = &self.rotated_to {
            v["rotated_to"] = Value::from(rotated_to.as_str());
        }
        if let Some(key) = key {
            v["key"] = Value::from(key.expose());
        }
        v
    }
}

/// Makes a new key: a fresh secret, and the record that stores its digest.
pub fn mint(
    pepper: &Pepper,
    prefix: &KeyPrefix,
    settings: NewKey,
    now: Timestamp,
) -> Result<(ApiKey, KeyRecord), getrandom::Error> {
    let key = ApiKey::generate(prefix, settings.environment)?;
    let digest = pepper.digest(&key);
    let mut record = KeyRecord::new(&key, &digest, settings, now);
    record.pepper_version = pepper.version();
    Ok((key, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(now: Timestamp) -> (ApiKey, KeyRecord) {
        let key = ApiKey::generate(&KeyPrefix::default(), Environment::Live).unwrap();
        let digest = Pepper::new(&[3u8; 32]).unwrap().digest(&key);
        let settings = NewKey {
            account_id: "acct_1".into(),
            plan: Plan::Free,
            name: "ci".into(),
            description: None,
            scopes: Scopes::parse_all(["keys:read"]).unwrap(),
            environment: Environment::Live,
            expires_at: None,
            rate_limits: Limits::default(),
            metadata: Map::new(),
        };
        let r = KeyRecord::new(&key, &digest, settings, now);
        (key, r)
    }

    #[test]
    fn view_shows_display_fields_and_never_the_digest() {
        let now = time::now();
        let (key, r) = record(now);
        let v = r.view(&RateLimitPolicy::default(), None);
        assert_eq!(v["prefix"], key.display_prefix());
        assert_eq!(v["last4"], key.last4());
        assert_eq!(v["rate_limits"]["per_minute"], 100);
        assert!(v.get("key").is_none());
        let text = v.to_string();
        assert!(!text.contains(&r.digest));
        assert!(!text.contains(key.expose()));
        let with_key = r.view(&RateLimitPolicy::default(), Some(&key));
        assert_eq!(with_key["key"], key.expose());
    }

    #[test]
    fn state_follows_expiry_then_activity() {
        let now = time::now();
        let (_, mut r) = record(now);
        assert_eq!(r.state(now), KeyState::Usable);
        r.is_active = false;
        assert_eq!(r.state(now), KeyState::Inactive);
        r.expires_at = Some(now);
        assert_eq!(r.state(now), KeyState::Expired);
        r.is_active = true;
        r.expires_at = Some(now + chrono::Duration::seconds(1));
        assert_eq!(r.state(now), KeyState::Usable);
    }

    #[test]
    fn a_patch_changes_only_its_fields_and_owes_an_expiry_event() {
        let now = time::now();
        let (_, r) = record(now);
        assert_eq!(r.rotation_check.as_deref(), Some(PENDING));
        assert_eq!(r.expiry_check, None);
        let later = now + chrono::Duration::seconds(5);
        let patch = KeyPatch {
            name: Some("renamed".into()),
            expires_at: Some(Some(later)),
            ..KeyPatch::default()
        };
        let p = r.apply(&patch, later);
        assert_eq!(p.name, "renamed");
        assert_eq!(p.expires_at, Some(later));
        assert_eq!(p.expiry_check.as_deref(), Some(PENDING));
        assert_eq!(p.scopes, r.scopes);
        assert_eq!(p.updated_at, later);
        let cleared = p.apply(
            &KeyPatch {
                expires_at: Some(None),
                ..KeyPatch::default()
            },
            later,
        );
        assert_eq!((cleared.expires_at, cleared.expiry_check), (None, None));
    }
}
