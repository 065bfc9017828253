//! Signing keys: Ed25519 keys kept in the database (published as JWKS), or one HS256
//! secret from configuration. A `KeySet` is an immutable snapshot; `Keys` swaps in a new
//! snapshot when the database changes (`keys rotate` from another process).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::Signer as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::verified::VerifiedCache;
use crate::clock::Millis;
use crate::store::keys::KeyRow;

pub const EDDSA: &str = "EdDSA";

/// How long verifiers may cache `/.well-known/jwks.json`. Safe however long: the key that
/// signs after a rotation was published (as `next`) since the rotation before it.
pub const JWKS_MAX_AGE_SECS: u32 = 300;

/// A new Ed25519 key as a row to store.
pub fn generate_ed25519(now: Millis) -> anyhow::Result<KeyRow> {
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let der = key
        .to_pkcs8_der()
        .map_err(|e| anyhow::anyhow!("cannot encode the signing key: {e}"))?;
    Ok(KeyRow {
        kid: super::random_b64(12),
        algorithm: EDDSA.into(),
        private_key: der.as_bytes().to_vec(),
        public_key: key.verifying_key().to_bytes().to_vec(),
        created_at: now,
        retired_at: None,
    })
}

/// A key that signs access tokens, prepared once per key set.
pub enum Signer {
    /// Parsed and expanded once: `jsonwebtoken::encode` would parse the PKCS#8 document
    /// and derive the public key again for every token, doubling the cost of a signature.
    Ed25519(Box<ed25519_dalek::SigningKey>),
    Hs256(EncodingKey),
}

impl Signer {
    /// The compact JWS of `claims` under `header`: the same bytes `jsonwebtoken::encode`
    /// produces (Ed25519 signatures are deterministic; a unit test compares them).
    pub fn sign<T: Serialize>(
        &self,
        header: &Header,
        claims: &T,
    ) -> jsonwebtoken::errors::Result<String> {
        match self {
            Signer::Hs256(key) => jsonwebtoken::encode(header, claims, key),
            Signer::Ed25519(key) => {
                let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?);
                token.push('.');
                URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(claims)?, &mut token);
                let signature = key.sign(token.as_bytes());
                token.push('.');
                URL_SAFE_NO_PAD.encode_string(signature.to_bytes(), &mut token);
                Ok(token)
            }
        }
    }
}

/// The keys in force at one moment.
pub struct KeySet {
    pub algorithm: Algorithm,
    /// The key new tokens are signed with, and its `kid`.
    pub signing: Option<(String, Signer)>,
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
            verifying,
            jwks: Arc::from(&br#"{"keys":[]}"#[..]),
            verified: VerifiedCache::default(),
        }
    }

    /// From stored rows, newest active key first (as `store::keys::usable` returns them).
    /// Every row verifies and is published; the signing key is chosen by `signing_row`.
    pub fn eddsa(rows: &[KeyRow]) -> Self {
        let rows: Vec<&KeyRow> = rows
            .iter()
            .filter(|r| r.algorithm == EDDSA && r.public_key.len() == 32)
            .collect();
        let signing = signing_row(&rows).and_then(|row| {
            match ed25519_dalek::SigningKey::from_pkcs8_der(&row.private_key) {
                Ok(key) => Some((row.kid.clone(), Signer::Ed25519(Box::new(key)))),
                Err(_) => {
                    tracing::error!(kid = %row.kid, "the stored signing key is malformed");
                    None
                }
            }
        });
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        for row in rows {
            verifying.insert(row.kid.clone(), DecodingKey::from_ed_der(&row.public_key));
            jwks.push(serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(&row.public_key),
                "kid": row.kid,
                "use": "sig",
                "alg": EDDSA,
            }));
        }
        let jwks = serde_json::to_vec(&serde_json::json!({ "keys": jwks })).unwrap_or_default();
        KeySet {
            algorithm: Algorithm::EdDSA,
            signing,
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

/// The key to sign with: the `current` key, the oldest unretired one. The newer unretired
/// key is `next`: published, and signing once a rotation retires the current one.
fn signing_row<'a>(rows: &[&'a KeyRow]) -> Option<&'a KeyRow> {
    rows.iter()
        .copied()
        .filter(|r| r.retired_at.is_none())
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

    /// Swaps in the Ed25519 keys `rows` (those usable now, as the store reads them) when
    /// the signing key or the published set changed (a rotation by another process).
    pub fn reload(&self, rows: &[KeyRow]) {
        let current = self.current();
        let fresh = KeySet::eddsa(rows);
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

    fn key(created_at: i64, retired_at: Option<i64>) -> KeyRow {
        KeyRow {
            retired_at,
            ..generate_ed25519(created_at).unwrap()
        }
    }

    #[derive(Serialize)]
    struct Claims {
        sub: &'static str,
        exp: i64,
    }

    #[test]
    fn our_ed25519_tokens_are_the_bytes_jsonwebtoken_would_produce() {
        let row = key(0, None);
        let set = KeySet::eddsa(std::slice::from_ref(&row));
        let (kid, signer) = set.signing.as_ref().unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.clone());
        let claims = Claims { sub: "7", exp: 1 };
        let ours = signer.sign(&header, &claims).unwrap();
        let theirs = jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_ed_der(&row.private_key),
        );
        assert_eq!(ours, theirs.unwrap());
    }

    #[test]
    fn a_malformed_stored_key_does_not_sign() {
        let row = KeyRow {
            private_key: vec![0; 48],
            ..key(0, None)
        };
        assert!(KeySet::eddsa(&[row]).signing.is_none());
    }

    #[test]
    fn the_oldest_unretired_key_signs() {
        let retired = key(0, Some(10));
        let current = key(5, None);
        let next = key(20, None);
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
        let current = key(0, None);
        let next = key(1, None);
        let set = KeySet::eddsa(&[next.clone(), current.clone()]);
        let jwks = String::from_utf8(set.jwks.to_vec()).unwrap();
        assert!(jwks.contains(&next.kid) && jwks.contains(&current.kid));
        assert_eq!(set.signing.unwrap().0, current.kid);
    }
}
