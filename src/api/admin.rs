//! `/api/admin/*`: every session and every user, for admins.

use actix_web::web::{self, Data};
use actix_web::HttpResponse;
use serde::Deserialize;

use super::views::{SessionList, SessionView, UserList, UserView};
use crate::auth::flows::revoking;
use crate::auth::{Admin, Auth};
use crate::client::Client;
use crate::domain::{listing, SessionId};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::sessions::{self, RevokeReason};
use crate::store::{split_page, Actor};

pub const DEFAULT_PAGE: i64 = 50;
pub const MAX_PAGE: i64 = 500;

#[derive(Deserialize)]
pub struct SessionQuery {
    user: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

pub async fn sessions(
    auth: Auth<Admin>,
    state: Data<AppState>,
    query: web::Query<SessionQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit = match query.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("limit must be a whole number from 1 to {MAX_PAGE}"))
            })?,
    };
    let cursor = listing::cursor(query.cursor.as_deref())
        .map_err(|_| ApiError::BadRequest("cursor is not one this service gave out".into()))?;
    let user = listing::user_filter(query.user.as_deref()).map_err(ApiError::BadRequest)?;
    let page = state.store.active_sessions(user, cursor, limit + 1).await?;
    Ok(HttpResponse::Ok().json(paged(page, limit, auth.session_id)))
}

/// Cuts one extra row off a keyset page; its presence means there is a next page.
fn paged(rows: Vec<sessions::SessionWithUser>, limit: i64, current: SessionId) -> SessionList {
    let (rows, more) = split_page(rows, limit);
    let next_cursor = more
        .then(|| rows.last().map(|r| r.session.id.to_string()))
        .flatten();
    SessionList {
        sessions: rows
            .into_iter()
            .map(|r| SessionView::new(r, current))
            .collect(),
        next_cursor,
    }
}

pub async fn revoke_session(
    auth: Auth<Admin>,
    state: Data<AppState>,
    id: web::Path<String>,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    let id: SessionId = id.parse().map_err(|_| ApiError::NotFound)?;
    let actor = Actor::of(Some(auth.user_id), &client);
    revoking(
        &state,
        state
            .store
            .revoke_session(id, None, RevokeReason::RevokedByAdmin, actor),
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn users(_: Auth<Admin>, state: Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rows = state.store.users().await?;
    Ok(HttpResponse::Ok().json(UserList {
        users: rows.into_iter().map(UserView::from).collect(),
    }))
}
