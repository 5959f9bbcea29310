//! Logging set-up shared by every binary: JSON lines for CloudWatch in Lambda,
//! readable text elsewhere; `RUST_LOG` picks the level.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    // A second init (tests, the local gateway hosting several handlers) is harmless.
    let _ = if in_lambda {
        builder.json().without_time().try_init()
    } else {
        builder.try_init()
    };
}
