//! Brute force: the lockout per (username, client IP), the per-IP ceiling across all
//! usernames, who the client IP is behind a proxy, and both surviving a restart.

use latchkey::domain::Role;
use latchkey::store::audit;
use serde_json::Value;

use crate::helpers::*;

const PROXY: &str = "127.0.0.1";

/// A sign-in that claims, through `X-Forwarded-For`, to come from `forwarded`.
async fn post_token_from(
    app: &TestApp,
    forwarded: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    client()
        .post(app.url("/auth/token"))
        .header("x-forwarded-for", forwarded)
        .json(&serde_json::json!({ "username": username, "password": password }))
        .send()
        .await
        .unwrap()
}

async fn assert_locked(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), 429, "{what}");
    let retry: i64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry >= 1, "{what}: Retry-After {retry}");
    assert_eq!(error_code(response).await.1, "too_many_attempts", "{what}");
}

#[actix_web::test]
async fn case_variants_of_a_username_count_as_one() {
    let app = spawn_app_with(|s| s.login_max_failures = 3).await;
    app.add_user("alice", Role::User);
    for variant in ["ALICE", "Alice", "aLiCe"] {
        let response = app.post_token(&client(), variant, "wrong password!").await;
        assert_eq!(response.status(), 401, "{variant}");
    }
    assert_locked(
        app.post_token(&client(), "alice", PASSWORD).await,
        "the right password, after failures in three spellings",
    )
    .await;
    // Names outside the username alphabet are folded the same way.
    for variant in ["Bob!", "BOB!", "bOb!"] {
        app.post_token(&client(), variant, "wrong password!").await;
    }
    assert_locked(
        app.post_token(&client(), "bob!", "x").await,
        "a folded malformed name",
    )
    .await;
}

#[actix_web::test]
async fn unknown_usernames_are_locked_out_exactly_like_known_ones() {
    let app = spawn_app_with(|s| s.login_max_failures = 2).await;
    app.add_user("alice", Role::User);
    let mut answers = Vec::new();
    for name in ["alice", "nobody"] {
        for _ in 0..2 {
            app.post_token(&client(), name, "wrong password!").await;
        }
        let response = app.post_token(&client(), name, PASSWORD).await;
        let status = response.status();
        let retry = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .to_owned();
        let body: Value = response.json().await.unwrap();
        answers.push((status, retry, body));
    }
    assert_eq!(answers[0].0, 429);
    assert_eq!(
        answers[0], answers[1],
        "a locked unknown name looks like a known one"
    );
}

#[actix_web::test]
async fn the_ip_ceiling_locks_every_username_from_that_ip() {
    // Ceiling = 20 × LATCHKEY_LOGIN_MAX_FAILURES = 40 failures per lockout window.
    let app = spawn_app_with(|s| {
        s.login_max_failures = 2;
        s.trusted_proxies = vec![PROXY.parse().unwrap()];
    })
    .await;
    assert_eq!(app.settings.login_ip_max_failures(), 40);
    app.add_user("alice", Role::User);
    let stuffer = "203.0.113.7";
    // One try per username, so no (username, IP) pair ever reaches its own limit.
    for i in 0..39 {
        let response = post_token_from(&app, stuffer, &format!("victim{i}"), "hunter22").await;
        assert_eq!(response.status(), 401, "try {i}");
    }
    // A working account does not reset the IP's count.
    assert_eq!(
        post_token_from(&app, stuffer, "alice", PASSWORD)
            .await
            .status(),
        200
    );
    assert_eq!(
        post_token_from(&app, stuffer, "victim39", "hunter22")
            .await
            .status(),
        401,
        "the 40th failure"
    );

    assert_locked(
        post_token_from(&app, stuffer, "alice", PASSWORD).await,
        "the right password of another user from the stuffing IP",
    )
    .await;
    assert_locked(
        post_token_from(&app, stuffer, "fresh-name", "x").await,
        "a name never tried",
    )
    .await;
    assert_eq!(
        post_token_from(&app, "203.0.113.8", "alice", PASSWORD)
            .await
            .status(),
        200,
        "another IP is unaffected"
    );
    let mut conn = app.conn();
    let events = audit::list(&mut conn, None, None, 500).unwrap();
    assert!(
        events.iter().any(|e| e.kind.as_str() == "locked_out"
            && e.ip.as_deref() == Some(stuffer)
            && e.detail.as_deref() == Some("every username from this IP")),
        "the IP lockout is audited"
    );
}

#[actix_web::test]
async fn the_ip_ceiling_survives_a_restart() {
    let app = spawn_app_with(|s| s.login_max_failures = 1).await;
    app.add_user("alice", Role::User);
    for i in 0..20 {
        app.post_token(&client(), &format!("victim{i}"), "hunter22")
            .await;
    }
    let restarted = spawn_on_same_db(&app, |s| s.login_max_failures = 1).await;
    assert_locked(
        restarted.post_token(&client(), "alice", PASSWORD).await,
        "after a restart",
    )
    .await;
}

#[actix_web::test]
async fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    // A proxy list that does not name the real peer (127.0.0.1).
    let app = spawn_app_with(|s| {
        s.login_max_failures = 2;
        s.trusted_proxies = vec!["10.9.9.9".parse().unwrap()];
    })
    .await;
    app.add_user("alice", Role::User);
    app.add_user("bob", Role::User);
    for _ in 0..2 {
        post_token_from(&app, "198.51.100.1", "alice", "wrong password!").await;
    }
    assert_locked(
        post_token_from(&app, "198.51.100.2", "alice", PASSWORD).await,
        "a new X-Forwarded-For does not escape the lockout",
    )
    .await;
    let response = post_token_from(&app, "198.51.100.3", "bob", PASSWORD).await;
    let access = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let sessions: Value = app
        .get_bearer("/api/sessions", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["sessions"][0]["ip"], "127.0.0.1", "the TCP peer");
}

#[actix_web::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_the_ip() {
    let app = spawn_app_with(|s| {
        s.login_max_failures = 2;
        s.trusted_proxies = vec![PROXY.parse().unwrap()];
    })
    .await;
    app.add_user("alice", Role::User);
    for _ in 0..2 {
        post_token_from(&app, "198.51.100.1", "alice", "wrong password!").await;
    }
    // Entries left of the real client are whatever the client wrote: not believed.
    assert_locked(
        post_token_from(&app, "6.6.6.6, 198.51.100.1", "alice", PASSWORD).await,
        "a spoofed left-most entry",
    )
    .await;
    let response = post_token_from(&app, "198.51.100.2", "alice", PASSWORD).await;
    assert_eq!(response.status(), 200, "another client behind the proxy");
    let access = response.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let sessions: Value = app
        .get_bearer("/api/sessions", &access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions["sessions"][0]["ip"], "198.51.100.2");
    // Garbage in the header falls back to the peer rather than failing.
    let response = post_token_from(&app, "not-an-ip", "alice", PASSWORD).await;
    assert_eq!(response.status(), 200);
}
