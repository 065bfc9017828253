use std::time::Duration;

use latchkey::domain::Role;
use serde_json::Value;

use crate::helpers::*;

#[actix_web::test]
async fn a_refresh_rotates_the_cookie_and_the_old_token_stops_working() {
    let app = spawn_app_with(|s| s.refresh_reuse_grace = Duration::from_secs(1)).await;
    app.add_user("alice", Role::User);
    let response = app.post_token(&app.client, "alice", PASSWORD).await;
    let first = cookie_value(response.headers(), "lk_refresh").unwrap();

    let response = app.refresh(&app.client).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let second = cookie_value(response.headers(), "lk_refresh").unwrap();
    assert_ne!(first, second);
    let body: Value = response.json().await.unwrap();
    let me = app.me(body["access_token"].as_str().unwrap()).await;
    assert_eq!(me["username"], "alice");
    // The jar now holds the second token, which keeps working.
    assert_eq!(app.refresh(&app.client).await.status(), 200);
}

#[actix_web::test]
async fn a_repeat_within_the_grace_succeeds_and_the_session_stays_usable() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let response = app.post_token(&app.client, "alice", PASSWORD).await;
    let token = cookie_value(response.headers(), "lk_refresh").unwrap();

    let a = app.refresh_with(&token).await;
    let b = app.refresh_with(&token).await;

    assert_eq!(a.status(), 200);
    assert_eq!(b.status(), 200);
    let next_a = cookie_value(a.headers(), "lk_refresh").unwrap();
    let next_b = cookie_value(b.headers(), "lk_refresh").unwrap();
    assert_eq!(
        next_a, next_b,
        "a repeat gets the same successor, never a chain of its own"
    );
    assert_eq!(
        app.refresh_with(&next_a).await.status(),
        200,
        "both tabs' tokens work"
    );
    assert_eq!(app.refresh_with(&next_b).await.status(), 200);
}

#[actix_web::test]
async fn a_reused_refresh_token_after_the_grace_revokes_the_session() {
    let app = spawn_app_with(|s| s.refresh_reuse_grace = Duration::from_secs(1)).await;
    app.add_user("alice", Role::User);
    let response = app.post_token(&app.client, "alice", PASSWORD).await;
    let stolen = cookie_value(response.headers(), "lk_refresh").unwrap();
    let rotated = app.refresh_with(&stolen).await;
    let legit = cookie_value(rotated.headers(), "lk_refresh").unwrap();
    let body: Value = rotated.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;

    let reuse = app.refresh_with(&stolen).await;

    assert!(set_cookie(reuse.headers(), "lk_refresh")
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        error_code(reuse).await,
        (401, "invalid_refresh_token".into())
    );
    assert_eq!(
        error_code(app.refresh_with(&legit).await).await.1,
        "invalid_refresh_token"
    );
    let me = app.get_bearer("/api/me", &access).await;
    assert_eq!(error_code(me).await, (401, "session_revoked".into()));
    let audit = String::from_utf8(app.cli(&["audit", "list"]).stdout).unwrap();
    assert!(audit.contains("refresh_token_reused"), "{audit}");
}

#[actix_web::test]
async fn fifty_parallel_refreshes_with_one_token_never_fail_the_server() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let response = app.post_token(&app.client, "alice", PASSWORD).await;
    let token = cookie_value(response.headers(), "lk_refresh").unwrap();

    let handles: Vec<_> = (0..50)
        .map(|_| {
            let url = app.url("/auth/refresh");
            let token = token.clone();
            actix_web::rt::spawn(async move {
                let response = reqwest::Client::new()
                    .post(url)
                    .header("cookie", format!("lk_refresh={token}"))
                    .send()
                    .await
                    .unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            })
        })
        .collect();
    for handle in handles {
        let (status, body) = handle.await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert!(!body.contains("locked"), "{body}");
    }
}

#[actix_web::test]
async fn unknown_and_missing_refresh_tokens_are_refused() {
    let app = spawn_app().await;
    assert_eq!(
        error_code(app.refresh(&client()).await).await,
        (401, "invalid_refresh_token".into())
    );
    for junk in ["x", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "%00%ff"] {
        assert_eq!(
            error_code(app.refresh_with(junk).await).await.1,
            "invalid_refresh_token"
        );
    }
}

#[actix_web::test]
async fn an_idle_session_expires_with_its_refresh_token() {
    let app = spawn_app_with(|s| {
        s.refresh_ttl = Duration::from_secs(2);
        s.refresh_reuse_grace = Duration::from_secs(1);
    })
    .await;
    app.add_user("alice", Role::User);
    let response = app.post_token(&app.client, "alice", PASSWORD).await;
    assert!(set_cookie(response.headers(), "lk_refresh")
        .unwrap()
        .contains("Max-Age=2"));
    actix_web::rt::time::sleep(Duration::from_millis(2300)).await;
    assert_eq!(
        error_code(app.refresh(&app.client).await).await.1,
        "invalid_refresh_token"
    );
}

#[actix_web::test]
async fn a_session_ends_at_its_absolute_lifetime_however_often_it_refreshes() {
    let app = spawn_app_with(|s| {
        s.session_max = Duration::from_secs(3);
        s.refresh_reuse_grace = Duration::from_secs(1);
    })
    .await;
    app.add_user("alice", Role::User);
    let response = app.post_token(&app.client, "alice", PASSWORD).await;
    let body: Value = response.json().await.unwrap();
    assert!(body["refresh_expires_in"].as_i64().unwrap() <= 3);
    for _ in 0..2 {
        actix_web::rt::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(app.refresh(&app.client).await.status(), 200);
    }
    actix_web::rt::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(app.refresh(&app.client).await.status(), 401);
}

#[actix_web::test]
async fn logout_revokes_the_session_and_clears_the_cookies() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let access = app.sign_in(&app.client, "alice").await;

    let response = app
        .client
        .post(app.url("/auth/logout"))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 204);
    assert!(set_cookie(response.headers(), "lk_refresh")
        .unwrap()
        .contains("Max-Age=0"));
    assert!(set_cookie(response.headers(), "lk_access")
        .unwrap()
        .contains("Max-Age=0"));
    assert_eq!(
        error_code(app.get_bearer("/api/me", &access).await).await.1,
        "session_revoked"
    );
    assert_eq!(app.refresh(&app.client).await.status(), 401);
}

#[actix_web::test]
async fn cookie_endpoints_refuse_cross_site_callers() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    app.sign_in(&app.client, "alice").await;
    let response = app
        .client
        .post(app.url("/auth/refresh"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (403, "forbidden".into()));
    let response = app
        .client
        .post(app.url("/auth/logout"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let same = app
        .client
        .post(app.url("/auth/refresh"))
        .header("origin", app.address.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), 200, "our own origin is fine");
}
