//! Fills a latchkey database (already migrated: run any `latchkey` command on it first)
//! with filler users, SESSIONS sessions and TOKENS refresh tokens, in one transaction, for
//! the scale test. Sessions get older as ids get smaller; every tenth is revoked, every
//! tenth (offset by one) expired, the rest active. Each session has TOKENS / SESSIONS
//! tokens, all but the newest rotated. Prints one `FILL …` line, with `deep_cursor`: the
//! keyset cursor 90% of the way down the active sessions (a deep admin page).

use std::time::Instant;

use clap::Parser;
use rusqlite::{params, Connection};

#[derive(Parser)]
struct Cli {
    #[arg(long)]
    db: String,
    #[arg(long, default_value_t = 1_000_000)]
    sessions: i64,
    #[arg(long, default_value_t = 2_000_000)]
    tokens: i64,
    #[arg(long, default_value_t = 1_000)]
    users: i64,
}

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let started = Instant::now();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let mut conn = Connection::open(&cli.db)?;
    conn.execute_batch(
        "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL;
         PRAGMA synchronous = NORMAL; PRAGMA cache_size = -262144;",
    )?;
    let tx = conn.transaction()?;
    tx.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO users (username, password_hash, role, created_at)
         SELECT printf('fill-%06d', i), '!', 'user', ?2 FROM n",
        params![cli.users, now],
    )?;
    let (first_user, user_count): (i64, i64) = tx.query_row(
        "SELECT min(id), count(*) FROM users WHERE username LIKE 'fill-%'",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let first_session: i64 =
        tx.query_row("SELECT coalesce(max(id), 0) + 1 FROM sessions", [], |r| {
            r.get(0)
        })?;
    // Created over the last 29 days, oldest first, so ids grow with time.
    tx.execute(
        "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < ?1 - 1),
         s AS (SELECT i, ?2 - 29 * ?3 + i * (29 * ?3 / ?1) AS created FROM n)
         INSERT INTO sessions (user_id, created_at, last_used_at, expires_at,
                               absolute_expires_at, ip, user_agent, revoked_at, revoked_reason)
         SELECT ?4 + i % ?5, created, created,
                CASE i % 10 WHEN 1 THEN ?2 - ?6 ELSE ?2 + ?3 + (i % 6) * ?3 END,
                created + 30 * ?3,
                printf('192.0.2.%d', i % 250 + 1),
                'Mozilla/5.0 (X11; Linux x86_64) latchkey-bench-fill',
                CASE i % 10 WHEN 0 THEN created END,
                CASE i % 10 WHEN 0 THEN 'signed_out' END
         FROM s",
        params![cli.sessions, now, DAY, first_user, user_count, HOUR],
    )?;
    let per_session = (cli.tokens / cli.sessions).max(1);
    tx.execute(
        "WITH RECURSIVE k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < ?1 - 1)
         INSERT INTO refresh_tokens (session_id, token_hash, created_at, expires_at, rotated_at)
         SELECT s.id, randomblob(32), s.created_at, s.expires_at,
                CASE WHEN k.j < ?1 - 1 THEN s.created_at END
         FROM sessions s, k WHERE s.id >= ?2",
        params![per_session, first_session],
    )?;
    tx.commit()?;
    let count = |sql: &str| -> rusqlite::Result<i64> { conn.query_row(sql, [], |r| r.get(0)) };
    let sessions = count("SELECT count(*) FROM sessions")?;
    let tokens = count("SELECT count(*) FROM refresh_tokens")?;
    let active: i64 = conn.query_row(
        "SELECT count(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > ?1",
        [now],
        |r| r.get(0),
    )?;
    let deep_cursor: i64 = conn.query_row(
        "SELECT id FROM sessions WHERE revoked_at IS NULL AND expires_at > ?1
         ORDER BY id DESC LIMIT 1 OFFSET ?2",
        params![now, active * 9 / 10],
        |r| r.get(0),
    )?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    println!(
        "FILL sessions={sessions} tokens={tokens} active={active} deep_cursor={deep_cursor} seconds={:.1}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
