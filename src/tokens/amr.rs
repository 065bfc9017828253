//! How a session signed in: RFC 8176 `amr` values, as tokens carry them and as the
//! session row keeps them.

/// How a session signed in (RFC 8176 `amr` values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amr {
    /// A password.
    Password,
    /// A password and a TOTP code or a recovery code.
    PasswordOtp,
    /// A passkey, with user verification: a second factor on its own.
    Passkey,
}

impl Amr {
    pub fn methods(self) -> &'static [&'static str] {
        match self {
            Amr::Password => &["pwd"],
            Amr::PasswordOtp => &["pwd", "otp"],
            Amr::Passkey => &["hwk", "user"],
        }
    }

    /// As the session row keeps it: the methods, comma-separated.
    pub fn stored(self) -> &'static str {
        match self {
            Amr::Password => "pwd",
            Amr::PasswordOtp => "pwd,otp",
            Amr::Passkey => "hwk,user",
        }
    }

    /// From the session row; anything unknown reads as the weakest (a password).
    pub fn from_stored(stored: &str) -> Self {
        match stored {
            "pwd,otp" => Amr::PasswordOtp,
            "hwk,user" => Amr::Passkey,
            _ => Amr::Password,
        }
    }

    /// Read back from a token (`None`: not a value this service issues); a token without
    /// `amr` predates it and was a password.
    pub fn from_claim(amr: &[String]) -> Option<Self> {
        let amr: Vec<&str> = amr.iter().map(String::as_str).collect();
        match amr.as_slice() {
            [] | ["pwd"] => Some(Amr::Password),
            ["pwd", "otp"] => Some(Amr::PasswordOtp),
            ["hwk", "user"] => Some(Amr::Passkey),
            _ => None,
        }
    }
}
