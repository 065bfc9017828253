//! A real nginx on loopback, with the README's configurations: two instances on one
//! database behind it (a client that lands on either instance at every request signs in,
//! refreshes, and signs out as with one), and nginx `auth_request` in front of another
//! application, asking `/api/verify` (the README's snippet itself is what runs). Skipped
//! when nginx is not installed, unless `LATCHKEY_REQUIRE_NGINX=1` (CI), where
//! `scripts/test` has installed it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use latchkey::domain::Role;
use serde_json::Value;

use crate::helpers::*;

const NGINX: &str = "/usr/sbin/nginx";

/// nginx in front of `upstreams`, as a child of the test; killed (by its PID) on drop.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

/// The balancer of the README, listening on `port`, for `upstreams`.
fn balancer(port: u16, upstreams: &[u16]) -> String {
    let servers: String = upstreams
        .iter()
        .map(|p| format!("        server 127.0.0.1:{p};\n"))
        .collect();
    format!(
        "upstream latchkey {{
{servers}    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://latchkey;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}"
    )
}

/// nginx is there, or the test may be skipped (not on CI).
fn nginx_installed() -> bool {
    if std::path::Path::new(NGINX).exists() {
        return true;
    }
    assert_ne!(
        std::env::var("LATCHKEY_REQUIRE_NGINX").as_deref(),
        Ok("1"),
        "LATCHKEY_REQUIRE_NGINX=1 but nginx is missing (scripts/test installs it)"
    );
    eprintln!("nginx is not installed: skipped");
    false
}

impl Nginx {
    /// nginx on `port` with `http` as the inside of its `http` block.
    fn start(port: u16, http: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let conf = format!(
            "worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    {http}
}}
"
        );
        let path = dir.path().join("nginx.conf");
        std::fs::write(&path, conf).unwrap();
        let child = Command::new(NGINX)
            .args(["-p", &d.to_string(), "-e", &format!("{d}/error.log"), "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx starts");
        Nginx {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Until nginx answers `path` at all.
    async fn wait_ready(&mut self, path: &str) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            assert!(self.child.try_wait().unwrap().is_none(), "nginx exited");
            if client().get(self.url(path)).send().await.is_ok() {
                return;
            }
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("nginx never answered");
    }
}

impl Drop for Nginx {
    /// SIGTERM, so the master stops its workers (a SIGKILLed master leaves them running),
    /// and SIGKILL only if it has not exited within 5 s.
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[actix_web::test]
async fn two_instances_behind_nginx_serve_one_client_as_one() {
    if !nginx_installed() {
        return;
    }
    let behind = |s: &mut latchkey::config::Settings| {
        s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    };
    let a = spawn_app_with(behind).await;
    let b = spawn_on_same_db(&a, behind).await;
    a.add_user("alice", Role::User);
    let port = free_port();
    let mut nginx = Nginx::start(port, &balancer(port, &[a.port, b.port]));
    nginx.wait_ready("/healthz").await;

    // Round robin: consecutive requests alternate between the instances.
    let browser = client();
    let signed_in = browser
        .post(nginx.url("/auth/token"))
        .json(&serde_json::json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    let access = signed_in.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..10 {
        let refreshed = browser
            .post(nginx.url("/auth/refresh"))
            .send()
            .await
            .unwrap();
        let status = refreshed.status();
        assert_eq!(
            status,
            200,
            "refresh {i} through nginx: {}",
            refreshed.text().await.unwrap()
        );
    }
    let me = reqwest::Client::new()
        .get(nginx.url("/api/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    let out = browser
        .post(nginx.url("/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    // Refused by whichever instance answers, and then by both, for good.
    let start = Instant::now();
    let mut refusals_in_a_row = 0;
    while refusals_in_a_row < 4 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the sign-out never reached both"
        );
        let status = reqwest::Client::new()
            .get(nginx.url("/api/me"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .status();
        refusals_in_a_row = if status == 401 {
            refusals_in_a_row + 1
        } else {
            0
        };
    }
    let refused = browser
        .post(nginx.url("/auth/refresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.status(),
        401,
        "the signed-out session refreshes nowhere"
    );
}

/// The README's forward-auth configuration, verbatim, with its ports replaced by loopback
/// ones: nginx on `port`, latchkey on `latchkey`, the application on `app`.
fn readme_forward_auth(port: u16, latchkey: u16, app: u16) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let marker = "<!-- forward-auth: the block below is tested verbatim by tests/api/nginx.rs -->";
    let after = &readme[readme
        .find(marker)
        .expect("the README's forward-auth block")
        + marker.len()..];
    let block = after
        .split_once("```nginx\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a fenced nginx block")
        .0;
    assert!(
        block.contains("listen 80;")
            && block.contains("127.0.0.1:8080")
            && block.contains("127.0.0.1:9000")
    );
    block
        .replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{latchkey}"))
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{app}"))
}

/// The application behind nginx: answers every request with the `x-latchkey-*` headers it
/// received, as JSON.
fn spawn_echo_app() -> u16 {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    async fn echo(request: HttpRequest) -> HttpResponse {
        let headers: serde_json::Map<String, Value> = request
            .headers()
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("x-latchkey-"))
            .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").into()))
            .collect();
        HttpResponse::Ok().json(serde_json::json!({"path": request.path(), "headers": headers}))
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(|| App::new().default_service(web::to(echo)))
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
    actix_web::rt::spawn(server);
    port
}

#[actix_web::test]
async fn nginx_auth_request_lets_through_only_who_latchkey_verifies() {
    if !nginx_installed() {
        return;
    }
    let lk = spawn_app().await;
    let alice = lk.add_user("alice", Role::User);
    let root = lk.add_user("root", Role::Admin);
    let app = spawn_echo_app();
    let port = free_port();
    let mut nginx = Nginx::start(port, &readme_forward_auth(port, lk.port, app));
    nginx.wait_ready("/").await;
    let get = |path: &str, token: Option<&str>| {
        let mut request = reqwest::Client::new()
            .get(nginx.url(path))
            // A client cannot pass itself off as someone through the headers.
            .header("X-Latchkey-Role", "admin")
            .header("X-Latchkey-User-Id", "1");
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    let anonymous = get("/notes", None).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        r#"Bearer realm="latchkey""#
    );
    let garbage = get("/notes", Some("not-a-token")).await.unwrap();
    assert_eq!(garbage.status(), 401);

    let token = lk.sign_in(&client(), "alice").await;
    let through = get("/notes?x=1", Some(&token)).await.unwrap();
    assert_eq!(through.status(), 200);
    let seen: Value = through.json().await.unwrap();
    let session = lk.session_id(&token).await;
    assert_eq!(seen["path"], "/notes");
    assert_eq!(
        seen["headers"],
        serde_json::json!({
            "x-latchkey-user-id": alice.to_string(),
            "x-latchkey-username": "alice",
            "x-latchkey-role": "user",
            "x-latchkey-session-id": session,
            "x-latchkey-amr": "pwd",
        })
    );
    // The page cookie works as well as the header.
    let by_cookie = reqwest::Client::new()
        .get(nginx.url("/notes"))
        .header("cookie", format!("lk_access={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_cookie.status(), 200);

    assert_eq!(
        get("/admin/users", Some(&token)).await.unwrap().status(),
        403
    );
    let admin = lk.sign_in(&client(), "root").await;
    let admitted = get("/admin/users", Some(&admin)).await.unwrap();
    assert_eq!(admitted.status(), 200);
    let seen: Value = admitted.json().await.unwrap();
    assert_eq!(seen["headers"]["x-latchkey-user-id"], root.to_string());
    assert_eq!(seen["headers"]["x-latchkey-role"], "admin");

    // A revocation reaches the gateway within 1 s.
    let revoked = lk
        .delete_bearer(&format!("/api/sessions/{session}"), &token)
        .await;
    assert_eq!(revoked.status(), 204);
    let start = Instant::now();
    loop {
        let status = get("/notes", Some(&token)).await.unwrap().status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "nginx still lets the revoked session in"
        );
        actix_web::rt::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        get("/notes", Some(&admin)).await.unwrap().status(),
        200,
        "others stay in"
    );
}
