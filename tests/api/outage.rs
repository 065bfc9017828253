//! PostgreSQL going away under a running server, and coming back: every request that
//! needs the database is a 503 (never a 500), access tokens keep verifying, and service
//! resumes by itself with nothing lost. On a cluster of the test's own.

use std::time::{Duration, Instant};

use latchkey::domain::Role;

use crate::helpers::*;
use crate::metrics::{metric, scrape};
use crate::pages::html_page;

#[actix_web::test]
async fn a_database_outage_is_503_everywhere_and_service_resumes_without_a_restart() {
    if postgres_server().is_none() {
        eprintln!("PostgreSQL only (stops its own cluster): runs in the PostgreSQL pass");
        return;
    }
    let cluster = OwnPostgres::start();
    let app = spawn_on_database(cluster.database(), |s| {
        s.metrics_bind = Some("127.0.0.1:0".into())
    })
    .await;
    app.add_user("alice", Role::User);
    let signed_in = app.post_token(&client(), "alice", PASSWORD).await;
    assert_eq!(signed_in.status(), 200);
    let refresh = cookie_value(signed_in.headers(), "lk_refresh").unwrap();
    let access = signed_in.json::<serde_json::Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let pages = client();
    let csrf = app.login_csrf(&pages).await;

    cluster.stop();
    let other = client();
    let fields = [
        ("username", "alice"),
        ("password", PASSWORD),
        ("csrf_token", &csrf),
        ("next", ""),
    ];
    let (sign_in, refreshed, health, verify, form) = tokio::join!(
        app.post_token(&other, "alice", PASSWORD),
        app.refresh_with(&refresh),
        client().get(app.url("/healthz")).send(),
        app.get_bearer("/api/verify", &access),
        app.post_form(&pages, "/login", &fields),
    );
    assert_eq!(error_code(sign_in).await, (503, "unavailable".into()));
    assert_eq!(error_code(refreshed).await, (503, "unavailable".into()));
    assert_eq!(health.unwrap().status(), 503);
    assert_eq!(
        verify.status(),
        204,
        "a valid access token verifies without the database"
    );
    html_page(form, 503).await;
    let errors = metric(&scrape(&app).await, "latchkey_db_errors_total");
    assert!(errors >= 3.0, "the failed operations are counted: {errors}");

    cluster.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let health = client().get(app.url("/healthz")).send().await.unwrap();
        if health.status() == 200 {
            break;
        }
        assert_eq!(health.status(), 503);
        assert!(Instant::now() < deadline, "service never resumed");
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    // The refresh refused during the outage used nothing up; sign-ins work again.
    assert_eq!(app.refresh_with(&refresh).await.status(), 200);
    assert_eq!(
        app.post_token(&client(), "alice", PASSWORD).await.status(),
        200
    );
}
