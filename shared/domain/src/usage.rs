//! Usage records: one per request that passed the key check, sent to SQS by
//! the guard (`keyhub::aws::queues::UsageSink`) and aggregated by the usage
//! function. The aggregation here is pure: a batch of records in, the sums
//! each stored item needs out, so that a batch costs one write per distinct
//! key, hour and endpoint rather than one per record.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::account;
use crate::apikey::Environment;
use crate::pepper::KeyId;
use crate::time::{self, Timestamp};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageRecord {
    pub request_id: String,
    pub key_id: String,
    pub account_id: String,
    /// The key's environment: a test key's requests are summed for its
    /// account apart from the live keys' (`account::subject`). A record
    /// from before sandbox keys has none and is `live`; a live key's is
    /// left out, so its record reads as before to a consumer that predates
    /// the field (one still running while a deployment rolls out).
    #[serde(default, skip_serializing_if = "is_live")]
    pub environment: Environment,
    pub method: String,
    /// The route's resource path (`/api/v1/api-keys/{id}`), so that usage
    /// groups by endpoint, not by every id in a path.
    pub route: String,
    pub status: u16,
    pub latency_ms: f64,
    #[serde(with = "time::rfc3339")]
    pub time: Timestamp,
    /// The caller's address (API Gateway's `sourceIp`), for the key's and
    /// the account's top addresses. Dropped if it is not an IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<String>,
    /// A refused authentication attempt (a 401 or 403 answered to a key
    /// that was identified): counted as a failed attempt of the key and its
    /// account, never as usage.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
}

fn is_live(e: &Environment) -> bool {
    *e == Environment::Live
}

impl UsageRecord {
    /// Parses a queued record, refusing anything that could not have come
    /// from the guard.
    pub fn parse(body: &str) -> Result<Self, String> {
        let r: UsageRecord = serde_json::from_str(body).map_err(|e| e.to_string())?;
        r.checked()
    }

    /// The record, if every field is in the range the guard's records
    /// keep (a record from an access-log line is held to the same).
    pub fn checked(self) -> Result<Self, String> {
        let mut r = self;
        r.source_ip = r
            .source_ip
            .take()
            .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
        let ok = KeyId::parse(&r.key_id).is_some()
            && (1..=100).contains(&r.request_id.len())
            && (1..=100).contains(&r.account_id.len())
            && (1..=10).contains(&r.method.len())
            && r.method.bytes().all(|b| b.is_ascii_uppercase())
            && r.route.starts_with('/')
            && r.route.len() <= 300
            && (100..=599).contains(&r.status)
            && r.latency_ms.is_finite()
            && (0.0..=3_600_000.0).contains(&r.latency_ms);
        if ok {
            Ok(r)
        } else {
            Err("a field is out of range".into())
        }
    }

    pub fn endpoint(&self) -> String {
        format!("{} {}", self.method, self.route)
    }

    /// Where the account's sums of this record go: `a#{account}` for a
    /// live key, `a#{account}#test` for a test key.
    pub fn account_subject(&self) -> String {
        account::subject(&self.account_id, self.environment)
    }
}

/// `2026-11-23T18`: the UTC hour a time falls in, as stored.
pub fn hour_of(t: &Timestamp) -> String {
    t.format("%Y-%m-%dT%H").to_string()
}

/// `2026-11-23`: the UTC day a time falls in, as stored for failed
/// attempts and source addresses.
pub fn day_of(t: &Timestamp) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// Sums for one stored aggregate.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    pub requests: u64,
    pub s2xx: u64,
    pub s3xx: u64,
    pub s4xx: u64,
    pub s5xx: u64,
    pub s429: u64,
    pub latency_sum_ms: f64,
    pub latency_max_ms: f64,
    pub last: Option<Timestamp>,
}

impl Tally {
    pub fn add(&mut self, r: &UsageRecord) {
        self.requests += 1;
        match r.status {
            200..=299 => self.s2xx += 1,
            300..=399 => self.s3xx += 1,
            400..=499 => self.s4xx += 1,
            _ => self.s5xx += 1,
        }
        if r.status == 429 {
            self.s429 += 1;
        }
        self.latency_sum_ms += r.latency_ms;
        self.latency_max_ms = self.latency_max_ms.max(r.latency_ms);
        self.last = self.last.max(Some(r.time));
    }
}

/// What a batch adds to each aggregate.
#[derive(Debug, Default, PartialEq)]
pub struct Sums {
    /// (key id, hour, endpoint) → sums
    pub endpoints: BTreeMap<(String, String, String), Tally>,
    /// key id → sums (for `usage_count` and `last_used`)
    pub keys: BTreeMap<String, Tally>,
    /// account subject (`a#{id}`, or `a#{id}#test` for its test keys) → sums
    pub accounts: BTreeMap<String, Tally>,
    /// (account subject, hour) → sums, for the account's series (which the
    /// per-key aggregates could only give by reading every key)
    pub account_hours: BTreeMap<(String, String), Tally>,
    /// (key id, day, address) → requests, for the key's top addresses
    pub addresses: BTreeMap<(String, String, String), u64>,
    /// (account id, day, address) → requests, for the dashboard's
    pub account_addresses: BTreeMap<(String, String, String), u64>,
}

pub fn sum(records: &[UsageRecord]) -> Sums {
    let mut s = Sums::default();
    for r in records {
        s.endpoints
            .entry((r.key_id.clone(), hour_of(&r.time), r.endpoint()))
            .or_default()
            .add(r);
        s.keys.entry(r.key_id.clone()).or_default().add(r);
        s.accounts.entry(r.account_subject()).or_default().add(r);
        s.account_hours
            .entry((r.account_subject(), hour_of(&r.time)))
            .or_default()
            .add(r);
        if let Some(ip) = &r.source_ip {
            let day = day_of(&r.time);
            *s.addresses
                .entry((r.key_id.clone(), day.clone(), ip.clone()))
                .or_default() += 1;
            *s.account_addresses
                .entry((r.account_id.clone(), day, ip.clone()))
                .or_default() += 1;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, status: u16, latency_ms: f64, at: &str) -> UsageRecord {
        UsageRecord {
            request_id: format!("r-{key}-{status}-{at}"),
            key_id: key.into(),
            account_id: "acct_1".into(),
            environment: Environment::Live,
            method: "GET".into(),
            route: "/api/v1/api-keys/{id}".into(),
            status,
            latency_ms,
            time: time::parse(at).unwrap(),
            source_ip: None,
            refused: false,
        }
    }

    const K1: &str = "key_0000000000000000000001";
    const K2: &str = "key_0000000000000000000002";

    #[test]
    fn sums_group_by_key_hour_and_endpoint() {
        let rs = vec![
            record(K1, 200, 10.0, "2026-01-01T10:00:00Z"),
            record(K1, 429, 2.0, "2026-01-01T10:59:59Z"),
            record(K1, 500, 30.0, "2026-01-01T11:00:00Z"),
            record(K2, 201, 5.0, "2026-01-01T10:30:00Z"),
        ];
        let s = sum(&rs);
        assert_eq!(s.endpoints.len(), 3);
        let k1_10 = s.endpoints[&(
            K1.to_string(),
            "2026-01-01T10".to_string(),
            "GET /api/v1/api-keys/{id}".to_string(),
        )];
        assert_eq!(
            (k1_10.requests, k1_10.s2xx, k1_10.s4xx, k1_10.s429),
            (2, 1, 1, 1)
        );
        assert_eq!(k1_10.latency_sum_ms, 12.0);
        assert_eq!(k1_10.latency_max_ms, 10.0);
        assert_eq!(s.keys[K1].requests, 3);
        assert_eq!(s.keys[K1].last, time::parse("2026-01-01T11:00:00Z"));
        assert_eq!(s.accounts["a#acct_1"].requests, 4);
        assert_eq!(s.accounts["a#acct_1"].s5xx, 1);
        let hour = |h: &str| s.account_hours[&("a#acct_1".to_string(), h.to_string())];
        assert_eq!(hour("2026-01-01T10").requests, 3);
        assert_eq!(
            (hour("2026-01-01T11").requests, hour("2026-01-01T11").s5xx),
            (1, 1)
        );
    }

    #[test]
    fn a_test_keys_requests_are_summed_apart_from_the_live_keys() {
        let mut t = record(K2, 200, 1.0, "2026-01-01T10:30:00Z");
        t.environment = Environment::Test;
        let s = sum(&[record(K1, 200, 1.0, "2026-01-01T10:00:00Z"), t.clone()]);
        assert_eq!(s.accounts["a#acct_1"].requests, 1);
        assert_eq!(s.accounts["a#acct_1#test"].requests, 1);
        let test_hour = ("a#acct_1#test".to_string(), "2026-01-01T10".to_string());
        assert_eq!(s.account_hours[&test_hour].requests, 1);
        // Its environment travels in the queued record; one without is live.
        let mut v = serde_json::to_value(&t).unwrap();
        assert_eq!(v["environment"], "test");
        assert_eq!(UsageRecord::parse(&v.to_string()).unwrap(), t);
        v.as_object_mut().unwrap().remove("environment");
        let old = UsageRecord::parse(&v.to_string()).unwrap();
        assert_eq!(old.environment, Environment::Live);
        let live = serde_json::to_value(record(K1, 200, 1.0, "2026-01-01T10:00:00Z")).unwrap();
        assert!(live.get("environment").is_none(), "{live}");
    }

    #[test]
    fn addresses_sum_by_key_and_account_per_day_and_bad_ones_are_dropped() {
        let mut a = record(K1, 200, 1.0, "2026-01-01T10:00:00Z");
        a.source_ip = Some("203.0.113.9".into());
        let mut b = record(K2, 200, 1.0, "2026-01-01T23:59:59Z");
        b.source_ip = Some("203.0.113.9".into());
        let mut c = record(K1, 200, 1.0, "2026-01-02T00:00:00Z");
        c.source_ip = Some("2001:db8::1".into());
        let s = sum(&[
            a.clone(),
            b,
            c,
            record(K1, 200, 1.0, "2026-01-01T11:00:00Z"),
        ]);
        let k = |key: &str, day: &str, ip: &str| (key.to_string(), day.to_string(), ip.to_string());
        assert_eq!(s.addresses.len(), 3);
        assert_eq!(s.addresses[&k(K1, "2026-01-01", "203.0.113.9")], 1);
        assert_eq!(s.addresses[&k(K1, "2026-01-02", "2001:db8::1")], 1);
        assert_eq!(
            s.account_addresses[&k("acct_1", "2026-01-01", "203.0.113.9")],
            2
        );
        // A record from before these fields still parses; a bad address is dropped.
        let mut v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["source_ip"], "203.0.113.9");
        assert!(v.get("refused").is_none());
        v["source_ip"] = serde_json::json!("not an address");
        assert_eq!(UsageRecord::parse(&v.to_string()).unwrap().source_ip, None);
        v.as_object_mut().unwrap().remove("source_ip");
        let old = UsageRecord::parse(&v.to_string()).unwrap();
        assert_eq!((old.source_ip, old.refused), (None, false));
    }

    #[test]
    fn records_out_of_range_are_refused() {
        let good = record(K1, 200, 1.0, "2026-01-01T10:00:00Z");
        let text = serde_json::to_string(&good).unwrap();
        assert_eq!(UsageRecord::parse(&text).unwrap(), good);
        for (field, value) in [
            ("status", serde_json::json!(99)),
            ("latency_ms", serde_json::json!(-1.0)),
            ("key_id", serde_json::json!("nope")),
            ("method", serde_json::json!("get")),
            ("route", serde_json::json!("no-slash")),
            ("time", serde_json::json!("yesterday")),
        ] {
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            v[field] = value;
            assert!(UsageRecord::parse(&v.to_string()).is_err(), "{field}");
        }
        assert!(UsageRecord::parse("not json").is_err());
        assert!(UsageRecord::parse(&text.replace("}", ",\"x\":1}")).is_err());
    }
}
