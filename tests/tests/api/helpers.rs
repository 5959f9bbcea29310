//! `spawn_app()`: a fresh stack (its own tables and pepper secret on the
//! shared DynamoDB Local and moto), the local gateway on a free port, and an
//! admin key. Every integration test starts here.

use std::sync::Arc;

use keyhub::domain::base62;
use keyhub_tools::bootstrap::bootstrap;
use keyhub_tools::calls::CallCounter;
use keyhub_tools::gateway::{Gateway, serve};
use keyhub_tools::local::LocalStack;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub stack: LocalStack,
    /// A key with every scope, of the account `account_id`.
    pub admin_key: String,
    pub admin_key_id: String,
    pub account_id: String,
    /// Every DynamoDB call the stack's functions make, by operation.
    pub calls: CallCounter,
    /// The gateway's access log, delivered to the usage function only when
    /// a test flushes it (`drain_usage`).
    pub access_log: Arc<keyhub_tools::access_log::AccessLog>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The contract's error code, asserting the error shape on the way.
    pub fn code(&self) -> &str {
        assert_eq!(
            self.body["status"], "error",
            "not an error body: {}",
            self.body
        );
        assert_eq!(
            self.body["request_id"].as_str(),
            self.header("x-request-id"),
            "request_id in body and header differ"
        );
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// An HTTP client for the tests, on the functions' TLS provider.
pub fn http_client() -> reqwest::Client {
    keyhub::aws::install_tls_provider();
    reqwest::Client::new()
}

pub async fn sdk_config() -> aws_config::SdkConfig {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
        "the integration tests need the local services: run them with `make test`"
    );
    keyhub::aws::aws_config().await
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}{}", base62::random(10).unwrap().to_lowercase())
}

/// Limits high enough that only the rate-limit tests meet them; those set
/// their own.
pub const ROOMY_LIMITS: &str = r#"{
    "key_default": {"per_minute": 100000, "per_hour": 1000000, "per_day": 10000000},
    "free": {"per_minute": 100000, "per_hour": 1000000, "per_day": 10000000},
    "pro": {"per_minute": 100000, "per_hour": 1000000, "per_day": 10000000},
    "enterprise": {"per_minute": 100000}
}"#;

/// Fixed windows: start a burst well inside a minute, so that it cannot
/// straddle two windows.
pub async fn clear_of_minute_boundary() {
    let into = chrono::Utc::now().timestamp() % 60;
    if into > 45 {
        tokio::time::sleep(std::time::Duration::from_secs((61 - into) as u64)).await;
    }
}

/// Minute windows begun since `from` (epoch seconds). A window that turns
/// over costs each limited subject one more write, so a test that counts
/// writes against the wall clock allows exactly that many.
pub fn minutes_since(from: i64) -> u64 {
    (chrono::Utc::now().timestamp().div_euclid(60) - from.div_euclid(60)).max(0) as u64
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[("KEYHUB_RATE_LIMITS", ROOMY_LIMITS)]).await
}

/// A stack whose functions see `env` on top of the defaults, as if set in
/// template.yaml.
pub async fn spawn_app_with(env: &[(&str, &str)]) -> TestApp {
    spawn_app_configured(env, |gateway, _| gateway).await
}

/// A test app whose gateway is set up like a deployment with other
/// parameters (authorizer table, identity header, cache TTL, extra routes).
pub async fn spawn_app_configured(
    env: &[(&str, &str)],
    configure: impl FnOnce(Gateway, &LocalStack) -> Gateway,
) -> TestApp {
    spawn_app_served(env, |gateway, stack, _| configure(gateway, stack)).await
}

/// `spawn_app_configured`, where `configure` also gets the gateway's own
/// address (`http://127.0.0.1:port`), for an SDK pointed at it.
pub async fn spawn_app_served(
    env: &[(&str, &str)],
    configure: impl FnOnce(Gateway, &LocalStack, &str) -> Gateway,
) -> TestApp {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let sdk = sdk_config().await;
    let mut stack = LocalStack::provision(
        &unique("t"),
        sdk.clone(),
        &Default::default(),
        move |name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
    )
    .await
    .expect("provision a test stack");
    let calls = CallCounter::default();
    stack.store = keyhub::aws::store::Store::new(calls.dynamodb(&sdk), stack.config.tables.clone());
    let admin = bootstrap(
        &stack.store,
        &stack.pepper,
        &stack.config.key_prefix,
        "test admin",
        "admin",
        keyhub::domain::limits::Plan::Enterprise,
    )
    .await
    .expect("bootstrap");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let gateway = Arc::new(configure(
        Gateway::new(&stack).expect("gateway"),
        &stack,
        &base,
    ));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let access_log = gateway.access_log();
    tokio::spawn(serve(listener, gateway, async {
        let _ = rx.await;
    }));
    TestApp {
        base,
        client: http_client(),
        admin_key: admin.key.expose().to_string(),
        admin_key_id: admin.record.id,
        account_id: admin.account.id,
        calls,
        access_log,
        stack,
        _shutdown: tx,
    }
}

impl TestApp {
    /// A key written straight to the store, in any account, so that making
    /// it spends no quota and records no usage: (plaintext, id).
    pub async fn direct_key(
        &self,
        account_id: &str,
        plan: keyhub::domain::limits::Plan,
        scopes: &[&str],
        limits: keyhub::domain::limits::Limits,
    ) -> (String, String) {
        let settings = keyhub::domain::key::NewKey {
            account_id: account_id.to_string(),
            plan,
            name: "direct".into(),
            description: None,
            scopes: keyhub::domain::scope::Scopes::parse_all(scopes.iter().copied()).unwrap(),
            environment: keyhub::domain::apikey::Environment::Live,
            expires_at: None,
            rate_limits: limits,
            metadata: Default::default(),
        };
        let (key, record) = keyhub::domain::key::mint(
            &self.stack.pepper,
            &self.stack.config.key_prefix,
            settings,
            keyhub::domain::time::now(),
        )
        .unwrap();
        self.stack.store.put_key_uncounted(&record).await.unwrap();
        (key.expose().to_string(), record.id)
    }

    /// Runs the usage function over everything the gateway has logged and
    /// everything queued, as Lambda would: the access-log lines and queued
    /// records it went through.
    pub async fn drain_usage(&self) -> usize {
        let logged = self.access_log.flush().await;
        let deps = self.stack.usage_deps();
        let source = self.stack.usage_source().await.expect("usage queue");
        logged
            + source
                .drain(|event| keyhub_usage::handle(&deps, event))
                .await
                .expect("drain the usage queue")
    }

    /// Sends a request with `key` as a Bearer token (if any) and a JSON body
    /// (if any).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        into_resp(req.send().await.expect("request")).await
    }

    pub async fn raw(&self, req: reqwest::RequestBuilder) -> Resp {
        into_resp(req.send().await.expect("request")).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str, key: &str) -> Resp {
        self.call(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(key), Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(key), Some(body)).await
    }

    pub async fn delete(&self, path: &str, key: &str) -> Resp {
        self.call(Method::DELETE, path, Some(key), None).await
    }

    /// Creates a key with the admin key; returns (plaintext, key object).
    pub async fn create_key(&self, body: Value) -> (String, Value) {
        self.create_key_as(&self.admin_key, body).await
    }

    pub async fn create_key_as(&self, key: &str, body: Value) -> (String, Value) {
        let r = self.post("/api/v1/api-keys", key, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        (r.body["key"].as_str().unwrap().to_string(), r.body)
    }

    /// A key with the given scopes.
    pub async fn key_with(&self, scopes: &[&str]) -> String {
        self.create_key(json!({"name": "scoped", "scopes": scopes}))
            .await
            .0
    }

    /// A second account and its admin key: (account id, key).
    pub async fn other_account(&self) -> (String, String) {
        let r = self
            .post(
                "/api/v1/accounts",
                &self.admin_key,
                json!({"name": "other", "plan": "pro"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        (
            r.body["account"]["id"].as_str().unwrap().to_string(),
            r.body["api_key"]["key"].as_str().unwrap().to_string(),
        )
    }
}

async fn into_resp(r: reqwest::Response) -> Resp {
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Resp {
        status,
        headers,
        body,
    }
}

/// Settings for the webhook tests: deliveries may go to this machine over
/// http, and the retry schedule is shrunk by `retry_scale`.
pub fn webhook_env(retry_scale: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("KEYHUB_RATE_LIMITS", ROOMY_LIMITS),
        ("KEYHUB_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8"),
        ("KEYHUB_WEBHOOK_ALLOW_HTTP", "true"),
        ("KEYHUB_WEBHOOK_RETRY_SCALE", retry_scale),
        ("KEYHUB_WEBHOOK_TIMEOUT_SECONDS", "5"),
    ]
}

/// A receiver on a free port answering as scripted: (URL, receiver).
pub async fn start_receiver(
    replies: Vec<keyhub_tools::receiver::Reply>,
) -> (String, keyhub_tools::receiver::Receiver) {
    let rx = keyhub_tools::receiver::Receiver::scripted(replies);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let router = rx.clone().router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, rx)
}

impl TestApp {
    /// Runs the webhook worker over the queue, as Lambda would, until `done`
    /// holds or `limit` passes (retries come back after their delay).
    pub async fn pump_webhooks_until(
        &self,
        limit: std::time::Duration,
        done: impl Fn() -> bool,
    ) -> bool {
        let deps = self.stack.webhook_deps().expect("webhook deps");
        let source = self.stack.webhook_source().await.expect("webhook queue");
        let started = std::time::Instant::now();
        while started.elapsed() < limit {
            if done() {
                return true;
            }
            source
                .poll_once(10, std::time::Duration::from_secs(1), |event| {
                    keyhub_webhooks::handle(&deps, event)
                })
                .await
                .expect("poll the webhook queue");
        }
        done()
    }

    /// Creates a webhook endpoint; returns (id, whsec secret).
    pub async fn webhook(&self, url: &str, events: &[&str]) -> (String, String) {
        let r = self
            .post(
                "/api/v1/webhooks",
                &self.admin_key,
                json!({"url": url, "events": events}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        (
            r.body["id"].as_str().unwrap().to_string(),
            r.body["secret"].as_str().unwrap().to_string(),
        )
    }
}

/// A function binary that `cargo build --workspace` made, for the tests that
/// run it under the emulator (smoke, metrics).
pub fn binary(name: &str) -> std::path::PathBuf {
    // target/debug/deps/api-… → target/debug/<name>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` (make test does)",
        path.display()
    );
    path
}

/// A sample event of `events/` with `key` put in for the placeholder.
pub fn sample(file: &str, key: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(format!("{}/../events/{file}", env!("CARGO_MANIFEST_DIR")))
        .unwrap();
    serde_json::from_str(&text.replace("kh_live_REPLACE_WITH_YOUR_KEY", key)).unwrap()
}
