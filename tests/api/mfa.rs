//! Two-step sign-in on the JSON API: an account with TOTP needs a code (or a recovery
//! code) besides its password; `mfa_required` without one, `invalid_credentials` for a
//! wrong, replayed or used-up code, counted toward the lockout like a wrong password.

use latchkey::domain::Role;
use serde_json::{json, Value};

use crate::helpers::*;

async fn token_with(
    app: &TestApp,
    username: &str,
    password: &str,
    otp: Option<&str>,
) -> reqwest::Response {
    let mut body = json!({"username": username, "password": password});
    if let Some(otp) = otp {
        body["otp"] = otp.into();
    }
    client()
        .post(app.url("/auth/token"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn amr_of(access: &str) -> Value {
    use base64::Engine as _;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(access.split('.').nth(1).unwrap())
        .unwrap();
    serde_json::from_slice::<Value>(&claims).unwrap()["amr"].clone()
}

#[actix_web::test]
async fn the_password_alone_is_mfa_required_and_a_code_signs_in_once() {
    let app = spawn_app().await;
    let id = app.add_user("alice", Role::User);
    let (secret, _) = enroll_totp(&app, id);

    let alone = token_with(&app, "alice", PASSWORD, None).await;
    assert_eq!(
        alone.headers()["www-authenticate"],
        r#"Bearer realm="latchkey""#
    );
    assert_eq!(error_code(alone).await, (401, "mfa_required".into()));

    let (code, _) = totp_now(&secret);
    let signed_in = token_with(&app, "alice", PASSWORD, Some(&code)).await;
    assert_eq!(signed_in.status(), 200);
    let body: Value = signed_in.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(amr_of(access), json!(["pwd", "otp"]));
    assert_eq!(app.me(access).await["username"], "alice");

    // The same code again: a replay within its window.
    let replayed = token_with(&app, "alice", PASSWORD, Some(&code)).await;
    assert_eq!(
        error_code(replayed).await,
        (401, "invalid_credentials".into())
    );
    let wrong = token_with(&app, "alice", PASSWORD, Some("000000")).await;
    assert_eq!(error_code(wrong).await, (401, "invalid_credentials".into()));
}

#[actix_web::test]
async fn a_wrong_password_says_nothing_about_a_second_factor() {
    let app = spawn_app().await;
    let id = app.add_user("alice", Role::User);
    app.add_user("bob", Role::User);
    let (secret, _) = enroll_totp(&app, id);
    let (code, _) = totp_now(&secret);
    for (name, otp) in [
        ("alice", None),
        ("alice", Some(code.as_str())),
        ("bob", None),
        ("nobody", None),
    ] {
        let response = token_with(&app, name, "a wrong password", otp).await;
        assert_eq!(
            error_code(response).await,
            (401, "invalid_credentials".into()),
            "{name}"
        );
    }
}

#[actix_web::test]
async fn recovery_codes_work_once_each_and_are_audited() {
    let app = spawn_app().await;
    let id = app.add_user("alice", Role::User);
    let (_, codes) = enroll_totp(&app, id);
    let typed = codes[3].to_uppercase().replace('-', " ");
    let first = token_with(&app, "alice", PASSWORD, Some(&typed)).await;
    assert_eq!(first.status(), 200, "a recovery code, typed loosely");
    let body: Value = first.json().await.unwrap();
    assert_eq!(
        amr_of(body["access_token"].as_str().unwrap()),
        json!(["pwd", "otp"])
    );
    let again = token_with(&app, "alice", PASSWORD, Some(&codes[3])).await;
    assert_eq!(error_code(again).await, (401, "invalid_credentials".into()));
    assert_eq!(
        token_with(&app, "alice", PASSWORD, Some(&codes[4]))
            .await
            .status(),
        200
    );
    let audit = String::from_utf8(app.cli(&["audit", "list", "--json"]).stdout).unwrap();
    assert_eq!(audit.matches("recovery_code_used").count(), 2, "{audit}");
}

#[actix_web::test]
async fn wrong_codes_count_toward_the_lockout_and_mfa_required_forgives_nothing() {
    let app = spawn_app().await;
    let id = app.add_user("alice", Role::User);
    let (secret, _) = enroll_totp(&app, id);
    for _ in 0..4 {
        let wrong = token_with(&app, "alice", PASSWORD, Some("123456")).await;
        assert_eq!(error_code(wrong).await.1, "invalid_credentials");
    }
    // The right password without a code is no success: the four failures stay.
    let alone = token_with(&app, "alice", PASSWORD, None).await;
    assert_eq!(error_code(alone).await.1, "mfa_required");
    let fifth = token_with(&app, "alice", PASSWORD, Some("654321")).await;
    assert_eq!(error_code(fifth).await.1, "invalid_credentials");
    let (code, _) = totp_now(&secret);
    let locked = token_with(&app, "alice", PASSWORD, Some(&code)).await;
    assert_eq!(locked.status(), 429, "locked out after five wrong codes");
    assert!(locked.headers().contains_key("retry-after"));
}

#[actix_web::test]
async fn the_native_grant_takes_otp_and_refreshes_keep_the_methods() {
    let app = spawn_app().await;
    let id = app.add_user("alice", Role::User);
    let (secret, _) = enroll_totp(&app, id);
    let grant = |form: Vec<(&'static str, String)>| {
        client().post(app.url("/auth/token")).form(&form).send()
    };
    let base = || {
        vec![
            ("grant_type", "password".to_owned()),
            ("username", "alice".to_owned()),
            ("password", PASSWORD.to_owned()),
        ]
    };
    let without = grant(base()).await.unwrap();
    assert_eq!(without.status(), 400);
    let body: Value = without.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"].as_str().unwrap().contains("otp"));

    let (_, next) = totp_now(&secret);
    let mut form = base();
    form.push(("otp", next));
    let with = grant(form).await.unwrap();
    assert_eq!(with.status(), 200);
    let body: Value = with.json().await.unwrap();
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    let refreshed = grant(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh_token),
    ])
    .await
    .unwrap();
    assert_eq!(refreshed.status(), 200);
    let body: Value = refreshed.json().await.unwrap();
    assert_eq!(
        amr_of(body["access_token"].as_str().unwrap()),
        json!(["pwd", "otp"])
    );
    let verify = app
        .get_bearer("/api/verify", body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(verify.headers()["x-latchkey-amr"], "pwd,otp");
}
