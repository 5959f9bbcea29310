//! Scopes: `area:action`, with `area:*` and `*` as wildcards.
//!
//! Scopes are free-form so that keys can carry the scopes of the APIs they
//! protect (`tickets:read`), not only keyhub's own (`keys:write`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub const MAX_SCOPES: usize = 50;
const MAX_SCOPE_LEN: usize = 64;

/// keyhub's own scopes, which a new account's first key gets unless the request
/// names others. `accounts:write` is left out on purpose: it lets a key create
/// other accounts, which only the deployment's operator should do.
pub const ACCOUNT_ADMIN_SCOPES: &[&str] = &["keys:*", "webhooks:*", "usage:*"];

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(String);

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_word(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b))
}

impl Scope {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() > MAX_SCOPE_LEN {
            return Err(format!("scope is longer than {MAX_SCOPE_LEN} characters"));
        }
        let ok = s == "*"
            || match s.split_once(':') {
                Some((area, action)) => is_word(area) && (action == "*" || is_word(action)),
                None => false,
            };
        if ok {
            Ok(Scope(s.to_string()))
        } else {
            Err(format!(
                "scope {s:?} must be \"*\", \"area:*\" or \"area:action\" in lowercase letters, digits, '_', '-' or '.'"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether holding `self` grants `other` (which may itself be a wildcard).
    pub fn covers(&self, other: &Scope) -> bool {
        if self.0 == "*" || self.0 == other.0 {
            return true;
        }
        match (self.0.split_once(':'), other.0.split_once(':')) {
            (Some((area, "*")), Some((other_area, _))) => area == other_area,
            _ => false,
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Scope::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A key's scopes: deduplicated and sorted so that equal sets compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// At most [`MAX_SCOPES`] as given, duplicates included: openapi.yaml's
    /// `maxItems` counts the list the client sent.
    pub fn new(mut scopes: Vec<Scope>) -> Result<Self, String> {
        if scopes.len() > MAX_SCOPES {
            return Err(format!("at most {MAX_SCOPES} scopes"));
        }
        scopes.sort();
        scopes.dedup();
        Ok(Scopes(scopes))
    }

    pub fn parse_all<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        Scopes::new(
            items
                .into_iter()
                .map(Scope::parse)
                .collect::<Result<_, _>>()?,
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    /// Whether these scopes grant `required` (`keys:read`).
    pub fn allows(&self, required: &str) -> bool {
        match Scope::parse(required) {
            Ok(required) => self.covers(&required),
            Err(_) => false,
        }
    }

    pub fn covers(&self, scope: &Scope) -> bool {
        self.0.iter().any(|held| held.covers(scope))
    }

    /// The first of `others` not granted by these scopes: a key may only hand
    /// out scopes it holds itself.
    pub fn first_not_covered<'a>(&self, others: &'a Scopes) -> Option<&'a Scope> {
        others.0.iter().find(|s| !self.covers(s))
    }

    /// Space-separated, the form used in authorizer context values.
    pub fn joined(&self) -> String {
        self.0
            .iter()
            .map(Scope::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl<'de> Deserialize<'de> for Scopes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<Scope>::deserialize(d)?;
        Scopes::new(v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(s: &[&str]) -> Scopes {
        Scopes::parse_all(s.iter().copied()).unwrap()
    }

    #[test]
    fn exact_area_and_global_wildcards() {
        assert!(scopes(&["keys:read"]).allows("keys:read"));
        assert!(!scopes(&["keys:read"]).allows("keys:write"));
        assert!(scopes(&["keys:*"]).allows("keys:write"));
        assert!(!scopes(&["keys:*"]).allows("webhooks:read"));
        assert!(scopes(&["*"]).allows("accounts:write"));
        assert!(!scopes(&[]).allows("keys:read"));
    }

    #[test]
    fn a_key_can_only_grant_what_it_holds() {
        let holder = scopes(&["keys:*", "usage:read"]);
        assert_eq!(
            holder.first_not_covered(&scopes(&["keys:read", "keys:*"])),
            None
        );
        assert_eq!(
            holder
                .first_not_covered(&scopes(&["usage:*"]))
                .map(Scope::as_str),
            Some("usage:*")
        );
        assert_eq!(
            holder.first_not_covered(&scopes(&["*"])).map(Scope::as_str),
            Some("*")
        );
        assert_eq!(
            scopes(&["*"]).first_not_covered(&scopes(&["*", "a:b"])),
            None
        );
    }

    #[test]
    fn syntax() {
        for ok in ["*", "keys:*", "tickets:read", "v2.billing:read-all"] {
            assert!(Scope::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "keys",
            "Keys:read",
            "keys:",
            ":read",
            "*:read",
            "keys:read:x",
            "a b:c",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
        assert!(Scope::parse(&format!("a:{}", "x".repeat(70))).is_err());
    }

    #[test]
    fn sets_are_sorted_and_deduplicated() {
        assert_eq!(scopes(&["b:x", "a:x", "b:x"]).joined(), "a:x b:x");
        let too_many: Vec<String> = (0..51).map(|i| format!("a:s{i}")).collect();
        assert!(Scopes::parse_all(too_many.iter().map(String::as_str)).is_err());
        let repeated = vec!["a:x"; MAX_SCOPES + 1];
        assert!(Scopes::parse_all(repeated).is_err());
        assert_eq!(
            Scopes::parse_all(vec!["a:x"; MAX_SCOPES]).unwrap().joined(),
            "a:x"
        );
    }
}
