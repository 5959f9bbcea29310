//! Accounts: one item each, keyed by id.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};

use super::{Store, StoreError, classify, from_item, to_item};
use crate::account::Account;
use crate::key::KeyRecord;

impl Store {
    /// Creates an account together with its first key, both or neither.
    #[tracing::instrument(skip_all, fields(account_id = %account.id))]
    pub async fn create_account(
        &self,
        account: &Account,
        first_key: &KeyRecord,
        events: &[crate::events::Event],
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
        let mut items = vec![
            put(&self.tables.accounts, account_item)?,
            put(&self.tables.keys, to_item(first_key)?)?,
        ];
        for e in events {
            items.push(self.outbox_item(e)?);
        }
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
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
}
