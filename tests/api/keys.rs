use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey::config::JwtAlg;
use latchkey::domain::Role;
use latchkey::tokens::keys::KeyAlg;
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
    for alg in KeyAlg::ALL {
        let app = spawn_app_with(|s| s.jwt_alg = JwtAlg::Stored(alg)).await;
        let id = app.add_user("alice", Role::User);
        let access = app.sign_in(&app.client, "alice").await;
        let header = header_of(&access);
        let claims = claims_of(&access);
        assert_eq!(header["alg"], alg.name());
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(claims["sub"], id.to_string());
        assert_eq!(claims["aud"], "latchkey");
        assert_eq!(claims["iss"], "http://127.0.0.1:8080");
        assert_eq!(claims["name"], "alice");
        assert_eq!(claims["role"], "user");
        assert_eq!(claims["client_id"], "latchkey");
        assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
        assert!(claims["sid"].is_string() && claims["jti"].is_string());
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            900
        );

        let keys = jwks(&app).await;
        let keys = keys["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2, "current and next: {keys:?}");
        let key = keys.iter().find(|k| k["kid"] == header["kid"]).unwrap();
        let (kty, members): (&str, &[&str]) = match alg {
            KeyAlg::EdDsa => ("OKP", &["crv", "x"]),
            KeyAlg::Es256 => ("EC", &["crv", "x", "y"]),
            KeyAlg::Rs256 => ("RSA", &["n", "e"]),
        };
        assert_eq!(key["kty"], kty);
        for member in members {
            assert!(key[member].is_string(), "{alg:?}: {member} in {key}");
        }
        assert_eq!(
            (key["use"].as_str(), key["alg"].as_str()),
            (Some("sig"), Some(alg.name()))
        );
        // Another service verifies with nothing but the published key.
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.clone()).unwrap();
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut validation = jsonwebtoken::Validation::new(alg.jwt());
        validation.set_audience(&["latchkey"]);
        assert!(
            jsonwebtoken::decode::<Value>(&access, &decoding, &validation).is_ok(),
            "{alg:?}"
        );
        assert_eq!(app.me(&access).await["username"], "alice");
        let metadata: Value = client()
            .get(app.url("/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            metadata["id_token_signing_alg_values_supported"],
            serde_json::json!([alg.name()])
        );
    }
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
    for alg in KeyAlg::ALL {
        rotation_is_used_within_10_seconds(alg).await;
    }
}

async fn rotation_is_used_within_10_seconds(alg: KeyAlg) {
    let app = spawn_app_with(|s| s.jwt_alg = JwtAlg::Stored(alg)).await;
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

/// The kids a JWKS document holds.
async fn published_kids(app: &TestApp) -> Vec<String> {
    jwks(app).await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// `keys list --json`, by kid.
fn listed_keys(app: &TestApp) -> Vec<Value> {
    let out = app.cli(&["keys", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    listed["keys"].as_array().unwrap().clone()
}

fn state_of(listed: &[Value], kid: &str) -> String {
    listed
        .iter()
        .find(|k| k["kid"] == kid)
        .map(|k| k["state"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("{kid} not listed: {listed:?}"))
}

/// Signs in until the token is signed by another key than `old`; that key's kid.
async fn wait_for_new_signing_key(app: &TestApp, old: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let access = app.sign_in(&client(), "alice").await;
        let kid = header_of(&access)["kid"].as_str().unwrap().to_owned();
        if kid != old {
            return kid;
        }
        assert!(
            start.elapsed() < limit,
            "still signing with {old} after {limit:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
}

#[actix_web::test]
async fn a_revoked_key_leaves_the_jwks_and_its_tokens_are_refused_within_10_seconds() {
    let app = spawn_app_with(|s| s.jwt_alg = JwtAlg::Stored(KeyAlg::Es256)).await;
    app.add_user("alice", Role::User);
    let access = app.sign_in(&app.client, "alice").await;
    let compromised = header_of(&access)["kid"].as_str().unwrap().to_owned();
    let before = published_kids(&app).await;
    let next = before.iter().find(|k| **k != compromised).unwrap().clone();

    let out = app.cli(&["keys", "revoke", &compromised]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = Instant::now();
    loop {
        let response = app.get_bearer("/api/me", &access).await;
        if response.status() == 401 {
            assert_eq!(error_code(response).await.1, "invalid_token");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "a revoked key's token still verifies"
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    let published = published_kids(&app).await;
    assert!(!published.contains(&compromised), "{published:?}");
    assert_eq!(
        published.len(),
        2,
        "the promoted key and a new next: {published:?}"
    );
    // The next key was promoted: the one every verifier already had.
    assert_eq!(
        wait_for_new_signing_key(&app, &compromised, Duration::from_secs(10)).await,
        next
    );
    // The session survives: a refresh gets a token from the current key.
    let refreshed = app.refresh(&app.client).await;
    assert_eq!(refreshed.status(), 200);
    let body: Value = refreshed.json().await.unwrap();
    assert_eq!(
        header_of(body["access_token"].as_str().unwrap())["kid"],
        next
    );

    let listed = listed_keys(&app);
    assert_eq!(state_of(&listed, &compromised), "revoked");
    assert_eq!(state_of(&listed, &next), "current");
    let audit = String::from_utf8(app.cli(&["audit", "list"]).stdout).unwrap();
    assert!(audit.contains("key_revoked"), "{audit}");

    // Once is enough; an unknown kid is a one-line error.
    for (kid, says) in [
        (compromised.as_str(), "already revoked"),
        ("nope", "no signing key"),
    ] {
        let out = app.cli(&["keys", "revoke", kid]);
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!out.status.success(), "{kid}");
        assert!(
            stderr.contains(says) && stderr.trim().lines().count() == 1,
            "{stderr}"
        );
    }
}

#[actix_web::test]
async fn revoking_the_next_key_publishes_another_next_before_it_signs() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let access = app.sign_in(&app.client, "alice").await;
    let current = header_of(&access)["kid"].as_str().unwrap().to_owned();
    let next = published_kids(&app)
        .await
        .into_iter()
        .find(|k| *k != current)
        .unwrap();
    assert!(app.cli(&["keys", "revoke", &next]).status.success());
    let listed = listed_keys(&app);
    assert_eq!(state_of(&listed, &current), "current");
    assert_eq!(state_of(&listed, &next), "revoked");
    let new_next = listed
        .iter()
        .find(|k| k["state"] == "next")
        .expect("a new next key")["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let start = Instant::now();
    while published_kids(&app).await.contains(&next) {
        assert!(start.elapsed() < Duration::from_secs(10), "still published");
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(published_kids(&app).await.contains(&new_next));
    assert_eq!(
        app.me(&access).await["username"],
        "alice",
        "the current key still verifies"
    );
}

#[actix_web::test]
async fn the_automatic_rotation_promotes_next_once_across_instances_and_retired_keys_expire() {
    // Keys sign 2 s each; tokens live 1 s, so a retired key is published for
    // 1 s + leeway 5 s + margin 5 s + a key poll of 3 s.
    let fast = |s: &mut latchkey::config::Settings| {
        s.key_rotation = Some(Duration::from_secs(2));
        s.access_ttl = Duration::from_secs(1);
    };
    let app = spawn_app_with(fast).await;
    let other = spawn_on_same_db(&app, fast).await;
    app.add_user("alice", Role::User);
    let first = header_of(&app.sign_in(&client(), "alice").await)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = published_kids(&app).await;
    let second = wait_for_new_signing_key(&app, &first, Duration::from_secs(10)).await;
    // `first` retired at most a key poll (3 s) before this.
    let second_seen = Instant::now();
    assert!(
        before.contains(&second),
        "{second} was published before it signed"
    );

    // Both instances keep rotating; at every moment one key is current and one next.
    let start = Instant::now();
    let mut seen_retired_gone = false;
    while start.elapsed() < Duration::from_secs(20) {
        let listed = listed_keys(&app);
        let count = |state: &str| listed.iter().filter(|k| k["state"] == state).count();
        assert_eq!((count("current"), count("next")), (1, 1), "{listed:?}");
        let retired_first = listed.iter().find(|k| k["kid"] == first).unwrap();
        assert_eq!(retired_first["state"], "retired");
        let until = retired_first["published_until"]
            .as_str()
            .unwrap()
            .to_owned();
        let published = published_kids(&other).await;
        if !published.contains(&first) {
            // Its last token (1 s) plus leeway and margin (10 s) had to pass first.
            assert!(
                second_seen.elapsed() >= Duration::from_secs(8),
                "{first} left the JWKS {:?} after retiring, before its tokens expired",
                second_seen.elapsed()
            );
            seen_retired_gone = true;
            break;
        }
        assert!(!until.is_empty());
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        seen_retired_gone,
        "a retired key stayed published past its tokens"
    );
    let audit = String::from_utf8(app.cli(&["audit", "list", "--json"]).stdout).unwrap();
    assert!(audit.contains("(automatic)"), "{audit}");
}

#[actix_web::test]
async fn switching_the_algorithm_keeps_sessions_and_refuses_the_old_tokens() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let eddsa_token = app.sign_in(&app.client, "alice").await;
    let rsa = spawn_on_same_db(&app, |s| s.jwt_alg = JwtAlg::Stored(KeyAlg::Rs256)).await;
    let (status, code) = error_code(rsa.get_bearer("/api/me", &eddsa_token).await).await;
    assert_eq!(
        (status, code.as_str()),
        (401, "invalid_token"),
        "pinned to RS256"
    );
    let keys = jwks(&rsa).await;
    assert!(
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["kty"] == "RSA"),
        "{keys}"
    );
    // The refresh cookie of the EdDSA sign-in still works, and yields an RS256 token.
    let refreshed = rsa.refresh(&app.client).await;
    assert_eq!(refreshed.status(), 200);
    let body: Value = refreshed.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(header_of(token)["alg"], "RS256");
    assert_eq!(rsa.me(token).await["username"], "alice");
}
