//! What housekeeping deletes, in one write: expired refresh tokens, sessions long past
//! their absolute lifetime, stale sign-in failure counters — a bounded batch per table.
//! Instances sharing a PostgreSQL database take turns: a pass runs only in the
//! transaction that holds the housekeeping advisory lock.

use std::time::Duration;

use super::{lockout, sessions, take_turn, StoreError};
use crate::clock::Millis;
use crate::db::Conn;

/// The advisory lock that gives one instance the turn ("lk-hk").
const HOUSEKEEPING_TURN: i64 = 0x006c_6b2d_686b;

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Sessions whose absolute lifetime ended, and whose revocation (if any) happened,
    /// longer ago than this are deleted.
    pub keep_ended: Duration,
    /// Sign-in failure counters are counted over this window.
    pub lockout_window: Duration,
    /// Rows per table per run.
    pub batch: i64,
}

/// What one run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub refresh_tokens: usize,
    pub sessions: usize,
    pub login_failures: usize,
}

/// One pass at `now`.
/// On PostgreSQL only one instance at a time gets the turn; the others skip this pass.
pub fn run_once(conn: &mut Conn, now: Millis, policy: &Policy) -> Result<Purged, StoreError> {
    if !take_turn(conn, HOUSEKEEPING_TURN)? {
        return Ok(Purged::default());
    }
    Ok(Purged {
        refresh_tokens: sessions::purge_expired_tokens(conn, now, policy.batch)?,
        sessions: sessions::purge_ended(conn, now - policy.keep_ended, policy.batch)?,
        login_failures: lockout::purge_stale(conn, now, now - policy.lockout_window, policy.batch)?,
    })
}
