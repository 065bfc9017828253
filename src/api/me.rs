//! `/api/me` and the caller's own sessions.

use actix_web::web::{self, Data};
use actix_web::HttpResponse;
use serde_json::json;

use super::views::{SessionList, SessionView};
use crate::auth::flows::revoking;
use crate::auth::Auth;
use crate::client::Client;
use crate::domain::{Role, SessionId};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::sessions::RevokeReason;
use crate::store::sessions::OWN_SESSIONS_LIMIT;
use crate::store::Actor;

pub async fn me(auth: Auth) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "id": auth.user_id,
        "username": auth.username,
        "role": auth.role,
        "session_id": auth.session_id,
    }))
}

#[derive(serde::Deserialize)]
pub struct VerifyQuery {
    role: Option<String>,
}

/// `GET /api/verify[?role=admin]`: forward authentication for gateways. The same checks
/// as `/api/me`; the identity comes back in headers, for the gateway to pass upstream.
pub async fn verify(auth: Auth, query: web::Query<VerifyQuery>) -> Result<HttpResponse, ApiError> {
    if let Some(raw) = query.role.as_deref() {
        let needed: Role = raw.parse().map_err(ApiError::BadRequest)?;
        if needed == Role::Admin && auth.role != Role::Admin {
            return Err(ApiError::Forbidden);
        }
    }
    Ok(HttpResponse::NoContent()
        .insert_header(("X-Latchkey-User-Id", auth.user_id.to_string()))
        .insert_header(("X-Latchkey-Username", auth.username.clone()))
        .insert_header(("X-Latchkey-Role", auth.role.as_str()))
        .insert_header(("X-Latchkey-Session-Id", auth.session_id.to_string()))
        .insert_header(("X-Latchkey-Amr", auth.amr.methods().join(",")))
        .finish())
}

pub async fn sessions(auth: Auth, state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let user_id = auth.user_id;
    let rows = state
        .store
        .own_sessions(user_id, OWN_SESSIONS_LIMIT)
        .await?;
    Ok(HttpResponse::Ok().json(SessionList {
        sessions: rows
            .into_iter()
            .map(|r| SessionView::new(r, auth.session_id))
            .collect(),
        next_cursor: None,
    }))
}

/// Signs out one of the caller's own sessions; another user's session is "not found".
pub async fn revoke_session(
    auth: Auth,
    state: Data<AppState>,
    id: web::Path<String>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    let id: SessionId = id.parse().map_err(|_| ApiError::NotFound)?;
    let actor = Actor::of(Some(auth.user_id), &client);
    let owner = auth.user_id;
    revoking(
        &state,
        state
            .store
            .revoke_session(id, Some(owner), RevokeReason::SignedOutByUser, actor),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
