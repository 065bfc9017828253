use std::fmt;
use std::str::FromStr;

use diesel::deserialize::FromSqlRow;
use diesel::expression::AsExpression;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! typed_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("The id of a ", $what, ". Shown as a decimal string everywhere outside the database.")]
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, AsExpression, FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        pub struct $name(pub i64);

        crate::sql_types::bigint_newtype!($name);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_id(s, $what).map($name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        /// The string it serializes as, or a JSON number (what state kept before ids
        /// were typed holds).
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(IdVisitor($what)).map($name)
            }
        }
    };
}

/// Only plain positive decimals: no sign, no whitespace, no leading zeros games.
fn parse_id(s: &str, what: &str) -> Result<i64, String> {
    let refused = || format!("'{}' is not a {what} id", s.escape_debug());
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refused());
    }
    s.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(refused)
}

struct IdVisitor(&'static str);

impl Visitor<'_> for IdVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} id", self.0)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<i64, E> {
        parse_id(s, self.0).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<i64, E> {
        Ok(n)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<i64, E> {
        i64::try_from(n).map_err(E::custom)
    }
}

typed_id!(UserId, "user");
typed_id!(SessionId, "session");
typed_id!(PasskeyId, "passkey");
typed_id!(EventId, "audit event");

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

    #[test]
    fn ids_deserialize_from_their_string_or_a_number() {
        assert_eq!(serde_json::from_str::<UserId>("\"7\"").unwrap(), UserId(7));
        assert_eq!(serde_json::from_str::<UserId>("7").unwrap(), UserId(7));
        assert!(serde_json::from_str::<UserId>("\"-7\"").is_err());
        assert!(serde_json::from_str::<UserId>("true").is_err());
    }
}
