//! Server-rendered pages: sign-in, the dashboard and the admin pages. Every form posts
//! with a CSRF token; nothing needs JavaScript but the passkey ceremonies.

mod admin;
mod assets;
mod csrf;
mod dashboard;
mod error;
mod flash;
mod guard;
mod layout;
mod login;
mod mfa;
mod passkeys;
mod user_agent;
mod views;
mod when;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::de::DeserializeOwned;

pub use error::{form_error, PageError};

/// The key under which the cookie session remembers this browser's latchkey session id.
const SID_KEY: &str = "sid";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/").route(web::get().to(root)))
        .service(
            resource("/login")
                .route(web::get().to(login::form))
                .route(web::post().to(login::submit)),
        )
        .service(resource("/login/passkey/start").route(web::post().to(passkeys::sign_in_start)))
        .service(resource("/login/passkey/finish").route(web::post().to(passkeys::sign_in_finish)))
        .service(resource("/logout").route(web::post().to(login::logout)))
        .service(resource("/dashboard").route(web::get().to(dashboard::show)))
        .service(
            resource("/sessions/revoke-others").route(web::post().to(dashboard::revoke_others)),
        )
        .service(resource("/sessions/{id}/revoke").route(web::post().to(dashboard::revoke)))
        .service(resource("/account/password").route(web::post().to(dashboard::change_password)))
        .service(
            resource("/account/mfa/setup")
                .route(web::get().to(mfa::show))
                .route(web::post().to(mfa::start)),
        )
        .service(resource(mfa::REQUIRED_PATH).route(web::get().to(mfa::required)))
        .service(resource("/account/mfa/confirm").route(web::post().to(mfa::confirm)))
        .service(resource("/account/mfa/recovery-codes").route(web::post().to(mfa::new_codes)))
        .service(resource("/account/mfa/disable").route(web::post().to(mfa::disable)))
        .service(
            resource("/account/passkeys/register/start")
                .route(web::post().to(passkeys::register_start)),
        )
        .service(
            resource("/account/passkeys/register/finish")
                .route(web::post().to(passkeys::register_finish)),
        )
        .service(resource("/account/passkeys/{id}/remove").route(web::post().to(passkeys::remove)))
        .service(
            web::scope("/admin")
                .service(admin_resource("/sessions").route(web::get().to(admin::sessions::show)))
                .service(
                    admin_resource("/sessions/{id}/revoke")
                        .route(web::post().to(admin::sessions::revoke)),
                )
                .service(
                    admin_resource("/users")
                        .route(web::get().to(admin::users::show))
                        .route(web::post().to(admin::users::create)),
                )
                .service(
                    admin_resource("/users/{id}/role")
                        .route(web::post().to(admin::users::set_role)),
                )
                .service(
                    admin_resource("/users/{id}/disable")
                        .route(web::post().to(admin::users::disable)),
                )
                .service(
                    admin_resource("/users/{id}/enable")
                        .route(web::post().to(admin::users::enable)),
                )
                .service(
                    admin_resource("/users/{id}/reset-mfa")
                        .route(web::post().to(admin::users::reset_mfa)),
                )
                .service(
                    admin_resource("/users/{id}/revoke-sessions")
                        .route(web::post().to(admin::users::revoke_sessions)),
                )
                .service(admin_resource("/audit").route(web::get().to(admin::audit::show)))
                .default_service(web::to(not_found)),
        )
        .service(resource("/static/{name}").route(web::get().to(static_asset)))
        .default_service(web::to(not_found));
}

/// A resource named by its pattern: the route label of its metrics
/// (`HttpRequest::match_name`, which needs no allocation).
fn resource(path: &'static str) -> actix_web::Resource {
    web::resource(path)
        .name(path)
        .default_service(web::to(method_not_allowed))
}

/// [`resource`] inside the `/admin` scope, named by its full pattern.
fn admin_resource(path: &str) -> actix_web::Resource {
    web::resource(path)
        .name(&format!("/admin{path}"))
        .default_service(web::to(method_not_allowed))
}

async fn root() -> HttpResponse {
    see_other("/dashboard")
}

async fn not_found() -> Result<HttpResponse, PageError> {
    Err(PageError::NotFound)
}

async fn method_not_allowed() -> Result<HttpResponse, PageError> {
    Err(PageError::MethodNotAllowed)
}

/// `GET /static/{name}` (see `assets`); a name that is no asset is the 404 page.
async fn static_asset(
    req: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    assets::response(&name, req.query_string()).ok_or(PageError::NotFound)
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// A page's query string, refused with an HTML 400 (not the API's JSON) when malformed.
fn query<T: DeserializeOwned>(req: &HttpRequest) -> Result<T, PageError> {
    web::Query::<T>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| PageError::BadRequest("the address has a malformed query string".into()))
}
