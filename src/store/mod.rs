//! All SQL. Synchronous functions over a connection, called through `Db::read` / `Db::write`
//! from handlers or directly by the CLI. Each function that changes state and records an
//! audit event does both in one transaction.
//!
//! Lookups by a primary key or unique column read with `get_result`, never `first`:
//! `first` appends `LIMIT ?`, and SQLite plans a bound LIMIT as a constant, so it
//! re-prepares such a statement every time it is bound again, which defeats the
//! statement cache.

pub mod audit;
pub mod error;
pub mod keys;
pub mod lockout;
pub mod mfa;
mod ops;
pub mod passkeys;
pub mod purge;
mod rows;
pub mod secrets;
pub mod sessions;
pub mod users;

pub use error::StoreError;
pub use ops::{AuditPage, Store};

use diesel::backend::Backend as DieselBackend;
use diesel::pg::PgConnection;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::query_dsl::methods::{ExecuteDsl, LoadQuery};
use diesel::sqlite::{Sqlite, SqliteConnection};
use diesel::{QueryResult, RunQueryDsl, Selectable};

use crate::client::Client;
use crate::db::{Backend, Conn};
use crate::domain::UserId;

/// A write transaction (see [`crate::db::write_transaction`]): `BEGIN IMMEDIATE` on
/// SQLite, READ COMMITTED (run again on a deadlock) on PostgreSQL, and a
/// savepoint inside a transaction already: `f`'s changes stand or fall together.
pub fn write_tx<T, F>(conn: &mut Conn, f: F) -> Result<T, StoreError>
where
    F: FnMut(&mut Conn) -> Result<T, StoreError>,
{
    crate::db::write_transaction(conn, f)
}

/// Runs a diesel statement on whichever backend `conn` is: `one` for `get_result`, `all`
/// for `load`, `run` for `execute`. The statement is checked against both backends at
/// compile time. (Boxed queries name one backend: run those with `on_backend!`.)
pub trait Statement: Sized {
    fn one<'query, U>(self, conn: &mut Conn) -> QueryResult<U>
    where
        Self: RunQueryDsl<SqliteConnection>
            + RunQueryDsl<PgConnection>
            + LoadQuery<'query, SqliteConnection, U>
            + LoadQuery<'query, PgConnection, U>
            + 'query,
    {
        match conn.backend() {
            Backend::Sqlite(c) => RunQueryDsl::<SqliteConnection>::get_result(self, c),
            Backend::Pg(c) => RunQueryDsl::<PgConnection>::get_result(self, c),
        }
    }

    fn all<'query, U>(self, conn: &mut Conn) -> QueryResult<Vec<U>>
    where
        Self: RunQueryDsl<SqliteConnection>
            + RunQueryDsl<PgConnection>
            + LoadQuery<'query, SqliteConnection, U>
            + LoadQuery<'query, PgConnection, U>
            + 'query,
    {
        match conn.backend() {
            Backend::Sqlite(c) => RunQueryDsl::<SqliteConnection>::load(self, c),
            Backend::Pg(c) => RunQueryDsl::<PgConnection>::load(self, c),
        }
    }

    fn run(self, conn: &mut Conn) -> QueryResult<usize>
    where
        Self: ExecuteDsl<SqliteConnection> + ExecuteDsl<PgConnection>,
    {
        match conn.backend() {
            Backend::Sqlite(c) => ExecuteDsl::<SqliteConnection>::execute(self, c),
            Backend::Pg(c) => ExecuteDsl::<PgConnection>::execute(self, c),
        }
    }
}

impl<T> Statement for T {}

pub use crate::db::CHANNEL;

/// A change the other instances must learn of at once (on PostgreSQL; SQLite has one
/// server per file and its poll).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// A session was revoked: refresh the revocation set.
    Revocation,
    /// The signing keys changed: reload them.
    Keys,
}

impl Notice {
    pub fn payload(self) -> &'static str {
        match self {
            Notice::Revocation => "revocation",
            Notice::Keys => "keys",
        }
    }

    pub fn parse(payload: &str) -> Option<Self> {
        [Notice::Revocation, Notice::Keys]
            .into_iter()
            .find(|n| n.payload() == payload)
    }
}

/// Sends `notice` on [`CHANNEL`] from inside the caller's transaction: PostgreSQL
/// delivers it when (and only if) that transaction commits.
pub fn notify(conn: &mut Conn, notice: Notice) -> Result<(), StoreError> {
    if conn.is_postgres() {
        use diesel::connection::SimpleConnection;
        conn.batch_execute(&format!("NOTIFY {CHANNEL}, '{}'", notice.payload()))?;
    }
    Ok(())
}

/// Holds the lock named `key` until the caller's transaction ends, so writers that decide
/// on the same thing (a session, a user, a lockout counter) take turns. PostgreSQL runs
/// writes at READ COMMITTED: each statement after the lock reads what the writers before
/// it committed. A transaction-scoped advisory lock, taken again by the same transaction
/// at no cost. On SQLite the writer holds the whole database already.
pub fn hold(conn: &mut Conn, key: &str) -> Result<(), StoreError> {
    if conn.is_postgres() {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind::<diesel::sql_types::Text, _>(key)
            .run(conn)?;
    }
    Ok(())
}

/// The lock sign-ins of user `id` and changes of that user take turns on: a session
/// starts either before a change that revokes the user's sessions, or after it (and
/// then sees it).
fn user_lock(id: UserId) -> String {
    format!("user:{id}")
}

/// Whether this instance's transaction may run the periodic job `job` now: on
/// PostgreSQL the one instance that takes the transaction-scoped advisory lock, on
/// SQLite always (the write lock serializes runs already).
pub fn take_turn(conn: &mut Conn, job: i64) -> Result<bool, StoreError> {
    if !conn.is_postgres() {
        return Ok(true);
    }
    Ok(
        diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
            "pg_try_advisory_xact_lock({job})"
        )))
        .one(conn)?,
    )
}

/// The columns of a row type (`#[derive(Selectable)]`), as a plain column tuple that
/// both backends load into the row's `Queryable` (`as_select()` names one backend).
pub fn columns<T: Selectable<Sqlite>>() -> T::SelectExpression {
    T::construct_selection()
}

/// A statement kept in the connection's statement cache, keyed by its SQL text.
///
/// Diesel prepares every `UPDATE` and most `INSERT`s afresh on each execution (their SQL
/// could vary with the values of one Rust type); SQLite then parses and plans them again.
/// The SQL text determines a prepared statement completely, so caching by it is sound:
/// wrap the statements of hot paths (refresh rotation, sign-in) in `Prepared(...)`.
/// Run them with `one` / `all` (a `RETURNING` clause where needed): `execute` hands
/// diesel a reference, whose blanket impl does not see this override.
#[derive(Debug, Clone, Copy)]
pub struct Prepared<Q>(pub Q);

impl<DB: DieselBackend, Q: QueryFragment<DB>> QueryFragment<DB> for Prepared<Q> {
    fn walk_ast<'b>(&'b self, pass: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
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
    pub user_id: Option<UserId>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl Actor {
    /// A request's client, acting as `user_id` when known.
    pub fn of(user_id: Option<UserId>, client: &Client) -> Self {
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
