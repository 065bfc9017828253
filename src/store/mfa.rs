//! Second factors in the database: a user's TOTP factor (its sealed secret and the last
//! time step accepted) and recovery codes (HMACs). Sealing and code checks are
//! `crate::mfa`'s; here, the writes that must be exact — a step accepted at most once, a
//! recovery code used at most once — are single conditional updates.

use diesel::prelude::*;

use super::audit::{self, Event, EventKind};
use super::sessions::{RevokeReason, Revoked};
use super::{write_tx, Actor, Statement, StoreError};
use crate::clock::Millis;
use crate::db::Conn;
use crate::domain::UserId;
use crate::schema::{recovery_codes, totp_factors, users};

/// The sealed TOTP secret of a user, if they have a factor.
pub fn sealed_secret(conn: &mut Conn, user_id: UserId) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(totp_factors::table
        .find(user_id)
        .select(totp_factors::secret)
        .one(conn)
        .optional()?)
}

/// The users who have a TOTP factor.
pub fn users_with_factor(conn: &mut Conn) -> Result<Vec<UserId>, StoreError> {
    Ok(totp_factors::table
        .select(totp_factors::user_id)
        .all(conn)?)
}

/// Whether anybody has a TOTP factor.
pub fn any_factor(conn: &mut Conn) -> Result<bool, StoreError> {
    let count: i64 = totp_factors::table.count().one(conn)?;
    Ok(count > 0)
}

/// Unused recovery codes a user has left.
pub fn codes_left(conn: &mut Conn, user_id: UserId) -> Result<i64, StoreError> {
    Ok(recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .one(conn)?)
}

/// Audits `kind` about `user_id`, under their name (so a filter by user finds it).
pub(super) fn record(
    conn: &mut Conn,
    now: Millis,
    kind: EventKind,
    actor: &Actor,
    user_id: UserId,
    detail: Option<String>,
) -> Result<(), StoreError> {
    let username: Option<String> = users::table
        .find(user_id)
        .select(users::username)
        .one(conn)
        .optional()?;
    audit::record(
        conn,
        now,
        Event {
            kind,
            actor,
            subject_user_id: Some(user_id),
            subject_username: username.as_deref(),
            session_id: None,
            detail,
        },
    )
}

fn insert_codes(
    conn: &mut Conn,
    now: Millis,
    user_id: UserId,
    hashes: &[Vec<u8>],
) -> Result<(), StoreError> {
    for hash in hashes {
        diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::user_id.eq(user_id),
                recovery_codes::code_hash.eq(hash),
                recovery_codes::created_at.eq(now),
            ))
            .run(conn)?;
    }
    Ok(())
}

/// Turns TOTP on: the sealed secret, `confirmed_step` (the step of the code that
/// confirmed it, so that code cannot be used again) and a set of recovery codes.
pub fn enable(
    conn: &mut Conn,
    now: Millis,
    user_id: UserId,
    sealed: &[u8],
    confirmed_step: i64,
    code_hashes: &[Vec<u8>],
    actor: &Actor,
) -> Result<(), StoreError> {
    write_tx(conn, |conn| {
        super::hold(conn, &super::user_lock(user_id))?;
        if sealed_secret(conn, user_id)?.is_some() {
            return Err(StoreError::Conflict(
                "two-step sign-in is already on".into(),
            ));
        }
        diesel::insert_into(totp_factors::table)
            .values((
                totp_factors::user_id.eq(user_id),
                totp_factors::secret.eq(sealed),
                totp_factors::created_at.eq(now),
                totp_factors::last_step.eq(confirmed_step),
            ))
            .run(conn)?;
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
            .run(conn)?;
        insert_codes(conn, now, user_id, code_hashes)?;
        record(conn, now, EventKind::MfaEnabled, actor, user_id, None)
    })
}

/// Accepts TOTP time step `step` for a user if no later or equal step was accepted
/// before: each code works once, and never one older than the last.
pub fn accept_step(conn: &mut Conn, user_id: UserId, step: i64) -> Result<bool, StoreError> {
    let updated = diesel::update(
        totp_factors::table
            .filter(totp_factors::user_id.eq(user_id))
            .filter(totp_factors::last_step.lt(step)),
    )
    .set(totp_factors::last_step.eq(step))
    .run(conn)?;
    Ok(updated == 1)
}

/// Uses up the recovery code of this HMAC, if it is the user's and unused; audited.
pub fn use_recovery_code(
    conn: &mut Conn,
    now: Millis,
    user_id: UserId,
    hash: &[u8],
    actor: &Actor,
) -> Result<bool, StoreError> {
    write_tx(conn, |conn| {
        let updated = diesel::update(
            recovery_codes::table
                .filter(recovery_codes::user_id.eq(user_id))
                .filter(recovery_codes::code_hash.eq(hash))
                .filter(recovery_codes::used_at.is_null()),
        )
        .set(recovery_codes::used_at.eq(now))
        .run(conn)?;
        if updated == 1 {
            let left = codes_left(conn, user_id)?;
            record(
                conn,
                now,
                EventKind::RecoveryCodeUsed,
                actor,
                user_id,
                Some(format!("{left} left")),
            )?;
        }
        Ok(updated == 1)
    })
}

/// Replaces a user's recovery codes with a new set.
pub fn replace_codes(
    conn: &mut Conn,
    now: Millis,
    user_id: UserId,
    code_hashes: &[Vec<u8>],
) -> Result<(), StoreError> {
    write_tx(conn, |conn| {
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
            .run(conn)?;
        insert_codes(conn, now, user_id, code_hashes)
    })
}

/// Removes a user's TOTP factor and recovery codes (and, on a reset, passkeys): by the user (`mfa_disabled`), or by
/// an admin (`mfa_reset`, which also revokes the user's sessions). Returns whether there
/// was anything to remove, and the sessions revoked.
pub fn remove(
    conn: &mut Conn,
    now: Millis,
    user_id: UserId,
    reset: bool,
    actor: &Actor,
) -> Result<(bool, Option<Revoked>), StoreError> {
    write_tx(conn, |conn| {
        super::hold(conn, &super::user_lock(user_id))?;
        let factors = diesel::delete(totp_factors::table.find(user_id)).run(conn)?;
        let codes =
            diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id)))
                .run(conn)?;
        // An admin's reset removes every second factor, passkeys too.
        let passkeys = if reset {
            super::passkeys::remove_all_in_tx(conn, user_id)?
        } else {
            0
        };
        let kind = if reset {
            EventKind::MfaReset
        } else {
            EventKind::MfaDisabled
        };
        let revoked = if reset {
            Some(super::sessions::revoke_all_of_user_in_tx(
                conn,
                now,
                user_id,
                None,
                RevokeReason::MfaReset,
                actor,
            )?)
        } else {
            None
        };
        if factors + codes > 0 || reset {
            record(conn, now, kind, actor, user_id, None)?;
        }
        Ok((factors + passkeys > 0, revoked))
    })
}
