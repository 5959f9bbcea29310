//! Lambda entry point of the webhook worker.

use aws_lambda_events::sqs::SqsEvent;
use keyhub::aws::eventbus::EventBus;
use keyhub::aws::store::Store;
use keyhub::config::Config;
use keyhub_webhooks::client::DeliveryClient;
use keyhub_webhooks::{Deps, handle};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    keyhub::telemetry::init();
    keyhub::metrics::init("webhooks");
    let config = Config::from_env()?;
    let settings = config.webhooks.clone();
    let queue_url = settings
        .queue_url
        .clone()
        .ok_or("WEBHOOK_QUEUE_URL is not set")?;
    let key_id = settings
        .key_secret_id
        .clone()
        .ok_or("WEBHOOK_KEY_SECRET_ID is not set")?;
    let sdk = keyhub::aws::aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let store = Store::new(aws_sdk_dynamodb::Client::new(&sdk), config.tables.clone());
    let secrets =
        keyhub::aws::secrets::load_secret_box(&aws_sdk_secretsmanager::Client::new(&sdk), &key_id)
            .await?;
    let deps = Deps {
        bus: EventBus::new(store.clone(), sqs.clone(), queue_url.clone()),
        store,
        secrets,
        client: DeliveryClient::new(settings.addresses.clone(), settings.timeout)?,
        settings,
        sqs,
        queue_url,
        dead_letter_url: std::env::var("WEBHOOK_DLQ_URL")
            .ok()
            .filter(|v| !v.is_empty()),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<_, Error>(
            keyhub::metrics::counted(&event.context.request_id, handle(deps, event.payload)).await,
        )
    }))
    .await
}
