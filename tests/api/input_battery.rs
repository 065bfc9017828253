//! The input battery: hostile or broken requests against the JSON API. Each one gets a
//! 4xx in the documented shape (`{"error", "message"}`) — never a 5xx, never HTML.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use latchkey::domain::Role;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

/// Asserts the documented error shape with `status` and `code`.
async fn assert_error(response: reqwest::Response, status: u16, code: &str, what: &str) {
    let got = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{what}: {text}");
    assert!(
        content_type.starts_with("application/json"),
        "{what}: content type {content_type:?}"
    );
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: {text}"));
    assert_eq!(body["error"], code, "{what}: {text}");
    assert!(body["message"].is_string(), "{what}: {text}");
}

async fn post_token_raw(
    app: &TestApp,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = client().post(app.url("/auth/token")).body(body);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    request.send().await.unwrap()
}

/// A body sent in chunks with no `Content-Length`.
fn chunked(body: Vec<u8>) -> reqwest::Body {
    struct Chunks(Vec<Vec<u8>>);
    impl futures_core::Stream for Chunks {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready((!self.0.is_empty()).then(|| Ok(self.0.remove(0))))
        }
    }
    reqwest::Body::wrap_stream(Chunks(body.chunks(7).map(<[u8]>::to_vec).collect()))
}

#[actix_web::test]
async fn chunked_bodies_without_a_length_are_read_and_bounded() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let good = format!(r#"{{"username":"alice","password":"{PASSWORD}"}}"#).into_bytes();
    let response = client()
        .post(app.url("/auth/token"))
        .header("content-type", "application/json")
        .body(chunked(good))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a chunked sign-in works");

    let big = format!(
        r#"{{"username":"alice","password":"{}"}}"#,
        "y".repeat(16 * 1024)
    );
    let response = client()
        .post(app.url("/auth/token"))
        .header("content-type", "application/json")
        .body(chunked(big.into_bytes()))
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "payload_too_large", "chunked over 16 KiB").await;
}

#[actix_web::test]
async fn a_body_of_exactly_16_kib_is_accepted_and_one_byte_more_is_413() {
    let app = spawn_app().await;
    let frame = r#"{"username":"alice","password":""}"#.len();
    let at_limit = |extra: usize| {
        format!(
            r#"{{"username":"alice","password":"{}"}}"#,
            "z".repeat(16 * 1024 - frame + extra)
        )
        .into_bytes()
    };
    assert_eq!(at_limit(0).len(), 16 * 1024);
    let response = post_token_raw(&app, Some("application/json"), at_limit(0)).await;
    assert_error(response, 401, "invalid_credentials", "16 KiB exactly").await;
    let response = post_token_raw(&app, Some("application/json"), at_limit(1)).await;
    assert_error(response, 413, "payload_too_large", "16 KiB + 1").await;
}

#[actix_web::test]
async fn malformed_json_is_400_invalid_request() {
    let app = spawn_app().await;
    let deep = "[".repeat(10_000);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty body", b"".to_vec()),
        ("whitespace", b"   \n".to_vec()),
        ("truncated", br#"{"username":"alice","pass"#.to_vec()),
        (
            "trailing garbage",
            br#"{"username":"alice","password":"x"} {"#.to_vec(),
        ),
        (
            "single quotes",
            br#"{'username':'alice','password':'x'}"#.to_vec(),
        ),
        ("a string", br#""alice""#.to_vec()),
        ("null", b"null".to_vec()),
        (
            "numbers for strings",
            br#"{"username":1,"password":2}"#.to_vec(),
        ),
        (
            "null fields",
            br#"{"username":null,"password":null}"#.to_vec(),
        ),
        (
            "nested objects",
            br#"{"username":{"$ne":""},"password":{"$ne":""}}"#.to_vec(),
        ),
        ("missing password", br#"{"username":"alice"}"#.to_vec()),
        (
            "bad escape",
            br#"{"username":"\q","password":"x"}"#.to_vec(),
        ),
        (
            "lone surrogate",
            br#"{"username":"\ud800","password":"x"}"#.to_vec(),
        ),
        ("deep nesting", deep.into_bytes()),
        (
            "byte order mark",
            b"\xef\xbb\xbf{\"username\":\"a\",\"password\":\"b\"}".to_vec(),
        ),
        (
            "comment",
            b"{/* hi */\"username\":\"a\",\"password\":\"b\"}".to_vec(),
        ),
    ];
    for (what, body) in cases {
        let response = post_token_raw(&app, Some("application/json"), body).await;
        assert_error(response, 400, "invalid_request", what).await;
    }
    // serde reads a JSON array in field order as the same struct: just credentials.
    let response =
        post_token_raw(&app, Some("application/json"), br#"["alice","x"]"#.to_vec()).await;
    assert_error(response, 401, "invalid_credentials", "an array").await;
}

#[actix_web::test]
async fn duplicate_json_fields_are_400() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let body = format!(r#"{{"username":"mallory","username":"alice","password":"{PASSWORD}"}}"#);
    let response = post_token_raw(&app, Some("application/json"), body.into_bytes()).await;
    assert_error(response, 400, "invalid_request", "duplicate username").await;
    let body = format!(r#"{{"username":"alice","password":"x","password":"{PASSWORD}"}}"#);
    let response = post_token_raw(&app, Some("application/json"), body.into_bytes()).await;
    assert_error(response, 400, "invalid_request", "duplicate password").await;
}

#[actix_web::test]
async fn non_utf8_bodies_are_400() {
    let app = spawn_app().await;
    for (what, body) in [
        (
            "latin-1 in a string",
            b"{\"username\":\"al\xe9ce\",\"password\":\"xxxxxxxx\"}".to_vec(),
        ),
        (
            "overlong encoding",
            b"{\"username\":\"\xc0\xafx\",\"password\":\"xxxxxxxx\"}".to_vec(),
        ),
        (
            "utf-16",
            "{\"username\":\"a\"}"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect(),
        ),
        ("random bytes", (0u8..=255).rev().collect()),
    ] {
        let response = post_token_raw(&app, Some("application/json"), body).await;
        assert_error(response, 400, "invalid_request", what).await;
    }
}

#[actix_web::test]
async fn wrong_content_types_are_415() {
    let app = spawn_app().await;
    let body = br#"{"username":"alice","password":"xxxxxxxx"}"#.to_vec();
    for content_type in [
        None,
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        Some("application/xml"),
        Some("application/octet-stream"),
        Some("not a mime type"),
        Some(""),
    ] {
        let response = post_token_raw(&app, content_type, body.clone()).await;
        assert_error(
            response,
            415,
            "unsupported_media_type",
            &format!("{content_type:?}"),
        )
        .await;
    }
    // Form-encoded is the native clients' RFC 6749 grant (see `integration`): without a
    // grant_type it is that grant's invalid_request, never a sign-in.
    let response = client()
        .post(app.url("/auth/token"))
        .form(&[("username", "alice"), ("password", "xxxxxxxx")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}

#[actix_web::test]
async fn huge_nul_and_control_usernames_are_invalid_credentials() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let ten_kb = "A".repeat(10 * 1024);
    let ten_kb_unicode = "ü".repeat(5 * 1024);
    let long_password = "p".repeat(10 * 1024);
    let cases: Vec<(&str, &str, &str)> = vec![
        ("10 KB username", &ten_kb, PASSWORD),
        ("10 KB unicode username", &ten_kb_unicode, PASSWORD),
        ("NUL in the username", "alice\0", PASSWORD),
        ("NUL first", "\0alice", PASSWORD),
        (
            "NUL in the password",
            "alice",
            "correct horse\0battery staple",
        ),
        ("control characters", "al\u{1b}[31mice", PASSWORD),
        ("right-to-left override", "\u{202e}ecila", PASSWORD),
        ("10 KB password", "alice", &long_password),
        ("empty username", "", PASSWORD),
        ("empty password", "alice", ""),
        ("SQL in the username", "alice' OR '1'='1", PASSWORD),
        ("SQL comment", "alice'--", "x"),
    ];
    for (what, username, password) in cases {
        let response = app.post_token(&client(), username, password).await;
        assert_error(response, 401, "invalid_credentials", what).await;
    }
    // None of it hurt the real account.
    assert_eq!(
        app.post_token(&client(), "alice", PASSWORD).await.status(),
        200
    );
}

#[actix_web::test]
async fn unknown_routes_and_methods_are_json_404_and_405() {
    let app = spawn_app().await;
    let c = client();
    for (method, path) in [
        (Method::GET, "/auth/token"),
        (Method::PUT, "/auth/token"),
        (Method::PATCH, "/auth/token"),
        (Method::DELETE, "/auth/token"),
        (Method::OPTIONS, "/auth/token"),
        (Method::GET, "/auth/refresh"),
        (Method::PUT, "/auth/logout"),
        (Method::POST, "/auth/renew"),
        (Method::POST, "/api/me"),
        (Method::DELETE, "/api/me"),
        (Method::POST, "/api/sessions"),
        (Method::GET, "/api/sessions/1"),
        (Method::PUT, "/api/admin/users"),
        (Method::POST, "/api/admin/sessions/1"),
        (Method::from_bytes(b"TRACE").unwrap(), "/api/me"),
        (Method::from_bytes(b"BREW").unwrap(), "/api/me"),
    ] {
        let response = c
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_error(
            response,
            405,
            "method_not_allowed",
            &format!("{method} {path}"),
        )
        .await;
    }
    for path in [
        "/api/nope",
        "/auth/nope",
        "/api/me/",
        "/api/me/extra",
        "/api/sessions/1/x",
        "/api/admin",
        "/api/%00",
        "/api/..%2f..%2fetc%2fpasswd",
        "/api/\u{00e9}",
    ] {
        let response = c.get(app.url(path)).send().await.unwrap();
        assert_error(response, 404, "not_found", path).await;
    }
    let long = format!("/api/{}", "a".repeat(8 * 1024));
    let response = c.get(app.url(&long)).send().await.unwrap();
    assert_error(response, 404, "not_found", "an 8 KB path").await;
    // HEAD has no body, but the status still tells.
    let response = c.head(app.url("/auth/token")).send().await.unwrap();
    assert_eq!(response.status(), 405);
}

#[actix_web::test]
async fn malformed_ids_queries_and_headers_are_4xx() {
    let app = spawn_app().await;
    app.add_user("root", Role::Admin);
    let admin = app.sign_in(&client(), "root").await;
    for path in [
        "/api/sessions/abc",
        "/api/sessions/-1",
        "/api/sessions/99999999999999999999999",
        "/api/sessions/1e3",
        "/api/sessions/%00",
        "/api/admin/sessions/0x10",
    ] {
        let response = app.delete_bearer(path, &admin).await;
        assert_error(response, 404, "not_found", path).await;
    }
    for query in [
        "limit=abc",
        "limit=-1",
        "limit=0",
        "limit=99999999999999999999",
        "cursor=x",
        "user=%00",
        "user=a%20b",
        "limit=1&limit=2",
        "user=%ff%fe",
    ] {
        let response = app
            .get_bearer(&format!("/api/admin/sessions?{query}"), &admin)
            .await;
        assert_error(response, 400, "invalid_request", query).await;
    }

    // Authorization values that are not tokens.
    for value in [
        &b"Bearer"[..],
        b"Bearer ",
        b"Basic YWxpY2U6cGFzc3dvcmQ=",
        b"Bearer \xff\xfe\xfd",
        b"Bearer a.b.c d.e.f",
        b"bearer\tx",
    ] {
        let response = client()
            .get(app.url("/api/me"))
            .header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(value).unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_error(
            response,
            401,
            "invalid_token",
            &String::from_utf8_lossy(value),
        )
        .await;
    }
    // Garbage cookies and forwarding headers from an untrusted peer.
    let response = client()
        .post(app.url("/auth/refresh"))
        .header("cookie", "lk_refresh=%00; lk_refresh=; =; ;;")
        .header("x-forwarded-for", "not an ip, 999.1.1.1, ::::")
        .header("user-agent", "U".repeat(4000))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "invalid_refresh_token", "garbage cookies").await;
}

/// Sends raw bytes over one connection and returns the status line's code, if any.
async fn raw_status(app: &TestApp, request: Vec<u8>) -> Option<u16> {
    let port = app.port;
    actix_web::rt::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(&request).unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = String::from_utf8_lossy(&buf);
        head.strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
    })
    .await
    .unwrap()
}

#[actix_web::test]
async fn raw_http_oddities_never_reach_a_5xx() {
    let app = spawn_app().await;
    let token = |headers: &str, body: &str| {
        format!("POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}\r\n{body}")
            .into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
        (
            "a declared 1 GB body",
            token("Content-Length: 1073741824\r\n", ""),
            Some(413),
        ),
        (
            "a non-numeric Content-Length",
            token("Content-Length: abc\r\n", "{}"),
            Some(400),
        ),
        (
            "two different Content-Lengths",
            token("Content-Length: 2\r\nContent-Length: 3\r\n", "{}"),
            Some(400),
        ),
        (
            "Content-Length and chunked together",
            token(
                "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
            Some(400),
        ),
        (
            "a broken chunk size",
            token("Transfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n"),
            None,
        ),
        (
            "a NUL in a header",
            token("X-Test: a\0b\r\nContent-Length: 2\r\n", "{}"),
            Some(400),
        ),
        (
            "a header line without a colon",
            token("Nonsense\r\nContent-Length: 2\r\n", "{}"),
            Some(400),
        ),
        (
            "a request line of garbage",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n".to_vec(),
            None,
        ),
    ];
    for (what, request, expected) in cases {
        let status = raw_status(&app, request).await;
        match (status, expected) {
            (Some(got), Some(want)) => assert_eq!(got, want, "{what}"),
            (Some(got), None) => assert!((400..500).contains(&got), "{what}: {got}"),
            // The server may also just close the connection: fine, as long as it lives.
            (None, _) => assert!(expected.is_none(), "{what}: no answer"),
        }
    }
    let health = client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "the server survived");
}
