//! `GET /dashboard`: who you are and your sessions; signing out sessions; changing your
//! password.

use actix_web::http::StatusCode;
use actix_web::web::{self, Data};
use actix_web::{HttpResponse, Responder};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use super::error::PageError;
use super::flash;
use super::guard::Page;
use super::layout::Layout;
use super::login::{signed_out, CsrfForm};
use super::see_other;
use super::views::{Moment, SessionItem};
use crate::auth::flows::{self, revoking, AuthError};
use crate::client::Client;
use crate::clock;
use crate::domain::{PasskeyId, Password, SessionId};
use crate::state::AppState;
use crate::store::sessions::{RevokeReason, OWN_SESSIONS_LIMIT};

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
pub struct DashboardPage {
    layout: Layout,
    username: String,
    role: String,
    member_since: String,
    sessions: Vec<SessionItem>,
    others: usize,
    password_error: Option<String>,
    totp_on: bool,
    codes_left: i64,
    passkeys: Vec<PasskeyItem>,
    /// Why passkeys cannot be registered here, if they cannot.
    passkeys_unavailable: Option<&'static str>,
    /// The one origin passkeys work on (the public URL): elsewhere the page says go there.
    passkeys_origin: String,
}

/// A passkey as the dashboard lists it.
pub struct PasskeyItem {
    id: PasskeyId,
    name: String,
    created: Moment,
    last_used: Option<Moment>,
}

async fn render(
    page: &Page,
    state: &AppState,
    password_error: Option<String>,
) -> Result<DashboardPage, PageError> {
    let user_id = page.identity.user_id;
    let (user, rows) = state
        .store
        .user_with_sessions(user_id, OWN_SESSIONS_LIMIT)
        .await?;
    let now = clock::now();
    let current = page.identity.session_id;
    let sessions: Vec<SessionItem> = rows
        .into_iter()
        .map(|r| SessionItem::new(r, current, now))
        .collect();
    let others = sessions.iter().filter(|s| !s.current).count();
    let totp_on = state.store.sealed_totp_secret(user_id).await?.is_some();
    let codes_left = if totp_on {
        state.store.recovery_codes_left(user_id).await?
    } else {
        0
    };
    let passkeys = state
        .store
        .passkeys_of(user_id)
        .await?
        .into_iter()
        .map(|p| PasskeyItem {
            id: p.id,
            name: p.name,
            created: Moment::new(p.created_at, now),
            last_used: p.last_used_at.map(|at| Moment::new(at, now)),
        })
        .collect();
    let flash = if password_error.is_some() {
        None
    } else {
        flash::take(&page.session)
    };
    Ok(DashboardPage {
        layout: page
            .layout_with("dashboard", flash)
            .with_passkeys(&state.passkeys),
        username: page.identity.username.clone(),
        role: page.identity.role.to_string(),
        member_since: clock::rfc3339(user.created_at)[..10].to_owned(),
        sessions,
        others,
        password_error,
        totp_on,
        codes_left,
        passkeys,
        passkeys_unavailable: state.passkeys.unavailable(),
        passkeys_origin: state.settings.public_url.clone(),
    })
}

pub async fn show(page: Page, state: Data<AppState>) -> Result<DashboardPage, PageError> {
    render(&page, &state, None).await
}

/// `POST /sessions/{id}/revoke`: signs out one of your own sessions (this one included).
pub async fn revoke(
    page: Page,
    state: Data<AppState>,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    page.check_csrf(&form.csrf_token)?;
    let id: SessionId = id.parse().map_err(|_| PageError::NotFound)?;
    let owner = page.identity.user_id;
    let actor = page.actor(&client);
    revoking(
        &state,
        state
            .store
            .revoke_session(id, Some(owner), RevokeReason::SignedOutByUser, actor),
    )
    .await?;
    if id == page.identity.session_id {
        return Ok(signed_out(&state, &page.session, "You have signed out."));
    }
    flash::ok(&page.session, "Session signed out.");
    Ok(see_other("/dashboard"))
}

/// `POST /sessions/revoke-others`: signs out every session of yours but this one.
pub async fn revoke_others(
    page: Page,
    state: Data<AppState>,
    form: web::Form<CsrfForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    page.check_csrf(&form.csrf_token)?;
    let (user_id, keep) = (page.identity.user_id, page.identity.session_id);
    let actor = page.actor(&client);
    let (_, n) = revoking(
        &state,
        state
            .store
            .revoke_user_sessions(user_id, Some(keep), RevokeReason::SignedOutByUser, actor),
    )
    .await?;
    flash::ok(
        &page.session,
        match n {
            0 => "There were no other sessions to sign out.".to_owned(),
            1 => "Signed out 1 other session.".to_owned(),
            n => format!("Signed out {n} other sessions."),
        },
    );
    Ok(see_other("/dashboard"))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PasswordForm {
    csrf_token: String,
    current_password: String,
    new_password: String,
    confirm_password: String,
}

/// How a dashboard form that needs the password says no: a wrong answer, and the
/// lockout (followed by its wait).
pub(super) struct Refusals {
    pub wrong: &'static str,
    pub too_many: &'static str,
}

/// Checks the password (and `otp`, where the form asks for a code) before a change to
/// how the account signs in: `None` to go on, or back to the dashboard saying why not.
pub(super) async fn confirmed_or_back(
    page: &Page,
    state: &Data<AppState>,
    password: &str,
    otp: Option<&str>,
    client: &Client,
    refusals: Refusals,
) -> Result<Option<HttpResponse>, PageError> {
    let user = state.store.user(page.identity.user_id).await?;
    let message = match flows::confirm_password(state, &user, password, otp, client).await {
        Ok(()) => return Ok(None),
        Err(AuthError::InvalidCredentials) => refusals.wrong.to_owned(),
        Err(AuthError::TooManyAttempts(secs)) => format!(
            "{} Try again in {}.",
            refusals.too_many,
            super::when::wait_text(secs)
        ),
        Err(e) => return Err(e.into()),
    };
    flash::error(&page.session, message);
    Ok(Some(see_other("/dashboard")))
}

/// `POST /account/password`: needs the current password; signs out your other sessions.
pub async fn change_password(
    page: Page,
    state: Data<AppState>,
    form: web::Form<PasswordForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    page.check_csrf(&form.csrf_token)?;
    let form = form.into_inner();
    if form.new_password != form.confirm_password {
        return refused(
            &page,
            &state,
            "The new password and its confirmation differ.",
        )
        .await;
    }
    let new_password = match Password::parse(form.new_password) {
        Ok(p) => p,
        Err(e) => {
            return refused(
                &page,
                &state,
                &format!("The new password is not allowed: {e}."),
            )
            .await
        }
    };
    let user_id = page.identity.user_id;
    let user = state.store.user(user_id).await?;
    match flows::confirm_password(&state, &user, &form.current_password, None, &client).await {
        Ok(()) => {}
        Err(AuthError::InvalidCredentials) => {
            return refused(&page, &state, "Your current password is not correct.").await;
        }
        Err(AuthError::TooManyAttempts(secs)) => {
            let message = format!(
                "Too many wrong passwords. Try again in {}.",
                super::when::wait_text(secs)
            );
            let mut response = refused(&page, &state, &message).await?;
            *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            return Ok(response);
        }
        Err(e) => return Err(e.into()),
    }
    let hash = state.hasher.hash(new_password).await.map_err(|e| {
        tracing::error!(error = %e, "cannot hash a new password");
        PageError::Internal
    })?;
    let keep = page.identity.session_id;
    let actor = page.actor(&client);
    revoking(
        &state,
        state.store.set_password(user_id, hash, Some(keep), actor),
    )
    .await?;
    tracing::info!(user = %page.identity.username, "password changed");
    flash::ok(
        &page.session,
        "Password changed. Your other sessions were signed out.",
    );
    Ok(see_other("/dashboard"))
}

/// The dashboard again, with the password form's error, as a 400.
async fn refused(page: &Page, state: &AppState, message: &str) -> Result<HttpResponse, PageError> {
    let dashboard = render(page, state, Some(message.to_owned())).await?;
    Ok(dashboard
        .customize()
        .with_status(StatusCode::BAD_REQUEST)
        .respond_to(page.request())
        .map_into_boxed_body())
}
