//! Lambda entry point of the example API.

use keyhub::config::Config;
use keyhub::guard::Guard;
use keyhub::ratelimit::Limiter;
use keyhub::usage::UsageSink;
use keyhub_example::{Deps, handle};
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    keyhub::telemetry::init();
    let config = Config::from_env()?;
    let sdk = keyhub::aws_config().await;
    let limiter = Limiter::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config.tables.counters.clone(),
    );
    let usage = config
        .usage_queue_url
        .clone()
        .map(|url| UsageSink::new(aws_sdk_sqs::Client::new(&sdk), url));
    let deps = Deps {
        guard: Guard::new(
            limiter,
            config.rate_limits.clone(),
            config.rate_limit_fail_open,
        )
        .with_usage(usage),
    };
    let deps = &deps;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(handle(deps, req).await)
    }))
    .await
}
