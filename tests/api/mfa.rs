//! Two-step sign-in on the JSON API: an account with TOTP needs a code (or a recovery
//! code) besides its password; `mfa_required` without one, `invalid_credentials` for a
//! wrong, replayed or used-up code, counted toward the lockout like a wrong password.

use latchkey::domain::Role;
use serde_json::{json, Value};

use crate::helpers::*;

async fn token_with(
    app: &TestApp,
    username: &str,
    password: &str,
    otp: Option<&str>,
) -> reqwest::Response {
    let mut body = json!({"username": username, "password": password});
    if let Some(otp) = otp {
        body["otp"] = otp.into();
    }
    client()
        .post(app.url("/auth/token"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn amr_of(access: &str) -> Value {
    use base64::Engine as _;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(access.split('.').nth(1).unwrap())
        .unwrap();
    serde_json::from_slice::<Value>(&claims).unwrap()["amr"].clone()
}

#[actix_web::test]
async fn the_password_alone_is_mfa_required_and_a_code_signs_in_once() {
    let app = spawn_app().await;
    let id = app.add_user("alice", Role::User);
    let (secret, _) = enroll_totp(&app, id);

    let alone = token_with(&app, "alice", PASSWORD, None).await;
    assert_eq!(
        alone.headers()["www-authenticate"],
        r#"Bearer realm="latchkey""#
    );
    assert_eq!(error_code(alone).await, (401, "mfa_required".into()));

    let (code, _) = totp_now(&secret);
    let signed_in = token_with(&app, "alice", PASSWORD, Some(&code)).await;
    assert_eq!(signed_in.status(), 200);
    let body: Value = signed_in.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(amr_of(access), json!(["pwd", "otp"]));
    assert_eq!(app.me(access).await["username"], "alice");

    // The same code again: a replay within its window.
    let replayed = token_with(&app, "alice", PASSWORD, Some(&code)).await;
    assert_eq!(
        error_code(replayed).await,
        (401, "invalid_credentials".into())
    );
    let wrong = token_with(&app, "alice", PASSWORD, Some("000000")).await;
    assert_eq!(error_code(wrong).await, (401, "invalid_credentials".into()));
}

#[actix_web::test]
async fn a_wrong_password_says_nothing_about_a_second_factor() {
    let app = spawn_app().await;
    let id = app.add_user("alice", Role::User);
    app.add_user("bob", Role::User);
    let (secret, _) = enroll_totp(&app, id);
    let (code, _) = totp_now(&secret);
    for (name, otp) in [
        ("alice", None),
        ("alice", Some(code.as_str())),
        ("bob", None),
        ("nobody", None),
    ] {
        let response = token_with(&app, name, "a wrong password", otp).await;
        assert_eq!(
            error_code(response).await,
            (401, "invalid_credentials".into()),
            "{name}"
        );
    }
}

#[actix_web::test]
async fn recovery_codes_work_once_each_and_are_audited() {
    let app = spawn_app().await;
    let id = app.add_user("alice", Role::User);
    let (_, codes) = enroll_totp(&app, id);
    let typed = codes[3].to_uppercase().replace('-', " ");
    let first = token_with(&app, "alice", PASSWORD, Some(&typed)).await;
    assert_eq!(first.status(), 200, "a recovery code, typed loosely");
    let body: Value = first.json().await.unwrap();
    assert_eq!(
        amr_of(body["access_token"].as_str().unwrap()),
        json!(["pwd", "otp"])
    );
    let again = token_with(&app, "alice", PASSWORD, Some(&codes[3])).await;
    assert_eq!(error_code(again).await, (401, "invalid_credentials".into()));
    assert_eq!(
        token_with(&app, "alice", PASSWORD, Some(&codes[4]))
            .await
            .status(),
        200
    );
    let audit = String::from_utf8(app.cli(&["audit", "list", "--json"]).stdout).unwrap();
    assert_eq!(audit.matches("recovery_code_used").count(), 2, "{audit}");
}

#[actix_web::test]
async fn wrong_codes_count_toward_the_lockout_and_mfa_required_forgives_nothing() {
    let app = spawn_app().await;
    let id = app.add_user("alice", Role::User);
    let (secret, _) = enroll_totp(&app, id);
    for _ in 0..4 {
        let wrong = token_with(&app, "alice", PASSWORD, Some("123456")).await;
        assert_eq!(error_code(wrong).await.1, "invalid_credentials");
    }
    // The right password without a code is no success: the four failures stay.
    let alone = token_with(&app, "alice", PASSWORD, None).await;
    assert_eq!(error_code(alone).await.1, "mfa_required");
    let fifth = token_with(&app, "alice", PASSWORD, Some("654321")).await;
    assert_eq!(error_code(fifth).await.1, "invalid_credentials");
    let (code, _) = totp_now(&secret);
    let locked = token_with(&app, "alice", PASSWORD, Some(&code)).await;
    assert_eq!(locked.status(), 429, "locked out after five wrong codes");
    assert!(locked.headers().contains_key("retry-after"));
}

#[actix_web::test]
async fn the_native_grant_takes_otp_and_refreshes_keep_the_methods() {
    let app = spawn_app().await;
    let id = app.add_user("alice", Role::User);
    let (secret, _) = enroll_totp(&app, id);
    let grant = |form: Vec<(&'static str, String)>| {
        client().post(app.url("/auth/token")).form(&form).send()
    };
    let base = || {
        vec![
            ("grant_type", "password".to_owned()),
            ("username", "alice".to_owned()),
            ("password", PASSWORD.to_owned()),
        ]
    };
    let without = grant(base()).await.unwrap();
    assert_eq!(without.status(), 400);
    let body: Value = without.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(body["error_description"].as_str().unwrap().contains("otp"));

    let (_, next) = totp_now(&secret);
    let mut form = base();
    form.push(("otp", next));
    let with = grant(form).await.unwrap();
    assert_eq!(with.status(), 200);
    let body: Value = with.json().await.unwrap();
    let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();
    let refreshed = grant(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh_token),
    ])
    .await
    .unwrap();
    assert_eq!(refreshed.status(), 200);
    let body: Value = refreshed.json().await.unwrap();
    assert_eq!(
        amr_of(body["access_token"].as_str().unwrap()),
        json!(["pwd", "otp"])
    );
    let verify = app
        .get_bearer("/api/verify", body["access_token"].as_str().unwrap())
        .await;
    assert_eq!(verify.headers()["x-latchkey-amr"], "pwd,otp");
}

#[actix_web::test]
async fn user_reset_mfa_removes_the_factor_and_revokes_the_sessions() {
    let app = spawn_app().await;
    let id = app.add_user("alice", Role::User);
    let (secret, _) = enroll_totp(&app, id);
    let (code, _) = totp_now(&secret);
    let signed_in: Value = token_with(&app, "alice", PASSWORD, Some(&code))
        .await
        .json()
        .await
        .unwrap();
    let access = signed_in["access_token"].as_str().unwrap().to_owned();

    let out = app.cli(&["user", "reset-mfa", "alice"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("removed two-step sign-in"));
    assert!(
        time_until_refused(&app, &access, std::time::Duration::from_secs(2))
            .await
            .is_some(),
        "the user's sessions are revoked"
    );
    // The password alone signs in again; the old recovery codes are gone with the factor.
    let alone = token_with(&app, "alice", PASSWORD, None).await;
    assert_eq!(alone.status(), 200);
    let body: Value = alone.json().await.unwrap();
    assert_eq!(
        amr_of(body["access_token"].as_str().unwrap()),
        json!(["pwd"])
    );
    let audit = String::from_utf8(app.cli(&["audit", "list"]).stdout).unwrap();
    assert!(audit.contains("mfa_reset"), "{audit}");

    let again = app.cli(&["user", "reset-mfa", "alice"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("had no second factor"));
    let unknown = app.cli(&["user", "reset-mfa", "nobody"]);
    assert!(!unknown.status.success());
}

#[actix_web::test]
async fn a_sqlite_database_keeps_its_second_factor_key_in_a_file_beside_it() {
    use std::os::unix::fs::PermissionsExt as _;
    use std::process::{Command, Stdio};
    if sqlite_only("the key file beside a SQLite database") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("--database")
        .arg(&db)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env_remove("LATCHKEY_MFA_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "the server started"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGTERM) };
    server.wait().unwrap();

    let file = dir.path().join("x.db.mfa-key");
    let mode = std::fs::metadata(&file)
        .expect("the key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "readable by its owner only");
    let key = latchkey::mfa::MfaKey::parse(&std::fs::read_to_string(&file).unwrap()).unwrap();

    // A factor sealed with that key; then a server given another key refuses to start.
    let db_url = db.to_str().unwrap();
    let added = run_cli(
        db_url,
        &["user", "add", "alice", "--role", "user", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(added.status.success());
    let secret = latchkey::mfa::totp::Secret::generate();
    let mut conn = latchkey::db::connect(db_url).unwrap();
    let user = latchkey::store::users::find_by_name(
        &mut conn,
        &latchkey::domain::Username::parse("alice").unwrap(),
    )
    .unwrap()
    .unwrap();
    latchkey::store::mfa::enable(
        &mut conn,
        latchkey::clock::now(),
        user.id,
        &key.seal(user.id, secret.as_bytes()),
        0,
        &[],
        &latchkey::store::Actor::cli(),
    )
    .unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("--database")
        .arg(&db)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("LATCHKEY_MFA_KEY", TEST_MFA_KEY)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("LATCHKEY_MFA_KEY") && stderr.trim_end().lines().count() == 1,
        "{stderr}"
    );
}
