use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::audit::{self, Event, EventKind};
pub use super::rows::UserRow;
use super::sessions::{RevokeReason, Revoked};
use super::{columns, sessions, user_lock, write_tx, Actor, Statement, StoreError};
use crate::clock::Millis;
use crate::db::Conn;
use crate::domain::{Role, SessionId, UserId, Username};
use crate::schema::users;

pub fn find_by_name(conn: &mut Conn, name: &Username) -> Result<Option<UserRow>, StoreError> {
    Ok(users::table
        .filter(users::username.eq(name.as_str()))
        .select(columns::<UserRow>())
        .one(conn)
        .optional()?)
}

pub fn find_by_id(conn: &mut Conn, id: UserId) -> Result<UserRow, StoreError> {
    Ok(users::table
        .find(id)
        .select(columns::<UserRow>())
        .one(conn)?)
}

pub fn list(conn: &mut Conn) -> Result<Vec<UserRow>, StoreError> {
    Ok(users::table
        .select(columns::<UserRow>())
        .order(users::id.asc())
        .all(conn)?)
}

pub fn create(
    conn: &mut Conn,
    now: Millis,
    name: &Username,
    password_hash: &str,
    role: Role,
    actor: &Actor,
) -> Result<UserRow, StoreError> {
    write_tx(conn, |conn| {
        let row: UserRow = diesel::insert_into(users::table)
            .values((
                users::username.eq(name.as_str()),
                users::password_hash.eq(password_hash),
                users::role.eq(role),
                users::disabled.eq(false),
                users::created_at.eq(now),
            ))
            .returning(columns::<UserRow>())
            .one(conn)
            .map_err(|e| match e {
                DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => {
                    StoreError::Conflict(format!("the user '{name}' already exists"))
                }
                other => other.into(),
            })?;
        audit::record(
            conn,
            now,
            Event {
                kind: EventKind::UserCreated,
                actor,
                subject_user_id: Some(row.id),
                subject_username: Some(&row.username),
                session_id: None,
                detail: Some(format!("role {role}")),
            },
        )?;
        Ok(row)
    })
}

/// When an admin (not the CLI) makes a change that takes admin rights away: re-checked
/// inside the change's transaction, so two admins demoting each other at once cannot
/// both succeed. The acting admin must still be an enabled admin, and one enabled admin
/// must remain. The CLI, the operator's way back in, is not held to the second rule.
/// Role and account changes take turns on one lock (whether an enabled admin remains is
/// a question about every admin row), then on the user's own (see `sessions::start`).
fn hold_for_change(conn: &mut Conn, id: UserId) -> Result<(), StoreError> {
    super::hold(conn, "admins")?;
    super::hold(conn, &user_lock(id))
}

fn check_admin_change(conn: &mut Conn, actor: &Actor) -> Result<(), StoreError> {
    let Some(acting) = actor.user_id else {
        return Ok(());
    };
    let me = find_by_id(conn, acting)?;
    if me.disabled || me.role != Role::Admin {
        return Err(StoreError::Conflict(
            "your account is no longer an enabled admin".into(),
        ));
    }
    Ok(())
}

fn check_an_admin_remains(conn: &mut Conn, actor: &Actor) -> Result<(), StoreError> {
    if actor.user_id.is_none() {
        return Ok(());
    }
    let admins: i64 = users::table
        .filter(users::role.eq(Role::Admin))
        .filter(users::disabled.eq(false))
        .count()
        .one(conn)?;
    if admins == 0 {
        return Err(StoreError::Conflict(
            "that would leave no enabled admin; promote another admin first".into(),
        ));
    }
    Ok(())
}

/// A demotion from admin revokes every session of the user, so the admin rights in their
/// access tokens end at once. Returns the user and the sessions revoked.
pub fn set_role(
    conn: &mut Conn,
    now: Millis,
    id: UserId,
    role: Role,
    actor: &Actor,
) -> Result<(UserRow, Option<Revoked>), StoreError> {
    write_tx(conn, |conn| {
        hold_for_change(conn, id)?;
        check_admin_change(conn, actor)?;
        let before = find_by_id(conn, id)?;
        let row: UserRow = diesel::update(users::table.find(id))
            .set(users::role.eq(role))
            .returning(columns::<UserRow>())
            .one(conn)?;
        check_an_admin_remains(conn, actor)?;
        if before.role != row.role {
            audit::record(
                conn,
                now,
                Event {
                    kind: EventKind::RoleChanged,
                    actor,
                    subject_user_id: Some(id),
                    subject_username: Some(&row.username),
                    session_id: None,
                    detail: Some(format!("{} -> {}", before.role, row.role)),
                },
            )?;
        }
        let revoked = if before.role == Role::Admin && role != Role::Admin {
            Some(sessions::revoke_all_of_user_in_tx(
                conn,
                now,
                id,
                None,
                RevokeReason::RoleChanged,
                actor,
            )?)
        } else {
            None
        };
        Ok((row, revoked))
    })
}

/// Disabling revokes every session of the user; enabling does not bring them back.
pub fn set_disabled(
    conn: &mut Conn,
    now: Millis,
    id: UserId,
    disabled: bool,
    actor: &Actor,
) -> Result<(UserRow, Option<Revoked>), StoreError> {
    write_tx(conn, |conn| {
        hold_for_change(conn, id)?;
        check_admin_change(conn, actor)?;
        let before = find_by_id(conn, id)?;
        let row: UserRow = diesel::update(users::table.find(id))
            .set(users::disabled.eq(disabled))
            .returning(columns::<UserRow>())
            .one(conn)?;
        check_an_admin_remains(conn, actor)?;
        let revoked = if disabled {
            Some(sessions::revoke_all_of_user_in_tx(
                conn,
                now,
                id,
                None,
                RevokeReason::UserDisabled,
                actor,
            )?)
        } else {
            None
        };
        if before.disabled != disabled {
            audit::record(
                conn,
                now,
                Event {
                    kind: if disabled {
                        EventKind::UserDisabled
                    } else {
                        EventKind::UserEnabled
                    },
                    actor,
                    subject_user_id: Some(id),
                    subject_username: Some(&row.username),
                    session_id: None,
                    detail: None,
                },
            )?;
        }
        Ok((row, revoked))
    })
}

/// Deletes a user: revokes every session first (so running servers refuse their access
/// tokens; the revocation log outlives the rows), then the user and, by cascade, their
/// sessions and refresh tokens. The audit log keeps its rows.
pub fn delete(
    conn: &mut Conn,
    now: Millis,
    id: UserId,
    actor: &Actor,
) -> Result<Revoked, StoreError> {
    write_tx(conn, |conn| {
        hold_for_change(conn, id)?;
        let row = find_by_id(conn, id)?;
        let revoked = sessions::revoke_all_of_user_in_tx(
            conn,
            now,
            id,
            None,
            RevokeReason::UserDeleted,
            actor,
        )?;
        audit::record(
            conn,
            now,
            Event {
                kind: EventKind::UserDeleted,
                actor,
                subject_user_id: Some(id),
                subject_username: Some(&row.username),
                session_id: None,
                detail: None,
            },
        )?;
        diesel::delete(users::table.find(id)).run(conn)?;
        Ok(revoked)
    })
}

/// Sets a new password hash and revokes the user's sessions except `keep` (the session
/// that changed its own password, if any).
pub fn set_password(
    conn: &mut Conn,
    now: Millis,
    id: UserId,
    password_hash: &str,
    keep: Option<SessionId>,
    actor: &Actor,
) -> Result<(UserRow, Revoked), StoreError> {
    write_tx(conn, |conn| {
        super::hold(conn, &user_lock(id))?;
        let row: UserRow = diesel::update(users::table.find(id))
            .set(users::password_hash.eq(password_hash))
            .returning(columns::<UserRow>())
            .one(conn)?;
        let revoked = sessions::revoke_all_of_user_in_tx(
            conn,
            now,
            id,
            keep,
            RevokeReason::PasswordChanged,
            actor,
        )?;
        audit::record(
            conn,
            now,
            Event {
                kind: EventKind::PasswordChanged,
                actor,
                subject_user_id: Some(id),
                subject_username: Some(&row.username),
                session_id: None,
                detail: None,
            },
        )?;
        Ok((row, revoked))
    })
}

/// The names of the given users (for showing who did what in the audit log).
pub fn names_by_ids(conn: &mut Conn, ids: &[UserId]) -> Result<Vec<(UserId, String)>, StoreError> {
    Ok(users::table
        .filter(users::id.eq_any(ids))
        .select((users::id, users::username))
        .all(conn)?)
}
