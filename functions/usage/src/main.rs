//! Lambda entry point of the usage aggregator: CloudWatch Logs
//! subscription events (API Gateway's access log) and SQS batches.

use keyhub::aws::eventbus::EventBus;
use keyhub::aws::store::Store;
use keyhub::config::Config;
use keyhub_usage::anomaly::{Anomalies, Threshold};
use keyhub_usage::{Deps, handle_event};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    keyhub::telemetry::init();
    keyhub::metrics::init("usage");
    let config = Config::from_env()?;
    let sdk = keyhub::aws::aws_config().await;
    let store = Store::new(aws_sdk_dynamodb::Client::new(&sdk), config.tables.clone());
    let anomalies = config.webhooks.queue_url.clone().map(|url| {
        Anomalies::new(
            Threshold {
                factor: config.anomaly_factor,
                min_requests: config.anomaly_min_requests,
            },
            EventBus::new(store.clone(), aws_sdk_sqs::Client::new(&sdk), url)
                .with_publish_timeout(config.aws.side_effect),
        )
    });
    let deps = Deps::new(
        store,
        config.usage_retention,
        config.usage_aggregate_retention,
    )
    .with_anomalies(anomalies);
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            keyhub::metrics::counted(&event.context.request_id, handle_event(deps, event.payload))
                .await
                .map_err(Error::from)
        },
    ))
    .await
}
