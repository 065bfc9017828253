//! Access tokens (signed JWTs) and refresh tokens (opaque, stored hashed).

pub mod access;
pub mod amr;
pub mod keys;
pub mod refresh;
pub mod signer;
pub mod verified;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// `n` random bytes from the thread-local CSPRNG, base64url without padding.
pub fn random_b64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::fill(&mut bytes[..]);
    URL_SAFE_NO_PAD.encode(&bytes)
}
