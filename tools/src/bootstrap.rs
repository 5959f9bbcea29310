//! The first account and key of a deployment, written straight to DynamoDB
//! (there is no key yet to call the API with).

use keyhub::aws::store::Store;
use keyhub::domain::account::Account;
use keyhub::domain::apikey::{ApiKey, Environment, KeyPrefix};
use keyhub::domain::key::{self, KeyRecord, NewKey};
use keyhub::domain::limits::Plan;
use keyhub::domain::pepper::Pepper;
use keyhub::domain::scope::Scopes;
use keyhub::domain::time;

use crate::Error;

pub struct Bootstrapped {
    pub account: Account,
    pub key: ApiKey,
    pub record: KeyRecord,
}

/// Creates an account and a key with every scope (`*`).
pub async fn bootstrap(
    store: &Store,
    pepper: &Pepper,
    prefix: &KeyPrefix,
    account_name: &str,
    key_name: &str,
    plan: Plan,
) -> Result<Bootstrapped, Error> {
    let now = time::now();
    let account = Account::new(account_name.to_string(), plan, now)?;
    let settings = every_scope(&account, key_name, "made by keyhub-admin bootstrap")?;
    let (key, record) = key::mint(pepper, prefix, settings, now)?;
    store.create_account(&account, &record, &[]).await?;
    Ok(Bootstrapped {
        account,
        key,
        record,
    })
}

/// Adds a key with every scope (`*`) to an existing account: an operator's
/// way back into an account whose own keys are gone (deleted, revoked,
/// expired), which the API cannot offer since it needs a key of the account.
/// Counted against the account's cap like any new key.
pub async fn add_key(
    store: &Store,
    pepper: &Pepper,
    prefix: &KeyPrefix,
    account_id: &str,
    key_name: &str,
    max_keys: u32,
) -> Result<(ApiKey, KeyRecord), Error> {
    let account = store
        .get_account(account_id)
        .await?
        .ok_or_else(|| format!("no account {account_id}"))?;
    let now = time::now();
    let settings = every_scope(&account, key_name, "made by keyhub-admin key")?;
    let (key, record) = key::mint(pepper, prefix, settings, now)?;
    store.put_key(&record, max_keys, &[]).await?;
    Ok((key, record))
}

/// A live key of `account` with every scope (`*`), its own limits unset (the
/// plan's apply), described as made by the admin CLI.
fn every_scope(account: &Account, name: &str, description: &str) -> Result<NewKey, Error> {
    Ok(NewKey {
        account_id: account.id.clone(),
        plan: account.plan,
        name: name.to_string(),
        description: Some(description.to_string()),
        scopes: Scopes::parse_all(["*"])?,
        environment: Environment::Live,
        expires_at: None,
        rate_limits: Default::default(),
        metadata: Default::default(),
    })
}
