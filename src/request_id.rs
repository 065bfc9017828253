//! Request ids: every request gets one — an incoming `X-Request-Id` of sane shape (what a
//! proxy or a client made) is kept, anything else is replaced by a fresh one — echoed in
//! the response and carried by every log line of the request (a tracing span `request`
//! with the field `id`).

use actix_web::dev::ServiceRequest;

pub const HEADER: &str = "x-request-id";
/// Longer incoming ids are replaced: they would bloat every log line.
const MAX_LEN: usize = 128;

/// The id of this request: the incoming one if it is sane, else a new random one.
pub fn of(req: &ServiceRequest) -> String {
    req.headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| is_sane(id))
        .map_or_else(|| crate::tokens::random_b64(12), str::to_owned)
}

/// 1 to 128 characters of letters, digits and `-_.:` (UUIDs, trace ids, our own): nothing
/// that could break a log line or a header.
pub fn is_sane(id: &str) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

#[cfg(test)]
mod tests {
    use super::is_sane;

    #[test]
    fn ids_of_sane_shape_are_kept_and_others_not() {
        for id in [
            "abc-123",
            "0b7c6f2e-8a1d-4c3b-9e1f-2a3b4c5d6e7f",
            "a",
            "trace:1.2_3",
        ] {
            assert!(is_sane(id), "{id}");
        }
        let long = "x".repeat(129);
        for id in [
            "",
            "has space",
            "new\nline",
            "quote\"",
            "ünïcode",
            long.as_str(),
        ] {
            assert!(!is_sane(id), "{id:?}");
        }
    }
}
