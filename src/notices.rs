//! On PostgreSQL, every instance learns of revocations and key changes by notification:
//! the transaction that revokes a session or changes the keys sends `NOTIFY latchkey`
//! (see `store::notify`), PostgreSQL delivers it when that transaction commits, and a
//! thread per instance, on a connection of its own that `LISTEN`s, brings the
//! revocation set or the key set up to date at once. The periodic polls stay as the
//! safety net. After every (re)connect the thread catches up on both, so nothing sent
//! while it was not listening is missed: the revocation set reads by sequence number,
//! which no lost notice can skip.

use std::sync::Weak;
use std::time::Duration;

use crate::clock;
use crate::db::Listener;
use crate::state::AppState;
use crate::store::{keys, sessions, Notice, StoreError};
use crate::tokens::keys::usable_since;

/// How often the thread looks at what the socket received (a non-blocking read).
const POLL: Duration = Duration::from_millis(5);
/// How long it waits before connecting again after losing the connection.
const RECONNECT: Duration = Duration::from_secs(1);

/// Starts the listening thread. It ends once the server's state is gone.
pub fn spawn(url: String, state: Weak<AppState>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("latchkey-notices".into())
        .spawn(move || listen(&url, &state))
        .map(|_| ())
}

fn listen(url: &str, state: &Weak<AppState>) {
    loop {
        if state.strong_count() == 0 {
            return;
        }
        match Listener::connect(url) {
            Ok(mut listener) => {
                let caught_up = [Notice::Revocation, Notice::Keys]
                    .into_iter()
                    .try_for_each(|n| apply(state, &mut listener, n));
                if caught_up.is_ok() && !serve(state, &mut listener) {
                    return;
                }
                tracing::warn!("lost the notification connection; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for notifications"),
        }
        std::thread::sleep(RECONNECT);
    }
}

/// Applies notices as they arrive. Returns false when the server is gone, true when
/// the connection is.
fn serve(state: &Weak<AppState>, listener: &mut Listener) -> bool {
    loop {
        std::thread::sleep(POLL);
        if state.strong_count() == 0 {
            return false;
        }
        let Ok(payloads) = listener.received() else {
            return true;
        };
        let mut notices: Vec<Notice> = payloads.iter().filter_map(|p| Notice::parse(p)).collect();
        notices.dedup();
        for notice in notices {
            if apply(state, listener, notice).is_err() {
                return true;
            }
        }
    }
}

fn apply(
    state: &Weak<AppState>,
    listener: &mut Listener,
    notice: Notice,
) -> Result<(), StoreError> {
    let Some(state) = state.upgrade() else {
        return Ok(());
    };
    let now = clock::now();
    let applied = match notice {
        Notice::Revocation => {
            let (after, since) = state.revoked.wanted(now);
            sessions::revocations(listener.conn(), after, since)
                .map(|fresh| state.revoked.apply(fresh, now))
        }
        Notice::Keys => match state.settings.jwt_alg.stored() {
            Some(alg) => {
                let since = usable_since(now, state.settings.token_horizon());
                keys::usable(listener.conn(), alg.name(), since)
                    .map(|rows| state.tokens.keys.reload(alg, &rows))
            }
            None => Ok(()),
        },
    };
    if let Err(e) = &applied {
        tracing::warn!(error = %e, ?notice, "cannot apply a notification");
    }
    applied
}
