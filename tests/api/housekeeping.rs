//! Housekeeping: expired refresh tokens, sessions long past their absolute lifetime and
//! stale sign-in failure counters are purged in bounded batches — and nothing that still
//! matters (a live session, a recent revocation, a running lockout) goes with them.

use std::time::{Duration, Instant};

use diesel::prelude::*;
use latchkey::client::Client;
use latchkey::clock::{self, Millis};
use latchkey::db::{self, Conn, Db};
use latchkey::domain::{Password, Role, SessionId, UserId, Username};
use latchkey::housekeeping::{self, Policy, Purged};
use latchkey::passwords;
use latchkey::schema::{login_failures, login_failures_by_ip, sessions as sessions_table};
use latchkey::startup::Application;
use latchkey::store::sessions::{self, Lifetimes, RevokeReason, Rotation};
use latchkey::store::{lockout, users, Actor, Statement, StoreError};
use latchkey::tokens::refresh::RefreshToken;

use crate::helpers::*;

const DAY: Duration = Duration::from_secs(86_400);
const MINUTE: Duration = Duration::from_secs(60);

fn client_at(ip: &str) -> Client {
    Client {
        ip: ip.into(),
        user_agent: "housekeeping-test".into(),
    }
}

fn life(refresh_days: u32, max_days: u32) -> Lifetimes {
    Lifetimes {
        refresh_ttl: DAY * refresh_days,
        session_max: DAY * max_days,
        reuse_grace: Duration::from_millis(10_000),
    }
}

/// A session of `user_id` started at `at`, with one refresh token hashed from `seed`.
fn session_at(
    conn: &mut Conn,
    user_id: UserId,
    at: Millis,
    lifetimes: Lifetimes,
    seed: u8,
) -> Result<SessionId, StoreError> {
    let user = users::find_by_id(conn, user_id)?;
    Ok(sessions::start(
        conn,
        at,
        (&user).into(),
        &client_at("10.0.0.1"),
        &[seed; 32],
        lifetimes,
    )?
    .expect("alice is unchanged")
    .0
    .id)
}

/// A database no server runs on (a server would run its own housekeeping pass), with
/// the user alice.
/// `Db` for serving it, and a writable connection for the test's own changes.
fn bare_db() -> (tempfile::TempDir, Db, Conn, UserId) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latchkey.db");
    let db = db::open(path.to_str().unwrap(), 2).unwrap();
    let mut conn = db::connect(path.to_str().unwrap()).unwrap();
    let hash = passwords::hash_blocking(&Password::parse(PASSWORD.into()).unwrap()).unwrap();
    let alice = users::create(
        &mut conn,
        clock::now(),
        &Username::parse("alice").unwrap(),
        &hash,
        Role::User,
        &Actor::cli(),
    )
    .unwrap()
    .id;
    (dir, db, conn, alice)
}

/// Serves `db` on a random loopback port.
fn serve(db: &Db) -> String {
    let app = Application::build(default_settings(), db.clone()).unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    actix_web::rt::spawn(app.run());
    address
}

fn exists(conn: &mut Conn, session: SessionId) -> bool {
    sessions::find(conn, session).is_ok()
}

fn token_exists(conn: &mut Conn, seed: u8) -> bool {
    sessions::find_by_token(conn, &[seed; 32])
        .unwrap()
        .is_some()
}

fn failure_rows(conn: &mut Conn) -> (i64, i64) {
    (
        login_failures::table.count().one(conn).unwrap(),
        login_failures_by_ip::table.count().one(conn).unwrap(),
    )
}

fn fail(conn: &mut Conn, at: Millis, ip: &str, max: i32) {
    let actor = Actor::of(None, &client_at(ip));
    let policy = lockout::Policy {
        max_failures: max,
        ip_max_failures: 100,
        window: MINUTE * 15,
    };
    record_failure(conn, at, "nobody", None, &actor, policy).unwrap();
}

#[actix_web::test]
async fn a_pass_deletes_only_what_can_no_longer_matter() {
    let (_dir, db, mut conn, alice) = bare_db();
    let now = clock::now();
    let conn = &mut conn;
    // Ended 30 days ago: goes, with its token.
    let ended = session_at(conn, alice, now - DAY * 60, life(7, 30), 1).unwrap();
    // Ended as long ago, but revoked yesterday: stays for the audit and revocation set.
    let revoked = session_at(conn, alice, now - DAY * 60, life(7, 30), 2).unwrap();
    sessions::revoke(
        conn,
        now - DAY,
        revoked,
        None,
        RevokeReason::RevokedByAdmin,
        &Actor::cli(),
    )
    .unwrap();
    // Idle for 9 days but within its absolute lifetime: its token goes, the session stays.
    let idle = session_at(conn, alice, now - DAY * 10, life(1, 30), 3).unwrap();
    // A live session, rotated once: both of its tokens are unexpired and stay.
    let user = users::find_by_id(conn, alice).unwrap();
    let first = RefreshToken::generate();
    let second = RefreshToken::generate();
    let client = client_at("127.0.0.1");
    sessions::start(
        conn,
        now - MINUTE,
        (&user).into(),
        &client,
        &first.hash(),
        life(7, 30),
    )
    .unwrap();
    let rotation = sessions::rotate(
        conn,
        now,
        &first.hash(),
        &second.hash(),
        &client,
        life(7, 30),
    );
    assert!(matches!(rotation, Ok(Rotation::Rotated { .. })));
    // A stale failure counter goes; a fresh one and a running lockout stay.
    fail(conn, now - DAY, "10.0.0.2", 5);
    fail(conn, now - MINUTE, "10.0.0.3", 5);
    fail(conn, now - MINUTE * 20, "10.0.0.4", 1);
    assert!(locked_until(conn, now, "nobody", "10.0.0.4").is_none());
    fail(conn, now - MINUTE, "10.0.0.5", 1);
    assert_eq!(failure_rows(conn), (4, 4));

    let purged =
        housekeeping::run_once(conn, now, &Policy::from_settings(&default_settings())).unwrap();

    assert_eq!(
        purged,
        Purged {
            refresh_tokens: 3,
            sessions: 1,
            login_failures: 4,
        }
    );
    assert!(!exists(conn, ended));
    assert!(exists(conn, revoked) && exists(conn, idle));
    assert!(!token_exists(conn, 1) && !token_exists(conn, 2) && !token_exists(conn, 3));
    assert_eq!(
        failure_rows(conn),
        (2, 2),
        "the fresh counter and the lockout"
    );
    assert!(locked_until(conn, now, "nobody", "10.0.0.5").is_some());
    assert!(
        sessions::revoked_since(conn, now - DAY * 2)
            .unwrap()
            .iter()
            .any(|(id, _)| *id == revoked),
        "the revocation set still sees the revoked session"
    );
    // Over HTTP: the live session still refreshes.
    let response = reqwest::Client::new()
        .post(format!("{}/auth/refresh", serve(&db)))
        .header("cookie", format!("lk_refresh={}", second.expose()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[actix_web::test]
async fn a_far_future_pass_purges_everything_in_bounded_batches() {
    let (_dir, _db, mut conn, alice) = bare_db();
    let now = clock::now();
    let conn = &mut conn;
    for seed in 0..5 {
        session_at(conn, alice, now, life(7, 30), seed).unwrap();
    }
    let policy = Policy {
        batch: 2,
        ..Policy::from_settings(&default_settings())
    };
    let far_future = now + DAY * 400;
    let mut runs = Vec::new();
    loop {
        let purged = housekeeping::run_once(conn, far_future, &policy).unwrap();
        if purged == Purged::default() {
            break;
        }
        runs.push((purged.refresh_tokens, purged.sessions));
    }
    assert_eq!(
        runs,
        [(2, 2), (2, 2), (1, 1)],
        "at most one batch per table per run"
    );
    let left: i64 = sessions_table::table.count().one(conn).unwrap();
    assert_eq!(left, 0);
}

#[actix_web::test]
async fn the_server_starts_housekeeping_when_it_starts() {
    let app = spawn_app().await;
    let alice = app.add_user("alice", Role::User);
    let ended = {
        session_at(
            &mut app.conn(),
            alice,
            clock::now() - DAY * 60,
            life(7, 30),
            9,
        )
        .unwrap()
    };
    // The first pass runs at start-up (later ones every minute).
    let restarted = spawn_on_same_db(&app, |_| {}).await;
    let start = Instant::now();
    while exists(&mut restarted.db.reader().unwrap(), ended) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "housekeeping did not run"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}
