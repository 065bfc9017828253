use std::time::Duration;

use latchkey::domain::Role;

use crate::helpers::*;

#[actix_web::test]
async fn a_session_revoked_by_the_cli_stops_its_access_token() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let access = app.sign_in(&app.client, "alice").await;
    let session = app.session_id(&access).await;

    let out = app.cli(&["sessions", "revoke", &session]);

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The documented bound is 2 s; the poll is every 250 ms. The margin covers a loaded CI machine.
    assert!(time_until_refused(&app, &access, Duration::from_secs(4))
        .await
        .is_some());
    assert_eq!(
        app.refresh(&app.client).await.status(),
        401,
        "its refresh token is dead at once"
    );
}

#[actix_web::test]
async fn a_session_revoked_on_another_instance_stops_here_too() {
    let app = spawn_app().await;
    let other = spawn_on_same_db(&app, |_| {}).await;
    app.add_user("alice", Role::User);
    let access = app.sign_in(&app.client, "alice").await;
    let admin_id = app.add_user("root", Role::Admin);
    assert!(admin_id.0 > 0);
    let admin = other.sign_in(&client(), "root").await;
    let session = app.session_id(&access).await;

    let response = other
        .delete_bearer(&format!("/api/admin/sessions/{session}"), &admin)
        .await;

    assert_eq!(response.status(), 204);
    assert!(time_until_refused(&app, &access, Duration::from_secs(4))
        .await
        .is_some());
}

#[actix_web::test]
async fn revoking_every_session_of_a_user_from_the_cli() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let a = app.sign_in(&client(), "alice").await;
    let b = app.sign_in(&client(), "alice").await;
    let out = app.cli(&["sessions", "revoke", "--user", "alice"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked 2"));
    assert!(time_until_refused(&app, &a, Duration::from_secs(4))
        .await
        .is_some());
    assert!(time_until_refused(&app, &b, Duration::from_secs(4))
        .await
        .is_some());
}

#[actix_web::test]
async fn disabling_a_user_revokes_their_sessions_for_good() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let alice = client();
    let access = app.sign_in(&alice, "alice").await;
    assert!(app.cli(&["user", "disable", "alice"]).status.success());
    assert!(time_until_refused(&app, &access, Duration::from_secs(4))
        .await
        .is_some());
    assert!(app.cli(&["user", "enable", "alice"]).status.success());
    assert_eq!(
        app.refresh(&alice).await.status(),
        401,
        "old sessions stay revoked"
    );
    assert_eq!(app.get_bearer("/api/me", &access).await.status(), 401);
    assert_eq!(
        app.post_token(&client(), "alice", PASSWORD).await.status(),
        200,
        "new sign-ins work"
    );
}

#[actix_web::test]
async fn a_new_password_revokes_the_users_sessions() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let access = app.sign_in(&app.client, "alice").await;
    let out = app.cli_with_stdin(
        &["user", "passwd", "alice", "--password-stdin"],
        "a brand new password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(time_until_refused(&app, &access, Duration::from_secs(4))
        .await
        .is_some());
    assert_eq!(
        app.post_token(&client(), "alice", PASSWORD).await.status(),
        401
    );
    assert_eq!(
        app.post_token(&client(), "alice", "a brand new password")
            .await
            .status(),
        200
    );
}

#[actix_web::test]
async fn revocations_survive_a_restart() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let access = app.sign_in(&app.client, "alice").await;
    let session = app.session_id(&access).await;
    assert!(app.cli(&["sessions", "revoke", &session]).status.success());
    let restarted = spawn_on_same_db(&app, |_| {}).await;
    assert_eq!(
        error_code(restarted.get_bearer("/api/me", &access).await)
            .await
            .1,
        "session_revoked"
    );
}
