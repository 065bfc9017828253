//! The sign-in, refresh and sign-out flows shared by the JSON API and the pages.

use actix_web::web::Data;

use crate::client;
use crate::clock::{self, Millis};
use crate::cookies;
use crate::domain::{Password, SessionId, UserId, Username};
use crate::metrics;
use crate::mfa::recovery;
use crate::mfa::totp::Secret;
use crate::passkeys::Refused;
use crate::state::AppState;
use std::time::Duration;

use crate::client::Client;
use crate::store::lockout::{self, Attempt, Peek, Reservation};
use crate::store::sessions::{Rotation, SessionRow};
use crate::store::users::UserRow;
use crate::store::{Actor, StoreError};
use crate::tokens::access::{Amr, Issued, SessionClaims};
use crate::tokens::refresh::RefreshToken;

/// How a flow refuses, or fails. Mapped once to the API's JSON errors (`crate::error`)
/// and once to pages (`pages::error`): a page that does not answer one of these with
/// its own form still shows a 4xx page for it.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Wrong username, password, code or passkey, or a disabled account.
    #[error("the credentials were not accepted")]
    InvalidCredentials,
    /// The password was right; a second factor is needed.
    #[error("a second factor is required")]
    MfaRequired,
    /// The lockout: try again after this many seconds.
    #[error("too many failed attempts")]
    TooManyAttempts(i64),
    #[error("the refresh token is not valid")]
    InvalidRefreshToken,
    /// Input that is not what the flow takes (a passkey answer that is none).
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("an internal error")]
    Internal,
}

/// A new or refreshed sign-in: what the client is given.
pub struct SignedIn {
    pub access: Issued,
    pub refresh: RefreshToken,
    pub refresh_expires_in: i64,
    pub session_id: SessionId,
    pub user_id: UserId,
}

impl SignedIn {
    /// The browser's pair: `lk_access` and `lk_refresh`, each as long as its token lives.
    pub fn cookies(&self, secure: bool) -> [actix_web::cookie::Cookie<'static>; 2] {
        [
            cookies::access(&self.access.token, self.access.expires_in, secure),
            cookies::refresh(self.refresh.expose(), self.refresh_expires_in, secure),
        ]
    }
}

/// Whole seconds from `now` to `at`, rounded up; zero once `at` has passed.
fn seconds_until(at: Millis, now: Millis) -> i64 {
    i64::try_from(at.since(now).as_millis().div_ceil(1000)).unwrap_or(i64::MAX)
}

/// The lockout's name for what was typed: the canonical username, or a bounded fold of
/// a name that does not parse (so variants of junk count as one).
fn lockout_name(typed: &str, parsed: Option<&Username>) -> String {
    match parsed {
        Some(name) => name.as_str().to_owned(),
        // Kept for the lockout and the audit log, but never a control character (a NUL
        // cannot even be stored in PostgreSQL text).
        None => typed
            .to_lowercase()
            .chars()
            .take(Username::MAX_LEN)
            .map(|c| {
                if c.is_control() {
                    char::REPLACEMENT_CHARACTER
                } else {
                    c
                }
            })
            .collect(),
    }
}

/// How long an attempt waits for its turn while as many attempts as may still fail are
/// being checked, and how often it looks again.
const TURN_WAIT: Duration = Duration::from_secs(10);
const TURN_POLL: Duration = Duration::from_millis(20);

/// Counts an attempt toward the lockout before its password is checked (see
/// `store::lockout`), or refuses it with the wait. While the attempts being checked could
/// still reach the maximum, it waits for its turn (looking by reads, not writes); an
/// attempt still waiting after `TURN_WAIT` is refused with a retry in a second.
async fn reserve_attempt(
    state: &Data<AppState>,
    name: String,
    user_id: Option<UserId>,
    actor: &Actor,
    client: &Client,
) -> Result<(Reservation, Millis), AuthError> {
    let key = client::lockout_key(&client.ip);
    let policy = lockout_policy(state);
    let started = std::time::Instant::now();
    loop {
        let now = clock::now();
        let peek = state
            .store
            .peek_lockout(now, name.clone(), key.clone(), policy)
            .await?;
        let attempt = match peek {
            Peek::Locked(until) => Attempt::Locked(until),
            Peek::Busy => Attempt::Busy,
            Peek::Open => {
                state
                    .store
                    .reserve_attempt(
                        now,
                        name.clone(),
                        user_id,
                        key.clone(),
                        actor.clone(),
                        policy,
                    )
                    .await?
            }
        };
        match attempt {
            Attempt::Allowed(reservation) => return Ok((reservation, now)),
            Attempt::Locked(until) => {
                tracing::info!(ip = %client.ip, "sign-in refused: locked out");
                return Err(AuthError::TooManyAttempts(seconds_until(until, now)));
            }
            Attempt::Busy if started.elapsed() >= TURN_WAIT => {
                return Err(AuthError::TooManyAttempts(1));
            }
            Attempt::Busy => actix_web::rt::time::sleep(TURN_POLL).await,
        }
    }
}

/// Audits a reserved attempt that failed (its count was taken by the reservation).
async fn attempt_failed(
    state: &Data<AppState>,
    reservation: Reservation,
    user_id: Option<UserId>,
    actor: &Actor,
    client: &Client,
    now: Millis,
) -> Result<(), AuthError> {
    let policy = lockout_policy(state);
    let locked = state
        .store
        .record_failure(now, reservation, user_id, actor.clone(), policy)
        .await?;
    if locked.is_some() {
        state.metrics.lockout();
        tracing::warn!(ip = %client.ip, "sign-in locked out after repeated failures");
    }
    Ok(())
}

/// Gives a reserved attempt back, uncounted: it ended without a wrong guess.
async fn attempt_withdrawn(
    state: &Data<AppState>,
    reservation: Reservation,
    now: Millis,
) -> Result<(), AuthError> {
    let policy = lockout_policy(state);
    state
        .store
        .withdraw_attempt(now, reservation, policy)
        .await?;
    Ok(())
}

/// Checks the password (and, for an account with two-step sign-in, the code `otp`),
/// applies the lockout, starts a session. Unknown users, disabled users and wrong
/// passwords all cost one argon2 verification and give the same error; whether the
/// account has a second factor shows only once the password was right. The attempt is
/// counted before the hash is checked, a wrong code counts as a failure like a wrong
/// password, and the session is started in the transaction that re-reads the user row
/// (see `sessions::start`).
pub async fn sign_in(
    state: &Data<AppState>,
    username: &str,
    password: &str,
    otp: Option<&str>,
    via: Via,
    client: &Client,
) -> Result<SignedIn, AuthError> {
    let result = check_sign_in(state, username, password, otp, via, client).await;
    state.metrics.sign_in(sign_in_result(&result));
    result
}

/// The metric's name for how a sign-in ended.
fn sign_in_result(result: &Result<SignedIn, AuthError>) -> metrics::SignIn {
    match result {
        Ok(_) => metrics::SignIn::Ok,
        Err(AuthError::InvalidCredentials) => metrics::SignIn::Failed,
        Err(AuthError::TooManyAttempts(_)) => metrics::SignIn::Locked,
        Err(AuthError::MfaRequired) => metrics::SignIn::MfaRequired,
        Err(_) => metrics::SignIn::Error,
    }
}

async fn check_sign_in(
    state: &Data<AppState>,
    username: &str,
    password: &str,
    otp: Option<&str>,
    via: Via,
    client: &Client,
) -> Result<SignedIn, AuthError> {
    let parsed = Username::parse(username).ok();
    let name = lockout_name(username, parsed.as_ref());
    let user = match parsed {
        Some(parsed) => state.store.user_by_name(parsed).await?,
        None => None,
    };
    let known_id = user.as_ref().map(|u| u.id);
    // Nobody is signed in yet: the actor is the anonymous client.
    let actor = Actor::of(None, client);
    let (reservation, now) = reserve_attempt(state, name, known_id, &actor, client).await?;

    let well_formed = Password::has_valid_length(password);
    let candidate = user
        .as_ref()
        .filter(|u| !u.disabled)
        .map(|u| u.password_hash.as_str());
    let verified = state.hasher.verify(password, candidate).await && well_formed;
    let Some(user) = user.filter(|_| verified) else {
        attempt_failed(state, reservation, known_id, &actor, client, now).await?;
        return Err(AuthError::InvalidCredentials);
    };
    let amr = match second_factor(state, &user, otp, &actor).await? {
        // `LATCHKEY_REQUIRE_MFA`: the pages enrol such an account next (see the page
        // guard); the API has no way to, so it says a second factor is needed.
        Factor::None if via == Via::Api && state.settings.require_mfa.applies(user.role) => {
            attempt_withdrawn(state, reservation, now).await?;
            return Err(AuthError::MfaRequired);
        }
        Factor::None => Amr::Password,
        Factor::Passed => Amr::PasswordOtp,
        Factor::Missing => {
            attempt_withdrawn(state, reservation, now).await?;
            return Err(AuthError::MfaRequired);
        }
        Factor::Failed => {
            attempt_failed(state, reservation, known_id, &actor, client, now).await?;
            return Err(AuthError::InvalidCredentials);
        }
    };

    start(state, user, amr, reservation, &actor, client, now).await
}

/// The second step of a page sign-in: the code for the account whose password was right
/// a moment ago (`pending`, kept in the cookie session). A password changed or an
/// account disabled since then sends the user back to the first step.
pub async fn sign_in_with_code(
    state: &Data<AppState>,
    pending: &PendingCode,
    otp: &str,
    client: &Client,
) -> Result<SignedIn, AuthError> {
    let result = check_code(state, pending, otp, client).await;
    state.metrics.sign_in(sign_in_result(&result));
    result
}

async fn check_code(
    state: &Data<AppState>,
    pending: &PendingCode,
    otp: &str,
    client: &Client,
) -> Result<SignedIn, AuthError> {
    let user = match state.store.user(pending.user_id).await {
        Ok(user) => user,
        Err(StoreError::NotFound) => return Err(AuthError::InvalidCredentials),
        Err(e) => return Err(e.into()),
    };
    if user.disabled || password_fingerprint(&user.password_hash) != pending.password {
        return Err(AuthError::InvalidCredentials);
    }
    let actor = Actor::of(None, client);
    let (reservation, now) =
        reserve_attempt(state, user.username.clone(), Some(user.id), &actor, client).await?;
    match second_factor(state, &user, Some(otp), &actor).await? {
        Factor::Passed => {
            start(
                state,
                user,
                Amr::PasswordOtp,
                reservation,
                &actor,
                client,
                now,
            )
            .await
        }
        Factor::Failed | Factor::Missing | Factor::None => {
            attempt_failed(state, reservation, Some(user.id), &actor, client, now).await?;
            Err(AuthError::InvalidCredentials)
        }
    }
}

/// Signs in with a passkey: `answer` is the browser's answer to the sign-in ceremony
/// whose state is `ceremony`. The passkey names the account (no username is typed) and
/// is both factors at once, so an account with TOTP needs no code. The attempt goes
/// through the same lockout reservation as a password, so a locked-out account stays
/// locked; a refused passkey is audited but not counted as a failure (it cannot be
/// guessed).
pub async fn sign_in_with_passkey(
    state: &Data<AppState>,
    answer: serde_json::Value,
    ceremony: &str,
    client: &Client,
) -> Result<SignedIn, AuthError> {
    let result = check_passkey(state, answer, ceremony, client).await;
    state.metrics.sign_in(sign_in_result(&result));
    result
}

async fn check_passkey(
    state: &Data<AppState>,
    answer: serde_json::Value,
    ceremony: &str,
    client: &Client,
) -> Result<SignedIn, AuthError> {
    let actor = Actor::of(None, client);
    let (user_id, credential) = state.passkeys.identify(&answer).map_err(passkey_refused)?;
    let passkey = state
        .store
        .passkey_by_credential(credential)
        .await?
        .filter(|p| p.user_id == user_id);
    let user = match &passkey {
        Some(p) => match state.store.user(p.user_id).await {
            Ok(user) => Some(user),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let (Some(passkey), Some(user)) = (passkey, user) else {
        state.store.passkey_refused(None, actor).await?;
        return Err(AuthError::InvalidCredentials);
    };
    let (reservation, now) =
        reserve_attempt(state, user.username.clone(), Some(user.id), &actor, client).await?;
    let verified = match user.disabled {
        true => Err(Refused::Rejected),
        false => state
            .passkeys
            .finish_sign_in(answer, ceremony, &passkey.passkey),
    };
    let accepted = match verified {
        Ok(updated) => {
            state
                .store
                .passkey_used(passkey.id, passkey.passkey, updated)
                .await?
        }
        Err(Refused::Rejected) => false,
        Err(other) => {
            attempt_withdrawn(state, reservation, now).await?;
            return Err(passkey_refused(other));
        }
    };
    if !accepted {
        attempt_withdrawn(state, reservation, now).await?;
        state
            .store
            .passkey_refused(Some((user.id, user.username)), actor)
            .await?;
        return Err(AuthError::InvalidCredentials);
    }
    start(state, user, Amr::Passkey, reservation, &actor, client, now).await
}

/// A passkey that does not verify is wrong credentials; an answer that is not one at all
/// (or a service where passkeys cannot work) is a bad request.
fn passkey_refused(refused: Refused) -> AuthError {
    match refused {
        Refused::Rejected => AuthError::InvalidCredentials,
        other => AuthError::BadRequest(other.to_string()),
    }
}

/// What the cookie session keeps between the password and the code step of a page
/// sign-in (5 minutes at most).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PendingCode {
    #[serde(with = "crate::domain::as_number")]
    pub user_id: UserId,
    /// A fingerprint of the password hash the password was verified against.
    pub password: String,
    pub until: Millis,
}

/// How long the code step waits for its code.
pub const CODE_STEP: Duration = Duration::from_secs(5 * 60);

impl PendingCode {
    pub fn new(user: &UserRow, now: Millis) -> Self {
        PendingCode {
            user_id: user.id,
            password: password_fingerprint(&user.password_hash),
            until: now + CODE_STEP,
        }
    }
}

fn password_fingerprint(hash: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(hash.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Starts the session of a sign-in that passed every check.
async fn start(
    state: &Data<AppState>,
    user: UserRow,
    amr: Amr,
    reservation: Reservation,
    actor: &Actor,
    client: &Client,
    now: Millis,
) -> Result<SignedIn, AuthError> {
    let known_id = Some(user.id);
    let refresh = RefreshToken::generate();
    let hash = refresh.hash();
    let life = state.lifetimes();
    let policy = lockout_policy(state);
    let started = state
        .store
        .start_session(
            now,
            user,
            amr.stored(),
            client.clone(),
            hash.to_vec(),
            life,
            reservation.clone(),
            policy,
        )
        .await?;
    let Some((session, user)) = started else {
        // Disabled, or its password changed, while this one was being checked.
        attempt_failed(state, reservation, known_id, actor, client, now).await?;
        return Err(AuthError::InvalidCredentials);
    };
    tracing::info!(user = %user.username, session = session.id.0, ip = %client.ip, "signed in");
    signed_in(state, &user, &session, refresh, now)
}

/// Where a sign-in comes from: the pages can enrol a second factor the policy asks for
/// right after it, the API cannot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Api,
    Pages,
}

/// Where a sign-in stands with the account's second factor.
enum Factor {
    /// The account has none.
    None,
    /// It has one, and no code was given.
    Missing,
    /// A right TOTP code (of a time step not used before) or an unused recovery code.
    Passed,
    Failed,
}

/// Checks `otp` against the account's second factor, after its password was right.
async fn second_factor(
    state: &AppState,
    user: &UserRow,
    otp: Option<&str>,
    actor: &Actor,
) -> Result<Factor, AuthError> {
    let Some(sealed) = state.store.sealed_totp_secret(user.id).await? else {
        return Ok(Factor::None);
    };
    let Some(otp) = otp.filter(|o| !o.trim().is_empty()) else {
        return Ok(Factor::Missing);
    };
    let secret = state
        .mfa_key
        .open(user.id, &sealed)
        .and_then(Secret::from_bytes)
        .ok_or_else(|| {
            tracing::error!(user = %user.username, "cannot open the TOTP secret: is LATCHKEY_MFA_KEY the key it was set up with?");
            AuthError::Store(StoreError::Unavailable)
        })?;
    if let Some(step) = secret.matching_step(otp, clock::now().unix_seconds()) {
        let fresh = state.store.accept_totp_step(user.id, step).await?;
        return Ok(if fresh {
            Factor::Passed
        } else {
            Factor::Failed
        });
    }
    if let Some(hash) = recovery::digest(&state.mfa_key, otp) {
        if state
            .store
            .use_recovery_code(user.id, hash, actor.clone())
            .await?
        {
            tracing::info!(user = %user.username, "signed in with a recovery code");
            return Ok(Factor::Passed);
        }
    }
    Ok(Factor::Failed)
}

fn lockout_policy(state: &AppState) -> lockout::Policy {
    let settings = &state.settings;
    lockout::Policy {
        max_failures: i32::try_from(settings.login_max_failures).unwrap_or(i32::MAX),
        ip_max_failures: i32::try_from(settings.login_ip_max_failures()).unwrap_or(i32::MAX),
        window: settings.login_lockout,
    }
}

/// Asks a signed-in user for their password again — and, with `otp`, a code of their
/// second factor (before turning it off or making new recovery codes). One attempt toward
/// the same lockout as a sign-in, reserved before the check like a sign-in's, so a stolen
/// session cannot be used to guess either.
pub async fn confirm_password(
    state: &Data<AppState>,
    user: &UserRow,
    password: &str,
    otp: Option<&str>,
    client: &Client,
) -> Result<(), AuthError> {
    let actor = Actor::of(Some(user.id), client);
    let (reservation, now) =
        reserve_attempt(state, user.username.clone(), Some(user.id), &actor, client).await?;
    let mut right = state
        .hasher
        .verify(password, Some(&user.password_hash))
        .await;
    if let (true, Some(otp)) = (right, otp) {
        right = matches!(
            second_factor(state, user, Some(otp), &actor).await?,
            Factor::Passed
        );
    }
    if right {
        let policy = lockout_policy(state);
        state
            .store
            .release_attempt(now, reservation, policy)
            .await?;
        return Ok(());
    }
    attempt_failed(state, reservation, Some(user.id), &actor, client, now).await?;
    Err(AuthError::InvalidCredentials)
}

/// Mints the access token that goes with a new refresh token.
/// Its expiry is capped at the session's absolute end.
fn signed_in(
    state: &AppState,
    user: &UserRow,
    session: &SessionRow,
    refresh: RefreshToken,
    now: Millis,
) -> Result<SignedIn, AuthError> {
    let access = state
        .tokens
        .issue(
            user.id,
            &user.username,
            user.role,
            SessionClaims {
                id: session.id,
                auth_time: session.created_at.unix_seconds(),
                amr: Amr::from_stored(&session.amr),
                not_after: session.absolute_expires_at.unix_seconds(),
            },
        )
        .map_err(|_| AuthError::Internal)?;
    Ok(SignedIn {
        access,
        refresh,
        refresh_expires_in: seconds_until(session.expires_at, now),
        session_id: session.id,
        user_id: user.id,
    })
}

/// Exchanges a refresh token for a new pair. A reused token (after the grace) revokes
/// its session; every refusal is `InvalidRefreshToken`.
pub async fn refresh(
    state: &Data<AppState>,
    presented: Option<&str>,
    client: &Client,
) -> Result<SignedIn, AuthError> {
    let result = rotate(state, presented, client).await;
    match &result {
        Ok((_, outcome)) | Err((_, Some(outcome))) => state.metrics.refresh(*outcome),
        Err((_, None)) => {}
    }
    result.map(|(signed_in, _)| signed_in).map_err(|(e, _)| e)
}

/// How a refresh ended, for the metric (none when it could not be told: the database
/// failed).
type RefreshOutcome = Result<(SignedIn, metrics::Refresh), (AuthError, Option<metrics::Refresh>)>;

async fn rotate(
    state: &Data<AppState>,
    presented: Option<&str>,
    client: &Client,
) -> RefreshOutcome {
    let invalid = || {
        (
            AuthError::InvalidRefreshToken,
            Some(metrics::Refresh::Invalid),
        )
    };
    let failed = |e: StoreError| (AuthError::from(e), None);
    let presented = presented
        .and_then(RefreshToken::parse)
        .ok_or_else(invalid)?;
    let now = clock::now();
    let old_hash = presented.hash();
    // Unknown tokens (junk, expired and purged, from another database) are answered from
    // a read: only a token that exists can take the writer's time.
    let exists = state
        .store
        .refresh_token_exists(old_hash.to_vec())
        .await
        .map_err(failed)?;
    if !exists {
        return Err(invalid());
    }
    let next = presented.successor(&state.successor_key);
    let new_hash = next.hash();
    let life = state.lifetimes();
    let rotation = state
        .store
        .rotate_refresh(
            now,
            old_hash.to_vec(),
            new_hash.to_vec(),
            client.clone(),
            life,
        )
        .await
        .map_err(failed)?;
    match rotation {
        Rotation::Rotated {
            session,
            user,
            repeat,
            ..
        } => {
            let outcome = if repeat {
                metrics::Refresh::Grace
            } else {
                metrics::Refresh::Ok
            };
            let signed_in = signed_in(state, &user, &session, next, now).map_err(|e| (e, None))?;
            Ok((signed_in, outcome))
        }
        Rotation::Refused => Err(invalid()),
        Rotation::ReuseDetected { session_id } => {
            state.revoked.insert(session_id, now);
            tracing::warn!(session = session_id.0, ip = %client.ip, "refresh token reused: session revoked");
            Err((
                AuthError::InvalidRefreshToken,
                Some(metrics::Refresh::Reused),
            ))
        }
    }
}

/// Revokes the session a refresh token belongs to. Unknown tokens are ignored.
pub async fn sign_out(
    state: &Data<AppState>,
    presented: Option<&str>,
    client: &Client,
) -> Result<(), AuthError> {
    let Some(token) = presented.and_then(RefreshToken::parse) else {
        return Ok(());
    };
    Ok(revoking(
        state,
        state.store.sign_out(token.hash().to_vec(), client.clone()),
    )
    .await?)
}

/// Runs a change that may revoke sessions, then brings this instance's revocation set
/// up to date before answering, so the revoked access tokens stop working at once. The
/// set is read after the change has committed (never from a batch that may roll back);
/// if that read fails, the 250 ms poll catches up.
pub async fn revoking<T>(
    state: &Data<AppState>,
    change: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let result = change.await?;
    if let Err(e) = state.revoked.sync(&state.store).await {
        tracing::warn!(error = %e, "cannot refresh the revocation set after a change");
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        use crate::clock::Millis;
        assert_eq!(super::seconds_until(Millis(10_001), Millis(0)), 11);
        assert_eq!(super::seconds_until(Millis(10_000), Millis(0)), 10);
        assert_eq!(super::seconds_until(Millis(0), Millis(5)), 0);
    }
}
