//! keyhub's domain: what a key, a scope, a limit, an account, an event, a
//! usage record and a webhook delivery are, and the rules about them, as
//! plain data and pure functions. Its own crate so that the compiler, not a
//! comment, keeps AWS, Lambda and the async runtime out: the crate has no
//! such dependency to import. `keyhub` (the storage and HTTP layers) builds
//! on it and re-exports it as `keyhub::domain`.

pub mod access_log;
pub mod account;
pub mod apikey;
pub mod base62;
pub mod events;
pub mod key;
pub mod limits;
pub mod pepper;
pub mod refusal;
pub mod scope;
pub mod time;
pub mod usage;
pub mod webhook;
