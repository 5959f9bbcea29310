//! `make dev`: the whole stack on this machine. Creates what is missing on
//! DynamoDB Local and moto, bootstraps a key on first start, and serves the
//! API on 127.0.0.1 through the local gateway.

use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use keyhub::apikey::ApiKey;
use keyhub::limits::Plan;
use keyhub_tools::Error;
use keyhub_tools::bootstrap::bootstrap;
use keyhub_tools::gateway::{Gateway, serve};
use keyhub_tools::local::LocalStack;

#[derive(Parser)]
#[command(about = "Run keyhub locally against DynamoDB Local and moto")]
struct Args {
    /// Stack name: tables are {stack}-keys and so on, the pepper {stack}/pepper.
    #[arg(long, default_value = "keyhub-dev")]
    stack: String,
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// Where the dev key is kept between starts (git-ignored).
    #[arg(long, default_value = ".local/dev-key")]
    dev_key_file: PathBuf,
    /// The dev pepper, kept so that keys stored in DynamoDB Local still verify
    /// after a restart (moto forgets its secrets when it stops).
    #[arg(long, default_value = ".local/dev-pepper")]
    pepper_file: PathBuf,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    keyhub::telemetry::init();
    let args = Args::parse();
    let sdk = keyhub::aws_config().await;
    let pepper = match std::fs::read_to_string(&args.pepper_file) {
        Ok(p) => p.trim().to_string(),
        Err(_) => {
            let p = keyhub::base62::random(64)?;
            write_private(&args.pepper_file, &p)?;
            p
        }
    };
    let stack =
        LocalStack::provision(&args.stack, sdk, Some(&pepper), |k| std::env::var(k).ok()).await?;
    let key = dev_key(&stack, &args.dev_key_file).await?;

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!();
    println!("keyhub is running on {base}  (Ctrl-C stops everything)");
    println!();
    println!("  your dev key (all scopes): {}", key.expose());
    println!();
    println!(
        "  try:  curl -s {base}/api/v1/whoami -H 'Authorization: Bearer {}'",
        key.expose()
    );
    println!();
    // The SQS consumers, driven as Lambda's event source mappings would.
    let usage = Arc::new(stack.usage_deps());
    let source = stack.usage_source().await?;
    tokio::spawn(source.run("usage", move |event| {
        let usage = usage.clone();
        async move { keyhub_usage::handle(&usage, event).await }
    }));

    let gateway = Arc::new(Gateway::new(&stack)?);
    serve(listener, gateway, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

/// The key from the last start if it still works, else a new account and key.
/// The plaintext is kept only in this git-ignored file, for local use.
async fn dev_key(stack: &LocalStack, file: &PathBuf) -> Result<ApiKey, Error> {
    let auth = stack.authenticator();
    if let Ok(saved) = std::fs::read_to_string(file) {
        let saved = saved.trim();
        if auth
            .authenticate(Some(saved), keyhub::time::now())
            .await
            .is_ok()
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

fn write_private(path: &PathBuf, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(0o600);
    opts.open(path)?.write_all(content.as_bytes())
}
