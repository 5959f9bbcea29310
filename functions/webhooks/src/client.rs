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

/// What the delivery log says went wrong with an attempt: a class, never
/// the raw error. Raw connect and DNS errors name addresses and ports and
/// say which are open, which would turn the log into a scanner of the
/// network the worker runs in; the detail goes to the worker's own log.
pub mod class {
    pub const BLOCKED_ADDRESS: &str = "blocked_address";
    pub const INVALID_URL: &str = "invalid_url";
    pub const DNS_FAILURE: &str = "dns_failure";
    pub const CONNECTION_REFUSED: &str = "connection_refused";
    pub const CONNECTION_RESET: &str = "connection_reset";
    pub const CONNECTION_FAILED: &str = "connection_failed";
    pub const TIMEOUT: &str = "timeout";
    pub const TLS_ERROR: &str = "tls_error";
    pub const RESPONSE_INTERRUPTED: &str = "response_interrupted";
    pub const SIGNING_FAILED: &str = "signing_failed";
    pub const REQUEST_FAILED: &str = "request_failed";
}

/// A name that resolves only to addresses the policy refuses.
#[derive(Debug)]
struct BlockedName;

impl std::fmt::Display for BlockedName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the name resolves only to addresses webhooks may not reach")
    }
}

impl std::error::Error for BlockedName {}

/// A name that does not resolve.
#[derive(Debug)]
struct Unresolved(std::io::Error);

impl std::fmt::Display for Unresolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the name does not resolve: {}", self.0)
    }
}

impl std::error::Error for Unresolved {}

/// The class of a failed send, from the error and its causes.
pub fn error_class(e: &(dyn std::error::Error + 'static)) -> &'static str {
    let mut timeout = false;
    let mut text = String::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<BlockedName>() {
            return class::BLOCKED_ADDRESS;
        }
        if err.is::<Unresolved>() {
            return class::DNS_FAILURE;
        }
        if let Some(r) = err.downcast_ref::<reqwest::Error>()
            && r.is_timeout()
        {
            timeout = true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return class::CONNECTION_REFUSED,
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted => {
                    return class::CONNECTION_RESET;
                }
                std::io::ErrorKind::TimedOut => timeout = true,
                _ => {}
            }
        }
        text.push_str(&err.to_string().to_ascii_lowercase());
        text.push(' ');
        cur = err.source();
    }
    if timeout {
        class::TIMEOUT
    } else if ["certificate", "tls", "handshake", "peer sent"]
        .iter()
        .any(|w| text.contains(w))
    {
        class::TLS_ERROR
    } else if text.contains("connect") {
        class::CONNECTION_FAILED
    } else {
        class::REQUEST_FAILED
    }
}

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
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(Unresolved)?
                .collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.allows(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(BlockedName) as Box<dyn std::error::Error + Send + Sync>);
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
        keyhub::aws::install_tls_provider();
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
            tracing::warn!(reason = %e, "webhook URL refused");
            let why = if e.contains("not a public address") {
                class::BLOCKED_ADDRESS
            } else {
                class::INVALID_URL
            };
            return refused(why.to_string());
        }
        let resp = match self.http.post(url).headers(headers).body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                let why = error_class(&e);
                tracing::warn!(class = why, error = %keyhub_error_chain(&e), "webhook attempt failed");
                return refused(why.to_string());
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
                    tracing::warn!(error = %keyhub_error_chain(&e), "webhook response cut off");
                    error = Some(class::RESPONSE_INTERRUPTED.to_string());
                    break;
                }
            }
        }
        kept.truncate(keyhub::domain::webhook::RESPONSE_KEPT);
        Answer {
            status: Some(status),
            retry_after,
            body: Some(String::from_utf8_lossy(&kept).into_owned()),
            error,
            latency: started.elapsed(),
        }
    }
}

/// An error and its causes on one line, for the worker's log only.
fn keyhub_error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_become_classes_that_name_no_address() {
        let io = |kind| std::io::Error::new(kind, "connect to 10.0.0.7:5432 failed");
        assert_eq!(
            error_class(&io(std::io::ErrorKind::ConnectionRefused)),
            class::CONNECTION_REFUSED
        );
        assert_eq!(
            error_class(&io(std::io::ErrorKind::ConnectionReset)),
            class::CONNECTION_RESET
        );
        assert_eq!(
            error_class(&io(std::io::ErrorKind::TimedOut)),
            class::TIMEOUT
        );
        assert_eq!(error_class(&BlockedName), class::BLOCKED_ADDRESS);
        assert_eq!(
            error_class(&Unresolved(io(std::io::ErrorKind::NotFound))),
            class::DNS_FAILURE
        );
        let tls = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        assert_eq!(error_class(&tls), class::TLS_ERROR);
    }
}
