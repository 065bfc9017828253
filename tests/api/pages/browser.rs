//! The pages in a real browser, on `http://localhost:PORT` (where passkeys work): headless
//! Chromium driven through chromedriver's WebDriver HTTP protocol (plain JSON over
//! reqwest, no extra crate). Skips with a message when the browser is not installed, unless `LATCHKEY_REQUIRE_BROWSER=1` (CI), where a
//! missing browser fails the test. Screenshots go to the target directory, and to `docs/`
//! with `LATCHKEY_SCREENSHOTS=docs`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use latchkey::domain::Role;
use serde_json::{json, Value};

use crate::helpers::*;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn find_program(candidates: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    candidates.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// Chromium and chromedriver, or `None` (after saying why) when the test may skip.
fn browser_programs() -> Option<(PathBuf, PathBuf)> {
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = find_program(&["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ if std::env::var("LATCHKEY_REQUIRE_BROWSER").as_deref() == Ok("1") => {
            panic!("LATCHKEY_REQUIRE_BROWSER=1 but chromium or chromedriver is missing (scripts/test installs them)")
        }
        _ => {
            eprintln!("SKIPPED browser test: chromium and chromedriver are not installed (run scripts/test to install them)");
            None
        }
    }
}

/// A chromedriver process on a free loopback port, killed (by its PID) on drop.
struct Driver {
    child: Child,
    port: u16,
    base: String,
    /// Open browser sessions: closed on drop too, so a failing test leaves no browser.
    sessions: std::sync::Mutex<Vec<String>>,
    chromium: PathBuf,
    http: reqwest::Client,
}

impl Driver {
    async fn start(chromium: PathBuf, chromedriver: &Path) -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            child,
            port,
            sessions: Default::default(),
            base: format!("http://127.0.0.1:{port}"),
            chromium,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
            {
                if r.json::<Value>()
                    .await
                    .is_ok_and(|v| v["value"]["ready"] == true)
                {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    async fn browser(&self) -> Browser<'_> {
        self.browser_with(&[]).await
    }

    /// A browser with JavaScript turned off.
    async fn browser_without_scripts(&self) -> Browser<'_> {
        self.browser_with(&["--blink-settings=scriptEnabled=false"])
            .await
    }

    async fn browser_with(&self, extra: &[&str]) -> Browser<'_> {
        let profile = tempfile::tempdir().unwrap();
        let profile_arg = format!("--user-data-dir={}", profile.path().display());
        let mut args = vec![
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-quic",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,900",
            &profile_arg,
        ];
        args.extend_from_slice(extra);
        let body = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": self.chromium, "args": args},
        }}});
        let response: Value = self
            .http
            .post(format!("{}/session", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = response["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {response}"))
            .to_owned();
        self.sessions.lock().unwrap().push(id.clone());
        Browser {
            driver: self,
            id,
            _profile: profile,
        }
    }
}

/// `DELETE /session/{id}` without async (drop may run while a test unwinds): the driver
/// then closes that Chromium. Errors are ignored: the driver is killed next anyway.
fn close_session(port: u16, id: &str) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let _ = stream.read_to_end(&mut Vec::new());
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        for id in self.sessions.lock().unwrap().drain(..) {
            close_session(self.port, &id);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser window with its own profile (cookies).
struct Browser<'a> {
    driver: &'a Driver,
    id: String,
    _profile: tempfile::TempDir,
}

impl Browser<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{}", self.driver.base, self.id, path);
        let mut request = self.driver.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let value: Value = request.send().await.unwrap().json().await.unwrap();
        if value["value"]["error"].is_string() {
            panic!("WebDriver {path}: {}", value["value"]);
        }
        value["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    async fn url(&self) -> String {
        let value = self.call(reqwest::Method::GET, "/url", None).await;
        value.as_str().unwrap().to_owned()
    }

    /// The URL once it satisfies `done` (a click's navigation may still be under way).
    async fn url_when(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.url().await;
            if done(&url) || Instant::now() > deadline {
                return url;
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn source(&self) -> String {
        let value = self.call(reqwest::Method::GET, "/source", None).await;
        value.as_str().unwrap().to_owned()
    }

    async fn find(&self, css: &str) -> String {
        let value = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        value[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {value}"))
            .to_owned()
    }

    async fn text(&self, css: &str) -> String {
        let element = self.find(css).await;
        let path = format!("/element/{element}/text");
        let value = self.call(reqwest::Method::GET, &path, None).await;
        value.as_str().unwrap_or_default().to_owned()
    }

    async fn attribute(&self, css: &str, name: &str) -> String {
        let element = self.find(css).await;
        let path = format!("/element/{element}/attribute/{name}");
        let value = self.call(reqwest::Method::GET, &path, None).await;
        value.as_str().unwrap_or_default().to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        let path = format!("/element/{element}/value");
        self.call(reqwest::Method::POST, &path, Some(json!({ "text": text })))
            .await;
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        let path = format!("/element/{element}/click");
        self.call(reqwest::Method::POST, &path, Some(json!({})))
            .await;
    }

    async fn resize(&self, width: u32, height: u32) {
        let body = json!({"width": width, "height": height});
        self.call(reqwest::Method::POST, "/window/rect", Some(body))
            .await;
    }

    /// Saves a PNG of the window under the target directory (and `docs/` when asked).
    async fn screenshot(&self, name: &str) {
        let value = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let mut dirs = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots")];
        if std::env::var("LATCHKEY_SCREENSHOTS").as_deref() == Ok("docs") {
            dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs"));
        }
        for dir in dirs {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
        }
    }

    async fn sign_in(&self, app: &TestApp, username: &str) {
        self.goto(&app.url("/login")).await;
        self.type_into("#username", username).await;
        self.type_into("#password", PASSWORD).await;
        self.click("form.stack button[type=submit]").await;
        self.url_when(|url| !url.contains("/login")).await;
    }

    async fn quit(self) {
        let url = format!("{}/session/{}", self.driver.base, self.id);
        let _ = self.driver.http.delete(url).send().await;
        self.driver
            .sessions
            .lock()
            .unwrap()
            .retain(|id| *id != self.id);
    }
}

/// A few more sessions from other devices and places, signed in a while ago, so the
/// lists look like real use (the app trusts 127.0.0.1 as a proxy for `X-Forwarded-For`).
async fn other_devices(app: &TestApp, username: &str, devices: &[(&str, &str, i64, i64)]) {
    use latchkey::store::Statement;
    for (agent, ip, signed_in_minutes_ago, used_minutes_ago) in devices {
        let client = reqwest::Client::builder()
            .user_agent(*agent)
            .default_headers(
                [("x-forwarded-for".parse().unwrap(), ip.parse().unwrap())]
                    .into_iter()
                    .collect(),
            )
            .build()
            .unwrap();
        let access = app.sign_in(&client, username).await;
        let id: i64 = app.session_id(&access).await.parse().unwrap();
        let mut conn = app.conn();
        diesel::sql_query(format!(
            "UPDATE sessions SET created_at = created_at - {}, last_used_at = last_used_at - {} WHERE id = {id}",
            signed_in_minutes_ago * 60_000,
            used_minutes_ago * 60_000
        ))
        .run(&mut conn)
        .unwrap();
    }
}

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
const WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.86";
const MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15";
const LINUX: &str =
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";

#[actix_web::test]
async fn an_admin_revokes_a_users_session_in_the_browser_and_the_user_lands_on_the_sign_in_page() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    let app = spawn_app_on_localhost(None, |s| {
        s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]
    })
    .await;
    app.add_user("admin", Role::Admin);
    app.add_user("alice", Role::User);
    app.add_user("bob", Role::User);
    app.add_user("carol.ops", Role::Admin);
    other_devices(
        &app,
        "alice",
        &[
            (IPHONE, "198.51.100.23", 3 * 1440, 3),
            (WINDOWS, "203.0.113.77", 9 * 1440, 2 * 1440),
        ],
    )
    .await;
    other_devices(
        &app,
        "bob",
        &[
            (MAC, "192.0.2.140", 5 * 60, 12),
            (LINUX, "2001:db8::7", 2 * 1440, 26 * 60),
        ],
    )
    .await;
    other_devices(&app, "carol.ops", &[(LINUX, "10.20.0.15", 45, 1)]).await;
    let driver = Driver::start(chromium, &chromedriver).await;

    // Alice signs in and sees her dashboard, this browser marked.
    let alice = driver.browser().await;
    alice.goto(&app.url("/dashboard")).await;
    assert!(alice.url().await.contains("/login?next=/dashboard"));
    alice.screenshot("login").await;
    alice.sign_in(&app, "alice").await;
    assert_eq!(alice.url().await, app.url("/dashboard"));
    let page = alice.source().await;
    assert!(page.contains("Hello, alice"));
    assert!(page.contains("This device"));
    assert!(page.contains("Safari 18 on iOS") && page.contains("Edge 131 on Windows"));
    alice.screenshot("dashboard").await;
    let own_form = alice.attribute("li.session-current form", "action").await;
    let session_id = own_form
        .trim_start_matches(&app.url("/sessions/"))
        .trim_start_matches("/sessions/")
        .trim_end_matches("/revoke")
        .to_owned();
    assert!(session_id.parse::<i64>().is_ok(), "{own_form}");

    // The admin, in a second browser, revokes exactly that session by clicking its button.
    let admin = driver.browser().await;
    admin.sign_in(&app, "admin").await;
    admin.goto(&app.url("/admin/sessions")).await;
    admin.screenshot("admin-sessions").await;
    admin
        .click(&format!(
            r#"form[action="/admin/sessions/{session_id}/revoke"] button"#
        ))
        .await;
    let flash = format!("Session {session_id} of alice signed out.");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !admin.source().await.contains(&flash) {
        assert!(Instant::now() < deadline, "no confirmation after the click");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(admin.url().await, app.url("/admin/sessions"));
    admin.goto(&app.url("/admin/users")).await;
    admin.screenshot("admin-users").await;
    admin.goto(&app.url("/admin/audit")).await;
    admin.screenshot("admin-audit").await;

    // Alice's next navigation ends at the sign-in form.
    alice.goto(&app.url("/dashboard")).await;
    let landed = alice.url().await;
    assert_eq!(landed, app.url("/login?next=/dashboard"));
    assert!(alice.source().await.contains("Sign in"));

    // The same dashboard on a phone-sized screen.
    admin.resize(390, 844).await;
    admin.goto(&app.url("/dashboard")).await;
    admin.screenshot("dashboard-phone").await;
    admin.goto(&app.url("/admin/sessions")).await;
    admin.screenshot("admin-sessions-phone").await;

    alice.quit().await;
    admin.quit().await;
}

#[actix_web::test]
async fn an_expired_access_token_is_renewed_silently_on_navigation() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    // The access cookie lives one second; the refresh cookie a week.
    let app = spawn_app_on_localhost(None, |s| s.access_ttl = Duration::from_secs(1)).await;
    app.add_user("alice", Role::User);
    let driver = Driver::start(chromium, &chromedriver).await;
    let alice = driver.browser().await;
    alice.sign_in(&app, "alice").await;
    assert!(alice.url().await.starts_with(&app.url("/")));
    let before = refresh_tokens(&app);

    actix_web::rt::time::sleep(Duration::from_millis(2_500)).await;
    alice.goto(&app.url("/dashboard?after=expiry")).await;
    assert_eq!(alice.url().await, app.url("/dashboard?after=expiry"));
    assert!(alice.source().await.contains("Hello, alice"));
    assert!(
        refresh_tokens(&app) > before,
        "the refresh token was rotated on the way"
    );
    alice.quit().await;
}

#[actix_web::test]
async fn a_user_sets_up_two_step_sign_in_signs_out_and_signs_in_with_a_code() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    let app = spawn_app_on_localhost(None, |_| {}).await;
    app.add_user("alice", Role::User);
    let driver = Driver::start(chromium, &chromedriver).await;
    let alice = driver.browser().await;
    alice.resize(1100, 900).await;
    alice.sign_in(&app, "alice").await;
    alice
        .click(r#"form[action="/account/mfa/setup"] button"#)
        .await;
    alice
        .url_when(|url| url.ends_with("/account/mfa/setup"))
        .await;
    assert!(
        alice.source().await.contains("<svg"),
        "the QR code is drawn"
    );
    alice.screenshot("mfa-setup").await;

    // The authenticator app, played by the test: the code of the key on the page.
    let base32 = alice.text("#totp-secret").await;
    let bytes = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &base32).unwrap();
    let secret = latchkey::mfa::totp::Secret::from_bytes(bytes).unwrap();
    let (code, next) = totp_now(&secret);
    alice.type_into("#otp", &code).await;
    alice
        .click(r#"form[action="/account/mfa/confirm"] button"#)
        .await;
    alice
        .url_when(|url| url.ends_with("/account/mfa/confirm"))
        .await;
    assert!(alice.source().await.contains("recovery-codes"));
    alice.screenshot("mfa-recovery-codes").await;
    alice.click("a.btn-primary").await;
    alice.url_when(|url| url.ends_with("/dashboard")).await;
    assert!(alice.source().await.contains("10 recovery codes left"));

    alice.click(r#"form[action="/logout"] button"#).await;
    alice.url_when(|url| url.ends_with("/login")).await;
    alice.type_into("#username", "alice").await;
    alice.type_into("#password", PASSWORD).await;
    alice.click("form.stack button[type=submit]").await;
    // The code step: same address, a form for the code.
    let start = Instant::now();
    while !alice.source().await.contains(r#"id="otp""#) {
        assert!(start.elapsed() < Duration::from_secs(10), "the code step");
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    alice.screenshot("login-code").await;
    alice.type_into("#otp", &next).await;
    alice.click("form.stack button[type=submit]").await;
    alice.url_when(|url| url.ends_with("/dashboard")).await;
    assert!(alice.source().await.contains("Hello, alice"));
    alice.quit().await;
}

fn refresh_tokens(app: &TestApp) -> i64 {
    use latchkey::store::Statement;
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = app.conn();
    diesel::sql_query("SELECT COUNT(*) AS n FROM refresh_tokens")
        .one::<Count>(&mut conn)
        .unwrap()
        .n
}

impl Browser<'_> {
    /// The page source once it satisfies `done` (a script's navigation may be under way).
    async fn source_when(&self, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let source = self.source().await;
            if done(&source) || Instant::now() > deadline {
                return source;
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A virtual authenticator, as WebDriver defines it: a platform passkey provider
    /// (ctap2, internal) that keeps discoverable credentials and verifies its user.
    async fn add_virtual_authenticator(&self) {
        let options = json!({
            "protocol": "ctap2",
            "transport": "internal",
            "hasResidentKey": true,
            "hasUserVerification": true,
            "isUserConsenting": true,
            "isUserVerified": true,
        });
        self.call(
            reqwest::Method::POST,
            "/webauthn/authenticator",
            Some(options),
        )
        .await;
    }

    /// Runs `script` in the page as an async function whose result is awaited.
    async fn run_async(&self, script: &str, args: Value) -> Value {
        let wrapped = format!(
            "const done = arguments[arguments.length - 1];\
             (async (...args) => {{ {script} }})(...Array.from(arguments).slice(0, -1))\
             .then(done, (e) => done({{ error: String(e) }}));"
        );
        let body = json!({ "script": wrapped, "args": args });
        self.call(reqwest::Method::POST, "/execute/async", Some(body))
            .await
    }

    /// What the browser sends this origin: its cookies as one `Cookie` header.
    async fn cookie_header(&self) -> String {
        let cookies = self.call(reqwest::Method::GET, "/cookie", None).await;
        cookies
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                format!(
                    "{}={}",
                    c["name"].as_str().unwrap(),
                    c["value"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Whether the element is shown (WebDriver's "element displayed").
    async fn displayed(&self, css: &str) -> bool {
        let element = self.find(css).await;
        let path = format!("/element/{element}/displayed");
        self.call(reqwest::Method::GET, &path, None).await == true
    }

    async fn cookie(&self, name: &str) -> String {
        let cookie = self
            .call(reqwest::Method::GET, &format!("/cookie/{name}"), None)
            .await;
        cookie["value"].as_str().unwrap().to_owned()
    }
}

/// In the page: a passkey sign-in ceremony up to the authenticator's answer, which is
/// returned instead of sent (the test sends it, and replays it).
const ASSERTION_ONLY: &str = r#"
    const b64 = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)))
        .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    const started = await fetch("/login/passkey/start", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ csrf_token: args[0] }),
    });
    const publicKey = (await started.json()).publicKey;
    publicKey.challenge = Uint8Array.from(
        atob(publicKey.challenge.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
    const c = await navigator.credentials.get({ publicKey });
    return {
        id: c.id, rawId: b64(c.rawId), type: c.type, extensions: {},
        response: {
            clientDataJSON: b64(c.response.clientDataJSON),
            authenticatorData: b64(c.response.authenticatorData),
            signature: b64(c.response.signature),
            userHandle: b64(c.response.userHandle),
        },
    };
"#;

/// Posts a passkey answer to `app`'s sign-in, as the browser would (its cookies, the
/// page's CSRF token, `app`'s origin): the status and error code.
async fn finish_passkey_sign_in(
    app: &TestApp,
    cookies: &str,
    csrf: &str,
    credential: &Value,
) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(app.url("/login/passkey/finish"))
        .header("Cookie", cookies)
        .header("Origin", &app.address)
        .json(&json!({ "csrf_token": csrf, "credential": credential }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

fn amr_of(access_token: &str) -> Value {
    let payload = access_token.split('.').nth(1).unwrap();
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice::<Value>(&claims).unwrap()["amr"].clone()
}

#[actix_web::test]
async fn a_user_registers_a_passkey_signs_in_with_it_alone_and_once_removed_it_fails() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    // Passkeys need a host name: the browser goes to http://localhost:PORT.
    let app = spawn_app_on_localhost(None, |_| {}).await;
    let id = app.add_user("alice", Role::User);
    let driver = Driver::start(chromium, &chromedriver).await;
    let alice = driver.browser().await;
    alice.resize(1100, 1400).await;
    alice.add_virtual_authenticator().await;
    alice.sign_in(&app, "alice").await;

    alice.type_into("#passkey-name", "laptop").await;
    alice.click("#passkey-register-button").await;
    alice
        .source_when(|s| s.contains("Passkey \u{201c}laptop\u{201d} added"))
        .await;
    let listed = alice.text("#passkey-list").await;
    assert!(
        listed.contains("laptop") && listed.contains("Never used"),
        "{listed}"
    );
    alice.screenshot("passkeys-dashboard").await;
    // Two-step sign-in on as well: the passkey alone is both steps.
    enroll_totp(&app, id);

    alice.click(r#"form[action="/logout"] button"#).await;
    alice.url_when(|url| url.ends_with("/login")).await;
    alice.screenshot("login-passkey").await;
    alice.click("#passkey-sign-in-button").await;
    alice.url_when(|url| url.ends_with("/dashboard")).await;
    alice.source_when(|s| s.contains("Hello, alice")).await;
    let listed = alice.text("#passkey-list").await;
    assert!(
        listed.contains("laptop") && listed.contains("Last used"),
        "{listed}"
    );
    assert_eq!(
        amr_of(&alice.cookie("lk_access").await),
        json!(["hwk", "user"])
    );
    let audit = audit_events(&app);
    assert!(
        audit.contains(&("passkey_added".into(), "laptop".into())),
        "{audit:?}"
    );
    assert!(
        audit.contains(&("sign_in_succeeded".into(), "passkey".into())),
        "{audit:?}"
    );

    // An answer is good for its own ceremony only, once, within five minutes.
    let csrf = alice
        .attribute(r#"form#passkey-register input[name="csrf_token"]"#, "value")
        .await;
    let answer = alice.run_async(ASSERTION_ONLY, json!([csrf])).await;
    assert!(answer["error"].is_null(), "{answer}");
    let cookies = alice.cookie_header().await;
    assert_eq!(
        finish_passkey_sign_in(&app, &cookies, &csrf, &answer).await,
        (200, String::new())
    );
    let replayed = finish_passkey_sign_in(&app, &cookies, &csrf, &answer).await;
    assert_eq!(
        replayed,
        (400, "invalid_request".into()),
        "the ceremony is used up"
    );
    // A new ceremony, a new challenge: the old answer does not fit it.
    let fresh = alice.run_async(ASSERTION_ONLY, json!([csrf])).await;
    assert!(fresh["error"].is_null(), "{fresh}");
    let cookies = alice.cookie_header().await;
    let old_answer = finish_passkey_sign_in(&app, &cookies, &csrf, &answer).await;
    assert_eq!(old_answer, (401, "invalid_credentials".into()));
    // An answer made for this origin, sent to another one (an instance on another port
    // of the same database, whose ceremony it finds): refused.
    let elsewhere = spawn_app_on_localhost(Some(&app), |_| {}).await;
    let answer = alice.run_async(ASSERTION_ONLY, json!([csrf])).await;
    let cookies = alice.cookie_header().await;
    let crossed = finish_passkey_sign_in(&elsewhere, &cookies, &csrf, &answer).await;
    assert_eq!(crossed, (401, "invalid_credentials".into()));
    // A ceremony past its five minutes.
    let answer = alice.run_async(ASSERTION_ONLY, json!([csrf])).await;
    {
        use latchkey::store::Statement;
        diesel::sql_query("UPDATE webauthn_ceremonies SET expires_at = 0")
            .run(&mut app.conn())
            .unwrap();
    }
    let cookies = alice.cookie_header().await;
    let late = finish_passkey_sign_in(&app, &cookies, &csrf, &answer).await;
    assert_eq!(late, (400, "invalid_request".into()));

    // Removed (with the password), the passkey signs in no more.
    alice.goto(&app.url("/dashboard")).await;
    alice
        .type_into(
            r#"form[action$="/remove"] input[name="password"]"#,
            PASSWORD,
        )
        .await;
    alice.click(r#"form[action$="/remove"] button"#).await;
    let dashboard = alice.source_when(|s| s.contains("Passkey removed.")).await;
    assert!(
        !dashboard.contains("passkey-list"),
        "none listed: {dashboard}"
    );
    alice.click(r#"form[action="/logout"] button"#).await;
    alice.url_when(|url| url.ends_with("/login")).await;
    alice.click("#passkey-sign-in-button").await;
    let login = alice.source_when(|s| s.contains("not accepted")).await;
    assert!(login.contains("not accepted"), "{login}");
    assert!(alice.url().await.ends_with("/login"));
    let refused = audit_events(&app);
    assert!(
        refused.contains(&("sign_in_failed".into(), "passkey".into())),
        "{refused:?}"
    );

    // At another address of the same server (its IP), the page names the one where
    // passkeys work instead of offering a prompt that must fail.
    alice
        .goto(&format!("http://127.0.0.1:{}/login", app.port))
        .await;
    alice
        .source_when(|s| s.contains("passkeys-elsewhere"))
        .await;
    assert!(alice.displayed("#passkeys-elsewhere").await);
    assert!(!alice.displayed("#passkey-sign-in-button").await);
    alice.quit().await;
}

/// (kind, detail) of every audit event, oldest first.
fn audit_events(app: &TestApp) -> Vec<(String, String)> {
    let out = app.cli(&["audit", "list", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    listed["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            let field = |name: &str| e[name].as_str().unwrap_or_default().to_owned();
            (field("kind"), field("detail"))
        })
        .collect()
}

#[actix_web::test]
async fn without_javascript_the_passkey_controls_stay_hidden_and_the_password_works() {
    let Some((chromium, chromedriver)) = browser_programs() else {
        return;
    };
    let app = spawn_app_on_localhost(None, |_| {}).await;
    app.add_user("alice", Role::User);
    let driver = Driver::start(chromium, &chromedriver).await;
    let alice = driver.browser_without_scripts().await;
    alice.goto(&app.url("/login")).await;
    assert!(!alice.displayed("#passkey-sign-in-button").await);
    assert!(!alice.displayed("#passkeys-elsewhere").await);
    alice.sign_in(&app, "alice").await;
    assert!(alice.url().await.ends_with("/dashboard"));
    assert!(!alice.displayed("#passkey-register-button").await);
    assert!(alice.source().await.contains("Hello, alice"));
    alice.quit().await;
}
