//! Failed sign-ins, counted twice: per (username, client IP) — the lockout SPEC names — and
//! per client IP across all usernames — a ceiling against credential stuffing. Both live
//! in the database so a restart does not reset a lockout.

use diesel::prelude::*;

use super::audit::{self, Event, EventKind};
use super::{write_tx, Actor, StoreError};
use crate::clock::Millis;
use crate::db::Conn;
use crate::schema::{login_failures, login_failures_by_ip};

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Failures of one (username, IP) within `window` that start a lockout.
    pub max_failures: i32,
    /// Failures from one IP, whatever the usernames, within `window` that lock the IP out.
    pub ip_max_failures: i32,
    /// How long failures are counted, and how long a lockout lasts.
    pub window: Millis,
}

/// When the lockout of (username, ip) — or of the whole ip — ends, if one is running.
pub fn locked_until(
    conn: &mut Conn,
    now: Millis,
    username: &str,
    ip: &str,
) -> Result<Option<Millis>, StoreError> {
    let pair: Option<Option<Millis>> = login_failures::table
        .find((username, ip))
        .select(login_failures::locked_until)
        .get_result(conn)
        .optional()?;
    let whole_ip: Option<Option<Millis>> = login_failures_by_ip::table
        .find(ip)
        .select(login_failures_by_ip::locked_until)
        .get_result(conn)
        .optional()?;
    Ok([pair.flatten(), whole_ip.flatten()]
        .into_iter()
        .flatten()
        .filter(|until| *until > now)
        .max())
}

/// One more failure on a counter that holds `current` (failures, window start): the
/// counter's new (failures, window start, lockout end). A lockout restarts the count.
fn count(
    current: Option<(i32, Millis)>,
    now: Millis,
    max: i32,
    window: Millis,
) -> (i32, Millis, Option<Millis>) {
    let (failures, started) = match current {
        Some((n, started)) if now - started < window => (n.saturating_add(1), started),
        _ => (1, now),
    };
    if failures >= max {
        (0, now, Some(now + window))
    } else {
        (failures, started, None)
    }
}

/// Counts one failed sign-in of `username` (the known user, if any, is `user_id`) from
/// `actor.ip` on both counters, and audits it; returns the end of the lockout when this
/// failure started one.
pub fn record_failure(
    conn: &mut Conn,
    now: Millis,
    username: &str,
    user_id: Option<i64>,
    actor: &Actor,
    policy: Policy,
) -> Result<Option<Millis>, StoreError> {
    let ip = actor.ip.as_deref().unwrap_or("unknown");
    write_tx(conn, |conn| {
        let current = login_failures::table
            .find((username, ip))
            .select((login_failures::failures, login_failures::window_started_at))
            .get_result(conn)
            .optional()?;
        let (failures, started, pair_locked) =
            count(current, now, policy.max_failures, policy.window);
        diesel::replace_into(login_failures::table)
            .values((
                login_failures::username.eq(username),
                login_failures::ip.eq(ip),
                login_failures::failures.eq(failures),
                login_failures::window_started_at.eq(started),
                login_failures::locked_until.eq(pair_locked),
            ))
            .execute(conn)?;

        let current = login_failures_by_ip::table
            .find(ip)
            .select((
                login_failures_by_ip::failures,
                login_failures_by_ip::window_started_at,
            ))
            .get_result(conn)
            .optional()?;
        let (failures, started, ip_locked) =
            count(current, now, policy.ip_max_failures, policy.window);
        diesel::replace_into(login_failures_by_ip::table)
            .values((
                login_failures_by_ip::ip.eq(ip),
                login_failures_by_ip::failures.eq(failures),
                login_failures_by_ip::window_started_at.eq(started),
                login_failures_by_ip::locked_until.eq(ip_locked),
            ))
            .execute(conn)?;

        let event = |kind, detail: Option<&str>| Event {
            kind,
            actor,
            subject_user_id: user_id,
            subject_username: Some(username),
            session_id: None,
            detail: detail.map(str::to_owned),
        };
        audit::record(conn, now, event(EventKind::SignInFailed, None))?;
        if pair_locked.is_some() {
            audit::record(conn, now, event(EventKind::LockedOut, None))?;
        }
        if ip_locked.is_some() {
            audit::record(
                conn,
                now,
                event(EventKind::LockedOut, Some("every username from this IP")),
            )?;
        }
        Ok(pair_locked.max(ip_locked))
    })
}

/// A successful sign-in forgives that (username, ip)'s failures — not the IP's, or one
/// working account would let a stuffing run reset its own ceiling.
pub fn clear(conn: &mut Conn, username: &str, ip: &str) -> Result<(), StoreError> {
    diesel::delete(login_failures::table.find((username, ip))).execute(conn)?;
    Ok(())
}

/// Housekeeping: deletes up to `limit` rows of each counter whose window started before
/// `stale` and that hold no running lockout at `now`; such a row counts nothing any more.
/// Without this, a spray of random usernames would grow the table without bound.
pub fn purge_stale(
    conn: &mut Conn,
    now: Millis,
    stale: Millis,
    limit: i64,
) -> Result<usize, StoreError> {
    write_tx(conn, |conn| {
        let pairs: Vec<(String, String)> = login_failures::table
            .filter(login_failures::window_started_at.lt(stale))
            .filter(
                login_failures::locked_until
                    .is_null()
                    .or(login_failures::locked_until.le(now)),
            )
            .select((login_failures::username, login_failures::ip))
            .limit(limit)
            .load(conn)?;
        let mut purged = 0;
        for (username, ip) in &pairs {
            purged += diesel::delete(login_failures::table.find((username, ip))).execute(conn)?;
        }
        let ips: Vec<String> = login_failures_by_ip::table
            .filter(login_failures_by_ip::window_started_at.lt(stale))
            .filter(
                login_failures_by_ip::locked_until
                    .is_null()
                    .or(login_failures_by_ip::locked_until.le(now)),
            )
            .select(login_failures_by_ip::ip)
            .limit(limit)
            .load(conn)?;
        purged += diesel::delete(
            login_failures_by_ip::table.filter(login_failures_by_ip::ip.eq_any(&ips)),
        )
        .execute(conn)?;
        Ok(purged)
    })
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn failures_count_within_the_window_and_lock_at_the_maximum() {
        assert_eq!(count(None, 100, 3, 10), (1, 100, None));
        assert_eq!(count(Some((1, 100)), 105, 3, 10), (2, 100, None));
        assert_eq!(count(Some((2, 100)), 109, 3, 10), (0, 109, Some(119)));
    }

    #[test]
    fn a_stale_window_starts_over() {
        assert_eq!(count(Some((2, 100)), 110, 3, 10), (1, 110, None));
        assert_eq!(count(Some((i32::MAX, 100)), 101, i32::MAX, 10).2, Some(111));
    }
}
