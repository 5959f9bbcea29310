//! Logging set-up shared by every binary: JSON lines for CloudWatch in Lambda,
//! readable text elsewhere; `RUST_LOG` picks the level.
//!
//! Whatever the level, lambda_runtime's TRACE line with the raw invocation
//! event is never written: that event carries the presented key (headers,
//! the verify body), and a key in CloudWatch is a leaked key.

use tracing::Metadata;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Where lambda_runtime logs each raw event, at TRACE.
const RAW_EVENT_TARGET: &str = "lambda_runtime::layers::api_response";

/// Log lines that may carry request material verbatim.
pub fn is_raw_event(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with(RAW_EVENT_TARGET) && *meta.level() == tracing::Level::TRACE
}

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let never_raw = filter_fn(|meta| !is_raw_event(meta));
    // A second init (tests, the local gateway hosting several handlers) is harmless.
    let _ = if in_lambda {
        builder
            .json()
            .without_time()
            .finish()
            .with(never_raw)
            .try_init()
    } else {
        builder.finish().with(never_raw).try_init()
    };
}
