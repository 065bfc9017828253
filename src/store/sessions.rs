//! Sessions and their refresh tokens. A session is one sign-in; each refresh token
//! belongs to a session, and revoking the session stops every token of it.

use std::time::Duration;

use diesel::prelude::*;

use super::audit::{self, Event, EventKind};
use super::rows::UserRow;
use super::{columns, user_lock, write_tx, Actor, Prepared, Statement, StoreError};
use crate::client::Client;
use crate::clock::Millis;
use crate::db::Conn;
use crate::domain::{SessionId, UserId};
use crate::schema::{refresh_tokens, revocation_counter, revocations, sessions, users};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = sessions, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct SessionRow {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: Millis,
    pub last_used_at: Millis,
    pub expires_at: Millis,
    pub absolute_expires_at: Millis,
    pub ip: String,
    pub user_agent: String,
    pub revoked_at: Option<Millis>,
    pub revoked_reason: Option<String>,
    /// How it signed in: RFC 8176 methods, comma-separated (`pwd`, `pwd,otp`).
    pub amr: String,
}

/// A session with its owner's name, as lists show it.
#[derive(Debug, Clone)]
pub struct SessionWithUser {
    pub session: SessionRow,
    pub username: String,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = refresh_tokens, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
struct RefreshRow {
    id: i64,
    session_id: SessionId,
    expires_at: Millis,
    rotated_at: Option<Millis>,
}

/// Lifetimes that shape a session.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub refresh_ttl: Duration,
    pub session_max: Duration,
    pub reuse_grace: Duration,
}

/// The most sessions a user's own list shows, on the API and the dashboard alike (the
/// rest stay revocable: by id, or with "everywhere else").
pub const OWN_SESSIONS_LIMIT: i64 = 500;

/// The user row a sign-in's password was verified against.
#[derive(Debug, Clone, Copy)]
pub struct Verified<'a> {
    pub user_id: UserId,
    /// The stored hash the password was checked against.
    pub password_hash: &'a str,
    /// How: RFC 8176 methods, comma-separated (the session's `amr`).
    pub amr: &'a str,
}

/// A sign-in with the password alone.
impl<'a> From<&'a UserRow> for Verified<'a> {
    fn from(user: &'a UserRow) -> Self {
        Verified {
            user_id: user.id,
            password_hash: &user.password_hash,
            amr: "pwd",
        }
    }
}

/// Starts a session with its first refresh token and records the sign-in — if the user
/// row still is what the password was checked against: not disabled, the same password
/// hash. Read in the same transaction that inserts the session, so a `user disable` or
/// `user passwd` either commits first (and no session starts: `None`) or after (and
/// revokes this one). The role and name come from that read.
pub fn start(
    conn: &mut Conn,
    now: Millis,
    verified: Verified<'_>,
    client: &Client,
    token_hash: &[u8],
    life: Lifetimes,
) -> Result<Option<(SessionRow, UserRow)>, StoreError> {
    let absolute = now + life.session_max;
    let expires = (now + life.refresh_ttl).min(absolute);
    write_tx(conn, |conn| {
        super::hold(conn, &user_lock(verified.user_id))?;
        let user = users::table
            .find(verified.user_id)
            .select(columns::<UserRow>())
            .one::<UserRow>(conn)
            .optional()?;
        let Some(user) = user.filter(|u| !u.disabled && u.password_hash == verified.password_hash)
        else {
            return Ok(None);
        };
        let session: SessionRow = Prepared(
            diesel::insert_into(sessions::table)
                .values((
                    sessions::user_id.eq(user.id),
                    sessions::created_at.eq(now),
                    sessions::last_used_at.eq(now),
                    sessions::expires_at.eq(expires),
                    sessions::absolute_expires_at.eq(absolute),
                    sessions::ip.eq(&client.ip),
                    sessions::user_agent.eq(&client.user_agent),
                    sessions::amr.eq(verified.amr),
                ))
                .returning(columns::<SessionRow>()),
        )
        .one(conn)?;
        insert_token(conn, session.id, token_hash, now, expires)?;
        let actor = Actor::of(Some(user.id), client);
        audit::record(
            conn,
            now,
            Event {
                kind: EventKind::SignInSucceeded,
                actor: &actor,
                subject_user_id: Some(user.id),
                subject_username: Some(&user.username),
                session_id: Some(session.id),
                // A passkey sign-in says so (RFC 8176 `hwk`: a proof of a hardware key).
                detail: verified
                    .amr
                    .split(',')
                    .any(|method| method == "hwk")
                    .then(|| "passkey".to_owned()),
            },
        )?;
        Ok(Some((session, user)))
    })
}

fn insert_token(
    conn: &mut Conn,
    session_id: SessionId,
    hash: &[u8],
    now: Millis,
    expires: Millis,
) -> Result<(), StoreError> {
    Prepared(
        diesel::insert_into(refresh_tokens::table)
            .values((
                refresh_tokens::session_id.eq(session_id),
                refresh_tokens::token_hash.eq(hash),
                refresh_tokens::created_at.eq(now),
                refresh_tokens::expires_at.eq(expires),
            ))
            .returning(refresh_tokens::id),
    )
    .one::<i64>(conn)?;
    Ok(())
}

/// Why a session was revoked: stored in `sessions.revoked_reason`, shown in the audit
/// log, and a label of the revocation metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    SignedOut,
    SignedOutByUser,
    RevokedByAdmin,
    RefreshTokenReused,
    RoleChanged,
    UserDisabled,
    UserDeleted,
    PasswordChanged,
    MfaReset,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::SignedOut => "signed_out",
            RevokeReason::SignedOutByUser => "signed_out_by_user",
            RevokeReason::RevokedByAdmin => "revoked_by_admin",
            RevokeReason::RefreshTokenReused => "refresh_token_reused",
            RevokeReason::RoleChanged => "role_changed",
            RevokeReason::UserDisabled => "user_disabled",
            RevokeReason::UserDeleted => "user_deleted",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::MfaReset => "mfa_reset",
        }
    }
}

/// Sessions a change revoked, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    pub reason: RevokeReason,
    pub sessions: usize,
}

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum Rotation {
    /// A new token (`new_hash`) now belongs to the session; it expires at `expires_at`.
    Rotated {
        session: Box<SessionRow>,
        user: Box<UserRow>,
        expires_at: Millis,
        /// A repeat within the reuse grace, answered with the successor already issued.
        repeat: bool,
    },
    /// Unknown, expired, or its session is revoked, expired or its user disabled.
    Refused,
    /// An already-rotated token came back after the grace: the session is now revoked.
    ReuseDetected { session_id: SessionId },
}

/// Whether a refresh token of this hash exists at all: a read that answers unknown
/// tokens without queueing a write.
pub fn token_exists(conn: &mut Conn, hash: &[u8]) -> Result<bool, StoreError> {
    Ok(refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(hash))
        .select(refresh_tokens::id)
        .one::<i64>(conn)
        .optional()?
        .is_some())
}

/// Exchanges the token hashed as `presented` for its successor, hashed as `successor`
/// (see `tokens::refresh`), in one write transaction. A token rotated less than
/// `reuse_grace` ago may be presented again (racing tabs): it gets the same successor,
/// which already exists, so a repeat never starts a chain of its own.
pub fn rotate(
    conn: &mut Conn,
    now: Millis,
    presented: &[u8],
    successor: &[u8],
    client: &Client,
    life: Lifetimes,
) -> Result<Rotation, StoreError> {
    write_tx(conn, |conn| {
        let find = |conn: &mut Conn| {
            refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq(presented))
                .select(columns::<RefreshRow>())
                .one::<RefreshRow>(conn)
                .optional()
        };
        let Some(token) = find(conn)? else {
            return Ok(Rotation::Refused);
        };
        // Presenters of tokens of one session, and revocations of it, take turns; what
        // is read from here on is what those before committed.
        super::hold(conn, &session_lock(token.session_id))?;
        let token = if conn.is_postgres() {
            find(conn)?
        } else {
            Some(token)
        };
        let Some(token) = token else {
            return Ok(Rotation::Refused);
        };
        let (session, user) = sessions::table
            .inner_join(users::table)
            .filter(sessions::id.eq(token.session_id))
            .select((columns::<SessionRow>(), columns::<UserRow>()))
            .one::<(SessionRow, UserRow)>(conn)?;
        if session.revoked_at.is_some() || session.absolute_expires_at <= now || user.disabled {
            return Ok(Rotation::Refused);
        }
        match token.rotated_at {
            None if token.expires_at <= now => return Ok(Rotation::Refused),
            None => {
                Prepared(
                    diesel::update(refresh_tokens::table.find(token.id))
                        .set(refresh_tokens::rotated_at.eq(now))
                        .returning(refresh_tokens::id),
                )
                .one::<i64>(conn)?;
            }
            // `now` may be before `rotated` (another instance's clock, or a retried
            // transaction's earlier stamp): still "at once", and never inside a 0s grace.
            Some(rotated)
                if !life.reuse_grace.is_zero() && now.since(rotated) < life.reuse_grace =>
            {
                let issued: Option<(SessionId, Millis)> = refresh_tokens::table
                    .filter(refresh_tokens::token_hash.eq(successor))
                    .select((refresh_tokens::session_id, refresh_tokens::expires_at))
                    .one(conn)
                    .optional()?;
                let Some((_, expires_at)) = issued.filter(|(sid, _)| *sid == session.id) else {
                    return Ok(Rotation::Refused);
                };
                let session = touch(
                    conn,
                    now,
                    session.id,
                    expires_at.max(session.expires_at),
                    client,
                )?;
                return Ok(Rotation::Rotated {
                    session: Box::new(session),
                    user: Box::new(user),
                    expires_at,
                    repeat: true,
                });
            }
            Some(_) => {
                let actor = Actor::of(None, client);
                audit::record(
                    conn,
                    now,
                    Event {
                        kind: EventKind::RefreshReuse,
                        actor: &actor,
                        subject_user_id: Some(user.id),
                        subject_username: Some(&user.username),
                        session_id: Some(session.id),
                        detail: None,
                    },
                )?;
                revoke_in_tx(
                    conn,
                    now,
                    &session,
                    &user.username,
                    RevokeReason::RefreshTokenReused,
                    &actor,
                )?;
                return Ok(Rotation::ReuseDetected {
                    session_id: session.id,
                });
            }
        }
        let expires_at = (now + life.refresh_ttl).min(session.absolute_expires_at);
        insert_token(conn, session.id, successor, now, expires_at)?;
        let session = touch(conn, now, session.id, expires_at, client)?;
        Ok(Rotation::Rotated {
            session: Box::new(session),
            user: Box::new(user),
            expires_at,
            repeat: false,
        })
    })
}

/// The lock rotations and revocations of session `id` take turns on (see `store::hold`).
fn session_lock(id: SessionId) -> String {
    format!("session:{id}")
}

/// Records a use of the session: when, from where, and its new idle expiry.
fn touch(
    conn: &mut Conn,
    now: Millis,
    id: SessionId,
    expires_at: Millis,
    client: &Client,
) -> Result<SessionRow, StoreError> {
    Ok(Prepared(
        diesel::update(sessions::table.find(id))
            .set((
                sessions::last_used_at.eq(now),
                sessions::expires_at.eq(expires_at),
                sessions::ip.eq(&client.ip),
                sessions::user_agent.eq(&client.user_agent),
            ))
            .returning(columns::<SessionRow>()),
    )
    .one(conn)?)
}

/// The session a refresh token belongs to, if the token is known (used by sign-out).
pub fn find_by_token(conn: &mut Conn, hash: &[u8]) -> Result<Option<SessionRow>, StoreError> {
    Ok(refresh_tokens::table
        .inner_join(sessions::table)
        .filter(refresh_tokens::token_hash.eq(hash))
        .select(columns::<SessionRow>())
        .one(conn)
        .optional()?)
}

pub fn find(conn: &mut Conn, id: SessionId) -> Result<SessionWithUser, StoreError> {
    let (session, username) = sessions::table
        .inner_join(users::table)
        .filter(sessions::id.eq(id))
        .select((columns::<SessionRow>(), users::username))
        .one::<(SessionRow, String)>(conn)?;
    Ok(SessionWithUser { session, username })
}

/// Active sessions, newest first, `limit` at most, after the keyset cursor `before_id`.
/// `user_id` narrows to one user.
pub fn list_active(
    conn: &mut Conn,
    now: Millis,
    user_id: Option<UserId>,
    before_id: Option<SessionId>,
    limit: i64,
) -> Result<Vec<SessionWithUser>, StoreError> {
    let rows: Vec<(SessionRow, String)> = crate::on_backend!(conn, |c| {
        let mut query = sessions::table
            .inner_join(users::table)
            .filter(sessions::revoked_at.is_null())
            .filter(sessions::expires_at.gt(now))
            .select((columns::<SessionRow>(), users::username))
            .order(sessions::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(user_id) = user_id {
            query = query.filter(sessions::user_id.eq(user_id));
        }
        if let Some(before) = before_id {
            query = query.filter(sessions::id.lt(before));
        }
        query.load(c)
    })?;
    Ok(rows
        .into_iter()
        .map(|(session, username)| SessionWithUser { session, username })
        .collect())
}

/// How many active sessions each user has (users without any are absent).
pub fn count_active_by_user(
    conn: &mut Conn,
    now: Millis,
) -> Result<Vec<(UserId, i64)>, StoreError> {
    Ok(sessions::table
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .group_by(sessions::user_id)
        .select((sessions::user_id, diesel::dsl::count_star()))
        .all(conn)?)
}

/// Revokes session `id`; with `owner`, only if that user owns it (otherwise `NotFound`,
/// so nobody learns that another user's session exists). Revoking twice is not an error.
pub fn revoke(
    conn: &mut Conn,
    now: Millis,
    id: SessionId,
    owner: Option<UserId>,
    reason: RevokeReason,
    actor: &Actor,
) -> Result<(SessionRow, Revoked), StoreError> {
    write_tx(conn, |conn| {
        let found = find(conn, id)?;
        if owner.is_some_and(|owner| owner != found.session.user_id) {
            return Err(StoreError::NotFound);
        }
        let changed = revoke_in_tx(conn, now, &found.session, &found.username, reason, actor)?;
        let revoked = Revoked {
            reason,
            sessions: usize::from(changed),
        };
        Ok((found.session, revoked))
    })
}

fn revoke_in_tx(
    conn: &mut Conn,
    now: Millis,
    session: &SessionRow,
    username: &str,
    reason: RevokeReason,
    actor: &Actor,
) -> Result<bool, StoreError> {
    if session.revoked_at.is_some() {
        return Ok(false);
    }
    super::hold(conn, &session_lock(session.id))?;
    let seq = next_revocation_seq(conn)?;
    let changed = diesel::update(
        sessions::table
            .find(session.id)
            .filter(sessions::revoked_at.is_null()),
    )
    .set((
        sessions::revoked_at.eq(now),
        sessions::revoked_reason.eq(reason.as_str()),
    ))
    .run(conn)?;
    if changed > 0 {
        diesel::insert_into(revocations::table)
            .values((
                revocations::seq.eq(seq),
                revocations::session_id.eq(session.id),
                revocations::revoked_at.eq(now),
            ))
            .run(conn)?;
        super::notify(conn, super::Notice::Revocation)?;
    }
    if changed > 0 {
        audit::record(
            conn,
            now,
            Event {
                kind: EventKind::SessionRevoked,
                actor,
                subject_user_id: Some(session.user_id),
                subject_username: Some(username),
                session_id: Some(session.id),
                detail: Some(reason.as_str().to_owned()),
            },
        )?;
    }
    Ok(changed > 0)
}

/// Revokes every live session of a user but `except`.
pub fn revoke_all_of_user(
    conn: &mut Conn,
    now: Millis,
    user_id: UserId,
    except: Option<SessionId>,
    reason: RevokeReason,
    actor: &Actor,
) -> Result<Revoked, StoreError> {
    write_tx(conn, |conn| {
        revoke_all_of_user_in_tx(conn, now, user_id, except, reason, actor)
    })
}

pub(super) fn revoke_all_of_user_in_tx(
    conn: &mut Conn,
    now: Millis,
    user_id: UserId,
    except: Option<SessionId>,
    reason: RevokeReason,
    actor: &Actor,
) -> Result<Revoked, StoreError> {
    let live: Vec<(SessionRow, String)> = sessions::table
        .inner_join(users::table)
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::id.ne(except.unwrap_or(SessionId(0))))
        .select((columns::<SessionRow>(), users::username))
        .all(conn)?;
    let mut sessions = 0;
    for (session, username) in &live {
        sessions += usize::from(revoke_in_tx(conn, now, session, username, reason, actor)?);
    }
    Ok(Revoked { reason, sessions })
}

/// The next revocation number. The counter row stays locked by this transaction until
/// it commits, so numbers become visible in the order they were taken.
fn next_revocation_seq(conn: &mut Conn) -> Result<i64, StoreError> {
    Ok(diesel::update(revocation_counter::table.find(1))
        .set(revocation_counter::value.eq(revocation_counter::value + 1))
        .returning(revocation_counter::value)
        .one(conn)?)
}

/// Sessions revoked since a sync, and the number of the latest revocation they cover.
#[derive(Debug, Clone, Default)]
pub struct Revocations {
    pub sessions: Vec<SessionId>,
    pub up_to: i64,
}

/// What the revocation set asks for: the revocations numbered above `after`; or, for a
/// set's first sync (`None`), every session revoked since `since` (by the revoking
/// writer's clock) and the number of the latest revocation.
pub fn revocations(
    conn: &mut Conn,
    after: Option<i64>,
    since: Millis,
) -> Result<Revocations, StoreError> {
    Ok(match after {
        Some(after) => {
            let rows = revoked_after(conn, after)?;
            let up_to = rows.iter().map(|(_, seq)| *seq).max().unwrap_or(after);
            Revocations {
                sessions: rows.into_iter().map(|(id, _)| id).collect(),
                up_to,
            }
        }
        None => {
            // The number first: a revocation committed between the two reads has a
            // higher one and comes with the next sync.
            let up_to = last_revocation_seq(conn)?;
            let rows = revoked_since(conn, since)?;
            Revocations {
                sessions: rows.into_iter().map(|(id, _)| id).collect(),
                up_to,
            }
        }
    })
}

/// The number of the latest committed revocation.
pub fn last_revocation_seq(conn: &mut Conn) -> Result<i64, StoreError> {
    Ok(revocation_counter::table
        .find(1)
        .select(revocation_counter::value)
        .one(conn)?)
}

/// Sessions revoked with a number above `after`, with their numbers: what the
/// revocation set polls for, independent of every writer's clock.
pub fn revoked_after(conn: &mut Conn, after: i64) -> Result<Vec<(SessionId, i64)>, StoreError> {
    Ok(revocations::table
        .filter(revocations::seq.gt(after))
        .select((revocations::session_id, revocations::seq))
        .all(conn)?)
}

/// Sessions revoked at or after `since` (by the revoking writer's clock), for filling
/// the revocation set at start-up.
pub fn revoked_since(
    conn: &mut Conn,
    since: Millis,
) -> Result<Vec<(SessionId, Millis)>, StoreError> {
    let logged: Vec<(SessionId, Millis)> = revocations::table
        .filter(revocations::revoked_at.ge(since))
        .select((revocations::session_id, revocations::revoked_at))
        .all(conn)?;
    let mut rows = revoked_sessions_since(conn, since)?;
    rows.extend(logged);
    Ok(rows)
}

/// Sessions whose row says they were revoked at or after `since` (also those revoked
/// before the revocation log existed).
fn revoked_sessions_since(
    conn: &mut Conn,
    since: Millis,
) -> Result<Vec<(SessionId, Millis)>, StoreError> {
    let rows: Vec<(SessionId, Option<Millis>)> = sessions::table
        .filter(sessions::revoked_at.ge(since))
        .select((sessions::id, sessions::revoked_at))
        .all(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, at)| at.map(|at| (id, at)))
        .collect())
}

/// Housekeeping: deletes up to `limit` refresh tokens that expired before `before`.
/// Rotated ones go too: a stolen token that has expired is refused as unknown instead
/// of tripping reuse detection, which no longer protects anything once it is expired.
pub fn purge_expired_tokens(
    conn: &mut Conn,
    before: Millis,
    limit: i64,
) -> Result<usize, StoreError> {
    write_tx(conn, |conn| {
        let ids: Vec<i64> = refresh_tokens::table
            .filter(refresh_tokens::expires_at.lt(before))
            .select(refresh_tokens::id)
            .order(refresh_tokens::id.asc())
            .limit(limit)
            .all(conn)?;
        Ok(
            diesel::delete(refresh_tokens::table.filter(refresh_tokens::id.eq_any(&ids)))
                .run(conn)?,
        )
    })
}

/// Housekeeping: deletes up to `limit` sessions (and, by cascade, their tokens) that
/// reached their absolute lifetime before `before` and, if revoked, were revoked before
/// `before` too — so a recent revocation stays visible to the revocation set and the
/// audit view however old the session is.
pub fn purge_ended(conn: &mut Conn, before: Millis, limit: i64) -> Result<usize, StoreError> {
    write_tx(conn, |conn| {
        let ids: Vec<i64> = sessions::table
            .filter(sessions::absolute_expires_at.lt(before))
            .filter(
                sessions::revoked_at
                    .is_null()
                    .or(sessions::revoked_at.lt(before)),
            )
            .select(sessions::id)
            .order(sessions::id.asc())
            .limit(limit)
            .all(conn)?;
        diesel::delete(refresh_tokens::table.filter(refresh_tokens::session_id.eq_any(&ids)))
            .run(conn)?;
        // The revocation log needs only as much history as the revocation set (far less).
        let old: Vec<i64> = revocations::table
            .filter(revocations::revoked_at.lt(before))
            .select(revocations::seq)
            .order(revocations::seq.asc())
            .limit(limit)
            .all(conn)?;
        diesel::delete(revocations::table.filter(revocations::seq.eq_any(&old))).run(conn)?;
        Ok(diesel::delete(sessions::table.filter(sessions::id.eq_any(&ids))).run(conn)?)
    })
}
