//! The store in domain terms: every operation the service runs on the database, by name.
//! Handlers, flows, pages and background tasks call these; none of them holds a
//! connection. Each operation is one read (a pooled connection) or one write (one
//! transaction: on SQLite on the writer, on PostgreSQL retried when aborted), made of the
//! synchronous functions of the modules beside this one, which the command line calls
//! directly on its own connection.

use super::audit::{self, AuditRow};
use super::keys::{self, KeyRow};
use super::lockout::{self, Attempt, Peek, Policy, Reservation};
use super::mfa;
use super::passkeys::{self, CeremonyRow, NewCeremony, PasskeyRow, Purpose};
use super::purge::{self, Purged};
use super::sessions::{
    self, Lifetimes, Revocations, RevokeReason, Revoked, Rotation, SessionRow, SessionWithUser,
    Verified,
};
use super::users::{self, UserRow};
use super::{secrets, write_tx, Actor, Statement, StoreError};
use crate::client::Client;
use crate::clock::{self, Millis};
use crate::db::Db;
use crate::domain::{EventId, PasskeyId, Role, SessionId, UserId, Username};
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct Store {
    db: Db,
    metrics: Metrics,
}

/// A page of audit events with the names of the users who acted in them.
pub type AuditPage = (Vec<AuditRow>, Vec<(UserId, String)>);

impl Store {
    /// The store on `db`, counting failures and revocations into `metrics`.
    pub fn new(db: Db, metrics: Metrics) -> Self {
        Store { db, metrics }
    }

    /// Reads and writes that have failed so far (unavailable, or a database error).
    pub fn errors(&self) -> u64 {
        self.db.errors()
    }

    /// Counts committed revocations; how many sessions they were.
    fn count(&self, revoked: Option<Revoked>) -> usize {
        let Some(revoked) = revoked else { return 0 };
        self.metrics
            .revoked(revoked.reason.as_str(), revoked.sessions);
        revoked.sessions
    }

    /// The PostgreSQL URL, for the notification listener's own connection.
    pub fn postgres_url(&self) -> Option<&str> {
        self.db.postgres_url()
    }

    // ---- health ----

    /// Whether the database answers (reads a table, so a SQLite file must answer too).
    pub async fn healthy(&self) -> bool {
        self.db
            .read(|conn| Ok(diesel::sql_query("SELECT value FROM revocation_counter").run(conn)?))
            .await
            .is_ok()
    }

    // ---- users ----

    pub async fn user(&self, id: UserId) -> Result<UserRow, StoreError> {
        self.db.read(move |conn| users::find_by_id(conn, id)).await
    }

    pub async fn user_by_name(&self, name: Username) -> Result<Option<UserRow>, StoreError> {
        self.db
            .read(move |conn| users::find_by_name(conn, &name))
            .await
    }

    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        self.db.read(users::list).await
    }

    /// Every user with the number of their active sessions (users without any: absent).
    pub async fn users_with_session_counts(
        &self,
    ) -> Result<(Vec<UserRow>, Vec<(UserId, i64)>), StoreError> {
        self.db
            .read(|conn| {
                Ok((
                    users::list(conn)?,
                    sessions::count_active_by_user(conn, clock::now())?,
                ))
            })
            .await
    }

    pub async fn create_user(
        &self,
        name: Username,
        password_hash: String,
        role: Role,
        actor: Actor,
    ) -> Result<UserRow, StoreError> {
        self.db
            .write(move |conn| {
                users::create(conn, clock::now(), &name, &password_hash, role, &actor)
            })
            .await
    }

    /// Changes a role (revoking a demoted admin's sessions); the row and how many.
    pub async fn set_role(
        &self,
        id: UserId,
        role: Role,
        actor: Actor,
    ) -> Result<(UserRow, usize), StoreError> {
        let (row, revoked) = self
            .db
            .write(move |conn| users::set_role(conn, clock::now(), id, role, &actor))
            .await?;
        Ok((row, self.count(revoked)))
    }

    /// Disables (revoking every session) or enables a user.
    pub async fn set_disabled(
        &self,
        id: UserId,
        disabled: bool,
        actor: Actor,
    ) -> Result<UserRow, StoreError> {
        let (row, revoked) = self
            .db
            .write(move |conn| users::set_disabled(conn, clock::now(), id, disabled, &actor))
            .await?;
        self.count(revoked);
        Ok(row)
    }

    /// Sets a new password hash and revokes every session of the user but `keep`.
    pub async fn set_password(
        &self,
        id: UserId,
        password_hash: String,
        keep: Option<SessionId>,
        actor: Actor,
    ) -> Result<UserRow, StoreError> {
        let (row, revoked) = self
            .db
            .write(move |conn| {
                users::set_password(conn, clock::now(), id, &password_hash, keep, &actor)
            })
            .await?;
        self.count(Some(revoked));
        Ok(row)
    }

    // ---- sign-in attempts (see `lockout`) ----

    pub async fn peek_lockout(
        &self,
        now: Millis,
        username: String,
        client: String,
        policy: Policy,
    ) -> Result<Peek, StoreError> {
        self.db
            .read(move |conn| lockout::peek(conn, now, &username, &client, policy))
            .await
    }

    pub async fn reserve_attempt(
        &self,
        now: Millis,
        username: String,
        user_id: Option<UserId>,
        client: String,
        actor: Actor,
        policy: Policy,
    ) -> Result<Attempt, StoreError> {
        self.db
            .write(move |conn| {
                lockout::reserve(conn, now, &username, user_id, &client, &actor, policy)
            })
            .await
    }

    /// Counts a reserved attempt as a failure; the end of the lockout it started or met.
    pub async fn record_failure(
        &self,
        now: Millis,
        reservation: Reservation,
        user_id: Option<UserId>,
        actor: Actor,
        policy: Policy,
    ) -> Result<Option<Millis>, StoreError> {
        self.db
            .write(move |conn| {
                lockout::confirm_failure(conn, now, &reservation, user_id, &actor, policy)
            })
            .await
    }

    /// Gives a reserved attempt back: it succeeded.
    /// Gives a reserved attempt back without forgiving earlier failures (see
    /// `lockout::withdraw`).
    pub async fn withdraw_attempt(
        &self,
        now: Millis,
        reservation: Reservation,
        policy: Policy,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |conn| lockout::withdraw(conn, now, &reservation, policy))
            .await
    }

    pub async fn release_attempt(
        &self,
        now: Millis,
        reservation: Reservation,
        policy: Policy,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |conn| lockout::release(conn, now, &reservation, policy))
            .await
    }

    // ---- sessions and refresh tokens ----

    /// Starts a session for the user the password was verified against, if that row is
    /// unchanged (see `sessions::start`), and gives the sign-in's reserved attempt back,
    /// in one write.
    #[allow(clippy::too_many_arguments)]
    pub async fn start_session(
        &self,
        now: Millis,
        user: UserRow,
        amr: &'static str,
        client: Client,
        token_hash: Vec<u8>,
        life: Lifetimes,
        attempt: Reservation,
        policy: Policy,
    ) -> Result<Option<(SessionRow, UserRow)>, StoreError> {
        self.db
            .write(move |conn| {
                let verified = Verified {
                    user_id: user.id,
                    password_hash: &user.password_hash,
                    amr,
                };
                let started = sessions::start(conn, now, verified, &client, &token_hash, life)?;
                if started.is_some() {
                    lockout::release(conn, now, &attempt, policy)?;
                }
                Ok(started)
            })
            .await
    }

    /// Whether a refresh token of this hash exists (a read, before queueing a rotation).
    pub async fn refresh_token_exists(&self, hash: Vec<u8>) -> Result<bool, StoreError> {
        self.db
            .read(move |conn| sessions::token_exists(conn, &hash))
            .await
    }

    pub async fn rotate_refresh(
        &self,
        now: Millis,
        presented: Vec<u8>,
        successor: Vec<u8>,
        client: Client,
        life: Lifetimes,
    ) -> Result<Rotation, StoreError> {
        let rotation = self
            .db
            .write(move |conn| sessions::rotate(conn, now, &presented, &successor, &client, life))
            .await?;
        if let Rotation::ReuseDetected { .. } = rotation {
            self.count(Some(Revoked {
                reason: RevokeReason::RefreshTokenReused,
                sessions: 1,
            }));
        }
        Ok(rotation)
    }

    /// Active sessions, newest first: of the user named `user` (none if no such user),
    /// or of everyone; `limit` at most, before the keyset cursor `before`.
    pub async fn active_sessions(
        &self,
        user: Option<Username>,
        before: Option<SessionId>,
        limit: i64,
    ) -> Result<Vec<SessionWithUser>, StoreError> {
        self.db
            .read(move |conn| {
                let user_id = match &user {
                    None => None,
                    Some(name) => match users::find_by_name(conn, name)? {
                        Some(u) => Some(u.id),
                        None => return Ok(Vec::new()),
                    },
                };
                sessions::list_active(conn, clock::now(), user_id, before, limit)
            })
            .await
    }

    /// A user's own active sessions, newest first, `limit` at most.
    pub async fn own_sessions(
        &self,
        user_id: UserId,
        limit: i64,
    ) -> Result<Vec<SessionWithUser>, StoreError> {
        self.db
            .read(move |conn| sessions::list_active(conn, clock::now(), Some(user_id), None, limit))
            .await
    }

    /// A user's row and own active sessions, in one read.
    pub async fn user_with_sessions(
        &self,
        user_id: UserId,
        limit: i64,
    ) -> Result<(UserRow, Vec<SessionWithUser>), StoreError> {
        self.db
            .read(move |conn| {
                let user = users::find_by_id(conn, user_id)?;
                let rows = sessions::list_active(conn, clock::now(), Some(user_id), None, limit)?;
                Ok((user, rows))
            })
            .await
    }

    /// Revokes session `id` (with `owner`, only that user's: otherwise `NotFound`),
    /// stamped at the write; the session and its owner's name.
    pub async fn revoke_session(
        &self,
        id: SessionId,
        owner: Option<UserId>,
        reason: RevokeReason,
        actor: Actor,
    ) -> Result<SessionWithUser, StoreError> {
        let (found, revoked) = self
            .db
            .write(move |conn| {
                let (row, revoked) =
                    sessions::revoke(conn, clock::now(), id, owner, reason, &actor)?;
                Ok((sessions::find(conn, row.id)?, revoked))
            })
            .await?;
        self.count(Some(revoked));
        Ok(found)
    }

    /// Revokes the session a refresh token belongs to, if the token is known.
    pub async fn sign_out(&self, token_hash: Vec<u8>, client: Client) -> Result<(), StoreError> {
        let revoked = self
            .db
            .write(move |conn| {
                let Some(session) = sessions::find_by_token(conn, &token_hash)? else {
                    return Ok(None);
                };
                let actor = Actor::of(Some(session.user_id), &client);
                let now = clock::now();
                let reason = RevokeReason::SignedOut;
                let (_, revoked) = sessions::revoke(conn, now, session.id, None, reason, &actor)?;
                Ok(Some(revoked))
            })
            .await?;
        self.count(revoked);
        Ok(())
    }

    /// Revokes every live session of a user but `except`; the user's name and how many.
    pub async fn revoke_user_sessions(
        &self,
        user_id: UserId,
        except: Option<SessionId>,
        reason: RevokeReason,
        actor: Actor,
    ) -> Result<(String, usize), StoreError> {
        let (name, revoked) = self
            .db
            .write(move |conn| {
                let user = users::find_by_id(conn, user_id)?;
                let revoked = sessions::revoke_all_of_user(
                    conn,
                    clock::now(),
                    user_id,
                    except,
                    reason,
                    &actor,
                )?;
                Ok((user.username, revoked))
            })
            .await?;
        Ok((name, self.count(Some(revoked))))
    }

    /// Revocations to add to a revocation set (see `sessions::revocations`).
    pub async fn revocations(
        &self,
        after: Option<i64>,
        since: Millis,
    ) -> Result<Revocations, StoreError> {
        self.db
            .read(move |conn| sessions::revocations(conn, after, since))
            .await
    }

    pub fn revocations_blocking(
        &self,
        after: Option<i64>,
        since: Millis,
    ) -> Result<Revocations, StoreError> {
        sessions::revocations(&mut self.db.reader()?, after, since)
    }

    // ---- audit ----

    /// Audit events newest first (of the user named `subject`, if given), `limit` at
    /// most before the cursor, with the names of their acting users.
    pub async fn audit_page(
        &self,
        subject: Option<String>,
        before: Option<EventId>,
        limit: i64,
    ) -> Result<AuditPage, StoreError> {
        self.db
            .read(move |conn| {
                let rows = audit::list(conn, subject.as_deref(), before, limit)?;
                let mut ids: Vec<UserId> = rows.iter().filter_map(|r| r.actor_user_id).collect();
                ids.sort_unstable();
                ids.dedup();
                Ok((rows, users::names_by_ids(conn, &ids)?))
            })
            .await
    }

    // ---- second factors ----

    /// A user's sealed TOTP secret, if they have two-step sign-in.
    pub async fn sealed_totp_secret(&self, user_id: UserId) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .read(move |conn| mfa::sealed_secret(conn, user_id))
            .await
    }

    /// The users with two-step sign-in on (for the admin's users page).
    pub async fn users_with_totp(&self) -> Result<Vec<UserId>, StoreError> {
        self.db.read(mfa::users_with_factor).await
    }

    pub async fn recovery_codes_left(&self, user_id: UserId) -> Result<i64, StoreError> {
        self.db
            .read(move |conn| mfa::codes_left(conn, user_id))
            .await
    }

    /// Accepts a TOTP time step once (see `mfa::accept_step`).
    pub async fn accept_totp_step(&self, user_id: UserId, step: i64) -> Result<bool, StoreError> {
        self.db
            .write(move |conn| mfa::accept_step(conn, user_id, step))
            .await
    }

    pub async fn use_recovery_code(
        &self,
        user_id: UserId,
        hash: Vec<u8>,
        actor: Actor,
    ) -> Result<bool, StoreError> {
        self.db
            .write(move |conn| mfa::use_recovery_code(conn, clock::now(), user_id, &hash, &actor))
            .await
    }

    pub async fn enable_totp(
        &self,
        user_id: UserId,
        sealed: Vec<u8>,
        confirmed_step: i64,
        code_hashes: Vec<Vec<u8>>,
        actor: Actor,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |conn| {
                mfa::enable(
                    conn,
                    clock::now(),
                    user_id,
                    &sealed,
                    confirmed_step,
                    &code_hashes,
                    &actor,
                )
            })
            .await
    }

    pub async fn replace_recovery_codes(
        &self,
        user_id: UserId,
        code_hashes: Vec<Vec<u8>>,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |conn| mfa::replace_codes(conn, clock::now(), user_id, &code_hashes))
            .await
    }

    /// Turns a user's TOTP off (`reset`: by an admin, revoking their sessions too).
    pub async fn remove_totp(
        &self,
        user_id: UserId,
        reset: bool,
        actor: Actor,
    ) -> Result<bool, StoreError> {
        let (had, revoked) = self
            .db
            .write(move |conn| mfa::remove(conn, clock::now(), user_id, reset, &actor))
            .await?;
        self.count(revoked);
        Ok(had)
    }

    // ---- passkeys ----

    pub async fn passkeys_of(&self, user_id: UserId) -> Result<Vec<PasskeyRow>, StoreError> {
        self.db
            .read(move |conn| passkeys::of_user(conn, user_id))
            .await
    }

    /// (user id, passkeys) of every user with any.
    pub async fn passkey_counts(&self) -> Result<Vec<(UserId, i64)>, StoreError> {
        self.db.read(passkeys::counts).await
    }

    pub async fn passkey_by_credential(
        &self,
        credential_id: Vec<u8>,
    ) -> Result<Option<PasskeyRow>, StoreError> {
        self.db
            .read(move |conn| passkeys::by_credential(conn, &credential_id))
            .await
    }

    pub async fn add_passkey(
        &self,
        user_id: UserId,
        credential_id: Vec<u8>,
        name: String,
        passkey: String,
        actor: Actor,
    ) -> Result<PasskeyId, StoreError> {
        self.db
            .write(move |conn| {
                passkeys::add(
                    conn,
                    clock::now(),
                    user_id,
                    &credential_id,
                    &name,
                    &passkey,
                    &actor,
                )
            })
            .await
    }

    pub async fn remove_passkey(
        &self,
        user_id: UserId,
        id: PasskeyId,
        actor: Actor,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |conn| passkeys::remove(conn, clock::now(), user_id, id, &actor))
            .await
    }

    /// Records a verified sign-in with a passkey (see `passkeys::used`): false when another
    /// sign-in with it, or its removal, came first.
    pub async fn passkey_used(
        &self,
        id: PasskeyId,
        verified: String,
        updated: Option<String>,
    ) -> Result<bool, StoreError> {
        self.db
            .write(move |conn| {
                passkeys::used(conn, clock::now(), id, &verified, updated.as_deref())
            })
            .await
    }

    pub async fn passkey_refused(
        &self,
        user: Option<(UserId, String)>,
        actor: Actor,
    ) -> Result<(), StoreError> {
        self.db
            .write(move |conn| {
                let user = user.as_ref().map(|(id, name)| (*id, name.as_str()));
                passkeys::refused(conn, clock::now(), user, &actor)
            })
            .await
    }

    /// Keeps a ceremony's state (see `passkeys::begin`): false when its client has too
    /// many pending.
    pub async fn begin_ceremony(&self, ceremony: NewCeremony) -> Result<bool, StoreError> {
        self.db
            .write(move |conn| passkeys::begin(conn, clock::now(), &ceremony))
            .await
    }

    /// Takes a ceremony's state at most once (see `passkeys::take`).
    pub async fn take_ceremony(
        &self,
        id: Vec<u8>,
        purpose: Purpose,
    ) -> Result<Option<CeremonyRow>, StoreError> {
        self.db
            .write(move |conn| passkeys::take(conn, clock::now(), &id, purpose))
            .await
    }

    // ---- signing keys and shared secrets ----

    /// Keys of `algorithm` that may still verify a live token (see `keys::usable`).
    pub async fn usable_keys(
        &self,
        algorithm: &'static str,
        since: Millis,
    ) -> Result<Vec<KeyRow>, StoreError> {
        self.db
            .read(move |conn| keys::usable(conn, algorithm, since))
            .await
    }

    pub fn usable_keys_blocking(
        &self,
        algorithm: &'static str,
        since: Millis,
    ) -> Result<Vec<KeyRow>, StoreError> {
        keys::usable(&mut self.db.reader()?, algorithm, since)
    }

    /// The automatic rotation: rotates the algorithm of `new_next` if its current key
    /// has signed since before `due` (no other instance rotated it first).
    pub async fn rotate_key_if_due(
        &self,
        new_next: KeyRow,
        due: Millis,
    ) -> Result<Vec<keys::Rotated>, StoreError> {
        self.db
            .write(move |conn| {
                keys::rotate(
                    conn,
                    clock::now(),
                    std::slice::from_ref(&new_next),
                    keys::When::SigningSince(due),
                    &Actor::default(),
                )
            })
            .await
    }

    /// Adds what is missing of a current and a next key from `fresh` (start-up).
    pub fn ensure_signing_keys_blocking(&self, fresh: [KeyRow; 2]) -> Result<(), StoreError> {
        self.db
            .write_blocking(move |conn| keys::ensure_current_and_next(conn, clock::now(), &fresh))
    }

    /// The secret `name` shared by every instance on the database: `fresh` if it is the
    /// first to ask (start-up).
    pub fn shared_secret_blocking(
        &self,
        name: &'static str,
        fresh: Vec<u8>,
    ) -> Result<Vec<u8>, StoreError> {
        self.db
            .write_blocking(move |conn| secrets::get_or_create(conn, clock::now(), name, &fresh))
    }

    pub fn replace_secret_blocking(
        &self,
        name: &'static str,
        value: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.db.write_blocking(move |conn| {
            write_tx(conn, |conn| {
                secrets::replace(conn, clock::now(), name, &value)
            })
        })
    }

    pub fn any_totp_factor_blocking(&self) -> Result<bool, StoreError> {
        mfa::any_factor(&mut self.db.reader()?)
    }

    // ---- housekeeping ----

    pub async fn housekeep(&self, policy: purge::Policy) -> Result<Purged, StoreError> {
        self.db
            .write(move |conn| purge::run_once(conn, clock::now(), &policy))
            .await
    }
}
