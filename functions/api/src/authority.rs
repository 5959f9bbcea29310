//! What a key may do to keys. `keys:write` alone must not be a way up: a key
//! hands out only scopes it holds, touches only keys whose scopes it covers,
//! and gives no key (itself included) more time or quota than it has, unless
//! it holds `keys:admin`. A rotated or expired key stays retired.
//!
//! Pure rules over records; the store's conditions re-check the state parts
//! (rotated, expired) at write time.

use keyhub::ApiError;
use keyhub::domain::key::KeyRecord;
use keyhub::domain::limits::{Limits, Window};
use keyhub::domain::scope::Scopes;
use keyhub::domain::time::Timestamp;
use keyhub::http::auth::Principal;

/// The scope that lifts the bounds on expiry and limits.
pub const ADMIN: &str = "keys:admin";

fn needs_admin() -> ApiError {
    ApiError::InsufficientScope {
        required: ADMIN.to_string(),
    }
}

/// The caller as the rules see it: its key, its scopes, the key defaults.
pub struct Authority<'a> {
    pub principal: &'a Principal,
    pub caller: &'a KeyRecord,
    /// The deployment's default key limits, which a key without overrides has.
    pub key_default: &'a Limits,
}

impl Authority<'_> {
    fn is_admin(&self) -> bool {
        self.principal.scopes.allows(ADMIN)
    }

    /// A key may only hand out scopes it holds itself.
    pub fn may_grant(&self, scopes: &Scopes) -> Result<(), ApiError> {
        match self.principal.scopes.first_not_covered(scopes) {
            Some(s) => Err(ApiError::InsufficientScope {
                required: s.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Changing, rotating or deleting a key needs every scope it holds, so a
    /// narrow key cannot switch off or re-limit a broader one.
    pub fn may_act_on(&self, target: &KeyRecord) -> Result<(), ApiError> {
        self.may_grant(&target.scopes)
    }

    /// The expiry of a new key: at most the caller's own. Asking for none
    /// gives the caller's; asking for later needs `keys:admin`.
    pub fn new_expiry(&self, requested: Option<Timestamp>) -> Result<Option<Timestamp>, ApiError> {
        match (self.caller.expires_at, requested) {
            (_, r) if self.is_admin() => Ok(r),
            (Some(own), None) => Ok(Some(own)),
            (Some(own), Some(r)) if r > own => Err(needs_admin()),
            (_, r) => Ok(r),
        }
    }

    /// The overrides of a new key: no window above the caller's own. A
    /// window left to the defaults takes the caller's limit where the
    /// default is higher; asking for more needs `keys:admin`.
    pub fn new_limits(&self, requested: Limits) -> Result<Limits, ApiError> {
        if self.is_admin() {
            return Ok(requested);
        }
        let own = self.caller.rate_limits.or(self.key_default);
        let mut out = requested;
        for w in Window::ALL {
            let Some(cap) = own.get(w) else { continue };
            let asked = requested.get(w);
            let effective = asked.or(self.key_default.get(w));
            if effective.is_none_or(|v| v > cap) {
                if asked.is_some() {
                    return Err(needs_admin());
                }
                set(&mut out, w, Some(cap));
            }
        }
        Ok(out)
    }

    /// A new expiry for an existing key (`None`: never expires).
    pub fn change_expiry(
        &self,
        target: &KeyRecord,
        to: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(), ApiError> {
        if target.rotated_to.is_some() {
            return Err(ApiError::Conflict(
                "a rotated key expires when its grace period ends; its expiry cannot be changed"
                    .into(),
            ));
        }
        refuse_revival(target, now)?;
        if target.id == self.caller.id {
            let later = match (target.expires_at, to) {
                (Some(current), Some(t)) => t > current,
                (Some(_), None) => true,
                (None, _) => false,
            };
            if later {
                return Err(ApiError::Conflict(
                    "a key cannot extend its own expiry; use another key".into(),
                ));
            }
            return Ok(());
        }
        self.new_expiry(to).and_then(|bounded| {
            if bounded == to {
                Ok(())
            } else {
                Err(needs_admin())
            }
        })
    }

    /// Switching a key on again: not once it has expired.
    pub fn reactivate(&self, target: &KeyRecord, now: Timestamp) -> Result<(), ApiError> {
        refuse_revival(target, now)
    }

    /// New overrides for an existing key (`Limits::default()`: back to the
    /// deployment's defaults).
    pub fn change_limits(&self, target: &KeyRecord, to: Limits) -> Result<(), ApiError> {
        let next = to.or(self.key_default);
        if target.id == self.caller.id {
            if above(&next, &target.rate_limits.or(self.key_default)) {
                return Err(ApiError::Conflict(
                    "a key cannot raise its own rate limits; use another key".into(),
                ));
            }
            return Ok(());
        }
        if self.is_admin() || !above(&next, &self.caller.rate_limits.or(self.key_default)) {
            Ok(())
        } else {
            Err(needs_admin())
        }
    }
}

/// Whether `limits` go past `cap` in any window (no limit is past any).
fn above(limits: &Limits, cap: &Limits) -> bool {
    Window::ALL
        .into_iter()
        .any(|w| match (cap.get(w), limits.get(w)) {
            (Some(c), Some(n)) => n > c,
            (Some(_), None) => true,
            (None, _) => false,
        })
}

fn refuse_revival(target: &KeyRecord, now: Timestamp) -> Result<(), ApiError> {
    if target.expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::Conflict(
            "an expired key cannot be revived; create a new key".into(),
        ));
    }
    Ok(())
}

fn set(l: &mut Limits, w: Window, v: Option<u64>) {
    match w {
        Window::Minute => l.per_minute = v,
        Window::Hour => l.per_hour = v,
        Window::Day => l.per_day = v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhub::domain::apikey::{ApiKey, Environment, KeyPrefix};
    use keyhub::domain::key::NewKey;
    use keyhub::domain::limits::{Plan, RateLimitPolicy};
    use keyhub::domain::pepper::Pepper;
    use serde_json::Map;

    fn record(scopes: &[&str], expires_at: Option<Timestamp>, limits: Limits) -> KeyRecord {
        let key = ApiKey::generate(&KeyPrefix::default(), Environment::Live).unwrap();
        let digest = Pepper::new(&[7u8; 32]).unwrap().digest(&key);
        KeyRecord::new(
            &key,
            &digest,
            NewKey {
                account_id: "acct_1".into(),
                plan: Plan::Free,
                name: "k".into(),
                description: None,
                scopes: Scopes::parse_all(scopes.iter().copied()).unwrap(),
                environment: Environment::Live,
                expires_at,
                rate_limits: limits,
                metadata: Map::new(),
            },
            keyhub::domain::time::now(),
        )
    }

    fn check<T>(caller: &KeyRecord, f: impl FnOnce(&Authority<'_>) -> T) -> T {
        let policy = RateLimitPolicy::default();
        let principal = Principal::from_record(caller, &policy);
        f(&Authority {
            principal: &principal,
            caller,
            key_default: &policy.key_default,
        })
    }

    fn code<T: std::fmt::Debug>(r: Result<T, ApiError>) -> &'static str {
        r.unwrap_err().code()
    }

    #[test]
    fn a_narrow_key_cannot_touch_a_broader_one() {
        let narrow = record(&["keys:write"], None, Limits::default());
        let broad = record(&["keys:write", "webhooks:write"], None, Limits::default());
        assert_eq!(
            code(check(&narrow, |a| a.may_act_on(&broad))),
            "insufficient_scope"
        );
        assert!(check(&broad, |a| a.may_act_on(&narrow)).is_ok());
    }

    #[test]
    fn children_are_bounded_by_the_caller_unless_admin() {
        let now = keyhub::domain::time::now();
        let soon = now + chrono::Duration::hours(1);
        let later = now + chrono::Duration::hours(2);
        let caller = record(&["keys:write"], Some(soon), Limits::new(10, 100, 1000));
        assert_eq!(check(&caller, |a| a.new_expiry(None)).unwrap(), Some(soon));
        assert_eq!(
            code(check(&caller, |a| a.new_expiry(Some(later)))),
            "insufficient_scope"
        );
        let inherited = check(&caller, |a| a.new_limits(Limits::default())).unwrap();
        assert_eq!(inherited, Limits::new(10, 100, 1000));
        let asked = Limits {
            per_minute: Some(50),
            ..Limits::default()
        };
        assert_eq!(
            code(check(&caller, |a| a.new_limits(asked))),
            "insufficient_scope"
        );
        let admin = record(
            &["keys:write", "keys:admin"],
            Some(soon),
            Limits::new(10, 100, 1000),
        );
        assert_eq!(
            check(&admin, |a| a.new_expiry(Some(later))).unwrap(),
            Some(later)
        );
        assert_eq!(check(&admin, |a| a.new_limits(asked)).unwrap(), asked);
    }

    #[test]
    fn a_key_cannot_extend_itself_and_retired_keys_stay_retired() {
        let now = keyhub::domain::time::now();
        let soon = now + chrono::Duration::hours(1);
        let me = record(&["*"], Some(soon), Limits::new(10, 100, 1000));
        let later = Some(now + chrono::Duration::hours(2));
        assert_eq!(
            code(check(&me, |a| a.change_expiry(&me, later, now))),
            "conflict"
        );
        assert_eq!(
            code(check(&me, |a| a.change_expiry(&me, None, now))),
            "conflict"
        );
        assert!(
            check(&me, |a| a.change_expiry(
                &me,
                Some(now + chrono::Duration::minutes(5)),
                now
            ))
            .is_ok()
        );
        let more = Limits {
            per_minute: Some(11),
            ..Limits::default()
        };
        assert_eq!(code(check(&me, |a| a.change_limits(&me, more))), "conflict");
        let admin = record(&["*"], None, Limits::default());
        let mut rotated = record(&["keys:read"], Some(soon), Limits::default());
        rotated.rotated_to = Some("key_next".into());
        assert_eq!(
            code(check(&admin, |a| a.change_expiry(&rotated, None, now))),
            "conflict"
        );
        let expired = record(
            &["keys:read"],
            Some(now - chrono::Duration::seconds(1)),
            Limits::default(),
        );
        assert_eq!(
            code(check(&admin, |a| a.change_expiry(&expired, later, now))),
            "conflict"
        );
        assert_eq!(
            code(check(&admin, |a| a.reactivate(&expired, now))),
            "conflict"
        );
    }
}
