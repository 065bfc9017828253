//! Housekeeping: a background task that deletes what can no longer matter — expired
//! refresh tokens, sessions long past their absolute lifetime, stale sign-in failure
//! counters — a bounded batch per table per run (`store::purge`), so one run never holds
//! the write lock for long however much has piled up.

use std::time::Duration;

use actix_web::web::Data;

use crate::clock::{Millis, SECOND};
use crate::config::Settings;
use crate::state::AppState;
pub use crate::store::purge::{run_once, Policy, Purged};

/// How often the task runs; the first run is at start-up.
const INTERVAL: Duration = Duration::from_secs(60);
/// Rows deleted per table per run.
pub const BATCH: i64 = 1000;
/// How long an ended session (expired or revoked) stays for the audit view.
const KEEP_ENDED: Millis = 7 * 24 * 3600 * SECOND;

impl Policy {
    /// Ended sessions stay at least as long as an access token of theirs can live, so
    /// the revocation set of any instance (even one started later) still sees them.
    pub fn from_settings(settings: &Settings) -> Self {
        Policy {
            keep_ended: KEEP_ENDED.max(settings.token_horizon()),
            lockout_window: settings.login_lockout * SECOND,
            batch: BATCH,
        }
    }
}

/// Runs `run_once` every `INTERVAL` for as long as the server runs.
pub fn spawn(state: Data<AppState>) {
    let policy = Policy::from_settings(&state.settings);
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(INTERVAL);
        loop {
            tick.tick().await;
            match state.store.housekeep(policy).await {
                Ok(purged) if purged != Purged::default() => {
                    tracing::info!(?purged, "housekeeping purged old rows");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
            }
        }
    });
}
