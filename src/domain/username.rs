use std::fmt;

/// A username: 3..=64 of `[a-z0-9._-]`, compared case-insensitively (kept lower-case).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 64;

    pub fn parse(raw: &str) -> Result<Self, String> {
        let lower = raw.to_ascii_lowercase();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&lower.len()) {
            return Err(format!(
                "a username has {} to {} characters",
                Self::MIN_LEN,
                Self::MAX_LEN
            ));
        }
        if !lower.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        }) {
            return Err("a username may only hold letters a-z, digits, '.', '_' and '-'".into());
        }
        Ok(Self(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Username;

    #[test]
    fn usernames_are_folded_to_lower_case() {
        assert_eq!(
            Username::parse("Alice.B-2_x").unwrap().as_str(),
            "alice.b-2_x"
        );
    }

    #[test]
    fn usernames_outside_the_alphabet_or_length_are_refused() {
        let long = "a".repeat(65);
        for bad in [
            "ab",
            "",
            "al ice",
            "alice@x",
            "ålice",
            "al\0ice",
            long.as_str(),
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Username::parse(&"a".repeat(64)).is_ok());
    }
}
