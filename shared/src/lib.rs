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
/// the tests at DynamoDB Local and moto with production code unchanged.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
