//! The pepper and what it makes: the stored digest of a key and the key's id.
//!
//! Only `HMAC-SHA256(pepper, key)` is stored. The key's id is the first 128 bits
//! of that digest, so the same single-item `GetItem` serves both "check this
//! presented key" and "read key `key_…`". Publishing 128 bits of the digest gives
//! nothing away: without the pepper nobody can compute digests of candidate keys,
//! and with it a 256-bit secret still cannot be searched.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::apikey::ApiKey;
use crate::base62;

type HmacSha256 = Hmac<Sha256>;

/// Length of the base62 part of a key id (`u128` needs 22 digits).
pub const KEY_ID_DIGITS: usize = 22;

#[derive(Clone)]
pub struct Pepper {
    /// Keyed once; cloning the state saves re-hashing the key on every call.
    mac: HmacSha256,
    /// Which pepper this is. Every key records the version that made its
    /// digest, so a later pepper rotation can keep the old one for the keys
    /// that still need it instead of making every stored digest useless.
    version: u32,
}

/// The version of the pepper a deployment starts with.
pub const FIRST_PEPPER_VERSION: u32 = 1;

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pepper(redacted)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the pepper must be at least 32 bytes, got {0}")]
pub struct PepperTooShort(usize);

impl Pepper {
    pub fn new(secret: &[u8]) -> Result<Self, PepperTooShort> {
        if secret.len() < 32 {
            return Err(PepperTooShort(secret.len()));
        }
        let mac = HmacSha256::new_from_slice(secret).map_err(|_| PepperTooShort(secret.len()))?;
        Ok(Pepper {
            mac,
            version: FIRST_PEPPER_VERSION,
        })
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn digest(&self, key: &ApiKey) -> KeyDigest {
        let mut mac = self.mac.clone();
        mac.update(key.expose().as_bytes());
        KeyDigest(mac.finalize().into_bytes().into())
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyDigest([u8; 32]);

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDigest({})", self.key_id())
    }
}

impl KeyDigest {
    /// The first 128 bits: the key's id as a number.
    pub fn id_number(&self) -> u128 {
        let mut head = [0u8; 16];
        head.copy_from_slice(&self.0[..16]);
        u128::from_be_bytes(head)
    }

    pub fn key_id(&self) -> KeyId {
        KeyId(format!(
            "key_{}",
            base62::encode_fixed(self.id_number(), KEY_ID_DIGITS)
        ))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Constant-time comparison with a stored hex digest.
    pub fn matches_hex(&self, stored: &str) -> bool {
        let Ok(bytes) = hex::decode(stored) else {
            return false;
        };
        if bytes.len() != self.0.len() {
            return false;
        }
        bytes
            .iter()
            .zip(self.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// A key's public id, `key_` and 22 base62 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// Parses an id from a path; anything else is simply not found.
    pub fn parse(s: &str) -> Option<Self> {
        let digits = s.strip_prefix("key_")?;
        (digits.len() == KEY_ID_DIGITS && base62::decode(digits).is_some())
            .then(|| KeyId(s.to_string()))
    }

    /// The id as a number (what `KeyDigest::id_number` gives).
    pub fn number(&self) -> u128 {
        base62::decode(&self.0[4..]).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apikey::{Environment, KeyPrefix};

    fn pepper() -> Pepper {
        Pepper::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn digest_is_hmac_sha256_of_the_whole_key() {
        let key = ApiKey::generate(&KeyPrefix::default(), Environment::Live).unwrap();
        let mut mac = HmacSha256::new_from_slice(&[7u8; 32]).unwrap();
        mac.update(key.expose().as_bytes());
        let want = hex::encode(mac.finalize().into_bytes());
        assert_eq!(pepper().digest(&key).to_hex(), want);
    }

    #[test]
    fn id_depends_on_pepper_and_key_and_parses_back() {
        let key = ApiKey::generate(&KeyPrefix::default(), Environment::Live).unwrap();
        let digest = pepper().digest(&key);
        let id = digest.key_id();
        assert_eq!(KeyId::parse(id.as_str()), Some(id.clone()));
        assert_eq!(id.number(), digest.id_number());
        let other = Pepper::new(&[8u8; 32]).unwrap().digest(&key).key_id();
        assert_ne!(id, other);
    }

    #[test]
    fn matches_hex_accepts_only_the_same_digest() {
        let p = pepper();
        let a = p.digest(&ApiKey::generate(&KeyPrefix::default(), Environment::Live).unwrap());
        let b = p.digest(&ApiKey::generate(&KeyPrefix::default(), Environment::Live).unwrap());
        assert!(a.matches_hex(&a.to_hex()));
        assert!(!a.matches_hex(&b.to_hex()));
        assert!(!a.matches_hex("zz"));
        assert!(!a.matches_hex(""));
    }

    #[test]
    fn short_peppers_are_refused() {
        assert!(Pepper::new(&[1u8; 31]).is_err());
    }

    #[test]
    fn key_ids_reject_garbage() {
        for s in [
            "",
            "key_",
            "key_abc",
            "acct_0000000000000000000000",
            "key_000000000000000000000-",
        ] {
            assert!(KeyId::parse(s).is_none(), "{s}");
        }
    }
}
