//! One-shot messages shown on the next page after an action ("Session signed out"),
//! kept in the cookie session between the redirect and the page.

use actix_session::Session;
use serde::{Deserialize, Serialize};

const KEY: &str = "flash";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Flash {
    /// `ok` or `error`: the CSS class of the message.
    pub kind: String,
    pub text: String,
}

pub fn ok(session: &Session, text: impl Into<String>) {
    set(session, "ok", text.into());
}

pub fn error(session: &Session, text: impl Into<String>) {
    set(session, "error", text.into());
}

fn set(session: &Session, kind: &str, text: String) {
    let flash = Flash {
        kind: kind.to_owned(),
        text,
    };
    if let Err(e) = session.insert(KEY, flash) {
        tracing::warn!(error = %e, "cannot store a flash message");
    }
}

/// The pending message, removed so it shows once.
pub fn take(session: &Session) -> Option<Flash> {
    session.remove_as::<Flash>(KEY).and_then(Result::ok)
}
