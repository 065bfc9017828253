//! A bounded cache of access tokens whose signature and claims have already been
//! checked, keyed by the SHA-256 of the exact token string (as Envoy's `jwt_authn`
//! caches verified JWTs). A repeated token skips only the signature check: its `exp` is
//! checked against the clock on every request, and the guard still checks revocation.
//!
//! Each key-set snapshot owns its cache (see `Keys::replace`): when the keys change,
//! only entries whose `kid` is still in the new set carry over, so tokens of a removed
//! key are verified afresh — and refused. A `kid` always names the same key material:
//! Ed25519 kids are random per generated key, the HS256 kid is derived from the secret.
//!
//! Bounded by construction: `SHARDS` maps of at most `capacity / SHARDS` entries each.
//! A full shard drops one arbitrary entry before inserting; its keys are uniform hashes,
//! so the first one found is as good as a random pick, and nothing is scanned.

use std::collections::HashMap;
use std::sync::RwLock;

use sha2::{Digest, Sha256};

use super::amr::Amr;
use crate::domain::{Role, SessionId, UserId};

/// What a valid access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub username: String,
    pub role: Role,
    pub amr: Amr,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

const SHARDS: usize = 16;
/// How many verified tokens a key set remembers: ~2.5 MiB when full.
pub const DEFAULT_CAPACITY: usize = 16 * 1024;

/// SHA-256 of a token string: what the cache stores instead of the token.
pub type TokenDigest = [u8; 32];

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

#[derive(Clone)]
struct Entry {
    verified: Verified,
    kid: Box<str>,
}

type Shard = HashMap<TokenDigest, Entry>;

pub struct VerifiedCache {
    shards: Box<[RwLock<Shard>]>,
    per_shard: usize,
}

impl Default for VerifiedCache {
    fn default() -> Self {
        VerifiedCache::with_capacity(DEFAULT_CAPACITY)
    }
}

impl VerifiedCache {
    /// At most `capacity` entries (rounded up to a multiple of the shard count).
    pub fn with_capacity(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        VerifiedCache {
            shards: (0..SHARDS).map(|_| RwLock::new(Shard::new())).collect(),
            per_shard,
        }
    }

    fn shard(&self, digest: &TokenDigest) -> &RwLock<Shard> {
        &self.shards[usize::from(digest[0]) % SHARDS]
    }

    /// What the token said when it was verified, if it was.
    pub fn get(&self, digest: &TokenDigest) -> Option<Verified> {
        let shard = self.shard(digest).read().ok()?;
        shard.get(digest).map(|e| e.verified.clone())
    }

    /// Remembers a token verified with the key named `kid`.
    pub fn insert(&self, digest: TokenDigest, kid: &str, verified: Verified) {
        let Ok(mut shard) = self.shard(&digest).write() else {
            return;
        };
        if shard.len() >= self.per_shard && !shard.contains_key(&digest) {
            if let Some(victim) = shard.keys().next().copied() {
                shard.remove(&victim);
            }
        }
        shard.insert(
            digest,
            Entry {
                verified,
                kid: kid.into(),
            },
        );
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.read().map(|s| s.len()).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes over the entries of `older` (the previous key set's cache) whose key
    /// `still_valid` accepts; the others are dropped with `older`.
    pub fn adopt(&self, older: &VerifiedCache, still_valid: impl Fn(&str) -> bool) {
        for (from, to) in older.shards.iter().zip(self.shards.iter()) {
            let (Ok(from), Ok(mut to)) = (from.read(), to.write()) else {
                continue;
            };
            let kept = from.iter().filter(|(_, e)| still_valid(&e.kid));
            for (digest, entry) in kept.take(self.per_shard.saturating_sub(to.len())) {
                to.insert(*digest, entry.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Role, SessionId, UserId};

    fn verified(n: i64) -> Verified {
        Verified {
            user_id: UserId(n),
            session_id: SessionId(n),
            username: format!("user{n}"),
            role: Role::User,
            amr: crate::tokens::access::Amr::Password,
            exp: n,
        }
    }

    #[test]
    fn a_stored_token_is_found_by_its_digest_only() {
        let cache = VerifiedCache::default();
        cache.insert(digest("a.b.c"), "k1", verified(1));
        assert_eq!(cache.get(&digest("a.b.c")), Some(verified(1)));
        assert_eq!(cache.get(&digest("a.b.d")), None);
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let cache = VerifiedCache::with_capacity(64);
        for n in 0..5_000 {
            cache.insert(digest(&format!("token-{n}")), "k1", verified(n));
        }
        assert!(cache.len() <= 64, "{} entries", cache.len());
        assert!(
            cache.len() >= 48,
            "eviction keeps shards full: {}",
            cache.len()
        );
        let newest = digest("token-4999");
        assert_eq!(cache.get(&newest), Some(verified(4999)));
    }

    #[test]
    fn adopting_keeps_only_entries_of_keys_still_present() {
        let old = VerifiedCache::default();
        old.insert(digest("kept"), "k1", verified(1));
        old.insert(digest("dropped"), "k2", verified(2));
        let new = VerifiedCache::default();
        new.adopt(&old, |kid| kid == "k1");
        assert_eq!(new.get(&digest("kept")), Some(verified(1)));
        assert_eq!(new.get(&digest("dropped")), None);
    }
}
