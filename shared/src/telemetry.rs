//! Logging set-up shared by every binary, under Lambda's advanced logging
//! controls: the function's `LoggingConfig` reaches the process as
//! `AWS_LAMBDA_LOG_FORMAT` (`JSON` or `Text`) and, with JSON, as
//! `AWS_LAMBDA_LOG_LEVEL` (its `ApplicationLogLevel`). Lambda filters the
//! application logs of managed runtimes itself, but a custom runtime
//! (`provided.al2023`) must apply the level on its own, which this does.
//!
//! Outside Lambda, `RUST_LOG` picks the level (`info`, `keyhub=debug,info`)
//! and lines are text. `AWS_LAMBDA_LOG_LEVEL`, where set, wins over
//! `RUST_LOG`'s default level; per-target directives in `RUST_LOG` still
//! apply. Without `AWS_LAMBDA_LOG_FORMAT`, a function in Lambda writes JSON.
//!
//! Every line written during an invocation carries its request id (and
//! X-Ray trace id): lambda_runtime runs each invocation inside an INFO span
//! with `requestId`, and that span is kept whatever the level, so a WARN
//! line of a function set to WARN still says which request it belongs to.
//!
//! Whatever the level, lambda_runtime's TRACE line with the raw invocation
//! event is never written: that event carries the presented key (headers,
//! the verify body), and a key in CloudWatch is a leaked key.

use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id};
use tracing::{Dispatch, Event, Metadata, Subscriber};
use tracing_subscriber::filter::{Targets, filter_fn};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Where lambda_runtime logs each raw event, at TRACE.
const RAW_EVENT_TARGET: &str = "lambda_runtime::layers::api_response";

/// Where lambda_runtime opens the span of each invocation (`requestId`).
const REQUEST_SPAN_TARGET: &str = "lambda_runtime::layers::trace";

/// Log lines that may carry request material verbatim.
pub fn is_raw_event(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with(RAW_EVENT_TARGET) && *meta.level() == tracing::Level::TRACE
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON object a line, as Lambda's JSON log format has it.
    Json,
    /// tracing's human-readable lines.
    Text,
}

/// What the environment asks of logging: the format and which lines.
#[derive(Clone, Debug)]
pub struct Settings {
    pub format: Format,
    pub targets: Targets,
}

impl Settings {
    /// Reads the settings through `var` (the process environment in
    /// [`init`]); unknown values fall back to the defaults rather than
    /// failing the function's start.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let in_lambda = var("AWS_LAMBDA_FUNCTION_NAME").is_some();
        let format = match var("AWS_LAMBDA_LOG_FORMAT") {
            Some(f) if f.eq_ignore_ascii_case("json") => Format::Json,
            Some(f) if f.eq_ignore_ascii_case("text") => Format::Text,
            _ if in_lambda => Format::Json,
            _ => Format::Text,
        };
        let mut targets = var("RUST_LOG")
            .and_then(|s| s.parse::<Targets>().ok())
            .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
        if let Some(level) = var("AWS_LAMBDA_LOG_LEVEL").and_then(|l| lambda_level(&l)) {
            targets = targets.with_default(level);
        }
        Settings { format, targets }
    }

    /// Whether a span or event is written (or, for a span, entered so that
    /// the lines inside it carry its fields).
    pub fn enabled(&self, meta: &Metadata<'_>) -> bool {
        if is_raw_event(meta) {
            return false;
        }
        if meta.is_span() && meta.target() == REQUEST_SPAN_TARGET {
            return true;
        }
        self.targets.would_enable(meta.target(), meta.level())
    }
}

/// Lambda's log levels (`ApplicationLogLevel`): TRACE, DEBUG, INFO, WARN,
/// ERROR, FATAL; tracing has no FATAL, so it is ERROR.
fn lambda_level(level: &str) -> Option<LevelFilter> {
    Some(match level.to_ascii_uppercase().as_str() {
        "TRACE" => LevelFilter::TRACE,
        "DEBUG" => LevelFilter::DEBUG,
        "INFO" => LevelFilter::INFO,
        "WARN" => LevelFilter::WARN,
        "ERROR" | "FATAL" => LevelFilter::ERROR,
        _ => return None,
    })
}

/// Installs the subscriber the environment asks for, writing to stdout
/// (CloudWatch's in Lambda).
pub fn init() {
    let settings = Settings::from_vars(|k| std::env::var(k).ok());
    // A second init (tests, the local gateway hosting several handlers) is harmless.
    let _ = dispatch(settings, std::io::stdout).try_init();
}

/// The subscriber for `settings`, writing to `writer`.
pub fn dispatch<W>(settings: Settings, writer: W) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let format = settings.format;
    let filter = filter_fn(move |meta| settings.enabled(meta));
    // The filter above decides; the builder's own INFO cap would hide the
    // levels it lets through.
    let builder = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_target(false)
        .with_ansi(false)
        .with_writer(writer);
    match format {
        Format::Json => {
            let current = Current::default();
            Dispatch::new(
                builder
                    .event_format(LambdaJson(current.clone()))
                    .finish()
                    .with(RequestIds(current))
                    .with(filter),
            )
        }
        Format::Text => Dispatch::new(builder.finish().with(filter)),
    }
}

/// The request and trace ids of the invocation a span belongs to, kept in
/// the span's extensions by [`RequestIds`] for [`LambdaJson`].
#[derive(Debug, PartialEq)]
struct Invocation {
    request_id: String,
    xray_trace_id: Option<String>,
}

/// The invocation under way, from its span's start to its end. Lines
/// written outside the span during it (tasks the HTTP client spawns to
/// connect, for one) belong to it all the same: lambda_runtime serves one
/// invocation at a time (its `concurrency-tokio` feature is off), as Lambda
/// hands an execution environment one request at a time.
#[derive(Clone, Default)]
struct Current(Arc<Mutex<Option<Arc<Invocation>>>>);

impl Current {
    fn get(&self) -> Option<Arc<Invocation>> {
        self.0.lock().ok().and_then(|c| c.clone())
    }
    fn set(&self, invocation: Option<Arc<Invocation>>) {
        if let Ok(mut c) = self.0.lock() {
            *c = invocation;
        }
    }
}

/// Keeps the ids of lambda_runtime's invocation span where the JSON
/// formatter finds them (fmt keeps span fields only as formatted text).
struct RequestIds(Current);

impl<S> Layer<S> for RequestIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().target() != REQUEST_SPAN_TARGET {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let Some(Value::String(request_id)) = fields.0.remove("requestId") else {
            return;
        };
        let xray_trace_id = match fields.0.remove("xrayTraceId") {
            Some(Value::String(t)) => Some(t),
            _ => None,
        };
        let invocation = Arc::new(Invocation {
            request_id,
            xray_trace_id,
        });
        self.0.set(Some(invocation.clone()));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(invocation);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let ended = span.extensions().get::<Arc<Invocation>>().cloned();
        if ended.is_some() && ended == self.0.get() {
            self.0.set(None);
        }
    }
}

/// One JSON object a line in the shape of Lambda's own JSON logs:
/// `timestamp`, `level`, `message`, `requestId` (and `xrayTraceId`) at the
/// top, so that CloudWatch Logs Insights finds them as it does for managed
/// runtimes, then `target` and the event's other fields.
struct LambdaJson(Current);

impl<S, N> FormatEvent<S, N> for LambdaJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut line = serde_json::Map::new();
        line.insert(
            "timestamp".into(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        line.insert("level".into(), Value::String(meta.level().to_string()));
        let mut fields = Fields::default();
        event.record(&mut fields);
        line.insert(
            "message".into(),
            fields.0.remove("message").unwrap_or(Value::Null),
        );
        let in_scope = ctx.event_scope().and_then(|scope| {
            scope
                .into_iter()
                .find_map(|span| span.extensions().get::<Arc<Invocation>>().cloned())
        });
        if let Some(inv) = in_scope.or_else(|| self.0.get()) {
            line.insert("requestId".into(), Value::String(inv.request_id.clone()));
            if let Some(t) = &inv.xray_trace_id {
                line.insert("xrayTraceId".into(), Value::String(t.clone()));
            }
        }
        line.insert("target".into(), Value::String(meta.target().to_string()));
        for (k, v) in fields.0 {
            line.entry(k).or_insert(v);
        }
        let text = serde_json::to_string(&line).map_err(|_| std::fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// A span's or event's fields as JSON values.
#[derive(Default)]
struct Fields(serde_json::Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().into(), Value::String(value.into()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Settings {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn the_format_follows_lambdas_setting_and_defaults_by_place() {
        let lambda = ("AWS_LAMBDA_FUNCTION_NAME", "f");
        assert_eq!(settings(&[lambda]).format, Format::Json);
        assert_eq!(settings(&[]).format, Format::Text);
        assert_eq!(
            settings(&[lambda, ("AWS_LAMBDA_LOG_FORMAT", "Text")]).format,
            Format::Text
        );
        assert_eq!(
            settings(&[("AWS_LAMBDA_LOG_FORMAT", "JSON")]).format,
            Format::Json
        );
    }

    #[test]
    fn lambdas_level_wins_over_rust_logs_default() {
        let s = settings(&[("RUST_LOG", "trace"), ("AWS_LAMBDA_LOG_LEVEL", "WARN")]);
        assert!(s.targets.would_enable("keyhub", &tracing::Level::WARN));
        assert!(!s.targets.would_enable("keyhub", &tracing::Level::INFO));
        let s = settings(&[("AWS_LAMBDA_LOG_LEVEL", "FATAL")]);
        assert!(!s.targets.would_enable("keyhub", &tracing::Level::WARN));
        assert!(s.targets.would_enable("keyhub", &tracing::Level::ERROR));
    }

    #[test]
    fn rust_log_still_works_locally() {
        let s = settings(&[("RUST_LOG", "warn,keyhub=debug")]);
        assert!(
            s.targets
                .would_enable("keyhub::store", &tracing::Level::DEBUG)
        );
        assert!(
            !s.targets
                .would_enable("aws_smithy_runtime", &tracing::Level::INFO)
        );
        let s = settings(&[]);
        assert!(s.targets.would_enable("keyhub", &tracing::Level::INFO));
        assert!(!s.targets.would_enable("keyhub", &tracing::Level::DEBUG));
    }

    /// A buffer the subscriber writes into.
    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines_logged(vars: &[(&str, &str)], log: impl FnOnce()) -> Vec<String> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let dispatch = dispatch(settings(vars), move || writer.clone());
        tracing::dispatcher::with_default(&dispatch, log);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_string).collect()
    }

    /// What lambda_runtime does around each invocation.
    fn in_invocation(log: impl FnOnce()) {
        let span = tracing::info_span!(
            target: "lambda_runtime::layers::trace",
            "Lambda runtime invoke",
            requestId = "req-1",
            xrayTraceId = "Root=1-abc"
        );
        span.in_scope(log);
    }

    #[test]
    fn json_lines_carry_the_request_id_even_above_info() {
        let lines = lines_logged(
            &[
                ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
                ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
            ],
            || {
                tracing::info!("hidden");
                in_invocation(|| {
                    tracing::info!("hidden too");
                    tracing::warn!(key_id = "key_1", attempts = 3, "slow");
                });
            },
        );
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line: Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["message"], "slow");
        assert_eq!(line["requestId"], "req-1");
        assert_eq!(line["xrayTraceId"], "Root=1-abc");
        assert_eq!(line["key_id"], "key_1");
        assert_eq!(line["attempts"], 3);
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn lines_outside_the_span_during_an_invocation_still_name_it() {
        let lines = lines_logged(&[("AWS_LAMBDA_LOG_FORMAT", "JSON")], || {
            let span = tracing::info_span!(
                target: "lambda_runtime::layers::trace",
                "Lambda runtime invoke",
                requestId = "req-2"
            );
            // As a task the HTTP client spawns: no span of the invocation.
            tracing::info!(parent: None, "connected");
            drop(span);
            tracing::info!("between invocations");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let during: Value = serde_json::from_str(&lines[0]).unwrap();
        let after: Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(during["requestId"], "req-2");
        assert!(after.get("requestId").is_none(), "{after}");
    }

    #[test]
    fn text_lines_name_the_request_too() {
        let lines = lines_logged(&[("AWS_LAMBDA_LOG_FORMAT", "Text")], || {
            in_invocation(|| tracing::info!("hello"))
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("requestId=\"req-1\""), "{}", lines[0]);
        assert!(serde_json::from_str::<Value>(&lines[0]).is_err());
    }

    #[test]
    fn the_raw_event_line_is_dropped_at_trace() {
        let lines = lines_logged(
            &[
                ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
                ("AWS_LAMBDA_LOG_LEVEL", "TRACE"),
            ],
            || {
                in_invocation(|| {
                    tracing::trace!(target: "lambda_runtime::layers::api_response", body = "kh_live_secret", "raw");
                    tracing::trace!("kept");
                })
            },
        );
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(!lines[0].contains("kh_live_secret"));
    }
}
