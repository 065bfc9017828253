//! What the shared layout (`templates/base.html`) shows around every page: the signed-in
//! user and navigation, the CSRF token of the sign-out button, a flash message.

use super::assets;
use super::flash::Flash;
use crate::passkeys::Passkeys;

/// The signed-in user as the header shows them.
pub struct NavUser {
    pub username: String,
    pub admin: bool,
}

pub struct Layout {
    pub user: Option<NavUser>,
    pub csrf: String,
    pub flash: Option<Flash>,
    /// Which navigation entry is the current page.
    pub nav: &'static str,
    pub css: &'static str,
    pub icon: &'static str,
    /// The passkey script, on the pages that offer passkeys (the only script there is).
    pub script: Option<&'static str>,
}

impl Layout {
    pub fn new(user: Option<NavUser>, csrf: String, flash: Option<Flash>) -> Self {
        Layout {
            user,
            csrf,
            flash,
            nav: "",
            css: assets::css_url(),
            icon: assets::icon_url(),
            script: None,
        }
    }

    /// For pages drawn without a session at hand (errors).
    pub fn bare() -> Self {
        Layout::new(None, String::new(), None)
    }

    /// Loads the passkey script, where passkeys can work (on a public URL with an IP
    /// address the page only says why they cannot, and has no script).
    pub fn with_passkeys(mut self, passkeys: &Passkeys) -> Self {
        if passkeys.unavailable().is_none() {
            self.script = Some(assets::passkeys_url());
        }
        self
    }

    pub fn at(mut self, nav: &'static str) -> Self {
        self.nav = nav;
        self
    }
}
