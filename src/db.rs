//! The database: SQLite (a pool of read-only connections and one writer thread) or
//! PostgreSQL (one pool of connections, any number of instances), picked from the URL.
//!
//! SQLite lets one connection write at a time. Every write of this process goes to one
//! connection owned by one thread, in arrival order: writers queue instead of waking each
//! other through SQLite's sleeping busy handler, and the writer's page and statement
//! caches stay warm because no other connection of this process changes the file under
//! it. Pooled readers are `query_only`, so a write sent down the read path fails loudly
//! (in tests) instead of quietly contending. Other processes (the CLI, a second
//! instance) still meet this one at `BEGIN IMMEDIATE` and `busy_timeout`.
//!
//! PostgreSQL has many writers (every instance, the CLI): each write runs in its own
//! READ COMMITTED transaction on a pooled connection, and writers that decide on the same
//! thing take turns on a named lock first (`store::hold`: a session, a user, a lockout
//! counter), so the store's read-then-write decisions hold exactly as they do behind
//! SQLite's single writer. (SERIALIZABLE was tried first: its predicate locks on the
//! token index failed unrelated refreshes under load faster than retries could absorb.)
//! A transaction PostgreSQL aborts as a deadlock or serialization failure is run again (a
//! few times, with a short random pause) and never reaches a client as an error.
//!
//! Everything SQL lives in `store`; this module only opens connections and runs closures
//! on them. Store functions take a [`Conn`] and run each statement on the backend's own
//! connection type through [`on_backend!`], so one body serves both backends.

use std::num::NonZeroU32;
use std::ops::DerefMut;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, R2D2Connection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, QueryResult, RunQueryDsl};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::store::error::StoreError;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// A connection of either backend: the writer's, a pooled one, or the command line's.
pub enum Conn {
    Sqlite(Box<dyn DerefMut<Target = SqliteConnection> + Send>),
    Pg(Box<dyn DerefMut<Target = PgConnection> + Send>),
}

/// An owned connection (the writer's, the command line's) in [`Conn`]'s box.
struct Owned<C>(C);

impl<C> std::ops::Deref for Owned<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.0
    }
}

impl<C> DerefMut for Owned<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.0
    }
}

/// The backend's own connection, for one statement (see [`on_backend!`]).
pub enum Backend<'a> {
    Sqlite(&'a mut SqliteConnection),
    Pg(&'a mut PgConnection),
}

impl Conn {
    pub fn backend(&mut self) -> Backend<'_> {
        match self {
            Conn::Sqlite(c) => Backend::Sqlite(c),
            Conn::Pg(c) => Backend::Pg(c),
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Conn::Pg(_))
    }

    fn is_broken(&mut self) -> bool {
        match self.backend() {
            Backend::Sqlite(c) => R2D2Connection::is_broken(c),
            Backend::Pg(c) => R2D2Connection::is_broken(c),
        }
    }
}

impl SimpleConnection for Conn {
    fn batch_execute(&mut self, query: &str) -> QueryResult<()> {
        match self.backend() {
            Backend::Sqlite(c) => c.batch_execute(query),
            Backend::Pg(c) => c.batch_execute(query),
        }
    }
}

/// Runs `$body` with `$c` bound to the backend's own connection: the body is compiled
/// once per backend, so a diesel statement written once runs on either.
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $crate::db::Conn::backend($conn) {
            $crate::db::Backend::Sqlite($c) => $body,
            $crate::db::Backend::Pg($c) => $body,
        }
    };
}

/// How long a request waits for a connection, or for its write's turn, before it is
/// refused as unavailable. A write refused this way has not run.
const WAIT: Duration = Duration::from_secs(5);

const WRITER_THREAD: &str = "latchkey-writer";

/// The PostgreSQL channel on which instances tell each other of changes (the store
/// sends on it, a [`Listener`] listens).
pub const CHANNEL: &str = "latchkey";

/// `busy_timeout` first: connections open in parallel, and anything else could meet a
/// lock held by another process before the timeout is set.
const BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 5000;";

/// How often a PostgreSQL write transaction is tried before the write is unavailable.
const SERIALIZATION_ATTEMPTS: u32 = 12;

/// Reader settings: read-only, waiting on locks like the writer.
#[derive(Debug)]
struct ReadOnly;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for ReadOnly {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!("{BUSY_TIMEOUT} PRAGMA query_only = ON;"))
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// PostgreSQL session settings: a statement waiting for a lock, or running, longer than a
/// request may wait fails (and the request answers 503) instead of hanging; a
/// transaction left idle by a stuck client cannot hold its locks for ever.
#[derive(Debug)]
struct PgSession;

const PG_SESSION: &str = "SET lock_timeout = '5s';
     SET statement_timeout = '15s';
     SET idle_in_transaction_session_timeout = '60s';";

impl CustomizeConnection<PgConnection, diesel::r2d2::Error> for PgSession {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(PG_SESSION)
            .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// The database URL as it may be printed: any password in it replaced by `<set>`.
pub fn display_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((credentials, host)) => match credentials.split_once(':') {
                Some((user, _)) => format!("{scheme}://{user}:<set>@{host}"),
                None => url.to_owned(),
            },
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Where a database URL points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location<'a> {
    /// A SQLite file: a plain path, `sqlite://PATH` or `sqlite:PATH`.
    Sqlite(&'a str),
    /// A libpq URL: `postgres://…` or `postgresql://…`.
    Postgres(&'a str),
}

pub fn locate(url: &str) -> anyhow::Result<Location<'_>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Location::Postgres(url));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if let Some((scheme, _)) = url.split_once("://") {
        if scheme != "sqlite" {
            anyhow::bail!(
                "DATABASE_URL: '{}' is neither a SQLite file path nor a postgres:// URL",
                display_url(url)
            );
        }
    }
    if path.is_empty() {
        anyhow::bail!("the database path is empty");
    }
    Ok(Location::Sqlite(path))
}

/// The writer connection: WAL (shared with every reader and process), foreign keys on.
fn open_writer(path: &str) -> anyhow::Result<SqliteConnection> {
    // A path that cannot be opened fails here at once with SQLite's reason.
    let mut conn = SqliteConnection::establish(path)
        .map_err(|e| anyhow::anyhow!("cannot open database {path}: {e}"))?;
    conn.batch_execute(&format!(
        "{BUSY_TIMEOUT}
         PRAGMA journal_mode = WAL;
         PRAGMA foreign_keys = ON;
         PRAGMA synchronous = NORMAL;"
    ))
    .map_err(|e| anyhow::anyhow!("cannot open database {path}: {e}"))?;
    Ok(conn)
}

/// Applies PostgreSQL's migrations under a session advisory lock, so instances starting
/// at once migrate one after the other.
fn migrate_postgres(conn: &mut PgConnection) -> anyhow::Result<()> {
    const MIGRATION_LOCK: i64 = 0x6c61_7463_686b_6579; // "latchkey"
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")).execute(conn)?;
    let migrated = conn
        .run_pending_migrations(POSTGRES_MIGRATIONS)
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("cannot migrate the database: {e}"));
    diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")).execute(conn)?;
    migrated
}

fn establish_postgres(url: &str) -> anyhow::Result<PgConnection> {
    PgConnection::establish(url).map_err(|e| {
        // libpq's reasons span lines ("… failed: Connection refused\n\tIs the server …").
        let reason = e
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        anyhow::anyhow!("cannot connect to {}: {reason}", display_url(url))
    })
}

/// One writable connection with migrations applied: what the command line uses (a short
/// process of its own, meeting running servers at `BEGIN IMMEDIATE` on SQLite, and in
/// its own transactions and locks on PostgreSQL).
pub fn connect(url: &str) -> anyhow::Result<Conn> {
    match locate(url)? {
        Location::Sqlite(path) => {
            let mut conn = open_writer(path)?;
            conn.run_pending_migrations(SQLITE_MIGRATIONS)
                .map_err(|e| anyhow::anyhow!("cannot migrate database {path}: {e}"))?;
            Ok(Conn::Sqlite(Box::new(Owned(conn))))
        }
        Location::Postgres(url) => {
            let mut conn = establish_postgres(url)?;
            migrate_postgres(&mut conn)?;
            conn.batch_execute(PG_SESSION)?;
            Ok(Conn::Pg(Box::new(Owned(conn))))
        }
    }
}

/// Opens the database for a server: on SQLite `pool` pooled read-only connections and
/// the writer thread; on PostgreSQL a pool of `pool` connections.
pub fn open(url: &str, pool: u32) -> anyhow::Result<Db> {
    Ok(match locate(url)? {
        Location::Sqlite(path) => {
            let writer = connect(url)?;
            let readers = Pool::builder()
                .max_size(pool)
                .min_idle(Some(1))
                .connection_timeout(WAIT)
                .connection_customizer(Box::new(ReadOnly))
                .build(ConnectionManager::<SqliteConnection>::new(path))
                .map_err(|e| anyhow::anyhow!("cannot open database {path}: {e}"))?;
            let writer = Writer::spawn(path.to_owned(), writer)
                .map_err(|e| anyhow::anyhow!("cannot start the database writer: {e}"))?;
            Db {
                pool: Pools::Sqlite(readers),
                kind: Kind::Sqlite(writer),
                errors: Arc::default(),
            }
        }
        Location::Postgres(pg_url) => {
            migrate_postgres(&mut establish_postgres(pg_url)?)?;
            let pool = Pool::builder()
                .max_size(pool)
                .min_idle(Some(1))
                .connection_timeout(WAIT)
                .connection_customizer(Box::new(PgSession))
                .build(ConnectionManager::<PgConnection>::new(pg_url))
                .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", display_url(pg_url)))?;
            Db {
                pool: Pools::Pg(pool),
                kind: Kind::Pg(pg_url.to_owned()),
                errors: Arc::default(),
            }
        }
    })
}

#[derive(Clone)]
pub struct Db {
    /// SQLite's read-only readers, or PostgreSQL's connections.
    pool: Pools,
    kind: Kind,
    /// Reads and writes that failed with `Unavailable` or a database error (metrics).
    errors: Arc<AtomicU64>,
}

#[derive(Clone)]
enum Pools {
    Sqlite(Pool<ConnectionManager<SqliteConnection>>),
    Pg(Pool<ConnectionManager<PgConnection>>),
}

impl Pools {
    fn get(&self) -> Result<Conn, StoreError> {
        match self {
            Pools::Sqlite(pool) => pool.get().map(|c| Conn::Sqlite(Box::new(c))),
            Pools::Pg(pool) => pool.get().map(|c| Conn::Pg(Box::new(c))),
        }
        .map_err(|_| StoreError::Unavailable)
    }
}

/// Where writes go: SQLite's writer thread, or (PostgreSQL, whose URL this keeps for the
/// listener) the pool.
#[derive(Clone)]
enum Kind {
    Sqlite(Writer),
    Pg(String),
}

impl Db {
    /// The PostgreSQL URL, for a connection of its own (the notification listener).
    pub fn postgres_url(&self) -> Option<&str> {
        match &self.kind {
            Kind::Pg(url) => Some(url),
            Kind::Sqlite(_) => None,
        }
    }

    /// How many reads and writes have failed (unavailable, or a database error).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    fn counted<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Unavailable | StoreError::Database(_)) = &result {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// A pooled connection for synchronous callers (start-up, tests); read-only on SQLite.
    pub fn reader(&self) -> Result<Conn, StoreError> {
        self.pool.get()
    }

    /// Runs `f` on a pooled connection (read-only on SQLite) on the blocking thread pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        let result = actix_web::web::block(move || f(&mut pool.get()?))
            .await
            .map_err(|_| StoreError::Unavailable);
        self.counted(result.and_then(|r| r))
    }

    /// Runs `f` as a write: on SQLite on the writer, after the writes queued before it;
    /// on PostgreSQL in a transaction of its own, run again if PostgreSQL aborts it (so
    /// `f` may run more than once: only its last run counts).
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnMut(&mut Conn) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let result = match &self.kind {
            Kind::Sqlite(writer) => {
                let (reply, answer) = tokio::sync::oneshot::channel();
                match writer.submit(f, move |result| {
                    let _ = reply.send(result);
                }) {
                    Ok(()) => answer.await.unwrap_or(Err(StoreError::Unavailable)),
                    Err(e) => Err(e),
                }
            }
            Kind::Pg(_) => {
                let pool = self.pool.clone();
                actix_web::web::block(move || write_transaction(&mut pool.get()?, f))
                    .await
                    .unwrap_or(Err(StoreError::Unavailable))
            }
        };
        self.counted(result)
    }

    /// [`Db::write`] for synchronous callers (start-up, tests); never from a handler
    /// (it blocks the thread) nor from a write (it would wait for itself).
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnMut(&mut Conn) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        match &self.kind {
            Kind::Sqlite(writer) => {
                if std::thread::current().name() == Some(WRITER_THREAD) {
                    debug_assert!(false, "write_blocking inside a write would wait for itself");
                    return Err(StoreError::Unavailable);
                }
                let (reply, answer) = mpsc::sync_channel(1);
                writer.submit(f, move |result| {
                    let _ = reply.send(result);
                })?;
                answer.recv().map_err(|_| StoreError::Unavailable)?
            }
            Kind::Pg(_) => write_transaction(&mut self.reader()?, f),
        }
    }
}

/// A dedicated PostgreSQL connection that `LISTEN`s on [`CHANNEL`]; it
/// runs queries too (the catch-up reads after a notice).
pub struct Listener {
    conn: Conn,
}

impl Listener {
    pub fn connect(url: &str) -> anyhow::Result<Listener> {
        let mut conn = establish_postgres(url)?;
        conn.batch_execute(PG_SESSION)?;
        conn.batch_execute(&format!("LISTEN {CHANNEL}"))?;
        Ok(Listener {
            conn: Conn::Pg(Box::new(Owned(conn))),
        })
    }

    /// The payloads that arrived since the last call, without waiting (libpq reads
    /// what the socket holds). An error means the connection is gone.
    pub fn received(&mut self) -> Result<Vec<String>, StoreError> {
        let Backend::Pg(conn) = self.conn.backend() else {
            unreachable!("a listener is a PostgreSQL connection")
        };
        let mut payloads = Vec::new();
        for notification in conn.notifications_iter() {
            payloads.push(notification.map_err(|_| StoreError::Unavailable)?.payload);
        }
        Ok(payloads)
    }

    pub fn conn(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

fn depth<C>(conn: &mut C) -> QueryResult<Option<NonZeroU32>>
where
    C: Connection<TransactionManager = AnsiTransactionManager>,
{
    AnsiTransactionManager::transaction_manager_status_mut(conn).transaction_depth()
}

fn begin<C>(conn: &mut C, sql: Option<&str>) -> QueryResult<()>
where
    C: Connection<TransactionManager = AnsiTransactionManager>,
{
    match sql {
        Some(sql) => AnsiTransactionManager::begin_transaction_sql(conn, sql),
        None => AnsiTransactionManager::begin_transaction(conn),
    }
}

/// Runs `f` in a transaction begun by `begin_sql` (or, inside one already or without
/// `begin_sql`, a plain transaction or savepoint): committed when `f` succeeds, rolled
/// back when it fails.
fn run_in_transaction<T, F>(conn: &mut Conn, begin_sql: Option<&str>, f: F) -> Result<T, StoreError>
where
    F: FnOnce(&mut Conn) -> Result<T, StoreError>,
{
    on_backend!(conn, |c| begin(c, begin_sql))?;
    match f(conn) {
        Ok(value) => {
            on_backend!(conn, |c| AnsiTransactionManager::commit_transaction(c))?;
            Ok(value)
        }
        Err(failed) => {
            match on_backend!(conn, |c| AnsiTransactionManager::rollback_transaction(c)) {
                Ok(()) | Err(DieselError::BrokenTransactionManager) => Err(failed),
                Err(rollback) => Err(rollback.into()),
            }
        }
    }
}

/// A plain transaction, or a savepoint inside one: `f`'s changes stand or fall together.
pub fn transaction<T, F>(conn: &mut Conn, f: F) -> Result<T, StoreError>
where
    F: FnOnce(&mut Conn) -> Result<T, StoreError>,
{
    run_in_transaction(conn, None, f)
}

/// A write transaction. On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`),
/// so a writer in another process queues instead of failing to upgrade a read lock; on
/// PostgreSQL it is READ COMMITTED (see the module docs), run again when PostgreSQL
/// aborts it as a deadlock or serialization failure. Inside a transaction already (the SQLite writer
/// runs every write in a batch transaction) it is a savepoint, and a retry is the outer
/// transaction's business.
pub fn write_transaction<T, F>(conn: &mut Conn, mut f: F) -> Result<T, StoreError>
where
    F: FnMut(&mut Conn) -> Result<T, StoreError>,
{
    if on_backend!(conn, |c| depth(c))?.is_some() {
        return transaction(conn, f);
    }
    if !conn.is_postgres() {
        return run_in_transaction(conn, Some("BEGIN IMMEDIATE"), f);
    }
    for attempt in 1..=SERIALIZATION_ATTEMPTS {
        match run_in_transaction(conn, Some("BEGIN ISOLATION LEVEL READ COMMITTED"), &mut f) {
            Err(e) if must_retry(&e) && attempt < SERIALIZATION_ATTEMPTS => {
                if conn.is_broken() {
                    return Err(StoreError::Unavailable);
                }
                let pause = rand::random_range(1..=(2u64 << attempt.min(6)));
                std::thread::sleep(Duration::from_millis(pause));
            }
            Err(e) if must_retry(&e) => {
                tracing::warn!(
                    "a write was aborted by PostgreSQL {SERIALIZATION_ATTEMPTS} times in a row"
                );
                return Err(StoreError::Unavailable);
            }
            other => return other,
        }
    }
    unreachable!("the last attempt returns")
}

/// PostgreSQL aborted the transaction because of a concurrent one: running it again
/// is the remedy.
fn must_retry(e: &StoreError) -> bool {
    match e {
        StoreError::Database(DieselError::DatabaseError(kind, info)) => {
            matches!(kind, DatabaseErrorKind::SerializationFailure)
                || info.message().contains("deadlock detected")
        }
        _ => false,
    }
}

/// A queued write. Given the writer connection inside its batch's transaction (or `None`
/// when it may not run), it runs and says how to answer once the batch's fate is known.
type Job = Box<dyn FnOnce(Option<&mut Conn>) -> Ran + Send>;
/// Called with `true` when the batch committed.
type Answer = Box<dyn FnOnce(bool) + Send>;

struct Ran {
    answer: Answer,
    /// The write failed with an unexpected database error: after one, SQLite or diesel
    /// may not have undone it cleanly, so the batch is not committed.
    spoils_batch: bool,
}

/// At most this many queued writes share one transaction.
const MAX_BATCH: usize = 64;

/// At most this many writes wait for the writer. A burst beyond it is answered
/// `Unavailable` (503) at once, instead of growing memory until its jobs time out: the
/// writer commits some 15 000 writes a second, so a full queue is already most of a
/// second behind, and every write in it holds a request open.
pub const QUEUE_LIMIT: usize = 4096;

/// The queue in front of the writer thread. The thread ends when the last `Db` is dropped.
#[derive(Clone)]
struct Writer {
    jobs: mpsc::SyncSender<Job>,
}

impl Writer {
    fn spawn(path: String, conn: Conn) -> std::io::Result<Writer> {
        let (jobs, queue) = mpsc::sync_channel::<Job>(QUEUE_LIMIT);
        std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || {
                let mut conn = Some(conn);
                while let Ok(first) = queue.recv() {
                    let mut batch = vec![first];
                    batch.extend(queue.try_iter().take(MAX_BATCH - 1));
                    if conn.is_none() {
                        conn = open_writer(&path)
                            .map(|c| Conn::Sqlite(Box::new(Owned(c))))
                            .map_err(|e| tracing::error!(error = %e, "cannot reopen the writer"))
                            .ok();
                    }
                    let healthy = run_batch(conn.as_mut(), batch);
                    if !healthy || conn.as_mut().is_some_and(Conn::is_broken) {
                        conn = None;
                    }
                }
            })?;
        Ok(Writer { jobs })
    }

    /// Queues `f`; `reply` gets its result once its batch has committed. A full queue
    /// ([`QUEUE_LIMIT`]) refuses it at once, as `Unavailable`. A job that
    /// waited longer than [`WAIT`] for its turn, or finds no writer connection, is
    /// answered `Unavailable` without running. `f` runs in a savepoint: when it fails, its
    /// changes are undone and the rest of the batch commits. A panic in `f` drops
    /// `reply` unanswered.
    fn submit<T, F, R>(&self, f: F, reply: R) -> Result<(), StoreError>
    where
        F: FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
        R: FnOnce(Result<T, StoreError>) + Send + 'static,
    {
        let queued = Instant::now();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Some(conn) if queued.elapsed() <= WAIT => transaction(conn, f),
                _ => Err(StoreError::Unavailable),
            };
            Ran {
                spoils_batch: matches!(result, Err(StoreError::Database(_))),
                answer: Box::new(move |committed| {
                    reply(if committed {
                        result
                    } else {
                        Err(StoreError::Unavailable)
                    });
                }),
            }
        });
        self.jobs.try_send(job).map_err(|_| StoreError::Unavailable)
    }
}

/// Group commit: runs `batch` in one `BEGIN IMMEDIATE … COMMIT` and answers every job
/// after the commit, so a batch costs one commit (WAL write) however many writes it
/// holds. Jobs that never ran (no connection, the lock not had, a panic before them) and
/// jobs of a batch that did not commit are answered `Unavailable`. A job that fails with
/// an unexpected database error, or after which the transaction is gone (SQLite rolls
/// back by itself on a full disk or an I/O error), ends the batch uncommitted: the jobs
/// after it must not run outside the batch. Returns false when the connection cannot be
/// trusted any more (a job panicked mid-transaction).
fn run_batch(conn: Option<&mut Conn>, batch: Vec<Job>) -> bool {
    let mut pending = batch.into_iter();
    let mut answers: Vec<Answer> = Vec::with_capacity(pending.len());
    let mut healthy = true;
    let mut committed = false;
    if let Some(conn) = conn {
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
            run_in_transaction(conn, Some("BEGIN IMMEDIATE"), |conn| {
                for job in pending.by_ref() {
                    let ran = job(Some(conn));
                    answers.push(ran.answer);
                    if ran.spoils_batch || !in_transaction(conn) {
                        return Err(StoreError::Unavailable);
                    }
                }
                Ok(())
            })
        }));
        match outcome {
            Ok(Ok(())) => committed = true,
            Ok(Err(e)) => tracing::warn!(error = %e, "a batch of writes did not commit"),
            Err(_) => healthy = false,
        }
    }
    answers.extend(pending.map(|job| job(None).answer));
    for answer in answers {
        answer(committed);
    }
    healthy
}

/// Whether diesel still holds a transaction open on `conn`. (`is_broken` is r2d2's test
/// for "cannot go back to a pool": a transaction is open, or diesel's state is in error.)
fn in_transaction(conn: &mut Conn) -> bool {
    conn.is_broken()
}

#[cfg(test)]
mod tests {
    #[test]
    fn printed_urls_never_show_a_password() {
        assert_eq!(
            super::display_url("postgres://latchkey:hunter2@db:5432/lk"),
            "postgres://latchkey:<set>@db:5432/lk"
        );
        assert_eq!(super::display_url("latchkey.db"), "latchkey.db");
        assert_eq!(super::display_url("postgres://db/lk"), "postgres://db/lk");
    }

    use diesel::RunQueryDsl;

    use super::*;

    #[test]
    fn urls_pick_the_backend_and_other_schemes_are_refused() {
        assert_eq!(
            locate("sqlite:///tmp/x.db").unwrap(),
            Location::Sqlite("/tmp/x.db")
        );
        assert_eq!(locate("sqlite:x.db").unwrap(), Location::Sqlite("x.db"));
        assert_eq!(locate("x.db").unwrap(), Location::Sqlite("x.db"));
        let pg = "postgres://lk@127.0.0.1:5432/lk";
        assert_eq!(locate(pg).unwrap(), Location::Postgres(pg));
        let pg = "postgresql:///lk?host=/tmp";
        assert_eq!(locate(pg).unwrap(), Location::Postgres(pg));
        let refused = locate("mysql://root:hunter2@db/lk")
            .unwrap_err()
            .to_string();
        assert!(refused.contains("mysql://root:<set>@db/lk"), "{refused}");
        assert!(locate("").is_err());
    }

    fn temp_db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path().join("t.db").to_str().unwrap(), 2).unwrap();
        (dir, db)
    }

    fn create_table(conn: &mut Conn) -> Result<(), StoreError> {
        conn.batch_execute("CREATE TABLE t (x INTEGER)")?;
        Ok(())
    }

    fn scalar(conn: &mut Conn, query: &str) -> i64 {
        let sql = format!("({query})");
        on_backend!(conn, |c| diesel::select(diesel::dsl::sql::<
            diesel::sql_types::BigInt,
        >(&sql))
        .get_result(c))
        .unwrap()
    }

    fn rows(conn: &mut Conn) -> i64 {
        scalar(conn, "SELECT count(*) FROM t")
    }

    #[test]
    fn readers_cannot_write_and_the_writer_can() {
        let (_dir, db) = temp_db();
        let refused = create_table(&mut db.reader().unwrap());
        assert!(
            matches!(refused, Err(StoreError::Database(_))),
            "{refused:?}"
        );
        db.write_blocking(create_table).unwrap();
        assert_eq!(rows(&mut db.reader().unwrap()), 0);
    }

    /// Polls `write` once: it is queued, and stays queued while the writer is held.
    async fn queue<F: std::future::Future + Unpin>(write: &mut F) {
        tokio::select! {
            biased;
            _ = write => unreachable!("queued behind a held writer"),
            () = std::future::ready(()) => {}
        }
    }

    /// Queues a write that holds the writer until the returned sender is used, and waits
    /// until the writer runs it (so what is queued next waits in the queue).
    async fn hold_writer(
        db: &Db,
    ) -> (
        mpsc::Sender<()>,
        impl std::future::Future<Output = Result<bool, StoreError>> + Unpin + '_,
    ) {
        let (release, held) = mpsc::channel::<()>();
        let (running, runs) = mpsc::channel::<()>();
        let mut blocker = Box::pin(db.write(move |_| {
            let _ = running.send(());
            Ok(held.recv().is_ok())
        }));
        queue(&mut blocker).await;
        runs.recv_timeout(Duration::from_secs(10))
            .expect("the writer runs the blocker");
        (release, blocker)
    }

    fn insert(x: i64) -> impl FnMut(&mut Conn) -> Result<(), StoreError> {
        move |conn| Ok(conn.batch_execute(&format!("INSERT INTO t VALUES ({x})"))?)
    }

    #[tokio::test]
    async fn a_burst_beyond_the_queue_is_refused_at_once_and_the_queue_still_commits() {
        let (_dir, db) = temp_db();
        db.write_blocking(create_table).unwrap();
        let (release, blocker) = hold_writer(&db).await;
        let mut queued: Vec<_> = (0..QUEUE_LIMIT as i64)
            .map(|x| Box::pin(db.write(insert(x))))
            .collect();
        for write in &mut queued {
            queue(write).await;
        }
        // One more is refused on the spot, not after waiting its turn.
        let mut refused = Box::pin(db.write(insert(-1)));
        let refused = tokio::select! {
            biased;
            answer = &mut refused => answer,
            () = std::future::ready(()) => panic!("queued beyond QUEUE_LIMIT"),
        };
        assert!(
            matches!(refused, Err(StoreError::Unavailable)),
            "{refused:?}"
        );
        release.send(()).unwrap();
        assert!(blocker.await.unwrap());
        for write in queued {
            write.await.unwrap();
        }
        assert_eq!(rows(&mut db.reader().unwrap()), QUEUE_LIMIT as i64);
    }

    #[tokio::test]
    async fn a_failed_write_in_a_batch_is_undone_and_the_others_commit() {
        let (_dir, db) = temp_db();
        db.write_blocking(create_table).unwrap();
        let (release, blocker) = hold_writer(&db).await;
        let mut failing = Box::pin(db.write(|conn| {
            insert(1)(conn)?;
            Err::<(), _>(StoreError::Conflict("refused".into()))
        }));
        let mut passing = Box::pin(db.write(insert(2)));
        queue(&mut failing).await;
        queue(&mut passing).await;
        release.send(()).unwrap();
        assert!(blocker.await.unwrap());
        assert!(matches!(failing.await, Err(StoreError::Conflict(_))));
        passing.await.unwrap();
        let mut reader = db.reader().unwrap();
        assert_eq!(rows(&mut reader), 1, "only the passing write is kept");
        assert_eq!(scalar(&mut reader, "SELECT x FROM t"), 2);
    }

    #[tokio::test]
    async fn a_batch_whose_transaction_is_lost_commits_nothing_after_it() {
        let (_dir, db) = temp_db();
        db.write_blocking(create_table).unwrap();
        // SQLite rolls back the whole transaction by itself (as on a full disk).
        db.write_blocking(|conn| {
            Ok(conn.batch_execute(
                "CREATE TEMP TRIGGER lose BEFORE INSERT ON main.t WHEN NEW.x = 1
                 BEGIN SELECT RAISE(ROLLBACK, 'transaction lost'); END;",
            )?)
        })
        .unwrap();
        let (release, blocker) = hold_writer(&db).await;
        let mut writes = [2, 1, 3].map(|x| Box::pin(db.write(insert(x))));
        for write in &mut writes {
            queue(write).await;
        }
        release.send(()).unwrap();
        // The blocker ran in a batch of its own or in the writes' batch, depending on
        // whether the writer thread took it before they were queued: either is fine.
        assert!(matches!(
            blocker.await,
            Ok(true) | Err(StoreError::Unavailable)
        ));
        for write in writes {
            assert!(matches!(write.await, Err(StoreError::Unavailable)));
        }
        assert_eq!(
            rows(&mut db.reader().unwrap()),
            0,
            "no write ran outside the batch"
        );
        db.write_blocking(insert(4)).unwrap();
        assert_eq!(rows(&mut db.reader().unwrap()), 1, "the writer still works");
    }

    #[test]
    fn a_panicking_write_is_unavailable_and_leaves_no_transaction_open() {
        let (_dir, db) = temp_db();
        db.write_blocking(create_table).unwrap();
        let panicked: Result<(), _> = db.write_blocking(|conn| {
            conn.batch_execute("INSERT INTO t VALUES (1)")?;
            panic!("a bug in a store function");
        });
        assert!(matches!(panicked, Err(StoreError::Unavailable)));
        // The half-done insert was rolled back with the connection, and the next write
        // (a store function's own transaction, nested in the batch) commits normally.
        db.write_blocking(|conn| {
            crate::store::write_tx(conn, |conn| {
                Ok(conn.batch_execute("INSERT INTO t VALUES (2)")?)
            })
        })
        .unwrap();
        assert_eq!(rows(&mut db.reader().unwrap()), 1);
    }
}
