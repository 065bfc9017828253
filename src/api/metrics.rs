//! `GET /metrics` on the metrics listener (`LATCHKEY_METRICS_BIND`; see `startup`).

use actix_web::web::Data;
use actix_web::HttpResponse;

use crate::error::ApiError;
use crate::state::AppState;

/// Prometheus' text exposition format, version 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn exposition(state: Data<AppState>) -> HttpResponse {
    let text = state
        .metrics
        .render(state.hasher.queued(), state.store.errors());
    HttpResponse::Ok()
        .content_type(CONTENT_TYPE)
        .insert_header(("Cache-Control", "no-store"))
        .body(text)
}

/// Anything else on the metrics listener.
pub async fn not_here() -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound)
}
