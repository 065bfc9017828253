//! Passkeys in the database: each user's registered credentials (webauthn-rs' record of
//! the public key and signature counter, as JSON; nothing secret) and the ceremonies in
//! progress. Verifying a ceremony is `crate::passkeys`'; here, a ceremony's state is
//! taken at most once (a conditional delete), by whichever instance the browser reaches.

use diesel::prelude::*;

use super::audit::{self, Event, EventKind};
use super::{columns, mfa, write_tx, Actor, Statement, StoreError};
use crate::clock::Millis;
use crate::db::Conn;
use crate::domain::{PasskeyId, UserId};
use crate::schema::{passkeys, webauthn_ceremonies};

/// The most passkeys one account may register.
pub const MAX_PER_USER: i64 = 20;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = passkeys, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct PasskeyRow {
    pub id: PasskeyId,
    pub user_id: UserId,
    pub credential_id: Vec<u8>,
    pub name: String,
    /// webauthn-rs' `Passkey`, serialised.
    pub passkey: String,
    pub created_at: Millis,
    pub last_used_at: Option<Millis>,
}

/// A user's passkeys, oldest first.
pub fn of_user(conn: &mut Conn, user_id: UserId) -> Result<Vec<PasskeyRow>, StoreError> {
    Ok(passkeys::table
        .filter(passkeys::user_id.eq(user_id))
        .order(passkeys::id.asc())
        .select(columns::<PasskeyRow>())
        .all(conn)?)
}

/// How many passkeys each user with any has (for the admin's users page).
pub fn counts(conn: &mut Conn) -> Result<Vec<(UserId, i64)>, StoreError> {
    Ok(passkeys::table
        .group_by(passkeys::user_id)
        .select((passkeys::user_id, diesel::dsl::count_star()))
        .all(conn)?)
}

/// The passkey with this credential id, whoever's it is.
pub fn by_credential(
    conn: &mut Conn,
    credential_id: &[u8],
) -> Result<Option<PasskeyRow>, StoreError> {
    Ok(passkeys::table
        .filter(passkeys::credential_id.eq(credential_id))
        .select(columns::<PasskeyRow>())
        .one(conn)
        .optional()?)
}

/// Registers a passkey; audited as `passkey_added`. A credential already registered (to
/// anyone) or an account at [`MAX_PER_USER`] is a conflict.
pub fn add(
    conn: &mut Conn,
    now: Millis,
    user_id: UserId,
    credential_id: &[u8],
    name: &str,
    passkey: &str,
    actor: &Actor,
) -> Result<PasskeyId, StoreError> {
    write_tx(conn, |conn| {
        if by_credential(conn, credential_id)?.is_some() {
            return Err(StoreError::Conflict(
                "this passkey is registered already".into(),
            ));
        }
        let count: i64 = passkeys::table
            .filter(passkeys::user_id.eq(user_id))
            .count()
            .one(conn)?;
        if count >= MAX_PER_USER {
            return Err(StoreError::Conflict(format!(
                "an account may have at most {MAX_PER_USER} passkeys"
            )));
        }
        let id: PasskeyId = diesel::insert_into(passkeys::table)
            .values((
                passkeys::user_id.eq(user_id),
                passkeys::credential_id.eq(credential_id),
                passkeys::name.eq(name),
                passkeys::passkey.eq(passkey),
                passkeys::created_at.eq(now),
            ))
            .returning(passkeys::id)
            .one(conn)?;
        mfa::record(
            conn,
            now,
            EventKind::PasskeyAdded,
            actor,
            user_id,
            Some(name.to_owned()),
        )?;
        Ok(id)
    })
}

/// Removes one of a user's passkeys; audited as `passkey_removed`. Another user's passkey
/// is not found.
pub fn remove(
    conn: &mut Conn,
    now: Millis,
    user_id: UserId,
    id: PasskeyId,
    actor: &Actor,
) -> Result<(), StoreError> {
    write_tx(conn, |conn| {
        let name: Option<String> = passkeys::table
            .filter(passkeys::id.eq(id))
            .filter(passkeys::user_id.eq(user_id))
            .select(passkeys::name)
            .one(conn)
            .optional()?;
        let name = name.ok_or(StoreError::NotFound)?;
        diesel::delete(passkeys::table.filter(passkeys::id.eq(id))).run(conn)?;
        mfa::record(
            conn,
            now,
            EventKind::PasskeyRemoved,
            actor,
            user_id,
            Some(name),
        )
    })
}

/// Removes every passkey of a user (an admin's reset); returns how many there were.
pub fn remove_all_in_tx(conn: &mut Conn, user_id: UserId) -> Result<usize, StoreError> {
    Ok(diesel::delete(passkeys::table.filter(passkeys::user_id.eq(user_id))).run(conn)?)
}

/// After a verified sign-in: when, and the record with its new signature counter. The
/// record is replaced only while it is still the one the answer was verified against, so
/// two sign-ins racing with one passkey cannot move its counter back: the later one gets
/// `false` (as does a passkey removed meanwhile).
pub fn used(
    conn: &mut Conn,
    now: Millis,
    id: PasskeyId,
    verified: &str,
    updated: Option<&str>,
) -> Result<bool, StoreError> {
    let this = passkeys::table.filter(passkeys::id.eq(id));
    let changed = match updated {
        Some(updated) => diesel::update(this.filter(passkeys::passkey.eq(verified)))
            .set((
                passkeys::last_used_at.eq(now),
                passkeys::passkey.eq(updated),
            ))
            .run(conn)?,
        None => diesel::update(this)
            .set(passkeys::last_used_at.eq(now))
            .run(conn)?,
    };
    Ok(changed == 1)
}

/// Audits a refused passkey sign-in (`sign_in_failed`, detail `passkey`), under the
/// account it claimed when there is one.
pub fn refused(
    conn: &mut Conn,
    now: Millis,
    user: Option<(UserId, &str)>,
    actor: &Actor,
) -> Result<(), StoreError> {
    audit::record(
        conn,
        now,
        Event {
            kind: EventKind::SignInFailed,
            actor,
            subject_user_id: user.map(|(id, _)| id),
            subject_username: user.map(|(_, name)| name),
            session_id: None,
            detail: Some("passkey".into()),
        },
    )
}

/// What a ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Register,
    SignIn,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Register => "register",
            Purpose::SignIn => "sign_in",
        }
    }
}

/// A ceremony's stored state.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = webauthn_ceremonies, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct CeremonyRow {
    pub user_id: Option<UserId>,
    pub name: Option<String>,
    pub state: String,
    pub expires_at: Millis,
}

/// The most ceremonies one client IP may have pending (each is a row for five minutes,
/// and starting a sign-in needs no account).
pub const PENDING_PER_IP: i64 = 20;

/// A ceremony to keep until it is finished or expires.
pub struct NewCeremony {
    /// The hash of the browser's ceremony id.
    pub id: Vec<u8>,
    pub purpose: Purpose,
    /// Registration: whose.
    pub user_id: Option<UserId>,
    /// Registration: the new passkey's name.
    pub name: Option<String>,
    /// webauthn-rs' state, serialised.
    pub state: String,
    pub ip: String,
    pub expires_at: Millis,
}

/// Keeps a ceremony's state; drops ceremonies that have expired. False (and nothing
/// kept) when its client IP has [`PENDING_PER_IP`] ceremonies pending already.
pub fn begin(conn: &mut Conn, now: Millis, ceremony: &NewCeremony) -> Result<bool, StoreError> {
    write_tx(conn, |conn| {
        diesel::delete(webauthn_ceremonies::table.filter(webauthn_ceremonies::expires_at.le(now)))
            .run(conn)?;
        let pending: i64 = webauthn_ceremonies::table
            .filter(webauthn_ceremonies::ip.eq(&ceremony.ip))
            .count()
            .one(conn)?;
        if pending >= PENDING_PER_IP {
            return Ok(false);
        }
        diesel::insert_into(webauthn_ceremonies::table)
            .values((
                webauthn_ceremonies::id.eq(&ceremony.id),
                webauthn_ceremonies::purpose.eq(ceremony.purpose.as_str()),
                webauthn_ceremonies::user_id.eq(ceremony.user_id),
                webauthn_ceremonies::name.eq(&ceremony.name),
                webauthn_ceremonies::state.eq(&ceremony.state),
                webauthn_ceremonies::ip.eq(&ceremony.ip),
                webauthn_ceremonies::expires_at.eq(ceremony.expires_at),
            ))
            .run(conn)?;
        Ok(true)
    })
}

/// Takes a ceremony's state, once: the first caller gets it (if it has not expired),
/// every later one nothing.
pub fn take(
    conn: &mut Conn,
    now: Millis,
    id: &[u8],
    purpose: Purpose,
) -> Result<Option<CeremonyRow>, StoreError> {
    write_tx(conn, |conn| {
        let row: Option<CeremonyRow> = webauthn_ceremonies::table
            .filter(webauthn_ceremonies::id.eq(id))
            .filter(webauthn_ceremonies::purpose.eq(purpose.as_str()))
            .select(columns::<CeremonyRow>())
            .one(conn)
            .optional()?;
        let Some(row) = row else { return Ok(None) };
        let deleted =
            diesel::delete(webauthn_ceremonies::table.filter(webauthn_ceremonies::id.eq(id)))
                .run(conn)?;
        Ok((deleted == 1 && row.expires_at > now).then_some(row))
    })
}
