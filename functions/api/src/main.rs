//! Lambda entry point: one-time set-up, then `handler::handle` per request.

use keyhub::config::Config;
use keyhub_api::{Deps, handle};
use lambda_http::{Error, Request, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    keyhub::telemetry::init();
    keyhub::metrics::init("api");
    let config = Config::from_env()?;
    let sdk = keyhub::aws::aws_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    // Both secrets at once: a cold start waits for the slower, not the sum.
    let (pepper, secrets) = tokio::try_join!(
        keyhub::aws::secrets::load_pepper(&sm, &config.pepper_secret_id),
        async {
            match &config.webhooks.key_secret_id {
                Some(id) => keyhub::aws::secrets::load_secret_box(&sm, id)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        }
    )?;
    let stages = keyhub::aws::flush::stages_from_lookup(|k| std::env::var(k).ok())?;
    let flush = keyhub::aws::flush::CacheFlush::new(&sdk, stages, config.aws.side_effect);
    let deps = Deps::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        aws_sdk_sqs::Client::new(&sdk),
        pepper,
        secrets,
        config,
    )
    .with_flush(flush);
    let deps = &deps;
    lambda_http::run(service_fn(move |req: Request| async move {
        let request_id = keyhub::http::request::lambda_request_id(&req);
        Ok::<_, Error>(keyhub::metrics::counted(&request_id, handle(deps, req)).await)
    }))
    .await
}
