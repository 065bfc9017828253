use latchkey::domain::Role;
use serde_json::{json, Value};

use crate::helpers::*;

#[actix_web::test]
async fn a_correct_password_gets_an_access_token_and_a_refresh_cookie() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);

    let response = app.post_token(&app.client, "alice", PASSWORD).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let cookie = set_cookie(response.headers(), "lk_refresh")
        .unwrap()
        .to_owned();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/auth",
        "Max-Age=604800",
    ] {
        assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
    }
    assert!(!cookie.contains("Secure"), "no Secure on http");
    let token_value = cookie_value(response.headers(), "lk_refresh").unwrap();
    assert!(token_value.len() >= 43, "256 bits of base64url");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["refresh_expires_in"], 604_800);
    let me = app.me(body["access_token"].as_str().unwrap()).await;
    assert_eq!(me["username"], "alice");
    assert_eq!(me["role"], "user");
    assert!(me["id"].is_string() && me["session_id"].is_string());
}

#[actix_web::test]
async fn usernames_are_case_insensitive() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let response = app.post_token(&app.client, "ALICE", PASSWORD).await;
    assert_eq!(response.status(), 200);
}

#[actix_web::test]
async fn wrong_password_unknown_user_and_disabled_user_look_the_same() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    app.add_user("bob", Role::User);
    assert!(app.cli(&["user", "disable", "bob"]).status.success());

    let mut bodies = Vec::new();
    for (user, password) in [
        ("alice", "wrong password!"),
        ("nobody", PASSWORD),
        ("bob", PASSWORD),
    ] {
        let response = app.post_token(&client(), user, password).await;
        assert_eq!(response.status(), 401, "{user}");
        assert!(set_cookie(response.headers(), "lk_refresh").is_none());
        bodies.push(response.text().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[1], bodies[2]);
    let body: Value = serde_json::from_str(&bodies[0]).unwrap();
    assert_eq!(body["error"], "invalid_credentials");
}

#[actix_web::test]
async fn malformed_usernames_and_passwords_are_invalid_credentials_not_errors() {
    let app = spawn_app().await;
    let long = "a".repeat(10_000);
    for (user, password) in [
        ("a", PASSWORD),
        (long.as_str(), PASSWORD),
        ("al\0ice", PASSWORD),
        ("alice", "short"),
    ] {
        let response = app.post_token(&client(), user, password).await;
        assert_eq!(
            error_code(response).await,
            (401, "invalid_credentials".into())
        );
    }
}

#[actix_web::test]
async fn repeated_failures_lock_out_that_username_from_that_ip() {
    let app = spawn_app_with(|s| s.login_max_failures = 3).await;
    app.add_user("alice", Role::User);
    for _ in 0..3 {
        let response = app.post_token(&client(), "alice", "wrong password!").await;
        assert_eq!(response.status(), 401);
    }

    let response = app.post_token(&client(), "Alice", PASSWORD).await;

    assert_eq!(
        response.status(),
        429,
        "even the right password is refused while locked out"
    );
    let retry: i64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry), "Retry-After {retry}");
    assert_eq!(error_code(response).await.1, "too_many_attempts");
    app.add_user("bob", Role::User);
    assert_eq!(
        app.post_token(&client(), "bob", PASSWORD).await.status(),
        200,
        "others are unaffected"
    );
}

#[actix_web::test]
async fn a_lockout_survives_a_restart() {
    let app = spawn_app_with(|s| s.login_max_failures = 2).await;
    app.add_user("alice", Role::User);
    for _ in 0..2 {
        app.post_token(&client(), "alice", "wrong password!").await;
    }
    let restarted = spawn_on_same_db(&app, |s| s.login_max_failures = 2).await;
    assert_eq!(
        restarted
            .post_token(&client(), "alice", PASSWORD)
            .await
            .status(),
        429
    );
}

#[actix_web::test]
async fn sign_in_needs_a_json_body() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/auth/token"))
        .header("content-type", "text/plain")
        .body(r#"{"username":"a","password":"b"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (415, "unsupported_media_type".into())
    );
    let response = app
        .client
        .post(app.url("/auth/token"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (400, "invalid_request".into()));
    let response = app
        .client
        .post(app.url("/auth/token"))
        .json(&json!({"username": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response).await, (400, "invalid_request".into()));
}

#[actix_web::test]
async fn sign_in_events_are_audited() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    app.post_token(&client(), "alice", "wrong password!").await;
    app.sign_in(&client(), "alice").await;
    let out = app.cli(&["audit", "list", "--user", "alice"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("sign_in_failed"), "{text}");
    assert!(text.contains("sign_in_succeeded"), "{text}");
    assert!(
        !text.contains(PASSWORD) && !text.contains("wrong password"),
        "no passwords in the audit log"
    );
}
