//! What other programs integrate with: the metadata documents, forward authentication
//! for gateways, the native-client grants, the token claims and `WWW-Authenticate`.

use latchkey::domain::Role;
use serde_json::Value;
use std::time::Duration;

use crate::helpers::*;

fn claims(token: &str) -> Value {
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
async fn both_metadata_documents_name_the_issuer_jwks_and_token_endpoint() {
    let app = spawn_app().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let response = client().get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["cache-control"], "public, max-age=300");
        let doc: Value = response.json().await.unwrap();
        let issuer = &app.settings.public_url;
        assert_eq!(doc["issuer"], issuer.as_str());
        assert_eq!(doc["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
        assert_eq!(doc["token_endpoint"], format!("{issuer}/auth/token"));
        assert_eq!(
            doc["grant_types_supported"],
            serde_json::json!(["password", "refresh_token"])
        );
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            serde_json::json!(["none"])
        );
        assert_eq!(
            doc["response_types_supported"],
            serde_json::json!(["token"])
        );
        assert_eq!(
            doc["subject_types_supported"],
            serde_json::json!(["public"])
        );
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            serde_json::json!(["EdDSA"])
        );
    }
    let unknown = client()
        .get(app.url("/.well-known/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(unknown).await, (404, "not_found".into()));
}

#[actix_web::test]
async fn access_tokens_carry_client_id_auth_time_and_amr() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let before = latchkey::clock::now().unix_seconds();
    let access = app.sign_in(&app.client, "alice").await;
    let first = claims(&access);
    assert_eq!(first["client_id"], "latchkey");
    assert_eq!(first["amr"], serde_json::json!(["pwd"]));
    let auth_time = first["auth_time"].as_i64().unwrap();
    assert!((before..=before + 2).contains(&auth_time));
    // A refresh keeps when and how the session signed in.
    actix_web::rt::time::sleep(std::time::Duration::from_millis(1100)).await;
    let body: Value = app.refresh(&app.client).await.json().await.unwrap();
    let refreshed = claims(body["access_token"].as_str().unwrap());
    assert_eq!(refreshed["auth_time"], auth_time);
    assert_eq!(refreshed["amr"], serde_json::json!(["pwd"]));
}

#[actix_web::test]
async fn gateways_verify_a_token_and_get_the_identity_in_headers() {
    let app = spawn_app().await;
    let alice = app.add_user("alice", Role::User);
    app.add_user("root", Role::Admin);
    let access = app.sign_in(&client(), "alice").await;
    let sid = app.session_id(&access).await;
    let response = client()
        .get(app.url("/api/verify"))
        .bearer_auth(&access)
        .header("x-forwarded-uri", "/anything?at=all")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let h = response.headers();
    assert_eq!(h["x-latchkey-user-id"], alice.to_string().as_str());
    assert_eq!(h["x-latchkey-username"], "alice");
    assert_eq!(h["x-latchkey-role"], "user");
    assert_eq!(h["x-latchkey-session-id"], sid.as_str());
    assert_eq!(h["x-latchkey-amr"], "pwd");

    let not_admin = app.get_bearer("/api/verify?role=admin", &access).await;
    assert_eq!(error_code(not_admin).await, (403, "forbidden".into()));
    let root = app.sign_in(&client(), "root").await;
    assert_eq!(
        app.get_bearer("/api/verify?role=admin", &root)
            .await
            .status(),
        204
    );

    // The cookie works too, as on /api/me.
    let by_cookie = client()
        .get(app.url("/api/verify"))
        .header("cookie", format!("lk_access={access}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), 204);

    let none = client().get(app.url("/api/verify")).send().await.unwrap();
    assert_eq!(
        none.headers()["www-authenticate"],
        r#"Bearer realm="latchkey""#
    );
    assert_eq!(error_code(none).await, (401, "invalid_token".into()));
    let bad = app.get_bearer("/api/verify", "not.a.token").await;
    assert_eq!(
        bad.headers()["www-authenticate"],
        r#"Bearer realm="latchkey", error="invalid_token""#
    );

    app.delete_bearer(&format!("/api/sessions/{sid}"), &access)
        .await;
    let revoked = app.get_bearer("/api/verify", &access).await;
    assert_eq!(error_code(revoked).await, (401, "session_revoked".into()));
}

async fn grant(app: &TestApp, fields: &[(&str, &str)]) -> reqwest::Response {
    client()
        .post(app.url("/auth/token"))
        .form(fields)
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn native_clients_get_the_refresh_token_in_the_body_and_rotate_it() {
    let app = spawn_app_with(|s| s.refresh_reuse_grace = Duration::from_secs(0)).await;
    app.add_user("alice", Role::User);
    let response = grant(
        &app,
        &[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers().get("set-cookie").is_none(),
        "no cookie for native clients"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    let first = body["refresh_token"].as_str().unwrap().to_owned();
    app.me(body["access_token"].as_str().unwrap()).await;

    let rotated = grant(
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", &first)],
    )
    .await;
    assert_eq!(rotated.status(), 200);
    let second: Value = rotated.json().await.unwrap();
    let second = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);

    // With no grace the old token is a reuse: refused, and the session is revoked.
    let reused = grant(
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", &first)],
    )
    .await;
    assert_eq!(reused.status(), 400);
    let error: Value = reused.json().await.unwrap();
    assert_eq!(error["error"], "invalid_grant");
    assert!(error["error_description"].is_string());
    let after = grant(
        &app,
        &[("grant_type", "refresh_token"), ("refresh_token", &second)],
    )
    .await;
    assert_eq!(after.status(), 400, "reuse revoked the whole session");
}

#[actix_web::test]
async fn native_grant_errors_are_in_rfc_6749_form() {
    let app = spawn_app_with(|s| s.login_max_failures = 2).await;
    app.add_user("alice", Role::User);
    for (fields, status, code) in [
        (
            vec![
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "wrong password!"),
            ],
            400,
            "invalid_grant",
        ),
        (
            vec![("grant_type", "password"), ("username", "alice")],
            400,
            "invalid_request",
        ),
        (
            vec![("username", "alice"), ("password", PASSWORD)],
            400,
            "invalid_request",
        ),
        (
            vec![("grant_type", "client_credentials")],
            400,
            "unsupported_grant_type",
        ),
        (
            vec![("grant_type", "refresh_token"), ("refresh_token", "junk")],
            400,
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "wrong password!"),
            ],
            400,
            "invalid_grant",
        ),
        (
            vec![
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
            429,
            "invalid_grant",
        ),
    ] {
        let response = grant(&app, &fields).await;
        assert_eq!(response.status(), status, "{fields:?}");
        if status == 429 {
            assert!(response.headers().contains_key("retry-after"));
        }
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], code, "{fields:?}");
        assert!(body["error_description"].is_string());
    }
    let garbage = client()
        .post(app.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=%ZZ&&=")
        .send()
        .await
        .unwrap();
    assert!(garbage.status().is_client_error());
}

#[actix_web::test]
async fn every_401_says_how_to_authenticate() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let wrong = app.post_token(&client(), "alice", "wrong password!").await;
    assert_eq!(
        wrong.headers()["www-authenticate"],
        r#"Bearer realm="latchkey""#
    );
    assert_eq!(wrong.status(), 401);
    let refresh = app.refresh_with(&"a".repeat(43)).await;
    assert_eq!(refresh.status(), 401);
    assert_eq!(
        refresh.headers()["www-authenticate"],
        r#"Bearer realm="latchkey", error="invalid_token""#
    );
    let no_cookie = client()
        .post(app.url("/auth/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_cookie.status(), 401);
    assert!(no_cookie.headers().contains_key("www-authenticate"));
}
