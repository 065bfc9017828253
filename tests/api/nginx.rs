//! Two instances on one database behind a real nginx (the README's example config, on
//! loopback): a client that lands on either instance at every request signs in,
//! refreshes, and signs out as with one. Skipped when nginx is not installed, unless
//! `LATCHKEY_REQUIRE_NGINX=1` (CI), where `scripts/test` has installed it.

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

impl Nginx {
    fn start(upstreams: &[u16]) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let servers: String = upstreams
            .iter()
            .map(|p| format!("        server 127.0.0.1:{p};\n"))
            .collect();
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
    upstream latchkey {{
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
    }}
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

    async fn wait_ready(&mut self) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            assert!(self.child.try_wait().unwrap().is_none(), "nginx exited");
            if let Ok(r) = client().get(self.url("/healthz")).send().await {
                if r.status() == 200 {
                    return;
                }
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
    if !std::path::Path::new(NGINX).exists() {
        assert_ne!(
            std::env::var("LATCHKEY_REQUIRE_NGINX").as_deref(),
            Ok("1"),
            "LATCHKEY_REQUIRE_NGINX=1 but nginx is missing (scripts/test installs it)"
        );
        eprintln!("nginx is not installed: skipped");
        return;
    }
    let behind = |s: &mut latchkey::config::Settings| {
        s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    };
    let a = spawn_app_with(behind).await;
    let b = spawn_on_same_db(&a, behind).await;
    a.add_user("alice", Role::User);
    let mut nginx = Nginx::start(&[a.port, b.port]);
    nginx.wait_ready().await;

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
