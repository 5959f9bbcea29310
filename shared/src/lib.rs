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
/// Against the local emulators (`make dev`, `make test`: every
/// `AWS_ENDPOINT_URL_*` on this machine) the unset bounds default to
/// `AwsTimeouts::emulated()`: DynamoDB Local on a small machine answers a
/// burst of a few hundred requests in seconds, which production bounds would
/// turn into 503s. Tests of the production bounds build their SDK
/// configuration with `aws_config_with(&AwsTimeouts::default())`.
pub async fn aws_config() -> aws_config::SdkConfig {
    let get = |name: &str| std::env::var(name).ok();
    let emulated = ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS"]
        .iter()
        .all(|v| get(v).is_some_and(|url| config::is_loopback_url(&url)));
    let timeouts = if emulated {
        config::AwsTimeouts::from_lookup_or(get, config::AwsTimeouts::emulated())
    } else {
        config::AwsTimeouts::from_lookup(get)
    }
    .unwrap_or_else(|e| {
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
