//! `/admin/sessions`: every active session, and revoking any of them.

use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use super::{cursor, user_filter, PAGE_SIZE};
use crate::auth::flows::revoking;
use crate::auth::Admin;
use crate::client::Client;
use crate::clock;
use crate::domain::SessionId;
use crate::next_path;
use crate::pages::error::PageError;
use crate::pages::flash;
use crate::pages::guard::Page;
use crate::pages::layout::Layout;
use crate::pages::login::signed_out;
use crate::pages::views::SessionItem;
use crate::pages::{query, see_other};
use crate::state::AppState;
use crate::store::sessions::RevokeReason;
use crate::store::split_page;

#[derive(Template, WebTemplate)]
#[template(path = "admin_sessions.html")]
pub struct SessionsPage {
    layout: Layout,
    user: String,
    sessions: Vec<SessionItem>,
    /// The address of this page (the revoke forms come back to it).
    here: String,
    next_page: Option<String>,
    paged: bool,
}

#[derive(Deserialize)]
pub struct SessionsQuery {
    user: Option<String>,
    after: Option<String>,
}

/// `GET /admin/sessions[?user=NAME&after=CURSOR]`, newest first, keyset-paged.
pub async fn show(
    req: HttpRequest,
    page: Page<Admin>,
    state: Data<AppState>,
) -> Result<SessionsPage, PageError> {
    let q: SessionsQuery = query(&req)?;
    let user = user_filter(q.user.as_deref())?;
    let after = cursor(q.after.as_deref())?;
    let filter = user.clone();
    let rows = state
        .store
        .active_sessions(filter, after, PAGE_SIZE + 1)
        .await?;
    let (rows, more) = split_page(rows, PAGE_SIZE);
    let now = clock::now();
    let user = user.map(|u| u.to_string()).unwrap_or_default();
    let next_page = more
        .then(|| rows.last().map(|r| r.session.id))
        .flatten()
        .map(|last| format!("/admin/sessions?user={user}&after={last}"));
    let current = page.identity.session_id;
    Ok(SessionsPage {
        layout: page.layout("sessions"),
        here: req
            .uri()
            .path_and_query()
            .map_or("/admin/sessions", |pq| pq.as_str())
            .to_owned(),
        sessions: rows
            .into_iter()
            .map(|r| SessionItem::new(r, current, now))
            .collect(),
        user,
        next_page,
        paged: after.is_some(),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RevokeForm {
    csrf_token: String,
    /// The list page to come back to.
    back: String,
}

/// `POST /admin/sessions/{id}/revoke`.
pub async fn revoke(
    page: Page<Admin>,
    state: Data<AppState>,
    id: web::Path<String>,
    form: web::Form<RevokeForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    page.check_csrf(&form.csrf_token)?;
    let id: SessionId = id.parse().map_err(|_| PageError::NotFound)?;
    let actor = page.actor(&client);
    let revoked = revoking(
        &state,
        state
            .store
            .revoke_session(id, None, RevokeReason::RevokedByAdmin, actor),
    )
    .await?
    .username;
    if id == page.identity.session_id {
        return Ok(signed_out(
            &state,
            &page.session,
            "You signed out your own session.",
        ));
    }
    flash::ok(
        &page.session,
        format!("Session {id} of {revoked} signed out."),
    );
    let back = next_path::local_or_default(Some(&form.back));
    Ok(see_other(if back.starts_with("/admin/sessions") {
        &back
    } else {
        "/admin/sessions"
    }))
}
