//! The plaintext API key: `{prefix}_{env}_{secret}{checksum}`.
//!
//! `ApiKey::parse` checks the whole format and the CRC32 checksum, so a typo or a
//! random string is turned away before anything touches DynamoDB. The type never
//! prints its secret: `Debug` is redacted and there is no `Display`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::base62;

/// 43 base62 characters carry 256 bits (43 * log2(62) = 256.0), well above the
/// 192 bits the contract asks for.
pub const SECRET_LEN: usize = 43;
/// 62^6 > 2^32, so six characters hold any CRC32.
pub const CHECKSUM_LEN: usize = 6;
/// Characters of the key shown in listings (`kh_live_AbCd`).
pub const DISPLAY_PREFIX_LEN: usize = 12;

/// A key's environment. `test` keys are sandbox keys: the account's test
/// keys share their own rate-limit counters and usage sums, apart from its
/// live keys' (`account::subject`), so testing never spends production
/// quota. What has no environment recorded (a usage record or an
/// authorizer context from before sandbox keys) is `live`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Live,
    Test,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Live => "live",
            Environment::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "live" => Some(Environment::Live),
            "test" => Some(Environment::Test),
            _ => None,
        }
    }
}

/// The deployment's key prefix (`kh` by default): 1 to 16 lowercase letters or
/// digits, so it can never contain the `_` separator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = (1..=16).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(KeyPrefix(s.to_string()))
        } else {
            Err(format!(
                "key prefix {s:?} must be 1 to 16 lowercase letters or digits"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for KeyPrefix {
    fn default() -> Self {
        KeyPrefix("kh".to_string())
    }
}

/// Why a presented string is not a key of this deployment. Callers answer all of
/// these with `invalid_api_key`; the variants exist for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyFormatError {
    #[error("not of the form prefix_env_secret")]
    Shape,
    #[error("prefix of another deployment")]
    Prefix,
    #[error("unknown environment")]
    Environment,
    #[error("secret has the wrong length or alphabet")]
    Secret,
    #[error("checksum does not match")]
    Checksum,
}

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    value: String,
    environment: Environment,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.display_prefix())
    }
}

impl ApiKey {
    /// A fresh key from the OS random source.
    pub fn generate(
        prefix: &KeyPrefix,
        environment: Environment,
    ) -> Result<Self, getrandom::Error> {
        let secret = base62::random(SECRET_LEN)?;
        let value = format!(
            "{}_{}_{}{}",
            prefix.as_str(),
            environment.as_str(),
            secret,
            checksum(&secret)
        );
        Ok(ApiKey { value, environment })
    }

    /// Parses a presented key. Pure: no I/O, no allocation beyond the copy kept.
    pub fn parse(raw: &str, prefix: &KeyPrefix) -> Result<Self, KeyFormatError> {
        let mut parts = raw.splitn(3, '_');
        let (Some(p), Some(env), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(KeyFormatError::Shape);
        };
        if p != prefix.as_str() {
            return Err(KeyFormatError::Prefix);
        }
        let environment = Environment::parse(env).ok_or(KeyFormatError::Environment)?;
        if body.len() != SECRET_LEN + CHECKSUM_LEN || !base62::is_base62(body) {
            return Err(KeyFormatError::Secret);
        }
        let (secret, sum) = body.split_at(SECRET_LEN);
        if checksum(secret) != sum {
            return Err(KeyFormatError::Checksum);
        }
        Ok(ApiKey {
            value: raw.to_string(),
            environment,
        })
    }

    /// The plaintext, for the one response that returns it and for hashing.
    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// The first characters, safe to show and log (`kh_live_AbCd`).
    pub fn display_prefix(&self) -> &str {
        &self.value[..DISPLAY_PREFIX_LEN.min(self.value.len())]
    }

    pub fn last4(&self) -> &str {
        &self.value[self.value.len().saturating_sub(4)..]
    }
}

fn checksum(secret: &str) -> String {
    base62::encode_fixed(u128::from(crc32fast::hash(secret.as_bytes())), CHECKSUM_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kh() -> KeyPrefix {
        KeyPrefix::default()
    }

    #[test]
    fn generated_key_has_the_contract_shape_and_parses() {
        let key = ApiKey::generate(&kh(), Environment::Live).unwrap();
        let s = key.expose();
        assert!(s.starts_with("kh_live_"));
        assert_eq!(s.len(), "kh_live_".len() + SECRET_LEN + CHECKSUM_LEN);
        assert_eq!(ApiKey::parse(s, &kh()).unwrap(), key);
        assert_eq!(key.display_prefix().len(), 12);
        assert_eq!(key.last4(), &s[s.len() - 4..]);
    }

    #[test]
    fn test_environment_round_trips() {
        let key = ApiKey::generate(&kh(), Environment::Test).unwrap();
        assert!(key.expose().starts_with("kh_test_"));
        assert_eq!(
            ApiKey::parse(key.expose(), &kh()).unwrap().environment(),
            Environment::Test
        );
    }

    #[test]
    fn every_single_character_typo_is_caught() {
        let key = ApiKey::generate(&kh(), Environment::Live).unwrap();
        let s = key.expose().as_bytes().to_vec();
        for i in "kh_live_".len()..s.len() {
            for &c in base62::ALPHABET.iter().step_by(7) {
                if c == s[i] {
                    continue;
                }
                let mut typo = s.clone();
                typo[i] = c;
                let typo = String::from_utf8(typo).unwrap();
                assert!(
                    ApiKey::parse(&typo, &kh()).is_err(),
                    "typo accepted: {typo}"
                );
            }
        }
    }

    #[test]
    fn malformed_keys_are_rejected_with_a_reason() {
        let key = ApiKey::generate(&kh(), Environment::Live).unwrap();
        let s = key.expose();
        let body = &s["kh_live_".len()..];
        let cases = [
            ("", KeyFormatError::Shape),
            ("kh_live", KeyFormatError::Shape),
            (&format!("xx_live_{body}"), KeyFormatError::Prefix),
            (&format!("kh_prod_{body}"), KeyFormatError::Environment),
            (&format!("kh_live_{}", &body[1..]), KeyFormatError::Secret),
            (&format!("kh_live_{body}x"), KeyFormatError::Secret),
            (
                &format!("kh_live_{}-{}", &body[..10], &body[11..]),
                KeyFormatError::Secret,
            ),
            (&format!("kh_live_é{}", &body[2..]), KeyFormatError::Secret),
        ];
        for (input, want) in cases {
            assert_eq!(ApiKey::parse(input, &kh()), Err(want), "{input:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = ApiKey::generate(&kh(), Environment::Live).unwrap();
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.expose()[12..]));
    }

    #[test]
    fn prefix_rules() {
        assert!(KeyPrefix::parse("acme2").is_ok());
        assert!(KeyPrefix::parse("").is_err());
        assert!(KeyPrefix::parse("a_b").is_err());
        assert!(KeyPrefix::parse("ABC").is_err());
        assert!(KeyPrefix::parse("abcdefghijklmnopq").is_err());
    }
}
