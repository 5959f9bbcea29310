//! A Lambda Runtime API emulator: runs a function's real binary as Lambda
//! does (the binary polls `/runtime/invocation/next` and posts its answer),
//! hands it one event and returns the answer and the cold start's two parts
//! as Lambda's REPORT line gives them (the init, from process start to the
//! first `GET /next`, and the first invocation's duration); or keeps one
//! process warm and serves it invocation after invocation ([`Environment`]),
//! as Lambda keeps an execution environment.

use std::collections::HashMap;
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

/// What the function answered, and when.
#[derive(Debug)]
pub struct Invocation {
    /// The response, or the error the function reported.
    pub result: Result<Value, Value>,
    /// Lambda's "Init Duration": from spawning the process to its first
    /// `GET /next` (the function's set-up: configuration, secrets, clients),
    /// or to its init error if it reported one instead.
    pub init: Duration,
    /// Lambda's "Duration" of the first invocation: from handing out the
    /// event on `/next` to the function's answer (zero after an init error).
    /// The first request's lazy work (connections, credentials) is here.
    pub duration: Duration,
    /// From process start to the answer: `init` + `duration`, what a cold
    /// start's caller waits for (less Lambda's own start).
    pub cold_start: Duration,
    /// Everything the process wrote to stdout and stderr (CloudWatch's
    /// share in Lambda), also echoed to this process's stderr.
    pub logs: String,
}

/// What the function answered, and when the answer arrived.
type Answer = (Result<Value, Value>, Instant);

struct Runtime {
    event: Mutex<Option<Value>>,
    /// When the function first asked for an event: the end of its init.
    first_next: Mutex<Option<Instant>>,
    answer: Mutex<Option<oneshot::Sender<Answer>>>,
}

async fn next(State(rt): State<Arc<Runtime>>) -> axum::response::Response {
    let asked = Instant::now();
    let event = rt.event.lock().ok().and_then(|mut e| e.take());
    let Some(event) = event else {
        // One invocation only: later polls wait until the process is stopped.
        std::future::pending::<()>().await;
        return ().into_response();
    };
    if let Ok(mut first) = rt.first_next.lock() {
        first.get_or_insert(asked);
    }
    let deadline = chrono::Utc::now().timestamp_millis() + 30_000;
    next_invocation(
        REQUEST_ID.to_string(),
        deadline,
        "arn:aws:lambda:us-east-1:000000000000:function:local".to_string(),
        &event,
    )
}

/// A posted body as JSON, or as the text it is.
fn parsed(body: String) -> Value {
    serde_json::from_str(&body).unwrap_or(Value::String(body))
}

fn answer(rt: &Runtime, result: Result<Value, Value>) {
    let at = Instant::now();
    if let Some(tx) = rt.answer.lock().ok().and_then(|mut a| a.take()) {
        let _ = tx.send((result, at));
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
    let name = binary
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("function");
    invoke_once(
        &Launch {
            name: name.to_string(),
            program: binary.to_path_buf(),
            args: Vec::new(),
            dir: std::env::current_dir()?,
            env: env.to_vec(),
            timeout,
        },
        event,
    )
    .await
}

/// Starts `launch`'s process (its program may be a wrapper such as
/// `qemu-aarch64` running the bootstrap named in `args`), invokes it once
/// with `event` within its timeout, and stops it.
pub async fn invoke_once(launch: &Launch, event: Value) -> Result<Invocation, Error> {
    let timeout = launch.timeout;
    let (tx, rx) = oneshot::channel();
    let rt = Arc::new(Runtime {
        event: Mutex::new(Some(event)),
        first_next: Mutex::new(None),
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
        .with_state(rt.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let name = launch.name.as_str();
    let started = Instant::now();
    let mut child = tokio::process::Command::new(&launch.program)
        .args(&launch.args)
        .current_dir(&launch.dir)
        .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{name}: cannot start {}: {e}", launch.program.display()))?;
    let readers = [
        child.stdout.take().map(|o| tokio::spawn(collect(o))),
        child.stderr.take().map(|e| tokio::spawn(collect(e))),
    ];
    let result = tokio::time::timeout(timeout, rx).await;
    let _ = child.kill().await;
    server.abort();
    let mut logs = String::new();
    for reader in readers.into_iter().flatten() {
        if let Ok(text) = reader.await {
            logs.push_str(&text);
        }
    }
    eprint!("{logs}");
    let (result, answered) = match result {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => return Err(format!("{name} never answered").into()),
        Err(_) => return Err(format!("{name} did not answer within {timeout:?}").into()),
    };
    let first_next = rt.first_next.lock().ok().and_then(|f| *f);
    // An init error comes before any `/next`: all of it was init.
    let init_ended = first_next.unwrap_or(answered);
    Ok(Invocation {
        result,
        init: init_ended.saturating_duration_since(started),
        duration: answered.saturating_duration_since(init_ended),
        cold_start: answered.saturating_duration_since(started),
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

/// One invocation waiting for the function to poll `/next`.
struct Queued {
    event: Value,
    reply: oneshot::Sender<Result<Value, Value>>,
}

/// The Runtime API side of one execution environment: invocations queue
/// here, the function takes them one at a time from `/next`, and its answer
/// goes back to whoever is waiting on that request id.
struct Warm {
    queue: tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Queued>>,
    in_flight: Mutex<HashMap<String, oneshot::Sender<Result<Value, Value>>>>,
    /// Set once the process has exited or reported an init error: nothing
    /// more will be answered.
    dead: std::sync::atomic::AtomicBool,
    invocations: std::sync::atomic::AtomicU64,
    function_arn: String,
    timeout: Duration,
}

impl Warm {
    /// Forgets every waiting and running invocation: their callers see the
    /// environment gone rather than wait for their timeout.
    fn fail_all(&self) {
        self.dead.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Ok(mut m) = self.in_flight.lock() {
            m.clear();
        }
    }

    fn settle(&self, id: &str, result: Result<Value, Value>) -> axum::http::StatusCode {
        let waiting = self.in_flight.lock().ok().and_then(|mut m| m.remove(id));
        match waiting {
            Some(tx) => {
                let _ = tx.send(result);
                axum::http::StatusCode::ACCEPTED
            }
            // Lambda's answer to a response for an unknown or settled id.
            None => axum::http::StatusCode::BAD_REQUEST,
        }
    }
}

async fn warm_next(State(rt): State<Arc<Warm>>) -> axum::response::Response {
    // The function polls again only once it has answered: in Lambda the
    // environment is frozen here until the next invocation arrives.
    let queued = rt.queue.lock().await.recv().await;
    let Some(Queued { event, reply }) = queued else {
        std::future::pending::<()>().await;
        return ().into_response();
    };
    let id = crate::gateway::new_request_id();
    if let Ok(mut m) = rt.in_flight.lock() {
        m.insert(id.clone(), reply);
    }
    rt.invocations
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let deadline = chrono::Utc::now().timestamp_millis() + rt.timeout.as_millis() as i64;
    next_invocation(id, deadline, rt.function_arn.clone(), &event)
}

async fn warm_response(
    State(rt): State<Arc<Warm>>,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> impl IntoResponse {
    rt.settle(&id, Ok(parsed(body)))
}

async fn warm_error(
    State(rt): State<Arc<Warm>>,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> impl IntoResponse {
    rt.settle(&id, Err(parsed(body)))
}

async fn warm_init_error(State(rt): State<Arc<Warm>>, body: String) -> impl IntoResponse {
    tracing::error!(error = %body, "the function failed to initialise");
    rt.fail_all();
    axum::http::StatusCode::ACCEPTED
}

/// The answer to `GET /next`: the event and the headers Lambda sends with it.
fn next_invocation(
    id: String,
    deadline: i64,
    function_arn: String,
    event: &Value,
) -> axum::response::Response {
    (
        [
            ("lambda-runtime-aws-request-id", id),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            ("lambda-runtime-invoked-function-arn", function_arn),
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

/// How to start a function's process: the command, its working directory
/// (Lambda's `/var/task`, where the handler's module is found) and its
/// environment (the template's, as Lambda sets it).
#[derive(Clone, Debug)]
pub struct Launch {
    pub name: String,
    pub program: std::path::PathBuf,
    pub args: Vec<String>,
    pub dir: std::path::PathBuf,
    pub env: Vec<(String, String)>,
    /// The function's Timeout: an invocation not answered by then fails,
    /// and the environment is replaced, as Lambda does.
    pub timeout: Duration,
}

/// Why an invocation got no answer from the function.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("{0} did not answer within {1:?}")]
    Timeout(String, Duration),
    #[error("{0}'s process is gone (it exited or failed to initialise)")]
    Gone(String),
}

/// One execution environment kept warm, as Lambda keeps one between
/// invocations: a single process of the function, serving invocations one
/// at a time through a Runtime API of its own. Module state (connections,
/// caches) carries over from one invocation to the next; a cold start
/// happens once, when the environment starts.
pub struct Environment {
    name: String,
    sender: tokio::sync::mpsc::Sender<Queued>,
    runtime: Arc<Warm>,
    pid: Option<u32>,
    child: tokio::sync::Mutex<tokio::process::Child>,
    server: tokio::task::JoinHandle<()>,
    timeout: Duration,
}

impl Environment {
    /// Starts the function's process with `AWS_LAMBDA_RUNTIME_API` pointing
    /// at a Runtime API served on a free port of 127.0.0.1. Its output goes
    /// to this process's logs, line by line, as to CloudWatch.
    pub async fn start(launch: &Launch) -> Result<Self, Error> {
        let (sender, receiver) = tokio::sync::mpsc::channel(64);
        let runtime = Arc::new(Warm {
            queue: tokio::sync::Mutex::new(receiver),
            in_flight: Mutex::new(HashMap::new()),
            dead: std::sync::atomic::AtomicBool::new(false),
            invocations: std::sync::atomic::AtomicU64::new(0),
            function_arn: format!(
                "arn:aws:lambda:us-east-1:000000000000:function:{}",
                launch.name
            ),
            timeout: launch.timeout,
        });
        let app = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(warm_next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(warm_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(warm_error),
            )
            .route("/2018-06-01/runtime/init/error", post(warm_init_error))
            .with_state(runtime.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let name = launch.name.as_str();
        let mut command = tokio::process::Command::new(&launch.program);
        for (k, v) in &launch.env {
            command.env(k, v);
        }
        let spawned = command
            .args(&launch.args)
            .current_dir(&launch.dir)
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("LAMBDA_TASK_ROOT", &launch.dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                server.abort();
                return Err(
                    format!("{name}: cannot start {}: {e}", launch.program.display()).into(),
                );
            }
        };
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward(name.to_string(), out));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward(name.to_string(), err));
        }
        Ok(Environment {
            name: name.to_string(),
            sender,
            runtime,
            pid: child.id(),
            child: tokio::sync::Mutex::new(child),
            server,
            timeout: launch.timeout,
        })
    }

    /// Invokes the function with `event` and waits for its answer: `Ok`
    /// with what it posted to `/response`, `Err` with what it posted to
    /// `/error`. Invocations queue while the function is busy.
    pub async fn invoke(&self, event: Value) -> Result<Result<Value, Value>, InvokeError> {
        if !self.alive().await {
            return Err(InvokeError::Gone(self.name.clone()));
        }
        let (reply, answer) = oneshot::channel();
        if self.sender.send(Queued { event, reply }).await.is_err() {
            return Err(InvokeError::Gone(self.name.clone()));
        }
        let waited = tokio::time::timeout(self.timeout, async {
            let mut answer = answer;
            loop {
                // Poll the process now and then, so that a crash fails the
                // invocation at once instead of at its timeout.
                tokio::select! {
                    r = &mut answer => return r.ok(),
                    () = tokio::time::sleep(Duration::from_millis(200)) => {
                        if !self.alive().await {
                            return None;
                        }
                    }
                }
            }
        })
        .await;
        match waited {
            Ok(Some(result)) => Ok(result),
            Ok(None) => Err(InvokeError::Gone(self.name.clone())),
            Err(_) => {
                // Lambda stops an environment whose invocation timed out.
                self.stop().await;
                Err(InvokeError::Timeout(self.name.clone(), self.timeout))
            }
        }
    }

    /// Whether the process still runs (and has not failed to initialise).
    pub async fn alive(&self) -> bool {
        if self.runtime.dead.load(std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        let exited = matches!(self.child.lock().await.try_wait(), Ok(Some(_)) | Err(_));
        if exited {
            self.runtime.fail_all();
        }
        !exited
    }

    /// The process id of the environment's one process.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Invocations the function has taken from `/next` so far.
    pub fn invocations(&self) -> u64 {
        self.runtime
            .invocations
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stops the process and its Runtime API.
    pub async fn stop(&self) {
        self.runtime.fail_all();
        let _ = self.child.lock().await.kill().await;
        self.server.abort();
    }
}

impl Drop for Environment {
    fn drop(&mut self) {
        // The child is killed on drop (kill_on_drop); the server goes too.
        self.server.abort();
    }
}

/// Sends each line the function writes to this process's logs.
async fn forward(name: String, pipe: impl tokio::io::AsyncRead + Unpin) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "lambda", function = %name, "{line}");
    }
}
