//! Cross-site request refusal for cookie-authenticated POSTs (the JSON cookie endpoints
//! and every page form): a browser names the calling page in `Origin` and
//! `Sec-Fetch-Site`; a request that says it comes from elsewhere is refused.

use actix_web::http::header;
use actix_web::HttpRequest;

/// Whether the request may come from our own pages. Requests without `Origin` (scripts,
/// curl, old browsers on same-origin GET-style posts) pass: the cookies they would need
/// are `SameSite`, and page forms also carry a CSRF token.
pub fn is_same_origin(req: &HttpRequest, public_url: &str) -> bool {
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
    let host = req.connection_info().host().to_owned();
    origin == public_url
        || origin.split_once("://").is_some_and(|(scheme, authority)| {
            matches!(scheme, "http" | "https") && authority == host
        })
}
