//! Settings read once per cold start from the environment. Every variable is
//! listed in the README's configuration table.

use crate::apikey::KeyPrefix;
use crate::limits::RateLimitPolicy;
use crate::store::Tables;

#[derive(Debug, Clone)]
pub struct Config {
    pub key_prefix: KeyPrefix,
    pub tables: Tables,
    /// Secrets Manager id (name or ARN) of the pepper.
    pub pepper_secret_id: String,
    pub rate_limits: RateLimitPolicy,
    /// Largest request body the API accepts.
    pub max_body_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The same as `from_env` over any lookup, so tests need not touch the
    /// process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &str| {
            get(name)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError(format!("{name} is not set")))
        };
        let key_prefix = match get("KEYHUB_KEY_PREFIX") {
            Some(p) => KeyPrefix::parse(&p).map_err(ConfigError)?,
            None => KeyPrefix::default(),
        };
        let rate_limits = match get("KEYHUB_RATE_LIMITS") {
            Some(json) if !json.trim().is_empty() => serde_json::from_str(&json)
                .map_err(|e| ConfigError(format!("KEYHUB_RATE_LIMITS is not valid: {e}")))?,
            _ => RateLimitPolicy::default(),
        };
        let max_body_bytes = match get("KEYHUB_MAX_BODY_BYTES") {
            Some(v) => v
                .parse()
                .map_err(|_| ConfigError(format!("KEYHUB_MAX_BODY_BYTES is not a number: {v}")))?,
            None => DEFAULT_MAX_BODY_BYTES,
        };
        Ok(Config {
            key_prefix,
            tables: Tables {
                keys: required("KEYS_TABLE")?,
                accounts: required("ACCOUNTS_TABLE")?,
            },
            pepper_secret_id: required("PEPPER_SECRET_ID")?,
            rate_limits,
            max_body_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 3] = [
        ("KEYS_TABLE", "s-keys"),
        ("ACCOUNTS_TABLE", "s-accounts"),
        ("PEPPER_SECRET_ID", "keyhub/pepper"),
    ];

    #[test]
    fn defaults_apply() {
        let c = Config::from_lookup(lookup(&BASE)).unwrap();
        assert_eq!(c.key_prefix.as_str(), "kh");
        assert_eq!(c.tables.keys, "s-keys");
        assert_eq!(c.rate_limits, RateLimitPolicy::default());
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn missing_and_bad_values_are_named() {
        let err = Config::from_lookup(lookup(&BASE[..2])).unwrap_err();
        assert!(err.to_string().contains("PEPPER_SECRET_ID"));
        let mut bad = BASE.to_vec();
        bad.push(("KEYHUB_KEY_PREFIX", "Bad_Prefix"));
        assert!(Config::from_lookup(lookup(&bad)).is_err());
        let mut bad = BASE.to_vec();
        bad.push(("KEYHUB_RATE_LIMITS", "{\"free\": 3}"));
        assert!(
            Config::from_lookup(lookup(&bad))
                .unwrap_err()
                .to_string()
                .contains("KEYHUB_RATE_LIMITS")
        );
    }
}
