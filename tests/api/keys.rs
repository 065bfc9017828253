use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey::config::JwtAlg;
use latchkey::domain::Role;
use serde_json::Value;

use crate::helpers::*;

fn header_of(token: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn claims_of(token: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

async fn jwks(app: &TestApp) -> Value {
    client()
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[actix_web::test]
async fn access_tokens_have_spec_header_and_claims_and_verify_with_the_jwks() {
    let app = spawn_app().await;
    let id = app.add_user("alice", Role::User);
    let access = app.sign_in(&app.client, "alice").await;
    let header = header_of(&access);
    let claims = claims_of(&access);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(claims["sub"], id.to_string());
    assert_eq!(claims["aud"], "latchkey");
    assert_eq!(claims["iss"], "http://127.0.0.1:8080");
    assert_eq!(claims["name"], "alice");
    assert_eq!(claims["role"], "user");
    assert!(claims["sid"].is_string() && claims["jti"].is_string());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );

    let keys = jwks(&app).await;
    let key = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap();
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert_eq!(
        (key["use"].as_str(), key["alg"].as_str()),
        (Some("sig"), Some("EdDSA"))
    );
    // Another service verifies with nothing but the published key.
    let decoding =
        jsonwebtoken::DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["latchkey"]);
    assert!(jsonwebtoken::decode::<Value>(&access, &decoding, &validation).is_ok());
}

#[actix_web::test]
async fn the_signing_key_survives_a_restart() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let access = app.sign_in(&app.client, "alice").await;
    let restarted = spawn_on_same_db(&app, |_| {}).await;
    assert_eq!(restarted.get_bearer("/api/me", &access).await.status(), 200);
    assert_eq!(
        restarted.refresh(&app.client).await.status(),
        200,
        "refresh tokens persist too"
    );
}

#[actix_web::test]
async fn a_rotated_key_is_used_within_10_seconds_and_old_tokens_keep_verifying() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let old_access = app.sign_in(&app.client, "alice").await;
    let old_kid = header_of(&old_access)["kid"].clone();
    // What a verifier caching the JWKS holds from before the rotation.
    let before: Vec<Value> = jwks(&app).await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(before.len(), 2, "current and next: {before:?}");
    let cache = client()
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(cache.headers()["cache-control"], "public, max-age=300");

    let out = app.cli(&["keys", "rotate"]);
    assert!(out.status.success());

    let start = Instant::now();
    let new_kid = loop {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "rotation not picked up within 10 s"
        );
        let access = app.sign_in(&client(), "alice").await;
        let kid = header_of(&access)["kid"].clone();
        assert!(
            before.contains(&kid),
            "signed with {kid}, which the JWKS fetched before the rotation did not hold"
        );
        if kid != old_kid {
            break kid;
        }
        actix_web::rt::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(app.get_bearer("/api/me", &old_access).await.status(), 200);
    let kids: Vec<Value> = jwks(&app).await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids.len(), 3, "retired, current and a new next: {kids:?}");
    assert!(
        kids.contains(&old_kid) && kids.contains(&new_kid),
        "{kids:?}"
    );
    let listed = String::from_utf8(app.cli(&["keys", "list"]).stdout).unwrap();
    assert!(
        listed.contains(new_kid.as_str().unwrap())
            && listed.contains("retired")
            && listed.contains("current")
            && listed.contains("next"),
        "{listed}"
    );
}

#[actix_web::test]
async fn hs256_instances_sign_with_the_secret_and_publish_no_keys() {
    let app = spawn_app_with(|s| {
        s.jwt_alg = JwtAlg::Hs256 {
            secret: vec![42; 32],
        }
    })
    .await;
    app.add_user("alice", Role::User);
    let access = app.sign_in(&app.client, "alice").await;
    assert_eq!(header_of(&access)["alg"], "HS256");
    assert_eq!(app.get_bearer("/api/me", &access).await.status(), 200);
    assert_eq!(jwks(&app).await, serde_json::json!({"keys": []}));
    let eddsa = spawn_on_same_db(&app, |_| {}).await;
    assert_eq!(
        eddsa.get_bearer("/api/me", &access).await.status(),
        401,
        "the algorithm is pinned"
    );
}
