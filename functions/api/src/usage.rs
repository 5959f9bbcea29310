//! Usage reads: a key's recent requests, its series by hour or day, and the
//! account dashboard, all from the usage function's aggregates.

use std::collections::{BTreeMap, HashMap};

use chrono::{Duration, DurationRound};
use keyhub::ApiError;
use keyhub::key::KeyState;
use keyhub::pepper::KeyId;
use keyhub::store::{RecentRequest, StoreError, hour_start};
use keyhub::time::{self, Timestamp};
use keyhub::usage::{Tally, hour_of};
use serde_json::{Value, json};

use crate::handler::{Call, Reply};

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

/// The periods asked for: `granularity`, then `from` and `to` (RFC 3339),
/// each rounded down to its period. Defaults: the last 24 hours, or the
/// last 30 days.
fn range(
    q: &HashMap<String, String>,
    now: Timestamp,
) -> Result<(Granularity, Timestamp, Timestamp), ApiError> {
    if let Some(k) = q
        .keys()
        .find(|k| !["granularity", "from", "to"].contains(&k.as_str()))
    {
        return Err(ApiError::invalid(
            k.as_str(),
            "unknown_parameter",
            format!("unknown query parameter '{k}'; known: granularity, from, to"),
        ));
    }
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
    let to = when("to")?.unwrap_or(now);
    let span = match g {
        Granularity::Hour => Duration::hours(23),
        Granularity::Day => Duration::days(29),
    };
    let from = when("from")?.unwrap_or(to - span);
    let floor = |t: Timestamp| {
        t.duration_trunc(g.step())
            .map_err(|_| bad("from", "timestamp out of range"))
    };
    let (from, to) = (floor(from)?, floor(to)?);
    if from > to {
        return Err(bad("from", "from must not be after to"));
    }
    let periods = (to - from).num_seconds() / g.step().num_seconds() + 1;
    let max = match g {
        Granularity::Hour => MAX_HOURS,
        Granularity::Day => MAX_DAYS,
    };
    if periods > max {
        return Err(bad(
            "from",
            format!("at most {max} periods at this granularity"),
        ));
    }
    Ok((g, from, to))
}

pub async fn series(call: &Call<'_>) -> Reply {
    let id = KeyId::parse(call.param("id")).ok_or(ApiError::NotFound { what: "API key" })?;
    let (g, from, to) = range(&keyhub::http::query(call.req)?, call.now)?;
    let store = &call.deps.store;
    store
        .get_account_key(&call.principal.account_id, id.as_str())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound { what: "API key" },
            other => other.into(),
        })?;
    let last_hour = to + g.step() - Duration::hours(1);
    let rows = store
        .usage_hours(id.as_str(), &hour_of(&from), &hour_of(&last_hour))
        .await?;

    // period start → (sums, endpoint → sums)
    let mut periods: BTreeMap<Timestamp, (Tally, BTreeMap<String, Tally>)> = BTreeMap::new();
    let mut t = from;
    while t <= to {
        periods.insert(t, Default::default());
        t += g.step();
    }
    let mut totals = Tally::default();
    for row in &rows {
        let Some(start) = hour_start(&row.hour).and_then(|h| h.duration_trunc(g.step()).ok())
        else {
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
            "from": time::format(&from),
            "to": time::format(&(to + g.step())),
            "totals": tally_view(&totals),
            "series": series,
        }),
    ))
}

/// Keys listed on the dashboard, most used first.
const DASHBOARD_KEYS: usize = 100;

pub async fn dashboard(call: &Call<'_>) -> Reply {
    let store = &call.deps.store;
    let account = &call.principal.account_id;
    let (keys, totals) =
        futures::try_join!(store.list_keys(account), store.account_usage(account))?;
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
            "active_api_keys": active,
            "total_api_keys": keys.len(),
            "total_api_calls": totals.requests,
            "api_usage": {
                "success_rate": success_rate,
                "avg_response_time": seconds(avg),
                "status": {"2xx": totals.s2xx, "3xx": totals.s3xx, "4xx": totals.s4xx, "5xx": totals.s5xx, "429": totals.s429},
            },
            "api_keys": api_keys,
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

    #[test]
    fn ranges_default_round_and_refuse_nonsense() {
        let now = time::parse("2026-11-23T18:29:39Z").unwrap();
        let (g, from, to) = range(&q(&[]), now).unwrap();
        assert_eq!(g, Granularity::Hour);
        assert_eq!(time::format(&to), "2026-11-23T18:00:00.000Z");
        assert_eq!(time::format(&from), "2026-11-22T19:00:00.000Z");
        let (_, from, to) = range(&q(&[("granularity", "day")]), now).unwrap();
        assert_eq!(time::format(&to), "2026-11-23T00:00:00.000Z");
        assert_eq!((to - from).num_days(), 29);
        for bad in [
            vec![("granularity", "week")],
            vec![("from", "yesterday")],
            vec![("from", "2026-11-24T00:00:00Z")],
            vec![("from", "2020-01-01T00:00:00Z")],
            vec![("window", "1")],
        ] {
            assert!(range(&q(&bad), now).is_err(), "{bad:?}");
        }
    }
}
