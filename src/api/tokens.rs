//! `/auth/*`: sign-in, refresh, sign-out and the page renew redirect.

use actix_web::http::header;
use actix_web::web::{self, Data};
use actix_web::{FromRequest, HttpRequest, HttpResponse, HttpResponseBuilder};
use askama::Template;
use serde::{Deserialize, Serialize};

use crate::auth::flows::Via;
use crate::auth::flows::{self, AuthError, SignedIn};
use crate::client::Client;
use crate::cookies;
use crate::error::{ApiError, OAuthError};
use crate::next_path;
use crate::origin;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
    /// A TOTP code or a recovery code, for an account with two-step sign-in.
    #[serde(default)]
    otp: Option<String>,
}

#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    refresh_expires_in: i64,
}

fn no_store(mut builder: HttpResponseBuilder) -> HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    builder
}

fn token_response(state: &AppState, signed_in: &SignedIn) -> HttpResponse {
    let secure = state.settings.secure_cookies;
    no_store(HttpResponse::Ok())
        .cookie(cookies::refresh(
            signed_in.refresh.expose(),
            signed_in.refresh_expires_in,
            secure,
        ))
        .json(TokenBody {
            access_token: &signed_in.access.token,
            token_type: "Bearer",
            expires_in: signed_in.access.expires_in,
            refresh_expires_in: signed_in.refresh_expires_in,
        })
}

/// `POST /auth/token`: JSON credentials (the refresh token in a cookie), or the RFC 6749
/// form-encoded grants of native clients (the refresh token in the body).
pub async fn token(
    req: HttpRequest,
    payload: web::Payload,
    state: Data<AppState>,
    client: Client,
) -> Result<HttpResponse, actix_web::Error> {
    let mut payload = payload.into_inner();
    if is_form(&req) {
        let body = web::Bytes::from_request(&req, &mut payload)
            .await
            .map_err(|e| OAuthError::from(body_error(&e)))?;
        return Ok(native_grant(&state, &body, &client).await?);
    }
    let body = web::Json::<Credentials>::from_request(&req, &mut payload).await?;
    let signed_in = flows::sign_in(
        &state,
        &body.username,
        &body.password,
        body.otp.as_deref(),
        Via::Api,
        &client,
    )
    .await
    .map_err(ApiError::from)?;
    Ok(token_response(&state, &signed_in))
}

fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn body_error(e: &actix_web::Error) -> ApiError {
    if e.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge
    } else {
        ApiError::BadRequest("the request body could not be read".into())
    }
}

/// The fields of both native grants (RFC 6749 §4.3 and §6).
#[derive(Deserialize)]
struct GrantForm {
    grant_type: Option<String>,
    username: Option<String>,
    password: Option<String>,
    otp: Option<String>,
    refresh_token: Option<String>,
}

#[derive(Serialize)]
struct NativeTokenBody<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    refresh_token: &'a str,
    refresh_expires_in: i64,
}

async fn native_grant(
    state: &Data<AppState>,
    body: &[u8],
    client: &Client,
) -> Result<HttpResponse, OAuthError> {
    let form: GrantForm = serde_urlencoded::from_bytes(body)
        .map_err(|_| OAuthError::InvalidRequest("the form body is malformed".into()))?;
    let missing = |name: &str| OAuthError::InvalidRequest(format!("{name} is required"));
    let signed_in = match form.grant_type.as_deref() {
        Some("password") => {
            let username = form.username.ok_or_else(|| missing("username"))?;
            let password = form.password.ok_or_else(|| missing("password"))?;
            flows::sign_in(
                state,
                &username,
                &password,
                form.otp.as_deref(),
                Via::Api,
                client,
            )
            .await?
        }
        Some("refresh_token") => {
            let token = form.refresh_token.ok_or_else(|| missing("refresh_token"))?;
            flows::refresh(state, Some(&token), client).await?
        }
        Some(_) => return Err(OAuthError::UnsupportedGrantType),
        None => return Err(missing("grant_type")),
    };
    Ok(no_store(HttpResponse::Ok()).json(NativeTokenBody {
        access_token: &signed_in.access.token,
        token_type: "Bearer",
        expires_in: signed_in.access.expires_in,
        refresh_token: signed_in.refresh.expose(),
        refresh_expires_in: signed_in.refresh_expires_in,
    }))
}

/// Cookie-authenticated POSTs refuse cross-site callers (see `origin`).
fn same_origin(req: &HttpRequest) -> Result<(), ApiError> {
    if origin::is_same_origin(req) {
        Ok(())
    } else {
        Err(ApiError::CrossSite("cross-site requests are refused"))
    }
}

fn refresh_cookie(req: &HttpRequest) -> Option<String> {
    req.cookie(cookies::REFRESH).map(|c| c.value().to_owned())
}

pub async fn refresh(
    req: HttpRequest,
    state: Data<AppState>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    same_origin(&req)?;
    match flows::refresh(&state, refresh_cookie(&req).as_deref(), &client).await {
        Ok(signed_in) => Ok(token_response(&state, &signed_in)),
        Err(AuthError::InvalidRefreshToken) => {
            let mut response =
                actix_web::ResponseError::error_response(&ApiError::InvalidRefreshToken);
            let _ = response.add_cookie(&cookies::clear_refresh(state.settings.secure_cookies));
            Ok(response)
        }
        Err(other) => Err(other.into()),
    }
}

pub async fn logout(
    req: HttpRequest,
    state: Data<AppState>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    same_origin(&req)?;
    flows::sign_out(&state, refresh_cookie(&req).as_deref(), &client).await?;
    let secure = state.settings.secure_cookies;
    Ok(no_store(HttpResponse::NoContent())
        .cookie(cookies::clear_refresh(secure))
        .cookie(cookies::clear_access(secure))
        .finish())
}

#[derive(Deserialize)]
pub struct Next {
    next: Option<String>,
    /// Set on the same-site second try after a cross-site arrival.
    again: Option<String>,
}

/// The same-site step after a cross-site arrival: the browser held back the
/// `SameSite=Strict` refresh cookie, and loads this page's own request again from our
/// origin, which sends it.
#[derive(Template)]
#[template(path = "renew_bounce.html")]
struct Bounce {
    again: String,
}

fn arrived_cross_site(req: &HttpRequest) -> bool {
    req.headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
}

/// Pages send a visitor without a valid access cookie here: rotate the refresh cookie
/// and go back, or go to the sign-in form when that is not possible.
///
/// Without a refresh cookie nothing is cleared: a cross-site navigation never carries
/// it (`SameSite=Strict`), so its absence says nothing about the session. Such an
/// arrival first goes through one same-site step (`Bounce`); only if the cookie is still
/// missing then does the visitor see the sign-in form. A refresh cookie that came and
/// was refused clears both cookies.
pub async fn renew(
    req: HttpRequest,
    state: Data<AppState>,
    query: web::Query<Next>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    let next = next_path::local_or_default(query.next.as_deref());
    let secure = state.settings.secure_cookies;
    let Some(presented) = refresh_cookie(&req) else {
        if arrived_cross_site(&req) && query.again.is_none() {
            let again = format!("{}&again=1", next_path::renew_url(&next));
            let body = Bounce { again }.render().map_err(|_| ApiError::Internal)?;
            return Ok(no_store(HttpResponse::Ok())
                .content_type("text/html; charset=utf-8")
                .body(body));
        }
        return Ok(no_store(HttpResponse::SeeOther())
            .insert_header((header::LOCATION, next_path::login_url(&next)))
            .finish());
    };
    match flows::refresh(&state, Some(&presented), &client).await {
        Ok(signed_in) => {
            let [access, refresh] = signed_in.cookies(secure);
            Ok(no_store(HttpResponse::SeeOther())
                .insert_header((header::LOCATION, next))
                .cookie(access)
                .cookie(refresh)
                .finish())
        }
        Err(AuthError::InvalidRefreshToken) => Ok(no_store(HttpResponse::SeeOther())
            .insert_header((header::LOCATION, next_path::login_url(&next)))
            .cookie(cookies::clear_refresh(secure))
            .cookie(cookies::clear_access(secure))
            .finish()),
        Err(other) => Err(other.into()),
    }
}
