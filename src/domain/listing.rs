//! The filters of the paged lists, read once for the JSON API and the admin pages alike:
//! whose rows (`user`) and where a page starts (a cursor: the last id of the page
//! before). Each caller words the refusal for its own kind of answer.

use std::str::FromStr;

use super::Username;

/// A `user` filter: absent or empty is everyone; anything else must be a username (the
/// reason it is not, otherwise).
pub fn user_filter(raw: Option<&str>) -> Result<Option<Username>, String> {
    raw.filter(|u| !u.is_empty())
        .map(Username::parse)
        .transpose()
}

/// A cursor that is not one this service gave out.
#[derive(Debug, PartialEq, Eq)]
pub struct NotACursor;

/// A cursor: absent or empty is the first page; anything else must be an id (of a
/// session, or an audit event).
pub fn cursor<Id: FromStr>(raw: Option<&str>) -> Result<Option<Id>, NotACursor> {
    match raw.filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(raw) => raw.parse::<Id>().map(Some).map_err(|_| NotACursor),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SessionId;

    #[test]
    fn empty_filters_are_no_filters_and_bad_ones_are_refused() {
        assert_eq!(user_filter(None), Ok(None));
        assert_eq!(user_filter(Some("")), Ok(None));
        assert_eq!(
            user_filter(Some("Alice")).unwrap().unwrap().as_str(),
            "alice"
        );
        assert!(user_filter(Some("no spaces")).is_err());
        assert_eq!(cursor::<SessionId>(None), Ok(None));
        assert_eq!(cursor::<SessionId>(Some("")), Ok(None));
        assert_eq!(cursor(Some("42")), Ok(Some(SessionId(42))));
        for bad in ["-1", "x", "1.5", "99999999999999999999"] {
            assert_eq!(cursor::<SessionId>(Some(bad)), Err(NotACursor), "{bad}");
        }
    }
}
