use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

macro_rules! typed_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("The id of a ", $what, ". Shown as a decimal string everywhere outside the database.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                // Only plain positive decimals: no sign, no whitespace, no leading zeros games.
                if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("'{}' is not a {} id", s.escape_debug(), $what));
                }
                s.parse::<i64>()
                    .ok()
                    .filter(|id| *id > 0)
                    .map($name)
                    .ok_or_else(|| format!("'{}' is not a {} id", s.escape_debug(), $what))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

typed_id!(UserId, "user");
typed_id!(SessionId, "session");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_only_positive_decimals() {
        assert_eq!("42".parse::<SessionId>(), Ok(SessionId(42)));
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            " 1",
            "1 ",
            "1e3",
            "99999999999999999999",
            "abc",
        ] {
            assert!(bad.parse::<SessionId>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn ids_serialize_as_strings() {
        assert_eq!(serde_json::to_string(&UserId(7)).unwrap(), "\"7\"");
    }
}
