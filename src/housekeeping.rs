//! Housekeeping: a background task (run by `tasks`) that deletes what can no longer matter — expired
//! refresh tokens, sessions long past their absolute lifetime, stale sign-in failure
//! counters — a bounded batch per table per run (`store::purge`), so one run never holds
//! the write lock for long however much has piled up.

use std::time::Duration;

use crate::config::Settings;
pub use crate::store::purge::{run_once, Policy, Purged};

/// How often the task runs (see `tasks`); the first run is at start-up.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// Rows deleted per table per run.
pub const BATCH: i64 = 1000;
/// How long an ended session (expired or revoked) stays for the audit view.
const KEEP_ENDED: Duration = Duration::from_secs(7 * 24 * 3600);

impl Policy {
    /// Ended sessions stay at least as long as an access token of theirs can live, so
    /// the revocation set of any instance (even one started later) still sees them.
    pub fn from_settings(settings: &Settings) -> Self {
        Policy {
            keep_ended: KEEP_ENDED.max(settings.token_horizon()),
            lockout_window: settings.login_lockout,
            batch: BATCH,
        }
    }
}
