//! The JWT attack battery (RFC 8725 and the classics jwt_tool tries), run against an
//! EdDSA instance and an HS256 instance. Every forged token must be a 401 — on the
//! `Authorization` header and on the `lk_access` cookie — and never a 5xx.
//!
//! Forgeries that keep everything but one property are signed with the instance's *real*
//! key (read from its database or settings), so each test shows that exactly that
//! property is checked; `the_forger_mints_tokens_the_server_accepts` proves the forger
//! itself is sound.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use latchkey::config::JwtAlg;
use latchkey::domain::Role;
use latchkey::store::keys;
use latchkey::tokens::keys::generate_ed25519;
use serde_json::{json, Value};

use crate::helpers::*;

const HS256_SECRET: &str = "an hs256 secret of at least thirty-two bytes";

/// An instance under attack, with a genuine token of a plain user and the real key.
struct Target {
    app: TestApp,
    alg: Algorithm,
    key: EncodingKey,
    header: Value,
    claims: Value,
}

impl Target {
    async fn eddsa() -> Self {
        let app = spawn_app().await;
        let row = {
            let mut conn = app.conn();
            keys::usable(&mut conn, 0)
                .unwrap()
                .into_iter()
                .filter(|k| k.retired_at.is_none())
                .min_by_key(|k| k.created_at)
                .expect("the current key: the oldest unretired")
        };
        Self::with(
            app,
            Algorithm::EdDSA,
            EncodingKey::from_ed_der(&row.private_key),
        )
        .await
    }

    async fn hs256() -> Self {
        let app = spawn_app_with(|s| {
            s.jwt_alg = JwtAlg::Hs256 {
                secret: HS256_SECRET.as_bytes().to_vec(),
            }
        })
        .await;
        Self::with(
            app,
            Algorithm::HS256,
            EncodingKey::from_secret(HS256_SECRET.as_bytes()),
        )
        .await
    }

    async fn with(app: TestApp, alg: Algorithm, key: EncodingKey) -> Self {
        app.add_user("mallory", Role::User);
        let token = app.sign_in(&client(), "mallory").await;
        let mut parts = token.split('.').map(|p| {
            serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(p).unwrap_or_default())
                .unwrap_or(Value::Null)
        });
        let header = parts.next().unwrap();
        let claims = parts.next().unwrap();
        Target {
            app,
            alg,
            key,
            header,
            claims,
        }
    }

    /// `header.claims` signed with the instance's real key.
    fn forge(&self, header: &Value, claims: &Value) -> String {
        sign(header, claims, &self.key, self.alg)
    }

    fn header_with(&self, field: &str, value: Value) -> Value {
        let mut header = self.header.clone();
        header[field] = value;
        header
    }

    fn claims_with(&self, field: &str, value: Value) -> Value {
        let mut claims = self.claims.clone();
        claims[field] = value;
        claims
    }

    fn genuine(&self) -> String {
        self.forge(&self.header, &self.claims)
    }

    /// The token must be refused with 401 and `code`, on the header and on the cookie.
    async fn refuses_as(&self, token: &str, code: &str, what: &str) {
        let bearer = self.app.get_bearer("/api/me", token).await;
        assert_eq!(
            bearer
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some(r#"Bearer realm="latchkey", error="invalid_token""#),
            "{what}"
        );
        let cookie = reqwest::Client::new()
            .get(self.app.url("/api/me"))
            .header("cookie", format!("lk_access={token}"))
            .send()
            .await
            .unwrap();
        for (via, response) in [("bearer", bearer), ("cookie", cookie)] {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            assert_eq!(
                (status, body["error"].as_str()),
                (401, Some(code)),
                "{via}: {what}: {body}"
            );
            assert!(body["message"].is_string());
        }
    }

    async fn refuses(&self, token: &str, what: &str) {
        self.refuses_as(token, "invalid_token", what).await;
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.{}", b64(header.to_string()), b64(claims.to_string()))
}

fn sign(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let message = unsigned(header, claims);
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    sign(
        header,
        claims,
        &EncodingKey::from_secret(secret),
        Algorithm::HS256,
    )
}

/// A fresh Ed25519 key that is not the instance's: (kid, signing key, raw public key).
fn attacker_ed25519() -> (String, EncodingKey, Vec<u8>) {
    let row = generate_ed25519(0).unwrap();
    (
        row.kid,
        EncodingKey::from_ed_der(&row.private_key),
        row.public_key,
    )
}

fn now_secs() -> i64 {
    latchkey::clock::now() / 1000
}

async fn both() -> [Target; 2] {
    [Target::eddsa().await, Target::hs256().await]
}

#[actix_web::test]
async fn the_forger_mints_tokens_the_server_accepts() {
    for target in both().await {
        let me = target.app.me(&target.genuine()).await;
        assert_eq!(me["username"], "mallory");
        assert_eq!(me["role"], "user");
    }
}

#[actix_web::test]
async fn alg_none_in_any_spelling_is_refused() {
    for target in both().await {
        let genuine = target.genuine();
        let real_signature = genuine.rsplit('.').next().unwrap();
        for none in ["none", "None", "NONE", "nOnE"] {
            let header = target.header_with("alg", none.into());
            let body = unsigned(&header, &target.claims);
            target.refuses(&format!("{body}."), none).await;
            target.refuses(&body, "two segments").await;
            target
                .refuses(&format!("{body}.{real_signature}"), "none + a signature")
                .await;
            let mut no_typ = header.clone();
            no_typ.as_object_mut().unwrap().remove("typ");
            target
                .refuses(&format!("{}.", unsigned(&no_typ, &target.claims)), none)
                .await;
        }
    }
}

#[actix_web::test]
async fn empty_truncated_zero_and_foreign_signatures_are_refused() {
    for target in both().await {
        let genuine = target.genuine();
        let (body, signature) = genuine.rsplit_once('.').unwrap();
        let zero_len = URL_SAFE_NO_PAD.decode(signature).unwrap().len();
        let foreign = match target.alg {
            Algorithm::EdDSA => sign(
                &target.header,
                &target.claims,
                &attacker_ed25519().1,
                Algorithm::EdDSA,
            ),
            _ => hs256(
                &target.header,
                &target.claims,
                b"another secret of thirty-two bytes or more",
            ),
        };
        let mut flipped = URL_SAFE_NO_PAD.decode(signature).unwrap();
        flipped[0] ^= 1;
        let cases = [
            ("empty signature", format!("{body}.")),
            (
                "truncated signature",
                format!("{body}.{}", &signature[..20]),
            ),
            (
                "signature missing one character",
                format!("{body}.{}", &signature[..signature.len() - 1]),
            ),
            (
                "all-zero signature",
                format!("{body}.{}", b64(vec![0u8; zero_len])),
            ),
            ("one bit flipped", format!("{body}.{}", b64(flipped))),
            ("signature by another key", foreign),
            ("padded signature", format!("{genuine}==")),
            ("four segments", format!("{genuine}.{signature}")),
            ("not base64", format!("{body}.!!!!")),
            ("empty token", String::new()),
            ("dots only", "..".into()),
            ("garbage", "not-a-jwt".into()),
        ];
        for (what, token) in cases {
            target.refuses(&token, what).await;
        }
    }
}

#[actix_web::test]
async fn tampered_claims_keep_no_signature() {
    for target in both().await {
        let genuine = target.genuine();
        let signature = genuine.rsplit('.').next().unwrap();
        for (field, value) in [
            ("role", json!("admin")),
            ("sub", json!("4242")),
            ("sid", json!("999")),
            ("exp", json!(now_secs() + 86_400 * 365)),
            ("name", json!("admin")),
        ] {
            let body = unsigned(&target.header, &target.claims_with(field, value));
            target.refuses(&format!("{body}.{signature}"), field).await;
        }
    }
}

#[actix_web::test]
async fn hs256_signed_with_our_public_key_in_any_encoding_is_refused() {
    let target = Target::eddsa().await;
    let jwks: Value = client()
        .get(target.app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let jwk = &jwks["keys"][0];
    let x = jwk["x"].as_str().unwrap();
    let raw = URL_SAFE_NO_PAD.decode(x).unwrap();
    assert_eq!(raw.len(), 32);
    // SubjectPublicKeyInfo for Ed25519 (RFC 8410): a fixed prefix and the raw key.
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(&raw);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
        STANDARD.encode(&der)
    );
    let encodings: Vec<(&str, Vec<u8>)> = vec![
        ("raw bytes", raw.clone()),
        ("base64url x", x.as_bytes().to_vec()),
        ("standard base64", STANDARD.encode(&raw).into_bytes()),
        (
            "hex",
            raw.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes(),
        ),
        ("SPKI DER", der.clone()),
        ("SPKI PEM", pem.clone().into_bytes()),
        ("SPKI PEM + newline", format!("{pem}\n").into_bytes()),
        ("JWK JSON", jwk.to_string().into_bytes()),
    ];
    for (what, secret) in encodings {
        for typ in [Some("at+jwt"), Some("JWT"), None] {
            let mut header = target.header_with("alg", "HS256".into());
            match typ {
                Some(t) => header["typ"] = t.into(),
                None => {
                    header.as_object_mut().unwrap().remove("typ");
                }
            }
            target
                .refuses(&hs256(&header, &target.claims, &secret), what)
                .await;
        }
    }
}

#[actix_web::test]
async fn hs256_tokens_signed_with_a_wrong_secret_are_refused() {
    let target = Target::hs256().await;
    for secret in [
        &b"a wrong secret that is long enough for hs256"[..],
        b"",
        b"secret",
        &HS256_SECRET.as_bytes()[..HS256_SECRET.len() - 1],
    ] {
        target
            .refuses(
                &hs256(&target.header, &target.claims, secret),
                "wrong secret",
            )
            .await;
    }
}

#[actix_web::test]
async fn a_token_of_the_other_algorithm_is_refused() {
    let [eddsa, hs] = both().await;
    // The HS256 instance's genuine-looking token on the EdDSA instance, and vice versa.
    eddsa.refuses(&hs.genuine(), "an HS256 token").await;
    hs.refuses(&eddsa.genuine(), "an EdDSA token").await;
    for alg in [
        "RS256", "ES256", "PS256", "HS512", "EdDSA ", "eddsa", "hs256",
    ] {
        for target in [&eddsa, &hs] {
            let header = target.header_with("alg", alg.into());
            target
                .refuses(&target.forge(&header, &target.claims), alg)
                .await;
        }
    }
}

/// A listener that records whether anybody connected to it.
struct Tripwire(TcpListener);

impl Tripwire {
    fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        Tripwire(listener)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.0.local_addr().unwrap())
    }

    fn was_contacted(&self) -> bool {
        match self.0.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => panic!("tripwire: {e}"),
        }
    }
}

#[actix_web::test]
async fn keys_named_in_the_token_are_never_trusted_or_fetched() {
    let tripwire = Tripwire::new();
    for target in both().await {
        let (kid, attacker_key, public) = attacker_ed25519();
        let attacker_jwk = json!({
            "kty": "OKP", "crv": "Ed25519", "x": b64(&public), "kid": kid, "use": "sig", "alg": "EdDSA"
        });
        let oct_secret = b"the attacker's own hmac secret, 32+ bytes";
        let oct_jwk =
            json!({"kty": "oct", "k": b64(oct_secret), "kid": "attacker", "alg": "HS256"});
        let mut cases = Vec::new();
        for our_kid in [false, true] {
            let mut header = target.header.clone();
            header["alg"] = "EdDSA".into();
            if !our_kid {
                header["kid"] = kid.clone().into();
            }
            let with = |field: &str, value: Value| {
                let mut h = header.clone();
                h[field] = value;
                h
            };
            let attacker_signed =
                |h: &Value| sign(h, &target.claims, &attacker_key, Algorithm::EdDSA);
            cases.push((
                "embedded jwk",
                attacker_signed(&with("jwk", attacker_jwk.clone())),
            ));
            cases.push((
                "jku",
                attacker_signed(&with("jku", tripwire.url("/jwks.json").into())),
            ));
            cases.push((
                "x5u",
                attacker_signed(&with("x5u", tripwire.url("/cert.pem").into())),
            ));
            cases.push((
                "x5c",
                attacker_signed(&with("x5c", json!([STANDARD.encode(&public)]))),
            ));
            let mut oct = with("jwk", oct_jwk.clone());
            oct["alg"] = "HS256".into();
            cases.push(("embedded oct jwk", hs256(&oct, &target.claims, oct_secret)));
        }
        // The URLs also on a token that is otherwise genuine: still never fetched.
        let genuine_with_jku = target.forge(
            &target.header_with("jku", tripwire.url("/genuine.json").into()),
            &target.claims,
        );
        for (what, token) in cases {
            target.refuses(&token, what).await;
        }
        let response = target.app.get_bearer("/api/me", &genuine_with_jku).await;
        assert_eq!(response.status(), 200, "jku is ignored, not followed");
    }
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !tripwire.was_contacted(),
        "the server fetched a URL named in a token"
    );
}

#[actix_web::test]
async fn kid_injection_is_refused() {
    for target in both().await {
        let injected = [
            "../../dev/null",
            "../../../../../../dev/null",
            "/dev/null",
            "' OR '1'='1",
            "x' UNION SELECT 'secret' --",
            "\"; DROP TABLE signing_keys; --",
            "",
            " ",
            "kid\0",
            "|cat /etc/passwd",
        ];
        for kid in injected {
            let header = target.header_with("kid", kid.into());
            // With the real key: an unknown kid never falls back to some other key.
            target
                .refuses(&target.forge(&header, &target.claims), kid)
                .await;
            // The classic: kid → an empty file, signed with an empty HMAC secret.
            let mut hs = header.clone();
            hs["alg"] = "HS256".into();
            for secret in [&b""[..], b"\0", b"secret"] {
                target
                    .refuses(&hs256(&hs, &target.claims, secret), kid)
                    .await;
            }
        }
        for not_a_string in [json!(null), json!(1), json!(["a"]), json!({"a": 1})] {
            let header = target.header_with("kid", not_a_string);
            target
                .refuses(
                    &target.forge(&header, &target.claims),
                    "kid of another type",
                )
                .await;
        }
        let mut no_kid = target.header.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        target
            .refuses(&target.forge(&no_kid, &target.claims), "missing kid")
            .await;
    }
}

#[actix_web::test]
async fn expired_tokens_are_refused_as_expired() {
    for target in both().await {
        for exp in [now_secs() - 60, now_secs() - 86_400, 0] {
            let claims = target.claims_with("exp", exp.into());
            target
                .refuses_as(
                    &target.forge(&target.header, &claims),
                    "token_expired",
                    "expired",
                )
                .await;
        }
    }
}

#[actix_web::test]
async fn a_token_not_yet_valid_is_refused() {
    for target in both().await {
        let claims = target.claims_with("nbf", (now_secs() + 3600).into());
        target
            .refuses(&target.forge(&target.header, &claims), "nbf in an hour")
            .await;
        // A past nbf is fine: the control for the case above.
        let claims = target.claims_with("nbf", (now_secs() - 60).into());
        let me = target.app.me(&target.forge(&target.header, &claims)).await;
        assert_eq!(me["username"], "mallory");
    }
}

#[actix_web::test]
async fn wrong_issuer_audience_type_and_missing_expiry_are_refused() {
    for target in both().await {
        let mut claims_cases = vec![
            (
                "wrong iss",
                target.claims_with("iss", "https://evil.example".into()),
            ),
            (
                "iss with a slash",
                target.claims_with("iss", "http://127.0.0.1:8080/".into()),
            ),
            (
                "wrong aud",
                target.claims_with("aud", "another-service".into()),
            ),
            (
                "aud list without us",
                target.claims_with("aud", json!(["another-service"])),
            ),
            (
                "exp as a string",
                target.claims_with("exp", json!("9999999999")),
            ),
            (
                "role outside the enum",
                target.claims_with("role", "root".into()),
            ),
            ("sub not an id", target.claims_with("sub", "alice".into())),
            (
                "sid not an id",
                target.claims_with("sid", "' OR 1=1".into()),
            ),
        ];
        for missing in ["exp", "iss", "aud", "sub", "sid", "role"] {
            let mut claims = target.claims.clone();
            claims.as_object_mut().unwrap().remove(missing);
            claims_cases.push((missing, claims));
        }
        for (what, claims) in claims_cases {
            target
                .refuses(&target.forge(&target.header, &claims), what)
                .await;
        }
        for typ in [json!("JWT"), json!("at+jwt+x"), json!(""), json!(1)] {
            let header = target.header_with("typ", typ);
            target
                .refuses(&target.forge(&header, &target.claims), "wrong typ")
                .await;
        }
        let mut no_typ = target.header.clone();
        no_typ.as_object_mut().unwrap().remove("typ");
        target
            .refuses(&target.forge(&no_typ, &target.claims), "missing typ")
            .await;
        // RFC 7515 §4.1.11: a critical extension we do not understand.
        let header = target.header_with("crit", json!(["urn:example:unknown"]));
        target
            .refuses(&target.forge(&header, &target.claims), "crit")
            .await;
        // Claims that are not an object, and a header that is not JSON.
        for claims in [json!([]), json!("x"), json!(null)] {
            target
                .refuses(
                    &target.forge(&target.header, &claims),
                    "claims not an object",
                )
                .await;
        }
        let genuine = target.genuine();
        let rest = genuine.split_once('.').unwrap().1;
        target
            .refuses(&format!("{}.{rest}", b64("{not json")), "header not JSON")
            .await;
    }
}

#[actix_web::test]
async fn a_100_kb_header_is_refused_without_a_5xx() {
    for target in both().await {
        let header = target.header_with("pad", "A".repeat(100 * 1024).into());
        let token = target.forge(&header, &target.claims);
        assert!(token.len() > 100 * 1024);
        // Past the HTTP head limit (32 KiB), actix refuses it before routing.
        let response = target.app.get_bearer("/api/me", &token).await;
        assert_eq!(response.status(), 431, "Request Header Fields Too Large");
        // Under the head limit but over the verifier's 8 KiB cap: a 401 without parsing.
        let header = target.header_with("pad", "A".repeat(12 * 1024).into());
        target
            .refuses(&target.forge(&header, &target.claims), "a 12 KB header")
            .await;
    }
}
