//! keyhub's admin CLI. `bootstrap` makes a deployment's first account and a
//! key with every scope, writing straight to DynamoDB, and prints the key
//! once; `key` adds such a key to an existing account. It uses the normal
//! AWS credential chain; `--endpoint-url` points it at a local stack.

use clap::{Parser, Subcommand};
use keyhub::aws::store::Store;
use keyhub::config::Tables;
use keyhub::domain::apikey::KeyPrefix;
use keyhub::domain::limits::Plan;
use keyhub::domain::pepper::Pepper;
use keyhub_tools::Error;
use keyhub_tools::bootstrap::{add_key, bootstrap};

#[derive(Parser)]
#[command(about = "keyhub admin CLI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an account and a key with every scope; prints the key once.
    Bootstrap {
        /// The account's name.
        #[arg(long, default_value = "admin")]
        account_name: String,
        #[arg(long, default_value = "bootstrap")]
        key_name: String,
        #[arg(long, default_value = "enterprise", value_parser = ["free", "pro", "enterprise"])]
        plan: String,
        #[command(flatten)]
        target: Target,
    },
    /// Add a key with every scope to an existing account (a way back in when
    /// its keys are gone); prints the key once.
    Key {
        #[arg(long)]
        account_id: String,
        #[arg(long, default_value = "admin")]
        key_name: String,
        /// The account's key cap, as the API counts it.
        #[arg(long, env = "KEYHUB_MAX_KEYS_PER_ACCOUNT", default_value_t = keyhub::domain::key::DEFAULT_MAX_KEYS_PER_ACCOUNT)]
        max_keys: u32,
        #[command(flatten)]
        target: Target,
    },
}

/// The deployment to write to.
#[derive(clap::Args)]
struct Target {
    /// The SAM stack name: implies the tables {stack}-keys and
    /// {stack}-accounts and the secret {stack}/pepper.
    #[arg(long)]
    stack: Option<String>,
    #[arg(long, env = "KEYS_TABLE")]
    keys_table: Option<String>,
    #[arg(long, env = "ACCOUNTS_TABLE")]
    accounts_table: Option<String>,
    #[arg(long, env = "PEPPER_SECRET_ID")]
    pepper_secret_id: Option<String>,
    #[arg(long, env = "KEYHUB_KEY_PREFIX", default_value = "kh")]
    key_prefix: String,
    /// Send every AWS call here (DynamoDB Local, moto) instead of AWS.
    #[arg(long)]
    endpoint_url: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    match Cli::parse().command {
        Command::Bootstrap {
            account_name,
            key_name,
            plan,
            target,
        } => {
            let plan = Plan::parse(&plan).ok_or("unknown plan")?;
            let (store, pepper, prefix) = connect(target).await?;
            let made = bootstrap(&store, &pepper, &prefix, &account_name, &key_name, plan).await?;
            eprintln!(
                "account {} ({}) and key {} created.",
                made.account.id, made.account.name, made.record.id
            );
            eprintln!("The key is shown once; store it now:");
            println!("{}", made.key.expose());
        }
        Command::Key {
            account_id,
            key_name,
            max_keys,
            target,
        } => {
            let (store, pepper, prefix) = connect(target).await?;
            let (key, record) =
                add_key(&store, &pepper, &prefix, &account_id, &key_name, max_keys).await?;
            eprintln!("key {} created in account {account_id}.", record.id);
            eprintln!("The key is shown once; store it now:");
            println!("{}", key.expose());
        }
    }
    Ok(())
}

/// The store, pepper and key prefix of the deployment `target` names.
async fn connect(target: Target) -> Result<(Store, Pepper, KeyPrefix), Error> {
    let Target {
        stack,
        keys_table,
        accounts_table,
        pepper_secret_id,
        key_prefix,
        endpoint_url,
    } = target;
    let from_stack = stack.as_deref().map(Tables::for_stack);
    let tables = Tables {
        keys: keys_table
            .or_else(|| from_stack.as_ref().map(|t| t.keys.clone()))
            .ok_or("give --stack or --keys-table")?,
        accounts: accounts_table
            .or_else(|| from_stack.as_ref().map(|t| t.accounts.clone()))
            .ok_or("give --stack or --accounts-table")?,
        // The admin CLI touches only the keys and accounts tables.
        ..Tables::for_stack(stack.as_deref().unwrap_or("-"))
    };
    let secret_id = pepper_secret_id
        .or_else(|| stack.as_ref().map(|s| format!("{s}/pepper")))
        .ok_or("give --stack or --pepper-secret-id")?;
    let prefix = KeyPrefix::parse(&key_prefix)?;

    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(keyhub::aws::http_client());
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let sdk = loader.load().await;
    let pepper =
        keyhub::aws::secrets::load_pepper(&aws_sdk_secretsmanager::Client::new(&sdk), &secret_id)
            .await?;
    let store = Store::new(aws_sdk_dynamodb::Client::new(&sdk), tables);
    Ok((store, pepper, prefix))
}
