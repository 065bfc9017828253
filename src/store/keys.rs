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
}

impl std::fmt::Debug for KeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRow")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// Key changes take turns, so instances starting at once add one current/next pair and
/// only one key is ever current.
const KEYS_LOCK: &str = "signing-keys";

pub fn list(conn: &mut Conn) -> Result<Vec<KeyRow>, StoreError> {
    Ok(signing_keys::table
        .select(columns::<KeyRow>())
        .order((signing_keys::created_at.desc(), signing_keys::kid.desc()))
        .all(conn)?)
}

/// Keys that may still verify a live token: not retired, or retired after `since`.
/// Newest first, so the first is the active signing key.
pub fn usable(conn: &mut Conn, since: Millis) -> Result<Vec<KeyRow>, StoreError> {
    Ok(signing_keys::table
        .filter(
            signing_keys::retired_at
                .is_null()
                .or(signing_keys::retired_at.gt(since)),
        )
        .select(columns::<KeyRow>())
        .order((
            signing_keys::retired_at.is_not_null(),
            signing_keys::created_at.desc(),
            signing_keys::kid.desc(),
        ))
        .all(conn)?)
}

/// Makes sure two keys are unretired — the `current` one (the older, which signs) and the
/// `next` one (published, signing after the next rotation) — adding what is missing from
/// `fresh`. In one write transaction, so instances starting at once add one pair.
pub fn ensure_current_and_next(
    conn: &mut Conn,
    now: Millis,
    fresh: &[KeyRow; 2],
) -> Result<(), StoreError> {
    write_tx(conn, |conn| {
        super::hold(conn, KEYS_LOCK)?;
        let unretired: i64 = signing_keys::table
            .filter(signing_keys::retired_at.is_null())
            .count()
            .one(conn)?;
        let missing: Vec<&KeyRow> = fresh
            .iter()
            .take(2usize.saturating_sub(unretired as usize))
            .collect();
        for key in &missing {
            diesel::insert_into(signing_keys::table)
                .values(*key)
                .run(conn)?;
        }
        if !missing.is_empty() {
            super::notify(conn, super::Notice::Keys)?;
            let kids: Vec<&str> = missing.iter().map(|k| k.kid.as_str()).collect();
            audit::record(
                conn,
                now,
                Event {
                    kind: EventKind::KeyRotated,
                    actor: &Actor::default(),
                    subject_user_id: None,
                    subject_username: None,
                    session_id: None,
                    detail: Some(format!("new signing keys {}", kids.join(", "))),
                },
            )?;
        }
        Ok(())
    })
}

/// A rotation: the current key (the oldest unretired) retires, so `next` becomes current,
/// and `new_next` is published as the next one. Returns the kid that signs from now on.
pub fn rotate(
    conn: &mut Conn,
    now: Millis,
    new_next: &KeyRow,
    actor: &Actor,
) -> Result<Option<String>, StoreError> {
    write_tx(conn, |conn| {
        super::hold(conn, KEYS_LOCK)?;
        let unretired: Vec<String> = signing_keys::table
            .filter(signing_keys::retired_at.is_null())
            .order((signing_keys::created_at.asc(), signing_keys::kid.asc()))
            .select(signing_keys::kid)
            .all(conn)?;
        if unretired.len() >= 2 {
            diesel::update(signing_keys::table.find(&unretired[0]))
                .set(signing_keys::retired_at.eq(now))
                .run(conn)?;
        }
        diesel::insert_into(signing_keys::table)
            .values(new_next)
            .run(conn)?;
        super::notify(conn, super::Notice::Keys)?;
        let current = if unretired.len() >= 2 {
            unretired.get(1).cloned()
        } else {
            unretired.first().cloned()
        };
        audit::record(
            conn,
            now,
            Event {
                kind: EventKind::KeyRotated,
                actor,
                subject_user_id: None,
                subject_username: None,
                session_id: None,
                detail: Some(format!(
                    "current {}, next {}",
                    current.as_deref().unwrap_or("-"),
                    new_next.kid
                )),
            },
        )?;
        Ok(current)
    })
}
