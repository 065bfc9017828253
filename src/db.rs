//! The connection pool and the bridge from async handlers to blocking Diesel calls.
//!
//! Everything SQL lives in `store`; this module only knows how to open the
//! database, prepare each connection and run a closure on a pooled connection.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel::Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::store::StoreError;

pub type Conn = SqliteConnection;
pub type DbPool = Pool<ConnectionManager<Conn>>;

const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Per-connection settings. `busy_timeout` comes first: the pool opens connections in
/// parallel and the switch to WAL would otherwise fail with "database is locked".
#[derive(Debug)]
struct Pragmas;

impl CustomizeConnection<Conn, diesel::r2d2::Error> for Pragmas {
    fn on_acquire(&self, conn: &mut Conn) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(
            "PRAGMA busy_timeout = 5000;
             PRAGMA journal_mode = WAL;
             PRAGMA foreign_keys = ON;
             PRAGMA synchronous = NORMAL;",
        )
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// Accepts a plain path or a `sqlite://` / `sqlite:` URL.
fn database_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

/// Opens the pool and applies pending migrations.
pub fn open(url: &str, max_size: u32) -> anyhow::Result<Db> {
    let path = database_path(url);
    if path.is_empty() {
        anyhow::bail!("the database path is empty");
    }
    if url.contains("://") && !url.starts_with("sqlite://") {
        anyhow::bail!("DATABASE_URL: '{url}' is not a SQLite file path (only SQLite is supported)");
    }
    // One direct connection first: a path that cannot be opened fails at once with
    // SQLite's reason, instead of after the pool's connection timeout.
    Conn::establish(path).map_err(|e| anyhow::anyhow!("cannot open database {path}: {e}"))?;
    let manager = ConnectionManager::<Conn>::new(path);
    let pool = Pool::builder()
        .max_size(max_size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(5))
        .connection_customizer(Box::new(Pragmas))
        .build(manager)
        .map_err(|e| anyhow::anyhow!("cannot open database {path}: {e}"))?;
    let mut conn = pool
        .get()
        .map_err(|e| anyhow::anyhow!("cannot open database {path}: {e}"))?;
    conn.run_pending_migrations(MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("cannot migrate database {path}: {e}"))?;
    Ok(Db { pool })
}

#[derive(Clone)]
pub struct Db {
    pool: DbPool,
}

impl Db {
    /// A pooled connection for synchronous callers (the CLI, background tasks on the blocking pool).
    pub fn conn(&self) -> Result<PooledConnection<ConnectionManager<Conn>>, StoreError> {
        self.pool.get().map_err(|_| StoreError::Unavailable)
    }

    /// Runs `f` on a pooled connection on the blocking thread pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut Conn) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        actix_web::web::block(move || {
            let mut conn = pool.get().map_err(|_| StoreError::Unavailable)?;
            f(&mut conn)
        })
        .await
        .map_err(|_| StoreError::Unavailable)?
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_urls_and_paths_name_the_same_file() {
        assert_eq!(super::database_path("sqlite:///tmp/x.db"), "/tmp/x.db");
        assert_eq!(super::database_path("sqlite:x.db"), "x.db");
        assert_eq!(super::database_path("x.db"), "x.db");
    }
}
