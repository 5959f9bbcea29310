//! `usage.anomaly`: a key whose requests in an hour are far above its
//! trailing hourly average raises one event for that key and hour.
//!
//! After a batch is applied, each (key, hour) it touched in the last two
//! hours is checked: one Query of the key's per-hour endpoint sums for
//! that hour and the 24 before it (at most 25 × its endpoints small items).
//! The hour is an anomaly when its requests reach `min_requests` and exceed
//! `factor` × the trailing 24 hours' average (an hour with no requests
//! counts as 0), so a quiet key's first requests do not fire. The event
//! is written once per key and hour under a marker in the counters table
//! with the outbox entry (as `rate_limit.exceeded` is), so redeliveries and
//! concurrent consumers send it once; a warm consumer also remembers the
//! (key, hour) pairs it has announced and skips their Query.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;

use chrono::Duration;
use keyhub::aws::eventbus::EventBus;
use keyhub::aws::store::{Store, hour_start};
use keyhub::domain::events::{Event, EventKind};
use keyhub::domain::time::Timestamp;
use keyhub::domain::usage::{UsageRecord, hour_of};
use serde_json::json;

/// Hours the average is taken over.
pub const TRAILING_HOURS: i64 = 24;

/// When an hour is an anomaly (`KEYHUB_ANOMALY_FACTOR`,
/// `KEYHUB_ANOMALY_MIN_REQUESTS`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub factor: f64,
    pub min_requests: u64,
}

impl Default for Threshold {
    fn default() -> Self {
        Threshold {
            factor: 10.0,
            min_requests: 100,
        }
    }
}

impl Threshold {
    /// The trailing average, if `current` is an anomaly against the
    /// trailing hours' requests.
    pub fn exceeded(&self, current: u64, trailing: &[u64]) -> Option<f64> {
        let average = trailing.iter().sum::<u64>() as f64 / TRAILING_HOURS as f64;
        (current >= self.min_requests && current as f64 > self.factor * average).then_some(average)
    }
}

pub struct Anomalies {
    pub threshold: Threshold,
    pub bus: EventBus,
    /// (key, hour) pairs this warm consumer announced (or saw announced).
    announced: Mutex<HashSet<(String, String)>>,
}

impl Anomalies {
    const CAP: usize = 50_000;

    pub fn new(threshold: Threshold, bus: EventBus) -> Self {
        Anomalies {
            threshold,
            bus,
            announced: Mutex::new(HashSet::new()),
        }
    }

    fn known(&self, pair: &(String, String)) -> bool {
        self.announced.lock().is_ok_and(|a| a.contains(pair))
    }

    fn remember(&self, pair: (String, String)) {
        if let Ok(mut a) = self.announced.lock() {
            if a.len() > Self::CAP {
                a.clear();
            }
            a.insert(pair);
        }
    }

    /// Checks the (key, hour) pairs of `records` and announces anomalies.
    /// Failures are logged: the next batch of the hour checks again.
    #[tracing::instrument(skip_all, fields(records = records.len()))]
    pub async fn check(&self, store: &Store, records: &[UsageRecord], now: Timestamp) {
        let oldest = hour_of(&(now - Duration::hours(1)));
        let pairs: BTreeSet<(String, String, String)> = records
            .iter()
            .filter(|r| !r.refused)
            .map(|r| (r.key_id.clone(), r.account_id.clone(), hour_of(&r.time)))
            .filter(|(_, _, hour)| *hour >= oldest)
            .collect();
        for (key, account, hour) in pairs {
            let pair = (key, hour);
            if self.known(&pair) {
                continue;
            }
            let (key, hour) = &pair;
            match self.check_one(store, key, account.as_str(), hour).await {
                Ok(true) => self.remember(pair),
                Ok(false) => {}
                Err(e) => tracing::warn!(key_id = %key, %hour, error = %e, "anomaly check failed"),
            }
        }
    }

    /// `true` once the hour has been announced (now or before).
    async fn check_one(
        &self,
        store: &Store,
        key: &str,
        account: &str,
        hour: &str,
    ) -> Result<bool, keyhub::aws::store::StoreError> {
        let Some(start) = hour_start(hour) else {
            return Ok(false);
        };
        let first = hour_of(&(start - Duration::hours(TRAILING_HOURS)));
        let rows = store.usage_hours(key, &first, hour).await?;
        let mut by_hour: BTreeMap<String, u64> = BTreeMap::new();
        for row in rows {
            *by_hour.entry(row.hour).or_default() += row.tally.requests;
        }
        let current = by_hour.remove(hour).unwrap_or(0);
        let trailing: Vec<u64> = by_hour.into_values().collect();
        let Some(average) = self.threshold.exceeded(current, &trailing) else {
            return Ok(false);
        };
        let event = Event::new(
            EventKind::UsageAnomaly,
            account,
            json!({
                "key_id": key,
                "hour": keyhub::domain::time::format(&start),
                "requests": current,
                "trailing_hourly_average": (average * 100.0).round() / 100.0,
                "factor": self.threshold.factor,
            }),
            keyhub::domain::time::now(),
        );
        // The marker outlives the hour by a day.
        let expires_at = start.timestamp() + 25 * 3600;
        if store
            .announce_anomaly(key, hour, expires_at, &event)
            .await?
        {
            tracing::info!(key_id = %key, %hour, requests = current, average, "usage.anomaly");
            self.bus.publish(&[event]).await;
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_fires_above_the_factor_and_the_minimum_only() {
        let t = Threshold {
            factor: 10.0,
            min_requests: 20,
        };
        // A quiet key's first requests: below the minimum.
        assert_eq!(t.exceeded(19, &[]), None);
        // A burst after a quiet day.
        assert_eq!(t.exceeded(20, &[]), Some(0.0));
        // 24 busy hours of 10 each: the average is 10, so 100 is not above.
        let busy = vec![10; 24];
        assert_eq!(t.exceeded(100, &busy), None);
        assert_eq!(t.exceeded(101, &busy), Some(10.0));
        // Missing hours count as none: one hour of 48 is an average of 2.
        assert_eq!(t.exceeded(21, &[48]), Some(2.0));
        assert_eq!(t.exceeded(20, &[48]), None);
    }
}
