//! Failed sign-ins, counted twice: per (username, client) — the documented lockout — and
//! per client across all usernames — a ceiling against credential stuffing. Both live in
//! the database so a restart does not reset a lockout. The client key is the IP address,
//! or for IPv6 its /64 (one subscriber's network): see `client::lockout_key`.
//!
//! A guess is counted *before* its password is hashed: [`reserve`] adds it to the
//! counter's `pending` attempts (or refuses it) in one write transaction, the caller
//! verifies the password, then [`confirm_failure`] turns it into a failure (starting the
//! lockout at the maximum) or [`release`] gives it back. An attempt is evaluated only
//! while failures + pending stay below the maximum, so however many guesses arrive at
//! once, at most `max_failures` are ever evaluated per (username, client) and window, and
//! at most `ip_max_failures` per client; the rest wait their turn (see `auth::flows`)
//! without starting a lockout, so a burst of *right* passwords locks nobody out.
//! A pending attempt whose request never reported back (the client went away) stops
//! counting after `PENDING_TTL`.

use std::time::Duration;

use diesel::prelude::*;

use super::audit::{self, Event, EventKind};
use super::{write_tx, Actor, Statement, StoreError};
use crate::clock::Millis;
use crate::db::Conn;
use crate::domain::UserId;
use crate::schema::{login_failures, login_failures_by_ip};

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Failures of one (username, client) within `window` that start a lockout.
    pub max_failures: i32,
    /// Failures from one client, whatever the usernames, within `window` that lock it out.
    pub ip_max_failures: i32,
    /// How long failures are counted, and how long a lockout lasts.
    pub window: Duration,
}

/// Far longer than a password check takes, queueing included.
const PENDING_TTL: Duration = Duration::from_secs(30);

/// One counter row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counter {
    failures: i32,
    pending: i32,
    pending_since: Millis,
    started: Millis,
    locked_until: Option<Millis>,
    refusal_audited: bool,
}

impl Counter {
    fn fresh(now: Millis) -> Self {
        Counter {
            failures: 0,
            pending: 0,
            pending_since: now,
            started: now,
            locked_until: None,
            refusal_audited: false,
        }
    }

    /// The counter as it stands at `now`: stale pending attempts and an ended window or
    /// lockout forgotten. (A lockout lasts a window, so its end also ends the window.)
    fn at(self, now: Millis, window: Duration) -> Self {
        let pending = if now.since(self.pending_since) >= PENDING_TTL {
            0
        } else {
            self.pending
        };
        match self.locked_until {
            Some(until) if until > now => Counter { pending, ..self },
            Some(_) => Counter {
                pending,
                pending_since: self.pending_since,
                ..Counter::fresh(now)
            },
            None if now.since(self.started) >= window => Counter {
                failures: 0,
                started: now,
                pending,
                ..self
            },
            None => Counter { pending, ..self },
        }
    }
}

/// What reserving one more attempt on a counter does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// A lockout is running until then.
    Locked(Millis),
    /// As many attempts as may still fail are already being checked: try again shortly.
    Busy,
    /// The attempt is pending on the counter.
    Counted(Counter),
}

fn reserve_step(current: Option<Counter>, now: Millis, max: i32, window: Duration) -> Step {
    let c = current.map_or(Counter::fresh(now), |c| c.at(now, window));
    if let Some(until) = c.locked_until {
        return Step::Locked(until);
    }
    if c.failures.saturating_add(c.pending) >= max {
        return Step::Busy;
    }
    Step::Counted(Counter {
        pending: c.pending + 1,
        pending_since: now,
        ..c
    })
}

/// A pending attempt failed: the counter after it, and whether it started a lockout.
fn failure_step(
    current: Option<Counter>,
    now: Millis,
    max: i32,
    window: Duration,
) -> (Counter, bool) {
    let c = current.map_or(Counter::fresh(now), |c| c.at(now, window));
    let pending = (c.pending - 1).max(0);
    if c.locked_until.is_some() {
        // Racing failures already locked it: a lock is never restarted or cleared here.
        return (Counter { pending, ..c }, false);
    }
    let failures = c.failures.saturating_add(1);
    let locks = failures >= max;
    (
        Counter {
            failures,
            pending,
            locked_until: locks.then_some(now + window),
            refusal_audited: false,
            ..c
        },
        locks,
    )
}

/// A pending attempt was right: given back; with `forgive`, earlier failures too — unless
/// a lockout (started by failures racing it) runs, which stays as it is.
fn success_step(current: Counter, now: Millis, window: Duration, forgive: bool) -> Counter {
    let c = current.at(now, window);
    Counter {
        pending: (c.pending - 1).max(0),
        failures: if forgive && c.locked_until.is_none() {
            0
        } else {
            c.failures
        },
        ..c
    }
}

/// failures, pending, pending since, window start, lockout end, first refusal audited
type CounterRow = (i32, i32, Millis, Millis, Option<Millis>, bool);

fn from_row(
    (failures, pending, pending_since, started, locked_until, refusal_audited): CounterRow,
) -> Counter {
    Counter {
        failures,
        pending,
        pending_since,
        started,
        locked_until,
        refusal_audited,
    }
}

/// Attempts on one client's counters take turns (the client's, then the pair's, always
/// in that order), so each reads what the ones before it wrote.
fn hold_counters(conn: &mut Conn, username: &str, client: &str) -> Result<(), StoreError> {
    super::hold(conn, &format!("lockout:{client}"))?;
    super::hold(conn, &format!("lockout:{client}:{username}"))
}

fn pair_counter(
    conn: &mut Conn,
    username: &str,
    client: &str,
) -> Result<Option<Counter>, StoreError> {
    use login_failures as t;
    Ok(t::table
        .find((username, client))
        .select((
            t::failures,
            t::pending,
            t::pending_since,
            t::window_started_at,
            t::locked_until,
            t::refusal_audited,
        ))
        .one::<CounterRow>(conn)
        .optional()?
        .map(from_row))
}

fn ip_counter(conn: &mut Conn, client: &str) -> Result<Option<Counter>, StoreError> {
    use login_failures_by_ip as t;
    Ok(t::table
        .find(client)
        .select((
            t::failures,
            t::pending,
            t::pending_since,
            t::window_started_at,
            t::locked_until,
            t::refusal_audited,
        ))
        .one::<CounterRow>(conn)
        .optional()?
        .map(from_row))
}

fn store_pair(conn: &mut Conn, username: &str, client: &str, c: Counter) -> Result<(), StoreError> {
    use login_failures as t;
    let counts = (
        t::failures.eq(c.failures),
        t::pending.eq(c.pending),
        t::pending_since.eq(c.pending_since),
        t::window_started_at.eq(c.started),
        t::locked_until.eq(c.locked_until),
        t::refusal_audited.eq(c.refusal_audited),
    );
    diesel::insert_into(t::table)
        .values((t::username.eq(username), t::ip.eq(client), counts))
        .on_conflict((t::username, t::ip))
        .do_update()
        .set(counts)
        .run(conn)?;
    Ok(())
}

fn store_ip(conn: &mut Conn, client: &str, c: Counter) -> Result<(), StoreError> {
    use login_failures_by_ip as t;
    let counts = (
        t::failures.eq(c.failures),
        t::pending.eq(c.pending),
        t::pending_since.eq(c.pending_since),
        t::window_started_at.eq(c.started),
        t::locked_until.eq(c.locked_until),
        t::refusal_audited.eq(c.refusal_audited),
    );
    diesel::insert_into(t::table)
        .values((t::ip.eq(client), counts))
        .on_conflict(t::ip)
        .do_update()
        .set(counts)
        .run(conn)?;
    Ok(())
}

/// A counted attempt, to be confirmed as a failure or released after the password check.
#[derive(Debug, Clone)]
pub struct Reservation {
    username: String,
    client: String,
}

/// The outcome of [`reserve`].
#[derive(Debug)]
pub enum Attempt {
    /// Go ahead and check the password; report the result with the reservation.
    Allowed(Reservation),
    /// A lockout runs until then; the password must not be checked.
    Locked(Millis),
    /// As many attempts as may still fail are being checked: not now.
    Busy,
}

/// What a read says about an attempt, before any write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// A lockout whose first refusal is already audited runs until then: refuse.
    Locked(Millis),
    /// As many attempts as may still fail are being checked: wait and look again.
    Busy,
    /// Ask [`reserve`], which decides.
    Open,
}

/// The read-only look that keeps waiting and refused attempts off the writer.
pub fn peek(
    conn: &mut Conn,
    now: Millis,
    username: &str,
    client: &str,
    policy: Policy,
) -> Result<Peek, StoreError> {
    let pair = pair_counter(conn, username, client)?;
    let ip = ip_counter(conn, client)?;
    let look = |c: Option<Counter>, max: i32| match (c, reserve_step(c, now, max, policy.window)) {
        (Some(c), Step::Locked(until)) if c.refusal_audited => Peek::Locked(until),
        (_, Step::Busy) => Peek::Busy,
        _ => Peek::Open,
    };
    Ok(
        match (
            look(pair, policy.max_failures),
            look(ip, policy.ip_max_failures),
        ) {
            (Peek::Locked(until), _) | (_, Peek::Locked(until)) => Peek::Locked(until),
            (Peek::Busy, _) | (_, Peek::Busy) => Peek::Busy,
            _ => Peek::Open,
        },
    )
}

/// Counts an attempt of `username` from `client` as pending on both counters before its
/// password is checked, or refuses it (auditing the first refusal of each lockout).
pub fn reserve(
    conn: &mut Conn,
    now: Millis,
    username: &str,
    user_id: Option<UserId>,
    client: &str,
    actor: &Actor,
    policy: Policy,
) -> Result<Attempt, StoreError> {
    write_tx(conn, |conn| {
        hold_counters(conn, username, client)?;
        let pair = pair_counter(conn, username, client)?;
        let ip = ip_counter(conn, client)?;
        let pair_step = reserve_step(pair, now, policy.max_failures, policy.window);
        let ip_step = reserve_step(ip, now, policy.ip_max_failures, policy.window);
        match (pair_step, ip_step) {
            (Step::Locked(until), _) => {
                if let Some(c) = pair.filter(|c| !c.refusal_audited) {
                    store_pair(
                        conn,
                        username,
                        client,
                        Counter {
                            refusal_audited: true,
                            ..c
                        },
                    )?;
                    audit_refusal(conn, now, username, user_id, actor, "locked out")?;
                }
                Ok(Attempt::Locked(until))
            }
            (_, Step::Locked(until)) => {
                if let Some(c) = ip.filter(|c| !c.refusal_audited) {
                    store_ip(
                        conn,
                        client,
                        Counter {
                            refusal_audited: true,
                            ..c
                        },
                    )?;
                    audit_refusal(
                        conn,
                        now,
                        username,
                        user_id,
                        actor,
                        "every username from this IP is locked out",
                    )?;
                }
                Ok(Attempt::Locked(until))
            }
            (Step::Busy, _) | (_, Step::Busy) => Ok(Attempt::Busy),
            (Step::Counted(pair_next), Step::Counted(ip_next)) => {
                store_pair(conn, username, client, pair_next)?;
                store_ip(conn, client, ip_next)?;
                Ok(Attempt::Allowed(Reservation {
                    username: username.to_owned(),
                    client: client.to_owned(),
                }))
            }
        }
    })
}

fn audit_refusal(
    conn: &mut Conn,
    now: Millis,
    username: &str,
    user_id: Option<UserId>,
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

/// The reserved attempt was a wrong password: counts and audits the failure, and starts
/// (and audits) a lockout when it reaches a maximum. Returns the end of that lockout.
pub fn confirm_failure(
    conn: &mut Conn,
    now: Millis,
    reservation: &Reservation,
    user_id: Option<UserId>,
    actor: &Actor,
    policy: Policy,
) -> Result<Option<Millis>, StoreError> {
    let (username, client) = (reservation.username.as_str(), reservation.client.as_str());
    write_tx(conn, |conn| {
        hold_counters(conn, username, client)?;
        let (pair, pair_locks) = failure_step(
            pair_counter(conn, username, client)?,
            now,
            policy.max_failures,
            policy.window,
        );
        let (ip, ip_locks) = failure_step(
            ip_counter(conn, client)?,
            now,
            policy.ip_max_failures,
            policy.window,
        );
        store_pair(conn, username, client, pair)?;
        store_ip(conn, client, ip)?;
        let event = |kind, detail: Option<&str>| Event {
            kind,
            actor,
            subject_user_id: user_id,
            subject_username: Some(username),
            session_id: None,
            detail: detail.map(str::to_owned),
        };
        audit::record(conn, now, event(EventKind::SignInFailed, None))?;
        if pair_locks {
            audit::record(conn, now, event(EventKind::LockedOut, None))?;
        }
        if ip_locks {
            audit::record(
                conn,
                now,
                event(EventKind::LockedOut, Some("every username from this IP")),
            )?;
        }
        Ok(
            if pair_locks { pair.locked_until } else { None }.max(if ip_locks {
                ip.locked_until
            } else {
                None
            }),
        )
    })
}

/// The reserved attempt was right: gives its count back. A success forgives that
/// (username, client)'s earlier failures too — not the client's, or one working account
/// would let a stuffing run reset its own ceiling. A lockout started by failures racing
/// it keeps running.
pub fn release(
    conn: &mut Conn,
    now: Millis,
    reservation: &Reservation,
    policy: Policy,
) -> Result<(), StoreError> {
    give_back(conn, now, reservation, policy, true)
}

/// The reserved attempt ended without a verdict on what it guesses (a right password
/// whose second factor is still to come): its count is given back, but nothing is
/// forgiven, so wrong codes keep counting across such attempts.
pub fn withdraw(
    conn: &mut Conn,
    now: Millis,
    reservation: &Reservation,
    policy: Policy,
) -> Result<(), StoreError> {
    give_back(conn, now, reservation, policy, false)
}

fn give_back(
    conn: &mut Conn,
    now: Millis,
    reservation: &Reservation,
    policy: Policy,
    forgive: bool,
) -> Result<(), StoreError> {
    let (username, client) = (reservation.username.as_str(), reservation.client.as_str());
    write_tx(conn, |conn| {
        hold_counters(conn, username, client)?;
        if let Some(pair) = pair_counter(conn, username, client)? {
            store_pair(
                conn,
                username,
                client,
                success_step(pair, now, policy.window, forgive),
            )?;
        }
        if let Some(ip) = ip_counter(conn, client)? {
            store_ip(conn, client, success_step(ip, now, policy.window, false))?;
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
            .all(conn)?;
        let mut purged = 0;
        for (username, ip) in &pairs {
            purged += diesel::delete(login_failures::table.find((username, ip))).run(conn)?;
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
            .all(conn)?;
        purged += diesel::delete(
            login_failures_by_ip::table.filter(login_failures_by_ip::ip.eq_any(&ips)),
        )
        .run(conn)?;
        Ok(purged)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: i32 = 3;
    const WINDOW: Duration = Duration::from_millis(100_000);

    /// The instant `ms` milliseconds after the epoch.
    fn t(ms: i64) -> Millis {
        Millis(ms)
    }

    fn counted(step: Step) -> Counter {
        match step {
            Step::Counted(c) => c,
            other => panic!("not counted: {other:?}"),
        }
    }

    #[test]
    fn attempts_beyond_what_may_still_fail_wait_without_a_lockout() {
        let mut c = None;
        for _ in 0..MAX {
            c = Some(counted(reserve_step(c, t(0), MAX, WINDOW)));
        }
        assert_eq!(reserve_step(c, t(1), MAX, WINDOW), Step::Busy);
        // One comes back right: room for one more.
        let c = success_step(c.unwrap(), t(2), WINDOW, true);
        assert_eq!(c.pending, MAX - 1);
        assert!(matches!(
            reserve_step(Some(c), t(3), MAX, WINDOW),
            Step::Counted(_)
        ));
    }

    #[test]
    fn the_failure_that_reaches_the_maximum_locks_for_a_window() {
        let mut c = None;
        for _ in 0..MAX {
            c = Some(counted(reserve_step(c, t(0), MAX, WINDOW)));
        }
        let mut locked = false;
        for i in 0..MAX {
            let (next, locks) = failure_step(c, t(10 + i as i64), MAX, WINDOW);
            c = Some(next);
            locked = locks;
        }
        assert!(locked);
        let until = c.unwrap().locked_until.unwrap();
        assert_eq!(until, t(12) + WINDOW);
        assert_eq!(reserve_step(c, t(50), MAX, WINDOW), Step::Locked(until));
        // A success racing the failures does not lift their lock.
        assert_eq!(
            success_step(c.unwrap(), t(60), WINDOW, true).locked_until,
            Some(until)
        );
        // After the lockout, a fresh window.
        let after = counted(reserve_step(c, until, MAX, WINDOW));
        assert_eq!(
            (after.failures, after.pending, after.locked_until),
            (0, 1, None)
        );
    }

    #[test]
    fn pending_attempts_that_never_reported_back_stop_counting() {
        let mut c = None;
        for _ in 0..MAX {
            c = Some(counted(reserve_step(c, t(0), MAX, WINDOW)));
        }
        assert_eq!(
            reserve_step(
                c,
                t(0) + PENDING_TTL - Duration::from_millis(1),
                MAX,
                WINDOW
            ),
            Step::Busy
        );
        assert!(matches!(
            reserve_step(c, t(0) + PENDING_TTL, MAX, WINDOW),
            Step::Counted(_)
        ));
    }

    #[test]
    fn a_stale_window_starts_over() {
        let c = Counter {
            failures: 2,
            ..Counter::fresh(t(0))
        };
        let next = counted(reserve_step(Some(c), t(0) + WINDOW, MAX, WINDOW));
        assert_eq!((next.failures, next.started), (0, t(0) + WINDOW));
    }
}
