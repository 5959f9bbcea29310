//! Keys: one item per key, keyed by id; an account's keys through the
//! `by_account` index.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValue, TransactWriteItem, Update};
use serde_json::{Map, Value};

use super::{KEYS_BY_ACCOUNT_INDEX, Store, StoreError, classify, from_item, to_item};
use crate::key::KeyRecord;
use crate::limits::Limits;
use crate::scope::Scopes;
use crate::time::{self, Timestamp};

/// A partial update. `None` leaves a field alone; for the optional fields
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub is_active: Option<bool>,
    pub scopes: Option<Scopes>,
    pub rate_limits: Option<Limits>,
    pub expires_at: Option<Option<Timestamp>>,
    pub metadata: Option<Map<String, Value>>,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn av<T: serde::Serialize>(v: &T) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(v).map_err(|e| StoreError::Internal(format!("serialize: {e}")))
}

impl Store {
    /// Writes a new key; fails with `Conflict` if the id exists (it never
    /// should: ids come from 256-bit secrets).
    #[tracing::instrument(skip_all, fields(key_id = %record.id))]
    pub async fn put_key(&self, record: &KeyRecord) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.tables.keys)
            .set_item(Some(to_item(record)?))
            .condition_expression("attribute_not_exists(id)")
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception())
                {
                    StoreError::Conflict("a key with this id exists".into())
                } else {
                    classify(e)
                }
            })?;
        Ok(())
    }

    /// The one read on the verify path: a strongly consistent GetItem, so a
    /// key works the moment it is created and stops the moment it is deleted.
    #[tracing::instrument(skip(self))]
    pub async fn get_key(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.keys)
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        out.item.map(from_item).transpose()
    }

    /// A key of `account_id`, or `NotFound` for a key of any other account.
    pub async fn get_account_key(
        &self,
        account_id: &str,
        id: &str,
    ) -> Result<KeyRecord, StoreError> {
        match self.get_key(id).await? {
            Some(k) if k.account_id == account_id => Ok(k),
            _ => Err(StoreError::NotFound),
        }
    }

    /// Every key of an account, oldest first, read page by page from the
    /// account index (never a Scan).
    #[tracing::instrument(skip(self))]
    pub async fn list_keys(&self, account_id: &str) -> Result<Vec<KeyRecord>, StoreError> {
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.tables.keys)
                .index_name(KEYS_BY_ACCOUNT_INDEX)
                .key_condition_expression("account_id = :a")
                .expression_attribute_values(":a", s(account_id))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(classify)?;
            for item in out.items.unwrap_or_default() {
                keys.push(from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(keys)
    }

    /// Applies `patch` to a key of `account_id` and returns the new record.
    #[tracing::instrument(skip(self, patch))]
    pub async fn update_key(
        &self,
        account_id: &str,
        id: &str,
        patch: &KeyPatch,
        now: Timestamp,
    ) -> Result<KeyRecord, StoreError> {
        let mut set = vec!["updated_at = :updated_at".to_string()];
        let mut remove = Vec::new();
        let mut names = HashMap::new();
        let mut values = HashMap::from([
            (":account_id".to_string(), s(account_id)),
            (":updated_at".to_string(), s(time::format(&now))),
        ]);
        let mut put = |name: &str, value: AttributeValue| {
            set.push(format!("#{name} = :{name}"));
            names.insert(format!("#{name}"), name.to_string());
            values.insert(format!(":{name}"), value);
        };
        if let Some(v) = &patch.name {
            put("name", s(v));
        }
        if let Some(Some(v)) = &patch.description {
            put("description", s(v));
        }
        if let Some(v) = patch.is_active {
            put("is_active", AttributeValue::Bool(v));
        }
        if let Some(v) = &patch.scopes {
            put("scopes", av(v)?);
        }
        if let Some(v) = &patch.rate_limits {
            put("rate_limits", av(v)?);
        }
        if let Some(Some(v)) = &patch.expires_at {
            put("expires_at", s(time::format(v)));
        }
        if let Some(v) = &patch.metadata {
            put("metadata", av(v)?);
        }
        if let Some(None) = patch.description {
            remove.push("description");
        }
        if let Some(None) = patch.expires_at {
            remove.push("expires_at");
        }
        let mut expr = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let req = self
            .client
            .update_item()
            .table_name(&self.tables.keys)
            .key("id", s(id))
            .condition_expression("account_id = :account_id")
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew);
        let out = req.update_expression(expr).send().await.map_err(|e| {
            if e.as_service_error()
                .is_some_and(|se| se.is_conditional_check_failed_exception())
            {
                StoreError::NotFound
            } else {
                classify(e)
            }
        })?;
        from_item(out.attributes.unwrap_or_default())
    }

    /// Deletes a key of `account_id`; returns what was deleted.
    #[tracing::instrument(skip(self))]
    pub async fn delete_key(&self, account_id: &str, id: &str) -> Result<KeyRecord, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.tables.keys)
            .key("id", s(id))
            .condition_expression("account_id = :account_id")
            .expression_attribute_values(":account_id", s(account_id))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception())
                {
                    StoreError::NotFound
                } else {
                    classify(e)
                }
            })?;
        from_item(out.attributes.unwrap_or_default())
    }

    /// Writes the successor and retires the old key in one transaction: the
    /// old key gets `expires_at = old_expires_at` and a pointer to the new one.
    /// Fails with `Conflict` if the old key was rotated, deactivated or expired
    /// meanwhile.
    #[tracing::instrument(skip_all, fields(old = %old.id, new = %new.id))]
    pub async fn rotate_key(
        &self,
        old: &KeyRecord,
        new: &KeyRecord,
        old_expires_at: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let put = Put::builder()
            .table_name(&self.tables.keys)
            .set_item(Some(to_item(new)?))
            .condition_expression("attribute_not_exists(id)")
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        let retire = Update::builder()
            .table_name(&self.tables.keys)
            .key("id", s(&old.id))
            .update_expression(
                "SET expires_at = :expires_at, rotated_to = :new_id, updated_at = :now",
            )
            .condition_expression(
                "account_id = :account_id AND attribute_not_exists(rotated_to) \
                 AND is_active = :true AND (attribute_not_exists(expires_at) OR expires_at > :now)",
            )
            .expression_attribute_values(":expires_at", s(time::format(&old_expires_at)))
            .expression_attribute_values(":new_id", s(&new.id))
            .expression_attribute_values(":now", s(time::format(&now)))
            .expression_attribute_values(":account_id", s(&old.account_id))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        self.client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(put).build())
            .transact_items(TransactWriteItem::builder().update(retire).build())
            .send()
            .await
            .map_err(|e| {
                let cancelled = e.as_service_error().and_then(|se| match se {
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(tc) => {
                        Some(tc.cancellation_reasons().iter().any(|r| r.code() == Some("ConditionalCheckFailed")))
                    }
                    _ => None,
                });
                match cancelled {
                    Some(true) => StoreError::Conflict(
                        "the key was rotated, deactivated or expired by another request".into(),
                    ),
                    _ => classify(e),
                }
            })?;
        Ok(())
    }
}
