//! Integration tests: the management API through the local gateway, against
//! DynamoDB Local and moto. Run with `make test`.

mod access_log;
mod accounts;
mod auth;
mod authorizer;
mod batching;
mod browser;
mod bulk;
mod clients;
mod conditional;
mod console;
mod errors;
mod health;
mod helpers;
mod keys;
mod lifecycle;
mod openapi;
mod paging;
mod python;
mod ratelimits;
mod resilience;
mod revocation;
mod rotation;
mod sam;
mod sandbox;
mod search;
mod security;
mod smoke;
mod standing;
mod template;
mod tls;
mod usage;
mod validation;
mod verify;
mod versioning;
mod webhooks;
