//! Rows as the page tables show them, built from store rows.

use super::user_agent;
use super::when::relative;
use crate::clock::{rfc3339, Millis};
use crate::domain::SessionId;
use crate::store::sessions::SessionWithUser;

/// A moment: relative for reading ("3 minutes ago"), exact for `<time>` and hovering.
pub struct Moment {
    pub relative: String,
    pub exact: String,
}

impl Moment {
    pub fn new(at: Millis, now: Millis) -> Self {
        Moment {
            relative: relative(at, now),
            exact: rfc3339(at),
        }
    }
}

pub struct SessionItem {
    pub id: SessionId,
    pub username: String,
    pub current: bool,
    pub device: String,
    pub user_agent: String,
    pub ip: String,
    pub created: Moment,
    pub last_used: Moment,
    pub expires: Moment,
}

impl SessionItem {
    pub fn new(row: SessionWithUser, current: SessionId, now: Millis) -> Self {
        let s = row.session;
        SessionItem {
            id: s.id,
            username: row.username,
            current: s.id == current,
            device: user_agent::parse(&s.user_agent).describe(),
            user_agent: s.user_agent,
            ip: s.ip,
            created: Moment::new(s.created_at, now),
            last_used: Moment::new(s.last_used_at, now),
            expires: Moment::new(s.expires_at, now),
        }
    }
}
