//! Housekeeping: a background task that deletes what can no longer matter — expired
//! refresh tokens, sessions long past their absolute lifetime, stale sign-in failure
//! counters — a bounded batch per table per run, so one run never holds the write lock
//! for long however much has piled up. Instances sharing a PostgreSQL database take
//! turns: a pass runs only in the transaction that holds the housekeeping advisory lock.

use std::time::Duration;

use actix_web::web::Data;

use crate::clock::{self, Millis, SECOND};
use crate::config::Settings;
use crate::db::Conn;
use crate::state::AppState;
use crate::store::{self, lockout, sessions, StoreError};

/// How often the task runs; the first run is at start-up.
const INTERVAL: Duration = Duration::from_secs(60);
/// The advisory lock that gives one instance the turn ("lk-hk").
const HOUSEKEEPING_TURN: i64 = 0x6c6b_2d68_6b;
/// Rows deleted per table per run.
pub const BATCH: i64 = 1000;
/// How long an ended session (expired or revoked) stays for the audit view.
const KEEP_ENDED: Millis = 7 * 24 * 3600 * SECOND;

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Sessions whose absolute lifetime ended, and whose revocation (if any) happened,
    /// longer ago than this are deleted.
    pub keep_ended: Millis,
    /// Sign-in failure counters are counted over this window.
    pub lockout_window: Millis,
    /// Rows per table per run.
    pub batch: i64,
}

impl Policy {
    /// Ended sessions stay at least as long as an access token of theirs can live, so
    /// the revocation set of any instance (even one started later) still sees them.
    pub fn from_settings(settings: &Settings) -> Self {
        Policy {
            keep_ended: KEEP_ENDED.max(crate::startup::token_horizon(settings)),
            lockout_window: settings.login_lockout * SECOND,
            batch: BATCH,
        }
    }
}

/// What one run deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub refresh_tokens: usize,
    pub sessions: usize,
    pub login_failures: usize,
}

/// One pass at `now`.
/// On PostgreSQL only one instance at a time gets the turn; the others skip this pass.
pub fn run_once(conn: &mut Conn, now: Millis, policy: &Policy) -> Result<Purged, StoreError> {
    if !store::take_turn(conn, HOUSEKEEPING_TURN)? {
        return Ok(Purged::default());
    }
    Ok(Purged {
        refresh_tokens: sessions::purge_expired_tokens(conn, now, policy.batch)?,
        sessions: sessions::purge_ended(conn, now - policy.keep_ended, policy.batch)?,
        login_failures: lockout::purge_stale(conn, now, now - policy.lockout_window, policy.batch)?,
    })
}

/// Runs `run_once` every `INTERVAL` for as long as the server runs.
pub fn spawn(state: Data<AppState>) {
    let policy = Policy::from_settings(&state.settings);
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(INTERVAL);
        loop {
            tick.tick().await;
            match state
                .db
                .write(move |conn| run_once(conn, clock::now(), &policy))
                .await
            {
                Ok(purged) if purged != Purged::default() => {
                    tracing::info!(?purged, "housekeeping purged old rows");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
            }
        }
    });
}
