//! The admin pages under `/admin`: every session, the users, the audit log. Each handler
//! takes `Page<Admin>`, so a signed-in user without the role gets the 403 page.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse, Responder};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use super::error::PageError;
use super::flash;
use super::guard::Page;
use super::layout::Layout;
use super::login::{signed_out, CsrfForm};
use super::views::{Moment, SessionItem};
use super::{query, see_other};
use crate::auth::flows::revoking;
use crate::auth::Admin;
use crate::clock;
use crate::domain::{Password, Role, SessionId, UserId, Username};
use crate::next_path;
use crate::state::AppState;
use crate::store::audit::AuditRow;
use crate::store::sessions::{Client, RevokeReason};
use crate::store::{split_page, Actor, StoreError};

/// Rows per page of the session list and the audit log.
const PAGE_SIZE: i64 = 50;

fn actor(page: &Page<Admin>, client: Client) -> Actor {
    Actor::of(Some(page.identity.user_id.0), &client)
}

/// A `?user=` filter: empty means none; anything else must be a well-formed name.
fn user_filter(raw: Option<&str>) -> Result<Option<Username>, PageError> {
    match raw.map(str::trim).filter(|u| !u.is_empty()) {
        None => Ok(None),
        Some(raw) => Username::parse(raw)
            .map(Some)
            .map_err(|e| PageError::BadRequest(format!("the user filter is not a username: {e}"))),
    }
}

fn cursor(raw: Option<&str>) -> Result<Option<i64>, PageError> {
    match raw.filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(raw) => raw.parse::<SessionId>().map(|id| Some(id.0)).map_err(|_| {
            PageError::BadRequest("the page cursor is not one latchkey gave out".into())
        }),
    }
}

// ---------------------------------------------------------------- sessions

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
pub async fn sessions(
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
pub async fn revoke_session(
    page: Page<Admin>,
    state: Data<AppState>,
    id: web::Path<String>,
    form: web::Form<RevokeForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    page.check_csrf(&form.csrf_token)?;
    let id: SessionId = id.parse().map_err(|_| PageError::NotFound)?;
    let actor = actor(&page, client);
    let revoked = revoking(
        &state,
        state
            .store
            .revoke_session(id.0, None, RevokeReason::RevokedByAdmin, actor),
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

// ---------------------------------------------------------------- users

pub struct UserItem {
    id: i64,
    username: String,
    role: String,
    admin: bool,
    disabled: bool,
    is_me: bool,
    sessions: i64,
    created: Moment,
    /// Two-step sign-in is on.
    totp: bool,
    passkeys: i64,
}

/// What the create-user form held when it was refused (never the password).
#[derive(Default)]
pub struct NewUser {
    username: String,
    role: String,
    error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_users.html")]
pub struct UsersPage {
    layout: Layout,
    users: Vec<UserItem>,
    new_user: NewUser,
}

async fn users_page(
    page: &Page<Admin>,
    state: &AppState,
    new_user: NewUser,
) -> Result<UsersPage, PageError> {
    let (rows, counts) = state.store.users_with_session_counts().await?;
    let counts: HashMap<i64, i64> = counts.into_iter().collect();
    let with_totp: std::collections::HashSet<i64> =
        state.store.users_with_totp().await?.into_iter().collect();
    let passkeys: HashMap<i64, i64> = state.store.passkey_counts().await?.into_iter().collect();
    let now = clock::now();
    let me = page.identity.user_id.0;
    let flash = if new_user.error.is_some() {
        None
    } else {
        flash::take(&page.session)
    };
    Ok(UsersPage {
        layout: page.layout_with("users", flash),
        users: rows
            .into_iter()
            .map(|u| UserItem {
                id: u.id,
                role: u.role().to_string(),
                admin: u.role() == Role::Admin,
                disabled: u.disabled,
                is_me: u.id == me,
                sessions: counts.get(&u.id).copied().unwrap_or(0),
                created: Moment::new(u.created_at, now),
                totp: with_totp.contains(&u.id),
                passkeys: passkeys.get(&u.id).copied().unwrap_or(0),
                username: u.username,
            })
            .collect(),
        new_user,
    })
}

/// `GET /admin/users`.
pub async fn users(page: Page<Admin>, state: Data<AppState>) -> Result<UsersPage, PageError> {
    users_page(&page, &state, NewUser::default()).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CreateUserForm {
    csrf_token: String,
    username: String,
    password: String,
    role: String,
}

/// `POST /admin/users`: a refused form comes back with its values and the reason.
pub async fn create_user(
    page: Page<Admin>,
    state: Data<AppState>,
    form: web::Form<CreateUserForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    page.check_csrf(&form.csrf_token)?;
    let form = form.into_inner();
    let refuse = |error: String| NewUser {
        username: form.username.chars().take(Username::MAX_LEN).collect(),
        role: form.role.clone(),
        error: Some(error),
    };
    let parsed = (|| {
        let name = Username::parse(&form.username).map_err(|e| format!("Username: {e}."))?;
        let role: Role = form.role.parse().map_err(|e| format!("Role: {e}."))?;
        let password =
            Password::parse(form.password.clone()).map_err(|e| format!("Password: {e}."))?;
        Ok::<_, String>((name, role, password))
    })();
    let (name, role, password) = match parsed {
        Ok(parsed) => parsed,
        Err(error) => {
            let status = StatusCode::BAD_REQUEST;
            let body = users_page(&page, &state, refuse(error)).await?;
            return Ok(refused(body, status, page.request()));
        }
    };
    let hash = state.hasher.hash(password).await.map_err(|e| {
        tracing::error!(error = %e, "cannot hash a new password");
        PageError::Internal
    })?;
    let actor = actor(&page, client);
    let created = state
        .store
        .create_user(name.clone(), hash, role, actor)
        .await;
    match created {
        Ok(row) => {
            flash::ok(&page.session, format!("User {} created.", row.username));
            Ok(see_other("/admin/users"))
        }
        Err(StoreError::Conflict(_)) => {
            let status = StatusCode::CONFLICT;
            let error = format!("A user named {name} already exists.");
            let body = users_page(&page, &state, refuse(error)).await?;
            Ok(refused(body, status, page.request()))
        }
        Err(e) => Err(e.into()),
    }
}

fn refused(body: UsersPage, status: StatusCode, req: &HttpRequest) -> HttpResponse {
    body.customize()
        .with_status(status)
        .respond_to(req)
        .map_into_boxed_body()
}

fn user_id(raw: &str) -> Result<i64, PageError> {
    raw.parse::<UserId>()
        .map(|id| id.0)
        .map_err(|_| PageError::NotFound)
}

/// Admins change other accounts here; their own role and status only through another
/// admin or the CLI, so nobody locks themselves (or the last admin) out by a click.
fn not_myself(page: &Page<Admin>, id: i64, what: &str) -> Result<(), PageError> {
    if id == page.identity.user_id.0 {
        return Err(PageError::Conflict(format!(
            "you cannot {what} your own account here; ask another admin or use the latchkey CLI"
        )));
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RoleForm {
    csrf_token: String,
    role: String,
}

/// `POST /admin/users/{id}/role`. A demotion from admin revokes the user's sessions, so
/// the admin rights in their access tokens end at once.
pub async fn set_role(
    page: Page<Admin>,
    state: Data<AppState>,
    id: web::Path<String>,
    form: web::Form<RoleForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    page.check_csrf(&form.csrf_token)?;
    let id = user_id(&id)?;
    let role: Role = form
        .role
        .parse()
        .map_err(|e: String| PageError::BadRequest(e))?;
    not_myself(&page, id, "change the role of")?;
    let actor = actor(&page, client);
    let (row, revoked) = revoking(&state, state.store.set_role(id, role, actor)).await?;
    let name = row.username;
    let mut message = format!("{name} is now {role}.");
    if revoked > 0 {
        message.push_str(" Their sessions were signed out.");
    }
    flash::ok(&page.session, message);
    Ok(see_other("/admin/users"))
}

/// `POST /admin/users/{id}/disable`: also signs out every session of the user.
pub async fn disable(
    page: Page<Admin>,
    state: Data<AppState>,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    set_disabled(page, state, id, form, client, true).await
}

/// `POST /admin/users/{id}/enable`: the sessions revoked by disabling stay revoked.
pub async fn enable(
    page: Page<Admin>,
    state: Data<AppState>,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    set_disabled(page, state, id, form, client, false).await
}

async fn set_disabled(
    page: Page<Admin>,
    state: Data<AppState>,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
    client: Client,
    disabled: bool,
) -> Result<HttpResponse, PageError> {
    page.check_csrf(&form.csrf_token)?;
    let id = user_id(&id)?;
    if disabled {
        not_myself(&page, id, "disable")?;
    }
    let actor = actor(&page, client);
    let row = revoking(&state, state.store.set_disabled(id, disabled, actor)).await?;
    flash::ok(
        &page.session,
        if disabled {
            format!("{} disabled and signed out everywhere.", row.username)
        } else {
            format!("{} enabled. They can sign in again.", row.username)
        },
    );
    Ok(see_other("/admin/users"))
}

/// `POST /admin/users/{id}/revoke-sessions`.
pub async fn revoke_user_sessions(
    page: Page<Admin>,
    state: Data<AppState>,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    page.check_csrf(&form.csrf_token)?;
    let id = user_id(&id)?;
    let actor = actor(&page, client);
    let (name, n) = revoking(
        &state,
        state
            .store
            .revoke_user_sessions(id, None, RevokeReason::RevokedByAdmin, actor),
    )
    .await?;
    if id == page.identity.user_id.0 {
        return Ok(signed_out(
            &state,
            &page.session,
            "You signed out all your sessions.",
        ));
    }
    let sessions = if n == 1 { "session" } else { "sessions" };
    flash::ok(
        &page.session,
        format!("Signed out {n} {sessions} of {name}."),
    );
    Ok(see_other("/admin/users"))
}

/// `POST /admin/users/{id}/reset-mfa`: removes the user's second factors (a lost
/// authenticator) and signs them out everywhere.
pub async fn reset_mfa(
    page: Page<Admin>,
    state: Data<AppState>,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    page.check_csrf(&form.csrf_token)?;
    let id = user_id(&id)?;
    // An unknown id is the 404 page (via `StoreError::NotFound`).
    let user = state.store.user(id).await?;
    let actor = actor(&page, client);
    revoking(&state, state.store.remove_totp(id, true, actor)).await?;
    if id == page.identity.user_id.0 {
        return Ok(signed_out(
            &state,
            &page.session,
            "Your two-step sign-in and passkeys were reset and your sessions signed out.",
        ));
    }
    flash::ok(
        &page.session,
        format!(
            "Reset two-step sign-in of {} and signed out their sessions; their passkeys are removed too.",
            user.username
        ),
    );
    Ok(see_other("/admin/users"))
}

// ---------------------------------------------------------------- audit

pub struct AuditItem {
    at: Moment,
    kind: String,
    event: String,
    subject: String,
    actor: String,
    session: String,
    ip: String,
    detail: String,
}

/// How an event kind reads in the log.
fn event_name(kind: &str) -> String {
    match kind {
        "sign_in_succeeded" => "Signed in".into(),
        "sign_in_failed" => "Sign-in failed".into(),
        "sign_in_refused" => "Sign-in refused".into(),
        "locked_out" => "Locked out".into(),
        "refresh_token_reused" => "Refresh token reused".into(),
        "session_revoked" => "Session revoked".into(),
        "user_created" => "User created".into(),
        "role_changed" => "Role changed".into(),
        "user_disabled" => "User disabled".into(),
        "user_enabled" => "User enabled".into(),
        "user_deleted" => "User deleted".into(),
        "password_changed" => "Password changed".into(),
        "key_rotated" => "Signing key rotated".into(),
        "key_revoked" => "Signing key revoked".into(),
        "mfa_enabled" => "Two-step sign-in on".into(),
        "mfa_disabled" => "Two-step sign-in off".into(),
        "recovery_code_used" => "Recovery code used".into(),
        "mfa_reset" => "Second factors reset".into(),
        "passkey_added" => "Passkey added".into(),
        "passkey_removed" => "Passkey removed".into(),
        other => other.replace('_', " "),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin_audit.html")]
pub struct AuditPage {
    layout: Layout,
    user: String,
    events: Vec<AuditItem>,
    next_page: Option<String>,
    paged: bool,
}

#[derive(Deserialize)]
pub struct AuditQuery {
    user: Option<String>,
    before: Option<String>,
}

/// `GET /admin/audit[?user=NAME&before=CURSOR]`, newest first.
pub async fn audit(
    req: HttpRequest,
    page: Page<Admin>,
    state: Data<AppState>,
) -> Result<AuditPage, PageError> {
    let q: AuditQuery = query(&req)?;
    let user = user_filter(q.user.as_deref())?;
    let before = cursor(q.before.as_deref())?;
    let filter = user.as_ref().map(|u| u.to_string());
    let (rows, names) = state
        .store
        .audit_page(filter, before, PAGE_SIZE + 1)
        .await?;
    let (rows, more) = split_page(rows, PAGE_SIZE);
    let names: HashMap<i64, String> = names.into_iter().collect();
    let user = user.map(|u| u.to_string()).unwrap_or_default();
    let next_page = more
        .then(|| rows.last().map(|r| r.id))
        .flatten()
        .map(|last| format!("/admin/audit?user={user}&before={last}"));
    let now = clock::now();
    Ok(AuditPage {
        layout: page.layout("audit"),
        events: rows
            .into_iter()
            .map(|r| audit_item(r, &names, now))
            .collect(),
        user,
        next_page,
        paged: before.is_some(),
    })
}

fn audit_item(r: AuditRow, names: &HashMap<i64, String>, now: i64) -> AuditItem {
    let actor = match (r.actor_user_id, r.user_agent.as_deref()) {
        (Some(id), _) => names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("user {id}")),
        (None, Some("latchkey-cli")) => "command line".into(),
        (None, _) => String::new(),
    };
    AuditItem {
        at: Moment::new(r.at, now),
        event: event_name(&r.kind),
        kind: r.kind,
        subject: r.subject_username.unwrap_or_default(),
        actor,
        session: r.session_id.map(|s| s.to_string()).unwrap_or_default(),
        ip: r.ip.unwrap_or_default(),
        detail: r.detail.unwrap_or_default().replace('_', " "),
    }
}
