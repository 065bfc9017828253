use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey::clock::Millis;
use latchkey::domain::Role;
use latchkey::store::keys;
use serde_json::Value;

use crate::helpers::*;

#[actix_web::test]
async fn the_access_cookie_works_like_a_bearer_token() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let access = app.sign_in(&app.client, "alice").await;
    let response = client()
        .get(app.url("/api/me"))
        .header("cookie", format!("lk_access={access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[actix_web::test]
async fn without_a_token_me_is_401_without_an_error_attribute() {
    let app = spawn_app().await;
    let response = client().get(app.url("/api/me")).send().await.unwrap();
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="latchkey""#
    );
    assert_eq!(error_code(response).await, (401, "invalid_token".into()));
}

#[actix_web::test]
async fn a_garbage_token_is_invalid_token_with_the_error_attribute() {
    let app = spawn_app().await;
    for token in ["garbage", "a.b.c", "", &"x".repeat(20_000)] {
        let response = app.get_bearer("/api/me", token).await;
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="latchkey", error="invalid_token""#
        );
        assert_eq!(error_code(response).await, (401, "invalid_token".into()));
    }
}

#[actix_web::test]
async fn another_authorization_scheme_is_answered_like_no_token() {
    let app = spawn_app().await;
    let basic = client()
        .get(app.url("/api/me"))
        .basic_auth("alice", Some("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        basic.headers()["www-authenticate"],
        r#"Bearer realm="latchkey""#
    );
    assert_eq!(error_code(basic).await, (401, "invalid_token".into()));
    // ... and the access cookie still counts beside it.
    app.add_user("alice", Role::User);
    let access = app.sign_in(&app.client, "alice").await;
    let response = client()
        .get(app.url("/api/me"))
        .basic_auth("alice", Some("x"))
        .header("cookie", format!("lk_access={access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[actix_web::test]
async fn an_expired_token_is_token_expired() {
    // The server's own token, signed again with its current (EdDSA) key and an `exp` past
    // the 5 s leeway: a token that was genuine and has expired.
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let genuine = app.sign_in(&app.client, "alice").await;
    let key = keys::usable(&mut app.conn(), "EdDSA", Millis(0))
        .unwrap()
        .into_iter()
        .filter(|k| k.is_live())
        .min_by_key(|k| k.created_at)
        .expect("the current key: the oldest live one");
    let header = jsonwebtoken::decode_header(&genuine).unwrap();
    let payload = genuine.split('.').nth(1).unwrap();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    let exp = claims["iat"].as_i64().unwrap() - 10;
    claims["exp"] = exp.into();
    claims["iat"] = (exp - 60).into();
    let signing = jsonwebtoken::EncodingKey::from_ed_der(&key.private_key);
    let access = jsonwebtoken::encode(&header, &claims, &signing).unwrap();
    let response = app.get_bearer("/api/me", &access).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Bearer realm="latchkey", error="invalid_token""#
    );
    assert_eq!(error_code(response).await, (401, "token_expired".into()));
}

#[actix_web::test]
async fn a_token_from_another_issuer_is_invalid() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let other = spawn_on_same_db(&app, |s| s.public_url = "http://elsewhere.example".into()).await;
    let access = other.sign_in(&other.client, "alice").await;
    assert_eq!(
        error_code(app.get_bearer("/api/me", &access).await).await.1,
        "invalid_token"
    );
}

#[actix_web::test]
async fn users_list_and_sign_out_their_own_sessions_only() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    app.add_user("bob", Role::User);
    let alice_phone = app.sign_in(&client(), "alice").await;
    let alice_laptop = app.sign_in(&client(), "alice").await;
    let bob = app.sign_in(&client(), "bob").await;
    let bob_session = app.session_id(&bob).await;

    let list: Value = app
        .get_bearer("/api/sessions", &alice_phone)
        .await
        .json()
        .await
        .unwrap();

    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert!(list["next_cursor"].is_null());
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    let phone_session = app.me(&alice_phone).await["session_id"].clone();
    assert_eq!(current[0]["id"], phone_session);
    for field in [
        "id",
        "user_id",
        "username",
        "created_at",
        "last_used_at",
        "expires_at",
        "ip",
        "user_agent",
        "current",
        "revoked_at",
    ] {
        assert!(sessions[0].get(field).is_some(), "field {field}");
    }
    assert!(sessions[0]["created_at"].as_str().unwrap().ends_with('Z'));

    // Bob's session is "not found" for Alice, and untouched.
    let response = app
        .delete_bearer(&format!("/api/sessions/{bob_session}"), &alice_phone)
        .await;
    assert_eq!(error_code(response).await, (404, "not_found".into()));
    assert_eq!(app.get_bearer("/api/me", &bob).await.status(), 200);

    let laptop_session = app.session_id(&alice_laptop).await;
    let response = app
        .delete_bearer(&format!("/api/sessions/{laptop_session}"), &alice_phone)
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(
        error_code(app.get_bearer("/api/me", &alice_laptop).await)
            .await
            .1,
        "session_revoked"
    );
    assert_eq!(app.get_bearer("/api/me", &alice_phone).await.status(), 200);
    for bad in ["abc", "0", "-1", "99999999"] {
        let response = app
            .delete_bearer(&format!("/api/sessions/{bad}"), &alice_phone)
            .await;
        assert_eq!(
            error_code(response).await,
            (404, "not_found".into()),
            "{bad}"
        );
    }
}
