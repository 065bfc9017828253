//! `/.well-known/*` (the JWKS and the two metadata documents) and `/healthz`.

use actix_web::http::header;
use actix_web::web::Data;
use actix_web::HttpResponse;

use crate::state::AppState;
use crate::tokens::keys::JWKS_MAX_AGE_SECS;

pub async fn jwks(state: Data<AppState>) -> HttpResponse {
    let body = state.tokens.keys.current().jwks.clone();
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={JWKS_MAX_AGE_SECS}"),
        ))
        .content_type("application/json")
        .body(body.to_vec())
}

/// How long verifiers and gateways may cache the metadata documents.
const METADATA_MAX_AGE_SECS: u32 = 300;

/// RFC 8414 authorization-server metadata, served under both the OAuth and the OpenID
/// discovery paths: gateways and OIDC libraries find the JWKS and token endpoint here.
/// The OpenID members are there so strict OpenID metadata parsers accept it.
pub async fn metadata(state: Data<AppState>) -> HttpResponse {
    let issuer = &state.settings.public_url;
    let alg = state.settings.jwt_alg.name();
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            format!("public, max-age={METADATA_MAX_AGE_SECS}"),
        ))
        .json(serde_json::json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "token_endpoint": format!("{issuer}/auth/token"),
            "grant_types_supported": ["password", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["none"],
            "response_types_supported": ["token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [alg],
        }))
}

pub async fn healthz(state: Data<AppState>) -> HttpResponse {
    if state.store.healthy().await {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
    } else {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "unavailable" }))
    }
}
