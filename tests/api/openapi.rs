//! `/api/openapi.json`: the document describes the API the server runs. Every
//! operation in it is routed, and schemathesis (tests/openapi, installed by
//! scripts/test) drives every operation with generated requests and finds no 5xx and no
//! status, header, content type or body that the document does not describe.

use std::path::PathBuf;
use std::process::Command;

use latchkey::domain::Role;
use serde_json::Value;

use crate::helpers::*;

async fn document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

#[actix_web::test]
async fn every_documented_operation_is_routed() {
    let app = spawn_app().await;
    app.add_user("root", Role::Admin);
    let admin = app.sign_in(&client(), "root").await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 16, "{:?}", paths.keys());
    for (path, operations) in paths {
        for method in operations.as_object().unwrap().keys() {
            // A path parameter is a session of the admin's own: the route answers 204.
            let target = match path.contains("{id}") {
                true => path.replace(
                    "{id}",
                    &app.session_id(&app.sign_in(&client(), "root").await).await,
                ),
                false => path.clone(),
            };
            let request = app
                .client
                .request(method.to_uppercase().parse().unwrap(), app.url(&target))
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body("{}");
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let documented = operations[method]["responses"]
                .as_object()
                .unwrap()
                .contains_key(&status.to_string());
            assert!(documented, "{method} {target}: {status} is not documented");
            let body: Value = response.json().await.unwrap_or_default();
            assert!(
                !matches!(
                    body["error"].as_str(),
                    Some("not_found" | "method_not_allowed")
                ),
                "{method} {target} is not routed: {status} {body}"
            );
        }
    }
}

/// `tests/openapi/.venv`, where scripts/test installs schemathesis.
fn schemathesis() -> Option<PathBuf> {
    let bin =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openapi/.venv/bin/schemathesis");
    if bin.exists() {
        return Some(bin);
    }
    assert_ne!(
        std::env::var("LATCHKEY_REQUIRE_SCHEMATHESIS").as_deref(),
        Ok("1"),
        "LATCHKEY_REQUIRE_SCHEMATHESIS=1 but tests/openapi has no .venv (scripts/test installs it)"
    );
    eprintln!("schemathesis is not installed (run scripts/test): skipped");
    None
}

#[actix_web::test]
async fn schemathesis_finds_no_server_error_and_nothing_the_document_does_not_describe() {
    let Some(schemathesis) = schemathesis() else {
        return;
    };
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    app.add_user("root", Role::Admin);
    let admin = app.sign_in(&client(), "root").await;
    let alice = app.post_token(&client(), "alice", PASSWORD).await;
    let refresh = cookie_value(alice.headers(), "lk_refresh").unwrap();
    let headers = [
        format!("Authorization: Bearer {admin}"),
        // Refreshes rotate (and, past the grace, revoke) alice's session, not the admin's.
        format!("Cookie: lk_refresh={refresh}"),
    ];
    let document = app.url("/api/openapi.json");
    // Everything but the revocations first: a generated id may be the admin's own
    // session, and every later request would then only be a 401.
    let reads = run(
        &schemathesis,
        &document,
        &headers,
        "--exclude-method=DELETE",
    )
    .await;
    let deletes = run(
        &schemathesis,
        &document,
        &headers,
        "--include-method=DELETE",
    )
    .await;
    assert!(
        reads >= 13 && deletes >= 2,
        "operations tested: {reads} + {deletes}"
    );
}

/// Runs schemathesis against `document` with the checks that matter here; panics with
/// its report unless every check passed. Returns how many operations it tested.
async fn run(schemathesis: &PathBuf, document: &str, headers: &[String], filter: &str) -> usize {
    let report = tempfile::tempdir().unwrap();
    let junit = report.path().join("junit.xml");
    let mut command = Command::new(schemathesis);
    command.args(["run", document, filter]);
    for header in headers {
        command.args(["--header", header]);
    }
    command
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
            "--max-examples",
            "25",
            "--seed",
            "20261203",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--report",
            "junit",
            "--report-junit-path",
        ])
        .arg(&junit)
        .env("NO_COLOR", "1");
    let output = actix_web::rt::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .expect("schemathesis runs");
    assert!(
        output.status.success(),
        "schemathesis {filter} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let junit = std::fs::read_to_string(&junit).unwrap();
    junit.matches("<testcase name=\"").count()
        - usize::from(junit.contains("<testcase name=\"Stateful"))
}
