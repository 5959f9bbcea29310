//! Lambda entry point of the sweeper (an EventBridge schedule).

// The sweep's future nests the SDK's deeply; the default limit is too low
// for the compiler to lay it out.
#![recursion_limit = "256"]

use keyhub::aws::eventbus::EventBus;
use keyhub::aws::store::Store;
use keyhub::config::Config;
use keyhub_sweeper::{Deps, sweep};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    keyhub::telemetry::init();
    keyhub::metrics::init("sweeper");
    let config = Config::from_env()?;
    let queue_url = config
        .webhooks
        .queue_url
        .clone()
        .ok_or("WEBHOOK_QUEUE_URL is not set")?;
    let sdk = keyhub::aws::aws_config().await;
    let store = Store::new(aws_sdk_dynamodb::Client::new(&sdk), config.tables.clone());
    let deps = Deps {
        bus: EventBus::new(store.clone(), aws_sdk_sqs::Client::new(&sdk), queue_url),
        store,
        policy: config.rate_limits.clone(),
        rotation_period: config.rotation_period,
        batch: 500,
        flush: keyhub::aws::flush::CacheFlush::new(
            &sdk,
            keyhub::aws::flush::stages_from_lookup(|k| std::env::var(k).ok())?,
            config.aws.side_effect,
        ),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let swept = sweep(deps, keyhub::domain::time::now());
            Ok::<_, Error>(keyhub::metrics::counted(&event.context.request_id, swept).await?)
        },
    ))
    .await
}
