//! Two-step sign-in on the dashboard: setting TOTP up (a QR code drawn on the server,
//! the base32 secret and the `otpauth://` link; confirmed by a current code), the
//! recovery codes shown once, new recovery codes and turning it off (each needing the
//! password and a code).
//!
//! The secret being set up waits in the encrypted cookie session (`lk_session`) for 10
//! minutes; it reaches the database, sealed, only once a code confirmed it.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::web::{self, Data};
use actix_web::{HttpResponse, Responder};
use askama::Template;
use askama_web::WebTemplate;
use serde::{Deserialize, Serialize};

use super::dashboard::{confirmed_or_back, Refusals};
use super::error::PageError;
use super::flash;
use super::guard::Page;
use super::layout::Layout;
use super::login::signed_out;
use super::see_other;
use crate::auth::flows;
use crate::client::Client;
use crate::clock::{self, Millis};
use crate::error::ApiError;
use crate::mfa::{qr, recovery, totp::Secret};
use crate::state::AppState;
use crate::store::sessions::RevokeReason;
use crate::store::{Actor, StoreError};
use crate::tokens::access::Amr;

/// Where `LATCHKEY_REQUIRE_MFA` sends an account without a second factor.
pub const REQUIRED_PATH: &str = "/account/mfa/required";

/// Where the cookie session keeps a secret being set up.
const SETUP_KEY: &str = "totp_setup";
const SETUP_TTL: Duration = Duration::from_secs(10 * 60);
/// The issuer authenticator apps show beside the account.
const ISSUER: &str = "latchkey";

#[derive(Serialize, Deserialize)]
struct Setup {
    /// The secret, base32.
    secret: String,
    until: Millis,
}

#[derive(Template, WebTemplate)]
#[template(path = "mfa_setup.html")]
pub struct SetupPage {
    layout: Layout,
    qr_svg: String,
    secret: String,
    uri: String,
    error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "mfa_codes.html")]
pub struct CodesPage {
    layout: Layout,
    codes: Vec<String>,
    /// Where "I have kept them" leads.
    done: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "mfa_required.html")]
pub struct RequiredPage {
    layout: Layout,
}

/// `GET /account/mfa/required`: the forced setup of `LATCHKEY_REQUIRE_MFA`. Once the
/// factor is set up, the session (signed in with the password alone) ends: signing in
/// again with a code gives a session that reaches everything.
pub async fn required(
    page: Page,
    state: Data<AppState>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    let user_id = page.identity.user_id;
    let has_factor = state.store.sealed_totp_secret(user_id).await?.is_some();
    if has_factor {
        let actor = Actor::of(Some(user_id), &client);
        let session = page.identity.session_id;
        let ended =
            state
                .store
                .revoke_session(session, Some(user_id), RevokeReason::SignedOut, actor);
        match flows::revoking(&state, ended).await {
            Ok(_) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(signed_out(
            &state,
            &page.session,
            "Two-step sign-in is on. Sign in again with a code from your app.",
        ));
    }
    Ok(RequiredPage {
        layout: page.layout_with("", flash::take(&page.session)),
    }
    .respond_to(page.request())
    .map_into_boxed_body())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CodeForm {
    csrf_token: String,
    otp: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ConfirmForm {
    csrf_token: String,
    password: String,
    otp: String,
}

fn pending_setup(page: &Page) -> Option<(Secret, String)> {
    let setup = page.session.get::<Setup>(SETUP_KEY).ok().flatten()?;
    if setup.until <= clock::now() {
        return None;
    }
    let bytes = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &setup.secret)?;
    Some((Secret::from_bytes(bytes)?, setup.secret))
}

/// `POST /account/mfa/setup`: a new secret to set up, then its page.
pub async fn start(page: Page, form: web::Form<CodeForm>) -> Result<HttpResponse, PageError> {
    page.check_csrf(&form.csrf_token)?;
    let secret = Secret::generate();
    let setup = Setup {
        secret: secret.base32(),
        until: clock::now() + SETUP_TTL,
    };
    page.session
        .insert(SETUP_KEY, setup)
        .map_err(|_| PageError::Internal)?;
    Ok(see_other("/account/mfa/setup"))
}

fn setup_page(page: &Page, secret: &Secret, error: Option<String>) -> Result<SetupPage, PageError> {
    let uri = secret.otpauth_uri(ISSUER, &page.identity.username);
    let svg = qr::svg(&uri).ok_or(PageError::Internal)?;
    // Inline in the page: the image without its XML declaration.
    let qr_svg = svg[svg.find("<svg").unwrap_or(0)..].to_owned();
    Ok(SetupPage {
        layout: page.layout_with("dashboard", None),
        qr_svg,
        secret: secret.base32(),
        uri,
        error,
    })
}

/// `GET /account/mfa/setup`: the QR code, the secret and the form for a code.
pub async fn show(page: Page) -> Result<HttpResponse, PageError> {
    let Some((secret, _)) = pending_setup(&page) else {
        return Ok(see_other("/dashboard"));
    };
    Ok(setup_page(&page, &secret, None)?
        .respond_to(page.request())
        .map_into_boxed_body())
}

/// `POST /account/mfa/confirm`: a current code turns it on; the recovery codes, once.
pub async fn confirm(
    page: Page,
    state: Data<AppState>,
    form: web::Form<CodeForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    page.check_csrf(&form.csrf_token)?;
    let Some((secret, _)) = pending_setup(&page) else {
        flash::error(&page.session, "The setup expired. Start it again.");
        return Ok(see_other("/dashboard"));
    };
    let Some(step) = secret.matching_step(&form.otp, clock::now().unix_seconds()) else {
        let again = setup_page(
            &page,
            &secret,
            Some("That code is not right. Enter the current code from your app.".into()),
        )?;
        return Ok(again
            .customize()
            .with_status(StatusCode::BAD_REQUEST)
            .respond_to(page.request())
            .map_into_boxed_body());
    };
    let user_id = page.identity.user_id;
    let codes = recovery::generate_set();
    let hashes = hashes(&state, &codes);
    let sealed = state.mfa_key.seal(user_id, secret.as_bytes());
    let actor = Actor::of(Some(user_id), &client);
    match state
        .store
        .enable_totp(user_id, sealed, step, hashes, actor)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            flash::error(&page.session, "Two-step sign-in is already on.");
            return Ok(see_other("/dashboard"));
        }
        Err(e) => return Err(ApiError::from(e).into()),
    }
    page.session.remove(SETUP_KEY);
    tracing::info!(user = %page.identity.username, "two-step sign-in turned on");
    let forced = state.settings.require_mfa.applies(page.identity.role)
        && page.identity.amr == Amr::Password;
    Ok(codes_page(
        &page,
        codes,
        if forced { REQUIRED_PATH } else { "/dashboard" },
    ))
}

fn hashes(state: &AppState, codes: &[String]) -> Vec<Vec<u8>> {
    codes
        .iter()
        .filter_map(|c| recovery::digest(&state.mfa_key, c))
        .collect()
}

fn codes_page(page: &Page, codes: Vec<String>, done: &'static str) -> HttpResponse {
    CodesPage {
        layout: page.layout_with("dashboard", None),
        codes,
        done,
    }
    .respond_to(page.request())
    .map_into_boxed_body()
}

/// The password and a code, or the dashboard's answer why not.
async fn confirmed(
    page: &Page,
    state: &Data<AppState>,
    form: &ConfirmForm,
    client: &Client,
) -> Result<Option<HttpResponse>, PageError> {
    let refusals = Refusals {
        wrong: "The password or the code is not right.",
        too_many: "Too many wrong attempts.",
    };
    confirmed_or_back(
        page,
        state,
        &form.password,
        Some(&form.otp),
        client,
        refusals,
    )
    .await
}

/// `POST /account/mfa/recovery-codes`: a new set (the old ones stop working), once.
pub async fn new_codes(
    page: Page,
    state: Data<AppState>,
    form: web::Form<ConfirmForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    page.check_csrf(&form.csrf_token)?;
    if let Some(refused) = confirmed(&page, &state, &form, &client).await? {
        return Ok(refused);
    }
    let codes = recovery::generate_set();
    state
        .store
        .replace_recovery_codes(page.identity.user_id, hashes(&state, &codes))
        .await?;
    Ok(codes_page(&page, codes, "/dashboard"))
}

/// `POST /account/mfa/disable`: turns two-step sign-in off.
pub async fn disable(
    page: Page,
    state: Data<AppState>,
    form: web::Form<ConfirmForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    page.check_csrf(&form.csrf_token)?;
    if let Some(refused) = confirmed(&page, &state, &form, &client).await? {
        return Ok(refused);
    }
    let user_id = page.identity.user_id;
    let actor = page.actor(&client);
    state.store.remove_totp(user_id, false, actor).await?;
    tracing::info!(user = %page.identity.username, "two-step sign-in turned off");
    flash::ok(&page.session, "Two-step sign-in is off.");
    Ok(see_other("/dashboard"))
}
