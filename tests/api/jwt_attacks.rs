//! The JWT attack battery (RFC 8725 and the classics jwt_tool tries), run against an
//! instance of every algorithm: EdDSA, ES256, RS256 and HS256. Every forged token must be a 401 — on the
//! `Authorization` header and on the `lk_access` cookie — and never a 5xx.
//!
//! Forgeries that keep everything but one property are signed with the instance's *real*
//! key (read from its database or settings), so each test shows that exactly that
//! property is checked; `the_forger_mints_tokens_the_server_accepts` proves the forger
//! itself is sound.

use latchkey::clock::Millis;
use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use latchkey::config::JwtAlg;
use latchkey::domain::Role;
use latchkey::store::keys;
use latchkey::tokens::keys::KeyAlg;
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
    async fn stored(alg: KeyAlg) -> Self {
        let app = spawn_app_with(|s| s.jwt_alg = JwtAlg::Stored(alg)).await;
        let row = {
            let mut conn = app.conn();
            keys::usable(&mut conn, alg.name(), Millis(0))
                .unwrap()
                .into_iter()
                .filter(|k| k.is_live())
                .min_by_key(|k| k.created_at)
                .expect("the current key: the oldest live one")
        };
        Self::with(app, alg.jwt(), encoding_key(alg, &row)).await
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

/// jsonwebtoken's signing key for a stored key row (RSA keys in PKCS#1, as it wants them).
fn encoding_key(alg: KeyAlg, row: &keys::KeyRow) -> EncodingKey {
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::pkcs8::DecodePrivateKey as _;
    match alg {
        KeyAlg::EdDsa => EncodingKey::from_ed_der(&row.private_key),
        KeyAlg::Es256 => EncodingKey::from_ec_der(&row.private_key),
        KeyAlg::Rs256 => {
            let key = rsa::RsaPrivateKey::from_pkcs8_der(&row.private_key).unwrap();
            EncodingKey::from_rsa_der(key.to_pkcs1_der().unwrap().as_bytes())
        }
    }
}

/// A fresh Ed25519 key that is not the instance's: (kid, signing key, raw public key).
fn attacker_ed25519() -> (String, EncodingKey, Vec<u8>) {
    let row = KeyAlg::EdDsa.generate(Millis(0)).unwrap();
    (
        row.kid,
        EncodingKey::from_ed_der(&row.private_key),
        row.public_key,
    )
}

/// A signature by a key of the same algorithm that is not the instance's.
fn foreign_signature(target: &Target) -> String {
    match KeyAlg::ALL.into_iter().find(|a| a.jwt() == target.alg) {
        Some(alg) => {
            let row = alg.generate(Millis(0)).unwrap();
            sign(
                &target.header,
                &target.claims,
                &encoding_key(alg, &row),
                target.alg,
            )
        }
        None => hs256(
            &target.header,
            &target.claims,
            b"another secret of thirty-two bytes or more",
        ),
    }
}

fn now_secs() -> i64 {
    latchkey::clock::now().unix_seconds()
}

/// An instance of each algorithm.
async fn all() -> [Target; 4] {
    [
        Target::stored(KeyAlg::EdDsa).await,
        Target::stored(KeyAlg::Es256).await,
        Target::stored(KeyAlg::Rs256).await,
        Target::hs256().await,
    ]
}

#[actix_web::test]
async fn the_forger_mints_tokens_the_server_accepts() {
    for target in all().await {
        let me = target.app.me(&target.genuine()).await;
        assert_eq!(me["username"], "mallory");
        assert_eq!(me["role"], "user");
    }
}

#[actix_web::test]
async fn alg_none_in_any_spelling_is_refused() {
    for target in all().await {
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
    for target in all().await {
        let genuine = target.genuine();
        let (body, signature) = genuine.rsplit_once('.').unwrap();
        let zero_len = URL_SAFE_NO_PAD.decode(signature).unwrap().len();
        let foreign = foreign_signature(&target);
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
    for target in all().await {
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

/// The public key of a published JWK in every encoding an HS256 confusion attack might
/// use as the HMAC secret.
fn public_key_encodings(jwk: &Value) -> Vec<(&'static str, Vec<u8>)> {
    use p256::pkcs8::{EncodePublicKey as _, LineEnding};
    use rsa::pkcs1::EncodeRsaPublicKey as _;
    let member = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let mut encodings: Vec<(&'static str, Vec<u8>)> =
        vec![("JWK JSON", jwk.to_string().into_bytes())];
    let (raw, spki_der, spki_pem) = match jwk["kty"].as_str().unwrap() {
        "OKP" => {
            let raw = member("x");
            // SubjectPublicKeyInfo for Ed25519 (RFC 8410): a fixed prefix and the raw key.
            let mut der = vec![
                0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
            ];
            der.extend_from_slice(&raw);
            let pem = format!(
                "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
                STANDARD.encode(&der)
            );
            (raw, der, pem)
        }
        "EC" => {
            let mut point = vec![0x04];
            point.extend(member("x"));
            point.extend(member("y"));
            let key = p256::PublicKey::from_sec1_bytes(&point).unwrap();
            encodings.push(("x || y", point[1..].to_vec()));
            let der = key.to_public_key_der().unwrap().into_vec();
            let pem = key.to_public_key_pem(LineEnding::LF).unwrap();
            (point, der, pem)
        }
        "RSA" => {
            let key = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&member("n")),
                rsa::BigUint::from_bytes_be(&member("e")),
            )
            .unwrap();
            let pkcs1 = key.to_pkcs1_der().unwrap().into_vec();
            encodings.push((
                "PKCS#1 PEM",
                key.to_pkcs1_pem(LineEnding::LF).unwrap().into_bytes(),
            ));
            encodings.push(("modulus", member("n")));
            let der = key.to_public_key_der().unwrap().into_vec();
            let pem = key.to_public_key_pem(LineEnding::LF).unwrap();
            (pkcs1, der, pem)
        }
        other => panic!("unexpected kty {other}"),
    };
    let first = ["x", "n"]
        .into_iter()
        .find_map(|m| jwk[m].as_str())
        .unwrap();
    encodings.extend([
        ("base64url member", first.as_bytes().to_vec()),
        ("standard base64", STANDARD.encode(&raw).into_bytes()),
        (
            "hex",
            raw.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes(),
        ),
        ("raw bytes", raw),
        ("SPKI DER", spki_der),
        (
            "SPKI PEM + newline",
            format!("{}\n", spki_pem.trim_end()).into_bytes(),
        ),
        ("SPKI PEM", spki_pem.trim_end().as_bytes().to_vec()),
    ]);
    encodings
}

#[actix_web::test]
async fn hs256_signed_with_our_public_key_in_any_encoding_is_refused() {
    for alg in KeyAlg::ALL {
        let target = Target::stored(alg).await;
        let jwks: Value = client()
            .get(target.app.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for jwk in jwks["keys"].as_array().unwrap() {
            for (what, secret) in public_key_encodings(jwk) {
                for typ in [Some("at+jwt"), Some("JWT"), None] {
                    let mut header = target.header_with("alg", "HS256".into());
                    match typ {
                        Some(t) => header["typ"] = t.into(),
                        None => {
                            header.as_object_mut().unwrap().remove("typ");
                        }
                    }
                    let what = format!("{}: {what}", alg.name());
                    target
                        .refuses(&hs256(&header, &target.claims, &secret), &what)
                        .await;
                }
            }
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
async fn a_token_of_another_algorithm_is_refused() {
    let targets = all().await;
    // Each instance's genuine token on every other instance.
    for target in &targets {
        for other in targets.iter().filter(|o| o.alg != target.alg) {
            let what = format!("a {:?} token on the {:?} instance", other.alg, target.alg);
            target.refuses(&other.genuine(), &what).await;
        }
    }
    // The instance's own key, with the header naming another algorithm.
    for alg in [
        "RS256", "ES256", "PS256", "HS512", "ES384", "EdDSA ", "eddsa", "hs256", "HS256", "EdDSA",
    ] {
        for target in &targets {
            let header = target.header_with("alg", alg.into());
            if header == target.header {
                continue;
            }
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
    for target in all().await {
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
    for target in all().await {
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
    for target in all().await {
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
    for target in all().await {
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
    for target in all().await {
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
    for target in all().await {
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
