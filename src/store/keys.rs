//! Signing keys and their lifecycle, per algorithm: one `current` key signs, one `next`
//! key is published ahead of the rotation that will promote it, `retired` keys stay
//! published until their tokens expired, `revoked` keys are gone at once.
//!
//! Which key is current is not stored: it is the oldest key of its algorithm that is
//! neither retired nor revoked (`activated_at` records when it started signing, for the
//! automatic rotation). Every change takes the `signing-keys` lock, so instances and the
//! CLI acting at once keep exactly one current and one next key.

use std::collections::HashMap;

use diesel::prelude::*;

use super::audit::{self, Event, EventKind};
use super::{columns, write_tx, Actor, Statement, StoreError};
use crate::clock::Millis;
use crate::db::Conn;
use crate::schema::signing_keys;

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct KeyRow {
    pub kid: String,
    pub algorithm: String,
    pub private_key: Vec<u8>,
    pub public_key: Vec<u8>,
    pub created_at: Millis,
    pub retired_at: Option<Millis>,
    /// When it became the current key; `None` while it is `next`.
    pub activated_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
}

impl std::fmt::Debug for KeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRow")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("activated_at", &self.activated_at)
            .field("retired_at", &self.retired_at)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

impl KeyRow {
    /// Neither retired nor revoked: `current` or `next`.
    pub fn is_live(&self) -> bool {
        self.retired_at.is_none() && self.revoked_at.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Current,
    Next,
    Retired,
    Revoked,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Current => "current",
            KeyState::Next => "next",
            KeyState::Retired => "retired",
            KeyState::Revoked => "revoked",
        }
    }
}

/// The state of every row in `rows` (keys of any algorithms), by kid.
pub fn states(rows: &[KeyRow]) -> HashMap<String, KeyState> {
    let mut current: HashMap<&str, &KeyRow> = HashMap::new();
    for row in rows.iter().filter(|r| r.is_live()) {
        let best = current.entry(row.algorithm.as_str()).or_insert(row);
        if (row.created_at, &row.kid) < (best.created_at, &best.kid) {
            *best = row;
        }
    }
    rows.iter()
        .map(|row| {
            let state = if row.revoked_at.is_some() {
                KeyState::Revoked
            } else if row.retired_at.is_some() {
                KeyState::Retired
            } else if current.get(row.algorithm.as_str()).map(|c| &c.kid) == Some(&row.kid) {
                KeyState::Current
            } else {
                KeyState::Next
            };
            (row.kid.clone(), state)
        })
        .collect()
}

/// Key changes take turns, so instances starting at once add one current/next pair and
/// only one key is ever current.
const KEYS_LOCK: &str = "signing-keys";

/// Every key, newest first.
pub fn list(conn: &mut Conn) -> Result<Vec<KeyRow>, StoreError> {
    Ok(signing_keys::table
        .select(columns::<KeyRow>())
        .order((signing_keys::created_at.desc(), signing_keys::kid.desc()))
        .all(conn)?)
}

/// The keys of `algorithm` that may still verify a live token: not revoked, and not
/// retired or retired after `since`.
pub fn usable(conn: &mut Conn, algorithm: &str, since: Millis) -> Result<Vec<KeyRow>, StoreError> {
    Ok(signing_keys::table
        .filter(signing_keys::algorithm.eq(algorithm))
        .filter(signing_keys::revoked_at.is_null())
        .filter(
            signing_keys::retired_at
                .is_null()
                .or(signing_keys::retired_at.gt(since)),
        )
        .select(columns::<KeyRow>())
        .order((signing_keys::created_at.desc(), signing_keys::kid.desc()))
        .all(conn)?)
}

/// The live keys of `algorithm`, oldest (the current one) first.
fn live(conn: &mut Conn, algorithm: &str) -> Result<Vec<KeyRow>, StoreError> {
    Ok(signing_keys::table
        .filter(signing_keys::algorithm.eq(algorithm))
        .filter(signing_keys::retired_at.is_null())
        .filter(signing_keys::revoked_at.is_null())
        .select(columns::<KeyRow>())
        .order((signing_keys::created_at.asc(), signing_keys::kid.asc()))
        .all(conn)?)
}

/// Marks the oldest live key of `algorithm` as signing from `now` if nothing marked it yet.
fn activate_current(conn: &mut Conn, algorithm: &str, now: Millis) -> Result<(), StoreError> {
    if let Some(current) = live(conn, algorithm)?.first() {
        if current.activated_at.is_none() {
            diesel::update(signing_keys::table.find(&current.kid))
                .set(signing_keys::activated_at.eq(now))
                .run(conn)?;
        }
    }
    Ok(())
}

fn key_event(
    conn: &mut Conn,
    now: Millis,
    kind: EventKind,
    actor: &Actor,
    detail: String,
) -> Result<(), StoreError> {
    audit::record(
        conn,
        now,
        Event {
            kind,
            actor,
            subject_user_id: None,
            subject_username: None,
            session_id: None,
            detail: Some(detail),
        },
    )
}

/// Makes sure the algorithm of `fresh` has two live keys — the `current` one (the older,
/// which signs) and the `next` one (published, signing after the next rotation) — adding
/// what is missing from `fresh`. In one write transaction, so instances starting at once
/// add one pair.
pub fn ensure_current_and_next(
    conn: &mut Conn,
    now: Millis,
    fresh: &[KeyRow; 2],
) -> Result<(), StoreError> {
    let algorithm = fresh[0].algorithm.as_str();
    write_tx(conn, |conn| {
        super::hold(conn, KEYS_LOCK)?;
        let have = live(conn, algorithm)?.len();
        let missing: Vec<&KeyRow> = fresh.iter().take(2usize.saturating_sub(have)).collect();
        for key in &missing {
            diesel::insert_into(signing_keys::table)
                .values(*key)
                .run(conn)?;
        }
        if !missing.is_empty() {
            activate_current(conn, algorithm, now)?;
            super::notify(conn, super::Notice::Keys)?;
            let kids: Vec<&str> = missing.iter().map(|k| k.kid.as_str()).collect();
            key_event(
                conn,
                now,
                EventKind::KeyRotated,
                &Actor::default(),
                format!("new {algorithm} signing keys {}", kids.join(", ")),
            )?;
        }
        Ok(())
    })
}

/// A key rotation of one algorithm, as done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    pub algorithm: String,
    /// The key that signs from now on.
    pub current: String,
    pub next: String,
}

/// When a rotation happens: always (`keys rotate`), or only if the current key has been
/// signing since before a moment (the automatic rotation; another instance may have
/// rotated already).
#[derive(Debug, Clone, Copy)]
pub enum When {
    Now,
    SigningSince(Millis),
}

/// A rotation of each algorithm in `new_next` (one new key per algorithm): the current key
/// retires, `next` becomes current and the new key is published as the next one. Returns
/// the rotations done (none for an algorithm that has no current key, or is not due).
pub fn rotate(
    conn: &mut Conn,
    now: Millis,
    new_next: &[KeyRow],
    when: When,
    actor: &Actor,
) -> Result<Vec<Rotated>, StoreError> {
    write_tx(conn, |conn| {
        super::hold(conn, KEYS_LOCK)?;
        let mut done = Vec::new();
        for key in new_next {
            let live = live(conn, &key.algorithm)?;
            let Some(current) = live.first() else {
                continue;
            };
            if let When::SigningSince(before) = when {
                if current.activated_at.unwrap_or(current.created_at) > before {
                    continue;
                }
            }
            diesel::update(signing_keys::table.find(&current.kid))
                .set(signing_keys::retired_at.eq(now))
                .run(conn)?;
            diesel::insert_into(signing_keys::table)
                .values(key)
                .run(conn)?;
            activate_current(conn, &key.algorithm, now)?;
            let signing = self::live(conn, &key.algorithm)?
                .first()
                .map(|k| k.kid.clone())
                .unwrap_or_default();
            let how = match when {
                When::Now => "",
                When::SigningSince(_) => " (automatic)",
            };
            key_event(
                conn,
                now,
                EventKind::KeyRotated,
                actor,
                format!(
                    "{}: retired {}, current {signing}, next {}{how}",
                    key.algorithm, current.kid, key.kid
                ),
            )?;
            done.push(Rotated {
                algorithm: key.algorithm.clone(),
                current: signing,
                next: key.kid.clone(),
            });
        }
        if !done.is_empty() {
            super::notify(conn, super::Notice::Keys)?;
        }
        Ok(done)
    })
}

/// A revocation, as done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub was: KeyState,
    /// The key of its algorithm that signs now.
    pub current: Option<String>,
}

/// Revokes `kid` (a compromised key): it leaves the published set and verifies nothing
/// more. If it was live, `replacement` (a new key of its algorithm) becomes the next key,
/// after the old next key was promoted if `kid` was the current one.
pub fn revoke(
    conn: &mut Conn,
    now: Millis,
    kid: &str,
    replacement: &KeyRow,
    actor: &Actor,
) -> Result<Revoked, StoreError> {
    write_tx(conn, |conn| {
        super::hold(conn, KEYS_LOCK)?;
        let row: KeyRow = signing_keys::table
            .find(kid)
            .select(columns::<KeyRow>())
            .one(conn)?;
        let rows = signing_keys::table
            .filter(signing_keys::algorithm.eq(&row.algorithm))
            .select(columns::<KeyRow>())
            .all(conn)?;
        let was = states(&rows)[kid];
        if was == KeyState::Revoked {
            return Err(StoreError::Conflict(format!(
                "key {kid} is already revoked"
            )));
        }
        if replacement.algorithm != row.algorithm {
            return Err(StoreError::Conflict(format!(
                "the replacement of {kid} must be an {} key",
                row.algorithm
            )));
        }
        diesel::update(signing_keys::table.find(kid))
            .set(signing_keys::revoked_at.eq(now))
            .run(conn)?;
        if row.is_live() {
            diesel::insert_into(signing_keys::table)
                .values(replacement)
                .run(conn)?;
            activate_current(conn, &row.algorithm, now)?;
        }
        let current = live(conn, &row.algorithm)?.first().map(|k| k.kid.clone());
        key_event(
            conn,
            now,
            EventKind::KeyRevoked,
            actor,
            format!(
                "{}: revoked {kid} ({}), current {}",
                row.algorithm,
                was.as_str(),
                current.as_deref().unwrap_or("-")
            ),
        )?;
        super::notify(conn, super::Notice::Keys)?;
        Ok(Revoked { was, current })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kid: &str, algorithm: &str, created_at: Millis) -> KeyRow {
        KeyRow {
            kid: kid.into(),
            algorithm: algorithm.into(),
            private_key: Vec::new(),
            public_key: Vec::new(),
            created_at,
            retired_at: None,
            activated_at: None,
            revoked_at: None,
        }
    }

    #[test]
    fn the_oldest_live_key_of_each_algorithm_is_current() {
        let rows = [
            KeyRow {
                retired_at: Some(Millis(9)),
                ..row("old", "EdDSA", Millis(0))
            },
            KeyRow {
                revoked_at: Some(Millis(9)),
                ..row("bad", "EdDSA", Millis(1))
            },
            row("cur", "EdDSA", Millis(2)),
            row("nxt", "EdDSA", Millis(3)),
            row("ec-cur", "ES256", Millis(5)),
            row("ec-nxt", "ES256", Millis(6)),
        ];
        let states = states(&rows);
        assert_eq!(states["old"], KeyState::Retired);
        assert_eq!(states["bad"], KeyState::Revoked);
        assert_eq!(states["cur"], KeyState::Current);
        assert_eq!(states["nxt"], KeyState::Next);
        assert_eq!(states["ec-cur"], KeyState::Current);
        assert_eq!(states["ec-nxt"], KeyState::Next);
    }
}
