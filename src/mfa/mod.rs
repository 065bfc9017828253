//! The second factor: TOTP (RFC 6238) codes and single-use recovery codes. The TOTP
//! secret is sealed at rest with `MfaKey` (AES-256-GCM), and recovery codes are stored as
//! HMACs under the same key, so a copy of the database alone yields neither.

pub mod key;
pub mod qr;
pub mod recovery;
pub mod totp;

pub use key::MfaKey;
