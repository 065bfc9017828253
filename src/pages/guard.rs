//! The page guard: `Page<AnyRole>` / `Page<Admin>` accept a request with a valid access
//! cookie of a live session and the named role. Without one the visitor is sent through
//! `/auth/renew?next=PATH` (which rotates the refresh cookie or ends at the sign-in
//! form); signed in without the role they get a 403 page.

use std::future::{ready, Ready};
use std::marker::PhantomData;

use actix_session::{Session, SessionExt};
use actix_web::dev::Payload;
use actix_web::http::{header, Method};
use actix_web::{FromRequest, HttpRequest};

use super::error::PageError;
use super::flash::{self, Flash};
use super::layout::{Layout, NavUser};
use super::{csrf, SID_KEY};
use crate::auth::guard::{authenticate, RoleRequirement};
use crate::auth::{AnyRole, Identity};
use crate::client::Client;
use crate::domain::Role;
use crate::next_path;
use crate::store::Actor;

pub struct Page<R: RoleRequirement = AnyRole> {
    pub identity: Identity,
    pub session: Session,
    req: HttpRequest,
    _role: PhantomData<R>,
}

impl<R: RoleRequirement> Page<R> {
    /// Who does what this page posts: its user, from this client.
    pub fn actor(&self, client: &Client) -> Actor {
        Actor::of(Some(self.identity.user_id), client)
    }

    /// The layout around this page, taking the pending flash message.
    pub fn layout(&self, nav: &'static str) -> Layout {
        self.layout_with(nav, flash::take(&self.session))
    }

    pub fn layout_with(&self, nav: &'static str, flash: Option<Flash>) -> Layout {
        Layout::new(
            Some(NavUser {
                username: self.identity.username.clone(),
                admin: self.identity.role == Role::Admin,
            }),
            csrf::token(&self.session),
            flash,
        )
        .at(nav)
    }

    pub fn request(&self) -> &HttpRequest {
        &self.req
    }

    /// Refuses a form post without this session's CSRF token or from another site.
    pub fn check_csrf(&self, presented: &str) -> Result<(), PageError> {
        csrf::verify(&self.req, &self.session, presented)
    }
}

/// Where to come back to after a renew: this page for a GET; for a form post, the page
/// the form was on (its same-origin `Referer`), since a post cannot be replayed.
fn come_back_to(req: &HttpRequest) -> String {
    if req.method() == Method::GET {
        let uri = req.uri();
        return uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    }
    let host = req.connection_info().host().to_owned();
    let from_referer = req
        .headers()
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("://"))
        .and_then(|(_, rest)| rest.strip_prefix(host.as_str()))
        .map(str::to_owned);
    next_path::local_or_default(from_referer.as_deref())
}

fn extract<R: RoleRequirement>(req: &HttpRequest) -> Result<Page<R>, PageError> {
    let session = req.get_session();
    let identity = match authenticate(req) {
        Ok(identity) => identity,
        Err(_) => {
            if req.method() != Method::GET {
                flash::error(
                    &session,
                    "Your sign-in had to be renewed first. Please repeat that.",
                );
            }
            return Err(PageError::Renew(come_back_to(req)));
        }
    };
    if !R::allows(identity.role) {
        return Err(PageError::Forbidden);
    }
    // Such a session reaches nothing but the setup of a second factor.
    if identity.only_for_mfa_setup(req) && !req.path().starts_with("/account/mfa/") {
        return Err(PageError::EnrolFirst);
    }
    // Remember which latchkey session this browser holds, so signing out can revoke it
    // even after the short-lived access cookie has gone.
    if session.get::<i64>(SID_KEY).ok().flatten() != Some(identity.session_id.0) {
        let _ = session.insert(SID_KEY, identity.session_id.0);
    }
    Ok(Page {
        identity,
        session,
        req: req.clone(),
        _role: PhantomData,
    })
}

impl<R: RoleRequirement> FromRequest for Page<R> {
    type Error = PageError;
    type Future = Ready<Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(extract(req))
    }
}
