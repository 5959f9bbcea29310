//! A small in-process cache of checked keys, per warm Lambda environment.
//!
//! Known keys are kept for a short TTL (default 10 s) and unknown ones for a
//! shorter one (default 2 s), so a hot key costs no read and a flood of
//! well-formed but unknown keys costs one read per key per TTL. The price is
//! the revocation delay: a key deleted or deactivated through another
//! environment is still accepted here for up to the TTL. The environment that
//! makes the change forgets the key at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

use crate::domain::key::KeyRecord;
use crate::domain::pepper::{KeyDigest, KeyId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheSettings {
    pub ttl: Duration,
    pub negative_ttl: Duration,
    pub capacity: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            ttl: Duration::from_secs(10),
            negative_ttl: Duration::from_secs(2),
            capacity: 10_000,
        }
    }
}

impl CacheSettings {
    /// No caching: every check reads DynamoDB.
    pub const OFF: CacheSettings = CacheSettings {
        ttl: Duration::ZERO,
        negative_ttl: Duration::ZERO,
        capacity: 1,
    };
}

#[derive(Clone)]
struct Entry {
    record: Option<Arc<KeyRecord>>,
    fetched: Instant,
}

/// Entries are keyed by the key id's number (the digest's first 128 bits),
/// so forgetting a key by id is one removal.
pub struct KeyCache {
    settings: CacheSettings,
    entries: Cache<u128, Entry>,
}

/// What the cache knows of a digest.
#[derive(Debug, Clone, PartialEq)]
pub enum Cached {
    Known(Arc<KeyRecord>),
    Unknown,
    Miss,
}

impl KeyCache {
    pub fn new(settings: CacheSettings) -> Self {
        KeyCache {
            settings,
            entries: Cache::new(settings.capacity.max(1)),
        }
    }

    pub fn get(&self, digest: &KeyDigest, now: Instant) -> Cached {
        let Some(entry) = self.entries.get(&digest.id_number()) else {
            return Cached::Miss;
        };
        let ttl = if entry.record.is_some() {
            self.settings.ttl
        } else {
            self.settings.negative_ttl
        };
        if now.saturating_duration_since(entry.fetched) >= ttl {
            return Cached::Miss;
        }
        match entry.record {
            Some(r) => Cached::Known(r),
            None => Cached::Unknown,
        }
    }

    pub fn put(&self, digest: KeyDigest, record: Option<Arc<KeyRecord>>, fetched: Instant) {
        let ttl = if record.is_some() {
            self.settings.ttl
        } else {
            self.settings.negative_ttl
        };
        if !ttl.is_zero() {
            self.entries
                .insert(digest.id_number(), Entry { record, fetched });
        }
    }

    /// Forgets a key, after this environment changed or deleted it.
    pub fn forget(&self, key_id: &KeyId) {
        self.entries.remove(&key_id.number());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::apikey::{ApiKey, Environment, KeyPrefix};
    use crate::domain::pepper::Pepper;

    fn digest() -> KeyDigest {
        let key = ApiKey::generate(&KeyPrefix::default(), Environment::Live).unwrap();
        Pepper::new(&[1u8; 32]).unwrap().digest(&key)
    }

    #[test]
    fn entries_expire_after_their_ttl_and_unknowns_sooner() {
        let cache = KeyCache::new(CacheSettings {
            ttl: Duration::from_secs(10),
            negative_ttl: Duration::from_secs(2),
            capacity: 10,
        });
        let t0 = Instant::now();
        let (unknown, missing) = (digest(), digest());
        cache.put(unknown, None, t0);
        assert_eq!(
            cache.get(&unknown, t0 + Duration::from_secs(1)),
            Cached::Unknown
        );
        assert_eq!(
            cache.get(&unknown, t0 + Duration::from_secs(2)),
            Cached::Miss
        );
        assert_eq!(cache.get(&missing, t0), Cached::Miss);
        cache.put(missing, None, t0);
        cache.forget(&missing.key_id());
        assert_eq!(cache.get(&missing, t0), Cached::Miss);
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let cache = KeyCache::new(CacheSettings::OFF);
        let d = digest();
        cache.put(d, None, Instant::now());
        assert_eq!(cache.get(&d, Instant::now()), Cached::Miss);
    }

    #[test]
    fn capacity_bounds_the_cache() {
        let cache = KeyCache::new(CacheSettings {
            capacity: 50,
            ..CacheSettings::default()
        });
        let now = Instant::now();
        for _ in 0..500 {
            cache.put(digest(), None, now);
        }
        assert!(cache.entries.len() <= 60, "{}", cache.entries.len());
    }
}
