//! Signing keys: Ed25519 keys kept in the database (published as JWKS), or one HS256
//! secret from configuration. A `KeySet` is an immutable snapshot; `Keys` swaps in a new
//! snapshot when the database changes (`keys rotate` from another process).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use sha2::{Digest, Sha256};

use super::verified::VerifiedCache;
use crate::clock::Millis;
use crate::store::keys::KeyRow;

pub const EDDSA: &str = "EdDSA";

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

/// The keys in force at one moment.
pub struct KeySet {
    pub algorithm: Algorithm,
    /// The key new tokens are signed with.
    pub signing: Option<(String, EncodingKey)>,
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
            signing: Some((kid, EncodingKey::from_secret(secret))),
            verifying,
            jwks: Arc::from(&br#"{"keys":[]}"#[..]),
            verified: VerifiedCache::default(),
        }
    }

    /// From stored rows, newest active key first (as `store::keys::usable` returns them).
    pub fn eddsa(rows: &[KeyRow]) -> Self {
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        let mut signing = None;
        for row in rows
            .iter()
            .filter(|r| r.algorithm == EDDSA && r.public_key.len() == 32)
        {
            verifying.insert(row.kid.clone(), DecodingKey::from_ed_der(&row.public_key));
            jwks.push(serde_json::json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(&row.public_key),
                "kid": row.kid,
                "use": "sig",
                "alg": EDDSA,
            }));
            if signing.is_none() && row.retired_at.is_none() {
                signing = Some((row.kid.clone(), EncodingKey::from_ed_der(&row.private_key)));
            }
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

    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.verifying.keys().map(String::as_str)
    }
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
