//! An account: the tenant that owns keys and shares one plan's limits.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::apikey::Environment;
use crate::base62;
use crate::limits::Plan;
use crate::time::{self, Timestamp};

/// The name an account's keys of one environment are counted under, in the
/// rate-limit counters and the usage sums: `a#{id}` for its live keys (as
/// every key was before sandbox keys), `a#{id}#test` for its test keys. Two
/// names, so a burst of test traffic never refuses a live key, and the
/// dashboard's live numbers hold no test requests.
pub fn subject(account_id: &str, environment: Environment) -> String {
    match environment {
        Environment::Live => format!("a#{account_id}"),
        Environment::Test => format!("a#{account_id}#test"),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub plan: Plan,
    #[serde(with = "time::rfc3339")]
    pub created_at: Timestamp,
}

impl Account {
    pub fn new(name: String, plan: Plan, now: Timestamp) -> Result<Self, getrandom::Error> {
        Ok(Account {
            id: format!("acct_{}", base62::random(20)?),
            name,
            plan,
            created_at: now,
        })
    }

    pub fn view(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "plan": self.plan,
            "created_at": time::format(&self.created_at),
        })
    }
}
