//! What every handler can reach.

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::mfa::MfaKey;
use crate::passkeys::Passkeys;
use crate::passwords::Hasher;
use crate::revocation::RevokedSessions;
use crate::store::sessions::Lifetimes;
use crate::store::Store;
use crate::tokens::access::AccessTokens;
use crate::tokens::refresh::SuccessorKey;

pub struct AppState {
    pub settings: Settings,
    pub store: Store,
    pub hasher: Hasher,
    pub tokens: AccessTokens,
    pub revoked: RevokedSessions,
    /// Derives each refresh token's successor (see `tokens::refresh`).
    pub successor_key: SuccessorKey,
    /// Seals second-factor secrets (see `mfa::key`).
    pub mfa_key: MfaKey,
    /// Off unless `LATCHKEY_METRICS_BIND` is set.
    pub metrics: Metrics,
    /// The WebAuthn relying party of `LATCHKEY_PUBLIC_URL`, or why there is none.
    pub passkeys: Passkeys,
}

impl AppState {
    pub fn lifetimes(&self) -> Lifetimes {
        Lifetimes {
            refresh_ttl: self.settings.refresh_ttl,
            session_max: self.settings.session_max,
            reuse_grace: self.settings.refresh_reuse_grace,
        }
    }
}
