//! The two token cookies (`lk_access`, `lk_refresh`), built in one place, and the cookie
//! session's name.

use actix_web::cookie::time::Duration;
use actix_web::cookie::{Cookie, SameSite};

pub const ACCESS: &str = "lk_access";
pub const REFRESH: &str = "lk_refresh";
/// The pages' cookie session (CSRF token, flash message), set by actix-session.
pub const SESSION: &str = "lk_session";

pub fn access(token: &str, max_age_secs: i64, secure: bool) -> Cookie<'static> {
    Cookie::build(ACCESS, token.to_owned())
        .http_only(true)
        .same_site(SameSite::Lax)
        .path("/")
        .max_age(Duration::seconds(max_age_secs))
        .secure(secure)
        .finish()
}

pub fn refresh(token: &str, max_age_secs: i64, secure: bool) -> Cookie<'static> {
    Cookie::build(REFRESH, token.to_owned())
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/auth")
        .max_age(Duration::seconds(max_age_secs))
        .secure(secure)
        .finish()
}

pub fn clear_access(secure: bool) -> Cookie<'static> {
    access("", 0, secure)
}

pub fn clear_refresh(secure: bool) -> Cookie<'static> {
    refresh("", 0, secure)
}
