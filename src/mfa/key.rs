//! `MfaKey`: the key second-factor secrets are sealed with. It is kept outside the
//! database (`LATCHKEY_MFA_KEY`, or a key file beside a SQLite database), so a copy of
//! the database does not hand out second factors.

use crate::domain::UserId;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const NONCE_LEN: usize = 12;

#[derive(Clone)]
pub struct MfaKey {
    seal: [u8; 32],
    mac: [u8; 32],
}

impl std::fmt::Debug for MfaKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaKey(<secret>)")
    }
}

impl MfaKey {
    /// From 32 secret bytes; the sealing and MAC keys are derived apart.
    pub fn new(secret: &[u8; 32]) -> Self {
        MfaKey {
            seal: derive(secret, b"latchkey mfa seal"),
            mac: derive(secret, b"latchkey mfa recovery codes"),
        }
    }

    /// A fresh random key, as the text `LATCHKEY_MFA_KEY` and key files hold.
    pub fn generate_text() -> String {
        let mut secret = [0u8; 32];
        rand::fill(&mut secret);
        URL_SAFE_NO_PAD.encode(secret)
    }

    /// The key from its text form (43 base64url characters, surrounding space ignored).
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        Some(Self::new(&bytes.try_into().ok()?))
    }

    /// A value the database keeps to tell whether instances use the same key.
    pub fn check_value(&self) -> Vec<u8> {
        self.mac(b"latchkey mfa key check")
    }

    /// `plain` sealed for `user_id` (the row it belongs to is authenticated with it, so a
    /// sealed secret copied to another user's row does not open).
    pub fn seal(&self, user_id: UserId, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let cipher = Aes256Gcm::new((&self.seal).into());
        let aad = user_id.0.to_be_bytes();
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encrypts any length we store");
        [nonce.as_slice(), &sealed].concat()
    }

    pub fn open(&self, user_id: UserId, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        let cipher = Aes256Gcm::new((&self.seal).into());
        let aad = user_id.0.to_be_bytes();
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: body,
                    aad: &aad,
                },
            )
            .ok()
    }

    /// HMAC-SHA-256 under the MAC key.
    pub fn mac(&self, data: &[u8]) -> Vec<u8> {
        let mut mac =
            <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.mac).expect("any key length");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
}

fn derive(secret: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(secret).expect("any key length");
    mac.update(label);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_key_and_for_their_user() {
        let key = MfaKey::parse(&MfaKey::generate_text()).unwrap();
        let other = MfaKey::parse(&MfaKey::generate_text()).unwrap();
        let sealed = key.seal(UserId(7), b"JBSWY3DPEHPK3PXP");
        assert_eq!(
            key.open(UserId(7), &sealed).as_deref(),
            Some(&b"JBSWY3DPEHPK3PXP"[..])
        );
        assert_eq!(key.open(UserId(8), &sealed), None, "bound to its user");
        assert_eq!(other.open(UserId(7), &sealed), None, "bound to its key");
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(key.open(UserId(7), &tampered), None);
        assert_eq!(key.open(UserId(7), &sealed[..5]), None);
        assert_ne!(
            key.seal(UserId(7), b"x"),
            key.seal(UserId(7), b"x"),
            "a fresh nonce each time"
        );
    }

    #[test]
    fn keys_parse_from_their_text_only() {
        let text = MfaKey::generate_text();
        assert_eq!(text.len(), 43);
        let a = MfaKey::parse(&format!(" {text}\n")).unwrap();
        assert_eq!(a.check_value(), MfaKey::parse(&text).unwrap().check_value());
        assert!(MfaKey::parse("short").is_none());
        assert!(MfaKey::parse(&text[..40]).is_none());
        assert!(format!("{a:?}").contains("<secret>"));
    }
}
