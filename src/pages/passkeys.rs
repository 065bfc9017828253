//! Passkeys on the pages: registering and removing them on the dashboard, signing in
//! with one on `/login`. The two ceremonies are JSON calls of `static/passkeys.js` (the
//! only thing on the pages that needs JavaScript); removing is a plain form.
//!
//! A ceremony's state is kept by the store under the hash of a random id that this
//! browser's cookie session holds: it is used once, by whichever instance the browser
//! reaches next, and expires after five minutes.

use actix_session::Session;
use actix_web::web::{self, Data, Json};
use actix_web::{HttpRequest, HttpResponse};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::dashboard::{confirmed_or_back, Refusals};
use super::error::PageError;
use super::flash;
use super::guard::Page;
use super::login::browser_signed_in;
use super::{csrf, see_other};
use crate::auth::flows;
use crate::client::Client;
use crate::clock;
use crate::domain::PasskeyId;
use crate::error::ApiError;
use crate::next_path;
use crate::passkeys::{Refused, CEREMONY};
use crate::state::AppState;
use crate::store::passkeys::{NewCeremony, Purpose, MAX_PER_USER};

/// Where the cookie session keeps the id of the ceremony in progress.
const CEREMONY_KEY: &str = "passkey_ceremony";
/// The longest passkey name.
const NAME_MAX: usize = 64;

/// A new ceremony id in the cookie session (replacing any before); its hash for the store.
fn new_ceremony(session: &Session) -> Vec<u8> {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let _ = session.insert(CEREMONY_KEY, &id);
    Sha256::digest(id.as_bytes()).to_vec()
}

/// The hash of the ceremony id the cookie session holds, taken out of it.
fn current_ceremony(session: &Session) -> Option<Vec<u8>> {
    let id = session.remove_as::<String>(CEREMONY_KEY)?.ok()?;
    Some(Sha256::digest(id.as_bytes()).to_vec())
}

/// The registration calls are JSON, so a page guard's refusal is answered as JSON too:
/// an access cookie that needs renewing is 401 `invalid_token` (the script reloads the
/// page, which renews it and says to repeat the step).
fn signed_in(page: Result<Page, PageError>) -> Result<Page, ApiError> {
    page.map_err(|refused| match refused {
        PageError::Renew(_) => ApiError::MissingToken,
        PageError::EnrolFirst => ApiError::MfaRequired,
        _ => ApiError::Forbidden,
    })
}

/// Keeps a ceremony's state; a client with too many pending is told to wait.
async fn begin(state: &AppState, ceremony: NewCeremony) -> Result<(), ApiError> {
    match state.store.begin_ceremony(ceremony).await? {
        true => Ok(()),
        false => Err(ApiError::TooManyAttempts(CEREMONY.as_secs() as i64)),
    }
}

fn refused(e: Refused) -> ApiError {
    ApiError::BadRequest(format!("{e}"))
}

fn expired() -> ApiError {
    ApiError::BadRequest("this passkey request expired or was already used; try again".into())
}

/// The JSON calls carry the page's CSRF token like its forms.
fn check_csrf(req: &HttpRequest, session: &Session, token: &str) -> Result<(), ApiError> {
    csrf::verify(req, session, token).map_err(|_| {
        ApiError::CrossSite("the page's form token is missing or stale; reload the page")
    })
}

#[derive(Deserialize)]
pub struct StartRegistration {
    csrf_token: String,
    name: String,
}

/// A passkey's name as given: trimmed, 1 to 64 characters, no control characters.
fn passkey_name(raw: &str) -> Result<String, ApiError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "a passkey's name is 1 to {NAME_MAX} characters, such as \"laptop\""
        )));
    }
    Ok(name.to_owned())
}

/// `POST /account/passkeys/register/start`: the options for `navigator.credentials.create`.
pub async fn register_start(
    page: Result<Page, PageError>,
    state: Data<AppState>,
    body: Json<StartRegistration>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    let page = signed_in(page)?;
    check_csrf(page.request(), &page.session, &body.csrf_token)?;
    let name = passkey_name(&body.name)?;
    let user_id = page.identity.user_id;
    let existing = state.store.passkeys_of(user_id).await?;
    // Before the authenticator makes a credential that could not be kept.
    if existing.len() as i64 >= MAX_PER_USER {
        return Err(ApiError::Conflict(format!(
            "an account may have at most {MAX_PER_USER} passkeys: remove one first"
        )));
    }
    let (options, ceremony) = state
        .passkeys
        .start_registration(
            user_id,
            &page.identity.username,
            existing.into_iter().map(|p| p.credential_id).collect(),
        )
        .map_err(refused)?;
    let id = new_ceremony(&page.session);
    let ceremony = NewCeremony {
        id,
        purpose: Purpose::Register,
        user_id: Some(user_id),
        name: Some(name),
        state: ceremony,
        ip: client.ip,
        expires_at: clock::now() + CEREMONY,
    };
    begin(&state, ceremony).await?;
    Ok(HttpResponse::Ok().json(options))
}

#[derive(Deserialize)]
pub struct Answer {
    csrf_token: String,
    credential: serde_json::Value,
    #[serde(default)]
    next: String,
}

/// `POST /account/passkeys/register/finish`: checks the browser's answer and keeps the
/// passkey.
pub async fn register_finish(
    page: Result<Page, PageError>,
    state: Data<AppState>,
    body: Json<Answer>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    let page = signed_in(page)?;
    check_csrf(page.request(), &page.session, &body.csrf_token)?;
    let id = current_ceremony(&page.session).ok_or_else(expired)?;
    let user_id = page.identity.user_id;
    let ceremony = state
        .store
        .take_ceremony(id, Purpose::Register)
        .await?
        .filter(|c| c.user_id == Some(user_id))
        .ok_or_else(expired)?;
    let (credential, passkey) = state
        .passkeys
        .finish_registration(body.into_inner().credential, &ceremony.state)
        .map_err(refused)?;
    let name = ceremony.name.unwrap_or_default();
    let actor = page.actor(&client);
    state
        .store
        .add_passkey(user_id, credential, name.clone(), passkey, actor)
        .await?;
    tracing::info!(user = %page.identity.username, "passkey added");
    flash::ok(
        &page.session,
        format!("Passkey \u{201c}{name}\u{201d} added."),
    );
    Ok(HttpResponse::Ok().json(json!({ "redirect": "/dashboard" })))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RemoveForm {
    csrf_token: String,
    password: String,
}

/// `POST /account/passkeys/{id}/remove`: needs the password, like every change to how
/// the account signs in.
pub async fn remove(
    page: Page,
    state: Data<AppState>,
    id: web::Path<String>,
    form: web::Form<RemoveForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    page.check_csrf(&form.csrf_token)?;
    let id: PasskeyId = id.parse().map_err(|_| PageError::NotFound)?;
    let refusals = Refusals {
        wrong: "Your password is not correct: the passkey was kept.",
        too_many: "Too many wrong passwords.",
    };
    if let Some(refused) =
        confirmed_or_back(&page, &state, &form.password, None, &client, refusals).await?
    {
        return Ok(refused);
    }
    // Another user's passkey, or one already gone, is not found (the 404 page).
    let actor = page.actor(&client);
    state
        .store
        .remove_passkey(page.identity.user_id, id, actor)
        .await?;
    tracing::info!(user = %page.identity.username, "passkey removed");
    flash::ok(&page.session, "Passkey removed.");
    Ok(see_other("/dashboard"))
}

#[derive(Deserialize)]
pub struct StartSignIn {
    csrf_token: String,
}

/// `POST /login/passkey/start`: the options for `navigator.credentials.get`.
pub async fn sign_in_start(
    req: HttpRequest,
    session: Session,
    state: Data<AppState>,
    body: Json<StartSignIn>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    check_csrf(&req, &session, &body.csrf_token)?;
    let (options, ceremony) = state.passkeys.start_sign_in().map_err(refused)?;
    let id = new_ceremony(&session);
    let ceremony = NewCeremony {
        id,
        purpose: Purpose::SignIn,
        user_id: None,
        name: None,
        state: ceremony,
        ip: client.ip,
        expires_at: clock::now() + CEREMONY,
    };
    begin(&state, ceremony).await?;
    Ok(HttpResponse::Ok().json(options))
}

/// `POST /login/passkey/finish`: signs in as the passkey's account, sets both cookies,
/// and says where to go (`next`, local paths only).
pub async fn sign_in_finish(
    req: HttpRequest,
    session: Session,
    state: Data<AppState>,
    body: Json<Answer>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    check_csrf(&req, &session, &body.csrf_token)?;
    let id = current_ceremony(&session).ok_or_else(expired)?;
    let ceremony = state
        .store
        .take_ceremony(id, Purpose::SignIn)
        .await?
        .ok_or_else(expired)?;
    let body = body.into_inner();
    let next = next_path::local_or_default(Some(&body.next));
    let signed_in =
        flows::sign_in_with_passkey(&state, body.credential, &ceremony.state, &client).await?;
    Ok(
        browser_signed_in(&state, &session, &signed_in, HttpResponse::Ok())
            .json(json!({ "redirect": next })),
    )
}
