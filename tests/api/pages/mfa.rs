//! Two-step sign-in on the dashboard: set up with the server-drawn QR code's secret and a
//! current code, recovery codes shown once, new codes and turning it off with the
//! password and a code.

use latchkey::domain::Role;
use latchkey::mfa::totp::Secret;
use serde_json::json;

use super::{csrf_of, html_page, location};
use crate::helpers::*;

/// The text between `start` and the next `<`.
fn text_after<'a>(html: &'a str, start: &str) -> &'a str {
    let from = html
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {html}"))
        + start.len();
    html[from..].split('<').next().unwrap()
}

fn recovery_codes_of(html: &str) -> Vec<String> {
    let list = &html[html.find(r#"id="recovery-codes""#).expect("the codes")..];
    let list = &list[..list.find("</ol>").unwrap()];
    list.split("<code>")
        .skip(1)
        .map(|c| c.split('<').next().unwrap().to_owned())
        .collect()
}

async fn api_sign_in(app: &TestApp, otp: Option<&str>) -> u16 {
    let mut body = json!({"username": "alice", "password": PASSWORD});
    if let Some(otp) = otp {
        body["otp"] = otp.into();
    }
    client()
        .post(app.url("/auth/token"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[actix_web::test]
async fn a_user_sets_up_two_step_sign_in_keeps_recovery_codes_and_turns_it_off() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let browser = app.page_client("alice").await;
    let dashboard = html_page(app.get_page(&browser, "/dashboard").await, 200).await;
    assert!(dashboard.contains("Set up two-step sign-in"));
    let csrf = csrf_of(&dashboard);

    let started = app
        .post_form(&browser, "/account/mfa/setup", &[("csrf_token", &csrf)])
        .await;
    assert_eq!(started.status(), 303);
    assert_eq!(location(&started), "/account/mfa/setup");
    let setup = html_page(app.get_page(&browser, "/account/mfa/setup").await, 200).await;
    assert!(
        setup.contains("<svg") && !setup.contains("<?xml"),
        "an inline QR code"
    );
    assert!(!setup.contains("<script"));
    let base32 = text_after(&setup, r#"<code id="totp-secret">"#).to_owned();
    assert!(setup.contains(&format!(
        "otpauth://totp/latchkey:alice?secret={base32}&#38;issuer=latchkey"
    )));
    let bytes = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &base32).unwrap();
    let secret = Secret::from_bytes(bytes).unwrap();

    let wrong = app
        .post_form(
            &browser,
            "/account/mfa/confirm",
            &[("csrf_token", &csrf), ("otp", "000000")],
        )
        .await;
    assert!(html_page(wrong, 400).await.contains("not right"));
    let (code, next) = totp_now(&secret);
    let confirmed = app
        .post_form(
            &browser,
            "/account/mfa/confirm",
            &[("csrf_token", &csrf), ("otp", &code)],
        )
        .await;
    assert_eq!(confirmed.headers()["cache-control"], "no-store");
    let codes = recovery_codes_of(&html_page(confirmed, 200).await);
    assert_eq!(codes.len(), 10);

    let dashboard = html_page(app.get_page(&browser, "/dashboard").await, 200).await;
    assert!(dashboard.contains("10 recovery codes left"), "{dashboard}");
    assert_eq!(api_sign_in(&app, None).await, 401, "mfa_required now");
    assert_eq!(
        api_sign_in(&app, Some(&code)).await,
        401,
        "the confirming code is used up"
    );
    assert_eq!(api_sign_in(&app, Some(&next)).await, 200);

    // New codes: the password and a code (here a recovery code); the old set stops working.
    let renewed = app
        .post_form(
            &browser,
            "/account/mfa/recovery-codes",
            &[
                ("csrf_token", &csrf),
                ("password", PASSWORD),
                ("otp", &codes[0]),
            ],
        )
        .await;
    let new_codes = recovery_codes_of(&html_page(renewed, 200).await);
    assert_eq!(new_codes.len(), 10);
    assert_eq!(
        api_sign_in(&app, Some(&codes[1])).await,
        401,
        "the old set is gone"
    );
    assert_eq!(api_sign_in(&app, Some(&new_codes[1])).await, 200);

    // Off: a wrong code is refused, the password and a right code turn it off.
    let refused = app
        .post_form(
            &browser,
            "/account/mfa/disable",
            &[
                ("csrf_token", &csrf),
                ("password", PASSWORD),
                ("otp", "111111"),
            ],
        )
        .await;
    assert_eq!(refused.status(), 303);
    let dashboard = html_page(app.get_page(&browser, "/dashboard").await, 200).await;
    assert!(dashboard.contains("not right") && dashboard.contains("recovery codes left"));
    let off = app
        .post_form(
            &browser,
            "/account/mfa/disable",
            &[
                ("csrf_token", &csrf),
                ("password", PASSWORD),
                ("otp", &new_codes[2]),
            ],
        )
        .await;
    assert_eq!(off.status(), 303);
    let dashboard = html_page(app.get_page(&browser, "/dashboard").await, 200).await;
    assert!(
        dashboard.contains("Two-step sign-in is off")
            && dashboard.contains("Set up two-step sign-in")
    );
    assert_eq!(api_sign_in(&app, None).await, 200);
    // Under the user's name, so a filter by user finds them.
    let audit = String::from_utf8(
        app.cli(&["audit", "list", "--user", "alice", "--json"])
            .stdout,
    )
    .unwrap();
    for kind in ["mfa_enabled", "recovery_code_used", "mfa_disabled"] {
        assert!(audit.contains(kind), "{kind}: {audit}");
    }
}

#[actix_web::test]
async fn the_setup_page_without_a_setup_under_way_goes_back_to_the_dashboard() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let browser = app.page_client("alice").await;
    let response = app.get_page(&browser, "/account/mfa/setup").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/dashboard");
    let csrf = app.page_csrf(&browser, "/dashboard").await;
    let confirm = app
        .post_form(
            &browser,
            "/account/mfa/confirm",
            &[("csrf_token", &csrf), ("otp", "123456")],
        )
        .await;
    assert_eq!(confirm.status(), 303);
    let forged = app
        .post_form(&browser, "/account/mfa/setup", &[("csrf_token", "forged")])
        .await;
    assert_eq!(forged.status(), 403);
}

#[actix_web::test]
async fn an_admin_sees_who_has_two_step_sign_in_and_resets_it() {
    let app = spawn_app().await;
    app.add_user("root", Role::Admin);
    let alice = app.add_user("alice", Role::User);
    enroll_totp(&app, alice);
    let admin = app.page_client("root").await;
    let users = html_page(app.get_page(&admin, "/admin/users").await, 200).await;
    assert!(users.contains("Reset two-step sign-in of alice"), "{users}");
    assert!(!users.contains("Reset two-step sign-in of root"));
    let csrf = csrf_of(&users);
    let reset = app
        .post_form(
            &admin,
            &format!("/admin/users/{alice}/reset-mfa"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(reset.status(), 303);
    let users = html_page(app.get_page(&admin, "/admin/users").await, 200).await;
    assert!(users.contains("Reset two-step sign-in of alice and signed out"));
    assert!(!users.contains("Reset two-step sign-in of alice\""));
    assert_eq!(
        api_sign_in(&app, None).await,
        200,
        "the password alone again"
    );
    let unknown = app
        .post_form(
            &admin,
            "/admin/users/999999/reset-mfa",
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(unknown.status(), 404);
}

#[actix_web::test]
async fn require_mfa_admins_makes_admins_enrol_before_any_page_and_refuses_their_api_sign_ins() {
    let app = spawn_app_with(|s| s.require_mfa = latchkey::config::MfaPolicy::Admins).await;
    app.add_user("root", Role::Admin);
    app.add_user("alice", Role::User);
    assert_eq!(api_sign_in(&app, None).await, 200, "users are not covered");
    let refused = client()
        .post(app.url("/auth/token"))
        .json(&json!({"username": "root", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(refused).await, (401, "mfa_required".into()));

    // The pages: the password signs in, and every page leads to the setup.
    let admin = client();
    let signed_in = app
        .page_sign_in_as(&admin, "root", PASSWORD, "/admin/users")
        .await;
    assert_eq!(signed_in.status(), 303);
    // That session's token is good for the setup pages only: not the API, not a gateway.
    let setup_only = cookie_value(signed_in.headers(), "lk_access").unwrap();
    let setup_refresh = cookie_value(signed_in.headers(), "lk_refresh").unwrap();
    for path in ["/api/me", "/api/admin/users", "/api/verify?role=admin"] {
        let response = app.get_bearer(path, &setup_only).await;
        assert_eq!(
            error_code(response).await,
            (401, "mfa_required".into()),
            "{path}"
        );
    }
    for path in ["/admin/users", "/dashboard", "/admin/sessions"] {
        let response = app.get_page(&admin, path).await;
        assert_eq!(response.status(), 303, "{path}");
        assert_eq!(location(&response), "/account/mfa/required", "{path}");
    }
    let required = html_page(app.get_page(&admin, "/account/mfa/required").await, 200).await;
    let csrf = csrf_of(&required);
    app.post_form(&admin, "/account/mfa/setup", &[("csrf_token", &csrf)])
        .await;
    let setup = html_page(app.get_page(&admin, "/account/mfa/setup").await, 200).await;
    let base32 = text_after(&setup, r#"<code id="totp-secret">"#).to_owned();
    let bytes = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &base32).unwrap();
    let secret = Secret::from_bytes(bytes).unwrap();
    let (code, next) = totp_now(&secret);
    let codes = app
        .post_form(
            &admin,
            "/account/mfa/confirm",
            &[("csrf_token", &csrf), ("otp", &code)],
        )
        .await;
    let codes = html_page(codes, 200).await;
    assert!(codes.contains(r#"href="/account/mfa/required""#));
    // Kept them: this password-only session ends; sign in again with a code.
    let done = app.get_page(&admin, "/account/mfa/required").await;
    assert_eq!(done.status(), 303);
    assert_eq!(location(&done), "/login");
    // ... and is over for good, not only for this browser.
    let old = app.get_bearer("/api/me", &setup_only).await;
    assert_eq!(error_code(old).await, (401, "session_revoked".into()));
    assert_eq!(app.refresh_with(&setup_refresh).await.status(), 401);
    let again = html_page(
        app.page_sign_in_as(&admin, "root", PASSWORD, "/admin/users")
            .await,
        200,
    )
    .await;
    let csrf = csrf_of(&again);
    let in_ = app
        .post_form(
            &admin,
            "/login",
            &[
                ("otp", &next),
                ("csrf_token", &csrf),
                ("next", "/admin/users"),
            ],
        )
        .await;
    assert_eq!(in_.status(), 303);
    assert_eq!(app.get_page(&admin, "/admin/users").await.status(), 200);
}
