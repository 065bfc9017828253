//! Opaque refresh tokens: 256 random bits, base64url. Only the SHA-256 is stored.
//!
//! A sign-in's first token is random; every later one is the *successor* of the token
//! it replaces: HMAC-SHA-256 of that token under a server secret. So a token presented
//! again within the reuse grace gets the same successor every time, never a chain of
//! its own: once one holder moves on, the other's next use trips reuse detection.
//! Without the secret a successor cannot be guessed, and nothing plaintext is stored.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The server secret successors are derived with (shared by every instance).
pub struct SuccessorKey([u8; 32]);

impl SuccessorKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        SuccessorKey(bytes)
    }
}

/// A refresh token in plaintext. Never logged: `Debug` is redacted.
pub struct RefreshToken(String);

/// Base64url of 32 bytes, unpadded.
const ENCODED_LEN: usize = 43;

impl RefreshToken {
    pub fn generate() -> Self {
        RefreshToken(super::random_b64(32))
    }

    /// Accepts only strings of our shape, so junk never reaches the database.
    pub fn parse(raw: &str) -> Option<Self> {
        (raw.len() == ENCODED_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| RefreshToken(raw.to_owned()))
    }

    /// The token that replaces this one when it is rotated.
    pub fn successor(&self, key: &SuccessorKey) -> RefreshToken {
        let mut mac = Hmac::<Sha256>::new_from_slice(&key.0).expect("HMAC takes any key length");
        mac.update(self.0.as_bytes());
        RefreshToken(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::{RefreshToken, SuccessorKey};

    #[test]
    fn generated_tokens_carry_256_bits_and_parse_back() {
        let a = RefreshToken::generate();
        let b = RefreshToken::generate();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a.expose(), b.expose());
        assert_eq!(RefreshToken::parse(a.expose()).unwrap().hash(), a.hash());
    }

    #[test]
    fn malformed_tokens_are_refused_before_hashing() {
        let ok = RefreshToken::generate();
        for bad in [
            "",
            "short",
            &format!("{}=", &ok.expose()[..42]),
            &format!("{}x", ok.expose()),
        ] {
            assert!(RefreshToken::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_successor_is_fixed_by_the_token_and_the_key() {
        let token = RefreshToken::generate();
        let key = SuccessorKey::new([7; 32]);
        let next = token.successor(&key);
        assert_eq!(next.expose(), token.successor(&key).expose());
        assert_ne!(
            next.expose(),
            token.successor(&SuccessorKey::new([8; 32])).expose()
        );
        assert_ne!(next.expose(), token.expose());
        assert!(
            RefreshToken::parse(next.expose()).is_some(),
            "same shape as a random one"
        );
    }

    #[test]
    fn debug_output_hides_the_token() {
        let t = RefreshToken::generate();
        assert!(!format!("{t:?}").contains(t.expose()));
    }
}
