//! The AWS adapters: DynamoDB storage (`store`) and rate-limit counters
//! (`ratelimit`), the queues (`queues`, and `eventbus` for events), Secrets
//! Manager (`secrets`), the sealing of stored secrets (`sealed`) and API
//! Gateway's authorizer cache (`flush`, feature `cache-flush`). They
//! speak the domain's types and `StoreError`; what a failure means to a
//! client is the HTTP layer's business (`keyhub::http::error`).

pub mod eventbus;
#[cfg(feature = "cache-flush")]
pub mod flush;
pub mod queues;
pub mod ratelimit;
pub mod sealed;
pub mod secrets;
pub mod store;

/// Loads the AWS SDK configuration the normal way: the credential chain,
/// region, and `AWS_ENDPOINT_URL_*` overrides, which point the local stack and
/// the tests at DynamoDB Local and moto with production code unchanged. Every
/// call is bounded by `crate::config::AwsTimeouts` from the environment (connect,
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
    let timeouts = crate::config::AwsTimeouts::from_env().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "using the default AWS timeouts");
        crate::config::AwsTimeouts::default()
    });
    aws_config_with(&timeouts).await
}

/// The HTTPS client every SDK client of keyhub's uses: the SDK's own (hyper 1,
/// rustls 0.23, the platform's root certificates) on ring rather than the
/// SDK's default aws-lc, which adds about 0.75 MB to every bootstrap (README,
/// "Sizes"). The SDK crates are built without a default client, so a client
/// made from any other configuration fails its first call instead of
/// quietly bringing a second TLS stack.
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// Makes ring rustls' process-wide default provider, which every reqwest
/// client here takes (reqwest is built with `rustls-no-provider`, since its
/// own `rustls` feature brings aws-lc): the one place besides
/// [`http_client`] that names the provider. Call it before building a
/// reqwest client; a second call, or one after another provider was
/// installed, changes nothing.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `aws_config` with these bounds.
pub async fn aws_config_with(timeouts: &crate::config::AwsTimeouts) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client())
        .timeout_config(timeouts.sdk())
        .load()
        .await
}
