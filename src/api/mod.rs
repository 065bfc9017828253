//! The JSON API: `/auth/*` token endpoints, `/api/*` resources, JWKS and health.

mod admin;
mod me;
pub mod metrics;
mod openapi;
mod tokens;
pub mod views;
mod wellknown;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpResponse};

use crate::error::ApiError;
use crate::limits::BODY_LIMIT;

/// Registers every JSON route. Unknown paths under `/api` and `/auth` answer a JSON
/// 404, known paths with the wrong method a JSON 405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/auth")
            .wrap(from_fn(refuse_large_bodies))
            .service(resource("/auth/token", "/token").route(web::post().to(tokens::token)))
            .service(resource("/auth/refresh", "/refresh").route(web::post().to(tokens::refresh)))
            .service(resource("/auth/logout", "/logout").route(web::post().to(tokens::logout)))
            .service(resource("/auth/renew", "/renew").route(web::get().to(tokens::renew)))
            .default_service(web::to(not_found)),
    )
    .service(
        web::scope("/api")
            .wrap(from_fn(refuse_large_bodies))
            .service(resource("/api/me", "/me").route(web::get().to(me::me)))
            .service(resource("/api/verify", "/verify").route(web::get().to(me::verify)))
            .service(resource("/api/sessions", "/sessions").route(web::get().to(me::sessions)))
            .service(
                resource("/api/sessions/{id}", "/sessions/{id}")
                    .route(web::delete().to(me::revoke_session)),
            )
            .service(
                resource("/api/admin/sessions", "/admin/sessions")
                    .route(web::get().to(admin::sessions)),
            )
            .service(
                resource("/api/admin/sessions/{id}", "/admin/sessions/{id}")
                    .route(web::delete().to(admin::revoke_session)),
            )
            .service(
                resource("/api/admin/users", "/admin/users").route(web::get().to(admin::users)),
            )
            .service(
                resource("/api/openapi.json", "/openapi.json")
                    .route(web::get().to(openapi::document)),
            )
            .default_service(web::to(not_found)),
    )
    .service(
        web::scope("/.well-known")
            .service(
                resource("/.well-known/jwks.json", "/jwks.json")
                    .route(web::get().to(wellknown::jwks)),
            )
            .service(
                resource(
                    "/.well-known/oauth-authorization-server",
                    "/oauth-authorization-server",
                )
                .route(web::get().to(wellknown::metadata)),
            )
            .service(
                resource("/.well-known/openid-configuration", "/openid-configuration")
                    .route(web::get().to(wellknown::metadata)),
            )
            .default_service(web::to(not_found)),
    )
    .service(resource("/healthz", "/healthz").route(web::get().to(wellknown::healthz)));
}

/// A declared body over the limit is refused before any handler runs, also on routes
/// that never read their body. (Bodies without a length are cut by the extractors.)
async fn refuse_large_bodies(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        // A response, not an `Err`: the layers outside (request ids, metrics) see it.
        let refused = actix_web::ResponseError::error_response(&ApiError::PayloadTooLarge);
        return Ok(req.into_response(refused).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// A resource at `path` inside its scope, named by its full pattern `name`: the route
/// label of its metrics (`HttpRequest::match_name`, which needs no allocation).
fn resource(name: &str, path: &str) -> actix_web::Resource {
    web::resource(path)
        .name(name)
        .default_service(web::to(method_not_allowed))
}

async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}
