//! Security visibility: refused authentication attempts and source
//! addresses, per key and per account, in the usage table.
//!
//! - A refused attempt (a record with `refused`) is one transaction: its
//!   marker (`k#{key}` / `fr#{request_id}`, put only if absent, with the
//!   usage retention as TTL), and one `ADD` on the key's and the account's
//!   day counters (`fd#{day}`: failed, s401, s403). So a redelivered attempt
//!   is counted once, and usage_count never moves. Six write units per
//!   attempt (three items, doubled by the transaction); an attempt with no
//!   key (a 401 for a key that did not parse or is unknown) has no account
//!   and is only logged.
//! - Addresses: one counter item per (key or account, day, address),
//!   `ip#{day}#{address}` with `requests`, written in the usage pack's own
//!   transaction (`usage.rs`). Each item is under 100 bytes whatever the
//!   traffic, so nothing grows toward DynamoDB's 400 KB; the number of items
//!   is that of distinct addresses, and the aggregate retention's TTL
//!   removes them. A day's top addresses read one page of at most
//!   `ADDRESS_READ` items (about 100 KB, 13 read units eventually
//!   consistent) and say whether there were more.

use std::time::Duration;

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use super::{Store, StoreError, classify};
use crate::domain::time::{self, Timestamp};
use crate::domain::usage::{UsageRecord, day_of};

/// Address items one top-addresses read looks at.
pub const ADDRESS_READ: i32 = 1000;

/// Whose counters: a key's or an account's.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    Key(&'a str),
    Account(&'a str),
}

impl Subject<'_> {
    fn pk(&self) -> String {
        match self {
            Subject::Key(id) => format!("k#{id}"),
            Subject::Account(id) => format!("a#{id}"),
        }
    }
}

/// Failed attempts over some days.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Failed {
    pub total: u64,
    pub s401: u64,
    pub s403: u64,
}

/// A day's most frequent source addresses, most requests first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopAddresses {
    pub addresses: Vec<(String, u64)>,
    /// More addresses than one read looks at: the top is of the first
    /// `ADDRESS_READ` (in address order).
    pub truncated: bool,
}

/// The sort key of a (day, address) counter.
pub fn address_sk(day: &str, ip: &str) -> String {
    format!("ip#{day}#{ip}")
}

/// The start of a day string (`2026-11-23`).
pub fn day_start(day: &str) -> Option<Timestamp> {
    time::parse(&format!("{day}T00:00:00Z"))
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn num(item: &std::collections::HashMap<String, AttributeValue>, k: &str) -> u64 {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

/// What became of one refused attempt.
enum Applied {
    New,
    Duplicate,
    Failed,
}

impl Store {
    /// Counts refused attempts exactly once each, by request id; the
    /// outcome's indices are into `records`.
    #[tracing::instrument(skip_all, fields(records = records.len()))]
    pub async fn apply_refusals(
        &self,
        records: &[UsageRecord],
        retention: Duration,
        aggregate_retention: Duration,
    ) -> super::UsageOutcome {
        let results = futures::future::join_all(
            records
                .iter()
                .map(|r| self.apply_refusal(r, retention, aggregate_retention)),
        )
        .await;
        let mut outcome = super::UsageOutcome::default();
        for (i, result) in results.into_iter().enumerate() {
            match result {
                Applied::New => outcome.applied += 1,
                Applied::Duplicate => outcome.duplicates += 1,
                Applied::Failed => outcome.failed.push(i),
            }
        }
        outcome
    }

    async fn apply_refusal(
        &self,
        r: &UsageRecord,
        retention: Duration,
        aggregate_retention: Duration,
    ) -> Applied {
        let items = match self.refusal_transaction(r, retention, aggregate_retention) {
            Ok(items) => items,
            Err(e) => {
                tracing::error!(error = %e, "could not build the refusal transaction");
                return Applied::Failed;
            }
        };
        let err = match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => return Applied::New,
            Err(e) => e,
        };
        if let Some(TransactWriteItemsError::TransactionCanceledException(tc)) =
            err.as_service_error()
            && tc
                .cancellation_reasons()
                .first()
                .and_then(|r| r.code())
                .is_some_and(|c| c == "ConditionalCheckFailed")
        {
            return Applied::Duplicate;
        }
        tracing::warn!(error = %classify(err), "refused attempt not counted; it will be retried");
        Applied::Failed
    }

    fn refusal_transaction(
        &self,
        r: &UsageRecord,
        retention: Duration,
        aggregate_retention: Duration,
    ) -> Result<Vec<TransactWriteItem>, StoreError> {
        let day = day_of(&r.time);
        let mut marker = Put::builder()
            .table_name(&self.tables.usage)
            .item("pk", s(format!("k#{}", r.key_id)))
            .item("sk", s(format!("fr#{}", r.request_id)))
            .item("status", n(r.status))
            .item("time", s(time::format(&r.time)))
            .item(
                "expires_at",
                n(r.time.timestamp() + retention.as_secs() as i64),
            )
            .condition_expression("attribute_not_exists(sk)");
        if let Some(ip) = &r.source_ip {
            marker = marker.item("address", s(ip.as_str()));
        }
        let mut items = vec![
            TransactWriteItem::builder()
                .put(marker.build().map_err(build_err)?)
                .build(),
        ];
        let expires =
            day_start(&day).map_or(0, |d| d.timestamp()) + aggregate_retention.as_secs() as i64;
        for subject in [Subject::Key(&r.key_id), Subject::Account(&r.account_id)] {
            let update = Update::builder()
                .table_name(&self.tables.usage)
                .key("pk", s(subject.pk()))
                .key("sk", s(format!("fd#{day}")))
                .update_expression(
                    "ADD failed :one, s401 :s401, s403 :s403 SET fail_day = :day, expires_at = :expires",
                )
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":s401", n(u8::from(r.status == 401)))
                .expression_attribute_values(":s403", n(u8::from(r.status == 403)))
                .expression_attribute_values(":day", s(day.as_str()))
                .expression_attribute_values(":expires", n(expires))
                .build()
                .map_err(build_err)?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        Ok(items)
    }

    /// Failed attempts on the days `from..=to` (`2026-11-23`).
    #[tracing::instrument(skip(self))]
    pub async fn failed_attempts(
        &self,
        subject: Subject<'_>,
        from: &str,
        to: &str,
    ) -> Result<Failed, StoreError> {
        let mut failed = Failed::default();
        let items = self
            .usage_range(&subject.pk(), &format!("fd#{from}"), &format!("fd#{to}"))
            .await?;
        for i in &items {
            failed.total += num(i, "failed");
            failed.s401 += num(i, "s401");
            failed.s403 += num(i, "s403");
        }
        Ok(failed)
    }

    /// A day's `limit` most frequent source addresses (`day`: `2026-11-23`).
    #[tracing::instrument(skip(self))]
    pub async fn top_addresses(
        &self,
        subject: Subject<'_>,
        day: &str,
        limit: usize,
    ) -> Result<TopAddresses, StoreError> {
        let page = self
            .client
            .query()
            .table_name(&self.tables.usage)
            .key_condition_expression("pk = :pk AND begins_with(sk, :day)")
            .expression_attribute_values(":pk", s(subject.pk()))
            .expression_attribute_values(":day", s(format!("ip#{day}#")))
            .limit(ADDRESS_READ)
            .send()
            .await
            .map_err(classify)?;
        let mut addresses: Vec<(String, u64)> = page
            .items
            .unwrap_or_default()
            .iter()
            .filter_map(|i| {
                let ip = i.get("address")?.as_s().ok()?.clone();
                Some((ip, num(i, "requests")))
            })
            .collect();
        addresses.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        addresses.truncate(limit);
        Ok(TopAddresses {
            addresses,
            truncated: page.last_evaluated_key.is_some_and(|k| !k.is_empty()),
        })
    }
}
