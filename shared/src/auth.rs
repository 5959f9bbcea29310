//! Checking a presented key: format and checksum first (no I/O), then one
//! GetItem by the id derived from its digest.

use http::HeaderMap;

use crate::apikey::{ApiKey, KeyPrefix};
use crate::error::ApiError;
use crate::key::{KeyRecord, KeyState};
use crate::limits::{Limits, Plan, RateLimitPolicy};
use crate::pepper::Pepper;
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
}

impl Authenticator {
    pub fn new(store: Store, pepper: Pepper, prefix: KeyPrefix) -> Self {
        Authenticator {
            store,
            pepper,
            prefix,
        }
    }

    pub fn pepper(&self) -> &Pepper {
        &self.pepper
    }

    /// Checks a presented key and returns its record if it may be used now.
    #[tracing::instrument(skip_all)]
    pub async fn authenticate(
        &self,
        presented: Option<&str>,
        now: Timestamp,
    ) -> Result<KeyRecord, ApiError> {
        let raw = presented.ok_or(ApiError::MissingApiKey)?;
        let key = ApiKey::parse(raw, &self.prefix).map_err(|reason| {
            tracing::debug!(%reason, "malformed key");
            ApiError::InvalidApiKey
        })?;
        let digest = self.pepper.digest(&key);
        let record = self
            .store
            .get_key(digest.key_id().as_str())
            .await?
            .filter(|r| digest.matches_hex(&r.digest))
            .ok_or(ApiError::InvalidApiKey)?;
        match record.state(now) {
            KeyState::Usable => Ok(record),
            KeyState::Expired => Err(ApiError::ApiKeyExpired),
            KeyState::Inactive => Err(ApiError::ApiKeyInactive),
        }
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
