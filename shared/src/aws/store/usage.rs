//! Usage: the recent-requests list (one item per record, with a TTL, which
//! doubles as the record's "already counted" marker), per-key per-endpoint
//! per-hour sums, per-key `usage_count` and `last_used` on the key item, and
//! per-account totals and per-account per-hour sums (apart for an account's
//! live and test keys: `account::subject`), and per-key and
//! per-account per-day source-address counters (`security`).
//!
//! Records are sorted by key, hour and endpoint and packed into transactions
//! of up to 100 items: each record's marker, put only if absent, and the sums
//! of the pack, one item per distinct (key, hour, endpoint), key, account and
//! (account, hour).
//! So a record delivered twice is counted once, a crash never leaves half a
//! pack, and a batch costs about one write per record plus one per distinct
//! aggregate.
//!
//! `last_used` and the latency maximum only ever rise. They are set in the
//! same transaction under a condition (`stored <= new`), and only when the
//! value is above what this consumer last saw stored (`Maxima`), so the
//! condition rarely fails; when it does, the pack is retried without that
//! one `SET`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};

use super::{Store, StoreError, TxFailure, backoff, classify, classify_transaction, random_unit};
use crate::domain::account;
use crate::domain::apikey::Environment;
use crate::domain::time::{self, Timestamp};
use crate::domain::usage::{self, Tally, UsageRecord};

/// Tries for a usage pack that meets other transactions on its items (key
/// updates, other consumers): more than a request's `TX_ATTEMPTS`, since no
/// client waits on the consumer, and a pack given back to SQS costs every
/// record of it a redelivery. The pauses add up to under 2.5 s.
const USAGE_TX_ATTEMPTS: u32 = 10;

/// DynamoDB's limit on the actions of one transaction.
const MAX_ITEMS: usize = 100;

type EndpointKey = (String, String, String);
/// A DynamoDB item as the SDK gives it.
type RawItem = HashMap<String, AttributeValue>;

/// The largest `last_used` and latency maximum this consumer knows to be
/// stored, so that it only writes values that raise them.
#[derive(Debug, Default)]
pub struct Maxima {
    last_used: HashMap<String, Timestamp>,
    latency: HashMap<EndpointKey, f64>,
}

impl Maxima {
    const CAP: usize = 50_000;

    fn note_last_used(&mut self, key: &str, t: Timestamp) {
        if self.last_used.len() > Self::CAP {
            self.last_used.clear();
        }
        let e = self.last_used.entry(key.to_string()).or_insert(t);
        *e = (*e).max(t);
    }

    fn note_latency(&mut self, agg: &EndpointKey, m: f64) {
        if self.latency.len() > Self::CAP {
            self.latency.clear();
        }
        let e = self.latency.entry(agg.clone()).or_insert(m);
        *e = e.max(m);
    }
}

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
    /// A key's count; `true` if it also sets `last_used`.
    Key(String, bool),
    /// An endpoint-hour sum; `true` if it also sets the latency maximum.
    Endpoint(EndpointKey, bool),
    Account,
    AccountHour,
    Address,
}

/// What a failed condition taught: which parts to leave out next time.
#[derive(Default)]
struct Exclusions {
    deleted_keys: HashSet<String>,
    no_last_used: HashSet<String>,
    no_max: HashSet<EndpointKey>,
}

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

impl Store {
    /// The transaction for a pack of records: markers first (in record
    /// order), then the sums.
    fn usage_transaction(
        &self,
        records: &[(usize, &UsageRecord)],
        skip: &Exclusions,
        known: &Maxima,
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
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().put(put).build());
            kinds.push(Item::Marker(*i));
        }
        let owned: Vec<UsageRecord> = records.iter().map(|(_, r)| (*r).clone()).collect();
        let sums = usage::sum(&owned);
        for (agg, t) in &sums.endpoints {
            let (key, hour, endpoint) = agg;
            let expires = hour_start(hour).map_or(0, |h| h.timestamp())
                + aggregate_retention.as_secs() as i64;
            let (add, values) = add_tally(t);
            let raise = !skip.no_max.contains(agg)
                && known.latency.get(agg).is_none_or(|m| t.latency_max_ms > *m);
            let mut set =
                "hour_start = :hour, endpoint = :endpoint, expires_at = :expires".to_string();
            let mut b = Update::builder()
                .table_name(&self.tables.usage)
                .key("pk", s(format!("k#{key}")))
                .key("sk", s(format!("h#{hour}#{endpoint}")))
                .expression_attribute_values(":hour", s(hour.as_str()))
                .expression_attribute_values(":endpoint", s(endpoint.as_str()))
                .expression_attribute_values(":expires", n(expires))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            if raise {
                set.push_str(", latency_max_ms = :max");
                b = b
                    .condition_expression(
                        "attribute_not_exists(latency_max_ms) OR latency_max_ms <= :max",
                    )
                    .expression_attribute_values(":max", n(t.latency_max_ms));
            }
            for (k, v) in values {
                b = b.expression_attribute_values(k, v);
            }
            let update = b
                .update_expression(format!("{add} SET {set}"))
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().update(update).build());
            kinds.push(Item::Endpoint(agg.clone(), raise));
        }
        for (key, t) in &sums.keys {
            if skip.deleted_keys.contains(key) {
                continue;
            }
            let last = t.last.filter(|l| {
                !skip.no_last_used.contains(key) && known.last_used.get(key).is_none_or(|k| l > k)
            });
            let mut b = Update::builder()
                .table_name(&self.tables.keys)
                .key("id", s(key.as_str()))
                .expression_attribute_values(":n", n(t.requests))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            b = match last {
                Some(l) => b
                    .update_expression("ADD usage_count :n SET last_used = :t")
                    .condition_expression("attribute_exists(id) AND (attribute_not_exists(last_used) OR last_used <= :t)")
                    .expression_attribute_values(":t", s(time::format(&l))),
                None => b
                    .update_expression("ADD usage_count :n")
                    .condition_expression("attribute_exists(id)"),
            };
            items.push(
                TransactWriteItem::builder()
                    .update(b.build().map_err(build_err)?)
                    .build(),
            );
            kinds.push(Item::Key(key.clone(), last.is_some()));
        }
        // An account's sums, apart for its live and its test keys: the
        // subject is `a#{account}` or `a#{account}#test`.
        for (subject, t) in &sums.accounts {
            let (add, values) = add_tally(t);
            let mut b = Update::builder()
                .table_name(&self.tables.usage)
                .key("pk", s(subject.as_str()))
                .key("sk", s("total"))
                .update_expression(add);
            for (k, v) in values {
                b = b.expression_attribute_values(k, v);
            }
            items.push(
                TransactWriteItem::builder()
                    .update(b.build().map_err(build_err)?)
                    .build(),
            );
            kinds.push(Item::Account);
        }
        // The account's hours: plain sums (no latency maximum, so no
        // condition), in the same transaction as the markers, so they count
        // each record exactly once as the key's sums do.
        for ((subject, hour), t) in &sums.account_hours {
            let expires = hour_start(hour).map_or(0, |h| h.timestamp())
                + aggregate_retention.as_secs() as i64;
            let (add, values) = add_tally(t);
            let mut b = Update::builder()
                .table_name(&self.tables.usage)
                .key("pk", s(subject.as_str()))
                .key("sk", s(format!("h#{hour}")))
                .update_expression(format!(
                    "{add} SET hour_start = :hour, expires_at = :expires"
                ))
                .expression_attribute_values(":hour", s(hour.as_str()))
                .expression_attribute_values(":expires", n(expires));
            for (k, v) in values {
                b = b.expression_attribute_values(k, v);
            }
            items.push(
                TransactWriteItem::builder()
                    .update(b.build().map_err(build_err)?)
                    .build(),
            );
            kinds.push(Item::AccountHour);
        }
        // Source addresses: one small counter item per (key or account,
        // day, address), in the same transaction, so each record counts
        // once; `security::top_addresses` reads a day's of one subject.
        let addresses = sums
            .addresses
            .iter()
            .map(|((key, day, ip), c)| (format!("k#{key}"), day, ip, c))
            .chain(
                sums.account_addresses
                    .iter()
                    .map(|((account, day, ip), c)| (format!("a#{account}"), day, ip, c)),
            );
        for (pk, day, ip, count) in addresses {
            let expires = super::security::day_start(day).map_or(0, |d| d.timestamp())
                + aggregate_retention.as_secs() as i64;
            let b = Update::builder()
                .table_name(&self.tables.usage)
                .key("pk", s(pk))
                .key("sk", s(super::security::address_sk(day, ip)))
                .update_expression(
                    "ADD requests :n SET address = :ip, address_day = :day, expires_at = :expires",
                )
                .expression_attribute_values(":n", n(count))
                .expression_attribute_values(":ip", s(ip.as_str()))
                .expression_attribute_values(":day", s(day.as_str()))
                .expression_attribute_values(":expires", n(expires));
            items.push(
                TransactWriteItem::builder()
                    .update(b.build().map_err(build_err)?)
                    .build(),
            );
            kinds.push(Item::Address);
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
        maxima: &Mutex<Maxima>,
    ) -> UsageOutcome {
        let mut order: Vec<(usize, &UsageRecord)> = records.iter().enumerate().collect();
        order.sort_by(|(_, a), (_, b)| {
            (&a.key_id, usage::hour_of(&a.time), a.endpoint()).cmp(&(
                &b.key_id,
                usage::hour_of(&b.time),
                b.endpoint(),
            ))
        });
        let mut outcome = UsageOutcome::default();
        for pack in packs(order) {
            self.apply_pack(pack, retention, aggregate_retention, maxima, &mut outcome)
                .await;
        }
        outcome
    }

    /// One transaction's worth. Duplicates, deleted keys and stale maxima are
    /// taken out and the rest retried. A conflict with another transaction
    /// (a key update racing this pack) or throttling is retried with
    /// jittered backoff; if it persists, or DynamoDB cannot be reached, the
    /// whole pack is reported failed, to come back from SQS (nothing of it
    /// was written, and its markers keep the redelivery from counting
    /// twice). Only a write DynamoDB refuses as invalid splits the pack in
    /// halves, so that in the end only the records that cannot be written
    /// fail: bisecting a conflict would turn a passing contention into
    /// single records failing until they reach the dead-letter queue.
    fn apply_pack<'a>(
        &'a self,
        mut live: Vec<(usize, &'a UsageRecord)>,
        retention: Duration,
        aggregate_retention: Duration,
        maxima: &'a Mutex<Maxima>,
        outcome: &'a mut UsageOutcome,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            let mut skip = Exclusions::default();
            let mut attempt: u32 = 0;
            while !live.is_empty() {
                let built = match maxima.lock() {
                    Ok(known) => {
                        self.usage_transaction(&live, &skip, &known, retention, aggregate_retention)
                    }
                    Err(_) => Err(StoreError::Internal("maxima lock poisoned".into())),
                };
                let (items, kinds) = match built {
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
                        if let Ok(mut known) = maxima.lock() {
                            let owned: Vec<UsageRecord> =
                                live.iter().map(|(_, r)| (*r).clone()).collect();
                            let sums = usage::sum(&owned);
                            for kind in &kinds {
                                match kind {
                                    Item::Key(k, true) => {
                                        if let Some(t) = sums.keys.get(k).and_then(|t| t.last) {
                                            known.note_last_used(k, t);
                                        }
                                    }
                                    Item::Endpoint(agg, true) => {
                                        if let Some(t) = sums.endpoints.get(agg) {
                                            known.note_latency(agg, t.latency_max_ms);
                                        }
                                    }
                                    _ => {}
                                }
                            }
                        }
                        return;
                    }
                    Err(e) => e,
                };
                let reasons: Vec<(Option<String>, Option<RawItem>)> = match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(tc)) => tc
                        .cancellation_reasons()
                        .iter()
                        .map(|r| (r.code().map(str::to_string), r.item().cloned()))
                        .collect(),
                    _ => Vec::new(),
                };
                let mut resolved = false;
                for (idx, (code, old)) in reasons.iter().enumerate() {
                    if code.as_deref() != Some("ConditionalCheckFailed") {
                        continue;
                    }
                    resolved = true;
                    match kinds.get(idx) {
                        Some(Item::Marker(i)) => {
                            live.retain(|(j, _)| j != i);
                            outcome.duplicates += 1;
                        }
                        // Deleted: its records still count for its hours and account.
                        Some(Item::Key(k, _)) if old.is_none() => {
                            skip.deleted_keys.insert(k.clone());
                        }
                        Some(Item::Key(k, _)) => {
                            skip.no_last_used.insert(k.clone());
                            let stored = old
                                .as_ref()
                                .map(|o| text(o, "last_used"))
                                .and_then(|t| time::parse(&t));
                            if let (Some(t), Ok(mut known)) = (stored, maxima.lock()) {
                                known.note_last_used(k, t);
                            }
                        }
                        Some(Item::Endpoint(agg, _)) => {
                            skip.no_max.insert(agg.clone());
                            if let (Some(o), Ok(mut known)) = (old, maxima.lock()) {
                                known.note_latency(agg, num(o, "latency_max_ms"));
                            }
                        }
                        _ => resolved = false,
                    }
                }
                if resolved {
                    continue;
                }
                match classify_transaction(err) {
                    // Only a write DynamoDB refuses as written is isolated:
                    // halving finds the record(s) that cannot be written.
                    TxFailure::Invalid(reason) => {
                        if live.len() == 1 {
                            tracing::error!(record = live[0].0, %reason, "a usage record cannot be written");
                            outcome.failed.push(live[0].0);
                            return;
                        }
                        let right = live.split_off(live.len() / 2);
                        self.apply_pack(live, retention, aggregate_retention, maxima, outcome)
                            .await;
                        self.apply_pack(right, retention, aggregate_retention, maxima, outcome)
                            .await;
                        return;
                    }
                    // Another transaction held an item (a key update, another
                    // consumer), or throttling: the same pack, a moment later.
                    TxFailure::Retryable(reason) if attempt + 1 < USAGE_TX_ATTEMPTS => {
                        attempt += 1;
                        tracing::warn!(attempt, %reason, "usage transaction contended; retrying");
                        tokio::time::sleep(backoff(attempt, random_unit())).await;
                    }
                    // Still contended, an outage (the SDK has retried it), or
                    // anything else: nothing of the pack was written, so all
                    // of it goes back to SQS to be redelivered, and its
                    // markers keep a later success from counting twice.
                    other => {
                        tracing::warn!(
                            records = live.len(),
                            error = %other.into_store_error(),
                            "usage pack not applied; SQS will redeliver it"
                        );
                        outcome.failed.extend(live.iter().map(|(i, _)| *i));
                        return;
                    }
                }
            }
        })
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
        let items = self
            .usage_range(
                &format!("k#{key_id}"),
                &format!("h#{from}"),
                &format!("h#{to}#~"),
            )
            .await?;
        Ok(items
            .iter()
            .map(|i| EndpointHour {
                hour: text(i, "hour_start"),
                endpoint: text(i, "endpoint"),
                tally: tally_of(i),
            })
            .collect())
    }

    /// An account's per-hour sums of its keys of `environment` for the
    /// hours `from..=to` (`2026-11-23T18`), as (hour, sums).
    #[tracing::instrument(skip(self))]
    pub async fn account_usage_hours(
        &self,
        account_id: &str,
        environment: Environment,
        from: &str,
        to: &str,
    ) -> Result<Vec<(String, Tally)>, StoreError> {
        let items = self
            .usage_range(
                &account::subject(account_id, environment),
                &format!("h#{from}"),
                &format!("h#{to}"),
            )
            .await?;
        Ok(items
            .iter()
            .map(|i| (text(i, "hour_start"), tally_of(i)))
            .collect())
    }

    /// An account's all-time sums of its keys of `environment`.
    #[tracing::instrument(skip(self))]
    pub async fn account_usage(
        &self,
        account_id: &str,
        environment: Environment,
    ) -> Result<Tally, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.usage)
            .key("pk", s(account::subject(account_id, environment)))
            .key("sk", s("total"))
            .send()
            .await
            .map_err(classify)?;
        Ok(out.item.as_ref().map(tally_of).unwrap_or_default())
    }
}

/// Splits sorted records into packs whose transactions stay within
/// `MAX_ITEMS`: each record adds its marker, and one item for each aggregate
/// (key-hour-endpoint, key, account, account-hour) the pack does not have yet.
fn packs(sorted: Vec<(usize, &UsageRecord)>) -> Vec<Vec<(usize, &UsageRecord)>> {
    let mut out = Vec::new();
    let mut pack: Vec<(usize, &UsageRecord)> = Vec::new();
    let (mut endpoints, mut keys, mut accounts) = (HashSet::new(), HashSet::new(), HashSet::new());
    let mut account_hours = HashSet::new();
    // (key, day, address) and (account, day, address): two items each.
    let mut addresses = HashSet::new();
    for (i, r) in sorted {
        let e = (r.key_id.clone(), usage::hour_of(&r.time), r.endpoint());
        // An account's sums are one item per subject (live, test).
        let subject = r.account_subject();
        let ah = (subject.clone(), usage::hour_of(&r.time));
        let ad = r.source_ip.as_ref().map(|ip| {
            (
                r.key_id.clone(),
                r.account_id.clone(),
                usage::day_of(&r.time),
                ip.clone(),
            )
        });
        let added = 1
            + usize::from(!endpoints.contains(&e))
            + usize::from(!keys.contains(&r.key_id))
            + usize::from(!accounts.contains(&subject))
            + usize::from(!account_hours.contains(&ah))
            + ad.as_ref()
                .map_or(0, |a| 2 * usize::from(!addresses.contains(a)));
        let held = pack.len()
            + endpoints.len()
            + keys.len()
            + accounts.len()
            + account_hours.len()
            + 2 * addresses.len();
        if held + added > MAX_ITEMS {
            out.push(std::mem::take(&mut pack));
            endpoints.clear();
            keys.clear();
            accounts.clear();
            account_hours.clear();
            addresses.clear();
        }
        endpoints.insert(e);
        keys.insert(r.key_id.clone());
        accounts.insert(subject);
        account_hours.insert(ah);
        if let Some(a) = ad {
            addresses.insert(a);
        }
        pack.push((i, r));
    }
    if !pack.is_empty() {
        out.push(pack);
    }
    out
}

/// Seconds since the epoch of an hour string, for callers building ranges.
pub fn hour_start(hour: &str) -> Option<Timestamp> {
    time::parse(&format!("{hour}:00:00Z"))
}
