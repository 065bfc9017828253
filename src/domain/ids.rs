use std::fmt;
use std::str::FromStr;

use diesel::deserialize::FromSqlRow;
use diesel::expression::AsExpression;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! typed_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("The id of a ", $what, ". Shown as a decimal string everywhere outside the database (but see [`as_number`]).")]
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

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl From<i64> for $name {
            fn from(id: i64) -> $name {
                $name(id)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
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

/// Serde for state this service keeps for itself (the cookie session), where ids have
/// always been JSON numbers, so that every instance of a rolling upgrade reads them:
/// `#[serde(with = "crate::domain::as_number")]`.
pub mod as_number {
    use super::*;

    pub fn serialize<S: Serializer, Id: Copy + Into<i64>>(
        id: &Id,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_i64((*id).into())
    }

    pub fn deserialize<'de, D: Deserializer<'de>, Id: From<i64>>(d: D) -> Result<Id, D::Error> {
        i64::deserialize(d).map(Id::from)
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
    fn the_cookie_session_keeps_ids_as_the_numbers_it_always_held() {
        #[derive(Serialize, Deserialize, Debug, PartialEq)]
        struct Kept {
            #[serde(with = "super::as_number")]
            user_id: UserId,
        }
        let kept = Kept { user_id: UserId(7) };
        assert_eq!(serde_json::to_string(&kept).unwrap(), r#"{"user_id":7}"#);
        assert_eq!(
            serde_json::from_str::<Kept>(r#"{"user_id":7}"#).unwrap(),
            kept
        );
    }

    #[test]
    fn ids_serialize_as_strings() {
        assert_eq!(serde_json::to_string(&UserId(7)).unwrap(), "\"7\"");
    }
}
