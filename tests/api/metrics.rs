//! `/metrics` on `LATCHKEY_METRICS_BIND`: served there only, in Prometheus' text format
//! (checked by `promtool check metrics`, Debian's `prometheus` package), and its counters
//! move with what happens on the main listener.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use latchkey::domain::Role;

use crate::helpers::*;

async fn spawn_with_metrics(adjust: impl FnOnce(&mut latchkey::config::Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.metrics_bind = Some("127.0.0.1:0".into());
        adjust(s);
    })
    .await
}

/// The exposition, as Prometheus would scrape it.
pub async fn scrape(app: &TestApp) -> String {
    let address = app.metrics_address.as_ref().expect("a metrics listener");
    let response = reqwest::get(format!("{address}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    response.text().await.unwrap()
}

/// The value of the sample `series` (name and labels exactly as rendered).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.parse().expect("a number"))
}

pub fn metric(text: &str, series: &str) -> f64 {
    sample(text, series).unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

#[actix_web::test]
async fn metrics_are_served_on_their_own_listener_and_nowhere_else() {
    let app = spawn_with_metrics(|_| {}).await;
    let main = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(main.status(), 404);
    assert!(!main.text().await.unwrap().contains("latchkey_"));

    let text = scrape(&app).await;
    for series in [
        "latchkey_sign_ins_total{result=\"ok\"}",
        "latchkey_refreshes_total{result=\"grace\"}",
        "latchkey_lockouts_total",
        "latchkey_password_hash_queue",
        "latchkey_db_errors_total",
    ] {
        assert_eq!(metric(&text, series), 0.0, "{series}");
    }
    let metrics = app.metrics_address.as_ref().unwrap();
    let elsewhere = reqwest::get(format!("{metrics}/api/me")).await.unwrap();
    assert_eq!(elsewhere.status(), 404);
    let post = reqwest::Client::new()
        .post(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 404);

    let without = spawn_app().await;
    assert!(without.metrics_address.is_none());
}

#[actix_web::test]
async fn sign_ins_refreshes_revocations_and_lockouts_are_counted() {
    let app = spawn_with_metrics(|s| s.login_max_failures = 2).await;
    app.add_user("alice", Role::User);
    app.add_user("bob", Role::User);
    let alice = client();
    let access = app.sign_in(&alice, "alice").await;
    assert_eq!(
        app.post_token(&client(), "alice", "wrong password")
            .await
            .status(),
        401
    );
    // Two failures lock bob out; the next attempt is refused unchecked.
    for _ in 0..2 {
        assert_eq!(
            app.post_token(&client(), "bob", "wrong password")
                .await
                .status(),
            401
        );
    }
    assert_eq!(
        app.post_token(&client(), "bob", PASSWORD).await.status(),
        429
    );

    let first = cookie_value(
        app.post_token(&client(), "alice", PASSWORD).await.headers(),
        "lk_refresh",
    )
    .unwrap();
    assert_eq!(app.refresh_with(&first).await.status(), 200);
    // The same token again at once: within the grace, answered with its successor.
    assert_eq!(app.refresh_with(&first).await.status(), 200);
    assert_eq!(app.refresh_with("not-a-token").await.status(), 401);
    assert_eq!(app.get_bearer("/api/me", &access).await.status(), 200);
    assert_eq!(app.get_bearer("/api/me", "junk").await.status(), 401);
    let logout = alice.post(app.url("/auth/logout")).send().await.unwrap();
    assert_eq!(logout.status(), 204);

    let text = scrape(&app).await;
    for (series, expected) in [
        ("latchkey_sign_ins_total{result=\"ok\"}", 2.0),
        ("latchkey_sign_ins_total{result=\"failed\"}", 3.0),
        ("latchkey_sign_ins_total{result=\"locked\"}", 1.0),
        ("latchkey_sign_ins_total{result=\"mfa_required\"}", 0.0),
        ("latchkey_lockouts_total", 1.0),
        ("latchkey_refreshes_total{result=\"ok\"}", 1.0),
        ("latchkey_refreshes_total{result=\"grace\"}", 1.0),
        ("latchkey_refreshes_total{result=\"invalid\"}", 1.0),
        ("latchkey_refreshes_total{result=\"reused\"}", 0.0),
        ("latchkey_revocations_total{reason=\"signed_out\"}", 1.0),
        (
            "latchkey_http_requests_total{route=\"/auth/token\",status=\"429\"}",
            1.0,
        ),
        (
            "latchkey_http_requests_total{route=\"/api/me\",status=\"200\"}",
            1.0,
        ),
        (
            "latchkey_http_requests_total{route=\"/api/me\",status=\"401\"}",
            1.0,
        ),
        (
            "latchkey_http_request_duration_seconds_count{route=\"/api/me\"}",
            2.0,
        ),
        (
            "latchkey_http_request_duration_seconds_bucket{route=\"/api/me\",le=\"+Inf\"}",
            2.0,
        ),
        ("latchkey_password_hash_queue", 0.0),
    ] {
        assert_eq!(metric(&text, series), expected, "{series}");
    }
    // A body refused by the limit before its handler runs is counted under its route.
    let large = app
        .client
        .post(app.url("/auth/refresh"))
        .body(vec![b'x'; 20_000])
        .send()
        .await
        .unwrap();
    assert_eq!(large.status(), 413);
    let text = scrape(&app).await;
    assert_eq!(
        metric(
            &text,
            "latchkey_http_requests_total{route=\"/auth/refresh\",status=\"413\"}"
        ),
        1.0
    );
    // The path of a request no route knows is not a label.
    let junk = app
        .client
        .get(app.url("/no/such/page-7f3a"))
        .send()
        .await
        .unwrap();
    assert_eq!(junk.status(), 404);
    let text = scrape(&app).await;
    assert!(!text.contains("page-7f3a"), "{text}");
    assert!(
        metric(
            &text,
            "latchkey_http_requests_total{route=\"unmatched\",status=\"404\"}"
        ) >= 1.0
    );
    promtool_accepts(&text);
}

#[actix_web::test]
async fn a_reused_refresh_token_and_an_admin_revocation_are_counted_by_reason() {
    let app = spawn_with_metrics(|s| s.refresh_reuse_grace = Duration::from_secs(0)).await;
    app.add_user("alice", Role::User);
    app.add_user("root", Role::Admin);
    let signed_in = app.post_token(&client(), "alice", PASSWORD).await;
    let first = cookie_value(signed_in.headers(), "lk_refresh").unwrap();
    assert_eq!(app.refresh_with(&first).await.status(), 200);
    assert_eq!(app.refresh_with(&first).await.status(), 401);

    let alice = client();
    let access = app.sign_in(&alice, "alice").await;
    let session = app.session_id(&access).await;
    let admin = app.sign_in(&client(), "root").await;
    let revoked = app
        .delete_bearer(&format!("/api/admin/sessions/{session}"), &admin)
        .await;
    assert_eq!(revoked.status(), 204);

    let text = scrape(&app).await;
    assert_eq!(
        metric(&text, "latchkey_refreshes_total{result=\"reused\"}"),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "latchkey_revocations_total{reason=\"refresh_token_reused\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            "latchkey_revocations_total{reason=\"revoked_by_admin\"}"
        ),
        1.0
    );
    // Revoking the same session again revokes nothing more.
    let again = app
        .delete_bearer(&format!("/api/admin/sessions/{session}"), &admin)
        .await;
    assert_eq!(again.status(), 204);
    let page = app
        .client
        .get(app.url("/admin/users"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303, "to the sign-in form");
    let text = scrape(&app).await;
    // Routes are labelled by their pattern, the API's and the pages' alike.
    for (series, expected) in [
        (
            "latchkey_revocations_total{reason=\"revoked_by_admin\"}",
            1.0,
        ),
        (
            "latchkey_http_requests_total{route=\"/api/admin/sessions/{id}\",status=\"204\"}",
            2.0,
        ),
        (
            "latchkey_http_requests_total{route=\"/admin/users\",status=\"303\"}",
            1.0,
        ),
    ] {
        assert_eq!(metric(&text, series), expected, "{series}");
    }
    promtool_accepts(&text);
}

#[actix_web::test]
async fn a_metrics_address_that_cannot_be_bound_stops_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("latchkey.db");
    let output = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("--database")
        .arg(&db)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_remove("DATABASE_URL")
        .env("LATCHKEY_METRICS_BIND", &address)
        .env_remove("LATCHKEY_BIND")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("LATCHKEY_METRICS_BIND") && stderr.contains(&address),
        "{stderr}"
    );
}

/// `promtool check metrics` (lint included) finds nothing to say about `text`. Skipped
/// without promtool, except where `LATCHKEY_REQUIRE_PROMTOOL=1` (CI) says it must run.
fn promtool_accepts(text: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert_ne!(
            std::env::var("LATCHKEY_REQUIRE_PROMTOOL").as_deref(),
            Ok("1"),
            "LATCHKEY_REQUIRE_PROMTOOL=1 but promtool is missing (scripts/test installs prometheus)"
        );
        eprintln!("promtool is not installed: the exposition was not linted");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
