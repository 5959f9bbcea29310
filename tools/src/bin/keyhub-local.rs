//! `make dev`: the whole stack on this machine. Creates what is missing on
//! DynamoDB Local and moto, bootstraps a key on first start, serves the API on
//! 127.0.0.1 through the local gateway, drives the SQS consumers and the
//! sweeper as AWS would, and runs a webhook receiver that prints what it gets.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use keyhub::domain::apikey::ApiKey;
use keyhub::domain::limits::Plan;
use keyhub_tools::Error;
use keyhub_tools::bootstrap::bootstrap;
use keyhub_tools::gateway::{Gateway, serve};
use keyhub_tools::local::LocalStack;
use keyhub_tools::template::Template;

#[derive(Parser)]
#[command(about = "Run keyhub locally against DynamoDB Local and moto")]
struct Args {
    /// Stack name: tables are {stack}-keys and so on, secrets {stack}/….
    #[arg(long, default_value = "keyhub-dev")]
    stack: String,
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Port of the printing webhook receiver (0: none).
    #[arg(long, default_value_t = 3001)]
    receiver_port: u16,
    /// Seconds between sweeps (expiry and rotation-due events, outbox relay).
    #[arg(long, default_value_t = 10)]
    sweep_seconds: u64,
    /// Where the dev key is kept between starts (git-ignored).
    #[arg(long, default_value = ".local/dev-key")]
    dev_key_file: PathBuf,
    /// The stack's secrets (pepper, webhook key), kept so that what DynamoDB
    /// Local stores still verifies after a restart: moto forgets its secrets.
    #[arg(long, default_value = ".local/dev-secrets.json")]
    secrets_file: PathBuf,
}

/// Local development settings, unless the environment says otherwise:
/// webhooks may go to this machine over plain http.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().or_else(|| match name {
        "KEYHUB_WEBHOOK_ALLOWED_NETWORKS" => Some("127.0.0.0/8,::1/128".into()),
        "KEYHUB_WEBHOOK_ALLOW_HTTP" => Some("true".into()),
        _ => None,
    })
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    keyhub::telemetry::init();
    let args = Args::parse();
    let secrets = dev_secrets(&args.secrets_file)?;
    let sdk = keyhub::aws::aws_config().await;
    let stack = LocalStack::provision(&args.stack, sdk, &secrets, env).await?;
    let key = dev_key(&stack, &args.dev_key_file).await?;

    // The SQS consumers, driven as Lambda's event source mappings would.
    let usage = Arc::new(stack.usage_deps());
    let template = keyhub_tools::template::Template::builtin()?;
    let source = stack
        .usage_source()
        .await?
        .with_batching(template.sqs_batching("UsageFunction"));
    tokio::spawn(source.run("usage", move |event| {
        let usage = usage.clone();
        async move { keyhub_usage::handle(&usage, event).await }
    }));
    let webhooks = Arc::new(stack.webhook_deps()?);
    let source = stack
        .webhook_source()
        .await?
        .with_batching(template.sqs_batching("WebhooksFunction"));
    tokio::spawn(source.run("webhooks", move |event| {
        let webhooks = webhooks.clone();
        async move { keyhub_webhooks::handle(&webhooks, event).await }
    }));
    // The sweeper's schedule.
    let sweeper = stack.sweeper_deps()?;
    let every = Duration::from_secs(args.sweep_seconds.max(1));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            if let Err(e) = keyhub_sweeper::sweep(&sweeper, keyhub::domain::time::now()).await {
                tracing::warn!(error = %e, "sweep failed");
            }
        }
    });
    if args.receiver_port != 0 {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.receiver_port)).await?;
        tokio::spawn(keyhub_tools::receiver::print_forever(listener));
    }

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!();
    println!("keyhub is running on {base}  (Ctrl-C stops everything)");
    println!();
    println!("  your dev key (all scopes): {}", key.expose());
    println!();
    println!("  the console:  {base}/console  (sign in with the dev key)");
    println!();
    println!(
        "  try:  curl -s {base}/api/v1/whoami -H 'Authorization: Bearer {}'",
        key.expose()
    );
    println!(
        "  a Python function behind the authorizer:  curl -s {base}/python/hello -H 'X-API-Key: {}'",
        key.expose()
    );
    if args.receiver_port != 0 {
        println!(
            "  webhooks: point an endpoint at http://127.0.0.1:{}/hook and watch this terminal",
            args.receiver_port
        );
    }
    println!();
    // Revocations flush this gateway's authorizer cache through API
    // Gateway's SDK call, pointed here.
    let gateway = Arc::new(Gateway::new(&stack)?.with_cache_flush(&stack, &base));
    if let Err(e) = gateway.warm_up().await {
        tracing::warn!(error = %e, "the Python example will not run (scripts/stack.sh setup installs awslambdaric)");
    }
    // The access log's CloudWatch Logs subscription to the usage function:
    // a batch every 200 ms, or sooner when one fills.
    tokio::spawn(gateway.access_log().run(Duration::from_millis(200)));
    serve(listener, gateway, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

/// The dev stack's secret values by logical id, made on first start.
fn dev_secrets(file: &Path) -> Result<HashMap<String, String>, Error> {
    let mut secrets: HashMap<String, String> = std::fs::read_to_string(file)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    let mut changed = false;
    for (logical, _) in Template::builtin()?.secrets("dev") {
        if let std::collections::hash_map::Entry::Vacant(e) = secrets.entry(logical) {
            e.insert(keyhub::domain::base62::random(64)?);
            changed = true;
        }
    }
    if changed {
        write_private(file, &serde_json::to_string_pretty(&secrets)?)?;
    }
    Ok(secrets)
}

/// The key from the last start if it still works, else a new account and key.
/// The plaintext is kept only in this git-ignored file, for local use.
async fn dev_key(stack: &LocalStack, file: &Path) -> Result<ApiKey, Error> {
    let auth = stack.authenticator();
    if let Ok(saved) = std::fs::read_to_string(file) {
        let saved = saved.trim();
        if let Ok(Ok(_)) = auth
            .authenticate(Some(saved), keyhub::domain::time::now())
            .await
        {
            return Ok(ApiKey::parse(saved, &stack.config.key_prefix)?);
        }
    }
    let made = bootstrap(
        &stack.store,
        &stack.pepper,
        &stack.config.key_prefix,
        "dev",
        "dev admin",
        Plan::Pro,
    )
    .await?;
    write_private(file, made.key.expose())?;
    println!(
        "bootstrapped account {} with key {}",
        made.account.id, made.record.id
    );
    Ok(made.key)
}

fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    opts.open(path)?.write_all(content.as_bytes())
}
