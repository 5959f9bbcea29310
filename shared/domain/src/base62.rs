//! Fixed-width base62 (`0-9A-Za-z`), used for key secrets, checksums and ids.
//!
//! Fixed width matters: a key's checksum and an id always have the same length,
//! so a key can be split into secret and checksum without a separator.

pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Encodes `value` in exactly `width` base62 digits, most significant first.
/// Digits above `width` are dropped, so callers pick a width that holds the type
/// (6 for a `u32`, 22 for a `u128`).
pub fn encode_fixed(mut value: u128, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 62) as usize];
        value /= 62;
    }
    // Every byte comes from ALPHABET, which is ASCII.
    out.into_iter().map(char::from).collect()
}

/// Decodes digits written by `encode_fixed`; `None` on a foreign character
/// or overflow.
pub fn decode(s: &str) -> Option<u128> {
    s.bytes().try_fold(0u128, |acc, b| {
        let digit = ALPHABET.iter().position(|&a| a == b)? as u128;
        acc.checked_mul(62)?.checked_add(digit)
    })
}

pub fn is_base62(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Fills `len` characters uniformly from the alphabet with bytes from the OS
/// CSPRNG. Bytes of 248 and above are rejected so that every character has
/// probability exactly 1/62 (248 = 4 * 62).
pub fn random(len: usize) -> Result<String, getrandom::Error> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf)?;
        for b in buf {
            if b < 248 && out.len() < len {
                out.push(char::from(ALPHABET[(b % 62) as usize]));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_pads_and_orders_digits() {
        assert_eq!(encode_fixed(0, 6), "000000");
        assert_eq!(encode_fixed(61, 3), "00z");
        assert_eq!(encode_fixed(62, 3), "010");
        assert_eq!(encode_fixed(u32::MAX as u128, 6), "4gfFC3");
        assert_eq!(encode_fixed(u128::MAX, 22).len(), 22);
        assert_eq!(decode(&encode_fixed(u128::MAX, 22)), Some(u128::MAX));
        assert_eq!(decode("4gfFC3"), Some(u32::MAX as u128));
        assert_eq!(decode("zzzzzzzzzzzzzzzzzzzzzz"), None);
        assert_eq!(decode("ab-"), None);
    }

    #[test]
    fn random_strings_are_base62_and_differ() {
        let a = random(43).unwrap();
        let b = random(43).unwrap();
        assert_eq!(a.len(), 43);
        assert!(is_base62(&a));
        assert_ne!(a, b);
    }
}
