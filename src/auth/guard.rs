//! The guard: an extractor that accepts a request only with a valid access token of a
//! live session and the role the handler names in its type (`Auth<AnyRole>`, `Auth<Admin>`).

use std::future::{ready, Ready};
use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpRequest};

use crate::cookies;
use crate::domain::{Role, SessionId, UserId};
use crate::error::ApiError;
use crate::state::AppState;
use crate::tokens::access::{Amr, TokenError};

/// Who is calling, as their access token says.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub username: String,
    pub role: Role,
    pub amr: Amr,
}

impl Identity {
    /// `LATCHKEY_REQUIRE_MFA`: a session of an account the policy covers that signed in
    /// with the password alone (on the pages, to set a second factor up) may reach that
    /// setup and nothing else.
    pub fn only_for_mfa_setup(&self, req: &HttpRequest) -> bool {
        let policy = req
            .app_data::<Data<AppState>>()
            .map(|state| state.settings.require_mfa);
        policy.is_some_and(|p| p.applies(self.role)) && self.amr == Amr::Password
    }
}

pub trait RoleRequirement {
    fn allows(role: Role) -> bool;
}

/// Any signed-in user.
pub struct AnyRole;
/// Admins only.
pub struct Admin;

impl RoleRequirement for AnyRole {
    fn allows(_: Role) -> bool {
        true
    }
}

impl RoleRequirement for Admin {
    fn allows(role: Role) -> bool {
        role == Role::Admin
    }
}

/// A signed-in caller who meets `R`.
pub struct Auth<R: RoleRequirement = AnyRole> {
    pub identity: Identity,
    _role: PhantomData<R>,
}

impl<R: RoleRequirement> std::ops::Deref for Auth<R> {
    type Target = Identity;
    fn deref(&self) -> &Identity {
        &self.identity
    }
}

/// The access token of a request: `Authorization: Bearer …`, else the `lk_access` cookie.
/// Another scheme (Basic, …) carries no bearer token (RFC 6750 §3.1: answered like none);
/// `Bearer` with an empty or unreadable credential is a malformed token.
fn presented_token(req: &HttpRequest) -> Option<String> {
    let bearer = req.headers().get(header::AUTHORIZATION).and_then(|value| {
        let value = value.to_str().unwrap_or("Bearer ");
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned())
    });
    bearer.or_else(|| req.cookie(cookies::ACCESS).map(|c| c.value().to_owned()))
}

/// Verifies the request's access token and the liveness of its session.
pub fn authenticate(req: &HttpRequest) -> Result<Identity, ApiError> {
    let state = req.app_data::<Data<AppState>>().ok_or(ApiError::Internal)?;
    let token = presented_token(req).ok_or(ApiError::MissingToken)?;
    let verified = state.tokens.verify(&token).map_err(|e| match e {
        TokenError::Expired => ApiError::TokenExpired,
        TokenError::Invalid | TokenError::NoSigningKey => ApiError::InvalidToken,
    })?;
    if state.revoked.contains(verified.session_id) {
        return Err(ApiError::SessionRevoked);
    }
    Ok(Identity {
        user_id: verified.user_id,
        session_id: verified.session_id,
        username: verified.username,
        role: verified.role,
        amr: verified.amr,
    })
}

impl<R: RoleRequirement> FromRequest for Auth<R> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|identity| {
            // A session good only for setting a second factor up: not the API, not a
            // gateway.
            if identity.only_for_mfa_setup(req) {
                return Err(ApiError::MfaRequired);
            }
            if R::allows(identity.role) {
                Ok(Auth {
                    identity,
                    _role: PhantomData,
                })
            } else {
                Err(ApiError::Forbidden)
            }
        }))
    }
}
