//! Fixed-window rate limits counted in DynamoDB, exact under concurrency.
//!
//! Each (subject, window) pair has one counter item per window instance, its
//! window start in the item key and a TTL to clean it up. A request takes one
//! conditional `UpdateItem` per counter (`count < limit`), all in parallel. If
//! any is refused, the ones that succeeded are given back, so a denied request
//! consumes no quota: at worst a concurrent request sees the counter one
//! higher for a moment and is denied too, never let through over the limit.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use futures::future::join_all;

use crate::limits::{Limits, Window};
use crate::store::{StoreError, classify, is_throttling_code};
use crate::time::Timestamp;

/// One counter to take: who, which window, how many are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub subject: String,
    pub window: Window,
    pub limit: u64,
}

/// The counters for a key and its account: each window that has a limit.
pub fn checks_for(key_id: &str, key: &Limits, account_id: &str, account: &Limits) -> Vec<Check> {
    let mut out = Vec::new();
    for (subject, limits) in [
        (format!("k#{key_id}"), key),
        (format!("a#{account_id}"), account),
    ] {
        for window in Window::ALL {
            if let Some(limit) = limits.get(window) {
                out.push(Check {
                    subject: subject.clone(),
                    window,
                    limit,
                });
            }
        }
    }
    out
}

/// Where one window stands after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState {
    pub window: Window,
    pub limit: u64,
    pub remaining: u64,
    /// When the window ends, in UTC epoch seconds.
    pub reset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Allowed; the window closest to its limit, for the `X-RateLimit-*`
    /// headers (`None` when nothing is limited).
    Allowed(Option<WindowState>),
    /// Denied by this window; retry after `retry_after` seconds.
    Denied {
        state: WindowState,
        retry_after: u64,
        /// A refused counter whose `rate_limit.exceeded` event has not been
        /// sent yet this window: (counter key, subject, window state).
        unannounced: Option<(String, String, WindowState)>,
    },
}

/// The start of the window instance containing `now`, in epoch seconds.
pub fn window_start(window: Window, now: Timestamp) -> i64 {
    let t = now.timestamp();
    t - t.rem_euclid(window.seconds())
}

fn window_code(w: Window) -> &'static str {
    match w {
        Window::Minute => "m",
        Window::Hour => "h",
        Window::Day => "d",
    }
}

/// The tightest of several windows: least remaining, then the shortest.
pub fn tightest(states: impl IntoIterator<Item = WindowState>) -> Option<WindowState> {
    states.into_iter().min_by_key(|s| (s.remaining, s.window))
}

#[derive(Clone)]
pub struct Limiter {
    client: Client,
    table: String,
}

enum Taken {
    Counted(u64),
    /// Refused; `true` when this window's event was already sent.
    Refused {
        announced: bool,
    },
    /// DynamoDB throttled the counter (after the SDK's retries): the
    /// counter is hot, which only traffic far over any limit makes.
    Throttled,
}

impl Limiter {
    pub fn new(client: Client, table: String) -> Self {
        Limiter { client, table }
    }

    fn counter_key(check: &Check, start: i64) -> String {
        format!("{}#{}#{}", check.subject, window_code(check.window), start)
    }

    async fn take(&self, check: &Check, now: Timestamp) -> Result<Taken, StoreError> {
        let start = window_start(check.window, now);
        let end = start + check.window.seconds();
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(Self::counter_key(check, start)))
            .update_expression("ADD #n :one SET expires_at = if_not_exists(expires_at, :ttl)")
            .condition_expression("attribute_not_exists(#n) OR #n < :limit")
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(check.limit.to_string()))
            // Kept one window past its end, then DynamoDB's TTL removes it.
            .expression_attribute_values(
                ":ttl",
                AttributeValue::N((end + check.window.seconds()).to_string()),
            )
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match out {
            Ok(o) => {
                let n = o
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get("n"))
                    .and_then(|v| v.as_n().ok())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(check.limit);
                Ok(Taken::Counted(n))
            }
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => Ok(Taken::Refused {
                    announced: c.item().is_some_and(|i| i.contains_key("announced")),
                }),
                Some(se) if se.code().is_some_and(is_throttling_code) => Ok(Taken::Throttled),
                _ => Err(classify(e)),
            },
        }
    }

    async fn give_back(&self, check: &Check, now: Timestamp) {
        let start = window_start(check.window, now);
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(Self::counter_key(check, start)))
            .update_expression("ADD #n :minus")
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(":minus", AttributeValue::N("-1".into()))
            .send()
            .await;
        if let Err(e) = res {
            tracing::warn!(error = %classify(e), "could not give back a rate-limit unit");
        }
    }

    /// Takes one unit from every counter, or none: see the module docs.
    #[tracing::instrument(skip_all, fields(counters = checks.len()))]
    pub async fn hit(&self, checks: &[Check], now: Timestamp) -> Result<Outcome, StoreError> {
        let results = join_all(checks.iter().map(|c| self.take(c, now))).await;
        let mut states = Vec::with_capacity(checks.len());
        let mut refused = Vec::new();
        let mut unannounced = None;
        let mut counted = Vec::new();
        let mut throttled = None;
        let mut failure = None;
        for (check, result) in checks.iter().zip(results) {
            let reset = window_start(check.window, now) + check.window.seconds();
            match result {
                Ok(Taken::Counted(n)) => {
                    counted.push(check);
                    states.push(WindowState {
                        window: check.window,
                        limit: check.limit,
                        remaining: check.limit.saturating_sub(n),
                        reset,
                    });
                }
                Ok(Taken::Refused { announced }) => {
                    let state = WindowState {
                        window: check.window,
                        limit: check.limit,
                        remaining: 0,
                        reset,
                    };
                    if !announced && unannounced.is_none() {
                        let start = window_start(check.window, now);
                        unannounced = Some((
                            Self::counter_key(check, start),
                            check.subject.clone(),
                            state,
                        ));
                    }
                    refused.push(state);
                }
                Ok(Taken::Throttled) => {
                    throttled.get_or_insert(WindowState {
                        window: check.window,
                        limit: check.limit,
                        remaining: 0,
                        reset,
                    });
                }
                Err(e) => failure = Some(e),
            }
        }
        if failure.is_some() || !refused.is_empty() || throttled.is_some() {
            join_all(counted.iter().map(|c| self.give_back(c, now))).await;
        }
        // Throttling is not an outage: the limits still hold, so a
        // fail-open deployment does not let a hot key through unmetered.
        // Refused, it may try again in a second.
        if let Some(state) = throttled
            && refused.is_empty()
        {
            return Ok(Outcome::Denied {
                state,
                retry_after: 1,
                unannounced: None,
            });
        }
        if let Some(e) = failure {
            return Err(e);
        }
        // The request can pass only when every refusing window has reset.
        if let Some(state) = refused.into_iter().max_by_key(|s| s.reset) {
            let retry_after = (state.reset - now.timestamp()).max(1) as u64;
            return Ok(Outcome::Denied {
                state,
                retry_after,
                unannounced,
            });
        }
        Ok(Outcome::Allowed(tightest(states)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time;

    #[test]
    fn windows_start_on_their_boundaries_in_utc() {
        let t = time::parse("2026-03-04T05:06:07.800Z").unwrap();
        assert_eq!(
            window_start(Window::Minute, t),
            time::parse("2026-03-04T05:06:00Z").unwrap().timestamp()
        );
        assert_eq!(
            window_start(Window::Hour, t),
            time::parse("2026-03-04T05:00:00Z").unwrap().timestamp()
        );
        assert_eq!(
            window_start(Window::Day, t),
            time::parse("2026-03-04T00:00:00Z").unwrap().timestamp()
        );
    }

    #[test]
    fn only_limited_windows_get_counters() {
        let key = Limits::new(10, 100, 1000);
        let account = Limits {
            per_minute: Some(5),
            per_hour: None,
            per_day: None,
        };
        let checks = checks_for("key_1", &key, "acct_1", &account);
        assert_eq!(checks.len(), 4);
        assert_eq!(
            checks[3],
            Check {
                subject: "a#acct_1".into(),
                window: Window::Minute,
                limit: 5
            }
        );
    }

    #[test]
    fn the_tightest_window_has_the_least_left() {
        let s = |window, remaining| WindowState {
            window,
            limit: 100,
            remaining,
            reset: 0,
        };
        assert_eq!(
            tightest([s(Window::Day, 5), s(Window::Minute, 9)])
                .unwrap()
                .window,
            Window::Day
        );
        assert_eq!(
            tightest([s(Window::Day, 5), s(Window::Minute, 5)])
                .unwrap()
                .window,
            Window::Minute
        );
        assert_eq!(tightest([]), None);
    }
}
