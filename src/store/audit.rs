use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::prelude::*;
use diesel::sql_types::Text;

use super::{columns, Actor, Statement, StoreError};
use crate::clock::Millis;
use crate::db::Conn;
use crate::domain::{EventId, SessionId, UserId};
use crate::schema::audit_events;

/// What an audit event records. The strings are stable: they are stored and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, AsExpression)]
#[diesel(sql_type = Text)]
pub enum EventKind {
    SignInSucceeded,
    SignInFailed,
    SignInRefused,
    LockedOut,
    RefreshReuse,
    SessionRevoked,
    UserCreated,
    RoleChanged,
    UserDisabled,
    UserEnabled,
    UserDeleted,
    PasswordChanged,
    KeyRotated,
    KeyRevoked,
    MfaEnabled,
    MfaDisabled,
    RecoveryCodeUsed,
    MfaReset,
    PasskeyAdded,
    PasskeyRemoved,
}

impl EventKind {
    pub const ALL: [EventKind; 20] = [
        EventKind::SignInSucceeded,
        EventKind::SignInFailed,
        EventKind::SignInRefused,
        EventKind::LockedOut,
        EventKind::RefreshReuse,
        EventKind::SessionRevoked,
        EventKind::UserCreated,
        EventKind::RoleChanged,
        EventKind::UserDisabled,
        EventKind::UserEnabled,
        EventKind::UserDeleted,
        EventKind::PasswordChanged,
        EventKind::KeyRotated,
        EventKind::KeyRevoked,
        EventKind::MfaEnabled,
        EventKind::MfaDisabled,
        EventKind::RecoveryCodeUsed,
        EventKind::MfaReset,
        EventKind::PasskeyAdded,
        EventKind::PasskeyRemoved,
    ];

    /// The kind a stored row names (`None` for a name this build does not know).
    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SignInSucceeded => "sign_in_succeeded",
            EventKind::SignInFailed => "sign_in_failed",
            EventKind::SignInRefused => "sign_in_refused",
            EventKind::LockedOut => "locked_out",
            EventKind::RefreshReuse => "refresh_token_reused",
            EventKind::SessionRevoked => "session_revoked",
            EventKind::UserCreated => "user_created",
            EventKind::RoleChanged => "role_changed",
            EventKind::UserDisabled => "user_disabled",
            EventKind::UserEnabled => "user_enabled",
            EventKind::UserDeleted => "user_deleted",
            EventKind::PasswordChanged => "password_changed",
            EventKind::KeyRotated => "key_rotated",
            EventKind::KeyRevoked => "key_revoked",
            EventKind::MfaEnabled => "mfa_enabled",
            EventKind::MfaDisabled => "mfa_disabled",
            EventKind::RecoveryCodeUsed => "recovery_code_used",
            EventKind::MfaReset => "mfa_reset",
            EventKind::PasskeyAdded => "passkey_added",
            EventKind::PasskeyRemoved => "passkey_removed",
        }
    }
}

// Written only: rows are read as a `RecordedKind`, which keeps kinds this build does not know.
crate::sql_types::text_enum!(EventKind);

/// The kind a stored event names: one this build knows, or a name written by a newer
/// build (instances upgraded one at a time share the log), kept as it is.
#[derive(Debug, Clone, PartialEq, Eq, FromSqlRow)]
#[diesel(sql_type = Text)]
pub enum RecordedKind {
    Known(EventKind),
    Unknown(String),
}

impl RecordedKind {
    pub fn as_str(&self) -> &str {
        match self {
            RecordedKind::Known(kind) => kind.as_str(),
            RecordedKind::Unknown(name) => name,
        }
    }
}

impl<DB> FromSql<Text, DB> for RecordedKind
where
    DB: diesel::backend::Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
        let name = String::from_sql(bytes)?;
        Ok(match EventKind::from_name(&name) {
            Some(kind) => RecordedKind::Known(kind),
            None => RecordedKind::Unknown(name),
        })
    }
}

/// One event about to be written.
pub struct Event<'a> {
    pub kind: EventKind,
    pub actor: &'a Actor,
    pub subject_user_id: Option<UserId>,
    pub subject_username: Option<&'a str>,
    pub session_id: Option<SessionId>,
    pub detail: Option<String>,
}

pub fn record(conn: &mut Conn, at: Millis, event: Event<'_>) -> Result<(), StoreError> {
    diesel::insert_into(audit_events::table)
        .values((
            audit_events::at.eq(at),
            audit_events::kind.eq(event.kind),
            audit_events::actor_user_id.eq(event.actor.user_id),
            audit_events::subject_user_id.eq(event.subject_user_id),
            audit_events::subject_username.eq(event.subject_username),
            audit_events::session_id.eq(event.session_id),
            audit_events::ip.eq(event.actor.ip.as_deref()),
            audit_events::user_agent.eq(event.actor.user_agent.as_deref()),
            audit_events::detail.eq(event.detail),
        ))
        .run(conn)?;
    Ok(())
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = audit_events, check_for_backend(diesel::sqlite::Sqlite, diesel::pg::Pg))]
pub struct AuditRow {
    pub id: EventId,
    pub at: Millis,
    pub kind: RecordedKind,
    pub actor_user_id: Option<UserId>,
    pub subject_user_id: Option<UserId>,
    pub subject_username: Option<String>,
    pub session_id: Option<SessionId>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

/// Newest first; `before` is the keyset cursor (an event id).
pub fn list(
    conn: &mut Conn,
    subject_username: Option<&str>,
    before: Option<EventId>,
    limit: i64,
) -> Result<Vec<AuditRow>, StoreError> {
    Ok(crate::on_backend!(conn, |c| {
        let mut query = audit_events::table
            .select(columns::<AuditRow>())
            .order(audit_events::id.desc())
            .limit(limit)
            .into_boxed();
        if let Some(name) = subject_username {
            query = query.filter(audit_events::subject_username.eq(name.to_owned()));
        }
        if let Some(before) = before {
            query = query.filter(audit_events::id.lt(before));
        }
        query.load(c)
    })?)
}

#[cfg(test)]
mod kind_tests {
    use super::EventKind;

    #[test]
    fn every_kind_is_listed_once_and_reads_back_from_its_name() {
        let names: std::collections::HashSet<_> =
            EventKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), EventKind::ALL.len());
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(EventKind::from_name("no_such_event"), None);
    }
}
