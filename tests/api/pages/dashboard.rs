use latchkey::domain::Role;

use super::{html_page, location};
use crate::helpers::*;

const FIREFOX: &str =
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

fn browser(user_agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .build()
        .unwrap()
}

async fn sign_in_with(app: &TestApp, client: &reqwest::Client, user: &str) {
    let response = app.page_sign_in_as(client, user, PASSWORD, "").await;
    assert_eq!(response.status(), 303);
}

/// Session ids listed in a page's sign-out forms.
fn revoke_ids(html: &str, prefix: &str) -> Vec<String> {
    html.split(&format!(r#"action="{prefix}"#))
        .skip(1)
        .map(|rest| rest.split('/').next().unwrap().to_owned())
        .filter(|id| id.bytes().all(|b| b.is_ascii_digit()))
        .collect()
}

#[actix_web::test]
async fn the_dashboard_shows_who_you_are_and_your_sessions_with_this_one_marked() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    app.add_user("bob", Role::User);
    let phone = browser("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1");
    sign_in_with(&app, &phone, "alice").await;
    app.page_client("bob").await;
    let laptop = browser(FIREFOX);
    sign_in_with(&app, &laptop, "alice").await;

    let response = app.get_page(&laptop, "/dashboard").await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = html_page(response, 200).await;
    assert!(
        body.contains("Signed in as <strong>alice</strong>"),
        "{body}"
    );
    assert!(body.contains(r#"<span class="badge badge-user">user</span>"#));
    assert!(body.contains("Firefox 133 on Linux"));
    assert!(body.contains("Safari 18 on iOS"));
    assert!(body.contains("IP 127.0.0.1"));
    assert!(body.contains("just now"));
    assert_eq!(body.matches("This device").count(), 1);
    let this_one = body.find("This device").unwrap();
    assert!(body[..this_one].rfind("Firefox 133").is_some());
    assert_eq!(
        revoke_ids(&body, "/sessions/").len(),
        2,
        "bob's session is not listed"
    );
    assert!(body.contains("Sign out everywhere else"));
}

#[actix_web::test]
async fn a_user_signs_out_another_of_their_sessions() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let other = app.page_client("alice").await;
    let me = app.page_client("alice").await;
    let body = html_page(app.get_page(&me, "/dashboard").await, 200).await;
    let csrf = super::csrf_of(&body);
    let ids = revoke_ids(&body, "/sessions/");
    // The newest (mine) comes first.
    let other_id = &ids[1];
    let response = app
        .post_form(
            &me,
            &format!("/sessions/{other_id}/revoke"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/dashboard");
    let body = html_page(app.get_page(&me, "/dashboard").await, 200).await;
    assert!(body.contains("Session signed out."));
    assert_eq!(revoke_ids(&body, "/sessions/").len(), 1);
    // The other browser is sent through renew, which fails, to the sign-in form.
    let response = app.get_page(&other, "/dashboard").await;
    assert_eq!(location(&response), "/auth/renew?next=/dashboard");
    let response = app.get_page(&other, "/auth/renew?next=/dashboard").await;
    assert_eq!(location(&response), "/login?next=/dashboard");
}

#[actix_web::test]
async fn signing_out_this_session_from_the_list_signs_you_out() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let me = app.page_client("alice").await;
    let body = html_page(app.get_page(&me, "/dashboard").await, 200).await;
    let id = &revoke_ids(&body, "/sessions/")[0];
    let response = app
        .post_form(
            &me,
            &format!("/sessions/{id}/revoke"),
            &[("csrf_token", &super::csrf_of(&body))],
        )
        .await;
    assert_eq!(location(&response), "/login");
    assert!(set_cookie(response.headers(), "lk_access")
        .unwrap()
        .contains("Max-Age=0"));
}

#[actix_web::test]
async fn sign_out_everywhere_else_keeps_only_this_session() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let first = app.sign_in(&client(), "alice").await;
    let second = app.sign_in(&client(), "alice").await;
    let me = app.page_client("alice").await;
    let csrf = app.page_csrf(&me, "/dashboard").await;
    let response = app
        .post_form(&me, "/sessions/revoke-others", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(location(&response), "/dashboard");
    for token in [first, second] {
        assert_eq!(
            error_code(app.get_bearer("/api/me", &token).await).await,
            (401, "session_revoked".into())
        );
    }
    let body = html_page(app.get_page(&me, "/dashboard").await, 200).await;
    assert!(body.contains("Signed out 2 other sessions."), "{body}");
    assert!(!body.contains("Sign out everywhere else"));
}

#[actix_web::test]
async fn nobody_signs_out_another_users_session_or_posts_without_a_token() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    app.add_user("bob", Role::User);
    let bob_access = app.sign_in(&client(), "bob").await;
    let bob_session = app.session_id(&bob_access).await;
    let alice = app.page_client("alice").await;
    let csrf = app.page_csrf(&alice, "/dashboard").await;
    let response = app
        .post_form(
            &alice,
            &format!("/sessions/{bob_session}/revoke"),
            &[("csrf_token", &csrf)],
        )
        .await;
    html_page(response, 404).await;
    for bad in ["abc", "0", "-1", "99999999999999999999"] {
        let response = app
            .post_form(
                &alice,
                &format!("/sessions/{bad}/revoke"),
                &[("csrf_token", &csrf)],
            )
            .await;
        html_page(response, 404).await;
    }
    let response = app
        .post_form(
            &alice,
            "/sessions/revoke-others",
            &[("csrf_token", "wrong")],
        )
        .await;
    html_page(response, 403).await;
    assert_eq!(app.me(&bob_access).await["username"], "bob");
}

#[actix_web::test]
async fn a_form_post_with_an_expired_access_cookie_renews_and_returns_to_its_page() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let me = app.page_client("alice").await;
    let csrf = app.page_csrf(&me, "/dashboard").await;
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url("/sessions/revoke-others"))
        .header("referer", app.url("/dashboard?from=form"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        location(&response),
        "/auth/renew?next=/dashboard%3Ffrom%3Dform"
    );
    let response = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url("/sessions/revoke-others"))
        .header("referer", "https://evil.example/dashboard")
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&response), "/auth/renew?next=/dashboard");
}

#[actix_web::test]
async fn changing_the_password_needs_the_current_one_and_signs_out_other_sessions() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let other = app.sign_in(&client(), "alice").await;
    let me = app.page_client("alice").await;
    let csrf = app.page_csrf(&me, "/dashboard").await;
    let new = "a much better passphrase";

    for (current, new_password, confirm, message) in [
        (
            "wrong password!",
            new,
            new,
            "Your current password is not correct.",
        ),
        (PASSWORD, new, "something else", "differ"),
        (PASSWORD, "short", "short", "8 to 1024 characters"),
        (PASSWORD, "12345678", "12345678", "most common passwords"),
    ] {
        let response = app
            .post_form(
                &me,
                "/account/password",
                &[
                    ("csrf_token", csrf.as_str()),
                    ("current_password", current),
                    ("new_password", new_password),
                    ("confirm_password", confirm),
                ],
            )
            .await;
        let body = html_page(response, 400).await;
        assert!(body.contains(message), "{message}: {body}");
    }
    assert_eq!(app.me(&other).await["username"], "alice");

    let response = app
        .post_form(
            &me,
            "/account/password",
            &[
                ("csrf_token", csrf.as_str()),
                ("current_password", PASSWORD),
                ("new_password", new),
                ("confirm_password", new),
            ],
        )
        .await;
    assert_eq!(location(&response), "/dashboard");
    let body = html_page(app.get_page(&me, "/dashboard").await, 200).await;
    assert!(body.contains("Password changed."));
    assert_eq!(
        error_code(app.get_bearer("/api/me", &other).await).await,
        (401, "session_revoked".into())
    );
    assert_eq!(
        app.post_token(&client(), "alice", PASSWORD).await.status(),
        401
    );
    assert_eq!(app.post_token(&client(), "alice", new).await.status(), 200);
}

#[actix_web::test]
async fn guessing_the_current_password_on_the_change_form_hits_the_lockout() {
    let app = spawn_app_with(|s| s.login_max_failures = 2).await;
    app.add_user("alice", Role::User);
    let me = app.page_client("alice").await;
    let csrf = app.page_csrf(&me, "/dashboard").await;
    let attempt = |current: &'static str| {
        let (app, me, csrf) = (&app, &me, csrf.clone());
        async move {
            let new = "a much better passphrase";
            app.post_form(
                me,
                "/account/password",
                &[
                    ("csrf_token", csrf.as_str()),
                    ("current_password", current),
                    ("new_password", new),
                    ("confirm_password", new),
                ],
            )
            .await
        }
    };
    for _ in 0..2 {
        html_page(attempt("wrong guess 123").await, 400).await;
    }
    let body = html_page(attempt(PASSWORD).await, 429).await;
    assert!(
        body.contains("Too many wrong passwords. Try again in 15 minutes."),
        "{body}"
    );
    assert_eq!(
        app.post_token(&client(), "alice", PASSWORD).await.status(),
        429
    );
}
