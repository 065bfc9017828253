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
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use crate::clock::{self, Millis};
use crate::domain::SessionId;
use crate::store::sessions::Revocations;
use crate::store::{Store, StoreError};

/// At start-up the set is filled by revocation time; this much further back covers the
/// clock skew between this machine and the writers.
const START_OVERLAP: Duration = Duration::from_secs(15);

/// `seen` before the first sync.
const NONE_SEEN: i64 = -1;

pub struct RevokedSessions {
    /// session id → when this process learned of the revocation
    entries: RwLock<HashMap<SessionId, Millis>>,
    /// The number of the latest revocation already in the set; `NONE_SEEN` before the
    /// first sync. Syncs running at once may read overlapping ranges: adding a session
    /// twice is harmless, and the number only grows.
    seen: AtomicI64,
    keep_for: Duration,
}

impl RevokedSessions {
    /// `keep_for`: the longest an access token can outlive its session's revocation.
    pub fn new(keep_for: Duration) -> Self {
        RevokedSessions {
            entries: RwLock::new(HashMap::new()),
            seen: AtomicI64::new(NONE_SEEN),
            keep_for,
        }
    }

    pub fn contains(&self, id: SessionId) -> bool {
        self.entries
            .read()
            .map(|e| e.contains_key(&id))
            .unwrap_or(true)
    }

    pub fn insert(&self, id: SessionId, at: Millis) {
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(id, at);
        }
    }

    /// What to ask the store for: revocations after the last number seen, or (before
    /// the first sync) every revocation since this moment.
    pub fn wanted(&self, now: Millis) -> (Option<i64>, Millis) {
        let seen = self.seen.load(Ordering::Acquire);
        (
            (seen != NONE_SEEN).then_some(seen),
            now - self.keep_for - START_OVERLAP,
        )
    }

    /// Adds what the store answered and forgets entries past `keep_for`.
    pub fn apply(&self, fresh: Revocations, now: Millis) {
        if let Ok(mut entries) = self.entries.write() {
            entries.extend(fresh.sessions.into_iter().map(|id| (id, now)));
            entries.retain(|_, at| *at > now - self.keep_for);
        }
        self.seen.fetch_max(fresh.up_to, Ordering::AcqRel);
    }

    /// Pulls new revocations from the database.
    pub async fn sync(&self, store: &Store) -> Result<(), StoreError> {
        let (after, since) = self.wanted(clock::now());
        let fresh = store.revocations(after, since).await?;
        self.apply(fresh, clock::now());
        Ok(())
    }

    /// [`RevokedSessions::sync`] for synchronous callers (start-up).
    pub fn sync_blocking(&self, store: &Store) -> Result<(), StoreError> {
        let (after, since) = self.wanted(clock::now());
        let fresh = store.revocations_blocking(after, since)?;
        self.apply(fresh, clock::now());
        Ok(())
    }
}
