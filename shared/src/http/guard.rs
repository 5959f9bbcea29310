//! The guard in front of every lambda_http handler: who is calling (its own
//! key check, or an authorizer's context), whether the key may use the route,
//! whether its key and account are within their rate limits, and the
//! `X-RateLimit-*` headers on the way out.

use std::sync::Arc;
use std::time::Instant;

use http::HeaderValue;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

use crate::aws::eventbus::EventBus;
use crate::aws::queues::UsageSink;
use crate::aws::ratelimit::{Limiter, Outcome, Unannounced, WindowState};
use crate::aws::store::{Store, StoreError};
use crate::domain::events::Event;
use crate::domain::key::KeyRecord;
use crate::domain::limits::RateLimitPolicy;
use crate::domain::refusal::Refusal;
use crate::domain::time::Timestamp;
use crate::domain::usage::UsageRecord;
use crate::http::auth::{self, Authenticator, Principal};
use crate::http::error::ApiError;

/// The rate-limit half of the guard; who is calling comes either from an
/// `Authenticator` (`admit`) or from an authorizer's context
/// (`admit_authorized`), so a function behind the authorizer needs no pepper.
#[derive(Clone)]
pub struct Guard {
    limiter: Limiter,
    policy: RateLimitPolicy,
    fail_open: bool,
    usage: Option<UsageSink>,
    /// Requests an authorizer let through are counted from the access log.
    usage_from_access_log: bool,
    /// Where `rate_limit.exceeded` events go, if anywhere.
    events: Option<(Store, EventBus)>,
}

/// A request as the guard finishes its response.
pub struct Served<'a> {
    pub req: &'a Request,
    /// The route's resource path (`/api/v1/api-keys/{id}`).
    pub route: &'a str,
    pub request_id: &'a str,
    pub started: Instant,
    pub now: Timestamp,
}

/// A request that passed.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub principal: Principal,
    /// The caller's key record, when the guard checked the key itself.
    pub record: Option<Arc<KeyRecord>>,
    pub rate: Option<WindowState>,
}

/// A request that did not, with the rate-limit state to report if known,
/// and the caller if it was known and allowed the route (a rate-limited
/// request still counts as usage).
#[derive(Debug, Clone)]
pub struct Rejection {
    pub denied: Denied,
    pub rate: Option<WindowState>,
    pub principal: Option<Principal>,
}

/// Why a request did not pass: the check's answer about the key, or a
/// failure of the check itself (with its cause, for the log).
#[derive(Debug, Clone, PartialEq)]
pub enum Denied {
    Refused(Refusal),
    Failed(ApiError),
}

impl Rejection {
    fn of(mut self, principal: &Principal) -> Self {
        self.principal = Some(principal.clone());
        self
    }

    /// The error response's error: a refusal in the API's words.
    pub fn error(&self) -> ApiError {
        match &self.denied {
            Denied::Refused(r) => ApiError::from(r.clone()),
            Denied::Failed(e) => e.clone(),
        }
    }
}

impl From<Denied> for Rejection {
    fn from(denied: Denied) -> Self {
        Rejection {
            denied,
            rate: None,
            principal: None,
        }
    }
}

impl From<Refusal> for Rejection {
    fn from(refusal: Refusal) -> Self {
        Denied::Refused(refusal).into()
    }
}

impl From<ApiError> for Rejection {
    fn from(error: ApiError) -> Self {
        Denied::Failed(error).into()
    }
}

impl From<StoreError> for Rejection {
    fn from(error: StoreError) -> Self {
        ApiError::from(error).into()
    }
}

/// Whether a route's calls count against the caller's limits. Every route
/// of the management API is metered (`Route::metered`), verify too: the
/// calling service pays one unit for its call, and the endpoint takes the
/// verified key's own unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metering {
    Caller,
    None,
}

impl Guard {
    pub fn new(limiter: Limiter, policy: RateLimitPolicy, fail_open: bool) -> Self {
        Guard {
            limiter,
            policy,
            fail_open,
            usage: None,
            usage_from_access_log: false,
            events: None,
        }
    }

    /// Announces the first refusal of each key's or account's window as a
    /// `rate_limit.exceeded` event.
    pub fn with_events(mut self, events: Option<(Store, EventBus)>) -> Self {
        self.events = events;
        self
    }

    /// Writes and sends the window's event unless another request did,
    /// then flags the window as announced on its subject's item.
    async fn announce(&self, p: &Principal, refusal: &Unannounced, now: Timestamp) {
        let Some((store, bus)) = &self.events else {
            return;
        };
        let (subject, state) = (&refusal.subject, &refusal.state);
        let data = serde_json::json!({
            "key_id": p.key_id,
            "subject": if subject.starts_with("a#") { "account" } else { "key" },
            // Which of the account's counters: its live keys' or test keys'.
            "environment": p.environment.as_str(),
            "window": state.window.as_str(),
            "limit": state.limit,
            "reset": state.reset,
        });
        let event = Event::new(
            crate::domain::events::EventKind::RateLimitExceeded,
            &p.account_id,
            data,
            now,
        );
        // The marker outlives its window by one window.
        let expires_at = state.reset + state.window.seconds();
        match store
            .announce_rate_limit(&refusal.window_id(), expires_at, &event)
            .await
        {
            Ok(first) => {
                if first {
                    bus.publish(&[event]).await;
                }
                self.limiter.flag_announced(refusal).await;
            }
            Err(e) => tracing::warn!(error = %e, "rate_limit.exceeded not recorded"),
        }
    }

    /// Sends a usage record for every request that passed the key check.
    pub fn with_usage(mut self, sink: Option<UsageSink>) -> Self {
        self.usage = sink;
        self
    }

    /// With `on` (`Config::usage_from_access_log`), a request whose key an
    /// authorizer checked sends no record: API Gateway's access-log line
    /// carries the authorizer's key id and is counted instead, so nothing
    /// is sent on its request path. A request whose key the guard checked
    /// itself still sends one (its access-log line names no key).
    pub fn with_usage_from_access_log(mut self, on: bool) -> Self {
        self.usage_from_access_log = on;
        self
    }

    /// Finishes a response: the `X-RateLimit-*` headers, and a usage record
    /// for a request that passed the key check (answered or rate limited),
    /// or a refused-attempt record for a known key refused its route (403):
    /// one SQS call, whose failure is logged, never returned; none for a
    /// request the access log counts (`with_usage_from_access_log`).
    pub async fn finish(
        &self,
        resp: &mut Response<Body>,
        served: &Served<'_>,
        rate: Option<&WindowState>,
        principal: Option<&Principal>,
    ) {
        rate_headers(resp, rate);
        let (Some(sink), Some(p)) = (&self.usage, principal) else {
            return;
        };
        if self.usage_from_access_log && authorizer_named_a_key(served.req) {
            return;
        }
        let status = resp.status().as_u16();
        let record = UsageRecord {
            request_id: served.request_id.to_string(),
            key_id: p.key_id.clone(),
            account_id: p.account_id.clone(),
            environment: p.environment,
            method: served.req.method().as_str().to_string(),
            route: served.route.to_string(),
            status,
            latency_ms: served.started.elapsed().as_secs_f64() * 1000.0,
            time: served.now,
            source_ip: source_ip(served.req),
            // A key known but refused (its scope): a failed attempt.
            refused: matches!(status, 401 | 403),
        };
        sink.send(&record).await;
    }

    pub fn policy(&self) -> &RateLimitPolicy {
        &self.policy
    }

    /// Checks the key the request presents, the route's scope and the
    /// caller's limits.
    pub async fn admit(
        &self,
        auth: &Authenticator,
        req: &Request,
        scope: Option<&str>,
        metering: Metering,
        now: Timestamp,
    ) -> Result<Admitted, Rejection> {
        let record = match auth
            .authenticate_headers(req.headers(), auth::KeyHeader::Either, now)
            .await?
        {
            Ok(record) => record,
            Err(refusal) => {
                crate::metrics::key_refused(ApiError::from(refusal.clone()).code());
                return Err(refusal.into());
            }
        };
        let principal = Principal::from_record(&record, &self.policy);
        if let Some(scope) = scope {
            // With the caller, so that `finish` counts a failed attempt.
            principal.require(scope).map_err(|r| {
                crate::metrics::key_refused("insufficient_scope");
                Rejection::from(r).of(&principal)
            })?;
        }
        crate::metrics::key_accepted();
        let rate = match metering {
            Metering::Caller => self
                .limit(&principal, now)
                .await
                .map_err(|r| r.of(&principal))?,
            Metering::None => None,
        };
        Ok(Admitted {
            principal,
            record: Some(record),
            rate,
        })
    }

    /// For a handler behind the keyhub authorizer: the principal comes from
    /// the authorizer's context (already checked, scopes included), and only
    /// the rate limits are taken here.
    pub async fn admit_authorized(
        &self,
        req: &Request,
        now: Timestamp,
    ) -> Result<Admitted, Rejection> {
        let principal = match req.request_context_ref() {
            Some(RequestContext::ApiGatewayV1(ctx)) => {
                Principal::from_context(&ctx.authorizer.fields)
            }
            _ => None,
        }
        .ok_or(Refusal::Missing)?;
        let rate = self
            .limit(&principal, now)
            .await
            .map_err(|r| r.of(&principal))?;
        Ok(Admitted {
            principal,
            record: None,
            rate,
        })
    }

    /// Takes one unit of every limited window of the key and its account.
    pub async fn limit(
        &self,
        p: &Principal,
        now: Timestamp,
    ) -> Result<Option<WindowState>, Rejection> {
        let checks = p.checks();
        match self.limiter.hit(&checks, now).await {
            Ok(Outcome::Allowed(state)) => Ok(state),
            Ok(Outcome::Denied {
                state,
                retry_after,
                unannounced,
            }) => Err({
                if let Some(refusal) = &unannounced {
                    self.announce(p, refusal, now).await;
                }
                Rejection {
                    denied: Denied::Refused(Refusal::RateLimited {
                        limit: state.limit,
                        window: state.window.as_str(),
                        retry_after,
                    }),
                    rate: Some(state),
                    principal: None,
                }
            }),
            Err(e) if self.fail_open => {
                tracing::warn!(error = %e, "rate limits unavailable; letting the request through (KEYHUB_RATE_LIMIT_FAIL_OPEN)");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The caller's address as API Gateway saw it (`identity.sourceIp`).
fn source_ip(req: &Request) -> Option<String> {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx.identity.source_ip.clone(),
        _ => None,
    }
}

/// Whether API Gateway's authorizer put a key id in this request's context:
/// then the stage's access-log line of the request carries it.
fn authorizer_named_a_key(req: &Request) -> bool {
    match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV1(ctx)) => ctx
            .authorizer
            .fields
            .get("key_id")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|k| !k.is_empty()),
        _ => false,
    }
}

/// Adds `X-RateLimit-Limit`, `-Remaining` and `-Reset` (UTC epoch seconds)
/// for the window closest to its limit.
fn rate_headers(resp: &mut Response<Body>, state: Option<&WindowState>) {
    let Some(s) = state else { return };
    let h = resp.headers_mut();
    h.insert("x-ratelimit-limit", HeaderValue::from(s.limit));
    h.insert("x-ratelimit-remaining", HeaderValue::from(s.remaining));
    h.insert("x-ratelimit-reset", HeaderValue::from(s.reset));
}
