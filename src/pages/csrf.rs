//! CSRF protection for every page form: a synchronizer token kept in the encrypted cookie
//! session, echoed by each form in `csrf_token` and compared in constant time; plus the
//! `Origin` / `Sec-Fetch-Site` check that refuses cross-site posts outright.

use actix_session::Session;
use actix_web::HttpRequest;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::error::PageError;
use crate::origin;

const KEY: &str = "csrf";

/// The session's token, created on first use.
pub fn token(session: &Session) -> String {
    if let Ok(Some(token)) = session.get::<String>(KEY) {
        return token;
    }
    fresh(session)
}

/// Replaces the token (after sign-in and sign-out, so no token outlives a change of user).
pub fn fresh(session: &Session) -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    if let Err(e) = session.insert(KEY, &token) {
        tracing::warn!(error = %e, "cannot store the CSRF token");
    }
    token
}

/// Accepts a form post only from our own pages with the session's token.
pub fn verify(req: &HttpRequest, session: &Session, presented: &str) -> Result<(), PageError> {
    if !origin::is_same_origin(req) {
        return Err(PageError::Csrf);
    }
    let expected = session.get::<String>(KEY).ok().flatten();
    match expected {
        Some(expected)
            if !presented.is_empty()
                && bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) =>
        {
            Ok(())
        }
        _ => Err(PageError::Csrf),
    }
}
