//! `GET/POST /login` and `POST /logout`.

use actix_session::Session;
use actix_web::http::header;
use actix_web::web::{self, Data};
use actix_web::{CustomizeResponder, HttpRequest, HttpResponse, HttpResponseBuilder, Responder};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use super::error::PageError;
use super::layout::Layout;
use super::when;
use super::{csrf, flash, query, see_other, SID_KEY};
use crate::auth::flows::{self, revoking, AuthError, PendingCode, SignedIn};
use crate::auth::guard::authenticate;
use crate::client::Client;
use crate::domain::{SessionId, Username};
use crate::state::AppState;
use crate::store::sessions::RevokeReason;
use crate::store::{Actor, StoreError};
use crate::{cookies, next_path};
use actix_web::http::StatusCode;

/// The longest username echoed back into a refused form.
const ECHO_MAX: usize = 64;

#[derive(Template, WebTemplate)]
#[template(path = "login.html")]
pub struct LoginPage {
    layout: Layout,
    username: String,
    next: String,
    error: Option<String>,
    /// Why "Sign in with a passkey" is not offered, if it is not.
    passkeys_unavailable: Option<&'static str>,
    /// The one origin passkeys work on (the public URL): elsewhere the page says go there.
    passkeys_origin: String,
}

/// The code step of a sign-in with two-step sign-in on.
#[derive(Template, WebTemplate)]
#[template(path = "login_code.html")]
pub struct CodePage {
    layout: Layout,
    next: String,
    error: Option<String>,
}

/// Where the cookie session keeps a sign-in waiting for its code.
const PENDING_KEY: &str = "pending_code";

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /login[?next=PATH]`. Someone already signed in goes straight on.
pub async fn form(
    req: HttpRequest,
    session: Session,
    state: Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let q: NextQuery = query(&req)?;
    let next = next_path::local_or_default(q.next.as_deref());
    if authenticate(&req).is_ok() {
        return Ok(see_other(&next));
    }
    let page = LoginPage {
        layout: Layout::new(None, csrf::token(&session), flash::take(&session))
            .with_passkeys(&state.passkeys),
        username: String::new(),
        next,
        error: None,
        passkeys_unavailable: state.passkeys.unavailable(),
        passkeys_origin: state.settings.public_url.clone(),
    };
    Ok(page.respond_to(&req).map_into_boxed_body())
}

#[derive(Deserialize)]
#[serde(default)]
#[derive(Default)]
pub struct LoginForm {
    username: String,
    password: String,
    /// The code step's field: a TOTP code or a recovery code.
    otp: String,
    csrf_token: String,
    next: String,
}

/// `POST /login`: signs in, sets both cookies, goes to `next` (local paths only).
pub async fn submit(
    req: HttpRequest,
    session: Session,
    state: Data<AppState>,
    form: web::Form<LoginForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    csrf::verify(&req, &session, &form.csrf_token)?;
    let next = next_path::local_or_default(Some(&form.next));
    let refused = |error: String| -> CustomizeResponder<LoginPage> {
        LoginPage {
            layout: Layout::new(None, csrf::token(&session), None).with_passkeys(&state.passkeys),
            username: form.username.chars().take(ECHO_MAX).collect(),
            next: next.clone(),
            error: Some(error),
            passkeys_unavailable: state.passkeys.unavailable(),
            passkeys_origin: state.settings.public_url.clone(),
        }
        .customize()
    };
    let code_page = |error: Option<String>| -> CustomizeResponder<CodePage> {
        CodePage {
            layout: Layout::new(None, csrf::token(&session), None),
            next: next.clone(),
            error,
        }
        .customize()
    };
    let pending = session.get::<PendingCode>(PENDING_KEY).ok().flatten();
    let now = crate::clock::now();
    let outcome = match pending {
        // The code step: no password in this form, the account is the pending one.
        Some(pending) if form.password.is_empty() => {
            if pending.until <= now {
                session.remove(PENDING_KEY);
                return Ok(refused("That took too long. Sign in again.".into())
                    .with_status(StatusCode::UNAUTHORIZED)
                    .respond_to(&req)
                    .map_into_boxed_body());
            }
            match flows::sign_in_with_code(&state, &pending, &form.otp, &client).await {
                Err(AuthError::InvalidCredentials) => {
                    return Ok(code_page(Some("That code is not right. Try again.".into()))
                        .with_status(StatusCode::UNAUTHORIZED)
                        .respond_to(&req)
                        .map_into_boxed_body())
                }
                Err(AuthError::TooManyAttempts(secs)) => {
                    return Ok(code_page(Some(format!(
                        "Too many wrong codes. Try again in {}.",
                        when::wait_text(secs)
                    )))
                    .with_status(StatusCode::TOO_MANY_REQUESTS)
                    .insert_header((header::RETRY_AFTER, secs.max(1).to_string()))
                    .respond_to(&req)
                    .map_into_boxed_body())
                }
                other => other,
            }
        }
        _ => {
            flows::sign_in(
                &state,
                &form.username,
                &form.password,
                None,
                flows::Via::Pages,
                &client,
            )
            .await
        }
    };
    match outcome {
        Ok(signed_in) => {
            let mut response = HttpResponse::SeeOther();
            response.insert_header((header::LOCATION, next));
            Ok(browser_signed_in(&state, &session, &signed_in, response).finish())
        }
        Err(AuthError::MfaRequired) => {
            // The password was right: the code step, bound to this account for 5 minutes.
            let Some(user) = Username::parse(&form.username)
                .ok()
                .map(|name| state.store.user_by_name(name))
            else {
                return Err(PageError::Internal);
            };
            let user = user.await?.ok_or(PageError::Internal)?;
            session.renew();
            let _ = session.insert(PENDING_KEY, PendingCode::new(&user, now));
            Ok(code_page(None).respond_to(&req).map_into_boxed_body())
        }
        Err(AuthError::InvalidCredentials) => Ok(refused("Wrong username or password.".into())
            .with_status(StatusCode::UNAUTHORIZED)
            .respond_to(&req)
            .map_into_boxed_body()),
        Err(AuthError::TooManyAttempts(secs)) => Ok(refused(format!(
            "Too many failed sign-ins. Try again in {}.",
            when::wait_text(secs)
        ))
        .with_status(StatusCode::TOO_MANY_REQUESTS)
        .insert_header((header::RETRY_AFTER, secs.max(1).to_string()))
        .respond_to(&req)
        .map_into_boxed_body()),
        Err(other) => Err(other.into()),
    }
}

/// A browser that signed in: a new cookie session (nothing from before carries over)
/// and both token cookies, on `response`.
pub(super) fn browser_signed_in(
    state: &AppState,
    session: &Session,
    signed_in: &SignedIn,
    mut response: HttpResponseBuilder,
) -> HttpResponseBuilder {
    session.clear();
    session.renew();
    csrf::fresh(session);
    let _ = session.insert(SID_KEY, signed_in.session_id.0);
    for cookie in signed_in.cookies(state.settings.secure_cookies) {
        response.cookie(cookie);
    }
    response
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CsrfForm {
    pub csrf_token: String,
}

/// `POST /logout`: revokes this browser's session (known from the access cookie, or from
/// the cookie session once the access cookie has expired), clears the cookies.
pub async fn logout(
    req: HttpRequest,
    session: Session,
    state: Data<AppState>,
    form: web::Form<CsrfForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    csrf::verify(&req, &session, &form.csrf_token)?;
    let identity = authenticate(&req).ok();
    let sid = identity
        .as_ref()
        .map(|i| i.session_id)
        .or_else(|| session.get::<i64>(SID_KEY).ok().flatten().map(SessionId));
    if let Some(sid) = sid {
        let actor = Actor::of(identity.map(|i| i.user_id), &client);
        let revoked = state
            .store
            .revoke_session(sid, None, RevokeReason::SignedOut, actor);
        match revoking(&state, revoked).await {
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(signed_out(&state, &session, "You have signed out."))
}

/// The answer once this browser's session is gone: cookies cleared, a fresh cookie
/// session with a message, and the sign-in form.
pub(super) fn signed_out(state: &AppState, session: &Session, message: &str) -> HttpResponse {
    session.clear();
    session.renew();
    csrf::fresh(session);
    flash::ok(session, message);
    let secure = state.settings.secure_cookies;
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login"))
        .cookie(cookies::clear_access(secure))
        .cookie(cookies::clear_refresh(secure))
        .finish()
}
