//! Recovery codes: 10 per set, each 80 random bits written as 16 lower-case base32
//! characters in groups of four (`abcd-efgh-ijkl-mnop`). Only their HMAC under `MfaKey`
//! is stored; what the user types is normalised first (case, spaces, dashes).

use super::MfaKey;

pub const PER_SET: usize = 10;
const CHARS: usize = 16;

/// A new set of codes, as shown to the user once.
pub fn generate_set() -> Vec<String> {
    (0..PER_SET).map(|_| generate()).collect()
}

fn generate() -> String {
    let mut bytes = [0u8; CHARS * 5 / 8];
    rand::fill(&mut bytes);
    let text = base32::encode(base32::Alphabet::Rfc4648Lower { padding: false }, &bytes);
    text.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).expect("base32 is ASCII"))
        .collect::<Vec<_>>()
        .join("-")
}

/// The code as typed, reduced to its 16 characters; `None` if it cannot be one.
pub fn normalise(typed: &str) -> Option<String> {
    let plain: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let valid = plain.len() == CHARS
        && plain
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'2'..=b'7'));
    valid.then_some(plain)
}

/// What the database keeps of a code: its HMAC (of the normalised form).
pub fn digest(key: &MfaKey, code: &str) -> Option<Vec<u8>> {
    normalise(code).map(|plain| key.mac(plain.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_ten_distinct_codes_of_the_documented_shape() {
        let set = generate_set();
        assert_eq!(set.len(), 10);
        let mut unique = set.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 10);
        for code in &set {
            assert_eq!(code.len(), 19, "{code}");
            assert_eq!(code.matches('-').count(), 3);
            assert!(normalise(code).is_some());
        }
    }

    #[test]
    fn typing_variants_reach_the_same_digest_and_junk_none() {
        let key = MfaKey::parse(&MfaKey::generate_text()).unwrap();
        let code = generate();
        let digest_of = |typed: &str| digest(&key, typed);
        let upper = code.to_uppercase();
        let spaced = code.replace('-', " ");
        assert_eq!(digest_of(&code), digest_of(&upper));
        assert_eq!(digest_of(&code), digest_of(&spaced));
        assert_eq!(digest_of(&code), digest_of(&code.replace('-', "")));
        for junk in [
            "",
            "123456",
            "abcd-efgh-ijkl",
            "abcd-efgh-ijkl-mnop-q",
            "abcd-efgh-ijkl-mno1",
        ] {
            assert_eq!(digest_of(junk), None, "{junk}");
        }
    }
}
