//! Several instances on one database (PostgreSQL in production; on the SQLite pass the
//! same tests run two servers on one file): every promise holds across them.

use std::time::{Duration, Instant};

use latchkey::clock;
use latchkey::db::Listener;
use latchkey::domain::{Role, SessionId};
use latchkey::store::sessions::RevokeReason;
use latchkey::store::{sessions, Actor, StoreError};

use crate::helpers::*;

const ROUNDS: usize = 25;

/// Signs alice in on `a`, then presents her refresh token to `a` and `b` at the same
/// moment; the two statuses and the token each success returned.
async fn same_token_to_both(a: &TestApp, b: &TestApp) -> [(u16, Option<String>); 2] {
    let signed_in = a.post_token(&client(), "alice", PASSWORD).await;
    assert_eq!(signed_in.status(), 200);
    let token = cookie_value(signed_in.headers(), "lk_refresh").unwrap();
    let (ra, rb) = tokio::join!(a.refresh_with(&token), b.refresh_with(&token));
    [ra, rb].map(|r| {
        (
            r.status().as_u16(),
            cookie_value(r.headers(), "lk_refresh").filter(|v| !v.is_empty()),
        )
    })
}

#[actix_web::test]
async fn the_same_refresh_token_at_two_instances_at_once_is_one_rotation_within_the_grace() {
    let a = spawn_app_with(|s| s.login_max_failures = 1000).await;
    let b = spawn_on_same_db(&a, |s| s.login_max_failures = 1000).await;
    a.add_user("alice", Role::User);
    for round in 0..ROUNDS {
        let [(sa, ta), (sb, tb)] = same_token_to_both(&a, &b).await;
        assert_eq!((sa, sb), (200, 200), "round {round}: both inside the grace");
        assert_eq!(ta, tb, "round {round}: one successor, never a fork");
        let next = a.refresh_with(&ta.unwrap()).await;
        assert_eq!(next.status(), 200, "round {round}: the session lives on");
    }
}

#[actix_web::test]
async fn without_a_grace_the_same_token_at_two_instances_succeeds_at_most_once() {
    let a = spawn_app_with(|s| {
        s.refresh_reuse_grace = Duration::from_secs(0);
        s.login_max_failures = 1000;
    })
    .await;
    let b = spawn_on_same_db(&a, |s| {
        s.refresh_reuse_grace = Duration::from_secs(0);
        s.login_max_failures = 1000;
    })
    .await;
    a.add_user("alice", Role::User);
    let mut reuse_detected = 0;
    for round in 0..ROUNDS {
        let [(sa, ta), (sb, tb)] = same_token_to_both(&a, &b).await;
        let statuses = [sa, sb];
        assert!(
            statuses.iter().all(|s| [200, 401].contains(s)),
            "round {round}: {statuses:?}"
        );
        let winners: Vec<String> = [ta, tb].into_iter().flatten().collect();
        assert!(
            winners.len() <= 1,
            "round {round}: two successes {statuses:?}"
        );
        if let [winner] = winners.as_slice() {
            // The loser presented a rotated token: reuse detection revoked the session,
            // so the winner's successor is dead too.
            assert_eq!(a.refresh_with(winner).await.status(), 401, "round {round}");
            reuse_detected += 1;
        }
    }
    assert!(reuse_detected > 0, "some round had a winner");
}

#[actix_web::test]
async fn a_revocation_on_one_instance_stops_the_access_token_on_the_other() {
    let a = spawn_app().await;
    let b = spawn_on_same_db(&a, |_| {}).await;
    a.add_user("alice", Role::User);
    let access = a.sign_in(&client(), "alice").await;
    assert_eq!(b.get_bearer("/api/me", &access).await.status(), 200);
    let session = a.session_id(&access).await;
    assert_eq!(
        a.delete_bearer(&format!("/api/sessions/{session}"), &access)
            .await
            .status(),
        204
    );
    let reach = time_until_refused(&b, &access, Duration::from_secs(10)).await;
    assert!(
        reach.is_some(),
        "the other instance never refused the token"
    );
}

/// The mechanism behind the reach on PostgreSQL: a revocation's notice arrives on a
/// listening connection when its transaction commits, and never for one rolled back.
#[actix_web::test]
async fn a_revocation_notifies_listeners_when_it_commits_and_only_then() {
    if postgres_server().is_none() {
        eprintln!("PostgreSQL only (LISTEN/NOTIFY): runs in the PostgreSQL pass");
        return;
    }
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let mut listener = Listener::connect(&app.database).unwrap();
    let access = app.sign_in(&client(), "alice").await;
    let session: SessionId = app.session_id(&access).await.parse().unwrap();

    // Revoked, then rolled back: no notice.
    let mut conn = app.conn();
    let undone: Result<(), _> = latchkey::db::write_transaction(&mut conn, |conn| {
        sessions::revoke(
            conn,
            clock::now(),
            session,
            None,
            RevokeReason::RevokedByAdmin,
            &Actor::cli(),
        )?;
        Err(StoreError::Conflict("rolled back".into()))
    });
    assert!(undone.is_err());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(listener.received().unwrap(), Vec::<String>::new());

    sessions::revoke(
        &mut conn,
        clock::now(),
        session,
        None,
        RevokeReason::RevokedByAdmin,
        &Actor::cli(),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut received = Vec::new();
    while received.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        received = listener.received().unwrap();
    }
    assert_eq!(received, ["revocation"]);
}
