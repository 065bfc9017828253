//! The set of recently revoked sessions, kept in memory so the guard refuses their
//! access tokens without a database read per request.
//!
//! Revocations made by this process enter the set at once; those made by another
//! process (the CLI, another instance) arrive with the next `sync`, which polls the
//! database on a short interval. Every revocation carries a number taken in commit
//! order (`sessions::revoked_after`), and each poll asks for the numbers above the last
//! one it saw: a revocation is never missed however late its writer stamped it or
//! however its clock is set. An entry is kept, by this process's own clock, as long as
//! an access token of that session could still be valid, then forgotten.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use crate::clock::Millis;
use crate::db::Conn;
use crate::domain::SessionId;
use crate::store::{sessions, StoreError};

/// At start-up the set is filled by revocation time; this much further back covers the
/// clock skew between this machine and the writers.
const START_OVERLAP: Millis = 15 * crate::clock::SECOND;

pub struct RevokedSessions {
    /// session id → when this process learned of the revocation
    entries: RwLock<HashMap<i64, Millis>>,
    /// The number of the latest revocation already in the set; `None` before the first sync.
    seen: Mutex<Option<i64>>,
    keep_for: Millis,
}

impl RevokedSessions {
    /// `keep_for`: the longest an access token can outlive its session's revocation.
    pub fn new(keep_for: Millis) -> Self {
        RevokedSessions {
            entries: RwLock::new(HashMap::new()),
            seen: Mutex::new(None),
            keep_for,
        }
    }

    pub fn contains(&self, id: SessionId) -> bool {
        self.entries
            .read()
            .map(|e| e.contains_key(&id.0))
            .unwrap_or(true)
    }

    pub fn insert(&self, id: SessionId, at: Millis) {
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(id.0, at);
        }
    }

    /// Pulls new revocations from the database and forgets entries past `keep_for`.
    pub fn sync(&self, conn: &mut Conn, now: Millis) -> Result<(), StoreError> {
        let Ok(mut seen) = self.seen.lock() else {
            return Err(StoreError::Unavailable);
        };
        let fresh: Vec<(i64, Millis)> = match *seen {
            Some(after) => {
                let rows = sessions::revoked_after(conn, after)?;
                if let Some(max) = rows.iter().map(|(_, seq)| *seq).max() {
                    *seen = Some(max.max(after));
                }
                rows.into_iter().map(|(id, _)| (id, now)).collect()
            }
            None => {
                // The number first: a revocation committed between the two reads has a
                // higher one and comes with the next poll.
                let last = sessions::last_revocation_seq(conn)?;
                let rows = sessions::revoked_since(conn, now - self.keep_for - START_OVERLAP)?;
                *seen = Some(last);
                rows.into_iter().map(|(id, _)| (id, now)).collect()
            }
        };
        if let Ok(mut entries) = self.entries.write() {
            entries.extend(fresh);
            entries.retain(|_, at| *at > now - self.keep_for);
        }
        Ok(())
    }
}
