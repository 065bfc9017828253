//! Time as the database keeps it (Unix milliseconds) and as people and JSON see it (RFC 3339).

use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch: fine enough that short test windows (a 1 s reuse
/// grace, a 2 s refresh lifetime) are not off by a rounded-away second.
pub type Millis = i64;

pub const SECOND: Millis = 1000;

pub fn now() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// RFC 3339 in UTC, whole seconds.
pub fn rfc3339(at: Millis) -> String {
    OffsetDateTime::from_unix_timestamp(at.div_euclid(SECOND))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| at.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_rfc3339_in_utc() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000_999), "2023-11-14T22:13:20Z");
    }
}
