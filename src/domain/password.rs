use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;

/// The 30,000 most common passwords (source and license in the file's header).
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect()
});

/// A password that may be set: 8..=1024 characters and not one of the most common
/// passwords (ASVS 6.2.1, 6.2.4, 6.2.9); no composition rules. This is the one place the
/// policy lives: every way of setting a password (CLI, pages) goes through `parse`.
/// Its `Debug` is redacted so it can never reach a log line by accident.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub const MIN_CHARS: usize = 8;
    pub const MAX_CHARS: usize = 1024;

    /// The policy for a new password.
    pub fn parse(raw: String) -> Result<Self, String> {
        if !Self::has_valid_length(&raw) {
            return Err(format!(
                "a password has {} to {} characters",
                Self::MIN_CHARS,
                Self::MAX_CHARS
            ));
        }
        if is_common(&raw) {
            return Err("it is one of the most common passwords; choose another".into());
        }
        Ok(Self(raw))
    }

    /// Whether a password *presented at sign-in* could be one we accepted: only its
    /// length, so a password set before the common list grew still signs in.
    pub fn has_valid_length(raw: &str) -> bool {
        (Self::MIN_CHARS..=Self::MAX_CHARS).contains(&raw.chars().count())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Case-insensitive: `PassWord1` is as guessable as `password1`.
fn is_common(raw: &str) -> bool {
    COMMON.contains(raw.to_lowercase().as_str())
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::{Password, COMMON};

    #[test]
    fn passwords_are_counted_in_characters() {
        assert!(Password::parse("ééééééé".into()).is_err());
        assert!(Password::parse("éééééééé".into()).is_ok());
        assert!(Password::parse("x".repeat(1024)).is_ok());
        assert!(Password::parse("x".repeat(1025)).is_err());
    }

    #[test]
    fn the_shipped_list_holds_at_least_ten_thousand_passwords() {
        assert!(COMMON.len() >= 10_000, "{}", COMMON.len());
        assert!(COMMON.contains("123456") && COMMON.contains("password"));
        assert!(!COMMON.iter().any(|p| p.starts_with('#') || p.trim() != *p));
    }

    #[test]
    fn common_passwords_are_refused_in_any_case() {
        for common in [
            "password",
            "PassWord",
            "12345678",
            "iloveyou",
            "TRUSTNO1",
            "qwertyuiop",
        ] {
            let err = Password::parse(common.into()).unwrap_err();
            assert!(err.contains("most common"), "{common}: {err}");
        }
    }

    #[test]
    fn no_composition_rules() {
        for fine in [
            "correct horse battery staple",
            "lowercaseonlybutlong",
            "🦀🦀🦀🦀🦀🦀🦀🦀",
            "        spaces count too",
        ] {
            assert!(Password::parse(fine.into()).is_ok(), "{fine}");
        }
    }

    #[test]
    fn sign_in_checks_only_the_length() {
        assert!(Password::has_valid_length("password"));
        assert!(!Password::has_valid_length("seven77"));
        assert!(!Password::has_valid_length(&"x".repeat(1025)));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let p = Password::parse("correct horse".into()).unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }
}
