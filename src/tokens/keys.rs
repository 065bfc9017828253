//! Signing keys in force: the stored keys of the configured algorithm (EdDSA, ES256 or
//! RS256; published as JWKS), or one HS256 secret from configuration. A `KeySet` is an
//! immutable snapshot, parsed once; `Keys` swaps in a new snapshot when the database
//! changes (a rotation or revocation by another process).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::{Digest, Sha256};

use super::signer::public_key;
pub use super::signer::{KeyAlg, Signer};
use super::verified::VerifiedCache;
use crate::clock::Millis;
use crate::store::keys::KeyRow;

/// How long verifiers may cache `/.well-known/jwks.json`. Safe however long: the key that
/// signs after a rotation was published (as `next`) since the rotation before it.
pub const JWKS_MAX_AGE_SECS: u32 = 300;

/// How often a server reads the stored keys back (a change by another process, the
/// automatic rotation); on PostgreSQL a notification brings changes sooner.
pub const KEY_POLL: Duration = Duration::from_secs(3);

/// Until when a key retired at `retired_at` stays published and verifies: past the end of
/// the last token it can have signed (issued up to a key poll after the retirement, by a
/// server that had not yet reloaded), with `horizon` being `tokens::horizon`.
pub fn published_until(retired_at: Millis, horizon: Duration) -> Millis {
    retired_at + horizon + KEY_POLL
}

/// Keys retired before this moment are published no more (`published_until`).
pub fn usable_since(now: Millis, horizon: Duration) -> Millis {
    now - horizon - KEY_POLL
}

/// The keys in force at one moment.
pub struct KeySet {
    pub algorithm: Algorithm,
    /// The key new tokens are signed with, and its `kid`.
    pub signing: Option<(String, Signer)>,
    /// Since when the signing key signs (stored keys only): the automatic rotation
    /// counts from there.
    pub signing_since: Option<Millis>,
    verifying: HashMap<String, DecodingKey>,
    /// `/.well-known/jwks.json`, serialized once per snapshot.
    pub jwks: Arc<[u8]>,
    /// Tokens already verified with these keys.
    pub verified: VerifiedCache,
}

impl KeySet {
    pub fn hs256(secret: &[u8]) -> Self {
        let kid = format!("hs256-{}", hex8(&Sha256::digest(secret)));
        let mut verifying = HashMap::new();
        verifying.insert(kid.clone(), DecodingKey::from_secret(secret));
        KeySet {
            algorithm: Algorithm::HS256,
            signing: Some((kid, Signer::Hs256(EncodingKey::from_secret(secret)))),
            signing_since: None,
            verifying,
            jwks: Arc::from(&br#"{"keys":[]}"#[..]),
            verified: VerifiedCache::default(),
        }
    }

    /// From the stored rows of `alg` usable now (`store::keys::usable`): every row
    /// verifies and is published; the oldest live one signs (`current`), the newer live
    /// one is `next`: published, and signing once a rotation retires the current one.
    pub fn stored(alg: KeyAlg, rows: &[KeyRow]) -> Self {
        let rows: Vec<&KeyRow> = rows
            .iter()
            .filter(|r| r.algorithm == alg.name() && r.revoked_at.is_none())
            .collect();
        let signing_row = signing_row(&rows);
        let signing_since = signing_row.map(|row| row.activated_at.unwrap_or(row.created_at));
        let signing =
            signing_row.and_then(|row| Signer::from_row(alg, row).map(|s| (row.kid.clone(), s)));
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        for row in rows {
            let Some((key, mut jwk)) = public_key(alg, row) else {
                tracing::error!(kid = %row.kid, "a stored public key is malformed");
                continue;
            };
            verifying.insert(row.kid.clone(), key);
            jwk["kid"] = row.kid.clone().into();
            jwk["use"] = "sig".into();
            jwk["alg"] = alg.name().into();
            jwks.push(jwk);
        }
        let jwks = serde_json::to_vec(&serde_json::json!({ "keys": jwks })).unwrap_or_default();
        KeySet {
            algorithm: alg.jwt(),
            signing,
            signing_since,
            verifying,
            jwks: jwks.into(),
            verified: VerifiedCache::default(),
        }
    }

    /// `kid` only selects among our own keys.
    pub fn verifying_key(&self, kid: &str) -> Option<&DecodingKey> {
        self.verifying.get(kid)
    }
}

/// The key to sign with: the `current` key, the oldest live one.
fn signing_row<'a>(rows: &[&'a KeyRow]) -> Option<&'a KeyRow> {
    rows.iter()
        .copied()
        .filter(|r| r.is_live())
        .min_by_key(|r| (r.created_at, r.kid.clone()))
}

fn hex8(bytes: &[u8]) -> String {
    bytes.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The current `KeySet`, swappable while requests read it.
pub struct Keys {
    current: RwLock<Arc<KeySet>>,
}

impl Keys {
    pub fn new(set: KeySet) -> Self {
        Keys {
            current: RwLock::new(Arc::new(set)),
        }
    }

    pub fn current(&self) -> Arc<KeySet> {
        self.current
            .read()
            .map(|k| k.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Swaps in the keys `rows` of `alg` (those usable now, as the store reads them) when
    /// the signing key or the published set changed (a rotation or revocation).
    pub fn reload(&self, alg: KeyAlg, rows: &[KeyRow]) {
        let current = self.current();
        let fresh = KeySet::stored(alg, rows);
        let changed = fresh.signing.as_ref().map(|s| &s.0)
            != current.signing.as_ref().map(|s| &s.0)
            || fresh.jwks != current.jwks;
        if changed && fresh.signing.is_some() {
            tracing::info!(kid = ?fresh.signing.as_ref().map(|s| &s.0), "signing keys reloaded");
            self.replace(fresh);
        }
    }

    /// Swaps in a new key set. Verified tokens carry over only if their key is still in
    /// it: a removed key's tokens are checked afresh (and refused). Tokens verified with
    /// the old set while this runs are simply verified again later.
    pub fn replace(&self, set: KeySet) {
        let old = self.current();
        set.verified
            .adopt(&old.verified, |kid| set.verifying_key(kid).is_some());
        match self.current.write() {
            Ok(mut k) => *k = Arc::new(set),
            Err(p) => *p.into_inner() = Arc::new(set),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(alg: KeyAlg, created_at: i64, retired_at: Option<i64>) -> KeyRow {
        KeyRow {
            retired_at: retired_at.map(Millis),
            ..alg.generate(Millis(created_at)).unwrap()
        }
    }

    fn published(set: &KeySet) -> Vec<serde_json::Value> {
        let jwks: serde_json::Value = serde_json::from_slice(&set.jwks).unwrap();
        jwks["keys"].as_array().unwrap().clone()
    }

    #[test]
    fn a_malformed_stored_key_does_not_sign() {
        let row = KeyRow {
            private_key: vec![0; 48],
            ..key(KeyAlg::EdDsa, 0, None)
        };
        assert!(KeySet::stored(KeyAlg::EdDsa, &[row]).signing.is_none());
    }

    #[test]
    fn the_oldest_live_key_signs() {
        let retired = key(KeyAlg::EdDsa, 0, Some(10));
        let current = key(KeyAlg::EdDsa, 5, None);
        let next = key(KeyAlg::EdDsa, 20, None);
        let rows = [&next, &current, &retired];
        assert_eq!(signing_row(&rows).unwrap().kid, current.kid);
        assert!(
            signing_row(&[&retired]).is_none(),
            "a retired key never signs"
        );
        assert!(signing_row(&[]).is_none());
    }

    #[test]
    fn the_next_key_is_published_before_it_signs() {
        for alg in KeyAlg::ALL {
            let current = key(alg, 0, None);
            let next = key(alg, 1, None);
            let set = KeySet::stored(alg, &[next.clone(), current.clone()]);
            let kids: Vec<_> = published(&set).iter().map(|k| k["kid"].clone()).collect();
            assert_eq!(kids, [next.kid.as_str(), current.kid.as_str()]);
            assert_eq!(set.signing.unwrap().0, current.kid);
            assert_eq!(set.algorithm, alg.jwt());
        }
    }

    #[test]
    fn each_algorithm_publishes_its_rfc_members() {
        let members = |alg: KeyAlg| {
            let set = KeySet::stored(alg, &[key(alg, 0, None)]);
            let jwk = published(&set).remove(0);
            let mut names: Vec<String> = jwk.as_object().unwrap().keys().cloned().collect();
            names.sort();
            assert_eq!(jwk["alg"], alg.name());
            assert_eq!(jwk["use"], "sig");
            names
        };
        assert_eq!(
            members(KeyAlg::EdDsa),
            ["alg", "crv", "kid", "kty", "use", "x"]
        );
        assert_eq!(
            members(KeyAlg::Es256),
            ["alg", "crv", "kid", "kty", "use", "x", "y"]
        );
        assert_eq!(
            members(KeyAlg::Rs256),
            ["alg", "e", "kid", "kty", "n", "use"]
        );
    }

    #[test]
    fn revoked_keys_and_keys_of_other_algorithms_are_neither_published_nor_used() {
        let revoked = KeyRow {
            revoked_at: Some(Millis(3)),
            ..key(KeyAlg::Es256, 0, None)
        };
        let other = key(KeyAlg::EdDsa, 0, None);
        let live = key(KeyAlg::Es256, 1, None);
        let set = KeySet::stored(
            KeyAlg::Es256,
            &[revoked.clone(), other.clone(), live.clone()],
        );
        assert_eq!(published(&set).len(), 1);
        assert!(set.verifying_key(&revoked.kid).is_none());
        assert!(set.verifying_key(&other.kid).is_none());
        assert_eq!(set.signing.unwrap().0, live.kid);
    }
}
