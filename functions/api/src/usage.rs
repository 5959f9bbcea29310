//! Usage reads: a key's recent requests, its series by hour or day, the
//! account's series and the account dashboard, all from the usage function's
//! aggregates.

use std::collections::{BTreeMap, HashMap};

use chrono::Duration;
use keyhub::ApiError;
use keyhub::aws::store::{Failed, RecentRequest, StoreError, Subject, TopAddresses, hour_start};
use keyhub::domain::apikey::Environment;
use keyhub::domain::key::KeyState;
use keyhub::domain::pepper::KeyId;
use keyhub::domain::time::{self, Timestamp};
use keyhub::domain::usage::{Tally, day_of, hour_of};
use serde_json::{Value, json};

use crate::call::{Call, Reply};

/// Entries of `usage` in a key object.
pub const RECENT: i32 = 10;
const MAX_HOURS: i64 = 24 * 31;
const MAX_DAYS: i64 = 400;

fn seconds(ms: f64) -> f64 {
    (ms / 1000.0 * 1e6).round() / 1e6
}

pub fn recent_view(r: &RecentRequest) -> Value {
    json!({
        "id": r.request_id,
        "endpoint": r.route,
        "method": r.method,
        "status_code": r.status,
        "response_time": seconds(r.latency_ms),
        "created_at": r.time,
    })
}

fn tally_view(t: &Tally) -> Value {
    let avg = if t.requests == 0 {
        0.0
    } else {
        t.latency_sum_ms / t.requests as f64
    };
    json!({
        "requests": t.requests,
        "status": {"2xx": t.s2xx, "3xx": t.s3xx, "4xx": t.s4xx, "5xx": t.s5xx, "429": t.s429},
        "avg_response_time": seconds(avg),
        "max_response_time": seconds(t.latency_max_ms),
    })
}

fn merge(into: &mut Tally, t: &Tally) {
    into.requests += t.requests;
    into.s2xx += t.s2xx;
    into.s3xx += t.s3xx;
    into.s4xx += t.s4xx;
    into.s5xx += t.s5xx;
    into.s429 += t.s429;
    into.latency_sum_ms += t.latency_sum_ms;
    into.latency_max_ms = into.latency_max_ms.max(t.latency_max_ms);
}

/// Source addresses shown per key or account and day.
const TOP_ADDRESSES: usize = 10;

/// Failed attempts and a day's top source addresses: `failed_attempts`
/// over the UTC days `from..=to`, addresses of the day `to`.
async fn security(
    call: &Call<'_>,
    subject: Subject<'_>,
    from: &Timestamp,
    to: &Timestamp,
) -> Result<Value, StoreError> {
    let store = &call.deps.store;
    let (from_day, to_day) = (day_of(from), day_of(to));
    let (failed, top): (Failed, TopAddresses) = futures::try_join!(
        store.failed_attempts(subject, &from_day, &to_day),
        store.top_addresses(subject, &to_day, TOP_ADDRESSES),
    )?;
    Ok(json!({
        "failed_attempts": {"total": failed.total, "401": failed.s401, "403": failed.s403},
        "failed_attempts_from": from_day,
        "failed_attempts_to": to_day,
        "addresses_day": to_day,
        "top_addresses": top
            .addresses
            .iter()
            .map(|(address, requests)| json!({"address": address, "requests": requests}))
            .collect::<Vec<_>>(),
        "addresses_truncated": top.truncated,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    fn step(self) -> Duration {
        match self {
            Granularity::Hour => Duration::hours(1),
            Granularity::Day => Duration::days(1),
        }
    }
}

fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid(field, "invalid_value", message)
}

/// The periods a series covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    granularity: Granularity,
    /// The start of the first period.
    from: Timestamp,
    /// The start of the last period; before `from` when the range is empty.
    last: Timestamp,
    /// Whether the range was cut to its last allowed periods.
    truncated: bool,
}

impl Range {
    fn periods(&self) -> impl Iterator<Item = Timestamp> {
        let step = self.granularity.step();
        std::iter::successors(Some(self.from), move |t| Some(*t + step))
            .take_while(move |t| *t <= self.last)
    }

    /// The end of the last period (exclusive): `from` for an empty range.
    fn end(&self) -> Timestamp {
        if self.last < self.from {
            self.from
        } else {
            self.last + self.granularity.step()
        }
    }
}

/// The earliest and latest period starts a series can have, so that every
/// time it answers with is a four-digit-year RFC 3339 time.
fn bounds(g: Granularity) -> (Timestamp, Timestamp) {
    let earliest = Timestamp::from_timestamp(-62_135_596_800, 0); // 0001-01-01
    let end = Timestamp::from_timestamp(253_402_214_400, 0); // 9999-12-31
    match (earliest, end) {
        (Some(e), Some(end)) => (e, end - g.step()),
        _ => (Timestamp::MIN_UTC, Timestamp::MAX_UTC),
    }
}

/// Rounds down to the period, for any time (`duration_trunc` only handles
/// 1677 to 2262).
fn floor(t: Timestamp, g: Granularity) -> Timestamp {
    let step = g.step().num_seconds();
    Timestamp::from_timestamp(t.timestamp().div_euclid(step) * step, 0).unwrap_or(t)
}

/// The periods asked for: `granularity`, then `from` and `to` (RFC 3339),
/// each rounded down to its period. Defaults: the last 24 hours, or the
/// last 30 days. Every valid query has an answer: `from` after `to` is an
/// empty series, a range longer than the maximum keeps its last periods,
/// and times are held to years 0001 to 9999.
fn range(q: &HashMap<String, String>, now: Timestamp) -> Result<Range, ApiError> {
    known_only(q, &["granularity", "from", "to"])?;
    range_of(q, now)
}

/// Refuses a query parameter not in `known`.
fn known_only(q: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match q.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::invalid(
            k.as_str(),
            "unknown_parameter",
            format!("unknown query parameter '{k}'; known: {}", known.join(", ")),
        )),
        None => Ok(()),
    }
}

/// Which of the account's keys a dashboard read adds up: `environment=live`
/// (the default) or `test`. Test keys are sandbox keys, so the live numbers
/// hold none of their traffic, as their rate limits are apart too.
fn environment(q: &HashMap<String, String>) -> Result<Environment, ApiError> {
    match q.get("environment") {
        None => Ok(Environment::Live),
        Some(e) => Environment::parse(e)
            .ok_or_else(|| bad("environment", "environment must be live or test")),
    }
}

fn range_of(q: &HashMap<String, String>, now: Timestamp) -> Result<Range, ApiError> {
    let g = match q.get("granularity").map(String::as_str) {
        None | Some("hour") => Granularity::Hour,
        Some("day") => Granularity::Day,
        Some(_) => return Err(bad("granularity", "granularity must be hour or day")),
    };
    let when = |k: &str| -> Result<Option<Timestamp>, ApiError> {
        q.get(k)
            .map(|v| {
                time::parse(v).ok_or_else(|| {
                    bad(
                        k,
                        format!("{k} must be an RFC 3339 timestamp such as 2026-11-01T00:00:00Z"),
                    )
                })
            })
            .transpose()
    };
    let (earliest, latest) = bounds(g);
    let hold = |t: Timestamp| floor(t, g).clamp(earliest, latest);
    let last = hold(when("to")?.unwrap_or(now));
    let default_span = match g {
        Granularity::Hour => Duration::hours(23),
        Granularity::Day => Duration::days(29),
    };
    let from = match when("from")? {
        Some(from) => hold(from),
        None => (last - default_span).max(earliest),
    };
    let max = match g {
        Granularity::Hour => MAX_HOURS,
        Granularity::Day => MAX_DAYS,
    };
    let first_allowed = last - g.step() * (max - 1) as i32;
    Ok(Range {
        granularity: g,
        from: from.max(first_allowed),
        last,
        truncated: from < first_allowed,
    })
}

pub async fn series(call: &Call<'_>) -> Reply {
    let id = KeyId::parse(call.param("id")).ok_or(ApiError::NotFound { what: "API key" })?;
    let r = range(&keyhub::http::request::query(call.req)?, call.now)?;
    let g = r.granularity;
    let store = &call.deps.store;
    store
        .get_account_key(&call.principal.account_id, id.as_str())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound { what: "API key" },
            other => other.into(),
        })?;
    // period start → (sums, endpoint → sums)
    let mut periods: BTreeMap<Timestamp, (Tally, BTreeMap<String, Tally>)> =
        r.periods().map(|t| (t, Default::default())).collect();
    let rows = if periods.is_empty() {
        Vec::new()
    } else {
        let last_hour = r.end() - Duration::hours(1);
        store
            .usage_hours(id.as_str(), &hour_of(&r.from), &hour_of(&last_hour))
            .await?
    };
    // An empty range has no day: its `from`.
    let last = if r.last < r.from { r.from } else { r.last };
    let security = security(call, Subject::Key(id.as_str()), &r.from, &last).await?;
    let mut totals = Tally::default();
    for row in &rows {
        let Some(start) = hour_start(&row.hour).map(|h| floor(h, g)) else {
            continue;
        };
        if let Some((sum, endpoints)) = periods.get_mut(&start) {
            merge(sum, &row.tally);
            merge(
                endpoints.entry(row.endpoint.clone()).or_default(),
                &row.tally,
            );
            merge(&mut totals, &row.tally);
        }
    }
    let series: Vec<Value> = periods
        .iter()
        .map(|(start, (sum, endpoints))| {
            let mut v = tally_view(sum);
            v["start"] = Value::from(time::format(start));
            v["endpoints"] = endpoints
                .iter()
                .map(|(endpoint, t)| {
                    let mut e = tally_view(t);
                    e["endpoint"] = Value::from(endpoint.as_str());
                    e
                })
                .collect();
            v
        })
        .collect();
    Ok((
        200,
        json!({
            "key_id": id.as_str(),
            "granularity": match g { Granularity::Hour => "hour", Granularity::Day => "day" },
            "from": time::format(&r.from),
            "to": time::format(&r.end()),
            "truncated": r.truncated,
            "totals": tally_view(&totals),
            "series": series,
            "security": security,
        }),
    ))
}

/// `GET /api/v1/dashboard/usage`: the account's calls by hour or day and
/// status class, over all its keys of one environment (`environment`, live
/// by default), from the usage function's per-account per-hour sums (one
/// Query, however many keys the account has). Takes the same
/// `granularity`, `from` and `to` as a key's series.
pub async fn account_series(call: &Call<'_>) -> Reply {
    let q = keyhub::http::request::query(call.req)?;
    known_only(&q, &["granularity", "from", "to", "environment"])?;
    let env = environment(&q)?;
    let r = range_of(&q, call.now)?;
    let g = r.granularity;
    let account = &call.principal.account_id;
    let mut periods: BTreeMap<Timestamp, Tally> =
        r.periods().map(|t| (t, Tally::default())).collect();
    let rows = if periods.is_empty() {
        Vec::new()
    } else {
        let last_hour = r.end() - Duration::hours(1);
        call.deps
            .store
            .account_usage_hours(account, env, &hour_of(&r.from), &hour_of(&last_hour))
            .await?
    };
    let mut totals = Tally::default();
    for (hour, tally) in &rows {
        let Some(start) = hour_start(hour).map(|h| floor(h, g)) else {
            continue;
        };
        if let Some(sum) = periods.get_mut(&start) {
            merge(sum, tally);
            merge(&mut totals, tally);
        }
    }
    // No latency maximum: the account's hours keep none.
    let view = |t: &Tally| {
        let mut v = tally_view(t);
        if let Some(o) = v.as_object_mut() {
            o.remove("max_response_time");
        }
        v
    };
    let series: Vec<Value> = periods
        .iter()
        .map(|(start, sum)| {
            let mut v = view(sum);
            v["start"] = Value::from(time::format(start));
            v
        })
        .collect();
    Ok((
        200,
        json!({
            "account_id": account,
            "environment": env.as_str(),
            "granularity": match g { Granularity::Hour => "hour", Granularity::Day => "day" },
            "from": time::format(&r.from),
            "to": time::format(&r.end()),
            "truncated": r.truncated,
            "totals": view(&totals),
            "series": series,
        }),
    ))
}

/// Keys listed on the dashboard, most used first.
const DASHBOARD_KEYS: usize = 100;

/// `GET /api/v1/dashboard/stats`: the account's keys of one environment
/// (`environment`, live by default) and their calls, so that test traffic
/// never shows in the live numbers. Other query parameters are ignored, as
/// they were before `environment`. `security` covers every key.
pub async fn dashboard(call: &Call<'_>) -> Reply {
    let env = environment(&keyhub::http::request::query(call.req)?)?;
    let store = &call.deps.store;
    let account = &call.principal.account_id;
    let (mut keys, totals, security) = futures::try_join!(
        store.list_keys(account),
        store.account_usage(account, env),
        security(call, Subject::Account(account), &call.now, &call.now),
    )?;
    keys.retain(|k| k.environment == env);
    let active = keys
        .iter()
        .filter(|k| k.state(call.now) == KeyState::Usable)
        .count();
    let mut listed: Vec<_> = keys.iter().collect();
    listed.sort_by(|a, b| b.usage_count.cmp(&a.usage_count).then(a.id.cmp(&b.id)));
    let api_keys: Vec<Value> = listed
        .iter()
        .take(DASHBOARD_KEYS)
        .map(|k| {
            json!({
                "id": k.id,
                "name": k.name,
                "is_active": k.is_active,
                "usage_count": k.usage_count,
                "last_used": k.last_used.as_ref().map(time::format),
            })
        })
        .collect();
    let success_rate = if totals.requests == 0 {
        0.0
    } else {
        (totals.s2xx as f64 / totals.requests as f64 * 1000.0).round() / 10.0
    };
    let avg = if totals.requests == 0 {
        0.0
    } else {
        totals.latency_sum_ms / totals.requests as f64
    };
    Ok((
        200,
        json!({
            "environment": env.as_str(),
            "active_api_keys": active,
            "total_api_keys": keys.len(),
            "total_api_calls": totals.requests,
            "api_usage": {
                "success_rate": success_rate,
                "avg_response_time": seconds(avg),
                "status": {"2xx": totals.s2xx, "3xx": totals.s3xx, "4xx": totals.s4xx, "5xx": totals.s5xx, "429": totals.s429},
            },
            "api_keys": api_keys,
            "security": security,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn at(s: &str) -> Timestamp {
        time::parse(s).unwrap()
    }

    #[test]
    fn ranges_default_and_round() {
        let now = at("2026-11-23T18:29:39Z");
        let r = range(&q(&[]), now).unwrap();
        assert_eq!(r.granularity, Granularity::Hour);
        assert_eq!(time::format(&r.last), "2026-11-23T18:00:00.000Z");
        assert_eq!(time::format(&r.from), "2026-11-22T19:00:00.000Z");
        assert_eq!(r.periods().count(), 24);
        let r = range(&q(&[("granularity", "day")]), now).unwrap();
        assert_eq!(time::format(&r.last), "2026-11-23T00:00:00.000Z");
        assert_eq!(r.periods().count(), 30);
        for bad in [
            vec![("granularity", "week")],
            vec![("from", "yesterday")],
            vec![("window", "1")],
        ] {
            assert!(range(&q(&bad), now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_valid_range_has_an_answer() {
        let now = at("2026-11-23T18:29:39Z");
        // from after to: no periods, and from = to in the answer
        let r = range(&q(&[("from", "2026-11-24T00:00:00Z")]), now).unwrap();
        assert_eq!((r.periods().count(), r.end()), (0, r.from));
        // too long: the last 744 hours, said so
        let r = range(&q(&[("from", "2020-01-01T00:00:00Z")]), now).unwrap();
        assert_eq!((r.periods().count(), r.truncated), (744, true));
        assert_eq!(r.last, at("2026-11-23T18:00:00Z"));
        let r = range(
            &q(&[("granularity", "day"), ("from", "0001-01-01T00:00:00Z")]),
            now,
        );
        assert_eq!(r.unwrap().periods().count(), MAX_DAYS as usize);
        // far past and future: held to years 0001..9999, never a panic
        for (from, to) in [
            ("0000-01-01T00:00:00+23:59", "0000-01-01T05:00:00Z"),
            ("1500-06-01T12:34:56Z", "1500-06-02T00:00:00Z"),
            ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59-23:59"),
        ] {
            for g in ["hour", "day"] {
                let r = range(&q(&[("granularity", g), ("from", from), ("to", to)]), now).unwrap();
                for t in r.periods().chain([r.from, r.end()]) {
                    assert!(time::format(&t).len() == 24, "{t:?}");
                }
            }
        }
        let r = range(
            &q(&[
                ("from", "1500-06-01T12:34:56Z"),
                ("to", "1500-06-02T00:00:00Z"),
            ]),
            now,
        );
        assert_eq!(r.unwrap().periods().count(), 13);
    }
}
