//! Failed sign-ins per (username, client IP), kept in the database so a restart does not
//! reset a lockout.

use diesel::prelude::*;

use super::audit::{self, Event, EventKind};
use super::{write_tx, Actor, StoreError};
use crate::clock::Millis;
use crate::db::Conn;
use crate::schema::login_failures;

#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub max_failures: i32,
    pub window: Millis,
}

/// When the lockout of (username, ip) ends, if one is running.
pub fn locked_until(
    conn: &mut Conn,
    now: Millis,
    username: &str,
    ip: &str,
) -> Result<Option<Millis>, StoreError> {
    let until: Option<Option<Millis>> = login_failures::table
        .find((username, ip))
        .select(login_failures::locked_until)
        .first(conn)
        .optional()?;
    Ok(until.flatten().filter(|until| *until > now))
}

/// Counts one failed sign-in of `username` (the known user, if any, is `user_id`) from
/// `actor.ip`, and audits it; returns the end of the lockout when this failure started one.
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
        let current: Option<(i32, Millis)> = login_failures::table
            .find((username, ip))
            .select((login_failures::failures, login_failures::window_started_at))
            .first(conn)
            .optional()?;
        let (failures, started) = match current {
            Some((n, started)) if now - started < policy.window => (n + 1, started),
            _ => (1, now),
        };
        let locked_until = (failures >= policy.max_failures).then_some(now + policy.window);
        diesel::replace_into(login_failures::table)
            .values((
                login_failures::username.eq(username),
                login_failures::ip.eq(ip),
                login_failures::failures.eq(if locked_until.is_some() { 0 } else { failures }),
                login_failures::window_started_at.eq(if locked_until.is_some() {
                    now
                } else {
                    started
                }),
                login_failures::locked_until.eq(locked_until),
            ))
            .execute(conn)?;
        let event = |kind| Event {
            kind,
            actor,
            subject_user_id: user_id,
            subject_username: Some(username),
            session_id: None,
            detail: None,
        };
        audit::record(conn, now, event(EventKind::SignInFailed))?;
        if locked_until.is_some() {
            audit::record(conn, now, event(EventKind::LockedOut))?;
        }
        Ok(locked_until)
    })
}

pub fn clear(conn: &mut Conn, username: &str, ip: &str) -> Result<(), StoreError> {
    diesel::delete(login_failures::table.find((username, ip))).execute(conn)?;
    Ok(())
}
