//! `/.well-known/jwks.json` and `/healthz`.

use actix_web::http::header;
use actix_web::web::Data;
use actix_web::HttpResponse;
use diesel::RunQueryDsl;

use crate::state::AppState;

pub async fn jwks(state: Data<AppState>) -> HttpResponse {
    let body = state.tokens.keys.current().jwks.clone();
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .content_type("application/json")
        .body(body.to_vec())
}

pub async fn healthz(state: Data<AppState>) -> HttpResponse {
    let ok = state
        .db
        .run(|conn| Ok(diesel::sql_query("SELECT 1").execute(conn)?))
        .await
        .is_ok();
    if ok {
        HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
    } else {
        HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "unavailable" }))
    }
}
