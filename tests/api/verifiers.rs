//! Real third-party verifiers, as integrating teams use them, verify latchkey's access
//! tokens with nothing but the discovery document or the JWKS URL: Python's PyJWT
//! (`PyJWKClient`), Node's `jose` (`createRemoteJWKSet`) and Node's `jsonwebtoken` +
//! `jwks-rsa`. Each keeps one key cache for its whole run — once before a `keys rotate`
//! and all through it — and no token may fail.
//!
//! `scripts/test` installs them beside their scripts from the lock files in
//! `tests/verifiers/` (`requirements.txt` with pip `--require-hashes` into `.venv/`,
//! `package-lock.json` with `npm ci` into `node_modules/`); without them the tests are
//! skipped, unless `LATCHKEY_REQUIRE_VERIFIERS=1` (CI).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use latchkey::config::JwtAlg;
use latchkey::domain::Role;
use latchkey::tokens::keys::KeyAlg;
use serde_json::Value;

use crate::helpers::*;

/// `tests/verifiers/`, when `scripts/test` has installed the verifiers there.
fn installed() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/verifiers");
    match dir.join(".venv/bin/python").exists() && dir.join("node_modules").exists() {
        true => Some(dir),
        false => {
            assert_ne!(
                std::env::var("LATCHKEY_REQUIRE_VERIFIERS").as_deref(),
                Ok("1"),
                "LATCHKEY_REQUIRE_VERIFIERS=1 but tests/verifiers has no .venv or node_modules \
                 (scripts/test installs them)"
            );
            eprintln!("third-party verifiers not installed (run scripts/test): skipped");
            None
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Library {
    PyJwt,
    Jose,
    JsonWebToken,
}

/// A verifier process: one token per line in, one verdict per line out.
struct Verifier {
    child: Child,
    io: Arc<Mutex<(Option<ChildStdin>, BufReader<ChildStdout>)>>,
}

impl Verifier {
    fn start(
        dir: &std::path::Path,
        library: Library,
        url: &str,
        alg: KeyAlg,
        issuer: &str,
    ) -> Self {
        let mut command = match library {
            Library::PyJwt => {
                let mut c = Command::new(dir.join(".venv/bin/python"));
                c.arg(dir.join("pyjwt_verify.py"));
                c
            }
            Library::Jose | Library::JsonWebToken => {
                let mut c = Command::new("node");
                c.arg(dir.join("node_verify.mjs"))
                    .arg(if library == Library::Jose {
                        "jose"
                    } else {
                        "jsonwebtoken"
                    });
                c
            }
        };
        let mut child = command
            .args([url, alg.name(), issuer])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the verifier starts");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Verifier {
            child,
            io: Arc::new(Mutex::new((stdin, stdout))),
        }
    }

    /// The verifier's verdict on `line` (a token), or its last words at end of input.
    async fn ask(&self, line: Option<String>) -> String {
        let io = self.io.clone();
        actix_web::rt::task::spawn_blocking(move || {
            let mut io = io.lock().unwrap();
            match line {
                Some(line) => {
                    let stdin = io.0.as_mut().unwrap();
                    writeln!(stdin, "{line}").unwrap();
                    stdin.flush().unwrap();
                }
                None => drop(io.0.take()),
            }
            let mut answer = String::new();
            io.1.read_line(&mut answer).unwrap();
            answer.trim().to_owned()
        })
        .await
        .unwrap()
    }

    async fn verify(&self, token: &str) -> String {
        self.ask(Some(token.to_owned())).await
    }

    /// Ends its input; how many times it downloaded the JWKS.
    async fn finish(mut self) -> u32 {
        let last = self.ask(None).await;
        let _ = self.child.wait();
        last.strip_prefix("fetches ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected last line {last:?}"))
    }
}

fn kid_of(token: &str) -> String {
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

async fn fresh_token(app: &TestApp, browser: &reqwest::Client) -> String {
    let response = app.refresh(browser).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// One verifier of `library` for `alg`: a token before the rotation, then a token every
/// 200 ms while `keys rotate` takes effect, then tokens of the new key — all verified
/// with the key set it fetched at the start. Returns how often it fetched the JWKS.
async fn verifies_across_a_rotation(
    dir: &std::path::Path,
    library: Library,
    alg: KeyAlg,
    via: &str,
) -> u32 {
    // The issuer and the discovery document's URLs must be the real address.
    let app = spawn_app_at_own_url(|s| s.jwt_alg = JwtAlg::Stored(alg)).await;
    let id = app.add_user("alice", Role::User);
    let browser = client();
    let before = app.sign_in(&browser, "alice").await;
    let verifier = Verifier::start(dir, library, &app.url(via), alg, &app.address);
    let what = format!("{library:?} {}", alg.name());
    assert_eq!(
        verifier.verify(&before).await,
        format!("ok {id}"),
        "{what}: before"
    );

    let out = app.cli(&["keys", "rotate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let old_kid = kid_of(&before);
    let start = Instant::now();
    let mut checked = 0;
    loop {
        let token = fresh_token(&app, &browser).await;
        assert_eq!(
            verifier.verify(&token).await,
            format!("ok {id}"),
            "{what}: during the rotation"
        );
        checked += 1;
        if kid_of(&token) != old_kid {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: the rotation took effect"
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..3 {
        let token = fresh_token(&app, &browser).await;
        assert_eq!(
            verifier.verify(&token).await,
            format!("ok {id}"),
            "{what}: after"
        );
    }
    assert_eq!(
        verifier.verify(&before).await,
        format!("ok {id}"),
        "{what}: the retired key's token"
    );
    // The control: the verifier does refuse what it should.
    let forged = format!("{}x", before);
    assert!(
        verifier.verify(&forged).await.starts_with("fail"),
        "{what}: a forged token"
    );
    eprintln!("{what}: {checked} tokens during the rotation");
    verifier.finish().await
}

const DISCOVERY: &str = "/.well-known/openid-configuration";
const JWKS: &str = "/.well-known/jwks.json";

#[actix_web::test]
async fn pyjwt_verifies_every_algorithm_across_a_rotation() {
    let Some(dir) = installed() else { return };
    for alg in KeyAlg::ALL {
        let fetches = verifies_across_a_rotation(&dir, Library::PyJwt, alg, DISCOVERY).await;
        assert_eq!(
            fetches, 1,
            "{alg:?}: the next key was in the first key set it fetched"
        );
    }
}

#[actix_web::test]
async fn node_jose_verifies_every_algorithm_across_a_rotation() {
    let Some(dir) = installed() else { return };
    for alg in KeyAlg::ALL {
        let fetches = verifies_across_a_rotation(&dir, Library::Jose, alg, JWKS).await;
        assert_eq!(
            fetches, 1,
            "{alg:?}: the next key was in the first key set it fetched"
        );
    }
}

#[actix_web::test]
async fn node_jsonwebtoken_with_jwks_rsa_verifies_rs256_and_es256_across_a_rotation() {
    let Some(dir) = installed() else { return };
    for alg in [KeyAlg::Rs256, KeyAlg::Es256] {
        // jwks-rsa caches per kid, so it fetches again for a kid it has not asked for.
        verifies_across_a_rotation(&dir, Library::JsonWebToken, alg, DISCOVERY).await;
    }
}

/// requests-oauthlib's password grant and refresh, with the answer it printed.
fn oauth_client(dir: &std::path::Path, app: &TestApp, username: &str, password: &str) -> Value {
    let mut child = Command::new(dir.join(".venv/bin/python"))
        .arg(dir.join("oauth_client.py"))
        .args([app.address.as_str(), username])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python starts");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the OAuth client failed");
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

#[actix_web::test]
async fn an_off_the_shelf_oauth_client_signs_in_with_the_password_grant_and_refreshes() {
    let Some(dir) = installed() else { return };
    let app = spawn_app_at_own_url(|_| {}).await;
    let id = app.add_user("alice", Role::User);
    let (dir, app) = (Arc::new(dir), Arc::new(app));
    let run = |password: &'static str| {
        let (dir, app) = (dir.clone(), app.clone());
        // The client blocks on HTTP to the server running on this thread's runtime.
        actix_web::rt::task::spawn_blocking(move || oauth_client(&dir, &app, "alice", password))
    };
    let answer = run(PASSWORD).await.unwrap();
    assert_eq!(answer["token_type"], "Bearer");
    for step in ["first", "second"] {
        assert_eq!(answer[step]["id"], id.to_string(), "{answer}");
        assert_eq!(answer[step]["username"], "alice");
    }
    assert_eq!(
        answer["first"]["session_id"], answer["second"]["session_id"],
        "one session"
    );
    assert_eq!(answer["rotated"], true, "{answer}");
    assert_eq!(answer["expires_in"], 900);

    let refused = run("a wrong password").await.unwrap();
    assert_eq!(
        refused,
        serde_json::json!({"error": "invalid_grant", "status": 400})
    );
}
