//! keyhub's webhook worker: delivers events, signed, with retries.

pub mod client;
pub mod worker;

pub use worker::{Deps, handle};
