//! `/admin/users`: every user, and the forms to create one, change a role, disable or
//! enable, sign out all sessions, and reset second factors.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::web::{self, Data};
use actix_web::{HttpRequest, HttpResponse, Responder};
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use crate::auth::flows::revoking;
use crate::auth::Admin;
use crate::client::Client;
use crate::clock;
use crate::domain::{Password, Role, UserId, Username};
use crate::pages::error::PageError;
use crate::pages::flash;
use crate::pages::guard::Page;
use crate::pages::layout::Layout;
use crate::pages::login::{signed_out, CsrfForm};
use crate::pages::see_other;
use crate::pages::views::Moment;
use crate::state::AppState;
use crate::store::sessions::RevokeReason;
use crate::store::StoreError;

pub struct UserItem {
    id: UserId,
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
    let counts: HashMap<UserId, i64> = counts.into_iter().collect();
    let with_totp: std::collections::HashSet<UserId> =
        state.store.users_with_totp().await?.into_iter().collect();
    let passkeys: HashMap<UserId, i64> = state.store.passkey_counts().await?.into_iter().collect();
    let now = clock::now();
    let me = page.identity.user_id;
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
                role: u.role.to_string(),
                admin: u.role == Role::Admin,
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
pub async fn show(page: Page<Admin>, state: Data<AppState>) -> Result<UsersPage, PageError> {
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
pub async fn create(
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
    let actor = page.actor(&client);
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

fn user_id(raw: &str) -> Result<UserId, PageError> {
    raw.parse::<UserId>().map_err(|_| PageError::NotFound)
}

/// Admins change other accounts here; their own role and status only through another
/// admin or the CLI, so nobody locks themselves (or the last admin) out by a click.
fn not_myself(page: &Page<Admin>, id: UserId, what: &str) -> Result<(), PageError> {
    if id == page.identity.user_id {
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
    let actor = page.actor(&client);
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
    let actor = page.actor(&client);
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
pub async fn revoke_sessions(
    page: Page<Admin>,
    state: Data<AppState>,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
    client: Client,
) -> Result<HttpResponse, PageError> {
    page.check_csrf(&form.csrf_token)?;
    let id = user_id(&id)?;
    let actor = page.actor(&client);
    let (name, n) = revoking(
        &state,
        state
            .store
            .revoke_user_sessions(id, None, RevokeReason::RevokedByAdmin, actor),
    )
    .await?;
    if id == page.identity.user_id {
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
    let actor = page.actor(&client);
    revoking(&state, state.store.remove_totp(id, true, actor)).await?;
    if id == page.identity.user_id {
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
