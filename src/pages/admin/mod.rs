//! The admin pages under `/admin`, one file each: every session, the users, the audit
//! log. Each handler takes `Page<Admin>`, so a signed-in user without the role gets the
//! 403 page.

pub mod audit;
pub mod sessions;
pub mod users;

use super::error::PageError;
use crate::domain::listing;
use crate::domain::Username;

/// Rows per page of the session list and the audit log.
const PAGE_SIZE: i64 = 50;

/// A `?user=` filter (surrounding spaces ignored), or the 400 page.
fn user_filter(raw: Option<&str>) -> Result<Option<Username>, PageError> {
    listing::user_filter(raw.map(str::trim))
        .map_err(|e| PageError::BadRequest(format!("the user filter is not a username: {e}")))
}

/// A page cursor, or the 400 page.
fn cursor<Id: std::str::FromStr>(raw: Option<&str>) -> Result<Option<Id>, PageError> {
    listing::cursor(raw)
        .map_err(|_| PageError::BadRequest("the page cursor is not one latchkey gave out".into()))
}
