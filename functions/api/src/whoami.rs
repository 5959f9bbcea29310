//! `GET /api/v1/whoami`: the calling key, its account and its limits.

use keyhub::domain::time;
use serde_json::json;

use crate::call::{Call, Reply};

pub async fn get(call: &Call<'_>) -> Reply {
    let p = call.principal;
    let account = call.deps.store.get_account(&p.account_id).await?;
    let k = call.caller;
    Ok((
        200,
        json!({
            "key": {
                "id": k.id,
                "name": k.name,
                "prefix": k.prefix,
                "last4": k.last4,
                "environment": k.environment,
                "expires_at": k.expires_at.as_ref().map(time::format),
            },
            "account": {
                "id": p.account_id,
                "name": account.as_ref().map(|a| a.name.clone()),
                "plan": p.plan,
            },
            "scopes": p.scopes,
            "plan": p.plan,
            "limits": {
                "key": p.key_limits,
                "account": p.account_limits,
            },
        }),
    ))
}
