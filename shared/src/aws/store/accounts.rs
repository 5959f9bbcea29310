//! Accounts: one item each, keyed by id.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use futures::{StreamExt, TryStreamExt};

use super::{Store, StoreError, classify, from_item, to_item};
use crate::domain::account::Account;
use crate::domain::key::KeyRecord;
use crate::domain::limits::Plan;

/// Keys updated at once when a plan change reaches an account's keys.
const PLAN_FANOUT: usize = 16;

impl Store {
    /// Creates an account together with its first key, both or neither.
    #[tracing::instrument(skip_all, fields(account_id = %account.id))]
    pub async fn create_account(
        &self,
        account: &Account,
        first_key: &KeyRecord,
        events: &[crate::domain::events::Event],
    ) -> Result<(), StoreError> {
        let put = |table: &str, item| -> Result<TransactWriteItem, StoreError> {
            let put = Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(id)")
                .build()
                .map_err(|e| StoreError::Internal(e.to_string()))?;
            Ok(TransactWriteItem::builder().put(put).build())
        };
        // The account counts its keys for the cap (see `put_key`).
        let mut account_item = to_item(account)?;
        account_item.insert("key_count".to_string(), AttributeValue::N("1".to_string()));
        let items = vec![
            put(&self.tables.accounts, account_item)?,
            put(&self.tables.keys, to_item(first_key)?)?,
        ];
        // Through the outbox's commit: its events with it, and contention
        // retried rather than reported as a failure.
        self.commit(items, events).await.map_err(|(e, _)| e)
    }

    #[tracing::instrument(skip(self))]
    pub async fn get_account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.accounts)
            .key("id", AttributeValue::S(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        out.item.map(from_item).transpose()
    }

    /// How many keys the account holds, as the cap counts them.
    #[tracing::instrument(skip(self))]
    pub async fn account_key_count(&self, id: &str) -> Result<Option<u64>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.tables.accounts)
            .key("id", AttributeValue::S(id.to_string()))
            .projection_expression("key_count")
            .consistent_read(true)
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .item
            .and_then(|i| i.get("key_count").cloned())
            .and_then(|v| v.as_n().ok().and_then(|n| n.parse::<i64>().ok()))
            .map(|n| n.max(0) as u64))
    }

    /// Moves an account to `plan` (with its events), then every key's copy
    /// of the plan: a key carries its plan so that checking it stays one
    /// read. Repeating the call after a failure finishes the job.
    #[tracing::instrument(skip(self, events))]
    pub async fn change_plan(
        &self,
        account_id: &str,
        plan: Plan,
        events: &[crate::domain::events::Event],
    ) -> Result<Vec<String>, StoreError> {
        let update = Update::builder()
            .table_name(&self.tables.accounts)
            .key("id", AttributeValue::S(account_id.to_string()))
            .update_expression("SET #plan = :plan")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_names("#plan", "plan")
            .expression_attribute_values(":plan", AttributeValue::S(plan.as_str().to_string()))
            .build()
            .map_err(|e| StoreError::Internal(e.to_string()))?;
        if !self.commit_if(update, events).await? {
            return Err(StoreError::NotFound);
        }
        let keys = self.list_keys(account_id).await?;
        let ids: Vec<String> = keys.into_iter().map(|k| k.id).collect();
        // Owned ids: futures borrowing from the list would make the whole
        // handler's future fail axum's higher-ranked `Send` bound.
        let updates = ids
            .clone()
            .into_iter()
            .map(|id| async move { self.set_key_plan(&id, plan).await });
        futures::stream::iter(updates)
            .buffer_unordered(PLAN_FANOUT)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(ids)
    }

    /// A key's copy of its account's plan; nothing if the key is gone.
    async fn set_key_plan(&self, id: &str, plan: Plan) -> Result<(), StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.tables.keys)
            .key("id", AttributeValue::S(id.to_string()))
            .update_expression("SET #plan = :plan")
            .condition_expression("attribute_exists(id)")
            .expression_attribute_names("#plan", "plan")
            .expression_attribute_values(":plan", AttributeValue::S(plan.as_str().to_string()))
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(classify(e)),
        }
    }
}
