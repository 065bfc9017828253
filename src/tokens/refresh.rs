//! Opaque refresh tokens: 256 random bits, base64url. Only the SHA-256 is stored.

use std::fmt;

use sha2::{Digest, Sha256};

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
    use super::RefreshToken;

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
    fn debug_output_hides_the_token() {
        let t = RefreshToken::generate();
        assert!(!format!("{t:?}").contains(t.expose()));
    }
}
