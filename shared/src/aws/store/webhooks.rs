//! Webhook endpoints (under their account), deliveries (under their
//! endpoint, newest last by id) and the event outbox.

use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, TransactWriteItem, Update,
};

use super::{Store, StoreError, TxFailure, classify, from_item, to_item};
use crate::domain::events::Event;
use crate::domain::time::{self, Timestamp};
use crate::domain::webhook::{Attempt, Delivery, DeliveryStatus, Endpoint};

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn conditional<E, R>(
    e: aws_sdk_dynamodb::error::SdkError<E, R>,
    on_condition: StoreError,
) -> StoreError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if e.as_service_error().and_then(|se| se.code()) == Some("ConditionalCheckFailedException") {
        on_condition
    } else {
        classify(e)
    }
}

/// A change to an endpoint; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<Option<String>>,
    pub is_active: Option<bool>,
}

/// Endpoints an account may have.
pub const MAX_ENDPOINTS: u32 = 20;

/// The item counting an account's endpoints (beside them, outside `ep#`).
/// An endpoint lives under its account: `a#{account}` / `ep#{id}`.
fn endpoint_keys(account_id: &str, id: &str) -> (String, String) {
    (format!("a#{account_id}"), format!("ep#{id}"))
}

/// A delivery lives under its endpoint: `ep#{endpoint}` / `d#{id}`.
fn delivery_keys(endpoint_id: &str, delivery_id: &str) -> (String, String) {
    (format!("ep#{endpoint_id}"), format!("d#{delivery_id}"))
}

/// The delivery log is kept 30 days (the item's DynamoDB TTL, `expires_at`).
const DELIVERY_KEPT_SECONDS: i64 = 30 * 86_400;

type Item = std::collections::HashMap<String, AttributeValue>;

/// An endpoint's item: the record and its storage keys.
fn endpoint_item(endpoint: &Endpoint) -> Result<Item, StoreError> {
    let (pk, sk) = endpoint_keys(&endpoint.account_id, &endpoint.id);
    let mut item = to_item(endpoint)?;
    item.insert("pk".into(), s(pk));
    item.insert("sk".into(), s(sk));
    Ok(item)
}

/// A delivery's item: the record, its storage keys and its TTL.
fn delivery_item(delivery: &Delivery) -> Result<Item, StoreError> {
    let (pk, sk) = delivery_keys(&delivery.endpoint_id, &delivery.id);
    let mut item = to_item(delivery)?;
    item.insert("pk".into(), s(pk));
    item.insert("sk".into(), s(sk));
    let ttl = delivery.created_at.timestamp() + DELIVERY_KEPT_SECONDS;
    item.insert("expires_at".into(), AttributeValue::N(ttl.to_string()));
    Ok(item)
}

fn endpoint_count_key(account_id: &str) -> (String, String) {
    (format!("a#{account_id}"), "count#endpoints".to_string())
}

fn build_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

/// Where a page of deliveries ends.
pub type DeliveryCursor = Option<String>;

impl Store {
    /// One item of the webhooks table, read consistently.
    async fn get_webhooks_item<T: serde::de::DeserializeOwned>(
        &self,
        pk: String,
        sk: String,
    ) -> Result<Option<T>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.webhooks)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        out.item.map(from_item).transpose()
    }

    /// The account's endpoint count, as its counter item holds it.
    async fn endpoint_count(&self, account_id: &str) -> Result<Option<u64>, StoreError> {
        let (pk, sk) = endpoint_count_key(account_id);
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.webhooks)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .item
            .as_ref()
            .and_then(|i| i.get("n"))
            .and_then(|n| n.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
            .map(|n| n.max(0) as u64))
    }

    /// Creates an endpoint unless its account has `MAX_ENDPOINTS` already.
    /// The count is an item of its own, raised under `n < MAX` in the same
    /// transaction as the endpoint's put, so that concurrent creations
    /// cannot overshoot the cap the way a count-then-put would. An account
    /// from before the counter gets one, from its endpoints, on its next
    /// creation.
    #[tracing::instrument(skip_all, fields(endpoint_id = %endpoint.id))]
    pub async fn put_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        let full = || {
            StoreError::Conflict(format!(
                "an account has at most {MAX_ENDPOINTS} webhook endpoints"
            ))
        };
        let (pk, sk) = endpoint_count_key(&endpoint.account_id);
        for _ in 0..3 {
            let counter = match self.endpoint_count(&endpoint.account_id).await? {
                Some(_) => TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(&self.tables.webhooks)
                            .key("pk", s(&pk))
                            .key("sk", s(&sk))
                            .update_expression("ADD n :one")
                            .condition_expression("n < :max")
                            .expression_attribute_values(":one", AttributeValue::N("1".into()))
                            .expression_attribute_values(
                                ":max",
                                AttributeValue::N(MAX_ENDPOINTS.to_string()),
                            )
                            .build()
                            .map_err(build_err)?,
                    )
                    .build(),
                None => {
                    let existing = self.list_endpoints(&endpoint.account_id).await?.len();
                    if existing >= MAX_ENDPOINTS as usize {
                        return Err(full());
                    }
                    TransactWriteItem::builder()
                        .put(
                            Put::builder()
                                .table_name(&self.tables.webhooks)
                                .item("pk", s(&pk))
                                .item("sk", s(&sk))
                                .item("n", AttributeValue::N((existing + 1).to_string()))
                                .condition_expression("attribute_not_exists(pk)")
                                .build()
                                .map_err(build_err)?,
                        )
                        .build()
                }
            };
            let put = TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&self.tables.webhooks)
                        .set_item(Some(endpoint_item(endpoint)?))
                        .condition_expression("attribute_not_exists(sk)")
                        .build()
                        .map_err(build_err)?,
                )
                .build();
            match self.transact(vec![counter, put]).await {
                Ok(()) => return Ok(()),
                Err(TxFailure::Conditions(failed)) if failed.get(1) == Some(&true) => {
                    return Err(StoreError::Conflict(
                        "an endpoint with this id exists".into(),
                    ));
                }
                // The counter moved since it was read: at the cap, or made
                // by a concurrent creation; read it again.
                Err(TxFailure::Conditions(_)) => {
                    if self
                        .endpoint_count(&endpoint.account_id)
                        .await?
                        .is_some_and(|n| n >= u64::from(MAX_ENDPOINTS))
                    {
                        return Err(full());
                    }
                }
                Err(other) => return Err(other.into_store_error()),
            }
        }
        Err(StoreError::Unavailable(
            "the endpoint count kept changing".into(),
        ))
    }

    #[tracing::instrument(skip(self))]
    pub async fn get_endpoint(
        &self,
        account_id: &str,
        id: &str,
    ) -> Result<Option<Endpoint>, StoreError> {
        let (pk, sk) = endpoint_keys(account_id, id);
        self.get_webhooks_item(pk, sk).await
    }

    #[tracing::instrument(skip(self))]
    pub async fn list_endpoints(&self, account_id: &str) -> Result<Vec<Endpoint>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.tables.webhooks)
            .key_condition_expression("pk = :pk AND begins_with(sk, :ep)")
            .expression_attribute_values(":pk", s(format!("a#{account_id}")))
            .expression_attribute_values(":ep", s("ep#"))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect()
    }

    /// Applies a patch; turning an endpoint back on also clears its failure
    /// run and the reason it was turned off.
    #[tracing::instrument(skip(self, patch))]
    pub async fn update_endpoint(
        &self,
        account_id: &str,
        id: &str,
        patch: &EndpointPatch,
        now: Timestamp,
    ) -> Result<Endpoint, StoreError> {
        let (pk, sk) = endpoint_keys(account_id, id);
        let mut set = vec!["updated_at = :now".to_string()];
        let mut remove = Vec::new();
        let mut req = self
            .client
            .update_item()
            .table_name(&self.tables.webhooks)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .condition_expression("attribute_exists(sk)")
            .expression_attribute_values(":now", s(time::format(&now)))
            .return_values(ReturnValue::AllNew);
        if let Some(url) = &patch.url {
            set.push("#url = :url".into());
            req = req
                .expression_attribute_names("#url", "url")
                .expression_attribute_values(":url", s(url));
        }
        if let Some(events) = &patch.events {
            set.push("events = :events".into());
            req = req.expression_attribute_values(
                ":events",
                AttributeValue::L(events.iter().map(s).collect()),
            );
        }
        match &patch.description {
            Some(Some(d)) => {
                set.push("description = :d".into());
                req = req.expression_attribute_values(":d", s(d));
            }
            Some(None) => remove.push("description"),
            None => {}
        }
        if let Some(active) = patch.is_active {
            set.push("is_active = :active".into());
            req = req.expression_attribute_values(":active", AttributeValue::Bool(active));
            if active {
                remove.extend(["failing_since", "disabled_reason"]);
            }
        }
        let mut expr = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let out = req
            .update_expression(expr)
            .send()
            .await
            .map_err(|e| conditional(e, StoreError::NotFound))?;
        from_item(out.attributes.unwrap_or_default())
    }

    /// Deletes an endpoint and lowers its account's count with it.
    #[tracing::instrument(skip(self))]
    pub async fn delete_endpoint(&self, account_id: &str, id: &str) -> Result<(), StoreError> {
        let (pk, sk) = endpoint_keys(account_id, id);
        let (count_pk, count_sk) = endpoint_count_key(account_id);
        let delete = Delete::builder()
            .table_name(&self.tables.webhooks)
            .key("pk", s(&pk))
            .key("sk", s(&sk))
            .condition_expression("attribute_exists(sk)")
            .build()
            .map_err(build_err)?;
        let lower = Update::builder()
            .table_name(&self.tables.webhooks)
            .key("pk", s(count_pk))
            .key("sk", s(count_sk))
            .update_expression("ADD n :minus")
            .condition_expression("n > :zero")
            .expression_attribute_values(":minus", AttributeValue::N("-1".into()))
            .expression_attribute_values(":zero", AttributeValue::N("0".into()))
            .build()
            .map_err(build_err)?;
        let items = vec![
            TransactWriteItem::builder().delete(delete).build(),
            TransactWriteItem::builder().update(lower).build(),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(TxFailure::Conditions(failed)) if failed.first() == Some(&true) => {
                Err(StoreError::NotFound)
            }
            // No counter yet (an account from before it): its first
            // creation counts what is left.
            Err(TxFailure::Conditions(_)) => {
                self.client
                    .delete_item()
                    .table_name(&self.tables.webhooks)
                    .key("pk", s(pk))
                    .key("sk", s(sk))
                    .condition_expression("attribute_exists(sk)")
                    .send()
                    .await
                    .map_err(|e| conditional(e, StoreError::NotFound))?;
                Ok(())
            }
            Err(other) => Err(other.into_store_error()),
        }
    }

    /// Installs a new sealed secret, keeping the current one as the previous
    /// one until `previous_expires_at`.
    #[tracing::instrument(skip(self, sealed))]
    pub async fn rotate_endpoint_secret(
        &self,
        account_id: &str,
        id: &str,
        sealed: &str,
        previous_expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<Endpoint, StoreError> {
        let (pk, sk) = endpoint_keys(account_id, id);
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.webhooks)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression(
                "SET previous_secret = secret, secret = :new, previous_secret_expires_at = :until, updated_at = :now",
            )
            .condition_expression("attribute_exists(sk)")
            .expression_attribute_values(":new", s(sealed))
            .expression_attribute_values(":until", s(time::format(&previous_expires_at)))
            .expression_attribute_values(":now", s(time::format(&now)))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| conditional(e, StoreError::NotFound))?;
        from_item(out.attributes.unwrap_or_default())
    }

    /// Notes a failed attempt; returns when the endpoint's failure run began.
    pub async fn endpoint_failed(
        &self,
        endpoint: &Endpoint,
        now: Timestamp,
    ) -> Result<Timestamp, StoreError> {
        if let Some(since) = endpoint.failing_since {
            return Ok(since);
        }
        self.client
            .update_item()
            .table_name(&self.tables.webhooks)
            .key("pk", s(endpoint_keys(&endpoint.account_id, &endpoint.id).0))
            .key("sk", s(endpoint_keys(&endpoint.account_id, &endpoint.id).1))
            .update_expression("SET failing_since = if_not_exists(failing_since, :now)")
            .condition_expression("attribute_exists(sk)")
            .expression_attribute_values(":now", s(time::format(&now)))
            .send()
            .await
            .map_err(|e| conditional(e, StoreError::NotFound))?;
        Ok(now)
    }

    /// Ends a failure run after a success.
    pub async fn endpoint_succeeded(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        if endpoint.failing_since.is_none() {
            return Ok(());
        }
        self.client
            .update_item()
            .table_name(&self.tables.webhooks)
            .key("pk", s(endpoint_keys(&endpoint.account_id, &endpoint.id).0))
            .key("sk", s(endpoint_keys(&endpoint.account_id, &endpoint.id).1))
            .update_expression("REMOVE failing_since")
            .condition_expression("attribute_exists(sk)")
            .send()
            .await
            .map_err(|e| conditional(e, StoreError::NotFound))?;
        Ok(())
    }

    /// Turns an endpoint off, with its events, once: `false` if it was off
    /// already.
    #[tracing::instrument(skip(self, events))]
    pub async fn disable_endpoint(
        &self,
        endpoint: &Endpoint,
        reason: &str,
        now: Timestamp,
        events: &[Event],
    ) -> Result<bool, StoreError> {
        let update = Update::builder()
            .table_name(&self.tables.webhooks)
            .key("pk", s(endpoint_keys(&endpoint.account_id, &endpoint.id).0))
            .key("sk", s(endpoint_keys(&endpoint.account_id, &endpoint.id).1))
            .update_expression(
                "SET is_active = :false, disabled_reason = :reason, updated_at = :now",
            )
            .condition_expression("is_active = :true")
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":now", s(time::format(&now)))
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        self.commit_if(update, events).await
    }

    /// Writes a delivery unless it exists; returns the stored one.
    #[tracing::instrument(skip_all, fields(delivery_id = %delivery.id))]
    pub async fn put_delivery(&self, delivery: &Delivery) -> Result<Delivery, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.tables.webhooks)
            .set_item(Some(delivery_item(delivery)?))
            .condition_expression("attribute_not_exists(sk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(delivery.clone()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                self.get_delivery(&delivery.endpoint_id, &delivery.id)
                    .await?
                    .ok_or(StoreError::NotFound)
            }
            Err(e) => Err(classify(e)),
        }
    }

    pub async fn get_delivery(
        &self,
        endpoint_id: &str,
        id: &str,
    ) -> Result<Option<Delivery>, StoreError> {
        let (pk, sk) = delivery_keys(endpoint_id, id);
        self.get_webhooks_item(pk, sk).await
    }

    /// Appends an attempt and sets the delivery's status.
    #[tracing::instrument(skip(self, attempt))]
    pub async fn record_attempt(
        &self,
        endpoint_id: &str,
        id: &str,
        attempt: &Attempt,
        status: DeliveryStatus,
    ) -> Result<(), StoreError> {
        let (pk, sk) = delivery_keys(endpoint_id, id);
        let mut req = self
            .client
            .update_item()
            .table_name(&self.tables.webhooks)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .condition_expression("attribute_exists(sk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(
                ":a",
                AttributeValue::L(vec![
                    serde_dynamo::to_attribute_value(attempt)
                        .map_err(|e| StoreError::Internal(e.to_string()))?,
                ]),
            )
            .expression_attribute_values(":empty", AttributeValue::L(vec![]))
            .expression_attribute_values(
                ":status",
                serde_dynamo::to_attribute_value(status)
                    .map_err(|e| StoreError::Internal(e.to_string()))?,
            )
            .expression_attribute_values(":now", s(time::format(&attempt.at)));
        let expr = match &attempt.next_attempt_at {
            Some(next) => {
                req = req.expression_attribute_values(":next", s(time::format(next)));
                "SET attempts = list_append(if_not_exists(attempts, :empty), :a), #status = :status, updated_at = :now, next_attempt_at = :next"
            }
            None => {
                "SET attempts = list_append(if_not_exists(attempts, :empty), :a), #status = :status, updated_at = :now REMOVE next_attempt_at"
            }
        };
        req.update_expression(expr)
            .send()
            .await
            .map_err(|e| conditional(e, StoreError::NotFound))?;
        Ok(())
    }

    /// Makes `chain` the delivery's one retry chain if it has none yet:
    /// `true` if it now is (or already was) `chain`.
    #[tracing::instrument(skip(self))]
    pub async fn claim_retry_chain(
        &self,
        endpoint_id: &str,
        id: &str,
        chain: &str,
    ) -> Result<bool, StoreError> {
        let (pk, sk) = delivery_keys(endpoint_id, id);
        let claimed = self
            .client
            .update_item()
            .table_name(&self.tables.webhooks)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression("SET retry_chain = :chain")
            .condition_expression(
                "attribute_exists(sk) AND (attribute_not_exists(retry_chain) OR retry_chain = :chain)",
            )
            .expression_attribute_values(":chain", s(chain))
            .send()
            .await;
        match claimed {
            Ok(_) => Ok(true),
            Err(e) => match conditional(e, StoreError::Conflict(String::new())) {
                StoreError::Conflict(_) => Ok(false),
                other => Err(other),
            },
        }
    }

    /// Cancels a delivery (its endpoint is gone or disabled).
    pub async fn set_delivery_status(
        &self,
        endpoint_id: &str,
        id: &str,
        status: DeliveryStatus,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.change_delivery(endpoint_id, id, status, None, now)
            .await
    }

    /// Pending again with a new retry chain (a manual retry): whatever
    /// message the old chain still has is dropped when it comes.
    #[tracing::instrument(skip(self))]
    pub async fn restart_delivery(
        &self,
        endpoint_id: &str,
        id: &str,
        chain: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.change_delivery(endpoint_id, id, DeliveryStatus::Pending, Some(chain), now)
            .await
    }

    /// A delivery's status (and retry chain), due now.
    async fn change_delivery(
        &self,
        endpoint_id: &str,
        id: &str,
        status: DeliveryStatus,
        chain: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (pk, sk) = delivery_keys(endpoint_id, id);
        let mut expr =
            "SET #status = :status, updated_at = :now, next_attempt_at = :now".to_string();
        if chain.is_some() {
            expr.push_str(", retry_chain = :chain");
        }
        let mut update = self
            .client
            .update_item()
            .table_name(&self.tables.webhooks)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .update_expression(expr)
            .condition_expression("attribute_exists(sk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(
                ":status",
                serde_dynamo::to_attribute_value(status)
                    .map_err(|e| StoreError::Internal(e.to_string()))?,
            )
            .expression_attribute_values(":now", s(time::format(&now)));
        if let Some(chain) = chain {
            update = update.expression_attribute_values(":chain", s(chain));
        }
        update
            .send()
            .await
            .map_err(|e| conditional(e, StoreError::NotFound))?;
        Ok(())
    }

    /// The Query over an endpoint's delivery log (`ep#{id}`, `d#…`), which
    /// the list pages and the count runs to its end.
    fn deliveries_query(
        &self,
        endpoint_id: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.tables.webhooks)
            .key_condition_expression("pk = :pk AND begins_with(sk, :d)")
            .expression_attribute_values(":pk", s(format!("ep#{endpoint_id}")))
            .expression_attribute_values(":d", s("d#"))
    }

    /// A page of an endpoint's deliveries, newest first.
    #[tracing::instrument(skip(self))]
    pub async fn list_deliveries(
        &self,
        endpoint_id: &str,
        limit: i32,
        after: Option<&str>,
    ) -> Result<(Vec<Delivery>, DeliveryCursor), StoreError> {
        let start = after.map(|sk| {
            std::collections::HashMap::from([
                ("pk".to_string(), s(format!("ep#{endpoint_id}"))),
                ("sk".to_string(), s(sk)),
            ])
        });
        let out = self
            .deliveries_query(endpoint_id)
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(classify)?;
        let items: Vec<Delivery> = out
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect::<Result<_, _>>()?;
        let next = out
            .last_evaluated_key
            .and_then(|k| k.get("sk").and_then(|v| v.as_s().ok()).cloned());
        Ok((items, next))
    }

    /// How many deliveries an endpoint's log holds, for the list's
    /// `total_items`: a `Select COUNT` Query over its partition, paged (it
    /// reads what it counts, as listing the account's keys does).
    #[tracing::instrument(skip(self))]
    pub async fn count_deliveries(&self, endpoint_id: &str) -> Result<u64, StoreError> {
        let mut total = 0u64;
        let mut start = None;
        loop {
            let out = self
                .deliveries_query(endpoint_id)
                .select(aws_sdk_dynamodb::types::Select::Count)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            total += out.count.max(0) as u64;
            start = out.last_evaluated_key;
            if start.is_none() {
                return Ok(total);
            }
        }
    }

    /// Whether the log holds a delivery newer than `after` (a `d#{id}` sort
    /// key, a page's cursor), i.e. before it in the newest-first list: the
    /// list's `has_previous`. One Query of at most two items.
    #[tracing::instrument(skip(self))]
    pub async fn deliveries_before(
        &self,
        endpoint_id: &str,
        after: &str,
    ) -> Result<bool, StoreError> {
        // Every delivery id sorts below `~`; `after` itself is not newer.
        let out = self
            .client
            .query()
            .table_name(&self.tables.webhooks)
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(format!("ep#{endpoint_id}")))
            .expression_attribute_values(":from", s(after))
            .expression_attribute_values(":to", s("d#~"))
            .projection_expression("sk")
            .limit(2)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.items().iter().any(|i| {
            i.get("sk")
                .and_then(|v| v.as_s().ok())
                .is_some_and(|sk| sk.as_str() != after)
        }))
    }
}
