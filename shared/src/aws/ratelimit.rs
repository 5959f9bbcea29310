//! Fixed-window rate limits counted in DynamoDB, exact under concurrency, at
//! one write per subject.
//!
//! Each subject (a key, `k#{id}`, or an account's keys of one environment,
//! `a#{id}` for live keys and `a#{id}#test` for test keys) has one item
//! holding every limited window: its start and its count (`m_start`,
//! `m_count`, and the same for `h_` and `d_`). A request takes one
//! conditional `UpdateItem` per subject that counts all of its windows at
//! once: a window whose stored start is current gets `count < limit` and one
//! more; a window whose stored start is older (or missing) is reset to a
//! count of one. What is stored is only known once DynamoDB answers, so the
//! first attempt assumes every window is current; when that is refused
//! because a window turned over, the refusal returns the item as it was
//! (`ALL_OLD`) and a second attempt resets that window. In steady state that
//! is one write per subject, two per protected request (key and account).
//!
//! The key and the account are taken in parallel. If either is refused, the
//! one that succeeded is given back, so a denied request consumes no quota:
//! at worst a concurrent request sees a count one higher for a moment and is
//! denied too, never let through over the limit.
//!
//! The item's TTL is one day past the end of the current day window: by then
//! every window it holds has ended, so DynamoDB's cleanup never removes a
//! count still in use.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use futures::future::join_all;

use crate::aws::store::{StoreError, classify, is_throttling_code};
use crate::domain::account;
use crate::domain::apikey::Environment;
use crate::domain::limits::{Limits, Window};
use crate::domain::time::Timestamp;

/// One counter to take: who, which window, how many are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub subject: String,
    pub window: Window,
    pub limit: u64,
}

/// The counters for a key and its account: each window that has a limit.
/// A test key's account counter is the account's test subject, so test
/// traffic never spends what the live keys share.
pub fn checks_for(
    key_id: &str,
    key: &Limits,
    account_id: &str,
    environment: Environment,
    account: &Limits,
) -> Vec<Check> {
    let mut out = Vec::new();
    for (subject, limits) in [
        (format!("k#{key_id}"), key),
        (account::subject(account_id, environment), account),
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

/// A refused window whose `rate_limit.exceeded` event has not been sent yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unannounced {
    /// `k#{key id}`, `a#{account id}` or `a#{account id}#test`.
    pub subject: String,
    pub state: WindowState,
}

impl Unannounced {
    /// The refused window instance, `{subject}#{m|h|d}#{window start}`: the
    /// announcement's marker is named after it, so it is made once per window.
    pub fn window_id(&self) -> String {
        format!(
            "{}#{}#{}",
            self.subject,
            window_code(self.state.window),
            self.start()
        )
    }

    fn start(&self) -> i64 {
        self.state.reset - self.state.window.seconds()
    }
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
        unannounced: Option<Unannounced>,
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

/// A window's attributes in its subject's item: (start, count, start of the
/// window instance whose refusal was announced).
fn attributes(w: Window) -> (&'static str, &'static str, &'static str) {
    match w {
        Window::Minute => ("m_start", "m_count", "m_announced"),
        Window::Hour => ("h_start", "h_count", "h_announced"),
        Window::Day => ("d_start", "d_count", "d_announced"),
    }
}

/// The tightest of several windows: least remaining, then the shortest.
pub fn tightest(states: impl IntoIterator<Item = WindowState>) -> Option<WindowState> {
    states.into_iter().min_by_key(|s| (s.remaining, s.window))
}

type Item = HashMap<String, AttributeValue>;

/// One window as a subject's item holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    start: i64,
    count: u64,
    announced: bool,
}

fn stored(item: &Item, window: Window) -> Option<Stored> {
    let (start, count, announced) = attributes(window);
    let number = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
    };
    let start_at = number(start)?;
    Some(Stored {
        start: start_at,
        count: number(count)?.max(0) as u64,
        announced: number(announced) == Some(start_at),
    })
}

/// What one write does to a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The stored window is current: one more, if below the limit.
    Count,
    /// The stored window is older, or there is none: start it at one.
    Reset,
}

/// Attempts per subject and request. Each refusal that is not a limit means
/// the item changed under the request (a window turned over, a concurrent
/// request reset it first), which happens at most once per window per
/// turnover, plus once for a clock slightly behind another environment's.
const ATTEMPTS: usize = 4;

enum Taken {
    /// Counted in every window: how each stands after the write.
    Counted(Vec<WindowState>),
    /// Refused by these windows (at their limit), each with whether its
    /// refusal was already announced.
    Refused(Vec<(WindowState, bool)>),
    /// DynamoDB throttled the item (after the SDK's retries): it is hot,
    /// which only traffic far over any limit makes.
    Throttled,
}

enum Attempt {
    Written(Item),
    /// The condition failed; the item as it was, if there was one.
    Refused(Option<Item>),
    Throttled,
}

#[derive(Clone)]
pub struct Limiter {
    client: Client,
    table: String,
}

impl Limiter {
    pub fn new(client: Client, table: String) -> Self {
        Limiter { client, table }
    }

    /// Takes one unit in every window of one subject, in as few writes as
    /// the stored windows allow: see the module docs.
    async fn take(
        &self,
        subject: &str,
        limits: &[(Window, u64)],
        now: Timestamp,
    ) -> Result<Taken, StoreError> {
        // A limit of zero refuses everything; no write can change that, and
        // there is no news to announce.
        let closed: Vec<_> = limits
            .iter()
            .filter(|(_, limit)| *limit == 0)
            .map(|&(window, limit)| {
                (
                    refused_state(window, limit, window_start(window, now)),
                    true,
                )
            })
            .collect();
        if !closed.is_empty() {
            return Ok(Taken::Refused(closed));
        }
        let mut steps = vec![Step::Count; limits.len()];
        for _ in 0..ATTEMPTS {
            let old = match self.attempt(subject, limits, &steps, now).await? {
                Attempt::Written(item) => {
                    return Ok(Taken::Counted(
                        limits
                            .iter()
                            .map(|&(window, limit)| state_after(&item, window, limit, now))
                            .collect(),
                    ));
                }
                Attempt::Throttled => return Ok(Taken::Throttled),
                Attempt::Refused(old) => old,
            };
            let mut full = Vec::new();
            for (step, &(window, limit)) in steps.iter_mut().zip(limits) {
                match old.as_ref().and_then(|item| stored(item, window)) {
                    // Current, or newer: another environment's clock is a
                    // little ahead and its window counts.
                    Some(s) if s.start >= window_start(window, now) => {
                        if s.count >= limit {
                            full.push((refused_state(window, limit, s.start), s.announced));
                        }
                        *step = Step::Count;
                    }
                    _ => *step = Step::Reset,
                }
            }
            if !full.is_empty() {
                return Ok(Taken::Refused(full));
            }
        }
        tracing::warn!(
            subject,
            "rate-limit item kept changing under the request; refused"
        );
        Ok(Taken::Throttled)
    }

    /// One conditional `UpdateItem` taking every window of `subject` as
    /// `steps` say. Every attribute goes through a name placeholder, each
    /// window's start and count appear once in the update (no overlapping
    /// paths), and only the values the expressions use are sent.
    async fn attempt(
        &self,
        subject: &str,
        limits: &[(Window, u64)],
        steps: &[Step],
        now: Timestamp,
    ) -> Result<Attempt, StoreError> {
        let mut sets = vec!["#ttl = :ttl".to_string()];
        let mut adds = Vec::new();
        let mut conditions = Vec::new();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(subject.to_string()))
            .expression_attribute_names("#ttl", "expires_at")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":ttl", AttributeValue::N(expires_at(now).to_string()));
        for (&(window, limit), step) in limits.iter().zip(steps) {
            let c = window_code(window);
            let (start, count, _) = attributes(window);
            req = req
                .expression_attribute_names(format!("#{c}s"), start)
                .expression_attribute_names(format!("#{c}n"), count)
                .expression_attribute_values(
                    format!(":{c}s"),
                    AttributeValue::N(window_start(window, now).to_string()),
                );
            match step {
                Step::Count => {
                    adds.push(format!("#{c}n :one"));
                    conditions.push(format!("(#{c}s >= :{c}s AND #{c}n < :{c}l)"));
                    req = req.expression_attribute_values(
                        format!(":{c}l"),
                        AttributeValue::N(limit.to_string()),
                    );
                }
                Step::Reset => {
                    sets.push(format!("#{c}s = :{c}s, #{c}n = :one"));
                    conditions.push(format!("(attribute_not_exists(#{c}s) OR #{c}s < :{c}s)"));
                }
            }
        }
        let mut update = format!("SET {}", sets.join(", "));
        if !adds.is_empty() {
            update.push_str(&format!(" ADD {}", adds.join(", ")));
        }
        let out = req
            .update_expression(update)
            .condition_expression(conditions.join(" AND "))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match out {
            Ok(o) => Ok(Attempt::Written(o.attributes.unwrap_or_default())),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                    Ok(Attempt::Refused(c.item().cloned()))
                }
                Some(se) if se.code().is_some_and(is_throttling_code) => Ok(Attempt::Throttled),
                _ => Err(classify(e)),
            },
        }
    }

    /// Gives back the units `taken` from `subject`, in the windows that
    /// are still the ones they were taken from (one that turned over since
    /// has nothing to give back).
    async fn give_back(&self, subject: &str, taken: &[WindowState]) {
        let mut windows: Vec<(Window, i64)> = taken
            .iter()
            .map(|s| (s.window, s.reset - s.window.seconds()))
            .collect();
        for _ in 0..2 {
            if windows.is_empty() {
                return;
            }
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(subject.to_string()))
                .expression_attribute_values(":minus", AttributeValue::N("-1".into()));
            let mut adds = Vec::new();
            let mut conditions = Vec::new();
            for &(window, start) in &windows {
                let c = window_code(window);
                let (start_name, count_name, _) = attributes(window);
                req = req
                    .expression_attribute_names(format!("#{c}s"), start_name)
                    .expression_attribute_names(format!("#{c}n"), count_name)
                    .expression_attribute_values(
                        format!(":{c}s"),
                        AttributeValue::N(start.to_string()),
                    );
                adds.push(format!("#{c}n :minus"));
                conditions.push(format!("#{c}s = :{c}s"));
            }
            let res = req
                .update_expression(format!("ADD {}", adds.join(", ")))
                .condition_expression(conditions.join(" AND "))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match res {
                Ok(_) => return,
                Err(e) => match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                        let item = c.item().cloned().unwrap_or_default();
                        windows.retain(|&(window, start)| {
                            stored(&item, window).is_some_and(|s| s.start == start)
                        });
                    }
                    _ => {
                        tracing::warn!(error = %classify(e), "could not give back a rate-limit unit");
                        return;
                    }
                },
            }
        }
        tracing::warn!(
            subject,
            "rate-limit units not given back: the item kept changing"
        );
    }

    /// Records on the subject's item that this window's refusal was
    /// announced, so later refusals in the window skip the announcement. A
    /// plain update, which counting never conflicts with; if the window has
    /// turned over meanwhile, there is nothing to record.
    #[tracing::instrument(skip_all, fields(subject = %refusal.subject))]
    pub async fn flag_announced(&self, refusal: &Unannounced) {
        let (start, _, announced) = attributes(refusal.state.window);
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(refusal.subject.clone()))
            .update_expression("SET #a = :start")
            .condition_expression("#s = :start")
            .expression_attribute_names("#a", announced)
            .expression_attribute_names("#s", start)
            .expression_attribute_values(":start", AttributeValue::N(refusal.start().to_string()))
            .send()
            .await;
        if let Err(e) = res
            && !e
                .as_service_error()
                .is_some_and(|se| se.is_conditional_check_failed_exception())
        {
            tracing::debug!(error = %classify(e), "refusal not flagged as announced");
        }
    }

    /// Where every counter of `checks` stands now, without taking or
    /// writing anything: one consistent GetItem per subject. A window with
    /// no stored count, or whose stored window has ended, is whole.
    #[tracing::instrument(skip_all, fields(counters = checks.len()))]
    pub async fn standing(
        &self,
        checks: &[Check],
        now: Timestamp,
    ) -> Result<Vec<(String, WindowState)>, StoreError> {
        let subjects = by_subject(checks);
        let items = futures::future::try_join_all(subjects.iter().map(|(subject, _)| async {
            self.client
                .get_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(subject.to_string()))
                .consistent_read(true)
                .send()
                .await
                .map(|o| o.item.unwrap_or_default())
                .map_err(classify)
        }))
        .await?;
        let mut out = Vec::with_capacity(checks.len());
        for ((subject, limits), item) in subjects.iter().zip(items) {
            for &(window, limit) in limits {
                out.push((subject.to_string(), standing_of(&item, window, limit, now)));
            }
        }
        Ok(out)
    }

    /// Takes one unit from every counter, or none: see the module docs.
    /// `checks` may name several subjects; each costs one write (two when
    /// one of its windows has just turned over).
    #[tracing::instrument(skip_all, fields(counters = checks.len()))]
    pub async fn hit(&self, checks: &[Check], now: Timestamp) -> Result<Outcome, StoreError> {
        let subjects = by_subject(checks);
        let results = join_all(
            subjects
                .iter()
                .map(|(subject, limits)| self.take(subject, limits, now)),
        )
        .await;
        let mut states = Vec::with_capacity(checks.len());
        let mut refused = Vec::new();
        let mut counted = Vec::new();
        let mut throttled = None;
        let mut failure = None;
        for ((subject, limits), result) in subjects.iter().zip(results) {
            match result {
                Ok(Taken::Counted(taken)) => {
                    states.extend(taken.iter().copied());
                    counted.push((*subject, taken));
                }
                Ok(Taken::Refused(windows)) => {
                    refused.extend(
                        windows
                            .into_iter()
                            .map(|(s, announced)| (*subject, s, announced)),
                    );
                }
                Ok(Taken::Throttled) => {
                    crate::metrics::counter_throttled();
                    if let Some(&(window, limit)) = limits.first() {
                        throttled.get_or_insert(refused_state(
                            window,
                            limit,
                            window_start(window, now),
                        ));
                    }
                }
                Err(e) => failure = Some(e),
            }
        }
        if failure.is_some() || !refused.is_empty() || throttled.is_some() {
            join_all(
                counted
                    .iter()
                    .map(|(subject, taken)| self.give_back(subject, taken)),
            )
            .await;
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
        let unannounced =
            refused
                .iter()
                .find(|(_, _, announced)| !announced)
                .map(|(subject, state, _)| Unannounced {
                    subject: subject.to_string(),
                    state: *state,
                });
        // The request can pass only when every refusing window has reset.
        if let Some((subject, state)) = refused
            .into_iter()
            .map(|(subject, s, _)| (subject, s))
            .max_by_key(|(_, s)| s.reset)
        {
            crate::metrics::rate_limited(subject, state.window.as_str());
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

/// The checks grouped by subject, in their order, each window once (the
/// lower limit if one is named twice): one write per subject.
fn by_subject(checks: &[Check]) -> Vec<(&str, Vec<(Window, u64)>)> {
    let mut out: Vec<(&str, Vec<(Window, u64)>)> = Vec::new();
    for c in checks {
        let at = match out.iter().position(|(s, _)| *s == c.subject) {
            Some(i) => i,
            None => {
                out.push((&c.subject, Vec::new()));
                out.len() - 1
            }
        };
        let limits = &mut out[at].1;
        match limits.iter_mut().find(|(w, _)| *w == c.window) {
            Some((_, limit)) => *limit = (*limit).min(c.limit),
            None => limits.push((c.window, c.limit)),
        }
    }
    out
}

fn refused_state(window: Window, limit: u64, start: i64) -> WindowState {
    WindowState {
        window,
        limit,
        remaining: 0,
        reset: start + window.seconds(),
    }
}

/// How `window` stands in a subject's item as read: a window that has ended
/// (or was never counted) is whole until the current one ends.
fn standing_of(item: &Item, window: Window, limit: u64, now: Timestamp) -> WindowState {
    let current = window_start(window, now);
    // A start ahead of ours is another environment's clock: its window counts.
    let (start, used) = match stored(item, window) {
        Some(s) if s.start >= current => (s.start, s.count),
        _ => (current, 0),
    };
    WindowState {
        window,
        limit,
        remaining: limit.saturating_sub(used),
        reset: start + window.seconds(),
    }
}

/// How `window` stands in the item a successful write returned.
fn state_after(item: &Item, window: Window, limit: u64, now: Timestamp) -> WindowState {
    match stored(item, window) {
        Some(s) => WindowState {
            window,
            limit,
            remaining: limit.saturating_sub(s.count),
            reset: s.start + window.seconds(),
        },
        // DynamoDB returns what it wrote; reporting nothing left is the
        // safe reading of an answer that says otherwise.
        None => refused_state(window, limit, window_start(window, now)),
    }
}

/// The item's TTL: one day past the end of the current day window, when
/// every window it holds has long ended.
fn expires_at(now: Timestamp) -> i64 {
    window_start(Window::Day, now) + 2 * Window::Day.seconds()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time;

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
        let checks = checks_for("key_1", &key, "acct_1", Environment::Live, &account);
        assert_eq!(checks.len(), 4);
        let test = checks_for("key_1", &key, "acct_1", Environment::Test, &account);
        assert_eq!(test[3].subject, "a#acct_1#test");
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
    fn one_write_per_subject_each_window_once() {
        let mut checks = checks_for(
            "key_1",
            &Limits::new(10, 100, 1000),
            "acct_1",
            Environment::Live,
            &Limits {
                per_minute: Some(5),
                per_hour: None,
                per_day: None,
            },
        );
        checks.push(Check {
            subject: "k#key_1".into(),
            window: Window::Minute,
            limit: 7,
        });
        let subjects = by_subject(&checks);
        assert_eq!(
            subjects,
            vec![
                (
                    "k#key_1",
                    vec![
                        (Window::Minute, 7),
                        (Window::Hour, 100),
                        (Window::Day, 1000)
                    ]
                ),
                ("a#acct_1", vec![(Window::Minute, 5)]),
            ]
        );
    }

    #[test]
    fn an_announcement_belongs_to_its_window_instance() {
        let n = |v: i64| AttributeValue::N(v.to_string());
        let mut item: Item = [
            ("m_start".to_string(), n(120)),
            ("m_count".to_string(), n(3)),
            ("m_announced".to_string(), n(60)),
        ]
        .into();
        let minute = stored(&item, Window::Minute).unwrap();
        assert_eq!((minute.start, minute.count), (120, 3));
        assert!(!minute.announced, "announced in the window before");
        item.insert("m_announced".into(), n(120));
        assert!(stored(&item, Window::Minute).unwrap().announced);
        assert_eq!(stored(&item, Window::Hour), None);
        let refusal = Unannounced {
            subject: "a#acct_1".into(),
            state: refused_state(Window::Minute, 3, 120),
        };
        assert_eq!(refusal.window_id(), "a#acct_1#m#120");
    }

    #[test]
    fn a_standing_counts_only_the_current_window() {
        let n = |v: i64| AttributeValue::N(v.to_string());
        let t = time::parse("2026-03-04T05:06:07Z").unwrap();
        let minute = window_start(Window::Minute, t);
        let hour = window_start(Window::Hour, t);
        let item: Item = [
            ("m_start".to_string(), n(minute)),
            ("m_count".to_string(), n(7)),
            ("h_start".to_string(), n(hour - 3600)),
            ("h_count".to_string(), n(99)),
        ]
        .into();
        let m = standing_of(&item, Window::Minute, 10, t);
        assert_eq!((m.remaining, m.reset), (3, minute + 60));
        // Last hour's count is spent; this hour is whole.
        let h = standing_of(&item, Window::Hour, 100, t);
        assert_eq!((h.remaining, h.reset), (100, hour + 3600));
        // Never counted, or over a lowered limit: whole, or none left.
        assert_eq!(standing_of(&item, Window::Day, 5, t).remaining, 5);
        assert_eq!(standing_of(&item, Window::Minute, 4, t).remaining, 0);
    }

    #[test]
    fn the_item_outlives_its_longest_window() {
        let t = time::parse("2026-03-04T23:59:59Z").unwrap();
        let day_end = time::parse("2026-03-05T00:00:00Z").unwrap().timestamp();
        assert_eq!(expires_at(t), day_end + 86_400);
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
