//! `/api/v1/accounts`: a new account and its first key, made together; an
//! account's plan, limits and key count; a plan change, which reaches every
//! key of the account (each key carries its plan so checking it stays one
//! read). These are operator routes (`accounts:write`) for any account.

use keyhub::ApiError;
use keyhub::domain::account::Account;
use keyhub::domain::apikey::Environment;
use keyhub::domain::key::NewKey;
use keyhub::domain::limits::Plan;
use keyhub::domain::pepper::KeyId;
use keyhub::domain::scope::{ACCOUNT_ADMIN_SCOPES, Scopes};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::call::{Call, Reply};
use crate::keys::may_grant;
use crate::requests::CreateAccount;

pub async fn create(call: &Call<'_>) -> Reply {
    let body: CreateAccount = call.body()?;
    let scopes = match body.scopes {
        Some(s) => s,
        None => Scopes::parse_all(ACCOUNT_ADMIN_SCOPES.iter().copied())
            .map_err(|e| ApiError::internal(format!("the admin scopes: {e}")))?,
    };
    may_grant(call, &scopes)?;
    let plan = body.plan.unwrap_or_default();
    let account = Account::new(body.name.0, plan, call.now)
        .map_err(|e| ApiError::internal(format!("no random bytes for an account id: {e}")))?;
    let settings = NewKey {
        account_id: account.id.clone(),
        plan,
        name: body
            .key_name
            .map(|n| n.0)
            .unwrap_or_else(|| "admin".to_string()),
        description: None,
        scopes,
        environment: keyhub::domain::apikey::Environment::Live,
        expires_at: None,
        rate_limits: Default::default(),
        metadata: Default::default(),
    };
    let deps = call.deps;
    let (key, record) = call.mint(settings)?;
    let events = call.event(
        &account.id,
        keyhub::domain::events::EventKind::ApiKeyCreated,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateAccount {
    plan: Plan,
}

/// An account id from the path: `acct_` and 20 base62 characters, or it
/// cannot exist (and is not read for).
fn account_id(call: &Call<'_>) -> Result<String, ApiError> {
    let id = call.param("id");
    let ok = id
        .strip_prefix("acct_")
        .is_some_and(|r| r.len() == 20 && r.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok {
        Ok(id.to_string())
    } else {
        Err(ApiError::NotFound { what: "account" })
    }
}

async fn view(call: &Call<'_>, account: &Account) -> Result<Value, ApiError> {
    let keys = call.deps.store.account_key_count(&account.id).await?;
    let mut v = account.view();
    let policy = &call.deps.config.rate_limits;
    v["limits"] = json!(policy.plan(account.plan));
    // What its test (sandbox) keys share, on a counter of their own.
    v["test_limits"] = json!(policy.account(account.plan, Environment::Test));
    v["key_count"] = json!(keys);
    Ok(v)
}

pub async fn get(call: &Call<'_>) -> Reply {
    let id = account_id(call)?;
    let account = call
        .deps
        .store
        .get_account(&id)
        .await?
        .ok_or(ApiError::NotFound { what: "account" })?;
    Ok((200, view(call, &account).await?))
}

pub async fn update(call: &Call<'_>) -> Reply {
    let body: UpdateAccount = call.body()?;
    let id = account_id(call)?;
    let deps = call.deps;
    let mut account = deps
        .store
        .get_account(&id)
        .await?
        .ok_or(ApiError::NotFound { what: "account" })?;
    let previous = account.plan;
    account.plan = body.plan;
    let events = if previous == body.plan {
        Vec::new()
    } else {
        call.event(
            &id,
            keyhub::domain::events::EventKind::AccountPlanChanged,
            json!({ "account": account.view(), "previous_plan": previous }),
        )
    };
    let keys = deps
        .store
        .change_plan(&id, body.plan, &events)
        .await
        .map_err(|e| match e {
            keyhub::aws::store::StoreError::NotFound => ApiError::NotFound { what: "account" },
            other => other.into(),
        })?;
    call.publish(&events).await;
    // This environment sees the new plan at once; other environments within
    // their cache TTL. API Gateway's cached answers carry the plan's limits
    // too (a downgrade must not keep the old ones for up to an hour), so a
    // changed plan flushes the stages as a revoked key does.
    for key in keys.iter().filter_map(|k| KeyId::parse(k)) {
        deps.auth.forget(&key);
    }
    if previous != body.plan {
        call.flush_authorizer_cache().await;
    }
    tracing::info!(account_id = %id, plan = body.plan.as_str(), keys = keys.len(), "plan changed");
    Ok((200, view(call, &account).await?))
}
