//! Property tests (proptest), run briefly with the suite: the parsers at the edge of the
//! program never panic and never accept what they should not — tokens, refresh tokens,
//! `next` paths, usernames, passwords, durations — and random cookies and form bodies
//! over HTTP never produce a 5xx.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey::clock::Millis;
use latchkey::config::parse_duration;
use latchkey::domain::{Password, Role, SessionId, UserId, Username};
use latchkey::next_path;
use latchkey::tokens::access::{AccessTokens, Amr, SessionClaims};
use latchkey::tokens::keys::{KeyAlg, KeySet, Keys};
use latchkey::tokens::refresh::RefreshToken;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

use crate::helpers::*;

fn config() -> Config {
    Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    }
}

fn eddsa_tokens() -> AccessTokens {
    let key = KeyAlg::EdDsa.generate(Millis(0)).unwrap();
    AccessTokens::new(
        Keys::new(KeySet::stored(KeyAlg::EdDsa, &[key])),
        "http://issuer".into(),
        60,
    )
}

fn hs256_tokens() -> AccessTokens {
    AccessTokens::new(
        Keys::new(KeySet::hs256(b"a fuzzing secret of thirty-two bytes!")),
        "http://issuer".into(),
        60,
    )
}

/// Three dot-separated base64url-ish segments, some of them valid JSON.
fn jwt_shaped() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        "[A-Za-z0-9_-]{0,120}",
        any::<Vec<u8>>().prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        "\\PC{0,60}".prop_map(|s| URL_SAFE_NO_PAD.encode(s)),
        r#"\{"alg":"(EdDSA|HS256|none|RS256)","typ":"at\+jwt","kid":"[a-z0-9]{0,16}"\}"#
            .prop_map(|s| URL_SAFE_NO_PAD.encode(s)),
    ];
    (segment.clone(), segment.clone(), segment).prop_map(|(a, b, c)| format!("{a}.{b}.{c}"))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_strings_never_verify(token in "\\PC{0,300}") {
        prop_assert!(eddsa_tokens().verify(&token).is_err());
        prop_assert!(hs256_tokens().verify(&token).is_err());
    }

    #[test]
    fn jwt_shaped_garbage_never_verifies(token in jwt_shaped()) {
        prop_assert!(eddsa_tokens().verify(&token).is_err());
        prop_assert!(hs256_tokens().verify(&token).is_err());
    }

    #[test]
    fn any_change_to_a_genuine_token_breaks_it(
        position in any::<prop::sample::Index>(),
        replacement in prop::char::range('!', '~'),
        hs in any::<bool>(),
    ) {
        let tokens = if hs { hs256_tokens() } else { eddsa_tokens() };
        let genuine = tokens.issue(UserId(1), "alice", Role::User, SessionClaims { id: SessionId(2), auth_time: 0, amr: Amr::Password, not_after: i64::MAX }).unwrap().token;
        prop_assert!(tokens.verify(&genuine).is_ok());
        let mut bytes = genuine.clone().into_bytes();
        let at = position.index(bytes.len());
        bytes[at] = replacement as u8;
        let garbled = String::from_utf8(bytes).unwrap();
        prop_assume!(garbled != genuine);
        prop_assert!(tokens.verify(&garbled).is_err(), "{garbled}");
    }

    #[test]
    fn refresh_tokens_parse_only_in_their_exact_shape(raw in prop_oneof![
        "\\PC{0,60}",
        "[A-Za-z0-9_-]{40,46}",
        "[A-Za-z0-9_=+/-]{43}",
    ]) {
        let shaped = raw.len() == 43
            && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        prop_assert_eq!(RefreshToken::parse(&raw).is_some(), shaped);
    }

    #[test]
    fn next_paths_never_leave_the_site(raw in prop_oneof![
        "\\PC{0,80}",
        "[/\\\\:. a-z\t\n%@]{0,20}",
        "(/|//|\\\\|https?:|javascript:| )[a-z./\\\\]{0,20}",
    ]) {
        let next = next_path::local_or_default(Some(&raw));
        prop_assert!(next.starts_with('/'));
        prop_assert!(!next.starts_with("//") && !next.contains('\\'));
        prop_assert!(!next.chars().any(|c| c.is_control() || c.is_whitespace()));
        prop_assert!(next == raw || next == next_path::DEFAULT);
        // Wrapped into a redirect, it can never split a header or add a query field.
        let login = next_path::login_url(&raw);
        prop_assert!(login.starts_with("/login?next="));
        let encoded = &login["/login?next=".len()..];
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"/-_.~%".contains(&b)));
    }

    #[test]
    fn usernames_parse_into_the_alphabet_case_insensitively(raw in prop_oneof![
        "\\PC{0,80}",
        "[A-Za-z0-9._-]{1,70}",
    ]) {
        match Username::parse(&raw) {
            Ok(name) => {
                let s = name.as_str();
                prop_assert!((3..=64).contains(&s.len()));
                prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)));
                prop_assert_eq!(Username::parse(s).unwrap(), name.clone());
                prop_assert_eq!(Username::parse(&raw.to_ascii_uppercase()).unwrap(), name);
            }
            Err(message) => prop_assert!(!message.is_empty()),
        }
    }

    #[test]
    fn passwords_are_bounded_in_characters(raw in prop_oneof![
        "\\PC{0,20}",
        "\\PC{1000,1030}",
    ]) {
        let chars = raw.chars().count();
        if let Ok(password) = Password::parse(raw.clone()) {
            prop_assert!((8..=1024).contains(&chars));
            prop_assert_eq!(format!("{:?}", password), "Password(<redacted>)");
        } else if (8..=1024).contains(&chars) {
            // Refused for being common: then it is on the list in lower case.
            prop_assert!(Password::parse(raw.to_lowercase()).is_err());
        }
    }

    #[test]
    fn durations_round_trip_and_garbage_is_refused(
        n in 1i64..1_000_000_000,
        unit in prop::sample::select(vec![('s', 1i64), ('m', 60), ('h', 3600), ('d', 86_400)]),
        junk in "\\PC{0,12}",
    ) {
        prop_assert_eq!(parse_duration(&format!("{n}{}", unit.0)), Some(n * unit.1));
        if let Some(secs) = parse_duration(&junk) {
            prop_assert!(secs > 0);
            prop_assert!(junk.bytes().all(|b| b.is_ascii_digit() || b"smhd".contains(&b)));
        }
    }
}

/// `count` values drawn from `strategy` (no shrinking: they go over HTTP).
fn draw<S: Strategy>(strategy: S, count: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::new(config());
    (0..count)
        .map(|_| strategy.new_tree(&mut runner).unwrap().current())
        .collect()
}

/// Printable bytes allowed in a cookie value or a header, with the tricky ones weighted in.
fn cookie_junk() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,200}",
        "[;=\",\\\\ %.a-zA-Z0-9_-]{0,60}",
        jwt_shaped(),
    ]
}

#[actix_web::test]
async fn random_cookies_never_get_a_5xx() {
    let app = spawn_app().await;
    for value in draw(cookie_junk(), 100) {
        let cookie = format!("lk_access={value}; lk_refresh={value}");
        for (method, path) in [
            (reqwest::Method::GET, "/api/me"),
            (reqwest::Method::POST, "/auth/refresh"),
            (reqwest::Method::GET, "/auth/renew?next=/dashboard"),
            (reqwest::Method::GET, "/dashboard"),
            (reqwest::Method::POST, "/logout"),
        ] {
            let response = client()
                .request(method.clone(), app.url(path))
                .header("cookie", &cookie)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            assert!(
                (300..500).contains(&status),
                "{method} {path} with cookie {cookie:?}: {status}"
            );
        }
    }
}

#[actix_web::test]
async fn random_form_bodies_never_get_a_5xx() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let bodies = draw(
        prop_oneof![
            any::<Vec<u8>>(),
            "[a-z_=&%0-9A-F+]{0,200}".prop_map(String::into_bytes),
            ("(username|password|csrf_token|next)", "[ -~]{0,40}")
                .prop_map(|(k, v)| format!("{k}={v}&{k}={v}").into_bytes()),
        ],
        100,
    );
    for body in bodies {
        for path in ["/login", "/logout", "/account/password", "/admin/users"] {
            let response = client()
                .post(app.url(path))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            assert!(
                (300..500).contains(&status),
                "POST {path} with {:?}: {status}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}
