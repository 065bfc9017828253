//! What a store operation can fail with, and how diesel's errors map onto it. Its own
//! file, below both the store and `db` (which answers `Unavailable` itself).

use diesel::result::{DatabaseErrorKind, Error as DieselError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("the database is unavailable")]
    Unavailable,
    #[error("database error: {0}")]
    Database(DieselError),
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => StoreError::NotFound,
            // PostgreSQL went away (restarted, unreachable): a pooled connection finds out
            // at its next statement.
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => StoreError::Unavailable,
            // Text no row can hold (PostgreSQL refuses a NUL in text): a lookup by it
            // finds nothing. Inputs are checked before they get here; this is the net.
            DieselError::DatabaseError(_, ref info)
                if info.message().starts_with("invalid byte sequence") =>
            {
                StoreError::NotFound
            }
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if unavailable(info.message()) =>
            {
                StoreError::Unavailable
            }
            other => StoreError::Database(other),
        }
    }
}

/// Messages of a database that cannot serve now, rather than of a bug: SQLite's
/// busy/locked after `busy_timeout` ran out, PostgreSQL shutting down or gone.
fn unavailable(message: &str) -> bool {
    [
        "locked",
        "busy",
        "lock timeout",
        "statement timeout",
        "terminating connection",
        "server closed the connection",
        "no connection to the server",
        "the database system is",
    ]
    .iter()
    .any(|m| message.contains(m))
}
