//! The JSON shapes of the lists (docs/api.md), built from store rows.

use serde::Serialize;

use crate::clock::rfc3339;
use crate::domain::{SessionId, UserId};
use crate::store::sessions::SessionWithUser;
use crate::store::users::UserRow;

#[derive(Serialize)]
pub struct SessionView {
    id: SessionId,
    user_id: UserId,
    username: String,
    created_at: String,
    last_used_at: String,
    expires_at: String,
    ip: String,
    user_agent: String,
    current: bool,
    revoked_at: Option<String>,
}

impl SessionView {
    pub fn new(row: SessionWithUser, current: SessionId) -> Self {
        let s = row.session;
        SessionView {
            id: s.id,
            user_id: s.user_id,
            username: row.username,
            created_at: rfc3339(s.created_at),
            last_used_at: rfc3339(s.last_used_at),
            expires_at: rfc3339(s.expires_at),
            ip: s.ip,
            user_agent: s.user_agent,
            current: s.id == current,
            revoked_at: s.revoked_at.map(rfc3339),
        }
    }
}

#[derive(Serialize)]
pub struct SessionList {
    pub sessions: Vec<SessionView>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize)]
pub struct UserView {
    id: UserId,
    username: String,
    role: String,
    disabled: bool,
    created_at: String,
}

impl From<UserRow> for UserView {
    fn from(u: UserRow) -> Self {
        UserView {
            id: u.id,
            role: u.role.to_string(),
            username: u.username,
            disabled: u.disabled,
            created_at: rfc3339(u.created_at),
        }
    }
}

#[derive(Serialize)]
pub struct UserList {
    pub users: Vec<UserView>,
}
