use latchkey::domain::Role;

use crate::helpers::*;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn one_line_error(out: &std::process::Output) -> String {
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    err
}

#[actix_web::test]
async fn users_are_added_from_stdin_and_can_sign_in() {
    let app = spawn_app().await;
    let out = app.cli_with_stdin(
        &[
            "user",
            "add",
            "Carol",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "carol's password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let response = app.post_token(&client(), "carol", "carol's password").await;
    assert_eq!(response.status(), 200, "the trailing newline was dropped");
    let listed = stdout(&app.cli(&["user", "list"]));
    assert!(
        listed.contains("carol") && listed.contains("admin"),
        "{listed}"
    );
}

#[actix_web::test]
async fn the_database_flag_may_follow_the_subcommand() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["user", "list", "--database"])
        .arg(&app.database)
        .output()
        .unwrap();
    assert!(stdout(&out).contains("alice"));
}

#[actix_web::test]
async fn cli_mistakes_are_one_line_errors() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let dup = app.cli_with_stdin(
        &["user", "add", "alice", "--password-stdin"],
        "long enough password\n",
    );
    assert!(one_line_error(&dup).contains("already exists"));
    assert!(one_line_error(
        &app.cli_with_stdin(&["user", "add", "bob", "--password-stdin"], "short\n")
    )
    .contains("8"));
    assert!(one_line_error(&app.cli_with_stdin(
        &["user", "add", "b b", "--password-stdin"],
        "long enough password\n"
    ))
    .contains("username"));
    assert!(one_line_error(&app.cli_with_stdin(
        &["user", "add", "bob", "--role", "root", "--password-stdin"],
        "long enough password\n"
    ))
    .contains("role"));
    assert!(one_line_error(&app.cli(&["user", "disable", "nobody"])).contains("nobody"));
    assert!(one_line_error(&app.cli(&["sessions", "revoke", "12345"])).contains("12345"));
    assert!(one_line_error(&app.cli(&["sessions", "revoke", "abc"])).contains("abc"));
    assert!(
        one_line_error(&app.cli_with_stdin(&["user", "add", "bob", "--password-stdin"], ""))
            .contains("standard input")
    );
    // Usage mistakes caught by the argument parser are one line too.
    assert!(one_line_error(&app.cli(&["user", "add"])).contains("NAME"));
    assert!(one_line_error(&app.cli(&["sessions", "frobnicate"])).contains("frobnicate"));
    assert!(one_line_error(&app.cli(&["user"])).contains("subcommand is missing"));
    assert!(one_line_error(&app.cli(&["audit", "list", "--limit", "0"])).contains("0"));
}

#[actix_web::test]
async fn without_a_terminal_the_password_prompt_fails_clearly_instead_of_hanging() {
    let app = spawn_app().await;
    let err = one_line_error(&app.cli(&["user", "add", "bob"]));
    assert!(err.contains("--password-stdin"), "{err}");
}

#[actix_web::test]
async fn set_role_takes_effect_and_a_demotion_signs_the_admin_out() {
    let app = spawn_app().await;
    app.add_user("root", Role::Admin);
    let admin = app.sign_in(&app.client, "root").await;
    assert!(app
        .cli(&["user", "set-role", "root", "user"])
        .status
        .success());
    assert!(
        time_until_refused(&app, &admin, std::time::Duration::from_secs(4))
            .await
            .is_some()
    );
    let user = app.sign_in(&client(), "root").await;
    assert_eq!(app.me(&user).await["role"], "user");
}

#[actix_web::test]
async fn sessions_list_shows_the_ids_the_api_uses() {
    let app = spawn_app().await;
    app.add_user("alice", Role::User);
    let access = app.sign_in(&app.client, "alice").await;
    let session = app.session_id(&access).await;
    let listed = stdout(&app.cli(&["sessions", "list", "--user", "alice"]));
    let first_column: Vec<&str> = listed
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(first_column, vec![session.as_str()]);
}

fn serve(db: &std::path::Path, args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command.arg("--database").arg(db).arg("serve").args(args);
    for (k, v) in envs {
        command.env(k, v);
    }
    command.stdin(std::process::Stdio::null());
    command.output().unwrap()
}

#[actix_web::test]
async fn an_unopenable_database_fails_at_once_with_the_reason() {
    let started = std::time::Instant::now();
    let out = run_cli("/nonexistent/dir/x.db", &["user", "list"], None);
    assert!(one_line_error(&out).contains("unable to open database file"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "no pool timeout"
    );
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["user", "list"])
        .env("DATABASE_URL", "postgres://u:hunter2@127.0.0.1:1/db")
        .output()
        .unwrap();
    let error = one_line_error(&out);
    assert!(
        error.contains("cannot connect to postgres://u:<set>@127.0.0.1:1/db"),
        "{error}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"));
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["user", "list"])
        .env("DATABASE_URL", "mysql://u@127.0.0.1/db")
        .output()
        .unwrap();
    assert!(one_line_error(&out).contains("DATABASE_URL"));
}

#[actix_web::test]
async fn demo_mode_refuses_a_public_bind() {
    let dir = tempfile::tempdir().unwrap();
    let err = one_line_error(&serve(
        &dir.path().join("x.db"),
        &["--demo", "--bind", "0.0.0.0:0"],
        &[],
    ));
    assert!(err.contains("loopback"), "{err}");
}

#[actix_web::test]
async fn the_demo_prints_its_accounts_and_a_localhost_url_where_passkeys_are_offered() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("--database")
        .arg(dir.path().join("x.db"))
        .args(["serve", "--demo", "--bind", &format!("127.0.0.1:{port}")])
        .env_remove("LATCHKEY_PUBLIC_URL")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        let done = line.starts_with("sign in at ");
        printed.push(line);
        if done || printed.len() > 10 {
            break;
        }
    }
    let url = format!("http://localhost:{port}");
    let stop = |mut child: std::process::Child| {
        let _ = child.kill();
        let _ = child.wait();
    };
    if printed.last() != Some(&format!("sign in at {url}/login")) {
        stop(child);
        panic!("{printed:?}");
    }
    let password = printed
        .iter()
        .find_map(|l| l.strip_prefix("demo account created: alice / "))
        .and_then(|rest| rest.split(' ').next())
        .map(str::to_owned);

    let browser = client();
    let page = browser.get(format!("{url}/login")).send().await.unwrap();
    let issuer = browser
        .get(format!("{url}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["issuer"]
        .clone();
    let html = page.text().await.unwrap();
    let signed_in = match &password {
        Some(password) => browser
            .post(format!("{url}/auth/token"))
            .json(&serde_json::json!({"username": "alice", "password": password}))
            .send()
            .await
            .unwrap()
            .status(),
        None => reqwest::StatusCode::IM_A_TEAPOT,
    };
    stop(child);
    assert!(password.is_some(), "{printed:?}");
    assert_eq!(signed_in, 200, "the printed password signs in");
    assert_eq!(issuer, url.as_str());
    assert!(html.contains("Sign in with a passkey"), "{html}");
    assert!(!html.contains("passkeys-unavailable"), "{html}");
}

#[actix_web::test]
async fn bad_settings_stop_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    for (var, value) in [
        ("LATCHKEY_ACCESS_TTL", "15 minutes"),
        ("LATCHKEY_REFRESH_TTL", "0s"),
        ("LATCHKEY_SESSION_MAX", "forever"),
        ("LATCHKEY_REFRESH_REUSE_GRACE", "-1s"),
        ("LATCHKEY_JWT_ALG", "PS256"),
        ("LATCHKEY_JWT_ALG", "es256"),
        ("LATCHKEY_KEY_ROTATION", "soon"),
        ("LATCHKEY_KEY_ROTATION", "0s"),
        ("LATCHKEY_REQUIRE_MFA", "everyone"),
        ("LATCHKEY_LOG_FORMAT", "xml"),
        ("LATCHKEY_MFA_KEY", "too-short"),
        ("LATCHKEY_LOGIN_MAX_FAILURES", "many"),
        ("LATCHKEY_LOGIN_LOCKOUT", "1y"),
        ("LATCHKEY_TRUSTED_PROXIES", "10.0.0.1,not-an-ip"),
        ("LATCHKEY_DB_POOL", "0"),
        ("LATCHKEY_DB_POOL", "lots"),
    ] {
        let out = serve(&db, &["--bind", "127.0.0.1:0"], &[(var, value)]);
        let err = one_line_error(&out);
        assert!(err.contains(var), "{var}: {err}");
    }
    let err = one_line_error(&serve(&db, &[], &[("LATCHKEY_BIND", "garbage")]));
    assert!(err.contains("LATCHKEY_BIND"), "{err}");
    let err = one_line_error(&serve(
        &db,
        &["--bind", "127.0.0.1:0"],
        &[("LATCHKEY_JWT_ALG", "HS256")],
    ));
    assert!(err.contains("LATCHKEY_JWT_SECRET"), "{err}");
    let err = one_line_error(&serve(
        &db,
        &["--bind", "127.0.0.1:0"],
        &[
            ("LATCHKEY_JWT_ALG", "HS256"),
            ("LATCHKEY_JWT_SECRET", "too short"),
        ],
    ));
    assert!(err.contains("LATCHKEY_JWT_SECRET"), "{err}");
}

#[actix_web::test]
async fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("--database")
        .arg(dir.path().join("x.db"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let mut up = false;
    for _ in 0..100 {
        if let Ok(r) = reqwest::get(&url).await {
            up = r.status() == 200;
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "server came up");
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let status = exited.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("no exit within 10 s of SIGTERM")
    });
    assert!(status.success(), "{status:?}");
}

/// A server logging at trace level in `format`, through a sign-in (with `X-Request-Id:
/// from-the-proxy-1`), a refresh and `/api/me`: its log, the secrets it saw, and the
/// request ids the responses carried.
async fn a_logged_session(format: &str) -> (String, Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let out = run_cli(
        db.to_str().unwrap(),
        &["user", "add", "alice", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.status.success());
    let port = free_port();
    let log_path = dir.path().join("server.log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("--database")
        .arg(&db)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "trace")
        .env("LATCHKEY_LOG_FORMAT", format)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let jar = client();
    let mut signed_in = None;
    for _ in 0..100 {
        if let Ok(r) = jar
            .post(format!("{base}/auth/token"))
            .header("X-Request-Id", "from-the-proxy-1")
            .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
            .send()
            .await
        {
            signed_in = Some(r);
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let response = signed_in.expect("server came up");
    let id_of = |r: &reqwest::Response| r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let mut ids = vec![id_of(&response)];
    let refresh = cookie_value(response.headers(), "lk_refresh").unwrap();
    let body: serde_json::Value = response.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let rotated = jar
        .post(format!("{base}/auth/refresh"))
        .header("X-Request-Id", "not a sane id")
        .send()
        .await
        .unwrap();
    ids.push(id_of(&rotated));
    let refresh2 = cookie_value(rotated.headers(), "lk_refresh").unwrap();
    let me = reqwest::Client::new()
        .get(format!("{base}/api/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    ids.push(id_of(&me));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    let signature = access.rsplit('.').next().unwrap().to_owned();
    (
        log,
        vec![PASSWORD.into(), access, refresh, refresh2, signature],
        ids,
    )
}

#[actix_web::test]
async fn no_password_or_token_reaches_the_log_even_at_trace_level() {
    for format in ["text", "json"] {
        let (log, secrets, _) = a_logged_session(format).await;
        assert!(
            log.contains("signed in"),
            "{format}: the log was written: {log}"
        );
        for secret in &secrets {
            assert!(
                !log.contains(secret.as_str()),
                "{format}: a secret reached the log"
            );
        }
    }
}

#[actix_web::test]
async fn json_logs_are_one_object_per_line_and_carry_the_request_id() {
    let (log, _, ids) = a_logged_session("json").await;
    assert_eq!(ids[0], "from-the-proxy-1", "a sane incoming id is kept");
    assert!(ids[1] != "not a sane id" && !ids[1].is_empty(), "{ids:?}");
    assert!(ids[2] != ids[1], "each request its own id");
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let signed_in = lines
        .iter()
        .find(|l| l["message"] == "signed in")
        .expect("the sign-in line");
    assert_eq!(signed_in["span"]["id"], "from-the-proxy-1", "{signed_in}");
    assert_eq!(
        signed_in["user"], "alice",
        "security events keep their fields"
    );
    assert!(signed_in["timestamp"].is_string() && signed_in["level"] == "INFO");
}

/// `latchkey serve` with these environment variables, expected to stop at once.
fn serve_refused(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command
        .arg("--database")
        .arg(dir.path().join("latchkey.db"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_remove("DATABASE_URL")
        .env_remove("LATCHKEY_JWT_SECRET")
        .env_remove("LATCHKEY_JWT_ALG")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().unwrap();
    assert!(!output.status.success(), "{env:?} started");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn predictable_hs256_secrets_and_impossible_lifetimes_stop_start_up() {
    let repeated = "password".repeat(4);
    let stderr = serve_refused(&[
        ("LATCHKEY_JWT_ALG", "HS256"),
        ("LATCHKEY_JWT_SECRET", &repeated),
    ]);
    assert!(
        stderr.contains("LATCHKEY_JWT_SECRET") && stderr.contains("openssl rand"),
        "{stderr}"
    );
    let stderr = serve_refused(&[
        ("LATCHKEY_ACCESS_TTL", "15m"),
        ("LATCHKEY_REFRESH_TTL", "1m"),
    ]);
    assert!(stderr.contains("LATCHKEY_REFRESH_TTL"), "{stderr}");
    let stderr = serve_refused(&[
        ("LATCHKEY_REFRESH_TTL", "7d"),
        ("LATCHKEY_SESSION_MAX", "1d"),
    ]);
    assert!(stderr.contains("LATCHKEY_SESSION_MAX"), "{stderr}");
    let stderr = serve_refused(&[(
        "LATCHKEY_JWT_SECRET",
        "q3Zr8Jw0pL2vXy7Tn5Kc1Bm9Hd4Fg6Sa0Ue2Ri8Oq",
    )]);
    assert!(stderr.contains("LATCHKEY_JWT_SECRET"), "{stderr}");
    let stderr = serve_refused(&[("LATCHKEY_ACCESS_TTL", "0s")]);
    assert!(stderr.contains("LATCHKEY_ACCESS_TTL"), "{stderr}");
}

fn json_of(output: &std::process::Output) -> serde_json::Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON document on stdout")
}

#[actix_web::test]
async fn list_and_show_commands_print_json_with_the_api_field_names() {
    let app = spawn_app().await;
    let alice = app.add_user("alice", latchkey::domain::Role::User);
    let access = app.sign_in(&client(), "alice").await;
    let sid = app.session_id(&access).await;

    let users = json_of(&app.cli(&["user", "list", "--json"]));
    assert_eq!(users["users"][0]["id"], alice.to_string().as_str());
    assert_eq!(users["users"][0]["username"], "alice");
    assert_eq!(users["users"][0]["role"], "user");
    assert_eq!(users["users"][0]["disabled"], false);

    let shown = json_of(&app.cli(&["user", "show", "alice", "--json"]));
    assert_eq!(shown["username"], "alice");
    let text = app.cli(&["user", "show", "alice"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("1 active"));
    assert!(!app.cli(&["user", "show", "nobody"]).status.success());

    let sessions = json_of(&app.cli(&["sessions", "list", "--json"]));
    assert_eq!(sessions["sessions"][0]["id"], sid.as_str());
    assert_eq!(sessions["sessions"][0]["username"], "alice");
    assert!(sessions["next_cursor"].is_null());

    let audit = json_of(&app.cli(&["audit", "list", "--json", "--user", "alice"]));
    assert!(audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "sign_in_succeeded"));

    let keys = json_of(&app.cli(&["keys", "list", "--json"]));
    let states: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["next", "current"], "newest first");
}

#[actix_web::test]
async fn an_unknown_user_in_a_filter_is_an_empty_result_everywhere() {
    let app = spawn_app().await;
    let sessions = app.cli(&["sessions", "list", "--user", "nobody"]);
    assert!(
        sessions.status.success(),
        "{}",
        String::from_utf8_lossy(&sessions.stderr)
    );
    let audit = app.cli(&["audit", "list", "--user", "nobody"]);
    assert!(audit.status.success());
    let json = json_of(&app.cli(&["sessions", "list", "--user", "nobody", "--json"]));
    assert_eq!(json["sessions"], serde_json::json!([]));
}

#[test]
fn check_prints_the_effective_settings_or_the_message_serve_would_stop_with() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("latchkey.db");
    let run = |env: &[(&str, &str)]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
        command
            .arg("--database")
            .arg(&db)
            .args(["check", "--bind", "127.0.0.1:9999"])
            .env_remove("DATABASE_URL")
            .env_remove("LATCHKEY_PUBLIC_URL")
            .env_remove("LATCHKEY_JWT_SECRET")
            .env_remove("LATCHKEY_JWT_ALG")
            .env_remove("LATCHKEY_METRICS_BIND");
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let secret = "q3Zr8Jw0pL2vXy7Tn5Kc1Bm9Hd4Fg6Sa0Ue2Ri8Oq";
    let ok = run(&[
        ("LATCHKEY_JWT_ALG", "HS256"),
        ("LATCHKEY_JWT_SECRET", secret),
        ("LATCHKEY_REFRESH_REUSE_GRACE", "0s"),
        (
            "LATCHKEY_TRUSTED_PROXIES",
            "10.0.0.0/8, 192.168.1.7,fd00::/8",
        ),
    ]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        out.contains("LATCHKEY_PUBLIC_URL=http://127.0.0.1:9999"),
        "{out}"
    );
    assert!(out.contains("LATCHKEY_JWT_SECRET=<set>"), "{out}");
    assert!(out.contains("LATCHKEY_REFRESH_REUSE_GRACE=0s"), "{out}");
    assert!(out.contains("LATCHKEY_DB_POOL=16"), "{out}");
    assert!(out.contains("LATCHKEY_METRICS_BIND=<unset>"), "{out}");
    assert!(
        out.contains("LATCHKEY_TRUSTED_PROXIES=10.0.0.0/8,192.168.1.7/32,fd00::/8"),
        "{out}"
    );
    assert!(!out.contains(secret), "the secret is never printed");
    let rsa = run(&[
        ("LATCHKEY_JWT_ALG", "RS256"),
        ("LATCHKEY_KEY_ROTATION", "1d12h"),
    ]);
    let out = String::from_utf8_lossy(&rsa.stdout);
    assert!(out.contains("LATCHKEY_JWT_ALG=RS256"), "{out}");
    assert!(out.contains("LATCHKEY_KEY_ROTATION=1d12h"), "{out}");
    let off = run(&[
        ("LATCHKEY_KEY_ROTATION", "off"),
        ("LATCHKEY_METRICS_BIND", "127.0.0.1:9100"),
    ]);
    let out = String::from_utf8_lossy(&off.stdout);
    assert!(out.contains("LATCHKEY_KEY_ROTATION=off"), "{out}");
    assert!(
        out.contains("LATCHKEY_METRICS_BIND=127.0.0.1:9100"),
        "{out}"
    );
    let same = run(&[("LATCHKEY_METRICS_BIND", "127.0.0.1:9999")]);
    assert!(!same.status.success());
    assert!(
        String::from_utf8_lossy(&same.stderr).contains("LATCHKEY_METRICS_BIND"),
        "the metrics listener cannot be the main one"
    );
    let bad = run(&[("LATCHKEY_ACCESS_TTL", "soon")]);
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("LATCHKEY_ACCESS_TTL") && stderr.lines().count() == 1,
        "{stderr}"
    );
}

#[actix_web::test]
async fn user_delete_revokes_every_session_first_and_keeps_the_audit_log() {
    let app = spawn_app().await;
    app.add_user("alice", latchkey::domain::Role::User);
    let access = app.sign_in(&client(), "alice").await;
    let output = app.cli(&["user", "delete", "alice"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Another process deleted the rows; the running server still learns of the revocation.
    let refused = time_until_refused(&app, &access, std::time::Duration::from_secs(3)).await;
    assert!(
        refused.is_some_and(|t| t <= std::time::Duration::from_secs(2)),
        "{refused:?}"
    );
    assert_eq!(
        app.post_token(&client(), "alice", PASSWORD).await.status(),
        401
    );
    let audit = json_of(&app.cli(&["audit", "list", "--json", "--user", "alice"]));
    let kinds: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"user_deleted") && kinds.contains(&"sign_in_succeeded"),
        "{kinds:?}"
    );
    assert!(
        !app.cli(&["user", "delete", "alice"]).status.success(),
        "already gone"
    );
}

#[test]
fn completions_are_printed_for_bash_zsh_and_fish_without_touching_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("never.db");
    for shell in ["bash", "zsh", "fish"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .arg("--database")
            .arg(&db)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["serve", "sessions", "rotate", "password-stdin"] {
            assert!(script.contains(word), "{shell} completes {word}");
        }
    }
    let bash = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let mut check = std::process::Command::new("bash")
        .arg("-n")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(check.stdin.as_mut().unwrap(), &bash.stdout).unwrap();
    assert!(check.wait().unwrap().success(), "the bash script parses");
    assert!(!db.exists(), "no database was created");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(one_line_error(&refused).contains("tcsh"));
}
