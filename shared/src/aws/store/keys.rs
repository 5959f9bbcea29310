//! Keys: one item per key, keyed by id; an account's keys through the
//! `by_account` index. Every change writes its events to the outbox in the
//! same transaction, so an event exists exactly when its change happened.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};

use super::{KEYS_BY_ACCOUNT_INDEX, Store, StoreError, classify, from_item, to_item};
use crate::domain::events::Event;
use crate::domain::key::{KeyPatch, KeyRecord, PENDING};
use crate::domain::time::{self, Timestamp};

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn av<T: serde::Serialize>(v: &T) -> Result<AttributeValue, StoreError> {
    serde_dynamo::to_attribute_value(v).map_err(|e| StoreError::Internal(format!("serialize: {e}")))
}

fn built<T, E: std::fmt::Display>(r: Result<T, E>) -> Result<T, StoreError> {
    r.map_err(|e| StoreError::Internal(e.to_string()))
}

impl Store {
    /// Writes a new key and counts it on its account, unless the account
    /// already has `max_keys` (`Conflict`; also if the id exists, which it
    /// never should: ids come from 256-bit secrets).
    #[tracing::instrument(skip_all, fields(key_id = %record.id))]
    pub async fn put_key(
        &self,
        record: &KeyRecord,
        max_keys: u32,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let put = self.new_key(record)?;
        let count = self
            .count_key(&record.account_id, 1)
            .condition_expression(
                "attribute_exists(id) AND (attribute_not_exists(key_count) OR key_count < :max)",
            )
            .expression_attribute_values(":max", AttributeValue::N(max_keys.to_string()));
        let items = vec![
            TransactWriteItem::builder()
                .put(built(put.build())?)
                .build(),
            TransactWriteItem::builder()
                .update(built(count.build())?)
                .build(),
        ];
        match self.commit(items, events).await {
            Ok(()) => Ok(()),
            Err((StoreError::Conflict(_), Some(1))) => Err(StoreError::Conflict(format!(
                "the account has {max_keys} keys, as many as it may have; delete some first"
            ))),
            Err((e, _)) => Err(e),
        }
    }

    /// Writes a key without counting it on its account: for tools that seed
    /// keys of accounts they make up themselves (tests, the bench). The API
    /// and the admin CLI always go through `put_key` or `create_account`.
    #[tracing::instrument(skip_all, fields(key_id = %record.id))]
    pub async fn put_key_uncounted(&self, record: &KeyRecord) -> Result<(), StoreError> {
        let put = self.new_key(record)?;
        let item = TransactWriteItem::builder()
            .put(built(put.build())?)
            .build();
        self.commit(vec![item], &[]).await.map_err(|(e, _)| e)
    }

    /// The write of a key that must not exist yet.
    fn new_key(
        &self,
        record: &KeyRecord,
    ) -> Result<aws_sdk_dynamodb::types::builders::PutBuilder, StoreError> {
        Ok(Put::builder()
            .table_name(&self.tables.keys)
            .set_item(Some(to_item(record)?))
            .condition_expression("attribute_not_exists(id)"))
    }

    /// Moves the account's key count by `by` (the cap's bookkeeping).
    fn count_key(
        &self,
        account_id: &str,
        by: i64,
    ) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        Update::builder()
            .table_name(&self.tables.accounts)
            .key("id", s(account_id))
            .update_expression("ADD key_count :by")
            .expression_attribute_values(":by", AttributeValue::N(by.to_string()))
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

    /// Applies `patch` to `current` (read by the caller) unless the key
    /// changed meanwhile (`Conflict`) or is gone (`NotFound`). Only the
    /// patched fields are written, so concurrent usage counts are kept.
    #[tracing::instrument(skip_all, fields(key_id = %current.id))]
    pub async fn update_key(
        &self,
        current: &KeyRecord,
        patch: &KeyPatch,
        now: Timestamp,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let mut set = vec!["updated_at = :updated_at".to_string()];
        let mut remove = Vec::new();
        let mut names = HashMap::new();
        let mut values = HashMap::from([
            (":account_id".to_string(), s(&current.account_id)),
            (":updated_at".to_string(), s(time::format(&now))),
            (":seen".to_string(), s(time::format(&current.updated_at))),
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
            put("expiry_check", s(PENDING));
        }
        if let Some(v) = &patch.metadata {
            put("metadata", av(v)?);
        }
        if let Some(None) = patch.description {
            remove.push("description");
        }
        if let Some(None) = patch.expires_at {
            remove.push("expires_at");
            remove.push("expiry_check");
        }
        let mut expr = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expr.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        // The lifecycle rules the handler checked, held by the write itself:
        // a rotated key's expiry is its rotation's, and nothing revives an
        // expired key.
        let mut condition = "account_id = :account_id AND updated_at = :seen".to_string();
        let revives = patch.expires_at.is_some() || patch.is_active == Some(true);
        if patch.expires_at.is_some() {
            condition.push_str(" AND attribute_not_exists(rotated_to)");
        }
        if revives {
            condition.push_str(" AND (attribute_not_exists(expires_at) OR expires_at > :now)");
            values.insert(":now".to_string(), s(time::format(&now)));
        }
        let update = Update::builder()
            .table_name(&self.tables.keys)
            .key("id", s(&current.id))
            .update_expression(expr)
            .condition_expression(condition)
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values(Some(values));
        let item = TransactWriteItem::builder()
            .update(built(update.build())?)
            .build();
        match self.commit(vec![item], events).await {
            Ok(()) => Ok(()),
            Err((StoreError::Conflict(_), _)) => self.changed_or_gone(current).await,
            Err((e, _)) => Err(e),
        }
    }

    /// Deletes `current` unless it changed since it was read (its scopes
    /// were what allowed the caller to delete it): `Conflict` then, or
    /// `NotFound` if it is gone.
    #[tracing::instrument(skip_all, fields(key_id = %current.id))]
    pub async fn delete_key(
        &self,
        current: &KeyRecord,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let delete = Delete::builder()
            .table_name(&self.tables.keys)
            .key("id", s(&current.id))
            .condition_expression("account_id = :account_id AND updated_at = :seen")
            .expression_attribute_values(":account_id", s(&current.account_id))
            .expression_attribute_values(":seen", s(time::format(&current.updated_at)));
        let uncount = self
            .count_key(&current.account_id, -1)
            .condition_expression("attribute_exists(id)");
        let items = vec![
            TransactWriteItem::builder()
                .delete(built(delete.build())?)
                .build(),
            TransactWriteItem::builder()
                .update(built(uncount.build())?)
                .build(),
        ];
        match self.commit(items, events).await {
            Ok(()) => Ok(()),
            Err((StoreError::Conflict(_), _)) => self.changed_or_gone(current).await,
            Err((e, _)) => Err(e),
        }
    }

    /// After a refused condition: `Conflict` if the key of the same account
    /// is still there (changed meanwhile), else `NotFound`.
    async fn changed_or_gone(&self, current: &KeyRecord) -> Result<(), StoreError> {
        match self.get_key(&current.id).await? {
            Some(k) if k.account_id == current.account_id => Err(StoreError::Conflict(
                "the key was changed by another request; try again".into(),
            )),
            _ => Err(StoreError::NotFound),
        }
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
        events: &[Event],
    ) -> Result<(), StoreError> {
        let put = self.new_key(new)?;
        // A rotated key is no longer due for rotation, and owes an expiry event.
        let retire = Update::builder()
            .table_name(&self.tables.keys)
            .key("id", s(&old.id))
            .update_expression(
                "SET expires_at = :expires_at, rotated_to = :new_id, updated_at = :now, expiry_check = :pending \
                 REMOVE rotation_check",
            )
            .condition_expression(
                "account_id = :account_id AND attribute_not_exists(rotated_to) \
                 AND is_active = :true AND (attribute_not_exists(expires_at) OR expires_at > :now)",
            )
            .expression_attribute_values(":expires_at", s(time::format(&old_expires_at)))
            .expression_attribute_values(":new_id", s(&new.id))
            .expression_attribute_values(":now", s(time::format(&now)))
            .expression_attribute_values(":pending", s(PENDING))
            .expression_attribute_values(":account_id", s(&old.account_id))
            .expression_attribute_values(":true", AttributeValue::Bool(true));
        // The successor counts on the account, but never fails on the cap:
        // rotating is how a key at the cap is replaced.
        let count = self
            .count_key(&old.account_id, 1)
            .condition_expression("attribute_exists(id)");
        let items = vec![
            TransactWriteItem::builder()
                .put(built(put.build())?)
                .build(),
            TransactWriteItem::builder()
                .update(built(retire.build())?)
                .build(),
            TransactWriteItem::builder()
                .update(built(count.build())?)
                .build(),
        ];
        self.commit(items, events).await.map_err(|(e, _)| match e {
            StoreError::Conflict(_) => StoreError::Conflict(
                "the key was rotated, deactivated or expired by another request".into(),
            ),
            other => other,
        })
    }
}

impl Store {
    /// Keys past their expiry that still owe an `api_key.expired` event.
    pub async fn keys_expired(
        &self,
        now: Timestamp,
        limit: i32,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        self.pending_keys(
            super::KEYS_EXPIRING_INDEX,
            "expiry_check",
            "expires_at",
            now,
            limit,
        )
        .await
    }

    /// Keys created before `before` that may owe an `api_key.rotation_due`
    /// event.
    pub async fn keys_due_for_rotation(
        &self,
        before: Timestamp,
        limit: i32,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        self.pending_keys(
            super::KEYS_AGING_INDEX,
            "rotation_check",
            "created_at",
            before,
            limit,
        )
        .await
    }

    /// Keys of a sparse index whose `flag` is pending and whose `sort`
    /// attribute is at or before `until`.
    #[tracing::instrument(skip(self))]
    async fn pending_keys(
        &self,
        index: &str,
        flag: &str,
        sort: &str,
        until: Timestamp,
        limit: i32,
    ) -> Result<Vec<KeyRecord>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.tables.keys)
            .index_name(index)
            .key_condition_expression(format!("{flag} = :p AND {sort} <= :until"))
            .expression_attribute_values(":p", s(PENDING))
            .expression_attribute_values(":until", s(time::format(&until)))
            .limit(limit)
            .send()
            .await
            .map_err(classify)?;
        out.items
            .unwrap_or_default()
            .into_iter()
            .map(from_item)
            .collect()
    }

    /// Clears `flag` (`expiry_check` or `rotation_check`) and writes the
    /// event, once: `false` if the key changed meanwhile (deleted, or its
    /// expiry moved) or another sweep got there first.
    pub async fn settle_key_event(
        &self,
        key: &KeyRecord,
        flag: &str,
        event: &Event,
    ) -> Result<bool, StoreError> {
        let mut update = Update::builder()
            .table_name(&self.tables.keys)
            .key("id", s(&key.id))
            .update_expression(format!("REMOVE {flag}"))
            .expression_attribute_values(":p", s(PENDING));
        update = match (flag, &key.expires_at) {
            ("expiry_check", Some(at)) => update
                .condition_expression("expiry_check = :p AND expires_at = :at")
                .expression_attribute_values(":at", s(time::format(at))),
            _ => update.condition_expression(format!("{flag} = :p")),
        };
        self.commit_if(built(update.build())?, std::slice::from_ref(event))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::apikey::{ApiKey, Environment, KeyPrefix};
    use crate::domain::key::NewKey;
    use crate::domain::limits::{Limits, Plan};
    use crate::domain::pepper::Pepper;
    use crate::domain::scope::Scopes;
    use serde_json::Map;

    fn record() -> KeyRecord {
        let key = ApiKey::generate(&KeyPrefix::default(), Environment::Live).unwrap();
        let digest = Pepper::new(&[3u8; 32]).unwrap().digest(&key);
        let settings = NewKey {
            account_id: "acct_1".into(),
            plan: Plan::Free,
            name: "ci".into(),
            description: None,
            scopes: Scopes::parse_all(["keys:read"]).unwrap(),
            environment: Environment::Live,
            expires_at: None,
            rate_limits: Limits::default(),
            metadata: Map::new(),
        };
        KeyRecord::new(&key, &digest, settings, time::now())
    }

    #[test]
    fn round_trips_through_a_dynamodb_item() {
        let r = record();
        let mut item: std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
            serde_dynamo::to_item(&r).unwrap();
        assert!(!item.contains_key("expires_at"));
        assert_eq!(
            item.get("pepper_version"),
            Some(&aws_sdk_dynamodb::types::AttributeValue::N("1".into()))
        );
        // An item from before versions were recorded reads as the first.
        let mut old = item.clone();
        old.remove("pepper_version");
        let back: KeyRecord = serde_dynamo::from_item(old).unwrap();
        assert_eq!(back.pepper_version, 1);
        item.insert(
            "pepper_version".into(),
            aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
        );
        let back: KeyRecord = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back, r);
    }
}
