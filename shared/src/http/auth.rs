//! Checking a presented key: format and checksum first (no I/O), then one
//! GetItem by the id derived from its digest. The answer is a key record or
//! a `Refusal` (why not); only a failure of the check itself is an error.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use http::HeaderMap;
use serde_json::Value;

use crate::aws::store::{Store, StoreError};
use crate::cache::{CacheSettings, Cached, KeyCache};
use crate::domain::apikey::{ApiKey, Environment, KeyPrefix};
use crate::domain::key::KeyRecord;
use crate::domain::limits::{Limits, Plan, RateLimitPolicy};
use crate::domain::pepper::{KeyId, Pepper};
use crate::domain::refusal::Refusal;
use crate::domain::scope::Scopes;
use crate::domain::time::Timestamp;

/// Who is calling: the checked key and what it may do.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub key_id: String,
    pub account_id: String,
    pub scopes: Scopes,
    pub plan: Plan,
    /// The key's own limits, its overrides over the deployment defaults.
    pub key_limits: Limits,
    /// The limits of the account's plan, shared by all its keys of the
    /// key's environment.
    pub account_limits: Limits,
    /// `test` keys are counted under the account's test subject, apart
    /// from its live keys (`account::subject`).
    pub environment: Environment,
}

impl Principal {
    /// The counters a request of this caller takes: its key's and its
    /// account's (the environment's subject), what the guard spends and
    /// what `rate_limit_status` reads.
    pub fn checks(&self) -> Vec<crate::aws::ratelimit::Check> {
        crate::aws::ratelimit::checks_for(
            &self.key_id,
            &self.key_limits,
            &self.account_id,
            self.environment,
            &self.account_limits,
        )
    }

    pub fn from_record(record: &KeyRecord, policy: &RateLimitPolicy) -> Self {
        Principal {
            key_id: record.id.clone(),
            account_id: record.account_id.clone(),
            scopes: record.scopes.clone(),
            plan: record.plan,
            key_limits: record.rate_limits.or(&policy.key_default),
            account_limits: policy.account(record.plan, record.environment),
            environment: record.environment,
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
            (
                "environment".to_string(),
                Value::from(self.environment.as_str()),
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
            // A context from an authorizer before sandbox keys names none.
            environment: match get("environment") {
                None => Environment::Live,
                Some(e) => Environment::parse(e)?,
            },
        })
    }

    pub fn require(&self, scope: &str) -> Result<(), Refusal> {
        if self.scopes.allows(scope) {
            Ok(())
        } else {
            Err(Refusal::Scope {
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

/// Where a request may carry its key. API Gateway caches an authorizer's
/// answer by its identity source, so an authorizer configured with one header
/// must read the key from that header alone: reading another one would cache
/// the answer for one key under the value of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyHeader {
    /// `Authorization: Bearer` or `X-API-Key`; both only if they agree.
    #[default]
    Either,
    Authorization,
    XApiKey,
}

impl KeyHeader {
    /// The value of `KEYHUB_IDENTITY_HEADER` (the template's
    /// `AuthorizerIdentityHeader`): empty, `Authorization` or `X-API-Key`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" => Ok(KeyHeader::Either),
            "authorization" => Ok(KeyHeader::Authorization),
            "x-api-key" => Ok(KeyHeader::XApiKey),
            other => Err(format!(
                "the identity header must be Authorization or X-API-Key (or empty), not {other:?}"
            )),
        }
    }
}

/// Every distinct non-empty value a header carries, trimmed.
fn values<'a>(headers: &'a HeaderMap, name: &str, bearer: bool) -> Vec<&'a str> {
    let mut out: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let v = v.trim();
            if !bearer {
                return Some(v);
            }
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|v| !v.is_empty())
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The key a request presents, from `Authorization: Bearer <key>` or
/// `X-API-Key` as `from` allows. Header names are case-insensitive
/// (`HeaderMap` sees to that); the `Bearer` scheme is too, as RFC 9110 says.
///
/// Two different keys in one request are refused (`Malformed`): which
/// one a cache would file the answer under is exactly the ambiguity an
/// attacker wants. A Bearer token that is not shaped like a key of this
/// deployment (another system's JWT) does not hide an `X-API-Key` unless
/// `Authorization` is the configured header.
pub fn presented_key<'a>(
    headers: &'a HeaderMap,
    prefix: &KeyPrefix,
    from: KeyHeader,
) -> Result<Option<&'a str>, Refusal> {
    let bearer = values(headers, http::header::AUTHORIZATION.as_str(), true);
    let x_api_key = values(headers, "x-api-key", false);
    let ours = |k: &&str| ApiKey::parse(k, prefix).is_ok();
    let one = |v: &[&'a str]| match v {
        [] => Ok(None),
        [k] => Ok(Some(*k)),
        _ => Err(Refusal::Malformed),
    };
    let agree = |chosen: Option<&'a str>, other: &[&str]| match chosen {
        Some(k) if other.iter().any(|o| *o != k) => Err(Refusal::Malformed),
        _ => Ok(chosen),
    };
    match from {
        KeyHeader::Authorization => agree(one(&bearer)?, &x_api_key),
        KeyHeader::XApiKey => {
            let ours_in_bearer: Vec<&str> = bearer.iter().copied().filter(ours).collect();
            agree(one(&x_api_key)?, &ours_in_bearer)
        }
        KeyHeader::Either => {
            let ours_in_bearer: Vec<&str> = bearer.iter().copied().filter(ours).collect();
            match one(&x_api_key)? {
                Some(k) => agree(Some(k), &ours_in_bearer),
                None => one(&bearer),
            }
        }
    }
}

/// A key check's answer: the key's record, or why it may not be used.
pub type Checked = Result<Arc<KeyRecord>, Refusal>;

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

    /// Checks the key a request's headers present (see `presented_key`).
    pub async fn authenticate_headers(
        &self,
        headers: &HeaderMap,
        from: KeyHeader,
        now: Timestamp,
    ) -> Result<Checked, StoreError> {
        match presented_key(headers, &self.prefix, from) {
            Ok(presented) => self.authenticate(presented, now).await,
            Err(refusal) => Ok(Err(refusal)),
        }
    }

    /// Checks a presented key and returns its record if it may be used now:
    /// no I/O for a malformed key or a cached one, else one GetItem.
    pub async fn authenticate(
        &self,
        presented: Option<&str>,
        now: Timestamp,
    ) -> Result<Checked, StoreError> {
        Ok(self.identify(presented).await?.and_then(|record| {
            match Refusal::of_state(record.state(now)) {
                None => Ok(record),
                Some(refusal) => Err(refusal),
            }
        }))
    }

    /// The record of a presented key whatever its state, for callers that
    /// must decide whose key it is before saying anything about its state
    /// (verify answers another account's expired key as unknown).
    pub async fn identify(&self, presented: Option<&str>) -> Result<Checked, StoreError> {
        let Some(raw) = presented else {
            return Ok(Err(Refusal::Missing));
        };
        let key = match ApiKey::parse(raw, &self.prefix) {
            Ok(key) => key,
            Err(reason) => {
                tracing::debug!(%reason, "malformed key");
                return Ok(Err(Refusal::Malformed));
            }
        };
        let digest = self.pepper.digest(&key);
        match self.cache.get(&digest, Instant::now()) {
            Cached::Known(r) => Ok(Ok(r)),
            Cached::Unknown => Ok(Err(Refusal::Unknown)),
            Cached::Miss => {
                let fetched = Instant::now();
                let record = self
                    .fetch(&digest.key_id())
                    .await?
                    .filter(|r| digest.matches_hex(&r.digest))
                    .map(Arc::new);
                self.cache.put(digest, record.clone(), fetched);
                Ok(record.ok_or(Refusal::Unknown))
            }
        }
    }

    #[tracing::instrument(skip(self))]
    async fn fetch(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        self.store.get_key(id.as_str()).await
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

    fn key() -> String {
        ApiKey::generate(
            &KeyPrefix::default(),
            crate::domain::apikey::Environment::Live,
        )
        .unwrap()
        .expose()
        .to_string()
    }

    fn either(h: &HeaderMap) -> Result<Option<&str>, Refusal> {
        presented_key(h, &KeyPrefix::default(), KeyHeader::Either)
    }

    #[test]
    fn bearer_and_x_api_key_in_any_case() {
        assert_eq!(
            either(&headers(&[("Authorization", "Bearer abc")])),
            Ok(Some("abc"))
        );
        assert_eq!(
            either(&headers(&[("authorization", "bearer  abc ")])),
            Ok(Some("abc"))
        );
        assert_eq!(either(&headers(&[("X-API-KEY", "abc")])), Ok(Some("abc")));
        assert_eq!(either(&headers(&[("x-api-key", "abc")])), Ok(Some("abc")));
    }

    #[test]
    fn two_different_keys_are_refused_and_a_foreign_bearer_does_not_hide_x_api_key() {
        let (a, b) = (key(), key());
        let auth_a = format!("Bearer {a}");
        let both = headers(&[("Authorization", &auth_a), ("X-API-Key", &b)]);
        for from in [
            KeyHeader::Either,
            KeyHeader::Authorization,
            KeyHeader::XApiKey,
        ] {
            assert_eq!(
                presented_key(&both, &KeyPrefix::default(), from),
                Err(Refusal::Malformed),
                "{from:?}"
            );
        }
        let same = headers(&[("Authorization", &auth_a), ("X-API-Key", &a)]);
        assert_eq!(either(&same), Ok(Some(a.as_str())));
        let jwt = headers(&[
            ("Authorization", "Bearer eyJhbGciOi.x.y"),
            ("X-API-Key", &b),
        ]);
        assert_eq!(either(&jwt), Ok(Some(b.as_str())));
        assert_eq!(
            presented_key(&jwt, &KeyPrefix::default(), KeyHeader::XApiKey),
            Ok(Some(b.as_str()))
        );
        // Configured for Authorization, the JWT is what counts (and fails).
        assert_eq!(
            presented_key(&jwt, &KeyPrefix::default(), KeyHeader::Authorization),
            Err(Refusal::Malformed)
        );
        let twice = headers(&[("X-API-Key", &a), ("X-API-Key", &b)]);
        assert_eq!(either(&twice), Err(Refusal::Malformed));
    }

    #[test]
    fn a_configured_header_is_the_only_one_read() {
        let a = key();
        let only_x = headers(&[("X-API-Key", &a)]);
        assert_eq!(
            presented_key(&only_x, &KeyPrefix::default(), KeyHeader::Authorization),
            Ok(None)
        );
        let bearer = format!("Bearer {a}");
        let only_auth = headers(&[("Authorization", &bearer)]);
        assert_eq!(
            presented_key(&only_auth, &KeyPrefix::default(), KeyHeader::XApiKey),
            Ok(None)
        );
        assert_eq!(KeyHeader::parse("X-API-Key"), Ok(KeyHeader::XApiKey));
        assert_eq!(KeyHeader::parse(""), Ok(KeyHeader::Either));
        assert!(KeyHeader::parse("Cookie").is_err());
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
            environment: Environment::Test,
        };
        assert_eq!(Principal::from_context(&p.to_context()), Some(p.clone()));
        let mut old = p.to_context();
        old.remove("environment");
        assert_eq!(
            Principal::from_context(&old).map(|o| o.environment),
            Some(Environment::Live)
        );
        assert_eq!(Principal::from_context(&HashMap::new()), None);
        assert_eq!(parse_limits("1/2"), None);
        assert_eq!(parse_limits("1/2/3/4"), None);
        assert_eq!(parse_limits("x/2/3"), None);
    }

    #[test]
    fn other_schemes_and_empty_values_count_as_missing() {
        assert_eq!(
            either(&headers(&[("Authorization", "Basic abc")])),
            Ok(None)
        );
        assert_eq!(either(&headers(&[("Authorization", "Bearer ")])), Ok(None));
        assert_eq!(either(&headers(&[("X-API-Key", "")])), Ok(None));
        assert_eq!(either(&headers(&[])), Ok(None));
        assert_eq!(
            either(&headers(&[
                ("Authorization", "Basic x"),
                ("X-API-Key", "k")
            ])),
            Ok(Some("k"))
        );
    }
}
