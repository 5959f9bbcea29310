//! `POST /api/v1/accounts`: a new account and its first key, made together.

use keyhub::ApiError;
use keyhub::account::Account;
use keyhub::key::NewKey;
use keyhub::scope::{ACCOUNT_ADMIN_SCOPES, Scopes};
use serde_json::json;

use crate::handler::{Call, Reply};
use crate::keys::may_grant;
use crate::requests::CreateAccount;

pub async fn create(call: &Call<'_>) -> Reply {
    let body: CreateAccount = call.body()?;
    let scopes = match body.scopes {
        Some(s) => s,
        None => Scopes::parse_all(ACCOUNT_ADMIN_SCOPES.iter().copied())
            .map_err(|_| ApiError::Internal)?,
    };
    may_grant(call, &scopes)?;
    let plan = body.plan.unwrap_or_default();
    let account = Account::new(body.name.0, plan, call.now).map_err(|_| ApiError::Internal)?;
    let settings = NewKey {
        account_id: account.id.clone(),
        plan,
        name: body
            .key_name
            .map(|n| n.0)
            .unwrap_or_else(|| "admin".to_string()),
        description: None,
        scopes,
        environment: keyhub::apikey::Environment::Live,
        expires_at: None,
        rate_limits: Default::default(),
        metadata: Default::default(),
    };
    let deps = call.deps;
    let (key, record) = call.mint(settings)?;
    let events = call.event(
        &account.id,
        "api_key.created",
        record.view(&deps.config.rate_limits, None),
    );
    deps.store
        .create_account(&account, &record, &events)
        .await?;
    call.publish(&events).await;
    tracing::info!(account_id = %account.id, key_id = %record.id, "account created");
    Ok((
        201,
        json!({
            "account": account.view(),
            "api_key": record.view(&deps.config.rate_limits, Some(&key)),
        }),
    ))
}
