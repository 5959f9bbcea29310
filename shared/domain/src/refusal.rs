//! Why a key may not make a request. A refusal is an answer (the key check
//! worked and said no), not a failure: the caller chooses how to say it, and
//! each audience has one mapper: the API's error (`keyhub::http::error`), the
//! authorizer's Unauthorized or Deny (`keyhub-authorizer`), the verify
//! endpoint's `code`. Failures of the check itself (the store did not answer)
//! are errors, and stay apart.

use crate::key::KeyState;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No key presented.
    Missing,
    /// Not shaped like a key of this deployment, a bad checksum, or two
    /// different keys in one request.
    Malformed,
    /// Well-formed, but no such key (or not this account's, where it asks).
    Unknown,
    Expired,
    Inactive,
    /// The key does not hold the scope the request needs.
    Scope {
        required: String,
    },
    /// A window of the key or its account is used up.
    RateLimited {
        limit: u64,
        window: &'static str,
        retry_after: u64,
    },
}

impl Refusal {
    /// The refusal a key's state makes, if any.
    pub fn of_state(state: KeyState) -> Option<Self> {
        match state {
            KeyState::Usable => None,
            KeyState::Expired => Some(Refusal::Expired),
            KeyState::Inactive => Some(Refusal::Inactive),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_refuses_only_when_the_key_is_not_usable() {
        assert_eq!(Refusal::of_state(KeyState::Usable), None);
        assert_eq!(Refusal::of_state(KeyState::Expired), Some(Refusal::Expired));
        assert_eq!(
            Refusal::of_state(KeyState::Inactive),
            Some(Refusal::Inactive)
        );
    }
}
