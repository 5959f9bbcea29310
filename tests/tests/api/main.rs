//! Integration tests: the management API through the local gateway, against
//! DynamoDB Local and moto. Run with `make test`.

mod accounts;
mod auth;
mod errors;
mod helpers;
mod keys;
mod openapi;
mod paging;
mod rotation;
mod template;
