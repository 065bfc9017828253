use std::fmt;

/// A candidate password: 8..=1024 characters, no composition rules (ASVS 6.2).
/// Its `Debug` is redacted so it can never reach a log line by accident.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 1024;

    pub fn parse(raw: String) -> Result<Self, String> {
        let chars = raw.chars().count();
        if !(Self::MIN_CHARS..=Self::MAX_CHARS).contains(&chars) {
            return Err(format!(
                "a password has {} to {} characters",
                Self::MIN_CHARS,
                Self::MAX_CHARS
            ));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::Password;

    #[test]
    fn passwords_are_counted_in_characters() {
        assert!(Password::parse("ééééééé".into()).is_err());
        assert!(Password::parse("éééééééé".into()).is_ok());
        assert!(Password::parse("x".repeat(1024)).is_ok());
        assert!(Password::parse("x".repeat(1025)).is_err());
    }

    #[test]
    fn debug_output_hides_the_password() {
        let p = Password::parse("correct horse".into()).unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }
}
