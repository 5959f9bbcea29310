//! An account: the tenant that owns keys and shares one plan's limits.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::base62;
use crate::limits::Plan;
use crate::time::{self, Timestamp};

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
