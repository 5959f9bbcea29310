//! Settings read once per cold start from the environment. Every variable is
//! listed in the README's configuration table.

use std::time::Duration;

use crate::cache::CacheSettings;
use crate::domain::apikey::KeyPrefix;
use crate::domain::limits::RateLimitPolicy;
use crate::netpolicy::AddressPolicy;

/// Table names, one per concern. In AWS they come from the function's
/// environment (template.yaml sets them); locally they are `{stack}-{suffix}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub keys: String,
    pub accounts: String,
    /// Rate-limit counters, one item per subject and window instance.
    pub counters: String,
    /// Usage: recent requests and per-hour sums.
    pub usage: String,
    /// Webhook endpoints, deliveries and the event outbox.
    pub webhooks: String,
}

impl Tables {
    /// The names template.yaml gives a stack: `!Sub "${AWS::StackName}-keys"`.
    pub fn for_stack(stack: &str) -> Self {
        Tables {
            keys: format!("{stack}-keys"),
            accounts: format!("{stack}-accounts"),
            counters: format!("{stack}-counters"),
            usage: format!("{stack}-usage"),
            webhooks: format!("{stack}-webhooks"),
        }
    }

    /// Pairs of (environment variable, table name), as the functions read them.
    pub fn env_vars(&self) -> [(&'static str, &str); 5] {
        [
            ("KEYS_TABLE", &self.keys),
            ("ACCOUNTS_TABLE", &self.accounts),
            ("COUNTERS_TABLE", &self.counters),
            ("USAGE_TABLE", &self.usage),
            ("WEBHOOKS_TABLE", &self.webhooks),
        ]
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub key_prefix: KeyPrefix,
    pub tables: Tables,
    /// Secrets Manager id (name or ARN) of the pepper.
    pub pepper_secret_id: String,
    pub rate_limits: RateLimitPolicy,
    /// Largest request body the API accepts.
    pub max_body_bytes: usize,
    pub key_cache: CacheSettings,
    /// Let requests through unmetered when the counters cannot be reached
    /// (they are still authenticated). Off by default: such requests get 503.
    pub rate_limit_fail_open: bool,
    /// Where the guard sends usage records; none are sent when unset.
    pub usage_queue_url: Option<String>,
    /// The stage's access log counts every request an authorizer let
    /// through (`KEYHUB_USAGE_FROM_ACCESS_LOG`, on in template.yaml): the
    /// guard then sends no record of its own for such a request, only for
    /// those whose key it checked itself. Off by default, for a function
    /// that is not behind API Gateway's access-log pipeline.
    pub usage_from_access_log: bool,
    /// How long a key's recent-requests list keeps an entry. The entry is
    /// also the record's "already counted" marker, so it must outlive every
    /// redelivery: at least `usage_queue_retention + usage_redrive_window`.
    pub usage_retention: Duration,
    /// The usage queue's `MessageRetentionPeriod` (template.yaml).
    pub usage_queue_retention: Duration,
    /// How long after a record was sent an operator may still redrive it
    /// from the dead-letter queue (at most that queue's retention).
    pub usage_redrive_window: Duration,
    /// How long the per-hour usage sums are kept.
    pub usage_aggregate_retention: Duration,
    /// A key's hour is a `usage.anomaly` above this many times its trailing
    /// 24 hours' hourly average (`KEYHUB_ANOMALY_FACTOR`, default 10)...
    pub anomaly_factor: f64,
    /// ...and with at least this many requests (`KEYHUB_ANOMALY_MIN_REQUESTS`,
    /// default 100), so that a quiet key's first requests do not fire.
    pub anomaly_min_requests: u64,
    pub webhooks: WebhookSettings,
    /// Keys older than this owe an `api_key.rotation_due` event.
    pub rotation_period: Duration,
    pub aws: AwsTimeouts,
    /// How many keys an account may hold (`KEYHUB_MAX_KEYS_PER_ACCOUNT`).
    pub max_keys_per_account: u32,
    /// Whether the API function serves the web console at `/console`
    /// (`KEYHUB_CONSOLE`, template.yaml's `Console`; on unless "false").
    pub console: bool,
}

/// Bounds on every AWS SDK call, so that a hung or unreachable dependency
/// costs a request seconds, not the function's whole timeout. The defaults
/// sit well under the API function's 10 s: a hung DynamoDB answers 503 in
/// about `operation`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AwsTimeouts {
    /// Establishing a connection (TCP and TLS).
    pub connect: Duration,
    /// One attempt, from sending to the whole response; a timed-out attempt
    /// is retried by the SDK while the operation has time left.
    pub attempt: Duration,
    /// One call, every retry included.
    pub operation: Duration,
    /// A send that only serves a side effect (a usage record, publishing an
    /// event the outbox already holds): past this the request goes on
    /// without it.
    pub side_effect: Duration,
}

impl Default for AwsTimeouts {
    fn default() -> Self {
        AwsTimeouts {
            connect: Duration::from_secs(1),
            attempt: Duration::from_secs(2),
            operation: Duration::from_secs(3),
            side_effect: Duration::from_secs(1),
        }
    }
}

impl AwsTimeouts {
    /// Reads `KEYHUB_AWS_{CONNECT,ATTEMPT,OPERATION}_TIMEOUT_SECONDS` and
    /// `KEYHUB_SIDE_EFFECT_TIMEOUT_SECONDS`.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_lookup_or(get, AwsTimeouts::default())
    }

    /// `from_lookup` with other defaults for what is unset.
    pub fn from_lookup_or(
        get: impl Fn(&str) -> Option<String>,
        d: AwsTimeouts,
    ) -> Result<Self, ConfigError> {
        let secs = |name: &str, default: Duration| -> Result<Duration, ConfigError> {
            let v = number(&get, name, default.as_secs_f64())?;
            if v <= 0.0 || v > 900.0 {
                return Err(ConfigError(format!(
                    "{name} must be above 0 and at most 900 seconds, not {v}"
                )));
            }
            Ok(Duration::from_secs_f64(v))
        };
        let t = AwsTimeouts {
            connect: secs("KEYHUB_AWS_CONNECT_TIMEOUT_SECONDS", d.connect)?,
            attempt: secs("KEYHUB_AWS_ATTEMPT_TIMEOUT_SECONDS", d.attempt)?,
            operation: secs("KEYHUB_AWS_OPERATION_TIMEOUT_SECONDS", d.operation)?,
            side_effect: secs("KEYHUB_SIDE_EFFECT_TIMEOUT_SECONDS", d.side_effect)?,
        };
        if t.attempt > t.operation {
            return Err(ConfigError(
                "KEYHUB_AWS_ATTEMPT_TIMEOUT_SECONDS must not exceed KEYHUB_AWS_OPERATION_TIMEOUT_SECONDS".into(),
            ));
        }
        Ok(t)
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The SDK's form of these bounds.
    pub fn sdk(&self) -> aws_config::timeout::TimeoutConfig {
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(self.connect)
            .operation_attempt_timeout(self.attempt)
            .operation_timeout(self.operation)
            .build()
    }
}

/// A non-negative number from `get`, or `default` when unset or empty.
fn number(
    get: &impl Fn(&str) -> Option<String>,
    name: &str,
    default: f64,
) -> Result<f64, ConfigError> {
    match get(name) {
        Some(v) if !v.is_empty() => v
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
            .ok_or_else(|| ConfigError(format!("{name} is not a non-negative number: {v}"))),
        _ => Ok(default),
    }
}

/// Webhook delivery settings.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The webhook queue (events and retries); no events are sent when unset.
    pub queue_url: Option<String>,
    /// Secrets Manager id of the key that seals signing secrets.
    pub key_secret_id: Option<String>,
    pub addresses: AddressPolicy,
    pub timeout: Duration,
    /// Multiplies the retry schedule (1 in production; tests shrink it).
    pub retry_scale: f64,
    /// An endpoint failing every attempt for this long is turned off.
    pub disable_after: Duration,
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
        let number = |name: &str, default: f64| number(&get, name, default);
        let defaults = CacheSettings::default();
        let key_cache = CacheSettings {
            ttl: Duration::from_secs_f64(number(
                "KEYHUB_AUTH_CACHE_TTL_SECONDS",
                defaults.ttl.as_secs_f64(),
            )?),
            negative_ttl: Duration::from_secs_f64(number(
                "KEYHUB_AUTH_NEGATIVE_CACHE_TTL_SECONDS",
                defaults.negative_ttl.as_secs_f64(),
            )?),
            capacity: number("KEYHUB_AUTH_CACHE_SIZE", defaults.capacity as f64)? as usize,
        };
        let max_body_bytes =
            number("KEYHUB_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES as f64)? as usize;
        let rate_limit_fail_open = match get("KEYHUB_RATE_LIMIT_FAIL_OPEN").as_deref() {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(v) => {
                return Err(ConfigError(format!(
                    "KEYHUB_RATE_LIMIT_FAIL_OPEN must be true or false, not {v}"
                )));
            }
        };
        let usage_from_access_log = match get("KEYHUB_USAGE_FROM_ACCESS_LOG").as_deref() {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(v) => {
                return Err(ConfigError(format!(
                    "KEYHUB_USAGE_FROM_ACCESS_LOG must be true or false, not {v}"
                )));
            }
        };
        let days = |name: &str, default: f64| -> Result<Duration, ConfigError> {
            Ok(Duration::from_secs_f64(number(name, default)? * 86_400.0))
        };
        let usage_retention = days("KEYHUB_USAGE_RETENTION_DAYS", 30.0)?;
        let usage_queue_retention = Duration::from_secs_f64(number(
            "KEYHUB_USAGE_QUEUE_RETENTION_SECONDS",
            DEFAULT_USAGE_QUEUE_RETENTION.as_secs_f64(),
        )?);
        let usage_redrive_window = days(
            "KEYHUB_USAGE_REDRIVE_WINDOW_DAYS",
            DEFAULT_USAGE_REDRIVE_WINDOW.as_secs_f64() / 86_400.0,
        )?;
        check_usage_retention(usage_retention, usage_queue_retention, usage_redrive_window)?;
        Ok(Config {
            key_prefix,
            tables: Tables {
                keys: required("KEYS_TABLE")?,
                accounts: required("ACCOUNTS_TABLE")?,
                counters: required("COUNTERS_TABLE")?,
                usage: required("USAGE_TABLE")?,
                webhooks: required("WEBHOOKS_TABLE")?,
            },
            pepper_secret_id: required("PEPPER_SECRET_ID")?,
            rate_limits,
            max_body_bytes,
            key_cache,
            rate_limit_fail_open,
            usage_queue_url: get("USAGE_QUEUE_URL").filter(|v| !v.is_empty()),
            usage_from_access_log,
            usage_retention,
            usage_queue_retention,
            usage_redrive_window,
            usage_aggregate_retention: Duration::from_secs_f64(
                number("KEYHUB_USAGE_AGGREGATE_RETENTION_DAYS", 400.0)? * 86_400.0,
            ),
            anomaly_factor: number("KEYHUB_ANOMALY_FACTOR", 10.0)?,
            anomaly_min_requests: number("KEYHUB_ANOMALY_MIN_REQUESTS", 100.0)?.round() as u64,
            webhooks: WebhookSettings {
                queue_url: get("WEBHOOK_QUEUE_URL").filter(|v| !v.is_empty()),
                key_secret_id: get("WEBHOOK_KEY_SECRET_ID").filter(|v| !v.is_empty()),
                addresses: AddressPolicy::parse(
                    &get("KEYHUB_WEBHOOK_ALLOWED_NETWORKS").unwrap_or_default(),
                    match get("KEYHUB_WEBHOOK_ALLOW_HTTP").as_deref() {
                        None | Some("") | Some("false") => false,
                        Some("true") => true,
                        Some(v) => {
                            return Err(ConfigError(format!(
                                "KEYHUB_WEBHOOK_ALLOW_HTTP must be true or false, not {v}"
                            )));
                        }
                    },
                )
                .map_err(|e| ConfigError(format!("KEYHUB_WEBHOOK_ALLOWED_NETWORKS: {e}")))?,
                timeout: Duration::from_secs_f64(number("KEYHUB_WEBHOOK_TIMEOUT_SECONDS", 30.0)?),
                retry_scale: number("KEYHUB_WEBHOOK_RETRY_SCALE", 1.0)?,
                disable_after: Duration::from_secs_f64(
                    number("KEYHUB_WEBHOOK_DISABLE_AFTER_DAYS", 5.0)? * 86_400.0,
                ),
            },
            rotation_period: Duration::from_secs_f64(
                number("KEYHUB_ROTATION_PERIOD_DAYS", 90.0)? * 86_400.0,
            ),
            aws: AwsTimeouts::from_lookup(&get)?,
            max_keys_per_account: match number(
                "KEYHUB_MAX_KEYS_PER_ACCOUNT",
                f64::from(crate::domain::key::DEFAULT_MAX_KEYS_PER_ACCOUNT),
            )? {
                n if n >= 1.0 && n <= f64::from(u32::MAX) && n.fract() == 0.0 => n as u32,
                n => {
                    return Err(ConfigError(format!(
                        "KEYHUB_MAX_KEYS_PER_ACCOUNT must be a whole number of at least 1, not {n}"
                    )));
                }
            },
            console: match get("KEYHUB_CONSOLE").as_deref() {
                None | Some("") | Some("true") => true,
                Some("false") => false,
                Some(v) => {
                    return Err(ConfigError(format!(
                        "KEYHUB_CONSOLE must be true or false, not {v}"
                    )));
                }
            },
        })
    }
}

/// The usage queue's retention in template.yaml (4 days).
pub const DEFAULT_USAGE_QUEUE_RETENTION: Duration = Duration::from_secs(345_600);
/// The usage dead-letter queue's retention in template.yaml (14 days): a
/// record can be redriven until then.
pub const DEFAULT_USAGE_REDRIVE_WINDOW: Duration = Duration::from_secs(14 * 86_400);

/// A record's "already counted" marker expires `retention` after the
/// record: if SQS can still deliver it after that (from the queue, or
/// redriven from the dead-letter queue), it would be counted twice. So the
/// retention must cover both; refusing to start says so plainly.
pub fn check_usage_retention(
    retention: Duration,
    queue_retention: Duration,
    redrive_window: Duration,
) -> Result<(), ConfigError> {
    let needed = queue_retention + redrive_window;
    if retention < needed {
        return Err(ConfigError(format!(
            "KEYHUB_USAGE_RETENTION_DAYS ({:.1} days) must be at least the usage queue's retention \
             plus the dead-letter redrive window ({:.1} + {:.1} = {:.1} days), or a record \
             redelivered after its marker expired is counted twice",
            retention.as_secs_f64() / 86_400.0,
            queue_retention.as_secs_f64() / 86_400.0,
            redrive_window.as_secs_f64() / 86_400.0,
            needed.as_secs_f64() / 86_400.0,
        )));
    }
    Ok(())
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

    const BASE: [(&str, &str); 6] = [
        ("KEYS_TABLE", "s-keys"),
        ("ACCOUNTS_TABLE", "s-accounts"),
        ("COUNTERS_TABLE", "s-counters"),
        ("USAGE_TABLE", "s-usage"),
        ("WEBHOOKS_TABLE", "s-webhooks"),
        ("PEPPER_SECRET_ID", "keyhub/pepper"),
    ];

    #[test]
    fn defaults_apply() {
        let c = Config::from_lookup(lookup(&BASE)).unwrap();
        assert_eq!(c.key_prefix.as_str(), "kh");
        assert_eq!(c.tables.keys, "s-keys");
        assert_eq!(c.rate_limits, RateLimitPolicy::default());
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(c.key_cache, CacheSettings::default());
        assert!(!c.rate_limit_fail_open);
    }

    #[test]
    fn cache_settings_and_fail_open() {
        let mut env = BASE.to_vec();
        env.extend([
            ("KEYHUB_AUTH_CACHE_TTL_SECONDS", "0.5"),
            ("KEYHUB_AUTH_CACHE_SIZE", "7"),
            ("KEYHUB_RATE_LIMIT_FAIL_OPEN", "true"),
        ]);
        let c = Config::from_lookup(lookup(&env)).unwrap();
        assert_eq!(c.key_cache.ttl, Duration::from_millis(500));
        assert_eq!(c.key_cache.capacity, 7);
        assert!(c.rate_limit_fail_open);
        let mut env = BASE.to_vec();
        env.push(("KEYHUB_AUTH_CACHE_TTL_SECONDS", "-1"));
        assert!(Config::from_lookup(lookup(&env)).is_err());
    }

    #[test]
    fn aws_calls_are_bounded_by_default_and_configurably() {
        let c = Config::from_lookup(lookup(&BASE)).unwrap();
        assert_eq!(c.aws, AwsTimeouts::default());
        assert!(c.aws.operation <= Duration::from_secs(5));
        assert!(c.aws.side_effect <= Duration::from_secs(2));
        let sdk = c.aws.sdk();
        assert_eq!(sdk.operation_timeout(), Some(c.aws.operation));
        assert_eq!(sdk.operation_attempt_timeout(), Some(c.aws.attempt));
        assert_eq!(sdk.connect_timeout(), Some(c.aws.connect));
        let mut env = BASE.to_vec();
        env.extend([
            ("KEYHUB_AWS_OPERATION_TIMEOUT_SECONDS", "8"),
            ("KEYHUB_SIDE_EFFECT_TIMEOUT_SECONDS", "0.25"),
        ]);
        let c = Config::from_lookup(lookup(&env)).unwrap();
        assert_eq!(c.aws.operation, Duration::from_secs(8));
        assert_eq!(c.aws.side_effect, Duration::from_millis(250));
        for (name, bad) in [
            ("KEYHUB_AWS_ATTEMPT_TIMEOUT_SECONDS", "0"),
            ("KEYHUB_AWS_ATTEMPT_TIMEOUT_SECONDS", "10"),
            ("KEYHUB_AWS_CONNECT_TIMEOUT_SECONDS", "soon"),
        ] {
            let mut env = BASE.to_vec();
            env.push((name, bad));
            let err = Config::from_lookup(lookup(&env)).unwrap_err().to_string();
            assert!(err.contains("KEYHUB_AWS_"), "{name}={bad}: {err}");
        }
    }

    #[test]
    fn a_usage_retention_shorter_than_redelivery_is_refused() {
        let c = Config::from_lookup(lookup(&BASE)).unwrap();
        assert!(c.usage_retention >= c.usage_queue_retention + c.usage_redrive_window);
        let mut env = BASE.to_vec();
        env.push(("KEYHUB_USAGE_RETENTION_DAYS", "7"));
        let err = Config::from_lookup(lookup(&env)).unwrap_err().to_string();
        assert!(err.contains("KEYHUB_USAGE_RETENTION_DAYS"), "{err}");
        assert!(err.contains("counted twice"), "{err}");
        // A shorter redrive window makes room for a shorter retention.
        env.push(("KEYHUB_USAGE_REDRIVE_WINDOW_DAYS", "2"));
        assert!(Config::from_lookup(lookup(&env)).is_ok());
    }

    #[test]
    fn missing_and_bad_values_are_named() {
        let err = Config::from_lookup(lookup(&BASE[..5])).unwrap_err();
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

    #[test]
    fn the_console_is_on_unless_turned_off() {
        let on = |v: Option<&str>| {
            let mut env = BASE.to_vec();
            env.extend(v.map(|v| ("KEYHUB_CONSOLE", v)));
            Config::from_lookup(lookup(&env)).map(|c| c.console)
        };
        assert!(on(None).unwrap());
        assert!(on(Some("true")).unwrap());
        assert!(!on(Some("false")).unwrap());
        let err = on(Some("no")).unwrap_err().to_string();
        assert!(err.contains("KEYHUB_CONSOLE"), "{err}");
    }
}
