//! Plans and rate limits: what a key and an account may do per minute, hour
//! and day. The counting itself lives in `ratelimit`.

use serde::{Deserialize, Serialize};

use crate::apikey::Environment;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    #[default]
    Free,
    Pro,
    Enterprise,
}

impl Plan {
    pub fn as_str(self) -> &'static str {
        match self {
            Plan::Free => "free",
            Plan::Pro => "pro",
            Plan::Enterprise => "enterprise",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "free" => Some(Plan::Free),
            "pro" => Some(Plan::Pro),
            "enterprise" => Some(Plan::Enterprise),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    Minute,
    Hour,
    Day,
}

impl Window {
    pub const ALL: [Window; 3] = [Window::Minute, Window::Hour, Window::Day];

    pub fn seconds(self) -> i64 {
        match self {
            Window::Minute => 60,
            Window::Hour => 3_600,
            Window::Day => 86_400,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
        }
    }
}

/// Requests allowed per window; `None` means no limit in that window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default)]
    pub per_minute: Option<u64>,
    #[serde(default)]
    pub per_hour: Option<u64>,
    #[serde(default)]
    pub per_day: Option<u64>,
}

/// The largest limit a key may be given; larger numbers are surely typos.
pub const MAX_LIMIT: u64 = 1_000_000_000;

impl Limits {
    pub const fn new(per_minute: u64, per_hour: u64, per_day: u64) -> Self {
        Limits {
            per_minute: Some(per_minute),
            per_hour: Some(per_hour),
            per_day: Some(per_day),
        }
    }

    pub fn get(&self, window: Window) -> Option<u64> {
        match window {
            Window::Minute => self.per_minute,
            Window::Hour => self.per_hour,
            Window::Day => self.per_day,
        }
    }

    /// `self` where set, `defaults` elsewhere: a key's overrides over the
    /// deployment's key defaults.
    pub fn or(&self, defaults: &Limits) -> Limits {
        Limits {
            per_minute: self.per_minute.or(defaults.per_minute),
            per_hour: self.per_hour.or(defaults.per_hour),
            per_day: self.per_day.or(defaults.per_day),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.per_minute.is_none() && self.per_hour.is_none() && self.per_day.is_none()
    }

    /// Checks overrides sent by a client: each from 1 to `MAX_LIMIT`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (field, v) in [
            ("rate_limits.per_minute", self.per_minute),
            ("rate_limits.per_hour", self.per_hour),
            ("rate_limits.per_day", self.per_day),
        ] {
            if let Some(v) = v
                && !(1..=MAX_LIMIT).contains(&v)
            {
                return Err((field, format!("{field} must be between 1 and {MAX_LIMIT}")));
            }
        }
        Ok(())
    }
}

/// The deployment's limits: defaults for keys and one set per plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitPolicy {
    pub key_default: Limits,
    pub free: Limits,
    pub pro: Limits,
    pub enterprise: Limits,
    /// What an account's test keys may do together, whatever its plan
    /// (`"test": {...}` in `KEYHUB_RATE_LIMITS`); absent, they get the
    /// plan's limits, counted apart from the live keys'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Limits>,
}

impl Default for RateLimitPolicy {
    fn default() -> Self {
        RateLimitPolicy {
            key_default: Limits::new(100, 1_000, 10_000),
            free: Limits::new(50, 1_000, 10_000),
            pro: Limits::new(500, 10_000, 100_000),
            // "Unlimited, fair use": no hourly or daily cap, a per-minute ceiling
            // that only a runaway client reaches.
            enterprise: Limits {
                per_minute: Some(10_000),
                per_hour: None,
                per_day: None,
            },
            test: None,
        }
    }
}

impl RateLimitPolicy {
    pub fn plan(&self, plan: Plan) -> Limits {
        match plan {
            Plan::Free => self.free,
            Plan::Pro => self.pro,
            Plan::Enterprise => self.enterprise,
        }
    }

    /// The limits an account's keys of `environment` share: the plan's for
    /// live keys; for test keys the `test` limits if set, else the plan's
    /// (on a counter of their own either way).
    pub fn account(&self, plan: Plan, environment: Environment) -> Limits {
        match (environment, self.test) {
            (Environment::Test, Some(test)) => test,
            _ => self.plan(plan),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_fall_back_to_defaults_per_window() {
        let over = Limits {
            per_minute: Some(5),
            ..Limits::default()
        };
        let eff = over.or(&RateLimitPolicy::default().key_default);
        assert_eq!(eff, Limits::new(5, 1_000, 10_000));
    }

    #[test]
    fn validation_names_the_field() {
        let bad = Limits {
            per_hour: Some(0),
            ..Limits::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "rate_limits.per_hour");
        assert!(Limits::new(1, 1, MAX_LIMIT).validate().is_ok());
    }

    #[test]
    fn plans_match_the_contract_defaults() {
        let p = RateLimitPolicy::default();
        assert_eq!(p.plan(Plan::Free), Limits::new(50, 1_000, 10_000));
        assert_eq!(p.plan(Plan::Pro), Limits::new(500, 10_000, 100_000));
        assert_eq!(p.plan(Plan::Enterprise).get(Window::Day), None);
    }

    #[test]
    fn test_keys_get_the_plan_unless_test_limits_are_set() {
        let mut p = RateLimitPolicy::default();
        assert_eq!(p.account(Plan::Pro, Environment::Test), p.pro);
        let test = Limits::new(5, 50, 500);
        p.test = Some(test);
        assert_eq!(p.account(Plan::Pro, Environment::Test), test);
        assert_eq!(p.account(Plan::Pro, Environment::Live), p.pro);
        // A policy written before test limits still reads.
        let old = r#"{"key_default":{},"free":{},"pro":{},"enterprise":{}}"#;
        let read: RateLimitPolicy = serde_json::from_str(old).unwrap();
        assert_eq!(read.test, None);
    }
}
