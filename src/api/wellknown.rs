//! `/.well-known/jwks.json` and `/healthz`.

use actix_web::http::header;
use actix_web::web::Data;
use actix_web::HttpResponse;
use diesel::RunQueryDsl;

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

pub async fn healthz(state: Data<AppState>) -> HttpResponse {
    let ok = state
        .db
        // Reads the schema, so the file itself must answer (`SELECT 1` never touches it).
        .read(|conn| Ok(diesel::sql_query("SELECT name FROM sqlite_master LIMIT 1").execute(conn)?))
        .await
        .is_ok();
    if ok {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
    } else {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "unavailable" }))
    }
}
