use latchkey::client::Client;
use latchkey::clock;
use latchkey::domain::{Role, Username};
use latchkey::store::sessions::{self, Lifetimes};
use latchkey::store::users;
use std::time::Duration;

use super::{csrf_of, html_page, location};
use crate::helpers::*;

/// Starts `n` sessions of `name` straight in the database (fast, no argon2).
fn start_sessions(app: &TestApp, name: &str, n: usize) {
    let mut conn = app.conn();
    let user = users::find_by_name(&mut conn, &Username::parse(name).unwrap())
        .unwrap()
        .unwrap();
    let client = Client {
        ip: "192.0.2.7".into(),
        user_agent: "curl/8.5.0".into(),
    };
    let life = Lifetimes {
        refresh_ttl: Duration::from_millis(3_600_000),
        session_max: Duration::from_millis(7_200_000),
        reuse_grace: Duration::from_millis(1_000),
    };
    for i in 0..n {
        let hash = format!("{name}-{i}-{}", clock::now().0).into_bytes();
        sessions::start(
            &mut conn,
            clock::now(),
            (&user).into(),
            &client,
            &hash,
            life,
        )
        .unwrap()
        .expect("the user is unchanged");
    }
}

/// The `rel="next"` link of a paged list, unescaped.
fn next_link(html: &str) -> Option<String> {
    let end = html.find(r#"" rel="next""#)?;
    let start = html[..end].rfind(r#"href=""#)? + 6;
    Some(html[start..end].replace("&#38;", "&"))
}

fn revoke_ids(html: &str) -> Vec<String> {
    html.split(r#"action="/admin/sessions/"#)
        .skip(1)
        .map(|rest| rest.split('/').next().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn users_get_a_403_page_on_every_admin_page() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let alice = app.page_client("alice").await;
    for path in ["/admin/sessions", "/admin/users", "/admin/audit"] {
        let body = html_page(app.get_page(&alice, path).await, 403).await;
        assert!(body.contains("Not allowed"), "{body}");
    }
    let csrf = app.page_csrf(&alice, "/dashboard").await;
    for path in [
        "/admin/sessions/1/revoke",
        "/admin/users/1/disable",
        "/admin/users/1/enable",
        "/admin/users/1/revoke-sessions",
    ] {
        html_page(
            app.post_form(&alice, path, &[("csrf_token", &csrf)]).await,
            403,
        )
        .await;
    }
    let response = app
        .post_form(
            &alice,
            "/admin/users",
            &[
                ("csrf_token", &csrf),
                ("username", "mallory"),
                ("password", PASSWORD),
                ("role", "admin"),
            ],
        )
        .await;
    html_page(response, 403).await;
    // A visitor who is not signed in is sent to sign in instead.
    let response = app.get_page(&client(), "/admin/users").await;
    assert_eq!(location(&response), "/auth/renew?next=/admin/users");
}

#[actix_web::test]
async fn admins_page_through_active_sessions_and_filter_by_user() {
    let app = spawn_app().await;
    app.add_user("root", Role::Admin);
    app.add_user("alice", Role::User);
    app.add_user("bob", Role::User);
    start_sessions(&app, "alice", 30);
    start_sessions(&app, "bob", 30);
    let admin = app.page_client("root").await;

    let response = app.get_page(&admin, "/admin/sessions").await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let first = html_page(response, 200).await;
    let first_ids = revoke_ids(&first);
    assert_eq!(first_ids.len(), 50);
    assert!(first.contains("curl 8"));
    assert!(first.contains("192.0.2.7"));
    assert_eq!(
        first.matches(r#"class="row-current""#).count(),
        1,
        "the admin's own"
    );
    let next = next_link(&first).expect("a next link");
    assert!(next.starts_with("/admin/sessions?user=&after="), "{next}");
    let second = html_page(app.get_page(&admin, &next).await, 200).await;
    let second_ids = revoke_ids(&second);
    assert_eq!(second_ids.len(), 11);
    assert_eq!(next_link(&second), None);
    assert!(first_ids.iter().all(|id| !second_ids.contains(id)));

    let bob = html_page(app.get_page(&admin, "/admin/sessions?user=BOB").await, 200).await;
    assert_eq!(revoke_ids(&bob).len(), 30);
    assert!(!bob.contains(">alice<"));
    let nobody = html_page(
        app.get_page(&admin, "/admin/sessions?user=nobody").await,
        200,
    )
    .await;
    assert!(nobody.contains("No active sessions for nobody."));

    for bad in [
        "/admin/sessions?after=x",
        "/admin/sessions?user=no%20such",
        "/admin/sessions?after=-4",
    ] {
        html_page(app.get_page(&admin, bad).await, 400).await;
    }
}

#[actix_web::test]
async fn an_admin_revokes_a_session_from_the_list() {
    let app = spawn_app().await;
    app.add_user("root", Role::Admin);
    app.add_user("alice", Role::User);
    let alice_access = app.sign_in(&client(), "alice").await;
    let alice_session = app.session_id(&alice_access).await;
    let admin = app.page_client("root").await;
    let body = html_page(
        app.get_page(&admin, "/admin/sessions?user=alice").await,
        200,
    )
    .await;
    assert_eq!(revoke_ids(&body), vec![alice_session.clone()]);
    let response = app
        .post_form(
            &admin,
            &format!("/admin/sessions/{alice_session}/revoke"),
            &[
                ("csrf_token", &csrf_of(&body)),
                ("back", "/admin/sessions?user=alice"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/admin/sessions?user=alice");
    assert_eq!(
        error_code(app.get_bearer("/api/me", &alice_access).await).await,
        (401, "session_revoked".into())
    );
    let body = html_page(
        app.get_page(&admin, "/admin/sessions?user=alice").await,
        200,
    )
    .await;
    assert!(body.contains(&format!("Session {alice_session} of alice signed out.")));
    assert!(body.contains("No active sessions for alice."));
    // Only list pages are places to come back to; a bad token is a 403; a bad id a 404.
    let csrf = csrf_of(&body);
    let response = app
        .post_form(
            &admin,
            &format!("/admin/sessions/{alice_session}/revoke"),
            &[("csrf_token", &csrf), ("back", "//evil.example")],
        )
        .await;
    assert_eq!(location(&response), "/admin/sessions");
    let response = app
        .post_form(
            &admin,
            "/admin/sessions/1/revoke",
            &[("csrf_token", "nope")],
        )
        .await;
    html_page(response, 403).await;
    for bad in ["9999", "x"] {
        let response = app
            .post_form(
                &admin,
                &format!("/admin/sessions/{bad}/revoke"),
                &[("csrf_token", &csrf)],
            )
            .await;
        html_page(response, 404).await;
    }
}

#[actix_web::test]
async fn admins_create_users_and_bad_input_comes_back_as_a_4xx_form() {
    let app = spawn_app().await;
    app.add_user("root", Role::Admin);
    let admin = app.page_client("root").await;
    let csrf = app.page_csrf(&admin, "/admin/users").await;
    let create = |username: &'static str, password: &'static str, role: &'static str| {
        let (app, admin, csrf) = (&app, &admin, csrf.clone());
        async move {
            app.post_form(
                admin,
                "/admin/users",
                &[
                    ("csrf_token", csrf.as_str()),
                    ("username", username),
                    ("password", password),
                    ("role", role),
                ],
            )
            .await
        }
    };
    let response = create("Dave", "a long enough passphrase", "user").await;
    assert_eq!(location(&response), "/admin/users");
    let body = html_page(app.get_page(&admin, "/admin/users").await, 200).await;
    assert!(body.contains("User dave created."));
    assert!(body.contains("<strong>dave</strong>"));
    assert_eq!(
        app.post_token(&client(), "dave", "a long enough passphrase")
            .await
            .status(),
        200
    );

    for (username, password, role, status, message) in [
        (
            "no spaces",
            "a long enough passphrase",
            "user",
            400,
            "Username:",
        ),
        ("erin", "short", "user", 400, "Password:"),
        ("erin", "12345678", "user", 400, "most common"),
        (
            "erin",
            "a long enough passphrase",
            "superuser",
            400,
            "Role:",
        ),
        (
            "dave",
            "a long enough passphrase",
            "user",
            409,
            "already exists",
        ),
    ] {
        let body = html_page(create(username, password, role).await, status).await;
        assert!(body.contains(message), "{message}: {body}");
        assert!(
            !body.contains(password) || password == "user",
            "never echo the password"
        );
    }
    let body = html_page(
        create("no spaces", "a long enough passphrase", "admin").await,
        400,
    )
    .await;
    assert!(
        body.contains(r#"value="no spaces""#),
        "the form keeps its values"
    );
    let response = app
        .post_form(
            &admin,
            "/admin/users",
            &[
                ("csrf_token", "bad"),
                ("username", "eve"),
                ("password", PASSWORD),
                ("role", "user"),
            ],
        )
        .await;
    html_page(response, 403).await;
}

#[actix_web::test]
async fn demoting_disabling_and_signing_out_a_user_from_the_users_page() {
    let app = spawn_app().await;
    let root = app.add_user("root", Role::Admin);
    let ops = app.add_user("ops", Role::Admin);
    let ops_access = app.sign_in(&client(), "ops").await;
    let admin = app.page_client("root").await;
    let csrf = app.page_csrf(&admin, "/admin/users").await;

    // Demoting an admin ends their admin rights at once.
    let response = app
        .post_form(
            &admin,
            &format!("/admin/users/{ops}/role"),
            &[("csrf_token", &csrf), ("role", "user")],
        )
        .await;
    assert_eq!(location(&response), "/admin/users");
    assert_eq!(
        error_code(app.get_bearer("/api/admin/users", &ops_access).await)
            .await
            .0,
        401
    );
    let body = html_page(app.get_page(&admin, "/admin/users").await, 200).await;
    assert!(
        body.contains("ops is now user. Their sessions were signed out."),
        "{body}"
    );
    let response = app
        .post_form(
            &admin,
            &format!("/admin/users/{ops}/role"),
            &[("csrf_token", &csrf), ("role", "root")],
        )
        .await;
    html_page(response, 400).await;

    // Disabling signs them out; enabling does not bring those sessions back.
    let ops_access = app.sign_in(&client(), "ops").await;
    let response = app
        .post_form(
            &admin,
            &format!("/admin/users/{ops}/disable"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(location(&response), "/admin/users");
    assert_eq!(
        error_code(app.get_bearer("/api/me", &ops_access).await)
            .await
            .1,
        "session_revoked"
    );
    assert_eq!(
        app.post_token(&client(), "ops", PASSWORD).await.status(),
        401
    );
    let body = html_page(app.get_page(&admin, "/admin/users").await, 200).await;
    assert!(body.contains("ops disabled and signed out everywhere."));
    assert!(body.contains("badge-disabled"));
    app.post_form(
        &admin,
        &format!("/admin/users/{ops}/enable"),
        &[("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(
        error_code(app.get_bearer("/api/me", &ops_access).await)
            .await
            .1,
        "session_revoked"
    );
    assert_eq!(
        app.post_token(&client(), "ops", PASSWORD).await.status(),
        200
    );

    // Signing out every session of a user.
    let a = app.sign_in(&client(), "ops").await;
    let response = app
        .post_form(
            &admin,
            &format!("/admin/users/{ops}/revoke-sessions"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(location(&response), "/admin/users");
    assert_eq!(
        error_code(app.get_bearer("/api/me", &a).await).await.1,
        "session_revoked"
    );
    let body = html_page(app.get_page(&admin, "/admin/users").await, 200).await;
    assert!(body.contains("Signed out 2 sessions of ops."), "{body}");

    // An admin cannot demote or disable themselves by a click.
    for (path, fields) in [
        (
            format!("/admin/users/{root}/role"),
            vec![("csrf_token", csrf.as_str()), ("role", "user")],
        ),
        (
            format!("/admin/users/{root}/disable"),
            vec![("csrf_token", csrf.as_str())],
        ),
    ] {
        let body = html_page(app.post_form(&admin, &path, &fields).await, 409).await;
        assert!(body.contains("your own account"));
    }
    for bad in ["0", "abc", "424242"] {
        let response = app
            .post_form(
                &admin,
                &format!("/admin/users/{bad}/disable"),
                &[("csrf_token", &csrf)],
            )
            .await;
        html_page(response, 404).await;
    }
}

#[actix_web::test]
async fn the_audit_log_is_newest_first_and_paged() {
    let app = spawn_app().await;
    app.add_user("root", Role::Admin);
    app.add_user("alice", Role::User);
    for _ in 0..55 {
        assert_eq!(
            app.post_token(&client(), "alice", "wrong password!")
                .await
                .status(),
            401
        );
        // Fresh IPs are not available here, so clear the lockout between rounds.
        let mut conn = app.conn();
        latchkey::store::Statement::run(diesel::sql_query("DELETE FROM login_failures"), &mut conn)
            .unwrap();
    }
    let admin = app.page_client("root").await;
    let first = html_page(app.get_page(&admin, "/admin/audit").await, 200).await;
    assert_eq!(
        first.matches("<tr>").count() - 1,
        50,
        "50 rows and the header"
    );
    let newest = first.find("Signed in").unwrap();
    let failed = first.find("Sign-in failed").unwrap();
    assert!(newest < failed, "the admin's sign-in is the newest event");
    let next = next_link(&first).expect("an older page");
    assert!(next.starts_with("/admin/audit?user=&before="), "{next}");
    let second = html_page(app.get_page(&admin, &next).await, 200).await;
    assert!(second.contains("Sign-in failed"));
    assert!(second.contains("User created"));
    let alice = html_page(app.get_page(&admin, "/admin/audit?user=alice").await, 200).await;
    assert!(alice.contains(r#"href="/admin/audit?user=alice""#));
    assert!(!alice.contains(r#"href="/admin/audit?user=root""#));
    html_page(app.get_page(&admin, "/admin/audit?before=zz").await, 400).await;
}

#[actix_web::test]
async fn an_event_kind_written_by_a_newer_build_reads_as_its_name() {
    let app = spawn_app().await;
    app.add_user("root", Role::Admin);
    let mut conn = app.conn();
    latchkey::store::Statement::run(
        diesel::sql_query(
            "INSERT INTO audit_events (at, kind, subject_username) \
             VALUES (1, 'from_a_newer_build', 'root')",
        ),
        &mut conn,
    )
    .unwrap();
    let admin = app.page_client("root").await;
    let page = html_page(app.get_page(&admin, "/admin/audit?user=root").await, 200).await;
    assert!(page.contains("from a newer build"), "{page}");
    assert!(page.contains("User created"), "{page}");
    let listed = app.cli(&["audit", "list", "--user", "root", "--json"]);
    assert!(listed.status.success());
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains(r#""kind": "from_a_newer_build""#),
        "{listed}"
    );
}
