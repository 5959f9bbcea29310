//! A dependency that hangs: the stack answers promptly anyway (503 with
//! Retry-After when DynamoDB hangs; normally when only the side-effect queue
//! hangs), and recovers when the dependency comes back.
//!
//! The dependency sits behind `Stall`, a TCP proxy on 127.0.0.1 that either
//! forwards to the real service or accepts connections and never answers,
//! like a paused process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keyhub_tools::bootstrap::bootstrap;
use keyhub_tools::gateway::{Gateway, serve};
use keyhub_tools::local::LocalStack;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{ROOMY_LIMITS, Resp, sdk_config, unique};

/// How long a request may take while a dependency hangs: the production
/// operation bound these stacks get (`AwsTimeouts::default()`, 3 s), a side
/// effect's bound (1 s) and 6 s for a loaded machine. CI runs every test at
/// once beside the emulators, and the 1 s of slack a 5 s bound left was not
/// enough there. Still far below the minute a hung call used to take, and
/// below the emulators' own 60 s bound (`scripts/stack.sh`), so an unbounded
/// call still fails this.
const PROMPT: Duration = Duration::from_secs(10);

/// A proxy that can play dead.
struct Stall {
    url: String,
    hung: Arc<AtomicBool>,
}

impl Stall {
    /// Forwards to `upstream` (`http://host:port`) until `hang`.
    async fn start(upstream: &str) -> Stall {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hung = Arc::new(AtomicBool::new(false));
        let flag = hung.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let flag = flag.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let mut socket = socket;
                    if !flag.load(Ordering::SeqCst) {
                        let Ok(mut up) = TcpStream::connect(&upstream).await else {
                            return;
                        };
                        // A paused process stops answering on the
                        // connections it has too, pooled ones included.
                        if !forward(&mut socket, &mut up, &flag).await {
                            return;
                        }
                    }
                    swallow(socket, flag).await;
                });
            }
        });
        Stall { url, hung }
    }

    fn hang(&self) {
        self.hung.store(true, Ordering::SeqCst);
    }

    fn recover(&self) {
        self.hung.store(false, Ordering::SeqCst);
    }
}

/// Forwards both ways until a side closes (false) or the proxy hangs (true).
/// The flag is read before each chunk is passed on, so nothing sent after
/// `hang` returns gets through, even on a pooled connection: polling it
/// beside `copy_bidirectional` left up to 20 ms in which a request that
/// followed `hang` was still answered (a health check once saw its keys
/// table "ok" through the hung proxy).
async fn forward(client: &mut TcpStream, up: &mut TcpStream, hung: &AtomicBool) -> bool {
    let (mut client_read, mut client_write) = client.split();
    let (mut up_read, mut up_write) = up.split();
    let (mut to_up, mut to_client) = ([0u8; 8192], [0u8; 8192]);
    loop {
        let (n, from_client) = tokio::select! {
            n = client_read.read(&mut to_up) => (n, true),
            n = up_read.read(&mut to_client) => (n, false),
            _ = until_hung(hung) => return true,
        };
        let n = match n {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        if hung.load(Ordering::SeqCst) {
            return true;
        }
        let written = if from_client {
            up_write.write_all(&to_up[..n]).await
        } else {
            client_write.write_all(&to_client[..n]).await
        };
        if written.is_err() {
            return false;
        }
    }
}

async fn until_hung(hung: &AtomicBool) {
    while !hung.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads and ignores a connection's bytes, never answering, until the
/// proxy recovers (then closes it, as a restarted process would).
async fn swallow(mut socket: TcpStream, hung: Arc<AtomicBool>) {
    let mut buf = [0u8; 4096];
    while hung.load(Ordering::SeqCst) {
        match tokio::time::timeout(Duration::from_millis(100), socket.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            _ => {}
        }
    }
}

/// A DynamoDB that, once armed, cancels each distinct transaction `conflicts` times
/// with a `TransactionConflict`, as real DynamoDB does when another
/// transaction holds one of its items, then passes it on to the real one.
/// Deterministic, where real contention is not (DynamoDB Local serialises
/// transactions and never reports conflicts). Returns its URL.
pub(crate) async fn contended_dynamodb(conflicts: usize) -> (String, Arc<AtomicBool>) {
    let armed = Arc::new(AtomicBool::new(false));
    let arm = armed.clone();
    use axum::body::Bytes;
    use axum::http::{HeaderMap, StatusCode as AxumStatus};
    let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap();
    let seen: Arc<std::sync::Mutex<std::collections::HashMap<String, usize>>> = Arc::default();
    let client = crate::helpers::http_client();
    let router = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let (seen, client, upstream) = (seen.clone(), client.clone(), upstream.clone());
        let armed = armed.load(Ordering::SeqCst);
        async move {
            let target = headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            if armed && target.ends_with(".TransactWriteItems") {
                // The same transaction again, whatever its idempotency token.
                let mut v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                if let Some(m) = v.as_object_mut() {
                    m.remove("ClientRequestToken");
                }
                let tries = {
                    let mut seen = seen.lock().unwrap();
                    let n = seen.entry(canonical(&v)).or_insert(0);
                    *n += 1;
                    *n
                };
                if tries <= conflicts {
                    let items = v["TransactItems"].as_array().map_or(1, Vec::len);
                    let mut reasons = vec![json!({"Code": "None"}); items];
                    reasons[items - 1] = json!({
                        "Code": "TransactionConflict",
                        "Message": "Transaction is ongoing for the item"
                    });
                    let body = json!({
                        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                        "message": "Transaction cancelled, please refer cancellation reasons for specific reasons",
                        "CancellationReasons": reasons,
                    });
                    return (
                        AxumStatus::BAD_REQUEST,
                        [("content-type".to_string(), "application/x-amz-json-1.0".to_string())],
                        body.to_string().into_bytes(),
                    );
                }
            }
            let mut req = client.post(&upstream).body(body.to_vec());
            for (k, v) in &headers {
                if k != "host" && k != "content-length" {
                    req = req.header(k.as_str(), v.as_bytes());
                }
            }
            let Ok(resp) = req.send().await else {
                return (AxumStatus::BAD_GATEWAY, [("content-type".into(), "text/plain".into())], Vec::new());
            };
            let status = AxumStatus::from_u16(resp.status().as_u16()).unwrap();
            let ct = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/x-amz-json-1.0")
                .to_string();
            let bytes = resp.bytes().await.unwrap_or_default().to_vec();
            (status, [("content-type".to_string(), ct)], bytes)
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (url, arm)
}

/// A JSON value as text with every object's keys sorted: the SDK writes
/// maps (expression attribute values) in no fixed order.
fn canonical(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| {
                    format!(
                        "{}:{}",
                        serde_json::Value::from(k.as_str()),
                        canonical(&m[*k])
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        serde_json::Value::Array(a) => {
            format!(
                "[{}]",
                a.iter().map(canonical).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

pub(crate) struct App {
    pub base: String,
    pub client: reqwest::Client,
    pub admin_key: String,
    pub stack: LocalStack,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

#[derive(Clone, Copy)]
pub(crate) enum Behind {
    DynamoDb,
    Sqs,
}

/// A stack like `spawn_app`'s whose functions reach DynamoDB or SQS through
/// a `Stall`; provisioning and the admin key go through it while it forwards.
async fn spawn_behind(behind: Behind) -> (App, Stall) {
    let var = match behind {
        Behind::DynamoDb => "AWS_ENDPOINT_URL_DYNAMODB",
        Behind::Sqs => "AWS_ENDPOINT_URL_SQS",
    };
    let stall = Stall::start(&std::env::var(var).unwrap()).await;
    (spawn_through(behind, &stall.url).await, stall)
}

/// A stack whose functions reach DynamoDB or SQS at `url`.
pub(crate) async fn spawn_through(behind: Behind, url: &str) -> App {
    let sdk = sdk_config().await;
    // The function's client gets the production bounds, not the emulators'.
    let bounded = keyhub::aws::aws_config_with(&keyhub::config::AwsTimeouts::default()).await;
    let mut stack = LocalStack::provision(&unique("t"), sdk.clone(), &Default::default(), |name| {
        (name == "KEYHUB_RATE_LIMITS").then(|| ROOMY_LIMITS.to_string())
    })
    .await
    .expect("provision a test stack");
    match behind {
        Behind::DynamoDb => {
            let conf = aws_sdk_dynamodb::config::Builder::from(&bounded)
                .endpoint_url(url)
                .build();
            stack.store = keyhub::aws::store::Store::new(
                aws_sdk_dynamodb::Client::from_conf(conf),
                stack.config.tables.clone(),
            );
        }
        Behind::Sqs => {
            let conf = aws_sdk_sqs::config::Builder::from(&bounded)
                .endpoint_url(url)
                .build();
            stack.sqs = aws_sdk_sqs::Client::from_conf(conf);
        }
    }
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
    let gateway = Arc::new(Gateway::new(&stack).expect("gateway"));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, gateway, async {
        let _ = rx.await;
    }));
    App {
        base,
        client: crate::helpers::http_client(),
        admin_key: admin.key.expose().to_string(),
        stack,
        _shutdown: tx,
    }
}

impl App {
    /// A request that must be answered within `PROMPT`.
    pub(crate) async fn prompt(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Resp {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.admin_key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = tokio::time::timeout(PROMPT, req.send())
            .await
            .unwrap_or_else(|_| panic!("{method} {path} was not answered within {PROMPT:?}"))
            .expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        Resp {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        }
    }

    /// Any request, which must be answered within `PROMPT`.
    async fn raw_prompt(&self, req: reqwest::RequestBuilder) -> Resp {
        let r = tokio::time::timeout(PROMPT, req.send())
            .await
            .unwrap_or_else(|_| panic!("not answered within {PROMPT:?}"))
            .expect("request");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        Resp {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        }
    }

    async fn whoami(&self) -> Resp {
        self.prompt(reqwest::Method::GET, "/api/v1/whoami", None)
            .await
    }

    async fn create_key(&self) -> Resp {
        self.prompt(
            reqwest::Method::POST,
            "/api/v1/api-keys",
            Some(json!({"name": "made while a dependency hung"})),
        )
        .await
    }
}

#[tokio::test]
async fn a_hung_queue_delays_no_request_and_its_events_wait_in_the_outbox() {
    let (app, sqs) = spawn_behind(Behind::Sqs).await;
    assert_eq!(app.whoami().await.status, StatusCode::OK);
    sqs.hang();
    // The usage record and the event are side effects: the request goes on
    // without them.
    let r = app.whoami().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.create_key().await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let key_id = r.body["id"].as_str().unwrap().to_string();
    sqs.recover();
    assert_eq!(app.whoami().await.status, StatusCode::OK);
    // The event the hung queue did not take is still in the outbox, and the
    // relay sends it now.
    let later = keyhub::domain::time::now() + chrono::Duration::seconds(5);
    let pending = app.stack.store.pending_outbox(later, 100).await.unwrap();
    assert!(
        pending
            .iter()
            .any(|e| e.event.as_str() == "api_key.created" && e.data["id"] == key_id.as_str()),
        "the event waits in the outbox: {pending:?}"
    );
    let bus = app.stack.event_bus().expect("webhook queue");
    assert!(bus.relay(later, 100).await.unwrap() >= 1);
}

#[tokio::test]
async fn a_hung_database_answers_503_with_retry_after_promptly_and_recovers() {
    let (app, ddb) = spawn_behind(Behind::DynamoDb).await;
    ddb.hang();
    for r in [app.whoami().await, app.create_key().await] {
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
        assert_eq!(r.code(), "service_unavailable");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(retry >= 1);
    }
    ddb.recover();
    assert_eq!(app.whoami().await.status, StatusCode::OK);
    let r = app.create_key().await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn health_answers_503_promptly_while_the_database_hangs() {
    let (app, ddb) = spawn_behind(Behind::DynamoDb).await;
    ddb.hang();
    let r = app
        .raw_prompt(app.client.get(format!("{}/api/v1/health", app.base)))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.code(), "service_unavailable");
    let checks = &r.body["error"]["details"]["checks"];
    for table in ["keys_table", "counters_table", "webhooks_table"] {
        assert_eq!(checks[table]["status"], "unavailable", "{checks}");
    }
    // The queues do not go through the hung proxy.
    assert_eq!(checks["usage_queue"]["status"], "ok", "{checks}");
}
