//! Sizes the service refuses beyond, shared by the server's setup and the handlers.

/// The largest request body accepted anywhere (bodies over 16 KiB get 413).
pub const BODY_LIMIT: usize = 16 * 1024;

/// The largest request head (request line and headers) accepted: 32 KiB, plenty for any
/// cookie and token we issue. Larger heads get an empty 431 before any route runs
/// (actix-http's own limit, 128 KiB or 96 headers, comes first for still larger ones).
pub const HEAD_LIMIT: usize = 32 * 1024;

/// The size of a request head as it came: the request line and every header line.
pub fn head_size(req: &actix_web::dev::ServiceRequest) -> usize {
    let target = req
        .uri()
        .path_and_query()
        .map_or_else(|| req.path().len(), |pq| pq.as_str().len());
    let line = req.method().as_str().len() + target + 11;
    let headers: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    line + headers
}
