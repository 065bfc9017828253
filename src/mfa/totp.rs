//! RFC 6238 TOTP: SHA-1, 6 digits, 30-second steps, one step of clock skew either way.
//! Codes are computed by `totp-rs`; which step a code matched is ours to know, so the
//! store can accept each step at most once per account (no replay within the window).

use totp_rs::{Algorithm, Builder, Totp};

pub const DIGITS: usize = 6;
pub const STEP_SECS: u64 = 30;
/// Steps accepted before and after the current one.
pub const SKEW: i64 = 1;
/// The secret's length: 160 bits, as RFC 4226 recommends.
pub const SECRET_LEN: usize = 20;

/// A TOTP secret (the raw bytes; base32 only for people and authenticator apps).
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_LEN];
        rand::fill(&mut bytes[..]);
        Secret(bytes)
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() >= 16).then_some(Secret(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 base32 without padding, as authenticator apps take it.
    pub fn base32(&self) -> String {
        base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &self.0)
    }

    /// The `otpauth://` URI an authenticator app scans (Key Uri Format).
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let label = format!("{}:{}", percent(issuer), percent(account));
        format!(
            "otpauth://totp/{label}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            self.base32(),
            percent(issuer)
        )
    }

    fn totp(&self) -> Totp {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS as u8)
            .with_skew(0)
            .with_step_duration(STEP_SECS)
            .with_secret(self.0.as_slice())
            .build_noncompliant()
    }

    /// The code of time step `step`.
    pub fn code_at_step(&self, step: i64) -> String {
        self.totp()
            .generate(step.max(0) as u64 * STEP_SECS)
            .to_string()
    }

    /// The step `code` belongs to, within the skew around `unix_secs`; `None` if it
    /// matches none. Every candidate is compared in constant time.
    pub fn matching_step(&self, code: &str, unix_secs: i64) -> Option<i64> {
        let code = code.trim();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = unix_secs.div_euclid(STEP_SECS as i64);
        let mut found = None;
        for step in now - SKEW..=now + SKEW {
            let expected = self.code_at_step(step);
            if bool::from(subtle::ConstantTimeEq::ct_eq(
                expected.as_bytes(),
                code.as_bytes(),
            )) {
                found = Some(step);
            }
        }
        found
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B, SHA-1 rows (the 8-digit values; ours are their last 6 digits).
    #[test]
    fn rfc_6238_test_vectors() {
        let secret = Secret(b"12345678901234567890".to_vec());
        for (time, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(secret.code_at_step(time / 30), eight[2..], "t={time}");
            assert_eq!(secret.matching_step(&eight[2..], time), Some(time / 30));
        }
    }

    #[test]
    fn one_step_of_skew_either_way_and_no_more() {
        let secret = Secret::generate();
        let now = 1_700_000_000;
        let step = now / 30;
        for delta in [-1, 0, 1] {
            let code = secret.code_at_step(step + delta);
            assert_eq!(secret.matching_step(&code, now), Some(step + delta));
        }
        for delta in [-3, -2, 2, 3] {
            let code = secret.code_at_step(step + delta);
            let matched = secret.matching_step(&code, now);
            // A different step's code can collide with a near one (1 in 10^6): only
            // accept if it is within the window.
            assert!(matched.is_none_or(|s| (s - step).abs() <= SKEW), "{delta}");
        }
    }

    #[test]
    fn malformed_codes_never_match() {
        let secret = Secret::generate();
        let code = secret.code_at_step(1_700_000_000 / 30);
        for bad in ["", "12345", "1234567", "abcdef", "12 345", "１２３４５６"] {
            assert_eq!(secret.matching_step(bad, 1_700_000_000), None, "{bad:?}");
        }
        assert!(secret
            .matching_step(&format!(" {code} "), 1_700_000_000)
            .is_some());
    }

    #[test]
    fn the_uri_names_the_account_and_issuer() {
        let secret = Secret(b"12345678901234567890".to_vec());
        assert_eq!(secret.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(
            secret.otpauth_uri("latchkey", "alice"),
            "otpauth://totp/latchkey:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=latchkey&algorithm=SHA1&digits=6&period=30"
        );
    }
}
