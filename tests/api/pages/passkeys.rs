//! Passkeys on the pages, without a browser: where they are offered and where the pages
//! say why not, and every refusal of the ceremony endpoints. The ceremonies themselves
//! run in a real browser with a virtual authenticator (`browser.rs`).

use latchkey::domain::{PasskeyId, Role, UserId};
use latchkey::store::Actor;
use serde_json::{json, Value};

use super::{html_page, location};
use crate::helpers::*;

/// A passkey row as a registration leaves it (the record is not read by these tests).
fn add_passkey(app: &TestApp, user_id: UserId, name: &str) -> PasskeyId {
    latchkey::store::passkeys::add(
        &mut app.conn(),
        latchkey::clock::now(),
        user_id,
        format!("credential of {name}").as_bytes(),
        name,
        "{}",
        &Actor::cli(),
    )
    .unwrap()
}

async fn post_json(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let response = client.post(app.url(path)).json(&body).send().await.unwrap();
    let status = response.status().as_u16();
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{path}: {status}"
    );
    (status, response.json().await.unwrap())
}

#[actix_web::test]
async fn on_an_ip_address_the_pages_say_why_passkeys_are_not_offered() {
    let app = spawn_app().await;
    assert!(app.address.starts_with("http://127.0.0.1:"));
    app.add_user("alice", Role::User);
    let client = client();
    let login = html_page(app.get_page(&client, "/login").await, 200).await;
    assert!(login.contains(r#"id="passkeys-unavailable""#), "{login}");
    assert!(login.contains("IP address"), "{login}");
    assert!(!login.contains("passkey-sign-in-button"), "{login}");
    assert!(
        !login.contains("<script"),
        "no script where it cannot work: {login}"
    );
    let csrf = super::csrf_of(&login);
    let (status, body) = post_json(
        &app,
        &client,
        "/login/passkey/start",
        json!({"csrf_token": csrf}),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(
        body["message"].as_str().unwrap().contains("IP address"),
        "{body}"
    );

    let alice = app.page_client("alice").await;
    let dashboard = html_page(app.get_page(&alice, "/dashboard").await, 200).await;
    assert!(
        dashboard.contains(r#"id="passkeys-unavailable""#),
        "{dashboard}"
    );
    assert!(
        !dashboard.contains("passkey-register-button"),
        "{dashboard}"
    );
}

#[actix_web::test]
async fn on_a_host_name_passkeys_are_offered_by_one_same_origin_script() {
    let app = spawn_app_on_localhost(None, |_| {}).await;
    let client = client();
    let response = app.get_page(&client, "/login").await;
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let login = html_page(response, 200).await;
    assert!(login.contains("Sign in with a passkey"), "{login}");
    // The block is hidden until the script shows it: without JavaScript, only the form.
    assert!(
        login.contains(r#"id="passkey-sign-in" class="stack" hidden"#),
        "{login}"
    );
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let scripts: Vec<&str> = login.split("<script").skip(1).collect();
    assert_eq!(scripts.len(), 1, "one script: {login}");
    let src = scripts[0]
        .split(r#"src=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a script from a URL, not inline");
    assert!(src.starts_with("/static/passkeys.js?v="), "{src}");
    let script = app.get_page(&client, src).await;
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script
        .text()
        .await
        .unwrap()
        .contains("navigator.credentials.get"));
}

#[actix_web::test]
async fn the_ceremony_endpoints_refuse_bad_requests_with_json_errors() {
    let app = spawn_app_on_localhost(None, |_| {}).await;
    app.add_user("alice", Role::User);
    let client = client();
    let csrf = app.login_csrf(&client).await;
    for (path, body, status, code) in [
        (
            "/login/passkey/start",
            json!({"csrf_token": "wrong"}),
            403,
            "forbidden",
        ),
        ("/login/passkey/start", json!({}), 400, "invalid_request"),
        (
            "/login/passkey/start",
            json!([1, 2]),
            400,
            "invalid_request",
        ),
        // No ceremony was started in this cookie session.
        (
            "/login/passkey/finish",
            json!({"csrf_token": csrf, "credential": {}}),
            400,
            "invalid_request",
        ),
    ] {
        let (got, answer) = post_json(&app, &client, path, body.clone()).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(code)),
            "{path} {body}: {answer}"
        );
    }
    let text = client
        .post(app.url("/login/passkey/start"))
        .body("csrf_token=x")
        .header("content-type", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), 415);

    // Started, then answered with something that is no WebAuthn answer at all.
    let (status, options) = post_json(
        &app,
        &client,
        "/login/passkey/start",
        json!({"csrf_token": csrf}),
    )
    .await;
    assert_eq!(status, 200, "{options}");
    assert_eq!(options["publicKey"]["userVerification"], "required");
    assert_eq!(options["publicKey"]["rpId"], "localhost");
    let junk = json!({"csrf_token": csrf, "credential": {"id": "x", "type": "public-key"}});
    let (status, answer) = post_json(&app, &client, "/login/passkey/finish", junk).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_request")),
        "{answer}"
    );

    let alice = app.page_client("alice").await;
    let csrf = app.page_csrf(&alice, "/dashboard").await;
    for name in ["", "   ", &"x".repeat(65), "tab\tname"] {
        let body = json!({"csrf_token": csrf, "name": name});
        let (status, answer) =
            post_json(&app, &alice, "/account/passkeys/register/start", body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_request")),
            "{name:?}"
        );
    }
    let body = json!({"csrf_token": csrf, "name": "laptop"});
    let (status, options) = post_json(&app, &alice, "/account/passkeys/register/start", body).await;
    assert_eq!(status, 200, "{options}");
    let selection = &options["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required");
    assert_eq!(selection["userVerification"], "required");
    assert_eq!(options["publicKey"]["user"]["name"], "alice");
    let junk = json!({"csrf_token": csrf, "credential": {"id": "x"}});
    let (status, answer) = post_json(
        &app,
        &alice,
        "/account/passkeys/register/finish",
        junk.clone(),
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // The ceremony was used up by that answer.
    let (status, _) = post_json(&app, &alice, "/account/passkeys/register/finish", junk).await;
    assert_eq!(status, 400);
    // Registering needs a signed-in page: without a (fresh) access cookie the answer is
    // JSON the script acts on (it reloads the page, which renews the sign-in).
    let body = json!({"csrf_token": csrf, "name": "x"});
    let (status, answer) = post_json(&app, &client, "/account/passkeys/register/start", body).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (401, Some("invalid_token")),
        "{answer}"
    );
}

#[actix_web::test]
async fn an_account_at_the_passkey_limit_is_told_before_the_prompt() {
    let app = spawn_app_on_localhost(None, |_| {}).await;
    let id = app.add_user("alice", Role::User);
    for n in 0..latchkey::store::passkeys::MAX_PER_USER {
        add_passkey(&app, id, &format!("key {n}"));
    }
    let alice = app.page_client("alice").await;
    let csrf = app.page_csrf(&alice, "/dashboard").await;
    let body = json!({"csrf_token": csrf, "name": "one more"});
    let (status, answer) = post_json(&app, &alice, "/account/passkeys/register/start", body).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (409, Some("conflict")),
        "{answer}"
    );
    assert!(
        answer["message"].as_str().unwrap().contains("at most 20"),
        "{answer}"
    );
}

#[actix_web::test]
async fn a_signature_counter_is_only_moved_forward_from_the_record_that_was_verified() {
    use latchkey::store::passkeys;
    let app = spawn_app_on_localhost(None, |_| {}).await;
    let user = app.add_user("alice", Role::User);
    let id = add_passkey(&app, user, "laptop");
    let now = latchkey::clock::now();
    let mut conn = app.conn();
    // Two sign-ins verified against the same record ("{}"): the first moves it on, the
    // second, now stale, must not put an older counter back.
    assert!(passkeys::used(&mut conn, now, id, "{}", Some(r#"{"counter":2}"#)).unwrap());
    assert!(!passkeys::used(&mut conn, now, id, "{}", Some(r#"{"counter":1}"#)).unwrap());
    let row = &passkeys::of_user(&mut conn, user).unwrap()[0];
    assert_eq!(row.passkey, r#"{"counter":2}"#);
    assert_eq!(row.last_used_at, Some(now));
    // A passkey removed meanwhile is not used either.
    assert!(!passkeys::used(&mut conn, now, PasskeyId(id.0 + 1000), "{}", None).unwrap());
}

#[actix_web::test]
async fn removing_a_passkey_needs_the_password_and_ones_own_passkey() {
    let app = spawn_app_on_localhost(None, |_| {}).await;
    let alice_id = app.add_user("alice", Role::User);
    let bob_id = app.add_user("bob", Role::User);
    let laptop = add_passkey(&app, alice_id, "laptop");
    let bobs = add_passkey(&app, bob_id, "phone");
    let alice = app.page_client("alice").await;
    let dashboard = html_page(app.get_page(&alice, "/dashboard").await, 200).await;
    assert!(
        dashboard.contains("laptop") && !dashboard.contains("phone"),
        "{dashboard}"
    );
    let csrf = super::csrf_of(&dashboard);

    let remove = |id: String, password: &'static str| {
        let (alice, csrf) = (alice.clone(), csrf.clone());
        let url = app.url(&format!("/account/passkeys/{id}/remove"));
        async move {
            alice
                .post(url)
                .form(&[("csrf_token", csrf.as_str()), ("password", password)])
                .send()
                .await
                .unwrap()
        }
    };
    let wrong = remove(laptop.to_string(), "not the password").await;
    assert_eq!(location(&wrong), "/dashboard");
    let dashboard = html_page(app.get_page(&alice, "/dashboard").await, 200).await;
    assert!(dashboard.contains("the passkey was kept"), "{dashboard}");
    assert!(dashboard.contains("laptop"));
    for id in [
        bobs.to_string(),
        "999999".into(),
        "nope".into(),
        "-1".into(),
    ] {
        html_page(remove(id, PASSWORD).await, 404).await;
    }
    let done = remove(laptop.to_string(), PASSWORD).await;
    assert_eq!(location(&done), "/dashboard");
    let dashboard = html_page(app.get_page(&alice, "/dashboard").await, 200).await;
    assert!(dashboard.contains("Passkey removed."), "{dashboard}");
    assert!(!dashboard.contains("passkey-list"), "{dashboard}");
    let audit = String::from_utf8(app.cli(&["audit", "list", "--user", "alice"]).stdout).unwrap();
    assert!(audit.contains("passkey_removed"), "{audit}");
    // Bob's is untouched.
    let bob = app.page_client("bob").await;
    let dashboard = html_page(app.get_page(&bob, "/dashboard").await, 200).await;
    assert!(dashboard.contains("phone"), "{dashboard}");
}

#[actix_web::test]
async fn admins_see_passkey_counts_and_a_reset_removes_them() {
    let app = spawn_app_on_localhost(None, |_| {}).await;
    app.add_user("root", Role::Admin);
    let alice_id = app.add_user("alice", Role::User);
    let bob_id = app.add_user("bob", Role::User);
    add_passkey(&app, alice_id, "laptop");
    add_passkey(&app, alice_id, "phone");
    add_passkey(&app, bob_id, "key");
    let admin = app.page_client("root").await;
    let users = html_page(app.get_page(&admin, "/admin/users").await, 200).await;
    let row_of = |html: &str, name: &str| {
        html.split("<tr")
            .find(|row| row.contains(&format!(">{name}<")))
            .unwrap_or_else(|| panic!("no row for {name}: {html}"))
            .to_owned()
    };
    assert!(
        row_of(&users, "alice").contains(r#"data-label="Passkeys">2<"#),
        "{users}"
    );
    assert!(
        row_of(&users, "bob").contains(r#"data-label="Passkeys">1<"#),
        "{users}"
    );
    // Passkeys alone offer the reset.
    assert!(row_of(&users, "alice").contains("/reset-mfa"), "{users}");

    let csrf = super::csrf_of(&users);
    let reset = admin
        .post(app.url(&format!("/admin/users/{alice_id}/reset-mfa")))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 303);
    let users = html_page(app.get_page(&admin, "/admin/users").await, 200).await;
    assert!(
        !row_of(&users, "alice").contains(r#"data-label="Passkeys">2<"#),
        "{users}"
    );
    assert!(!row_of(&users, "alice").contains("/reset-mfa"), "{users}");

    let out = app.cli(&["user", "reset-mfa", "bob"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed two-step sign-in"));
    let left: Vec<_> = latchkey::store::passkeys::of_user(&mut app.conn(), bob_id).unwrap();
    assert!(left.is_empty());
    let audit = String::from_utf8(app.cli(&["audit", "list", "--user", "bob"]).stdout).unwrap();
    assert!(audit.contains("mfa_reset"), "{audit}");
}

#[actix_web::test]
async fn one_client_cannot_pile_up_pending_ceremonies() {
    let app = spawn_app_on_localhost(None, |s| {
        s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]
    })
    .await;
    let client = client();
    let csrf = app.login_csrf(&client).await;
    let start = |from: &'static str| {
        let request = client
            .post(app.url("/login/passkey/start"))
            .header("X-Forwarded-For", from)
            .json(&json!({"csrf_token": csrf}));
        async move { request.send().await.unwrap() }
    };
    for _ in 0..latchkey::store::passkeys::PENDING_PER_IP {
        assert_eq!(start("203.0.113.7").await.status(), 200);
    }
    let refused = start("203.0.113.7").await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "too_many_attempts");
    // Another client is not held up by it.
    assert_eq!(start("203.0.113.8").await.status(), 200);
}
