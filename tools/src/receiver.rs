//! A webhook receiver for trying keyhub locally (`make dev`) and for tests:
//! it records every request, answers from a script of statuses, and can
//! print what it gets.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::response::IntoResponse;
use http::{HeaderMap, StatusCode};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
    pub at: Instant,
}

/// How the receiver answers, in order; when the script runs out, 204.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Sleep before answering, to play a slow receiver.
    pub delay: std::time::Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            delay: std::time::Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

#[derive(Clone, Default)]
pub struct Receiver {
    pub received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    print: bool,
}

impl Receiver {
    pub fn scripted(replies: Vec<Reply>) -> Self {
        Receiver {
            received: Arc::default(),
            script: Arc::new(Mutex::new(replies.into())),
            print: false,
        }
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn router(self) -> axum::Router {
        axum::Router::new().fallback(receive).with_state(self)
    }
}

async fn receive(
    State(rx): State<Receiver>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let received = Received {
        path: parts.uri.path().to_string(),
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    };
    if rx.print {
        println!("\n--- webhook received: POST {}", received.path);
        for name in [
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "x-signature",
        ] {
            if let Some(v) = received.headers.get(name).and_then(|v| v.to_str().ok()) {
                println!("{name}: {v}");
            }
        }
        println!("{}", received.body);
    }
    if let Ok(mut r) = rx.received.lock() {
        r.push(received);
    }
    let reply = rx
        .script
        .lock()
        .ok()
        .and_then(|mut s| s.pop_front())
        .unwrap_or(Reply::status(204));
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut resp = StatusCode::from_u16(reply.status)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        .into_response();
    for (k, v) in &reply.headers {
        if let (Ok(k), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

/// Serves a printing receiver that answers 204 to everything.
pub async fn print_forever(listener: tokio::net::TcpListener) {
    let rx = Receiver {
        print: true,
        ..Receiver::default()
    };
    if let Err(e) = axum::serve(listener, rx.router()).await {
        tracing::warn!(error = %e, "the webhook receiver stopped");
    }
}
