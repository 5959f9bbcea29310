//! keyhub's common crate: the domain (keys, scopes, accounts, limits), storage
//! on DynamoDB, errors in the contract's shape and the request plumbing the
//! Lambda functions share. Nothing here sees a Lambda event type except
//! `http`, which adapts lambda_http requests.

pub mod account;
pub mod apikey;
pub mod auth;
pub mod base62;
pub mod cache;
pub mod config;
pub mod error;
pub mod eventbus;
pub mod events;
pub mod guard;
pub mod http;
pub mod key;
pub mod limits;
pub mod netpolicy;
pub mod pepper;
pub mod ratelimit;
pub mod routes;
pub mod scope;
pub mod sealed;
pub mod secrets;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod usage;
pub mod webhook;

pub use error::ApiError;

/// Loads the AWS SDK configuration the normal way: the credential chain,
/// region, and `AWS_ENDPOINT_URL_*` overrides, which point the local stack and
/// the tests at DynamoDB Local and moto with production code unchanged. Every
/// call is bounded by `config::AwsTimeouts` from the environment (connect,
/// attempt, operation): without them a hung dependency holds a request until
/// the function times out. A bad setting falls back to the defaults here;
/// `Config::from_env`, which every function reads first, refuses it.
///
/// The local emulators (DynamoDB Local and moto on a two-core machine) are
/// far slower than the services: `scripts/stack.sh` sets generous
/// `KEYHUB_AWS_*` bounds for `make dev` and `make test`, so production code
/// never guesses from an endpoint's address. Tests of the production bounds
/// build their SDK configuration with `aws_config_with(&AwsTimeouts::default())`.
pub async fn aws_config() -> aws_config::SdkConfig {
    let timeouts = config::AwsTimeouts::from_env().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "using the default AWS timeouts");
        config::AwsTimeouts::default()
    });
    aws_config_with(&timeouts).await
}

/// `aws_config` with these bounds.
pub async fn aws_config_with(timeouts: &config::AwsTimeouts) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts.sdk())
        .load()
        .await
}
