use latchkey::domain::Role;
use std::time::Duration;

use super::{csrf_of, html_page, location};
use crate::helpers::*;

#[actix_web::test]
async fn the_root_sends_visitors_to_the_dashboard() {
    let app = spawn_app().await;
    let response = app.get_page(&client(), "/").await;
    assert_eq!(response.status(), 303);
    assert_eq!(super::location(&response), "/dashboard");
}

#[actix_web::test]
async fn the_sign_in_form_is_labelled_has_a_csrf_token_and_the_security_headers() {
    let app = spawn_app().await;
    let response = app.get_page(&client(), "/login?next=/admin/users").await;
    let headers = response.headers().clone();
    let body = html_page(response, 200).await;
    for field in [
        r#"for="username""#,
        r#"id="username""#,
        r#"for="password""#,
        r#"id="password""#,
    ] {
        assert!(body.contains(field), "missing {field}");
    }
    assert!(!csrf_of(&body).is_empty());
    assert!(body.contains(r#"name="next" value="/admin/users""#));
    assert_eq!(
        headers["content-security-policy"],
        "default-src 'self'; frame-ancestors 'none'"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "same-origin");
    assert_eq!(headers["cache-control"], "no-store");
    let session = set_cookie(&headers, "lk_session").expect("a cookie session");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(!session.contains("Secure"), "{session}");
    // No inline script or style anywhere: the CSP would block them.
    assert!(!body.contains("<script") && !body.contains("style="));
}

#[actix_web::test]
async fn signing_in_sets_both_cookies_exactly_and_goes_to_next() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let client = client();
    let response = app
        .page_sign_in_as(&client, "alice", PASSWORD, "/admin/users?x=1")
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/users?x=1");
    let access = set_cookie(response.headers(), "lk_access")
        .unwrap()
        .to_owned();
    let refresh = set_cookie(response.headers(), "lk_refresh")
        .unwrap()
        .to_owned();
    let attributes = |c: &str| {
        let mut a: Vec<String> = c.split("; ").skip(1).map(str::to_owned).collect();
        a.sort();
        a
    };
    assert_eq!(
        attributes(&access),
        ["HttpOnly", "Max-Age=900", "Path=/", "SameSite=Lax"]
    );
    assert_eq!(
        attributes(&refresh),
        [
            "HttpOnly",
            "Max-Age=604800",
            "Path=/auth",
            "SameSite=Strict"
        ]
    );
    let dashboard = html_page(app.get_page(&client, "/dashboard").await, 200).await;
    assert!(dashboard.contains("alice"));
}

#[actix_web::test]
async fn cookies_are_secure_when_the_public_url_is_https() {
    let app = spawn_app_with(|s| {
        s.public_url = "https://id.example.com".into();
        s.secure_cookies = true;
    })
    .await;
    app.add_user("alice", Role::User);
    // reqwest keeps Secure cookies away from http://, so the test carries them by hand.
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(app.url("/login"))
        .send()
        .await
        .unwrap();
    assert!(set_cookie(response.headers(), "lk_session")
        .unwrap()
        .contains("; Secure"));
    let session = cookie_value(response.headers(), "lk_session").unwrap();
    let csrf = csrf_of(&response.text().await.unwrap());
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url("/login"))
        .header("cookie", format!("lk_session={session}"))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
            ("next", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    for name in ["lk_access", "lk_refresh", "lk_session"] {
        let cookie = set_cookie(response.headers(), name).unwrap();
        assert!(cookie.contains("; Secure"), "{cookie}");
    }
    assert!(response.headers().contains_key("strict-transport-security"));
}

#[actix_web::test]
async fn next_is_only_ever_a_local_path() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    for evil in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/\\/evil.example",
        " //evil.example",
        "\t/evil.example",
        "\n//evil.example",
        "/ /evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "evil.example",
    ] {
        let client = client();
        let response = app.page_sign_in_as(&client, "alice", PASSWORD, evil).await;
        assert_eq!(response.status(), 303, "{evil:?}");
        assert_eq!(location(&response), "/dashboard", "{evil:?}");
    }
    // The form itself never echoes a non-local next.
    let body = app
        .get_page(&client(), "/login?next=%2F%2Fevil.example")
        .await
        .text()
        .await
        .unwrap();
    assert!(body.contains(r#"name="next" value="/dashboard""#));
}

#[actix_web::test]
async fn wrong_passwords_and_unknown_users_get_the_same_401_page() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let disabled = app.add_user("carol", Role::User);
    app.cli(&["user", "disable", "carol"]);
    let _ = disabled;
    let mut messages = Vec::new();
    for (user, password) in [
        ("alice", "wrong password!"),
        ("nobody", PASSWORD),
        ("carol", PASSWORD),
    ] {
        let client = client();
        let response = app.page_sign_in_as(&client, user, password, "").await;
        assert!(set_cookie(response.headers(), "lk_access").is_none());
        let body = html_page(response, 401).await;
        assert!(body.contains("Wrong username or password."), "{body}");
        assert!(
            body.contains(&format!(r#"value="{user}""#)),
            "username kept"
        );
        assert!(!body.contains(password), "the password is never echoed");
        messages.push(body.matches("Wrong username or password.").count());
    }
    assert!(messages.iter().all(|n| *n == 1));
}

#[actix_web::test]
async fn a_locked_out_sign_in_gets_429_with_the_wait_time() {
    let app = spawn_app_with(|s| {
        s.login_max_failures = 2;
        s.login_lockout = Duration::from_secs(600);
    })
    .await;
    app.add_user("alice", Role::User);
    let client = client();
    for _ in 0..2 {
        let response = app
            .page_sign_in_as(&client, "alice", "wrong password!", "")
            .await;
        assert_eq!(response.status(), 401);
    }
    let response = app.page_sign_in_as(&client, "alice", PASSWORD, "").await;
    let retry_after: i64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&retry_after), "{retry_after}");
    let body = html_page(response, 429).await;
    assert!(
        body.contains("Too many failed sign-ins. Try again in 10 minutes."),
        "{body}"
    );
}

#[actix_web::test]
async fn a_sign_in_without_the_right_csrf_token_is_refused_with_a_403_page() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let client = client();
    app.login_csrf(&client).await;
    for token in [
        "",
        "forged-token",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let response = app
            .post_form(
                &client,
                "/login",
                &[
                    ("username", "alice"),
                    ("password", PASSWORD),
                    ("csrf_token", token),
                ],
            )
            .await;
        assert!(set_cookie(response.headers(), "lk_access").is_none());
        let body = html_page(response, 403).await;
        assert!(body.contains("This form has expired"), "{body}");
    }
    // A token from another browser's session does not work either.
    let other = app.login_csrf(&reqwest::Client::new()).await;
    let response = app
        .post_form(
            &client,
            "/login",
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("csrf_token", &other),
            ],
        )
        .await;
    assert_eq!(response.status(), 403);
    // No field at all.
    let response = app
        .post_form(
            &client,
            "/login",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(response.status(), 403);
}

#[actix_web::test]
async fn a_cross_site_post_is_refused_even_with_a_valid_token() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let client = client();
    let csrf = app.login_csrf(&client).await;
    let fields = [
        ("username", "alice"),
        ("password", PASSWORD),
        ("csrf_token", csrf.as_str()),
    ];
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let response = client
            .post(app.url("/login"))
            .header(header, value)
            .form(&fields)
            .send()
            .await
            .unwrap();
        html_page(response, 403).await;
    }
    let response = client
        .post(app.url("/login"))
        .header("origin", app.address.as_str())
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
}

#[actix_web::test]
async fn signing_out_revokes_this_session_and_clears_the_cookies() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let client = client();
    let response = app.page_sign_in_as(&client, "alice", PASSWORD, "").await;
    let access = cookie_value(response.headers(), "lk_access").unwrap();
    let csrf = app.page_csrf(&client, "/dashboard").await;
    let response = app
        .post_form(&client, "/logout", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/login");
    for name in ["lk_access", "lk_refresh"] {
        let cookie = set_cookie(response.headers(), name).unwrap();
        assert!(cookie.contains("Max-Age=0"), "{cookie}");
    }
    assert!(set_cookie(response.headers(), "lk_refresh")
        .unwrap()
        .contains("Path=/auth"));
    assert_eq!(
        error_code(app.get_bearer("/api/me", &access).await).await,
        (401, "session_revoked".into())
    );
    let body = html_page(app.get_page(&client, "/login").await, 200).await;
    assert!(body.contains("You have signed out."));
}

#[actix_web::test]
async fn signing_out_works_after_the_access_cookie_has_gone() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let client = client();
    let response = app.page_sign_in_as(&client, "alice", PASSWORD, "").await;
    let access = cookie_value(response.headers(), "lk_access").unwrap();
    let session = cookie_value(response.headers(), "lk_session").unwrap();
    let csrf = app.page_csrf(&client, "/dashboard").await;
    // Only the cookie session is sent, as when lk_access has expired in the browser.
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url("/logout"))
        .header("cookie", format!("lk_session={session}"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        error_code(app.get_bearer("/api/me", &access).await).await,
        (401, "session_revoked".into())
    );
}

#[actix_web::test]
async fn a_page_without_a_valid_access_cookie_goes_through_the_renew_flow() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let signed_in = client();
    let response = app.page_sign_in_as(&signed_in, "alice", PASSWORD, "").await;
    let refresh = cookie_value(response.headers(), "lk_refresh").unwrap();
    let bare = || {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    };

    // No access cookie: off to /auth/renew, keeping the page and its query.
    let response = bare()
        .get(app.url("/admin/sessions?user=alice"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        location(&response),
        "/auth/renew?next=/admin/sessions%3Fuser%3Dalice"
    );

    // With a live refresh token the renew rotates it and returns to the page...
    let response = bare()
        .get(app.url("/auth/renew?next=/dashboard"))
        .header("cookie", format!("lk_refresh={refresh}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/dashboard");
    let access = cookie_value(response.headers(), "lk_access").unwrap();
    assert_ne!(
        cookie_value(response.headers(), "lk_refresh").unwrap(),
        refresh
    );
    let response = bare()
        .get(app.url("/dashboard"))
        .header("cookie", format!("lk_access={access}"))
        .send()
        .await
        .unwrap();
    assert!(html_page(response, 200).await.contains("alice"));

    // ...and without one (here: the old, rotated token after its grace) it ends at the form.
    let response = bare()
        .get(app.url("/auth/renew?next=/dashboard"))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&response), "/login?next=/dashboard");

    // A tampered access cookie is treated like a missing one.
    let response = bare()
        .get(app.url("/dashboard"))
        .header("cookie", "lk_access=not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(location(&response), "/auth/renew?next=/dashboard");
}

#[actix_web::test]
async fn someone_signed_in_who_opens_the_form_goes_straight_on() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let client = app.page_client("alice").await;
    let response = app.get_page(&client, "/login?next=/dashboard").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/dashboard");
}

#[actix_web::test]
async fn malformed_forms_get_html_4xx_pages_never_500() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let client = client();
    let csrf = app.login_csrf(&client).await;
    // JSON instead of a form: no readable csrf_token field, so the CSRF refusal.
    let response = client
        .post(app.url("/login"))
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD, "csrf_token": csrf}))
        .send()
        .await
        .unwrap();
    html_page(response, 403).await;
    // No body at all.
    let response = client.post(app.url("/logout")).send().await.unwrap();
    html_page(response, 403).await;
    // Over 16 KiB.
    let big = "x".repeat(20 * 1024);
    let response = app
        .post_form(
            &client,
            "/login",
            &[("username", &big), ("csrf_token", &csrf)],
        )
        .await;
    html_page(response, 413).await;
    // A duplicated field.
    let response = client
        .post(app.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrf_token={csrf}&csrf_token={csrf}&username=alice"
        ))
        .send()
        .await
        .unwrap();
    html_page(response, 400).await;
    // Not UTF-8.
    let response = client
        .post(app.url("/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf_token={csrf}&username=%FF%FE&password=x"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error(), "{}", response.status());
    // A malformed query string on a page.
    let response = app.get_page(&client, "/login?next=a&next=b").await;
    html_page(response, 400).await;
    // Wrong method on a page route.
    let response = app.get_page(&client, "/logout").await;
    html_page(response, 405).await;
}

#[actix_web::test]
async fn unknown_pages_are_html_404s_but_the_api_stays_json() {
    let app = spawn_app().await;
    let body = html_page(app.get_page(&client(), "/no/such/page").await, 404).await;
    assert!(body.contains("Page not found"));
    html_page(app.get_page(&client(), "/admin/nothing").await, 404).await;
    let response = app.get_page(&client(), "/api/nothing").await;
    assert_eq!(error_code(response).await, (404, "not_found".into()));
    let response = app.get_page(&client(), "/auth/nothing").await;
    assert_eq!(error_code(response).await, (404, "not_found".into()));
}

#[actix_web::test]
async fn the_stylesheet_is_served_by_the_binary_and_cached_by_version() {
    let app = spawn_app().await;
    let body = app
        .get_page(&client(), "/login")
        .await
        .text()
        .await
        .unwrap();
    let start = body.find("/static/app.css?v=").unwrap();
    let href = body[start..].split('"').next().unwrap().to_owned();
    let response = app.get_page(&client(), &href).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/css; charset=utf-8"
    );
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(response.text().await.unwrap().contains(":focus-visible"));
    let response = app.get_page(&client(), "/static/app.css?v=old").await;
    assert_eq!(response.headers()["cache-control"], "no-cache");
    html_page(app.get_page(&client(), "/static/nope.js").await, 404).await;
}

#[actix_web::test]
async fn a_form_from_one_instance_posts_to_another_on_the_same_database() {
    let first = spawn_app().await;
    first.add_user("alice", Role::User);
    let second = spawn_on_same_db(&first, |_| {}).await;
    let response = client().get(first.url("/login")).send().await.unwrap();
    let session = cookie_value(response.headers(), "lk_session").unwrap();
    let csrf = csrf_of(&response.text().await.unwrap());
    // The same cookie session is accepted by the second instance (and after a restart).
    let response = client()
        .post(second.url("/login"))
        .header("cookie", format!("lk_session={session}"))
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/dashboard");
    // A cookie session forged without the key is not.
    let response = client()
        .post(second.url("/login"))
        .header("cookie", "lk_session=forged")
        .form(&[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    html_page(response, 403).await;
}

#[actix_web::test]
async fn with_two_step_sign_in_the_password_leads_to_the_code_step() {
    let app = spawn_app().await;
    let id = app.add_user("alice", Role::User);
    let (secret, codes) = enroll_totp(&app, id);
    let browser = client();
    let step_one = app
        .page_sign_in_as(&browser, "alice", PASSWORD, "/dashboard?tab=1")
        .await;
    assert!(
        set_cookie(step_one.headers(), "lk_access").is_none(),
        "no tokens yet"
    );
    let body = html_page(step_one, 200).await;
    assert!(
        body.contains(r#"id="otp""#) && body.contains("Two-step sign-in"),
        "{body}"
    );
    let csrf = csrf_of(&body);
    let code_step = |otp: String| {
        let csrf = csrf.clone();
        let browser = browser.clone();
        let app = &app;
        async move {
            app.post_form(
                &browser,
                "/login",
                &[
                    ("otp", &otp),
                    ("csrf_token", &csrf),
                    ("next", "/dashboard?tab=1"),
                ],
            )
            .await
        }
    };
    let wrong = code_step("000000".into()).await;
    let body = html_page(wrong, 401).await;
    assert!(body.contains("not right") && body.contains(r#"id="otp""#));

    let (code, _) = totp_now(&secret);
    let signed_in = code_step(code).await;
    assert_eq!(signed_in.status(), 303);
    assert_eq!(location(&signed_in), "/dashboard?tab=1");
    let access = cookie_value(signed_in.headers(), "lk_access").expect("the access cookie");
    assert_eq!(app.me(&access).await["username"], "alice");
    let verify = app.get_bearer("/api/verify", &access).await;
    assert_eq!(verify.headers()["x-latchkey-amr"], "pwd,otp");

    // The pending step ended with the sign-in: a code alone signs nobody in.
    let stranger = client();
    let csrf = app.login_csrf(&stranger).await;
    let alone = app
        .post_form(
            &stranger,
            "/login",
            &[("otp", &codes[0]), ("csrf_token", &csrf), ("next", "")],
        )
        .await;
    assert_eq!(alone.status(), 401);
    assert!(set_cookie(alone.headers(), "lk_access").is_none());
}

#[actix_web::test]
async fn a_wrong_password_on_an_account_with_a_second_factor_looks_like_any_other() {
    let app = spawn_app().await;
    let id = app.add_user("alice", Role::User);
    enroll_totp(&app, id);
    let response = app
        .page_sign_in_as(&client(), "alice", "not the password", "")
        .await;
    let body = html_page(response, 401).await;
    assert!(body.contains("Wrong username or password.") && !body.contains(r#"id="otp""#));
}
