//! What the shared layout (`templates/base.html`) shows around every page: the signed-in
//! user and navigation, the CSRF token of the sign-out button, a flash message.

use super::assets;
use super::flash::Flash;

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
        }
    }

    /// For pages drawn without a session at hand (errors).
    pub fn bare() -> Self {
        Layout::new(None, String::new(), None)
    }

    pub fn at(mut self, nav: &'static str) -> Self {
        self.nav = nav;
        self
    }
}
