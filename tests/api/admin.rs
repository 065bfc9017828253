use latchkey::domain::Role;
use serde_json::Value;

use crate::helpers::*;

#[actix_web::test]
async fn users_get_403_on_admin_routes() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let access = app.sign_in(&app.client, "alice").await;
    for path in ["/api/admin/sessions", "/api/admin/users"] {
        assert_eq!(
            error_code(app.get_bearer(path, &access).await).await,
            (403, "forbidden".into())
        );
    }
    let response = app.delete_bearer("/api/admin/sessions/1", &access).await;
    assert_eq!(error_code(response).await, (403, "forbidden".into()));
}

#[actix_web::test]
async fn admins_page_through_every_session_with_a_cursor() {
    let app = spawn_app().await;
    app.add_user("root", Role::Admin);
    app.add_user("alice", Role::User);
    app.add_user("bob", Role::User);
    let admin = app.sign_in(&client(), "root").await;
    for _ in 0..3 {
        app.sign_in(&client(), "alice").await;
        app.sign_in(&client(), "bob").await;
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/admin/sessions?limit=3&cursor={c}"),
            None => "/api/admin/sessions?limit=3".into(),
        };
        let page: Value = app.get_bearer(&path, &admin).await.json().await.unwrap();
        for s in page["sessions"].as_array().unwrap() {
            seen.push(s["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7, "{seen:?}");
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique.len(), 7);

    let alice: Value = app
        .get_bearer("/api/admin/sessions?user=ALICE", &admin)
        .await
        .json()
        .await
        .unwrap();
    let alice = alice["sessions"].as_array().unwrap();
    assert_eq!(alice.len(), 3);
    assert!(alice.iter().all(|s| s["username"] == "alice"));
}

#[actix_web::test]
async fn bad_admin_list_parameters_are_400() {
    let app = spawn_app().await;
    app.add_user("root", Role::Admin);
    let admin = app.sign_in(&client(), "root").await;
    for query in [
        "limit=0",
        "limit=abc",
        "limit=100000",
        "cursor=xyz",
        "user=a%20b",
    ] {
        let response = app
            .get_bearer(&format!("/api/admin/sessions?{query}"), &admin)
            .await;
        assert_eq!(
            error_code(response).await,
            (400, "invalid_request".into()),
            "{query}"
        );
    }
}

#[actix_web::test]
async fn an_admin_revokes_any_session() {
    let app = spawn_app().await;
    app.add_user("root", Role::Admin);
    app.add_user("alice", Role::User);
    let admin = app.sign_in(&client(), "root").await;
    let alice_client = client();
    let alice = app.sign_in(&alice_client, "alice").await;
    let session = app.session_id(&alice).await;

    let response = app
        .delete_bearer(&format!("/api/admin/sessions/{session}"), &admin)
        .await;

    assert_eq!(response.status(), 204);
    assert_eq!(
        error_code(app.get_bearer("/api/me", &alice).await).await.1,
        "session_revoked"
    );
    assert_eq!(app.refresh(&alice_client).await.status(), 401);
    let response = app
        .delete_bearer("/api/admin/sessions/424242", &admin)
        .await;
    assert_eq!(error_code(response).await, (404, "not_found".into()));
}

#[actix_web::test]
async fn admins_list_users() {
    let app = spawn_app().await;
    app.add_user("root", Role::Admin);
    app.add_user("alice", Role::User);
    let admin = app.sign_in(&client(), "root").await;
    let body: Value = app
        .get_bearer("/api/admin/users", &admin)
        .await
        .json()
        .await
        .unwrap();
    let users = body["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[1]["username"], "alice");
    assert_eq!(users[1]["role"], "user");
    assert_eq!(users[1]["disabled"], false);
    assert!(users[1]["id"].is_string() && users[1]["created_at"].is_string());
}
