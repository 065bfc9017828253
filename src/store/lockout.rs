//! Failed sign-ins, counted twice: per (username, client) — the lockout SPEC names — and
//! per client across all usernames — a ceiling against credential stuffing. Both live in
//! the database so a restart does not reset a lockout. The client key is the IP address,
//! or for IPv6 its /64 (one subscriber's network): see `client::lockout_key`.
//!
//! A guess is counted *before* its password is hashed: [`reserve`] counts the attempt
//! (or refuses it when a lockout runs) in one write transaction, the caller verifies the
//! password, then [`confirm_failure`] audits the failure or [`release`] forgives it. So
//! however many guesses arrive at once, at most `max_failures` are ever evaluated per
//! (username, client) and window, and at most `ip_max_failures` per client: the one
//! that reaches the maximum starts the lockout for everything behind it.

use diesel::prelude::*;

use super::audit::{self, Event, EventKind};
use super::{write_tx, Actor, StoreError};
use crate::clock::Millis;
use crate::db::Conn;
use crate::schema::{login_failures, login_failures_by_ip};

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Failures of one (username, client) within `window` that start a lockout.
    pub max_failures: i32,
    /// Failures from one client, whatever the usernames, within `window` that lock it out.
    pub ip_max_failures: i32,
    /// How long failures are counted, and how long a lockout lasts.
    pub window: Millis,
}

/// One counter row: failures in the window that started at `started`, and the end of
/// the lockout, if one was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counter {
    failures: i32,
    started: Millis,
    locked_until: Option<Millis>,
}

/// What counting one more attempt on a counter does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A lockout is running until then: the attempt is refused, nothing is counted.
    Locked(Millis),
    /// The attempt is counted; `locks` when it is the one that reached the maximum.
    Counted { next: Counter, locks: bool },
}

fn step(current: Option<Counter>, now: Millis, max: i32, window: Millis) -> Step {
    if let Some(until) = current.and_then(|c| c.locked_until).filter(|u| *u > now) {
        return Step::Locked(until);
    }
    // A lockout lasts a window, so a counter whose lockout ended has a stale window too.
    let (failures, started) = match current {
        Some(c) if now - c.started < window && c.locked_until.is_none() => (c.failures, c.started),
        _ => (0, now),
    };
    let failures = failures.saturating_add(1);
    let locks = failures >= max;
    Step::Counted {
        next: Counter {
            failures,
            started,
            locked_until: locks.then_some(now + window),
        },
        locks,
    }
}

/// A counted attempt, to be confirmed as a failure or released after the password check.
#[derive(Debug, Clone)]
pub struct Reservation {
    username: String,
    client: String,
    /// The lockouts this attempt started (it reached a maximum), with their ends.
    pair_lock: Option<Millis>,
    ip_lock: Option<Millis>,
}

/// The outcome of [`reserve`].
#[derive(Debug)]
pub enum Attempt {
    /// Go ahead and check the password; report the result with the reservation.
    Allowed(Reservation),
    /// A lockout runs until then; the password must not be checked.
    Locked(Millis),
}

/// failures, window start, lockout end, first refusal audited
type CounterRow = (i32, Millis, Option<Millis>, bool);

fn from_row((failures, started, locked_until, audited): CounterRow) -> (Counter, bool) {
    (
        Counter {
            failures,
            started,
            locked_until,
        },
        audited,
    )
}

fn pair_counter(
    conn: &mut Conn,
    username: &str,
    client: &str,
) -> Result<Option<(Counter, bool)>, StoreError> {
    Ok(login_failures::table
        .find((username, client))
        .select((
            login_failures::failures,
            login_failures::window_started_at,
            login_failures::locked_until,
            login_failures::refusal_audited,
        ))
        .get_result::<CounterRow>(conn)
        .optional()?
        .map(from_row))
}

fn ip_counter(conn: &mut Conn, client: &str) -> Result<Option<(Counter, bool)>, StoreError> {
    Ok(login_failures_by_ip::table
        .find(client)
        .select((
            login_failures_by_ip::failures,
            login_failures_by_ip::window_started_at,
            login_failures_by_ip::locked_until,
            login_failures_by_ip::refusal_audited,
        ))
        .get_result::<CounterRow>(conn)
        .optional()?
        .map(from_row))
}

/// A running lockout whose first refusal is already audited: the read-only answer that
/// keeps a storm of refused guesses off the writer. `None` means "ask [`reserve`]".
pub fn known_lockout(
    conn: &mut Conn,
    now: Millis,
    username: &str,
    client: &str,
) -> Result<Option<Millis>, StoreError> {
    let running = |row: Option<(Counter, bool)>| {
        row.filter(|(_, audited)| *audited)
            .and_then(|(c, _)| c.locked_until)
            .filter(|until| *until > now)
    };
    Ok(running(pair_counter(conn, username, client)?).or(running(ip_counter(conn, client)?)))
}

/// Counts an attempt of `username` from `client` on both counters before its password is
/// checked, or refuses it while a lockout runs (auditing the first refusal of each lock).
pub fn reserve(
    conn: &mut Conn,
    now: Millis,
    username: &str,
    user_id: Option<i64>,
    client: &str,
    actor: &Actor,
    policy: Policy,
) -> Result<Attempt, StoreError> {
    write_tx(conn, |conn| {
        let pair = pair_counter(conn, username, client)?;
        let pair_step = step(pair.map(|p| p.0), now, policy.max_failures, policy.window);
        let ip = ip_counter(conn, client)?;
        let ip_step = step(ip.map(|p| p.0), now, policy.ip_max_failures, policy.window);
        let (pair_next, pair_locks, ip_next, ip_locks) = match (pair_step, ip_step) {
            (Step::Locked(until), _) => {
                if !pair.is_some_and(|p| p.1) {
                    diesel::update(login_failures::table.find((username, client)))
                        .set(login_failures::refusal_audited.eq(true))
                        .execute(conn)?;
                    audit_refusal(conn, now, username, user_id, actor, "locked out")?;
                }
                return Ok(Attempt::Locked(until));
            }
            (_, Step::Locked(until)) => {
                if !ip.is_some_and(|p| p.1) {
                    diesel::update(login_failures_by_ip::table.find(client))
                        .set(login_failures_by_ip::refusal_audited.eq(true))
                        .execute(conn)?;
                    audit_refusal(
                        conn,
                        now,
                        username,
                        user_id,
                        actor,
                        "every username from this IP is locked out",
                    )?;
                }
                return Ok(Attempt::Locked(until));
            }
            (
                Step::Counted {
                    next: pair_next,
                    locks: pair_locks,
                },
                Step::Counted {
                    next: ip_next,
                    locks: ip_locks,
                },
            ) => (pair_next, pair_locks, ip_next, ip_locks),
        };
        diesel::replace_into(login_failures::table)
            .values((
                login_failures::username.eq(username),
                login_failures::ip.eq(client),
                login_failures::failures.eq(pair_next.failures),
                login_failures::window_started_at.eq(pair_next.started),
                login_failures::locked_until.eq(pair_next.locked_until),
                login_failures::refusal_audited.eq(false),
            ))
            .execute(conn)?;
        diesel::replace_into(login_failures_by_ip::table)
            .values((
                login_failures_by_ip::ip.eq(client),
                login_failures_by_ip::failures.eq(ip_next.failures),
                login_failures_by_ip::window_started_at.eq(ip_next.started),
                login_failures_by_ip::locked_until.eq(ip_next.locked_until),
                login_failures_by_ip::refusal_audited.eq(false),
            ))
            .execute(conn)?;
        // The lockout starts with this attempt, and is audited with it: the guesses
        // racing behind it are refused from now on, whatever this one turns out to be.
        let locked = |detail: Option<&str>| Event {
            kind: EventKind::LockedOut,
            actor,
            subject_user_id: user_id,
            subject_username: Some(username),
            session_id: None,
            detail: detail.map(str::to_owned),
        };
        if pair_locks {
            audit::record(conn, now, locked(None))?;
        }
        if ip_locks {
            audit::record(conn, now, locked(Some("every username from this IP")))?;
        }
        Ok(Attempt::Allowed(Reservation {
            username: username.to_owned(),
            client: client.to_owned(),
            pair_lock: pair_next.locked_until.filter(|_| pair_locks),
            ip_lock: ip_next.locked_until.filter(|_| ip_locks),
        }))
    })
}

fn audit_refusal(
    conn: &mut Conn,
    now: Millis,
    username: &str,
    user_id: Option<i64>,
    actor: &Actor,
    why: &str,
) -> Result<(), StoreError> {
    audit::record(
        conn,
        now,
        Event {
            kind: EventKind::SignInRefused,
            actor,
            subject_user_id: user_id,
            subject_username: Some(username),
            session_id: None,
            detail: Some(why.to_owned()),
        },
    )
}

/// The reserved attempt was a wrong password: audits it. Returns the end of the lockout
/// the attempt started, if any. The failure itself was counted (and the lockout started
/// and audited) by [`reserve`].
pub fn confirm_failure(
    conn: &mut Conn,
    now: Millis,
    reservation: &Reservation,
    user_id: Option<i64>,
    actor: &Actor,
) -> Result<Option<Millis>, StoreError> {
    audit::record(
        conn,
        now,
        Event {
            kind: EventKind::SignInFailed,
            actor,
            subject_user_id: user_id,
            subject_username: Some(&reservation.username),
            session_id: None,
            detail: None,
        },
    )?;
    Ok(reservation.pair_lock.max(reservation.ip_lock))
}

/// The reserved attempt was right: gives its count back. A success forgives that
/// (username, client)'s earlier failures too — not the client's, or one working account
/// would let a stuffing run reset its own ceiling. A lockout this attempt did not start
/// (one started by guesses racing it) keeps running: only the attempt's own count is
/// given back then.
pub fn release(conn: &mut Conn, reservation: &Reservation) -> Result<(), StoreError> {
    let (username, client) = (reservation.username.as_str(), reservation.client.as_str());
    write_tx(conn, |conn| {
        if let Some((pair, _)) = pair_counter(conn, username, client)? {
            if pair.locked_until.is_none() || pair.locked_until == reservation.pair_lock {
                diesel::delete(login_failures::table.find((username, client))).execute(conn)?;
            } else {
                diesel::update(login_failures::table.find((username, client)))
                    .set(login_failures::failures.eq((pair.failures - 1).max(0)))
                    .execute(conn)?;
            }
        }
        if let Some((ip, _)) = ip_counter(conn, client)? {
            let own_lock = ip.locked_until.is_some() && ip.locked_until == reservation.ip_lock;
            diesel::update(login_failures_by_ip::table.find(client))
                .set((
                    login_failures_by_ip::failures.eq((ip.failures - 1).max(0)),
                    login_failures_by_ip::locked_until.eq(if own_lock {
                        None
                    } else {
                        ip.locked_until
                    }),
                ))
                .execute(conn)?;
        }
        Ok(())
    })
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
    use super::{step, Counter, Step};

    fn counter(failures: i32, started: i64, locked_until: Option<i64>) -> Counter {
        Counter {
            failures,
            started,
            locked_until,
        }
    }

    #[test]
    fn attempts_count_within_the_window_and_the_maximum_locks() {
        assert_eq!(
            step(None, 100, 3, 10),
            Step::Counted {
                next: counter(1, 100, None),
                locks: false
            }
        );
        assert_eq!(
            step(Some(counter(1, 100, None)), 105, 3, 10),
            Step::Counted {
                next: counter(2, 100, None),
                locks: false
            }
        );
        assert_eq!(
            step(Some(counter(2, 100, None)), 109, 3, 10),
            Step::Counted {
                next: counter(3, 100, Some(119)),
                locks: true
            }
        );
    }

    #[test]
    fn a_running_lockout_refuses_and_an_ended_one_starts_over() {
        let locked = Some(counter(3, 100, Some(119)));
        assert_eq!(step(locked, 110, 3, 10), Step::Locked(119));
        assert_eq!(step(locked, 118, 3, 10), Step::Locked(119));
        assert_eq!(
            step(locked, 119, 3, 10),
            Step::Counted {
                next: counter(1, 119, None),
                locks: false
            }
        );
    }

    #[test]
    fn a_stale_window_starts_over() {
        assert_eq!(
            step(Some(counter(2, 100, None)), 110, 3, 10),
            Step::Counted {
                next: counter(1, 110, None),
                locks: false
            }
        );
        assert_eq!(
            step(Some(counter(i32::MAX, 100, None)), 101, i32::MAX, 10),
            Step::Counted {
                next: counter(i32::MAX, 100, Some(111)),
                locks: true
            }
        );
    }
}
