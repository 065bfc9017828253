//! The sign-in, refresh and sign-out flows shared by the JSON API and the pages.

use actix_web::web::Data;

use crate::clock::{self, Millis, SECOND};
use crate::db::Conn;
use crate::domain::{Password, SessionId, UserId, Username};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::sessions::{self, Client, Rotation};
use crate::store::users::UserRow;
use crate::store::{lockout, users, Actor, StoreError};
use crate::tokens::access::Issued;
use crate::tokens::refresh::RefreshToken;

/// A new or refreshed sign-in: what the client is given.
pub struct SignedIn {
    pub access: Issued,
    pub refresh: RefreshToken,
    pub refresh_expires_in: i64,
    pub session_id: SessionId,
    pub user_id: UserId,
}

fn seconds_until(at: Millis, now: Millis) -> i64 {
    ((at - now) + SECOND - 1).div_euclid(SECOND).max(0)
}

/// Checks the password, applies the lockout, starts a session. Unknown users, disabled
/// users and wrong passwords all cost one argon2 verification and give the same error.
pub async fn sign_in(
    state: &Data<AppState>,
    username: &str,
    password: &str,
    client: &Client,
) -> Result<SignedIn, ApiError> {
    let now = clock::now();
    let parsed = Username::parse(username).ok();
    // The lockout key: the canonical name, or a bounded fold of whatever was typed.
    let key: String = match &parsed {
        Some(name) => name.as_str().to_owned(),
        None => username
            .to_lowercase()
            .chars()
            .take(Username::MAX_LEN)
            .collect(),
    };
    let ip = client.ip.clone();
    let lookup_key = key.clone();
    let (locked, user) = state
        .db
        .read(move |conn| {
            let locked = lockout::locked_until(conn, now, &lookup_key, &ip)?;
            let user = match (&parsed, locked) {
                (Some(name), None) => users::find_by_name(conn, name)?,
                _ => None,
            };
            Ok((locked, user))
        })
        .await?;
    if let Some(until) = locked {
        return Err(ApiError::TooManyAttempts(seconds_until(until, now)));
    }

    let well_formed = Password::has_valid_length(password);
    let candidate = user
        .as_ref()
        .filter(|u| !u.disabled)
        .map(|u| u.password_hash.as_str());
    let verified = state.hasher.verify(password, candidate).await && well_formed;
    let known_id = user.as_ref().map(|u| u.id);
    let Some(user) = user.filter(|_| verified) else {
        let actor = Actor::of(None, client);
        let user_id = known_id;
        let policy = lockout_policy(state);
        let locked = state
            .db
            .write(move |conn| lockout::record_failure(conn, now, &key, user_id, &actor, policy))
            .await?;
        if locked.is_some() {
            tracing::warn!(ip = %client.ip, "sign-in locked out after repeated failures");
        }
        return Err(ApiError::InvalidCredentials);
    };

    let refresh = RefreshToken::generate();
    let hash = refresh.hash();
    let life = state.lifetimes();
    let start_client = client.clone();
    let start_user = user.clone();
    let session = state
        .db
        .write(move |conn| {
            lockout::clear(conn, &key, &start_client.ip)?;
            sessions::start(conn, now, &start_user, &start_client, &hash, life)
        })
        .await?;
    tracing::info!(user = %user.username, session = session.id, ip = %client.ip, "signed in");
    signed_in(state, &user, session.id, refresh, session.expires_at, now)
}

fn lockout_policy(state: &AppState) -> lockout::Policy {
    let settings = &state.settings;
    lockout::Policy {
        max_failures: i32::try_from(settings.login_max_failures).unwrap_or(i32::MAX),
        ip_max_failures: i32::try_from(settings.login_ip_max_failures()).unwrap_or(i32::MAX),
        window: settings.login_lockout * SECOND,
    }
}

/// Asks a signed-in user for their password again (before a password change). A wrong
/// answer counts toward the same lockout as a failed sign-in, so a stolen session cannot
/// be used to guess the password.
pub async fn confirm_password(
    state: &Data<AppState>,
    user: &UserRow,
    password: &str,
    client: &Client,
) -> Result<(), ApiError> {
    let now = clock::now();
    let (key, ip) = (user.username.clone(), client.ip.clone());
    let locked = state
        .db
        .read(move |conn| lockout::locked_until(conn, now, &key, &ip))
        .await?;
    if let Some(until) = locked {
        return Err(ApiError::TooManyAttempts(seconds_until(until, now)));
    }
    if state
        .hasher
        .verify(password, Some(&user.password_hash))
        .await
    {
        return Ok(());
    }
    let (key, user_id, actor) = (
        user.username.clone(),
        user.id,
        Actor::of(Some(user.id), client),
    );
    let policy = lockout_policy(state);
    state
        .db
        .write(move |conn| lockout::record_failure(conn, now, &key, Some(user_id), &actor, policy))
        .await?;
    Err(ApiError::InvalidCredentials)
}

/// Mints the access token that goes with a new refresh token.
fn signed_in(
    state: &AppState,
    user: &UserRow,
    session_id: i64,
    refresh: RefreshToken,
    refresh_expires_at: Millis,
    now: Millis,
) -> Result<SignedIn, ApiError> {
    let access = state
        .tokens
        .issue(
            UserId(user.id),
            &user.username,
            user.role(),
            SessionId(session_id),
        )
        .map_err(|_| ApiError::Internal)?;
    Ok(SignedIn {
        access,
        refresh,
        refresh_expires_in: seconds_until(refresh_expires_at, now),
        session_id: SessionId(session_id),
        user_id: UserId(user.id),
    })
}

/// Exchanges a refresh token for a new pair. A reused token (after the grace) revokes
/// its session; every refusal is `InvalidRefreshToken`.
pub async fn refresh(
    state: &Data<AppState>,
    presented: Option<&str>,
    client: &Client,
) -> Result<SignedIn, ApiError> {
    let presented = presented
        .and_then(RefreshToken::parse)
        .ok_or(ApiError::InvalidRefreshToken)?;
    let now = clock::now();
    let next = RefreshToken::generate();
    let (old_hash, new_hash) = (presented.hash(), next.hash());
    let life = state.lifetimes();
    let rotation_client = client.clone();
    let rotation = state
        .db
        .write(move |conn| {
            sessions::rotate(conn, now, &old_hash, &new_hash, &rotation_client, life)
        })
        .await?;
    match rotation {
        Rotation::Rotated {
            session,
            user,
            expires_at,
        } => signed_in(state, &user, session.id, next, expires_at, now),
        Rotation::Refused => Err(ApiError::InvalidRefreshToken),
        Rotation::ReuseDetected { session_id } => {
            state.revoked.insert(SessionId(session_id), now);
            tracing::warn!(session = session_id, ip = %client.ip, "refresh token reused: session revoked");
            Err(ApiError::InvalidRefreshToken)
        }
    }
}

/// Revokes the session a refresh token belongs to. Unknown tokens are ignored.
pub async fn sign_out(
    state: &Data<AppState>,
    presented: Option<&str>,
    client: &Client,
) -> Result<(), ApiError> {
    let Some(token) = presented.and_then(RefreshToken::parse) else {
        return Ok(());
    };
    let hash = token.hash();
    let client = client.clone();
    revoking(state, move |conn, now| {
        if let Some(session) = sessions::find_by_token(conn, &hash)? {
            let actor = Actor::of(Some(session.user_id), &client);
            sessions::revoke(conn, now, session.id, None, "signed_out", &actor)?;
        }
        Ok(())
    })
    .await
}

/// Runs a change that may revoke sessions, then brings this instance's revocation set
/// up to date before answering, so the revoked access tokens stop working at once. The
/// set is read after the change has committed (never from a batch that may roll back);
/// if that read fails, the 250 ms poll catches up.
pub async fn revoking<T, F>(state: &Data<AppState>, change: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut Conn, Millis) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    let result = state
        .db
        .write(move |conn| change(conn, clock::now()))
        .await?;
    let synced = state.clone();
    let sync = state
        .db
        .read(move |conn| synced.revoked.sync(conn, clock::now()))
        .await;
    if let Err(e) = sync {
        tracing::warn!(error = %e, "cannot refresh the revocation set after a change");
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(super::seconds_until(10_001, 0), 11);
        assert_eq!(super::seconds_until(10_000, 0), 10);
        assert_eq!(super::seconds_until(0, 5), 0);
    }
}
