//! `/admin/audit`: the audit log, newest first.

use std::collections::HashMap;

use actix_web::web::Data;
use actix_web::HttpRequest;
use askama::Template;
use askama_web::WebTemplate;
use serde::Deserialize;

use super::{cursor, user_filter, PAGE_SIZE};
use crate::auth::Admin;
use crate::clock::{self, Millis};
use crate::domain::UserId;
use crate::pages::error::PageError;
use crate::pages::guard::Page;
use crate::pages::layout::Layout;
use crate::pages::query;
use crate::pages::views::Moment;
use crate::state::AppState;
use crate::store::audit::{AuditRow, EventKind, RecordedKind};
use crate::store::split_page;

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

/// An event as the page names it; a kind this build does not know (written by a newer
/// one) reads as its stored name.
fn event_name(kind: &RecordedKind) -> String {
    let kind = match kind {
        RecordedKind::Known(kind) => *kind,
        RecordedKind::Unknown(name) => return name.replace('_', " "),
    };
    match kind {
        EventKind::SignInSucceeded => "Signed in",
        EventKind::SignInFailed => "Sign-in failed",
        EventKind::SignInRefused => "Sign-in refused",
        EventKind::LockedOut => "Locked out",
        EventKind::RefreshReuse => "Refresh token reused",
        EventKind::SessionRevoked => "Session revoked",
        EventKind::UserCreated => "User created",
        EventKind::RoleChanged => "Role changed",
        EventKind::UserDisabled => "User disabled",
        EventKind::UserEnabled => "User enabled",
        EventKind::UserDeleted => "User deleted",
        EventKind::PasswordChanged => "Password changed",
        EventKind::KeyRotated => "Signing key rotated",
        EventKind::KeyRevoked => "Signing key revoked",
        EventKind::MfaEnabled => "Two-step sign-in on",
        EventKind::MfaDisabled => "Two-step sign-in off",
        EventKind::RecoveryCodeUsed => "Recovery code used",
        EventKind::MfaReset => "Second factors reset",
        EventKind::PasskeyAdded => "Passkey added",
        EventKind::PasskeyRemoved => "Passkey removed",
    }
    .into()
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
pub async fn show(
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
    let names: HashMap<UserId, String> = names.into_iter().collect();
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

fn audit_item(r: AuditRow, names: &HashMap<UserId, String>, now: Millis) -> AuditItem {
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
        kind: r.kind.as_str().to_owned(),
        subject: r.subject_username.unwrap_or_default(),
        actor,
        session: r.session_id.map(|s| s.to_string()).unwrap_or_default(),
        ip: r.ip.unwrap_or_default(),
        detail: r.detail.unwrap_or_default().replace('_', " "),
    }
}
