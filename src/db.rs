//! The database: a pool of read-only connections, and one writer.
//!
//! SQLite lets one connection write at a time. Every write of this process goes to one
//! connection owned by one thread, in arrival order: writers queue instead of waking each
//! other through SQLite's sleeping busy handler, and the writer's page and statement
//! caches stay warm because no other connection of this process changes the file under
//! it. Pooled readers are `query_only`, so a write sent down the read path fails loudly
//! (in tests) instead of quietly contending. Other processes (the CLI, a second
//! instance) still meet this one at `BEGIN IMMEDIATE` and `busy_timeout`.
//!
//! Everything SQL lives in `store`; this module only opens connections and runs closures
//! on them.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::r2d2::{
    ConnectionManager, CustomizeConnection, Pool, PooledConnection, R2D2Connection,
};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::store::StoreError;

pub type Conn = SqliteConnection;
pub type DbPool = Pool<ConnectionManager<Conn>>;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// How long a request waits for a reader, or for its write's turn, before it is refused
/// as unavailable. A write refused this way has not run.
const WAIT: Duration = Duration::from_secs(5);

const WRITER_THREAD: &str = "latchkey-writer";

/// `busy_timeout` first: connections open in parallel, and anything else could meet a
/// lock held by another process before the timeout is set.
const BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 5000;";

/// Reader settings: read-only, waiting on locks like the writer.
#[derive(Debug)]
struct ReadOnly;

impl CustomizeConnection<Conn, diesel::r2d2::Error> for ReadOnly {
    fn on_acquire(&self, conn: &mut Conn) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!("{BUSY_TIMEOUT} PRAGMA query_only = ON;"))
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

/// Accepts a plain path or a `sqlite://` / `sqlite:` URL.
fn database_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

/// The writer connection: WAL (shared with every reader and process), foreign keys on.
fn open_writer(path: &str) -> anyhow::Result<Conn> {
    // A path that cannot be opened fails here at once with SQLite's reason.
    let mut conn =
        Conn::establish(path).map_err(|e| anyhow::anyhow!("cannot open database {path}: {e}"))?;
    conn.batch_execute(&format!(
        "{BUSY_TIMEOUT}
         PRAGMA journal_mode = WAL;
         PRAGMA foreign_keys = ON;
         PRAGMA synchronous = NORMAL;"
    ))
    .map_err(|e| anyhow::anyhow!("cannot open database {path}: {e}"))?;
    Ok(conn)
}

/// One writable connection with migrations applied: what the command line uses (a short
/// process of its own, meeting running servers at `BEGIN IMMEDIATE`).
pub fn connect(url: &str) -> anyhow::Result<Conn> {
    let path = database_path(url);
    if path.is_empty() {
        anyhow::bail!("the database path is empty");
    }
    if url.contains("://") && !url.starts_with("sqlite://") {
        anyhow::bail!("DATABASE_URL: '{url}' is not a SQLite file path (only SQLite is supported)");
    }
    let mut conn = open_writer(path)?;
    conn.run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("cannot migrate database {path}: {e}"))?;
    Ok(conn)
}

/// Opens the database for a server: `readers` pooled read-only connections, and the
/// writer thread.
pub fn open(url: &str, readers: u32) -> anyhow::Result<Db> {
    let writer = connect(url)?;
    let path = database_path(url);
    let readers = Pool::builder()
        .max_size(readers)
        .min_idle(Some(1))
        .connection_timeout(WAIT)
        .connection_customizer(Box::new(ReadOnly))
        .build(ConnectionManager::<Conn>::new(path))
        .map_err(|e| anyhow::anyhow!("cannot open database {path}: {e}"))?;
    let writer = Writer::spawn(path.to_owned(), writer)
        .map_err(|e| anyhow::anyhow!("cannot start the database writer: {e}"))?;
    Ok(Db { readers, writer })
}

#[derive(Clone)]
pub struct Db {
    readers: DbPool,
    writer: Writer,
}

impl Db {
    /// A read-only pooled connection for synchronous callers (start-up, tests).
    pub fn reader(&self) -> Result<PooledConnection<ConnectionManager<Conn>>, StoreError> {
        self.readers.get().map_err(|_| StoreError::Unavailable)
    }

    /// Runs `f` on a read-only pooled connection on the blocking thread pool.
    pub async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.readers.clone();
        actix_web::web::block(move || {
            let mut conn = pool.get().map_err(|_| StoreError::Unavailable)?;
            f(&mut conn)
        })
        .await
        .map_err(|_| StoreError::Unavailable)?
    }

    /// Runs `f` on the writer, after the writes queued before it.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writer.submit(f, move |result| {
            let _ = reply.send(result);
        })?;
        answer.await.map_err(|_| StoreError::Unavailable)?
    }

    /// [`Db::write`] for synchronous callers (start-up, tests); never from a handler
    /// (it blocks the thread) nor from a write (it would wait for itself).
    pub fn write_blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        if std::thread::current().name() == Some(WRITER_THREAD) {
            debug_assert!(false, "write_blocking inside a write would wait for itself");
            return Err(StoreError::Unavailable);
        }
        let (reply, answer) = mpsc::sync_channel(1);
        self.writer.submit(f, move |result| {
            let _ = reply.send(result);
        })?;
        answer.recv().map_err(|_| StoreError::Unavailable)?
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

/// The queue in front of the writer thread. The thread ends when the last `Db` is dropped.
#[derive(Clone)]
struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    fn spawn(path: String, conn: Conn) -> std::io::Result<Writer> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || {
                let mut conn = Some(conn);
                while let Ok(first) = queue.recv() {
                    let mut batch = vec![first];
                    batch.extend(queue.try_iter().take(MAX_BATCH - 1));
                    if conn.is_none() {
                        conn = open_writer(&path)
                            .map_err(|e| tracing::error!(error = %e, "cannot reopen the writer"))
                            .ok();
                    }
                    let healthy = run_batch(conn.as_mut(), batch);
                    if !healthy || conn.as_mut().is_some_and(R2D2Connection::is_broken) {
                        conn = None;
                    }
                }
            })?;
        Ok(Writer { jobs })
    }

    /// Queues `f`; `reply` gets its result once its batch has committed. A job that
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
                Some(conn) if queued.elapsed() <= WAIT => conn.transaction(f),
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
        self.jobs.send(job).map_err(|_| StoreError::Unavailable)
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
            conn.immediate_transaction::<(), StoreError, _>(|conn| {
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
    R2D2Connection::is_broken(conn)
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
    fn sqlite_urls_and_paths_name_the_same_file() {
        assert_eq!(database_path("sqlite:///tmp/x.db"), "/tmp/x.db");
        assert_eq!(database_path("sqlite:x.db"), "x.db");
        assert_eq!(database_path("x.db"), "x.db");
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
        diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(&format!(
            "({query})"
        )))
        .get_result(conn)
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

    /// Queues a write that holds the writer until the returned sender is used.
    async fn hold_writer(
        db: &Db,
    ) -> (
        mpsc::Sender<()>,
        impl std::future::Future<Output = Result<bool, StoreError>> + Unpin + '_,
    ) {
        let (release, held) = mpsc::channel::<()>();
        let mut blocker = Box::pin(db.write(move |_| Ok(held.recv().is_ok())));
        queue(&mut blocker).await;
        (release, blocker)
    }

    fn insert(x: i64) -> impl FnOnce(&mut Conn) -> Result<(), StoreError> {
        move |conn| Ok(conn.batch_execute(&format!("INSERT INTO t VALUES ({x})"))?)
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
