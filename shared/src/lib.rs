//! keyhub's common crate, in layers, each importing only the ones below it:
//!
//! - `domain` (the `keyhub-domain` crate, re-exported): keys, ids and
//!   digests, scopes, limits, accounts, events, usage records, webhook rules;
//!   no AWS, Lambda or tokio crate;
//! - `aws`: DynamoDB storage and counters, queues, secrets, sealing;
//! - `http`: errors in the contract's shape, request parsing, the route
//!   table, authentication at the edge and the guard; the only layer that
//!   sees a Lambda type;
//! - beside them, used by all: `config`, `cache`, `netpolicy`, `telemetry`,
//!   `metrics`.

pub use keyhub_domain as domain;

pub mod aws;
pub mod cache;
pub mod config;
pub mod http;
pub mod metrics;
pub mod netpolicy;
pub mod telemetry;

pub use http::error::ApiError;
