//! keyhub's API Gateway Lambda authorizer, for the APIs keyhub protects.

pub mod handler;
pub mod routes;

pub use handler::{AuthorizerError, Deps, Response, authorize};
