use diesel::prelude::*;

use super::audit::{self, Event, EventKind};
use super::{write_tx, Actor, StoreError};
use crate::clock::Millis;
use crate::db::Conn;
use crate::schema::signing_keys;

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys, check_for_backend(diesel::sqlite::Sqlite))]
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

pub fn list(conn: &mut Conn) -> Result<Vec<KeyRow>, StoreError> {
    Ok(signing_keys::table
        .select(KeyRow::as_select())
        .order((signing_keys::created_at.desc(), signing_keys::kid.desc()))
        .load(conn)?)
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
        .select(KeyRow::as_select())
        .order((
            signing_keys::retired_at.is_not_null(),
            signing_keys::created_at.desc(),
            signing_keys::kid.desc(),
        ))
        .load(conn)?)
}

/// Inserts `key` as the active key; with `retire_others`, every other active key retires now.
pub fn insert_active(
    conn: &mut Conn,
    now: Millis,
    key: &KeyRow,
    retire_others: bool,
    actor: &Actor,
) -> Result<(), StoreError> {
    write_tx(conn, |conn| {
        if !retire_others
            && signing_keys::table
                .filter(signing_keys::retired_at.is_null())
                .count()
                .get_result::<i64>(conn)?
                > 0
        {
            // Another process made the first key meanwhile: keep theirs.
            return Ok(());
        }
        diesel::update(signing_keys::table.filter(signing_keys::retired_at.is_null()))
            .set(signing_keys::retired_at.eq(now))
            .execute(conn)?;
        diesel::insert_into(signing_keys::table)
            .values(key)
            .execute(conn)?;
        audit::record(
            conn,
            now,
            Event {
                kind: EventKind::KeyRotated,
                actor,
                subject_user_id: None,
                subject_username: None,
                session_id: None,
                detail: Some(format!("new signing key {}", key.kid)),
            },
        )
    })
}
