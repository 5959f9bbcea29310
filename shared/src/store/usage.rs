//! Usage: the recent-requests list (one item per record, with a TTL, which
//! doubles as the record's "already counted" marker), per-key per-endpoint
//! per-hour sums, per-key `usage_count` and `last_used` on the key item, and
//! per-account totals.
//!
//! A chunk of records is applied in one transaction: each record's marker is
//! put only if absent, and the sums of the records go with them, so a record
//! delivered twice is counted once and a crash never leaves half a batch.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use futures::future::join_all;

use super::{Store, StoreError, classify};
use crate::time::{self, Timestamp};
use crate::usage::{self, Tally, UsageRecord};

/// Records per transaction: a marker each, and at most one sum item per
/// record for endpoints, keys and accounts, within DynamoDB's 100 actions.
const CHUNK: usize = 20;
const ATTEMPTS: usize = 6;

/// What happened to a batch, by index into the records given.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UsageOutcome {
    pub applied: usize,
    pub duplicates: usize,
    pub failed: Vec<usize>,
}

/// One entry of a key's recent-requests list.
#[derive(Debug, Clone, PartialEq)]
pub struct RecentRequest {
    pub request_id: String,
    pub method: String,
    pub route: String,
    pub status: u16,
    pub latency_ms: f64,
    pub time: String,
}

/// One (hour, endpoint) aggregate of a key.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointHour {
    pub hour: String,
    pub endpoint: String,
    pub tally: Tally,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn num(item: &HashMap<String, AttributeValue>, k: &str) -> f64 {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn text(item: &HashMap<String, AttributeValue>, k: &str) -> String {
    item.get(k)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

fn tally_of(item: &HashMap<String, AttributeValue>) -> Tally {
    Tally {
        requests: num(item, "requests") as u64,
        s2xx: num(item, "s2xx") as u64,
        s3xx: num(item, "s3xx") as u64,
        s4xx: num(item, "s4xx") as u64,
        s5xx: num(item, "s5xx") as u64,
        s429: num(item, "s429") as u64,
        latency_sum_ms: num(item, "latency_sum_ms"),
        latency_max_ms: num(item, "latency_max_ms"),
        last: None,
    }
}

/// `ADD` of a tally's counters, with its values.
fn add_tally(t: &Tally) -> (String, Vec<(String, AttributeValue)>) {
    let fields = [
        ("requests", t.requests as f64),
        ("s2xx", t.s2xx as f64),
        ("s3xx", t.s3xx as f64),
        ("s4xx", t.s4xx as f64),
        ("s5xx", t.s5xx as f64),
        ("s429", t.s429 as f64),
        ("latency_sum_ms", t.latency_sum_ms),
    ];
    let expr = fields
        .iter()
        .map(|(f, _)| format!("{f} :{f}"))
        .collect::<Vec<_>>()
        .join(", ");
    let values = fields
        .iter()
        .map(|(f, v)| (format!(":{f}"), n(v)))
        .collect();
    (format!("ADD {expr}"), values)
}

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Marker(usize),
    Key(String),
    Other,
}

impl Store {
    fn usage_update(
        &self,
        pk: String,
        sk: String,
        t: &Tally,
        extra_set: Option<(&str, Vec<(String, AttributeValue)>)>,
    ) -> Result<Update, StoreError> {
        let (mut expr, values) = add_tally(t);
        let mut b = Update::builder()
            .table_name(&self.tables.usage)
            .key("pk", s(pk))
            .key("sk", s(sk));
        if let Some((set, vals)) = extra_set {
            expr = format!("{expr} SET {set}");
            for (k, v) in vals {
                b = b.expression_attribute_values(k, v);
            }
        }
        for (k, v) in values {
            b = b.expression_attribute_values(k, v);
        }
        b.update_expression(expr)
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))
    }

    /// The transaction for some records: markers first (in record order),
    /// then the sums.
    fn usage_transaction(
        &self,
        records: &[(usize, &UsageRecord)],
        deleted_keys: &HashSet<String>,
        retention: Duration,
        aggregate_retention: Duration,
    ) -> Result<(Vec<TransactWriteItem>, Vec<Item>), StoreError> {
        let mut items = Vec::new();
        let mut kinds = Vec::new();
        for (i, r) in records {
            let expires = r.time.timestamp() + retention.as_secs() as i64;
            let put = Put::builder()
                .table_name(&self.tables.usage)
                .item("pk", s(format!("k#{}", r.key_id)))
                .item(
                    "sk",
                    s(format!("r#{}#{}", time::format(&r.time), r.request_id)),
                )
                .item("request_id", s(&r.request_id))
                .item("method", s(&r.method))
                .item("route", s(&r.route))
                .item("status", n(r.status))
                .item("latency_ms", n(r.latency_ms))
                .item("time", s(time::format(&r.time)))
                .item("expires_at", n(expires))
                .condition_expression("attribute_not_exists(sk)")
                .build()
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            items.push(TransactWriteItem::builder().put(put).build());
            kinds.push(Item::Marker(*i));
        }
        let owned: Vec<UsageRecord> = records.iter().map(|(_, r)| (*r).clone()).collect();
        let sums = usage::sum(&owned);
        for ((key, hour, endpoint), t) in &sums.endpoints {
            let expires = time::parse(&format!("{hour}:00:00Z")).map_or(0, |h| h.timestamp())
                + aggregate_retention.as_secs() as i64;
            let update = self.usage_update(
                format!("k#{key}"),
                format!("h#{hour}#{endpoint}"),
                t,
                Some((
                    "hour_start = :hour, endpoint = :endpoint, expires_at = :expires",
                    vec![
                        (":hour".into(), s(hour.as_str())),
                        (":endpoint".into(), s(endpoint.as_str())),
                        (":expires".into(), n(expires)),
                    ],
                )),
            )?;
            items.push(TransactWriteItem::builder().update(update).build());
            kinds.push(Item::Other);
        }
        for (key, t) in &sums.keys {
            if deleted_keys.contains(key) {
                continue;
            }
            let update = Update::builder()
                .table_name(&self.tables.keys)
                .key("id", s(key.as_str()))
                .update_expression("ADD usage_count :n")
                .condition_expression("attribute_exists(id)")
                .expression_attribute_values(":n", n(t.requests))
                .build()
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            items.push(TransactWriteItem::builder().update(update).build());
            kinds.push(Item::Key(key.clone()));
        }
        for (account, t) in &sums.accounts {
            let update = self.usage_update(format!("a#{account}"), "total".to_string(), t, None)?;
            items.push(TransactWriteItem::builder().update(update).build());
            kinds.push(Item::Other);
        }
        Ok((items, kinds))
    }

    /// Applies records exactly once each; see the module docs.
    #[tracing::instrument(skip_all, fields(records = records.len()))]
    pub async fn apply_usage(
        &self,
        records: &[UsageRecord],
        retention: Duration,
        aggregate_retention: Duration,
    ) -> UsageOutcome {
        let mut outcome = UsageOutcome::default();
        let indexed: Vec<(usize, &UsageRecord)> = records.iter().enumerate().collect();
        for chunk in indexed.chunks(CHUNK) {
            self.apply_chunk(chunk.to_vec(), retention, aggregate_retention, &mut outcome)
                .await;
        }
        outcome
    }

    /// One transaction's worth. Duplicates and deleted keys are taken out and
    /// the rest retried; throttling is retried with backoff; a write DynamoDB
    /// refuses outright (a corrupt item) splits the chunk in halves, so that
    /// in the end only the records that cannot be written fail.
    fn apply_chunk<'a>(
        &'a self,
        mut live: Vec<(usize, &'a UsageRecord)>,
        retention: Duration,
        aggregate_retention: Duration,
        outcome: &'a mut UsageOutcome,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let mut deleted_keys = HashSet::new();
            let mut attempt = 0;
            while !live.is_empty() {
                let (items, kinds) = match self.usage_transaction(
                    &live,
                    &deleted_keys,
                    retention,
                    aggregate_retention,
                ) {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::error!(error = %e, "could not build the usage transaction");
                        outcome.failed.extend(live.iter().map(|(i, _)| *i));
                        return;
                    }
                };
                let err = match self
                    .client
                    .transact_write_items()
                    .set_transact_items(Some(items))
                    .send()
                    .await
                {
                    Ok(_) => {
                        outcome.applied += live.len();
                        self.raise_maxima(&live, &deleted_keys).await;
                        return;
                    }
                    Err(e) => e,
                };
                let reasons: Vec<Option<String>> = match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(tc)) => tc
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                let mut resolved = false;
                for (idx, code) in reasons.iter().enumerate() {
                    if code.as_deref() != Some("ConditionalCheckFailed") {
                        continue;
                    }
                    match kinds.get(idx) {
                        Some(Item::Marker(i)) => {
                            live.retain(|(j, _)| j != i);
                            outcome.duplicates += 1;
                            resolved = true;
                        }
                        Some(Item::Key(k)) => {
                            // A deleted key: its records still count for its
                            // hours and its account.
                            deleted_keys.insert(k.clone());
                            resolved = true;
                        }
                        _ => {}
                    }
                }
                if resolved {
                    continue;
                }
                let refused = reasons
                    .iter()
                    .any(|c| c.as_deref() == Some("ValidationError"))
                    || matches!(classify(err), StoreError::Internal(_));
                if refused {
                    if live.len() == 1 {
                        tracing::error!(record = live[0].0, "a usage record cannot be written");
                        outcome.failed.push(live[0].0);
                        return;
                    }
                    let right = live.split_off(live.len() / 2);
                    self.apply_chunk(live, retention, aggregate_retention, outcome)
                        .await;
                    self.apply_chunk(right, retention, aggregate_retention, outcome)
                        .await;
                    return;
                }
                attempt += 1;
                if attempt >= ATTEMPTS {
                    outcome.failed.extend(live.iter().map(|(i, _)| *i));
                    return;
                }
                tracing::warn!(attempt, "usage transaction not applied; retrying");
                let backoff = Duration::from_millis(20 * (1 << attempt) as u64);
                tokio::time::sleep(backoff + Duration::from_millis(jitter_ms(attempt))).await;
            }
        })
    }

    /// `last_used` and `latency_max_ms` only ever rise: a conditional
    /// `SET` each, idempotent, so outside the transaction and best effort.
    async fn raise_maxima(&self, live: &[(usize, &UsageRecord)], deleted_keys: &HashSet<String>) {
        let owned: Vec<UsageRecord> = live.iter().map(|(_, r)| (*r).clone()).collect();
        let sums = usage::sum(&owned);
        let mut calls = Vec::new();
        for (key, t) in &sums.keys {
            let Some(last) = t.last else { continue };
            if deleted_keys.contains(key) {
                continue;
            }
            calls.push(
                self.client
                    .update_item()
                    .table_name(&self.tables.keys)
                    .key("id", s(key.as_str()))
                    .update_expression("SET last_used = :t")
                    .condition_expression("attribute_exists(id) AND (attribute_not_exists(last_used) OR last_used < :t)")
                    .expression_attribute_values(":t", s(time::format(&last)))
                    .send(),
            );
        }
        for ((key, hour, endpoint), t) in &sums.endpoints {
            calls.push(
                self.client
                    .update_item()
                    .table_name(&self.tables.usage)
                    .key("pk", s(format!("k#{key}")))
                    .key("sk", s(format!("h#{hour}#{endpoint}")))
                    .update_expression("SET latency_max_ms = :m")
                    .condition_expression(
                        "attribute_not_exists(latency_max_ms) OR latency_max_ms < :m",
                    )
                    .expression_attribute_values(":m", n(t.latency_max_ms))
                    .send(),
            );
        }
        for result in join_all(calls).await {
            if let Err(e) = result
                && !e
                    .as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception())
            {
                tracing::warn!(error = %classify(e), "could not raise a usage maximum");
            }
        }
    }

    /// A key's most recent requests, newest first.
    #[tracing::instrument(skip(self))]
    pub async fn recent_usage(
        &self,
        key_id: &str,
        limit: i32,
    ) -> Result<Vec<RecentRequest>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.tables.usage)
            .key_condition_expression("pk = :pk AND begins_with(sk, :r)")
            .expression_attribute_values(":pk", s(format!("k#{key_id}")))
            .expression_attribute_values(":r", s("r#"))
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .items
            .unwrap_or_default()
            .iter()
            .map(|i| RecentRequest {
                request_id: text(i, "request_id"),
                method: text(i, "method"),
                route: text(i, "route"),
                status: num(i, "status") as u16,
                latency_ms: num(i, "latency_ms"),
                time: text(i, "time"),
            })
            .collect())
    }

    /// A key's (hour, endpoint) sums for the hours `from..=to` (`2026-11-23T18`).
    #[tracing::instrument(skip(self))]
    pub async fn usage_hours(
        &self,
        key_id: &str,
        from: &str,
        to: &str,
    ) -> Result<Vec<EndpointHour>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.tables.usage)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(format!("k#{key_id}")))
                .expression_attribute_values(":from", s(format!("h#{from}")))
                .expression_attribute_values(":to", s(format!("h#{to}#~")))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            for i in page.items.unwrap_or_default() {
                out.push(EndpointHour {
                    hour: text(&i, "hour_start"),
                    endpoint: text(&i, "endpoint"),
                    tally: tally_of(&i),
                });
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(out)
    }

    /// An account's all-time sums.
    #[tracing::instrument(skip(self))]
    pub async fn account_usage(&self, account_id: &str) -> Result<Tally, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.usage)
            .key("pk", s(format!("a#{account_id}")))
            .key("sk", s("total"))
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item.as_ref().map(tally_of).unwrap_or_default())
    }
}

fn jitter_ms(attempt: usize) -> u64 {
    let mut b = [0u8; 1];
    let _ = getrandom::fill(&mut b);
    u64::from(b[0]) % (10 * (attempt as u64 + 1))
}

/// Seconds since the epoch of an hour string, for callers building ranges.
pub fn hour_start(hour: &str) -> Option<Timestamp> {
    time::parse(&format!("{hour}:00:00Z"))
}
