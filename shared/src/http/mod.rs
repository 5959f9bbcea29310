//! The HTTP edge: errors in the contract's shape (`error`), request parsing
//! (`request`), the route table (`routes`), authentication of a presented
//! key (`auth`) and the guard every lambda_http handler sits behind
//! (`guard`). The only layer that sees a Lambda type.

pub mod auth;
pub mod error;
pub mod guard;
pub mod request;
pub mod routes;
