//! The set of recently revoked sessions, kept in memory so the guard refuses their
//! access tokens without a database read per request.
//!
//! Revocations made by this process enter the set at once; those made by another
//! process (the CLI, another instance) arrive with the next `sync`, which polls the
//! database on a short interval. An entry is kept as long as an access token of that
//! session could still be valid, then forgotten.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};

use crate::clock::{Millis, SECOND};
use crate::db::Conn;
use crate::domain::SessionId;
use crate::store::{sessions, StoreError};

/// How far back each poll looks again, so a revocation committed with an older timestamp
/// than the last poll is not missed: clock skew, and a write stamped by its handler but
/// committed later (it may wait 5 s for its turn, then for the rest of its batch).
const POLL_OVERLAP: Millis = 15 * SECOND;

pub struct RevokedSessions {
    /// session id → revocation time
    entries: RwLock<HashMap<i64, Millis>>,
    synced_to: Mutex<Millis>,
    keep_for: Millis,
}

impl RevokedSessions {
    /// `keep_for`: the longest an access token can outlive its session's revocation.
    pub fn new(now: Millis, keep_for: Millis) -> Self {
        RevokedSessions {
            entries: RwLock::new(HashMap::new()),
            synced_to: Mutex::new(now - keep_for),
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

    pub fn len(&self) -> usize {
        self.entries.read().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pulls revocations from the database and forgets entries past `keep_for`.
    pub fn sync(&self, conn: &mut Conn, now: Millis) -> Result<(), StoreError> {
        let since = self.synced_to.lock().map(|s| *s).unwrap_or(0) - POLL_OVERLAP;
        let revoked = sessions::revoked_since(conn, since.max(now - self.keep_for))?;
        if let Ok(mut entries) = self.entries.write() {
            entries.extend(revoked);
            entries.retain(|_, at| *at > now - self.keep_for);
        }
        if let Ok(mut synced) = self.synced_to.lock() {
            *synced = now;
        }
        Ok(())
    }
}
