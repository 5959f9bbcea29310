//! Lambda entry point: one-time set-up, then `handler::authorize` per event.

use aws_lambda_events::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest;
use keyhub::aws::store::Store;
use keyhub::config::Config;
use keyhub::http::auth::{Authenticator, KeyHeader};
use keyhub_authorizer::routes::RouteScopes;
use keyhub_authorizer::{Deps, authorize};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    keyhub::telemetry::init();
    keyhub::metrics::init("authorizer");
    let config = Config::from_env()?;
    let routes = RouteScopes::parse(&std::env::var("KEYHUB_ROUTE_SCOPES").unwrap_or_default())?;
    let sdk = keyhub::aws::aws_config().await;
    let pepper = keyhub::aws::secrets::load_pepper(
        &aws_sdk_secretsmanager::Client::new(&sdk),
        &config.pepper_secret_id,
    )
    .await?;
    let store = Store::new(aws_sdk_dynamodb::Client::new(&sdk), config.tables.clone());
    let identity = KeyHeader::parse(&std::env::var("KEYHUB_IDENTITY_HEADER").unwrap_or_default())?;
    let deps = Deps::new(
        Authenticator::new(store, pepper, config.key_prefix.clone(), config.key_cache),
        config.rate_limits.clone(),
        routes,
        identity,
    )?;
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayCustomAuthorizerRequestTypeRequest>| async move {
            keyhub::metrics::counted(&event.context.request_id, authorize(deps, event.payload))
                .await
        },
    ))
    .await
}
