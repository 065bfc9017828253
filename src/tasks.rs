//! The server's background work, started with it and stopped when it stops: the
//! revocation set follows the database, the signing keys are reloaded (and rotated when
//! `LATCHKEY_KEY_ROTATION` says so), and housekeeping purges old rows. Each is a loop on
//! an interval; [`Tasks`] holds their handles. (On PostgreSQL, `notices` runs a thread of
//! its own that ends with the state it holds weakly; the metrics listener is a server,
//! stopped with the main one.)

use std::future::Future;
use std::time::Duration;

use actix_web::rt::task::JoinHandle;
use actix_web::web::Data;

use crate::clock;
use crate::housekeeping::{self, Policy, Purged};
use crate::state::AppState;
use crate::tokens::keys::{usable_since, KeyAlg, KEY_POLL};

/// How often the revocation set asks the database for new revocations.
const REVOCATION_POLL: Duration = Duration::from_millis(250);
/// The running background tasks of one server.
pub struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    /// Starts every task for `state` (on the current actix runtime).
    pub fn start(state: &Data<AppState>) -> Tasks {
        let mut tasks = vec![every(REVOCATION_POLL, state, sync_revocations)];
        if state.settings.jwt_alg.stored().is_some() {
            tasks.push(every(KEY_POLL, state, reload_keys));
        }
        tasks.push(every(housekeeping::INTERVAL, state, housekeep));
        Tasks(tasks)
    }

    /// Stops them; a run in progress is dropped at its next await.
    pub fn stop(self) {
        for task in self.0 {
            task.abort();
        }
    }
}

/// Runs `work` now and then every `period`.
fn every<F, W>(period: Duration, state: &Data<AppState>, work: W) -> JoinHandle<()>
where
    W: Fn(Data<AppState>) -> F + 'static,
    F: Future<Output = ()> + 'static,
{
    let state = state.clone();
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(period);
        loop {
            tick.tick().await;
            work(state.clone()).await;
        }
    })
}

async fn sync_revocations(state: Data<AppState>) {
    if let Err(e) = state.revoked.sync(&state.store).await {
        tracing::warn!(error = %e, "cannot refresh the revocation set");
    }
}

async fn reload_keys(state: Data<AppState>) {
    let Some(alg) = state.settings.jwt_alg.stored() else {
        return;
    };
    if let Some(every) = state.settings.key_rotation {
        rotate_if_due(&state, alg, every).await;
    }
    let since = usable_since(clock::now(), state.settings.token_horizon());
    match state.store.usable_keys(alg.name(), since).await {
        Ok(rows) => state.tokens.keys.reload(alg, &rows),
        Err(e) => tracing::warn!(error = %e, "cannot reload signing keys"),
    }
}

/// `LATCHKEY_KEY_ROTATION`: once the current key has signed for `every`, one
/// instance rotates (the store re-checks under the keys lock, so two instances that find
/// it due at once rotate once).
async fn rotate_if_due(state: &AppState, alg: KeyAlg, every: Duration) {
    let now = clock::now();
    let due = now - every;
    let signing_since = state.tokens.keys.current().signing_since;
    if signing_since.is_none_or(|since| since > due) {
        return;
    }
    let generated = actix_web::rt::task::spawn_blocking(move || alg.generate(now)).await;
    let Ok(Ok(new_next)) = generated else {
        tracing::error!("cannot make a signing key for the automatic rotation");
        return;
    };
    match state.store.rotate_key_if_due(new_next, due).await {
        Ok(done) => {
            for rotated in done {
                tracing::info!(
                    algorithm = %rotated.algorithm,
                    current = %rotated.current,
                    next = %rotated.next,
                    "signing key rotated automatically"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot rotate the signing key"),
    }
}

async fn housekeep(state: Data<AppState>) {
    let policy = Policy::from_settings(&state.settings);
    match state.store.housekeep(policy).await {
        Ok(purged) if purged != Purged::default() => {
            tracing::info!(?purged, "housekeeping purged old rows");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "housekeeping failed"),
    }
}
