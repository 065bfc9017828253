//! Security decisions under concurrency, timing and proxies: each test sends what a
//! red-team pass sent (loopback, bounded) and checks the decision held.

use std::time::Duration;

use latchkey::clock;
use latchkey::domain::{Role, SessionId, UserId};
use latchkey::store::sessions::RevokeReason;
use latchkey::store::{audit, sessions, users, Actor};
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

/// Fires `n` copies of a request at once and collects their statuses.
async fn burst<F, Fut>(n: usize, make: F) -> Vec<u16>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = reqwest::Response> + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| actix_web::rt::spawn(make(i))).collect();
    let mut statuses = Vec::with_capacity(n);
    for task in tasks {
        statuses.push(task.await.unwrap().status().as_u16());
    }
    statuses
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

fn events(app: &TestApp, kind: &str) -> usize {
    audit::list(&mut app.conn(), None, None, 10_000)
        .unwrap()
        .iter()
        .filter(|e| e.kind.as_str() == kind)
        .count()
}

#[actix_web::test]
async fn parallel_guesses_never_outrun_the_lockout() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let url = app.url("/auth/token");
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let url = url.clone();
        statuses.extend(
            burst(39, move |_| {
                let url = url.clone();
                async move {
                    client()
                        .post(url)
                        .json(&serde_json::json!({"username": "alice", "password": "wrong password!"}))
                        .send()
                        .await
                        .unwrap()
                }
            })
            .await,
        );
    }
    assert_eq!(
        count(&statuses, 401),
        5,
        "exactly the allowed guesses were evaluated"
    );
    assert_eq!(count(&statuses, 429), statuses.len() - 5, "{statuses:?}");
    assert_eq!(events(&app, "sign_in_failed"), 5);
    assert_eq!(
        app.post_token(&client(), "alice", PASSWORD).await.status(),
        429,
        "the right password after the burst is still locked out"
    );
    assert_eq!(
        events(&app, "sign_in_refused"),
        1,
        "the first refusal of the lock is audited once"
    );
}

#[actix_web::test]
async fn parallel_guesses_across_usernames_never_outrun_the_ip_ceiling() {
    // Ceiling: 20 × 1 failures from one client.
    let app = spawn_app_with(|s| s.login_max_failures = 1).await;
    let url = app.url("/auth/token");
    let statuses = burst(60, move |i| {
        let url = url.clone();
        async move {
            client()
                .post(url)
                .json(&serde_json::json!({"username": format!("user{i}"), "password": "wrong password!"}))
                .send()
                .await
                .unwrap()
        }
    })
    .await;
    assert_eq!(count(&statuses, 401), 20, "{statuses:?}");
    assert_eq!(count(&statuses, 429), 40);
}

/// A burst of twelve sign-ins for alice, the first with the right password.
async fn right_password_among_wrong_ones(app: &TestApp) -> Vec<u16> {
    let url = app.url("/auth/token");
    burst(12, move |i| {
        let url = url.clone();
        let password = if i == 0 { PASSWORD } else { "wrong password!" };
        async move {
            client()
                .post(url)
                .json(&serde_json::json!({"username": "alice", "password": password}))
                .send()
                .await
                .unwrap()
        }
    })
    .await
}

#[actix_web::test]
async fn a_right_password_racing_wrong_ones_never_lifts_a_running_lock() {
    let app = spawn_app_with(|s| s.login_max_failures = 3).await;
    app.add_user("alice", Role::User);
    for _ in 0..3 {
        assert_eq!(
            app.post_token(&client(), "alice", "wrong password!")
                .await
                .status(),
            401
        );
    }
    let statuses = right_password_among_wrong_ones(&app).await;
    assert_eq!(count(&statuses, 429), 12, "{statuses:?}");
    assert_eq!(
        app.post_token(&client(), "alice", PASSWORD).await.status(),
        429,
        "three failures locked it, whatever the right password did"
    );
}

#[actix_web::test]
async fn a_right_password_racing_wrong_ones_forgives_only_what_came_before_it() {
    let app = spawn_app_with(|s| s.login_max_failures = 3).await;
    app.add_user("alice", Role::User);
    let statuses = right_password_among_wrong_ones(&app).await;
    // A success forgives the failures confirmed before it (fewer than three, or it would
    // have been refused), and three more may follow it before the lock: five at most.
    assert!(count(&statuses, 401) <= 5, "{statuses:?}");
    assert!(count(&statuses, 200) <= 1, "{statuses:?}");
    assert_eq!(
        count(&statuses, 401) + count(&statuses, 200) + count(&statuses, 429),
        12
    );
}

/// Sign-ins racing a change of the user that must end all their sessions: whatever
/// signed in, nothing works once the change has returned.
async fn race_sign_ins_against(
    app: &TestApp,
    change: impl FnOnce(&mut latchkey::db::Conn, UserId) + Send + 'static,
    alice: UserId,
) -> Vec<(String, String)> {
    let url = app.url("/auth/token");
    let sign_ins: Vec<_> = (0..12)
        .map(|_| {
            let url = url.clone();
            actix_web::rt::spawn(async move {
                let response = client()
                    .post(url)
                    .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
                    .send()
                    .await
                    .unwrap();
                if response.status() != 200 {
                    return None;
                }
                let refresh = cookie_value(response.headers(), "lk_refresh").unwrap();
                let body: Value = response.json().await.unwrap();
                Some((body["access_token"].as_str().unwrap().to_owned(), refresh))
            })
        })
        .collect();
    // Let the sign-ins reach their password check, then change the user meanwhile.
    actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    let mut conn = app.conn();
    actix_web::rt::task::spawn_blocking(move || change(&mut conn, alice))
        .await
        .unwrap();
    let mut signed_in = Vec::new();
    for task in sign_ins {
        if let Some(pair) = task.await.unwrap() {
            signed_in.push(pair);
        }
    }
    signed_in
}

async fn assert_all_dead(app: &TestApp, signed_in: &[(String, String)], what: &str) {
    // Documented: another process's revocation reaches this server within 2 s.
    actix_web::rt::time::sleep(Duration::from_millis(2000)).await;
    for (access, refresh) in signed_in {
        assert_eq!(
            app.refresh_with(refresh).await.status(),
            401,
            "{what}: refresh"
        );
        assert_eq!(
            app.get_bearer("/api/me", access).await.status(),
            401,
            "{what}: access"
        );
    }
}

#[actix_web::test]
async fn a_sign_in_racing_user_disable_never_outlives_it() {
    let app = spawn_app().await;
    let alice = app.add_user("alice", Role::Admin);
    app.add_user("root", Role::Admin);
    let mut raced = Vec::new();
    for _ in 0..3 {
        raced.extend(
            race_sign_ins_against(
                &app,
                |conn, id| {
                    users::set_disabled(conn, clock::now(), id, true, &Actor::cli()).unwrap();
                },
                alice,
            )
            .await,
        );
        assert_all_dead(&app, &raced, "disabled").await;
        users::set_disabled(&mut app.conn(), clock::now(), alice, false, &Actor::cli()).unwrap();
        assert_all_dead(&app, &raced, "enabled again").await;
    }
}

#[actix_web::test]
async fn a_sign_in_racing_user_passwd_never_outlives_it() {
    let app = spawn_app().await;
    let alice = app.add_user("alice", Role::User);
    let original = users::find_by_id(&mut app.conn(), alice)
        .unwrap()
        .password_hash;
    for _ in 0..3 {
        let new_hash = latchkey::passwords::hash_blocking(
            &latchkey::domain::Password::parse("another password entirely".into()).unwrap(),
        )
        .unwrap();
        let raced = race_sign_ins_against(
            &app,
            move |conn, id| {
                users::set_password(conn, clock::now(), id, &new_hash, None, &Actor::cli())
                    .unwrap();
            },
            alice,
        )
        .await;
        assert_all_dead(&app, &raced, "password changed").await;
        // Back to the password the racing sign-ins use, for the next round.
        let restore = original.clone();
        users::set_password(
            &mut app.conn(),
            clock::now(),
            alice,
            &restore,
            None,
            &Actor::cli(),
        )
        .unwrap();
    }
}

#[actix_web::test]
async fn a_revocation_stamped_long_before_it_commits_still_reaches_running_servers() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let access = app.sign_in(&client(), "alice").await;
    let id: SessionId = app.session_id(&access).await.parse().unwrap();
    // A writer whose clock (or whose slow password prompt) put the stamp a minute back.
    sessions::revoke(
        &mut app.conn(),
        clock::now() - Duration::from_secs(60),
        id,
        None,
        RevokeReason::RevokedByAdmin,
        &Actor::cli(),
    )
    .unwrap();
    let refused = time_until_refused(&app, &access, Duration::from_secs(3)).await;
    assert!(
        refused.is_some_and(|t| t <= Duration::from_secs(2)),
        "{refused:?}"
    );
}

/// Signs in alice through a trusted proxy with this `X-Forwarded-For`; the IP her
/// session records.
async fn session_ip_via(app: &TestApp, forwarded: &str) -> String {
    let response = client()
        .post(app.url("/auth/token"))
        .header("x-forwarded-for", forwarded)
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{forwarded}");
    let body: Value = response.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let sid = app.session_id(&access).await;
    let list: Value = app
        .get_bearer("/api/sessions", &access)
        .await
        .json()
        .await
        .unwrap();
    list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == sid.as_str())
        .unwrap()["ip"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[actix_web::test]
async fn forwarded_entries_with_ports_or_garbage_never_let_a_client_pick_its_ip() {
    let app = spawn_app_with(|s| s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()]).await;
    app.add_user("alice", Role::User);
    for (forwarded, seen) in [
        ("6.6.6.6, 203.0.113.9:8443", "203.0.113.9"),
        ("6.6.6.6, [2001:db8::1]:443", "2001:db8::1"),
        ("6.6.6.6, 203.0.113.9, 127.0.0.9", "203.0.113.9"),
        // The proxy appended something that does not parse: the client's own entry to
        // its left is never believed.
        ("6.6.6.6, not-an-ip", "127.0.0.1"),
        ("6.6.6.6, 203.0.113.9:http", "127.0.0.1"),
    ] {
        assert_eq!(session_ip_via(&app, forwarded).await, seen, "{forwarded}");
    }
}

#[actix_web::test]
async fn ipv6_clients_share_a_ceiling_per_64() {
    let app = spawn_app_with(|s| {
        s.login_max_failures = 1;
        s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    app.add_user("alice", Role::User);
    for i in 0..20 {
        let response = client()
            .post(app.url("/auth/token"))
            .header("x-forwarded-for", format!("2001:db8:5:6:{i:x}::1"))
            .json(
                &serde_json::json!({"username": format!("user{i}"), "password": "wrong password!"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let next_address = client()
        .post(app.url("/auth/token"))
        .header("x-forwarded-for", "2001:db8:5:6:ffff::99")
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        next_address.status(),
        429,
        "another address in the same /64"
    );
    let other_network = client()
        .post(app.url("/auth/token"))
        .header("x-forwarded-for", "2001:db8:5:7::1")
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(other_network.status(), 200, "the next /64 is someone else");
}

#[actix_web::test]
async fn a_cross_site_arrival_without_the_refresh_cookie_signs_nobody_out() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let response = app.post_token(&client(), "alice", PASSWORD).await;
    let refresh = cookie_value(response.headers(), "lk_refresh").unwrap();

    // A link from another site: the browser sends no SameSite=Strict cookie.
    let arrival = client()
        .get(app.url("/auth/renew?next=/dashboard"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(arrival.status(), 200);
    assert!(
        arrival.headers().get("set-cookie").is_none(),
        "no cookie is cleared"
    );
    let body = arrival.text().await.unwrap();
    assert!(
        body.contains(r#"http-equiv="refresh""#)
            && body.contains("/auth/renew?next=/dashboard&#38;again=1"),
        "{body}"
    );

    // The same-site second step carries the cookie and renews.
    let again = client()
        .get(app.url("/auth/renew?next=%2Fdashboard&again=1"))
        .header("sec-fetch-site", "same-origin")
        .header("cookie", format!("lk_refresh={refresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(again.headers()["location"], "/dashboard");
    assert!(cookie_value(again.headers(), "lk_access").is_some_and(|v| !v.is_empty()));

    // Still no cookie on the second step: the sign-in form, and still nothing cleared.
    let without = client()
        .get(app.url("/auth/renew?next=%2Fdashboard&again=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(without.status(), StatusCode::SEE_OTHER);
    assert!(without.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/login"));
    assert!(without.headers().get("set-cookie").is_none());
}

#[actix_web::test]
async fn repeats_within_the_grace_cannot_fork_the_session() {
    let app = spawn_app_with(|s| s.refresh_reuse_grace = Duration::from_secs(2)).await;
    app.add_user("alice", Role::User);
    let response = app.post_token(&client(), "alice", PASSWORD).await;
    let stolen = cookie_value(response.headers(), "lk_refresh").unwrap();
    let first = app.refresh_with(&stolen).await;
    let successor = cookie_value(first.headers(), "lk_refresh").unwrap();
    for _ in 0..5 {
        let repeat = app.refresh_with(&stolen).await;
        assert_eq!(repeat.status(), 200);
        assert_eq!(
            cookie_value(repeat.headers(), "lk_refresh").unwrap(),
            successor,
            "every repeat gets the same successor"
        );
    }
    // The legitimate holder moves on; the thief's copy of the successor is now a reuse.
    let moved_on = app.refresh_with(&successor).await;
    assert_eq!(moved_on.status(), 200);
    let latest = cookie_value(moved_on.headers(), "lk_refresh").unwrap();
    actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        error_code(app.refresh_with(&successor).await).await,
        (401, "invalid_refresh_token".into())
    );
    assert_eq!(
        app.refresh_with(&latest).await.status(),
        401,
        "reuse revoked the session"
    );
    assert_eq!(events(&app, "refresh_token_reused"), 1);
}

#[actix_web::test]
async fn two_admins_demoting_each_other_at_once_leave_an_admin() {
    let app = spawn_app().await;
    let alice = app.add_user("alice", Role::Admin);
    let bob = app.add_user("bob", Role::Admin);
    for round in 0..8 {
        let (a, b) = (app.page_client("alice").await, app.page_client("bob").await);
        let (csrf_a, csrf_b) = (
            app.page_csrf(&a, "/admin/users").await,
            app.page_csrf(&b, "/admin/users").await,
        );
        let (ra, rb) = futures_join(
            a.post(app.url(&format!("/admin/users/{bob}/role")))
                .form(&[("csrf_token", csrf_a.as_str()), ("role", "user")])
                .send(),
            b.post(app.url(&format!("/admin/users/{alice}/role")))
                .form(&[("csrf_token", csrf_b.as_str()), ("role", "user")])
                .send(),
        )
        .await;
        let statuses = [ra.unwrap().status().as_u16(), rb.unwrap().status().as_u16()];
        let admins = users::list(&mut app.conn())
            .unwrap()
            .into_iter()
            .filter(|u| u.role.as_str() == "admin" && !u.disabled)
            .count();
        assert_eq!(admins, 1, "round {round}: {statuses:?}");
        // The loser is refused inside the transaction (409), or — when the winner's
        // demotion revoked its session first — sent to renew its sign-in (303).
        assert!(
            statuses.iter().all(|s| *s == 303 || *s == 409),
            "round {round}: {statuses:?}"
        );
        for id in [alice, bob] {
            users::set_role(
                &mut app.conn(),
                clock::now(),
                id,
                Role::Admin,
                &Actor::cli(),
            )
            .unwrap();
        }
    }
}

async fn futures_join<A, B>(a: A, b: B) -> (A::Output, B::Output)
where
    A: std::future::Future + 'static,
    B: std::future::Future + 'static,
    A::Output: 'static,
    B::Output: 'static,
{
    let a = actix_web::rt::spawn(a);
    let b = actix_web::rt::spawn(b);
    (a.await.unwrap(), b.await.unwrap())
}

#[actix_web::test]
async fn access_tokens_never_outlive_the_session_absolute_end() {
    let app = spawn_app_with(|s| {
        s.access_ttl = Duration::from_secs(900);
        s.refresh_ttl = Duration::from_secs(900);
        s.session_max = Duration::from_secs(903);
    })
    .await;
    app.add_user("alice", Role::User);
    let started = clock::now().unix_seconds();
    let response = app.post_token(&app.client, "alice", PASSWORD).await;
    assert_eq!(response.status(), 200);
    actix_web::rt::time::sleep(Duration::from_millis(2100)).await;
    let refreshed: Value = app.refresh(&app.client).await.json().await.unwrap();
    let token = refreshed["access_token"].as_str().unwrap();
    let claims = jwt_claims(token);
    let exp = claims["exp"].as_i64().unwrap();
    assert!(
        exp <= started + 904,
        "exp {exp} is past the session's end {}",
        started + 903
    );
    assert!(refreshed["expires_in"].as_i64().unwrap() <= 901);
}

fn jwt_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[actix_web::test]
async fn forwarded_host_headers_from_anyone_do_not_pass_the_origin_check() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let response = app.post_token(&client(), "alice", PASSWORD).await;
    let refresh = cookie_value(response.headers(), "lk_refresh").unwrap();
    for (name, value) in [
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "host=evil.example;proto=http"),
    ] {
        let attempt = client()
            .post(app.url("/auth/refresh"))
            .header("origin", "http://evil.example")
            .header(name, value)
            .header("cookie", format!("lk_refresh={refresh}"))
            .send()
            .await
            .unwrap();
        assert_eq!(attempt.status(), 403, "{name}");
    }
}

#[actix_web::test]
async fn a_burst_of_right_passwords_locks_nobody_out() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let url = app.url("/auth/token");
    let statuses = burst(20, move |_| {
        let url = url.clone();
        async move {
            client()
                .post(url)
                .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
                .send()
                .await
                .unwrap()
        }
    })
    .await;
    // At most five are checked at once; the others wait their turn and sign in too.
    assert_eq!(count(&statuses, 200), 20, "{statuses:?}");
    assert_eq!(events(&app, "locked_out"), 0);
    let after = app.post_token(&client(), "alice", PASSWORD).await;
    assert_eq!(after.status(), 200, "no lockout followed the burst");
}
