//! Cross-site request refusal for cookie-authenticated POSTs (the JSON cookie endpoints
//! and every page form): a browser names the calling page in `Origin` and
//! `Sec-Fetch-Site`; a request that says it comes from elsewhere is refused.

use actix_web::http::header;
use actix_web::web::Data;
use actix_web::HttpRequest;

use crate::client;
use crate::state::AppState;

/// Whether the request may come from our own pages. Requests without `Origin` (scripts,
/// curl, old browsers on same-origin GET-style posts) pass: the cookies they would need
/// are `SameSite`, and page forms also carry a CSRF token.
///
/// The origin is compared with the public URL, or with the host the request was sent
/// to: its `Host` header, or — only when the TCP peer is a trusted proxy — the host a
/// `Forwarded` / `X-Forwarded-Host` header names (anyone else could write those).
pub fn is_same_origin(req: &HttpRequest) -> bool {
    let Some(state) = req.app_data::<Data<AppState>>() else {
        return false;
    };
    let settings = &state.settings;
    if req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return false;
    }
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let origin = origin.to_str().unwrap_or_default();
    let host = if client::peer_is_trusted(req, &settings.trusted_proxies) {
        req.connection_info().host().to_owned()
    } else {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default()
    };
    origin == settings.public_url
        || origin.split_once("://").is_some_and(|(scheme, authority)| {
            matches!(scheme, "http" | "https") && authority == host
        })
}
