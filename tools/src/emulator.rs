//! A Lambda Runtime API emulator: runs a function's real binary as Lambda
//! does (the binary polls `/runtime/invocation/next` and posts its answer),
//! hands it one event and returns the answer and how long the cold start
//! took, from process start to the answer.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::Error;

const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

/// What the function answered.
#[derive(Debug)]
pub struct Invocation {
    /// The response, or the error the function reported.
    pub result: Result<Value, Value>,
    /// From process start to the answer.
    pub cold_start: Duration,
    /// Everything the process wrote to stdout and stderr (CloudWatch's
    /// share in Lambda), also echoed to this process's stderr.
    pub logs: String,
}

struct Runtime {
    event: Mutex<Option<Value>>,
    answer: Mutex<Option<oneshot::Sender<Result<Value, Value>>>>,
}

async fn next(State(rt): State<Arc<Runtime>>) -> axum::response::Response {
    let event = rt.event.lock().ok().and_then(|mut e| e.take());
    let Some(event) = event else {
        // One invocation only: later polls wait until the process is stopped.
        std::future::pending::<()>().await;
        return ().into_response();
    };
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    (
        [
            ("lambda-runtime-aws-request-id", REQUEST_ID.to_string()),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            (
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:000000000000:function:local".to_string(),
            ),
            (
                "lambda-runtime-trace-id",
                "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
                    .to_string(),
            ),
            ("content-type", "application/json".to_string()),
        ],
        event.to_string(),
    )
        .into_response()
}

/// A posted body as JSON, or as the text it is.
fn parsed(body: String) -> Value {
    serde_json::from_str(&body).unwrap_or(Value::String(body))
}

fn answer(rt: &Runtime, result: Result<Value, Value>) {
    if let Some(tx) = rt.answer.lock().ok().and_then(|mut a| a.take()) {
        let _ = tx.send(result);
    }
}

async fn response(
    State(rt): State<Arc<Runtime>>,
    UrlPath(_id): UrlPath<String>,
    body: String,
) -> impl IntoResponse {
    answer(&rt, Ok(parsed(body)));
    axum::http::StatusCode::ACCEPTED
}

async fn error(
    State(rt): State<Arc<Runtime>>,
    UrlPath(_id): UrlPath<String>,
    body: String,
) -> impl IntoResponse {
    answer(&rt, Err(parsed(body)));
    axum::http::StatusCode::ACCEPTED
}

async fn init_error(State(rt): State<Arc<Runtime>>, body: String) -> impl IntoResponse {
    answer(&rt, Err(parsed(body)));
    axum::http::StatusCode::ACCEPTED
}

/// Runs `binary` with `env` (the function's environment), invokes it once
/// with `event`, and stops it.
pub async fn invoke(
    binary: &Path,
    env: &[(String, String)],
    event: Value,
    timeout: Duration,
) -> Result<Invocation, Error> {
    let (tx, rx) = oneshot::channel();
    let rt = Arc::new(Runtime {
        event: Mutex::new(Some(event)),
        answer: Mutex::new(Some(tx)),
    });
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(rt);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("function");
    let started = Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let readers = [
        child.stdout.take().map(|o| tokio::spawn(collect(o))),
        child.stderr.take().map(|e| tokio::spawn(collect(e))),
    ];
    let result = tokio::time::timeout(timeout, rx).await;
    let cold_start = started.elapsed();
    let _ = child.kill().await;
    server.abort();
    let mut logs = String::new();
    for reader in readers.into_iter().flatten() {
        if let Ok(text) = reader.await {
            logs.push_str(&text);
        }
    }
    eprint!("{logs}");
    let result = match result {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => return Err(format!("{name} never answered").into()),
        Err(_) => return Err(format!("{name} did not answer within {timeout:?}").into()),
    };
    Ok(Invocation {
        result,
        cold_start,
        logs,
    })
}

/// Reads a pipe to its end, so the child never blocks on a full one.
async fn collect(mut pipe: impl tokio::io::AsyncRead + Unpin) -> String {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    let _ = pipe.read_to_end(&mut bytes).await;
    String::from_utf8_lossy(&bytes).into_owned()
}
