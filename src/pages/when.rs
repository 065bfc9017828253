//! Times as people read them in a list: "3 minutes ago", "in 6 days".

use crate::clock::Millis;

/// "15 minutes", "40 seconds": how long a lockout still runs.
pub fn wait_text(secs: i64) -> String {
    let secs = secs.max(1);
    if secs < 60 {
        format!("{secs} second{}", if secs == 1 { "" } else { "s" })
    } else {
        let minutes = (secs + 59) / 60;
        format!("{minutes} minute{}", if minutes == 1 { "" } else { "s" })
    }
}

/// `at` relative to `now`, in the largest whole unit.
pub fn relative(at: Millis, now: Millis) -> String {
    let past = at <= now;
    let secs = if past { now.since(at) } else { at.since(now) }.as_secs();
    if secs < 45 {
        return if past { "just now" } else { "in a moment" }.to_owned();
    }
    const DAY: u64 = 86_400;
    let minutes = (secs + 30) / 60;
    let hours = (secs + 1_800) / 3_600;
    let days = (secs + DAY / 2) / DAY;
    let months = (secs + 15 * DAY) / (30 * DAY);
    let (n, unit) = if minutes < 60 {
        (minutes, "minute")
    } else if hours < 24 {
        (hours, "hour")
    } else if days < 45 {
        (days, "day")
    } else if months < 12 {
        (months, "month")
    } else {
        ((secs + 182 * DAY) / (365 * DAY), "year")
    };
    let plural = if n == 1 { "" } else { "s" };
    if past {
        format!("{n} {unit}{plural} ago")
    } else {
        format!("in {n} {unit}{plural}")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{relative, wait_text};
    use crate::clock::Millis;

    #[test]
    fn lockout_waits_read_as_people_say_them() {
        assert_eq!(wait_text(1), "1 second");
        assert_eq!(wait_text(40), "40 seconds");
        assert_eq!(wait_text(60), "1 minute");
        assert_eq!(wait_text(900), "15 minutes");
        assert_eq!(wait_text(61), "2 minutes");
    }

    const NOW: Millis = Millis(1_800_000_000_000);

    fn ago(secs: u64) -> String {
        relative(NOW - Duration::from_secs(secs), NOW)
    }

    #[test]
    fn past_times_in_the_largest_unit() {
        assert_eq!(ago(0), "just now");
        assert_eq!(relative(NOW - Duration::from_millis(400), NOW), "just now");
        assert_eq!(ago(44), "just now");
        assert_eq!(ago(60), "1 minute ago");
        assert_eq!(ago(180), "3 minutes ago");
        assert_eq!(ago(3_599), "1 hour ago");
        assert_eq!(ago(3_600), "1 hour ago");
        assert_eq!(ago(5 * 3_600), "5 hours ago");
        assert_eq!(ago(86_400), "1 day ago");
        assert_eq!(ago(6 * 86_400), "6 days ago");
        assert_eq!(ago(90 * 86_400), "3 months ago");
        assert_eq!(ago(800 * 86_400), "2 years ago");
    }

    #[test]
    fn future_times_read_forwards() {
        assert_eq!(
            relative(NOW + Duration::from_secs(7 * 86_400), NOW),
            "in 7 days"
        );
        assert_eq!(relative(NOW + Duration::from_secs(10), NOW), "in a moment");
        assert_eq!(
            relative(NOW + Duration::from_secs(15 * 60), NOW),
            "in 15 minutes"
        );
    }
}
