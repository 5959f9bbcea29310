//! The HTTP client webhooks go out through. It follows no redirects, gives up
//! after the configured timeout, reads at most `MAX_BODY` of a response, and
//! refuses non-public addresses (unless allow-listed) on the address it is
//! about to connect to: names are resolved by `PolicyResolver`, which drops
//! every address the policy refuses, and literal addresses are checked before
//! the request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyhub::netpolicy::AddressPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Bytes of a response read before the rest is ignored.
pub const MAX_BODY: usize = 64 * 1024;

/// Resolves names like the system does, then drops every address the
/// policy refuses; a name left with none fails to resolve.
pub struct PolicyResolver {
    pub policy: AddressPolicy,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.allows(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(
                    format!("{host} resolves only to addresses webhooks may not reach").into(),
                );
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[derive(Clone)]
pub struct DeliveryClient {
    http: reqwest::Client,
    policy: AddressPolicy,
}

/// What came back from one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: Option<u16>,
    pub retry_after: Option<String>,
    /// The start of the body, as text.
    pub body: Option<String>,
    pub error: Option<String>,
    pub latency: Duration,
}

impl DeliveryClient {
    pub fn new(policy: AddressPolicy, timeout: Duration) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .no_proxy()
            .user_agent(concat!("keyhub-webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(PolicyResolver {
                policy: policy.clone(),
            }))
            .build()?;
        Ok(DeliveryClient { http, policy })
    }

    /// POSTs `body` with `headers`; never fails, the answer says what happened.
    #[tracing::instrument(skip_all, fields(url = %url))]
    pub async fn post(&self, url: &str, headers: http::HeaderMap, body: String) -> Answer {
        let started = Instant::now();
        let refused = |error: String| Answer {
            status: None,
            retry_after: None,
            body: None,
            error: Some(error),
            latency: started.elapsed(),
        };
        if let Err(e) = self.policy.check_url(url) {
            return refused(format!("refused: {e}"));
        }
        let resp = match self.http.post(url).headers(headers).body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                let mut msg = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    msg = format!("{msg}: {s}");
                    source = s.source();
                }
                return refused(if e.is_timeout() {
                    format!("timed out: {msg}")
                } else {
                    msg
                });
            }
        };
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut kept = Vec::new();
        let mut resp = resp;
        let mut error = None;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_BODY.saturating_sub(kept.len());
                    kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if kept.len() >= MAX_BODY {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(format!("reading the response: {e}"));
                    break;
                }
            }
        }
        kept.truncate(keyhub::webhook::RESPONSE_KEPT);
        Answer {
            status: Some(status),
            retry_after,
            body: Some(String::from_utf8_lossy(&kept).into_owned()),
            error,
            latency: started.elapsed(),
        }
    }
}
