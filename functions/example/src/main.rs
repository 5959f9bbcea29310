//! Lambda entry point of the example API.

use keyhub::aws::eventbus::EventBus;
use keyhub::aws::queues::UsageSink;
use keyhub::aws::ratelimit::Limiter;
use keyhub::aws::store::Store;
use keyhub::config::Config;
use keyhub::http::guard::Guard;
use keyhub_example::{Deps, handle};
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    keyhub::telemetry::init();
    keyhub::metrics::init("example");
    let config = Config::from_env()?;
    let sdk = keyhub::aws::aws_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let limiter = Limiter::new(ddb.clone(), config.tables.counters.clone());
    let store = Store::new(ddb, config.tables.clone());
    let usage = config
        .usage_queue_url
        .clone()
        .map(|url| UsageSink::new(sqs.clone(), url));
    let events = config
        .webhooks
        .queue_url
        .clone()
        .map(|url| (store.clone(), EventBus::new(store, sqs, url)));
    let deps = Deps {
        guard: Guard::new(
            limiter,
            config.rate_limits.clone(),
            config.rate_limit_fail_open,
        )
        .with_usage(usage)
        .with_usage_from_access_log(config.usage_from_access_log)
        .with_events(events),
    };
    let deps = &deps;
    lambda_http::run(service_fn(move |req: Request| async move {
        let request_id = keyhub::http::request::lambda_request_id(&req);
        Ok::<_, Error>(keyhub::metrics::counted(&request_id, handle(deps, req)).await)
    }))
    .await
}
