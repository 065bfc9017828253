//! All SQL. Synchronous functions over a connection, called through `Db::read` / `Db::write`
//! from handlers or directly by the CLI. Each function that changes state and records an
//! audit event does both in one transaction.
//!
//! Lookups by a primary key or unique column read with `get_result`, never `first`:
//! `first` appends `LIMIT ?`, and SQLite plans a bound LIMIT as a constant, so it
//! re-prepares such a statement every time it is bound again, which defeats the
//! statement cache.

pub mod audit;
pub mod keys;
pub mod lockout;
pub mod secrets;
pub mod sessions;
pub mod users;

use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::Sqlite;
use diesel::{Connection, QueryResult, RunQueryDsl};

use crate::db::Conn;

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
            // SQLite's busy/locked after busy_timeout ran out: a capacity problem, not a bug.
            DieselError::DatabaseError(DatabaseErrorKind::Unknown, ref info)
                if info.message().contains("locked") || info.message().contains("busy") =>
            {
                StoreError::Unavailable
            }
            other => StoreError::Database(other),
        }
    }
}

/// A write transaction that takes the write lock up front (`BEGIN IMMEDIATE`), so a
/// writer in another process queues instead of failing to upgrade a read lock. Inside
/// a transaction already (the server's writer runs every write in a batch transaction)
/// it is a savepoint: `f`'s changes stand or fall together either way.
pub fn write_tx<T, F>(conn: &mut Conn, f: F) -> Result<T, StoreError>
where
    F: FnOnce(&mut Conn) -> Result<T, StoreError>,
{
    let mut f = Some(f);
    // Diesel refuses a nested `BEGIN` before it calls `f`, so `f` is still here then.
    match conn.immediate_transaction(|conn| f.take().expect("runs once")(conn)) {
        Err(StoreError::Database(DieselError::AlreadyInTransaction)) if f.is_some() => {
            conn.transaction(|conn| f.take().expect("runs once")(conn))
        }
        other => other,
    }
}

/// A statement kept in the connection's statement cache, keyed by its SQL text.
///
/// Diesel prepares every `UPDATE` and most `INSERT`s afresh on each execution (their SQL
/// could vary with the values of one Rust type); SQLite then parses and plans them again.
/// The SQL text determines a prepared statement completely, so caching by it is sound:
/// wrap the statements of hot paths (refresh rotation, sign-in) in `Prepared(...)`.
/// Run them with `get_result` / `load` (a `RETURNING` clause where needed): `execute`
/// hands diesel a reference, whose blanket impl does not see this override.
#[derive(Debug, Clone, Copy)]
pub struct Prepared<Q>(pub Q);

impl<Q: QueryFragment<Sqlite>> QueryFragment<Sqlite> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Sqlite) -> QueryResult<bool> {
        Ok(true)
    }
}

/// No static type id: the cache key is the SQL text.
impl<Q> QueryId for Prepared<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Prepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, C> RunQueryDsl<C> for Prepared<Q> {}

/// Keyset lists are read with `limit + 1` rows: keeps `limit` of them, and says whether
/// the extra one was there (there is a next page).
pub fn split_page<T>(mut rows: Vec<T>, limit: i64) -> (Vec<T>, bool) {
    let more = rows.len() as i64 > limit;
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    (rows, more)
}

/// Who did something, from where: stored with every audit event.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user_id: Option<i64>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Actor {
    /// A request's client, acting as `user_id` when known.
    pub fn of(user_id: Option<i64>, client: &sessions::Client) -> Self {
        Actor {
            user_id,
            ip: Some(client.ip.clone()),
            user_agent: Some(client.user_agent.clone()),
        }
    }

    /// The command line on this machine.
    pub fn cli() -> Self {
        Actor {
            user_id: None,
            ip: None,
            user_agent: Some("latchkey-cli".into()),
        }
    }
}
