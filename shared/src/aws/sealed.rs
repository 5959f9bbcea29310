//! Encryption of webhook signing secrets at rest: AES-256-GCM under a key
//! read from Secrets Manager, with the endpoint id as associated data so a
//! sealed secret cannot be moved to another endpoint.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(redacted)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("sealed secret is damaged or belongs elsewhere")]
pub struct Unsealable;

impl SecretBox {
    /// The AES key is SHA-256 of the secret material, so any length of
    /// generated secret string works.
    pub fn new(material: &[u8]) -> Self {
        let key: [u8; 32] = Sha256::digest(material).into();
        SecretBox {
            cipher: Aes256Gcm::new(&key.into()),
        }
    }

    /// `base64(nonce || ciphertext)`
    pub fn seal(&self, plaintext: &[u8], aad: &str) -> Result<String, Unsealable> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|_| Unsealable)?;
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Unsealable)?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(STANDARD.encode(out))
    }

    pub fn open(&self, sealed: &str, aad: &str) -> Result<Vec<u8>, Unsealable> {
        let bytes = STANDARD.decode(sealed).map_err(|_| Unsealable)?;
        if bytes.len() < 12 {
            return Err(Unsealable);
        }
        let (nonce, ct) = bytes.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| Unsealable)?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Unsealable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_refuses_tampering_and_moves() {
        let b = SecretBox::new(b"material");
        let sealed = b.seal(b"whsec_abc", "wh_1").unwrap();
        assert!(!sealed.contains("whsec"));
        assert_eq!(b.open(&sealed, "wh_1").unwrap(), b"whsec_abc");
        assert!(b.open(&sealed, "wh_2").is_err());
        assert!(SecretBox::new(b"other").open(&sealed, "wh_1").is_err());
        let mut raw = STANDARD.decode(&sealed).unwrap();
        raw[14] ^= 1;
        assert!(b.open(&STANDARD.encode(raw), "wh_1").is_err());
        assert!(b.open("short", "wh_1").is_err());
        assert_ne!(
            b.seal(b"x", "a").unwrap(),
            b.seal(b"x", "a").unwrap(),
            "fresh nonces"
        );
    }
}
