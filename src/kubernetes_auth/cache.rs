//! Verified tokens by SHA-256 digest until they expire: after its first
//! request, a token costs one hash lookup. Bounded: when full, expired
//! entries go; if none has, the whole cache does (tokens are verified
//! again, nothing is refused for it).

use std::collections::HashMap;
use std::sync::Mutex;

use super::verify::Verified;

/// Tokens kept at most (each ~100 bytes).
pub const MAX_ENTRIES: usize = 16_384;

#[derive(Default)]
pub struct Cache {
    map: Mutex<HashMap<[u8; 32], Verified>>,
}

impl Cache {
    /// The verified token with this digest, unless it has expired by `now`.
    pub fn get(&self, digest: &[u8; 32], now: i64) -> Option<Verified> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(digest).filter(|v| v.expires > now).cloned()
    }

    pub fn insert(&self, digest: [u8; 32], verified: Verified, now: i64) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, v| v.expires > now);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(digest, verified);
    }

    /// Forget every token (the keys changed: a removed key's tokens must
    /// not pass on their cached verdict).
    pub fn clear(&self) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
