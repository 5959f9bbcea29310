//! `make bench`: keyhub's benchmarks against the local stack, written to
//! bench/RESULTS.md with the commands that made them.
//!
//! Times on a shared machine are noisy, so the comparisons that matter are
//! ratios taken in the same run, interleaved (verify against a raw GetItem of
//! the same item), and AWS calls are counted by an SDK interceptor. The
//! in-process micro-benchmarks (cached verify, checksum refusal, signing) are
//! divan benches of the crates that own the code (`shared/benches`,
//! `shared/domain/benches`), which `make bench` runs first.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use clap::Parser;
use keyhub::aws::store::Store;
use keyhub::cache::CacheSettings;
use keyhub::domain::apikey::Environment;
use keyhub::domain::key::{self, NewKey};
use keyhub::domain::limits::Plan;
use keyhub::domain::scope::Scopes;
use keyhub::domain::time;
use keyhub::http::auth::Authenticator;
use keyhub_tools::Error;
use keyhub_tools::bootstrap::bootstrap;
use keyhub_tools::calls::CallCounter;
use keyhub_tools::gateway::{Gateway, serve};
use keyhub_tools::local::LocalStack;

#[derive(Parser)]
#[command(about = "keyhub benchmarks (run through `make bench`)")]
struct Args {
    /// Where to write the results.
    #[arg(long, default_value = "bench/RESULTS.md")]
    out: String,
    /// Interleaved pairs of uncached verify and raw GetItem.
    #[arg(long, default_value_t = 2_000)]
    uncached: usize,
    /// Requests per end-to-end run.
    #[arg(long, default_value_t = 4_000)]
    requests: usize,
    /// Usage records to aggregate.
    #[arg(long, default_value_t = 10_000)]
    records: usize,
    /// Records per usage batch.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Keys the usage records are spread over.
    #[arg(long, default_value_t = 20)]
    usage_keys: usize,
    /// Webhook deliveries per run.
    #[arg(long, default_value_t = 1_000)]
    deliveries: usize,
    /// Cold starts per function and build; the tables give medians.
    #[arg(long, default_value_t = 5)]
    cold_runs: usize,
    /// Where `make build` put the arm64 bootstraps (`<Function>/bootstrap`;
    /// `<binary>/bootstrap` too, cargo lambda's `target/lambda` layout), run
    /// under qemu-user; none there, the arm64 columns say so.
    #[arg(long, env = "KEYHUB_ARM64_BUILD", default_value = ".aws-sam/build")]
    arm64_build: std::path::PathBuf,
    /// The aarch64 root (its glibc and loader) qemu-user runs the
    /// dynamically linked bootstraps with (`qemu-aarch64 -L`); Debian's
    /// libc6-arm64-cross puts it here.
    #[arg(long, env = "QEMU_LD_PREFIX", default_value = "/usr/aarch64-linux-gnu")]
    arm64_sysroot: std::path::PathBuf,
    /// Only the cold starts (for a rerun on new arm64 artifacts), written
    /// to `--out` alone.
    #[arg(long)]
    cold_starts_only: bool,
}

/// Limits no benchmark reaches: the counters are still taken on every request.
const BENCH_LIMITS: &str = r#"{
    "key_default": {"per_minute": 1000000000, "per_hour": 1000000000, "per_day": 1000000000},
    "free": {"per_minute": 1000000000, "per_hour": 1000000000, "per_day": 1000000000},
    "pro": {"per_minute": 1000000000, "per_hour": 1000000000, "per_day": 1000000000},
    "enterprise": {"per_minute": 1000000000, "per_hour": 1000000000, "per_day": 1000000000}
}"#;

/// A deterministic skewed pick in `0..n`: low indexes are far likelier.
fn skewed(i: usize, salt: u64, n: usize) -> usize {
    let h = (i as u64 ^ salt).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    let u = (h % 10_000) as f64 / 10_000.0;
    ((u.powi(3) * n as f64) as usize).min(n - 1)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    keyhub::telemetry::init();
    let sdk = keyhub::aws::aws_config().await;
    let name = format!("bench{}", keyhub::domain::base62::random(8)?.to_lowercase());
    let mut stack = LocalStack::provision(&name, sdk.clone(), &Default::default(), |k| match k {
        "KEYHUB_RATE_LIMITS" => Some(BENCH_LIMITS.to_string()),
        "KEYHUB_WEBHOOK_ALLOWED_NETWORKS" => Some("127.0.0.0/8".to_string()),
        "KEYHUB_WEBHOOK_ALLOW_HTTP" => Some("true".to_string()),
        _ => None,
    })
    .await?;
    let calls = CallCounter::default();
    stack.store = Store::new(calls.dynamodb(&sdk), stack.config.tables.clone());
    stack.sqs = calls.sqs(&sdk);
    // moto answers SQS from one Python thread, far slower than SQS; the
    // throughput runs leave usage records off and a short run counts them.
    let usage_queue = stack.config.usage_queue_url.take();
    let admin = bootstrap(
        &stack.store,
        &stack.pepper,
        &stack.config.key_prefix,
        "bench",
        "admin",
        Plan::Pro,
    )
    .await?;
    let settings = NewKey {
        account_id: admin.account.id.clone(),
        plan: Plan::Pro,
        name: "bench".into(),
        description: None,
        scopes: Scopes::parse_all(["example:read", "keys:read"])?,
        environment: Environment::Live,
        expires_at: None,
        rate_limits: Default::default(),
        metadata: Default::default(),
    };
    let (key, record) = key::mint(
        &stack.pepper,
        &stack.config.key_prefix,
        settings,
        time::now(),
    )?;
    stack.store.put_key_uncounted(&record).await?;
    let key = key.expose().to_string();

    let mut out = String::new();
    writeln!(out, "# keyhub benchmarks\n")?;
    writeln!(
        out,
        "Made by `make bench` ({}), on {} ({} cores), against DynamoDB Local and moto on the same machine. \
         Absolute times depend on the machine and its load; the ratios and call counts are what to compare.\n",
        time::format(&time::now()),
        cpu_model(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    )?;

    if args.cold_starts_only {
        cold_starts(&mut out, &args, &stack, &key).await?;
        return finish(&args, out);
    }
    writeln!(
        out,
        "The in-process micro-benchmarks (a cached verify, a key refused on its checksum, signing a webhook) \
         are divan benches, run by `make bench` before this program: `cargo bench -p keyhub --bench verify` and \
         `cargo bench -p keyhub-domain --bench signing`, their tables in bench/MICRO.txt.\n"
    )?;

    // --- 2. Uncached verify against one raw GetItem ----------------------------
    let uncached = Authenticator::new(
        stack.store.clone(),
        stack.pepper.clone(),
        stack.config.key_prefix.clone(),
        CacheSettings::OFF,
    );
    let raw = stack.store.client().clone();
    let table = stack.config.tables.keys.clone();
    let get_raw = || {
        raw.get_item()
            .table_name(&table)
            .key("id", AttributeValue::S(record.id.clone()))
            .consistent_read(true)
            .send()
    };
    for _ in 0..100 {
        get_raw().await?;
        uncached
            .authenticate(Some(&key), time::now())
            .await?
            .map_err(|r| format!("the key was refused: {r:?}"))?;
    }
    calls.reset();
    let (mut t_verify, mut t_raw) = (
        Vec::with_capacity(args.uncached),
        Vec::with_capacity(args.uncached),
    );
    for i in 0..args.uncached {
        // Alternate which goes first so neither gets the warmer slot.
        let verify_first = i % 2 == 0;
        for turn in 0..2 {
            if (turn == 0) == verify_first {
                let s = Instant::now();
                uncached
                    .authenticate(Some(&key), time::now())
                    .await?
                    .map_err(|r| format!("the key was refused: {r:?}"))?;
                t_verify.push(s.elapsed());
            } else {
                let s = Instant::now();
                get_raw().await?;
                t_raw.push(s.elapsed());
            }
        }
    }
    let counted = calls.snapshot();
    let verify_calls = counted.get("GetItem").copied().unwrap_or(0) as f64 - args.uncached as f64;
    let other_calls: u64 = counted
        .iter()
        .filter(|(k, _)| *k != "GetItem")
        .map(|(_, v)| v)
        .sum();
    t_verify.sort();
    t_raw.sort();
    let (v50, r50) = (percentile(&t_verify, 0.5), percentile(&t_raw, 0.5));
    let (v99, r99) = (percentile(&t_verify, 0.99), percentile(&t_raw, 0.99));
    let mean = |v: &[Duration]| v.iter().sum::<Duration>() / v.len().max(1) as u32;
    writeln!(
        out,
        "## Verify, uncached, against one raw GetItem of the same item\n"
    )?;
    writeln!(out, "| | p50 | p99 | mean |\n|---|---|---|---|")?;
    writeln!(
        out,
        "| verify (cache off) | {} | {} | {} |",
        us(v50),
        us(v99),
        us(mean(&t_verify))
    )?;
    writeln!(
        out,
        "| raw GetItem (consistent read) | {} | {} | {} |",
        us(r50),
        us(r99),
        us(mean(&t_raw))
    )?;
    writeln!(
        out,
        "| **ratio verify / GetItem** | **{:.3}** | {:.3} | {:.3} |",
        v50.as_secs_f64() / r50.as_secs_f64(),
        v99.as_secs_f64() / r99.as_secs_f64(),
        mean(&t_verify).as_secs_f64() / mean(&t_raw).as_secs_f64()
    )?;
    writeln!(
        out,
        "\nTarget: within 1.2× of the GetItem. AWS calls per uncached verify, counted: {:.2} GetItem, {} other \
         ({} interleaved pairs).\n",
        verify_calls / args.uncached as f64,
        other_calls,
        args.uncached
    )?;

    // --- 3. End to end through the local gateway -------------------------------
    let gateway = Arc::new(Gateway::new(&stack)?);
    // Its access log would feed the usage function during the runs.
    gateway.access_log().set_enabled(false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(serve(listener, gateway, std::future::pending()));
    writeln!(
        out,
        "## A protected request, end to end through the local gateway\n"
    )?;
    writeln!(
        out,
        "HTTP over loopback from a client in the same process. `/example/hello` runs the authorizer (key cached \
         after the first request), then the example function's guard, which takes the rate limits: one \
         conditional UpdateItem on the key's item and one on the account's, each counting its minute, hour and \
         day windows. `/api/v1/whoami` is the management API: its guard checks the key (cached) and takes the \
         same limits, then the endpoint reads the account.\n"
    )?;
    writeln!(
        out,
        "| route | concurrency | requests | req/s | p50 | p99 | DynamoDB reads / request | writes / request |\n|---|---|---|---|---|---|---|---|"
    )?;
    keyhub::aws::install_tls_provider();
    let client = reqwest::Client::new();
    for path in ["/example/hello", "/api/v1/whoami"] {
        for concurrency in [1usize, 32] {
            let url = format!("{base}{path}");
            // Warm up: caches, connections.
            for _ in 0..50 {
                client
                    .get(&url)
                    .bearer_auth(&key)
                    .send()
                    .await?
                    .error_for_status()?;
            }
            calls.reset();
            let next = Arc::new(AtomicUsize::new(0));
            let started = Instant::now();
            let workers: Vec<_> = (0..concurrency)
                .map(|_| {
                    let (client, url, key, next) =
                        (client.clone(), url.clone(), key.clone(), next.clone());
                    let total = args.requests;
                    tokio::spawn(async move {
                        let mut lat = Vec::new();
                        while next.fetch_add(1, Ordering::Relaxed) < total {
                            let s = Instant::now();
                            let r = client.get(&url).bearer_auth(&key).send().await;
                            match r {
                                Ok(r) if r.status().is_success() => {
                                    let _ = r.bytes().await;
                                    lat.push(s.elapsed());
                                }
                                Ok(r) => return Err(format!("status {}", r.status())),
                                Err(e) => return Err(e.to_string()),
                            }
                        }
                        Ok(lat)
                    })
                })
                .collect();
            let mut lat = Vec::with_capacity(args.requests);
            for w in workers {
                lat.extend(w.await?.map_err(Error::from)?);
            }
            let elapsed = started.elapsed();
            lat.sort();
            let counted = calls.snapshot();
            let n = lat.len() as f64;
            let reads = (counted.get("GetItem").copied().unwrap_or(0)
                + counted.get("Query").copied().unwrap_or(0)) as f64;
            let writes = counted.get("UpdateItem").copied().unwrap_or(0) as f64;
            writeln!(
                out,
                "| `GET {path}` | {concurrency} | {} | {:.0} | {} | {} | {:.2} | {:.2} |",
                lat.len(),
                n / elapsed.as_secs_f64(),
                ms(percentile(&lat, 0.5)),
                ms(percentile(&lat, 0.99)),
                reads / n,
                writes / n
            )?;
        }
    }
    // The AWS calls of one protected request with usage records on.
    stack.config.usage_queue_url = usage_queue;
    let gateway = Arc::new(Gateway::new(&stack)?);
    // The route's usage comes from the access log, off the request path:
    // its delivery's calls are not the request's.
    gateway.access_log().set_enabled(false);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(serve(listener, gateway, std::future::pending()));
    let probe = 200;
    client
        .get(format!("{base}/example/hello"))
        .bearer_auth(&key)
        .send()
        .await?;
    calls.reset();
    for _ in 0..probe {
        client
            .get(format!("{base}/example/hello"))
            .bearer_auth(&key)
            .send()
            .await?
            .error_for_status()?;
    }
    let counted = calls.snapshot();
    let per = |op: &str| counted.get(op).copied().unwrap_or(0) as f64 / probe as f64;
    writeln!(
        out,
        "\nThe runs above leave usage records off: moto serves SQS from one Python thread, far slower than SQS, \
         and would be what they measure. With usage records on, {probe} requests to `/example/hello` made, per \
         request: {:.2} GetItem, {:.2} UpdateItem, {:.2} SQS SendMessage, and nothing else ({} calls in all); \
         the route's usage comes from the stage's access log, delivered in batches off the request path.\n",
        per("GetItem"),
        per("UpdateItem"),
        per("SendMessage"),
        counted.values().sum::<u64>()
    )?;
    // On-demand prices (us-east-1): a write of an item up to 1 KB is one
    // write unit, $0.625 per million; a consistent read $0.125 per million
    // read units (one per 4 KB); an SQS message $0.40 per million.
    let dollars = per("UpdateItem") * 0.625 + per("GetItem") * 0.125 + per("SendMessage") * 0.40;
    writeln!(
        out,
        "At on-demand prices (a write of an item up to 1 KB $0.625 per million, a read $0.125, an SQS message \
         $0.40) these calls cost ${dollars:.2} per million protected requests, before Lambda and the usage \
         function.\n"
    )?;
    writeln!(
        out,
        "Target: at most one DynamoDB read per protected request (none when the key is cached) and at most two \
         writes, one per subject (key and account), plus one when a window of the subject turns over. The reads \
         counted under `/api/v1/whoami` are the endpoint's own account lookup.\n"
    )?;
    // --- 4. Usage aggregation ------------------------------------------------
    writeln!(out, "## Usage aggregation\n")?;
    let mut keys = Vec::new();
    for i in 0..args.usage_keys {
        let settings = NewKey {
            account_id: admin.account.id.clone(),
            plan: Plan::Pro,
            name: format!("usage {i}"),
            description: None,
            scopes: Scopes::default(),
            environment: Environment::Live,
            expires_at: None,
            rate_limits: Default::default(),
            metadata: Default::default(),
        };
        let (_, r) = key::mint(
            &stack.pepper,
            &stack.config.key_prefix,
            settings,
            time::now(),
        )?;
        stack.store.put_key_uncounted(&r).await?;
        keys.push(r.id);
    }
    let routes = [
        "/api/v1/whoami",
        "/api/v1/api-keys",
        "/api/v1/api-keys/{id}",
        "/example/hello",
    ];
    let statuses = [200u16, 200, 200, 201, 400, 404, 429, 500];
    writeln!(
        out,
        "{} records over {} keys of one account and {} endpoints, skewed as real traffic is (a few keys and \
         endpoints take most requests), with mixed statuses, in one hour, fed to the usage function in batches \
         of {} (the event source mapping's BatchSize in template.yaml).\n",
        args.records,
        keys.len(),
        routes.len(),
        args.batch
    )?;
    writeln!(
        out,
        "| consumers | records/s | DynamoDB calls per 1,000 records | items written per 1,000 records |\n|---|---|---|---|"
    )?;
    let usage = Arc::new(stack.usage_deps());
    for consumers in [1usize, 4] {
        let hour = time::now();
        let batches: Vec<aws_lambda_events::sqs::SqsEvent> = (0..args.records)
            .collect::<Vec<_>>()
            .chunks(args.batch)
            .map(|chunk| {
                let mut event = aws_lambda_events::sqs::SqsEvent::default();
                for &i in chunk {
                    let record = keyhub::domain::usage::UsageRecord {
                        request_id: format!("bench-{consumers}-{i}"),
                        key_id: keys[skewed(i, 7, keys.len())].clone(),
                        account_id: admin.account.id.clone(),
                        environment: Default::default(),
                        method: "GET".into(),
                        route: routes[skewed(i, 13, routes.len())].into(),
                        status: statuses[i % statuses.len()],
                        latency_ms: (i % 50) as f64 + 0.5,
                        time: hour,
                        source_ip: None,
                        refused: false,
                    };
                    let mut m = aws_lambda_events::sqs::SqsMessage::default();
                    m.message_id = Some(format!("m{i}"));
                    m.body = serde_json::to_string(&record).ok();
                    event.records.push(m);
                }
                event
            })
            .collect();
        let queue = Arc::new(std::sync::Mutex::new(batches));
        calls.reset();
        let started = Instant::now();
        let workers: Vec<_> = (0..consumers)
            .map(|_| {
                let (queue, usage) = (queue.clone(), usage.clone());
                tokio::spawn(async move {
                    let mut failed = 0;
                    loop {
                        let next = queue.lock().ok().and_then(|mut q| q.pop());
                        let Some(event) = next else { return failed };
                        failed += keyhub_usage::handle(&usage, event)
                            .await
                            .batch_item_failures
                            .len();
                    }
                })
            })
            .collect();
        let mut failed = 0;
        for w in workers {
            failed += w.await?;
        }
        let elapsed = started.elapsed();
        let per_k = |n: u64| n as f64 * 1000.0 / args.records as f64;
        let calls_made: u64 = calls.snapshot().values().sum();
        writeln!(
            out,
            "| {consumers} | {:.0} | {:.0} | {:.0} |{}",
            args.records as f64 / elapsed.as_secs_f64(),
            per_k(calls_made),
            per_k(calls.write_items()),
            if failed > 0 {
                format!(" ({failed} records left for redelivery)")
            } else {
                String::new()
            }
        )?;
    }
    writeln!(
        out,
        "\nEach record is one item of its key's recent-requests list (with a TTL), which is also its \
         \"counted once\" marker; the sums cost one item per distinct (key, hour, endpoint), key and account in \
         each transaction of up to 100 items, with `last_used` and the latency maximum set in the same items when \
         they rise. Counting every record on its own would take four writes per record (4,000 per 1,000). More \
         consumers contend for the same hot items (transactions conflict and retry), which is why the event \
         source mapping keeps the usage function's concurrency low.\n"
    )?;

    // --- 5. Webhooks ----------------------------------------------------------
    writeln!(out, "## Webhooks\n")?;
    let secret = keyhub::domain::webhook::SigningSecret::generate().ok_or("no randomness")?;

    let (receiver_url, receiver) = {
        let rx = keyhub_tools::receiver::Receiver::scripted(vec![]);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let router = rx.clone().router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        (url, rx)
    };
    let secrets_box = stack.secret_box.clone().ok_or("no webhook key")?;
    let endpoint_id = format!("wh_{}", keyhub::domain::base62::random(20)?);
    stack
        .store
        .put_endpoint(&keyhub::domain::webhook::Endpoint {
            id: endpoint_id.clone(),
            account_id: admin.account.id.clone(),
            url: receiver_url,
            events: vec!["*".into()],
            description: None,
            is_active: true,
            secret: secrets_box.seal(secret.bytes(), &endpoint_id)?,
            previous_secret: None,
            previous_secret_expires_at: None,
            created_at: time::now(),
            updated_at: time::now(),
            failing_since: None,
            disabled_reason: None,
        })
        .await?;
    let webhooks = Arc::new(stack.webhook_deps()?);
    writeln!(
        out,
        "Deliveries to a receiver on 127.0.0.1 that answers 204 at once: event messages fed to the webhook \
         function in batches of 10 (its BatchSize), each delivered to one endpoint: a delivery record written, \
         the POST signed and sent, the attempt recorded.\n"
    )?;
    writeln!(
        out,
        "| concurrent batches | deliveries | deliveries/s |\n|---|---|---|"
    )?;
    for consumers in [1usize, 4] {
        let before = receiver.requests().len();
        let batches: Vec<aws_lambda_events::sqs::SqsEvent> = (0..args.deliveries)
            .collect::<Vec<_>>()
            .chunks(10)
            .map(|chunk| {
                let mut event = aws_lambda_events::sqs::SqsEvent::default();
                for &i in chunk {
                    let e = keyhub::domain::events::Event::new(
                        keyhub::domain::events::EventKind::WebhookTest,
                        &admin.account.id,
                        serde_json::json!({"n": i}),
                        time::now(),
                    );
                    let message = keyhub::aws::eventbus::WebhookMessage::Event {
                        event: e,
                        endpoint_id: None,
                    };
                    let mut m = aws_lambda_events::sqs::SqsMessage::default();
                    m.message_id = Some(format!("w{i}"));
                    m.receipt_handle = Some(format!("r{i}"));
                    m.body = serde_json::to_string(&message).ok();
                    event.records.push(m);
                }
                event
            })
            .collect();
        let queue = Arc::new(std::sync::Mutex::new(batches));
        let started = Instant::now();
        let workers: Vec<_> = (0..consumers)
            .map(|_| {
                let (queue, webhooks) = (queue.clone(), webhooks.clone());
                tokio::spawn(async move {
                    loop {
                        let next = queue.lock().ok().and_then(|mut q| q.pop());
                        let Some(event) = next else { return };
                        keyhub_webhooks::handle(&webhooks, event).await;
                    }
                })
            })
            .collect();
        for w in workers {
            w.await?;
        }
        let elapsed = started.elapsed();
        let delivered = receiver.requests().len() - before;
        writeln!(
            out,
            "| {consumers} | {delivered} | {:.0} |",
            delivered as f64 / elapsed.as_secs_f64()
        )?;
    }
    writeln!(out)?;

    // --- 6. Cold starts ------------------------------------------------------
    cold_starts(&mut out, &args, &stack, &key).await?;
    finish(&args, out)
}

/// The functions, their binaries and the events/ sample each is invoked with.
const FUNCTIONS: [(&str, &str, &str); 6] = [
    ("ApiFunction", "keyhub-api", "api-whoami.json"),
    (
        "AuthorizerFunction",
        "keyhub-authorizer",
        "authorizer-request.json",
    ),
    ("ExampleFunction", "keyhub-example", "example-hello.json"),
    ("UsageFunction", "keyhub-usage", "usage-sqs.json"),
    ("WebhooksFunction", "keyhub-webhooks", "webhooks-sqs.json"),
    ("SweeperFunction", "keyhub-sweeper", "sweeper-schedule.json"),
];

/// The medians of a build's cold starts, as Lambda's REPORT line splits
/// them: init (process start to the first `GET /next`), the first
/// invocation, and the two together (what the first caller waits for).
struct Cold {
    init: Duration,
    first: Duration,
    answer: Duration,
    errors: usize,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    percentile(&v, 0.5)
}

/// `runs` cold starts of one build of `function`: each a new process under
/// the emulator, given the same event. One run before them is discarded: it
/// warms DynamoDB Local and moto (the JVM's JIT, the tables' files, moto's
/// imports), which a real service never charges a cold start for; the first
/// function measured after provisioning paid it (the API's first invocation
/// 63 ms for one GetItem against 3 ms warm).
async fn cold(
    launch: &keyhub_tools::emulator::Launch,
    event: &serde_json::Value,
    runs: usize,
) -> Result<Cold, Error> {
    keyhub_tools::emulator::invoke_once(launch, event.clone()).await?;
    let (mut init, mut first, mut answer, mut errors) = (vec![], vec![], vec![], 0);
    for _ in 0..runs.max(1) {
        let run = keyhub_tools::emulator::invoke_once(launch, event.clone()).await?;
        errors += usize::from(run.result.is_err());
        init.push(run.init);
        first.push(run.duration);
        answer.push(run.cold_start);
    }
    Ok(Cold {
        init: median(init),
        first: median(first),
        answer: median(answer),
        errors,
    })
}

/// qemu-user's aarch64 emulator, if installed (Debian's qemu-user or
/// qemu-user-static).
fn qemu() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["qemu-aarch64", "qemu-aarch64-static"].map(|n| dir.join(n)))
        .find(|p| p.is_file())
}

/// A build's three cells, or why it has none.
fn cells(c: &Result<Cold, String>) -> String {
    match c {
        Ok(c) => format!(
            "{} | {} | {}{}",
            ms(c.init),
            ms(c.first),
            ms(c.answer),
            if c.errors > 0 {
                format!(" ({} answered with an error)", c.errors)
            } else {
                String::new()
            }
        ),
        Err(why) => format!("{why} | | "),
    }
}

async fn cold_starts(
    out: &mut String,
    args: &Args,
    stack: &LocalStack,
    key: &str,
) -> Result<(), Error> {
    writeln!(out, "## Cold starts\n")?;
    let bin_dir = std::env::current_exe()?
        .parent()
        .map(|p| p.to_path_buf())
        .ok_or("no binary directory")?;
    let qemu = qemu();
    let arm64 = |function: &str, bin: &str| {
        let sam = args.arm64_build.join(function).join("bootstrap");
        let lambda = args.arm64_build.join(bin).join("bootstrap");
        if sam.is_file() || !lambda.is_file() {
            sam
        } else {
            lambda
        }
    };
    let arm64_note = match (
        &qemu,
        FUNCTIONS.iter().any(|(f, b, _)| arm64(f, b).is_file()),
    ) {
        (_, false) => format!(
            "skipped: no arm64 build in {} (`make build` makes one; or set KEYHUB_ARM64_BUILD)",
            args.arm64_build.display()
        ),
        (None, true) => "skipped: no qemu-aarch64 (`apt-get install qemu-user`)".to_string(),
        (Some(q), true) => format!(
            "`{} -L {} <Function>/bootstrap` from {}",
            q.display(),
            args.arm64_sysroot.display(),
            args.arm64_build.display()
        ),
    };
    writeln!(
        out,
        "Each function started {} times as a new process under keyhub's Lambda Runtime API emulator and invoked \
         once with its events/ sample, after one discarded run that warms DynamoDB Local and moto; medians. As in Lambda's REPORT line, **init** is from spawning the process \
         to its first `GET /2018-06-01/runtime/invocation/next` (configuration, secrets read from moto, clients \
         built: Lambda's \"Init Duration\"), **first invocation** from handing out the event to the answer (the \
         first DynamoDB, SQS or Secrets Manager calls, their connections and credentials), **first answer** the \
         two together. moto and DynamoDB Local on this machine answer those calls, and their latency is part of \
         every number; Lambda's own start (the sandbox, about 10 to 20 ms for `provided.al2023`) is not.\n",
        args.cold_runs.max(1)
    )?;
    writeln!(
        out,
        "- **host**: the release build for this machine (`cargo build --release --workspace --bins`, the same \
         profile as the bootstraps), run natively.\n\
         - **arm64 under qemu**: the arm64 bootstraps `make build` ships, run by qemu-user on this x86 machine: \
         {arm64_note}. Emulation translates every instruction, so these numbers are qemu's speed, not \
         Graviton's; they show the shipped artifact starts and answers, and how its parts compare.\n"
    )?;
    writeln!(
        out,
        "| function | host init | host first invocation | host first answer | arm64 (qemu) init | arm64 (qemu) first invocation | arm64 (qemu) first answer |\n|---|---|---|---|---|---|---|"
    )?;
    let timeout = Duration::from_secs(120);
    let mut host = std::collections::HashMap::new();
    for (function, bin, file) in FUNCTIONS {
        let text = std::fs::read_to_string(format!("events/{file}"))?;
        let event: serde_json::Value =
            serde_json::from_str(&text.replace("kh_live_REPLACE_WITH_YOUR_KEY", key))?;
        let env = stack.function_env(function)?;
        let launch =
            |program: std::path::PathBuf, args: Vec<String>| keyhub_tools::emulator::Launch {
                name: function.to_string(),
                program,
                args,
                dir: std::env::current_dir().unwrap_or_default(),
                env: env.clone(),
                timeout,
            };
        let binary = bin_dir.join(bin);
        let native = if binary.is_file() {
            cold(&launch(binary, vec![]), &event, args.cold_runs)
                .await
                .map_err(|e| format!("failed: {e}"))
        } else {
            Err("not built (`cargo build --release --workspace --bins`)".to_string())
        };
        let bootstrap = arm64(function, bin);
        let emulated = match &qemu {
            Some(q) if bootstrap.is_file() => {
                let qemu_args = vec![
                    "-L".to_string(),
                    args.arm64_sysroot.display().to_string(),
                    bootstrap.display().to_string(),
                ];
                cold(&launch(q.clone(), qemu_args), &event, args.cold_runs)
                    .await
                    .map_err(|e| format!("failed: {e}"))
            }
            Some(_) => Err("skipped: no arm64 build".to_string()),
            None => Err("skipped: no qemu-aarch64".to_string()),
        };
        writeln!(
            out,
            "| {function} | {} | {} |",
            cells(&native),
            cells(&emulated)
        )?;
        if let Ok(c) = native {
            host.insert(function, c);
        }
    }
    let verdict =
        |function: &str, what: &str, pick: fn(&Cold) -> Duration, target_ms: f64| match host
            .get(function)
        {
            Some(c) => {
                let got = pick(c).as_secs_f64() * 1e3;
                format!(
                    "{function} {what} {got:.1} ms (target {target_ms:.0} ms: {})",
                    if got <= target_ms { "met" } else { "not met" }
                )
            }
            None => format!("{function} {what}: not measured"),
        };
    writeln!(
        out,
        "\nTargets (issue 9, host build): {}; {}; {}.\n",
        verdict("AuthorizerFunction", "init", |c| c.init, 15.0),
        verdict("AuthorizerFunction", "first answer", |c| c.answer, 25.0),
        verdict("ApiFunction", "first answer", |c| c.answer, 50.0),
    )?;
    Ok(())
}

/// Adds the rerun instructions, prints the results and writes them.
fn finish(args: &Args, mut out: String) -> Result<(), Error> {
    writeln!(
        out,
        "## How to rerun\n\n```sh\nmake bench\n# or, with the services already running:\ncargo build --release --workspace --bins && scripts/stack.sh run -- target/release/keyhub-bench\n\
         # the cold starts alone, on the arm64 bootstraps of a make build:\n\
         scripts/stack.sh run -- target/release/keyhub-bench --cold-starts-only --out bench/COLD.md\n```"
    )?;

    print!("{out}");
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.out, out)?;
    eprintln!("written to {}", args.out);
    Ok(())
}
