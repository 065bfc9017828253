use crate::helpers::*;

#[actix_web::test]
async fn unknown_api_and_auth_routes_are_json_404() {
    let app = spawn_app().await;
    for path in ["/api/nope", "/auth/nope", "/api/admin/nope", "/api"] {
        let response = client().get(app.url(path)).send().await.unwrap();
        assert_eq!(
            error_code(response).await,
            (404, "not_found".into()),
            "{path}"
        );
    }
}

#[actix_web::test]
async fn wrong_methods_are_json_405() {
    let app = spawn_app().await;
    let response = client().get(app.url("/auth/token")).send().await.unwrap();
    assert_eq!(
        error_code(response).await,
        (405, "method_not_allowed".into())
    );
    let response = client().post(app.url("/api/me")).send().await.unwrap();
    assert_eq!(
        error_code(response).await,
        (405, "method_not_allowed".into())
    );
}

#[actix_web::test]
async fn bodies_over_16_kib_are_413() {
    let app = spawn_app().await;
    let big = format!(
        r#"{{"username":"alice","password":"{}"}}"#,
        "x".repeat(17 * 1024)
    );
    let response = client()
        .post(app.url("/auth/token"))
        .header("content-type", "application/json")
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (413, "payload_too_large".into())
    );
    // The same without a Content-Length (chunked).
    let stream = futures_stream(big);
    let response = client()
        .post(app.url("/auth/token"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (413, "payload_too_large".into())
    );
}

#[actix_web::test]
async fn large_bodies_are_413_even_where_no_body_is_read() {
    let app = spawn_app().await;
    for path in ["/auth/refresh", "/auth/logout", "/api/nope"] {
        let response = client()
            .post(app.url(path))
            .body(vec![b'x'; 20 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(response).await,
            (413, "payload_too_large".into()),
            "{path}"
        );
    }
}

fn futures_stream(
    body: String,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    struct Chunks(Vec<Vec<u8>>);
    impl futures_core::Stream for Chunks {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(if self.0.is_empty() {
                None
            } else {
                Some(Ok(self.0.remove(0)))
            })
        }
    }
    Chunks(body.into_bytes().chunks(4096).map(<[u8]>::to_vec).collect())
}

#[actix_web::test]
async fn health_and_security_headers() {
    let app = spawn_app().await;
    let response = client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'self'; frame-ancestors 'none'"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert!(
        headers.get("strict-transport-security").is_none(),
        "no HSTS on http"
    );

    let https = spawn_app_with(|s| {
        s.public_url = "https://auth.example".into();
        s.secure_cookies = true;
    })
    .await;
    let response = client().get(https.url("/healthz")).send().await.unwrap();
    assert!(response
        .headers()
        .get("strict-transport-security")
        .is_some());
}

#[actix_web::test]
async fn the_root_redirects_to_the_dashboard() {
    let app = spawn_app().await;
    let response = client().get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/dashboard");
}

#[actix_web::test]
async fn health_is_503_when_the_database_cannot_answer() {
    let app = spawn_app().await;
    // Hold every pooled connection: the server's next query times out (5 s).
    let held: Vec<_> = (0..8).map(|_| app.db.reader().unwrap()).collect();
    let response = client().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    drop(held);
    assert_eq!(
        client()
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[actix_web::test]
async fn head_is_answered_like_get_without_a_body() {
    let app = spawn_app().await;
    for (path, status, content_type) in [
        ("/healthz", 200, "application/json"),
        ("/.well-known/jwks.json", 200, "application/json"),
        ("/login", 200, "text/html"),
        ("/api/me", 401, "application/json"),
        ("/auth/token", 405, "application/json"),
    ] {
        let get = client().get(app.url(path)).send().await.unwrap();
        let head = client().head(app.url(path)).send().await.unwrap();
        assert_eq!(head.status(), status, "{path}");
        assert_eq!(get.status(), status, "{path}");
        let type_of =
            |r: &reqwest::Response| r.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(type_of(&head).starts_with(content_type), "{path}");
        assert_eq!(type_of(&head), type_of(&get), "{path}");
        let length = head.headers().get("content-length").cloned();
        let get_body = get.bytes().await.unwrap();
        if !path.starts_with("/login") {
            assert_eq!(
                length.unwrap(),
                get_body.len().to_string().as_str(),
                "{path}"
            );
        }
        assert!(head.bytes().await.unwrap().is_empty(), "{path}: no body");
    }
    // GET /auth/renew rotates the refresh token: HEAD must not.
    let renew = client().head(app.url("/auth/renew")).send().await.unwrap();
    assert_eq!(renew.status(), 405);
    assert!(renew.headers().get("set-cookie").is_none());
}
