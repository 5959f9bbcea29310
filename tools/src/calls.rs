//! Counts the AWS calls a client makes, by operation, so that benchmarks and
//! tests report calls per request as measured, not as assumed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;

#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
    write_items: Arc<Mutex<u64>>,
}

impl CallCounter {
    /// A DynamoDB client like `sdk`'s whose every request is counted here.
    pub fn dynamodb(&self, sdk: &aws_config::SdkConfig) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(sdk)
                .interceptor(self.clone())
                .build(),
        )
    }

    /// An SQS client like `sdk`'s whose every request is counted here.
    pub fn sqs(&self, sdk: &aws_config::SdkConfig) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(sdk)
                .interceptor(self.clone())
                .build(),
        )
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn get(&self, operation: &str) -> u64 {
        self.snapshot().get(operation).copied().unwrap_or(0)
    }

    /// Items written: one per PutItem, UpdateItem or DeleteItem, one per
    /// action of a TransactWriteItems or request of a BatchWriteItem.
    pub fn write_items(&self) -> u64 {
        self.write_items.lock().map(|n| *n).unwrap_or(0)
    }

    pub fn reset(&self) {
        if let Ok(mut m) = self.counts.lock() {
            m.clear();
        }
        if let Ok(mut n) = self.write_items.lock() {
            *n = 0;
        }
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        use aws_sdk_dynamodb::operation::{
            batch_write_item::BatchWriteItemInput, delete_item::DeleteItemInput,
            put_item::PutItemInput, transact_write_items::TransactWriteItemsInput,
            update_item::UpdateItemInput,
        };
        let input = context.input();
        let items = if let Some(t) = input.downcast_ref::<TransactWriteItemsInput>() {
            t.transact_items().len() as u64
        } else if let Some(b) = input.downcast_ref::<BatchWriteItemInput>() {
            b.request_items()
                .map_or(0, |m| m.values().map(|v| v.len() as u64).sum())
        } else if input.downcast_ref::<PutItemInput>().is_some()
            || input.downcast_ref::<UpdateItemInput>().is_some()
            || input.downcast_ref::<DeleteItemInput>().is_some()
        {
            1
        } else {
            0
        };
        if let Ok(mut n) = self.write_items.lock() {
            *n += items;
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_string())
            .unwrap_or_default();
        if let Ok(mut m) = self.counts.lock() {
            *m.entry(op).or_default() += 1;
        }
        Ok(())
    }
}
