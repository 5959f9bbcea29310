//! Checking a presented key: format and checksum first (no I/O), then one
//! GetItem by the id derived from its digest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use http::HeaderMap;
use serde_json::Value;

use crate::apikey::{ApiKey, KeyPrefix};
use crate::cache::{CacheSettings, Cached, KeyCache};
use crate::error::ApiError;
use crate::key::{KeyRecord, KeyState};
use crate::limits::{Limits, Plan, RateLimitPolicy};
use crate::pepper::{KeyId, Pepper};
use crate::scope::Scopes;
use crate::store::Store;
use crate::time::Timestamp;

/// Who is calling: the checked key and what it may do.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub key_id: String,
    pub account_id: String,
    pub scopes: Scopes,
    pub plan: Plan,
    /// The key's own limits, its overrides over the deployment defaults.
    pub key_limits: Limits,
    /// The limits of the account's plan, shared by all its keys.
    pub account_limits: Limits,
}

impl Principal {
    pub fn from_record(record: &KeyRecord, policy: &RateLimitPolicy) -> Self {
        Principal {
            key_id: record.id.clone(),
            account_id: record.account_id.clone(),
            scopes: record.scopes.clone(),
            plan: record.plan,
            key_limits: record.rate_limits.or(&policy.key_default),
            account_limits: policy.plan(record.plan),
        }
    }

    /// The authorizer's context for API Gateway: flat string values, read
    /// back by `from_context` in the function behind the gateway.
    pub fn to_context(&self) -> HashMap<String, Value> {
        HashMap::from([
            ("key_id".to_string(), Value::from(self.key_id.as_str())),
            (
                "account_id".to_string(),
                Value::from(self.account_id.as_str()),
            ),
            ("scopes".to_string(), Value::from(self.scopes.joined())),
            ("plan".to_string(), Value::from(self.plan.as_str())),
            (
                "key_limits".to_string(),
                Value::from(limits_text(&self.key_limits)),
            ),
            (
                "account_limits".to_string(),
                Value::from(limits_text(&self.account_limits)),
            ),
        ])
    }

    /// The principal an authorizer put in the request context, if any.
    pub fn from_context(ctx: &HashMap<String, Value>) -> Option<Self> {
        let get = |k: &str| ctx.get(k).and_then(Value::as_str);
        Some(Principal {
            key_id: get("key_id")?.to_string(),
            account_id: get("account_id")?.to_string(),
            scopes: Scopes::parse_all(get("scopes")?.split_whitespace()).ok()?,
            plan: Plan::parse(get("plan")?)?,
            key_limits: parse_limits(get("key_limits")?)?,
            account_limits: parse_limits(get("account_limits")?)?,
        })
    }

    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.scopes.allows(scope) {
            Ok(())
        } else {
            Err(ApiError::InsufficientScope {
                required: scope.to_string(),
            })
        }
    }
}

/// `minute/hour/day`, `-` for no limit: `100/1000/-`.
fn limits_text(l: &Limits) -> String {
    let f = |v: Option<u64>| v.map_or("-".to_string(), |n| n.to_string());
    format!("{}/{}/{}", f(l.per_minute), f(l.per_hour), f(l.per_day))
}

fn parse_limits(s: &str) -> Option<Limits> {
    let mut parts = s.split('/').map(|p| match p {
        "-" => Some(None),
        n => n.parse().ok().map(Some),
    });
    let l = Limits {
        per_minute: parts.next()??,
        per_hour: parts.next()??,
        per_day: parts.next()??,
    };
    parts.next().is_none().then_some(l)
}

/// The key a request presents: `Authorization: Bearer <key>` first, then
/// `X-API-Key`. Header names are case-insensitive (`HeaderMap` sees to that);
/// the `Bearer` scheme is too, as RFC 9110 says.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    bearer
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|k| !k.is_empty())
}

#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    pepper: Pepper,
    prefix: KeyPrefix,
    cache: Arc<KeyCache>,
}

impl Authenticator {
    pub fn new(store: Store, pepper: Pepper, prefix: KeyPrefix, cache: CacheSettings) -> Self {
        Authenticator {
            store,
            pepper,
            prefix,
            cache: Arc::new(KeyCache::new(cache)),
        }
    }

    pub fn pepper(&self) -> &Pepper {
        &self.pepper
    }

    /// Drops a key from this environment's cache, after changing it here.
    pub fn forget(&self, id: &KeyId) {
        self.cache.forget(id);
    }

    /// Checks a presented key and returns its record if it may be used now:
    /// no I/O for a malformed key or a cached one, else one GetItem.
    pub async fn authenticate(
        &self,
        presented: Option<&str>,
        now: Timestamp,
    ) -> Result<Arc<KeyRecord>, ApiError> {
        let raw = presented.ok_or(ApiError::MissingApiKey)?;
        let key = ApiKey::parse(raw, &self.prefix).map_err(|reason| {
            tracing::debug!(%reason, "malformed key");
            ApiError::InvalidApiKey
        })?;
        let digest = self.pepper.digest(&key);
        let record = match self.cache.get(&digest, Instant::now()) {
            Cached::Known(r) => r,
            Cached::Unknown => return Err(ApiError::InvalidApiKey),
            Cached::Miss => {
                let fetched = Instant::now();
                let record = self
                    .fetch(&digest.key_id())
                    .await?
                    .filter(|r| digest.matches_hex(&r.digest))
                    .map(Arc::new);
                self.cache.put(digest, record.clone(), fetched);
                record.ok_or(ApiError::InvalidApiKey)?
            }
        };
        match record.state(now) {
            KeyState::Usable => Ok(record),
            KeyState::Expired => Err(ApiError::ApiKeyExpired),
            KeyState::Inactive => Err(ApiError::ApiKeyInactive),
        }
    }

    #[tracing::instrument(skip(self))]
    async fn fetch(&self, id: &KeyId) -> Result<Option<KeyRecord>, ApiError> {
        Ok(self.store.get_key(id.as_str()).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn bearer_and_x_api_key_in_any_case() {
        assert_eq!(
            presented_key(&headers(&[("Authorization", "Bearer abc")])),
            Some("abc")
        );
        assert_eq!(
            presented_key(&headers(&[("authorization", "bearer  abc ")])),
            Some("abc")
        );
        assert_eq!(
            presented_key(&headers(&[("X-API-KEY", "abc")])),
            Some("abc")
        );
        assert_eq!(
            presented_key(&headers(&[("x-api-key", "abc")])),
            Some("abc")
        );
    }

    #[test]
    fn principals_survive_the_authorizer_context() {
        let p = Principal {
            key_id: "key_1".into(),
            account_id: "acct_1".into(),
            scopes: Scopes::parse_all(["keys:read", "*"]).unwrap(),
            plan: Plan::Enterprise,
            key_limits: Limits::new(1, 2, 3),
            account_limits: Limits {
                per_minute: Some(10),
                per_hour: None,
                per_day: None,
            },
        };
        assert_eq!(Principal::from_context(&p.to_context()), Some(p));
        assert_eq!(Principal::from_context(&HashMap::new()), None);
        assert_eq!(parse_limits("1/2"), None);
        assert_eq!(parse_limits("1/2/3/4"), None);
        assert_eq!(parse_limits("x/2/3"), None);
    }

    #[test]
    fn other_schemes_and_empty_values_count_as_missing() {
        assert_eq!(
            presented_key(&headers(&[("Authorization", "Basic abc")])),
            None
        );
        assert_eq!(
            presented_key(&headers(&[("Authorization", "Bearer ")])),
            None
        );
        assert_eq!(presented_key(&headers(&[("X-API-Key", "")])), None);
        assert_eq!(presented_key(&headers(&[])), None);
        assert_eq!(
            presented_key(&headers(&[
                ("Authorization", "Basic x"),
                ("X-API-Key", "k")
            ])),
            Some("k")
        );
    }
}
