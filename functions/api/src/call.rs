//! What an endpoint module sees: its dependencies (`Deps`, built once per
//! cold start), the request after the checks (`Call`) and what it returns
//! (`Reply`). Apart from `handler` so that the endpoint modules import this
//! and `handler` imports them, with no cycle between them.

use std::collections::HashMap;
use std::sync::Arc;

use keyhub::ApiError;
use keyhub::aws::eventbus::EventBus;
use keyhub::aws::sealed::SecretBox;
use keyhub::aws::store::Store;
use keyhub::config::Config;
use keyhub::domain::key::KeyRecord;
use keyhub::domain::time::Timestamp;
use keyhub::http::auth::{Authenticator, Principal};
use keyhub::http::guard::Guard;
use keyhub::http::request;
use lambda_http::Request;
use serde_json::Value;

/// Everything a request needs, built once per cold start.
#[derive(Clone)]
pub struct Deps {
    pub store: Store,
    pub auth: Authenticator,
    pub guard: Guard,
    /// The guard's counters, read (never taken) for a key's standing.
    pub limiter: keyhub::aws::ratelimit::Limiter,
    pub config: Arc<Config>,
    /// The webhook queue; `None` when this deployment sends no webhooks.
    pub events: Option<EventBus>,
    /// The usage queue, for the records verify sends for the key it checks
    /// (a direct send: no access log line names that key).
    pub usage: Option<keyhub::aws::queues::UsageSink>,
    /// Seals webhook signing secrets; `None` without webhooks.
    pub secrets: Option<SecretBox>,
    /// For the health check's queue probes.
    pub sqs: aws_sdk_sqs::Client,
    /// The health check's last verdict.
    pub health: crate::health::Cache,
    /// Flushes API Gateway's authorizer cache after a revocation; `None`
    /// when no stage caches keyhub's answers.
    pub flush: Option<keyhub::aws::flush::CacheFlush>,
}

impl Deps {
    pub fn new(
        ddb: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        pepper: keyhub::domain::pepper::Pepper,
        secrets: Option<SecretBox>,
        config: Config,
    ) -> Self {
        let store = Store::new(ddb.clone(), config.tables.clone());
        let auth = Authenticator::new(
            store.clone(),
            pepper,
            config.key_prefix.clone(),
            config.key_cache,
        );
        let limiter = keyhub::aws::ratelimit::Limiter::new(ddb, config.tables.counters.clone());
        let usage = config
            .usage_queue_url
            .clone()
            .map(|url| keyhub::aws::queues::UsageSink::new(sqs.clone(), url));
        let events = config
            .webhooks
            .queue_url
            .clone()
            .map(|url| EventBus::new(store.clone(), sqs.clone(), url));
        let guard = Guard::new(
            limiter.clone(),
            config.rate_limits.clone(),
            config.rate_limit_fail_open,
        )
        .with_usage(usage.clone())
        .with_events(events.clone().map(|bus| (store.clone(), bus)));
        Deps {
            store,
            auth,
            guard,
            limiter,
            config: Arc::new(config),
            events,
            usage,
            secrets,
            sqs,
            health: Default::default(),
            flush: None,
        }
    }

    /// With this authorizer cache flush (`main.rs` builds it from
    /// `KEYHUB_AUTHORIZER_CACHE_STAGES`).
    pub fn with_flush(mut self, flush: Option<keyhub::aws::flush::CacheFlush>) -> Self {
        self.flush = flush;
        self
    }
}

/// What an endpoint returns: a status and a JSON body.
pub type Reply = Result<(u16, Value), ApiError>;

/// One request, as the endpoint sees it after the checks.
pub struct Call<'a> {
    pub deps: &'a Deps,
    pub req: &'a Request,
    pub principal: &'a Principal,
    /// The caller's own key.
    pub caller: &'a KeyRecord,
    pub params: &'a HashMap<String, String>,
    pub now: Timestamp,
    /// Whether this route's operation needs a body (openapi.yaml's
    /// `requestBody.required`).
    pub body_rule: request::BodyRule,
}

impl Call<'_> {
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or("")
    }

    pub fn body<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        request::parse_body(self.req, self.deps.config.max_body_bytes, self.body_rule)
    }

    /// An event of `account_id`, if this deployment sends webhooks (no
    /// queue, no events): what a change writes to the outbox with itself.
    pub fn event(
        &self,
        account_id: &str,
        kind: keyhub::domain::events::EventKind,
        data: Value,
    ) -> Vec<keyhub::domain::events::Event> {
        match &self.deps.events {
            Some(_) => vec![keyhub::domain::events::Event::new(
                kind, account_id, data, self.now,
            )],
            None => Vec::new(),
        }
    }

    /// Sends events whose change has committed.
    pub async fn publish(&self, events: &[keyhub::domain::events::Event]) {
        if let Some(bus) = &self.deps.events
            && !events.is_empty()
        {
            bus.publish(events).await;
        }
    }

    /// Flushes the authorizer cache of the stages that use keyhub's
    /// authorizer, after a committed change that a cached answer about a
    /// key would contradict. A failure is logged, not returned.
    pub async fn flush_authorizer_cache(&self) {
        if let Some(flush) = &self.deps.flush {
            flush.flush().await;
        }
    }

    /// A new key with these settings, made now.
    pub fn mint(
        &self,
        settings: keyhub::domain::key::NewKey,
    ) -> Result<(keyhub::domain::apikey::ApiKey, KeyRecord), ApiError> {
        keyhub::domain::key::mint(
            self.deps.auth.pepper(),
            &self.deps.config.key_prefix,
            settings,
            self.now,
        )
        .map_err(|e| ApiError::internal(format!("no random bytes for a key: {e}")))
    }
}
