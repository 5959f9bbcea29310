//! Lambda entry point of the usage aggregator: CloudWatch Logs
//! subscription events (API Gateway's access log) and SQS batches.

use keyhub::aws::store::Store;
use keyhub::config::Config;
use keyhub_usage::{Deps, handle_event};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    keyhub::telemetry::init();
    let config = Config::from_env()?;
    let sdk = keyhub::aws::aws_config().await;
    let deps = Deps::new(
        Store::new(aws_sdk_dynamodb::Client::new(&sdk), config.tables.clone()),
        config.usage_retention,
        config.usage_aggregate_retention,
    );
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            handle_event(deps, event.payload).await.map_err(Error::from)
        },
    ))
    .await
}
