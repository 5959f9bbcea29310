//! The management API: keys, accounts and whoami over lambda_http.

mod accounts;
mod authority;
pub mod call;
mod conditional;
pub mod console;
pub mod handler;
pub mod health;
mod keys;
pub mod listing;
pub mod requests;
mod usage;
mod verify;
pub mod version;
mod webhooks;
mod whoami;

pub use call::Deps;
pub use handler::handle;
