//! Time as the database keeps it (Unix milliseconds) and as people and JSON see it (RFC 3339).

use std::ops::{Add, Sub};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use diesel::deserialize::FromSqlRow;
use diesel::expression::AsExpression;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// An instant: milliseconds since the Unix epoch, fine enough that short test windows
/// (a 1 s reuse grace, a 2 s refresh lifetime) are not off by a rounded-away second.
/// Lengths of time are `Duration`s: an instant plus or minus one is an instant, and
/// [`Millis::since`] is the length between two.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    AsExpression,
    FromSqlRow,
)]
#[serde(transparent)]
#[diesel(sql_type = diesel::sql_types::BigInt)]
pub struct Millis(pub i64);

crate::sql_types::bigint_newtype!(Millis);

impl Millis {
    /// Whole seconds since the epoch, rounded down (JWT times, TOTP steps).
    pub fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// How long after `earlier` this is; zero if it is not after (clocks of two
    /// instances can disagree).
    pub fn since(self, earlier: Millis) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }
}

fn millis_of(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Add<Duration> for Millis {
    type Output = Millis;
    fn add(self, d: Duration) -> Millis {
        Millis(self.0.saturating_add(millis_of(d)))
    }
}

impl Sub<Duration> for Millis {
    type Output = Millis;
    fn sub(self, d: Duration) -> Millis {
        Millis(self.0.saturating_sub(millis_of(d)))
    }
}

pub fn now() -> Millis {
    Millis(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    )
}

/// RFC 3339 in UTC, whole seconds.
pub fn rfc3339(at: Millis) -> String {
    OffsetDateTime::from_unix_timestamp(at.unix_seconds())
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| at.0.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_in_utc() {
        assert_eq!(rfc3339(Millis(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(Millis(1_700_000_000_999)), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn instants_move_by_durations_and_measure_them() {
        let at = Millis(10_000);
        assert_eq!(at + Duration::from_millis(1_500), Millis(11_500));
        assert_eq!(at - Duration::from_secs(2), Millis(8_000));
        assert_eq!(Millis(11_500).since(at), Duration::from_millis(1_500));
        assert_eq!(at.since(Millis(11_500)), Duration::ZERO, "not after: zero");
        assert_eq!(Millis(-1).unix_seconds(), -1, "rounded down");
        assert_eq!(
            Millis(i64::MAX) + Duration::from_secs(1),
            Millis(i64::MAX),
            "saturates"
        );
    }
}
