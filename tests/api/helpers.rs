use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use latchkey::clock::{self, Millis};
use latchkey::config::{MfaKeySource, ServeArgs, Settings};
use latchkey::db::{self, Db};
use latchkey::domain::{Password, Role, UserId, Username};
use latchkey::mfa::totp::Secret;
use latchkey::mfa::{recovery, MfaKey};
use latchkey::passwords;
use latchkey::schema::{login_failures, login_failures_by_ip};
use latchkey::startup::Application;
use latchkey::store::lockout::{self, Attempt};
use latchkey::store::{users, Actor, Statement, StoreError};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestApp {
    pub address: String,
    #[allow(dead_code)]
    pub port: u16,
    /// The database: a SQLite file path, or a fresh PostgreSQL database's URL.
    pub database: String,
    pub db: Db,
    /// Keeps cookies, never follows redirects.
    pub client: reqwest::Client,
    #[allow(dead_code)]
    pub settings: Settings,
    /// `http://127.0.0.1:PORT` of the metrics listener, when the settings ask for one.
    #[allow(dead_code)]
    pub metrics_address: Option<String>,
    _dir: tempfile::TempDir,
}

/// `serve`'s own defaults (its clap arguments, with no environment variable read), on a
/// free loopback port and with the issuer of a server on port 8080.
pub fn default_settings() -> Settings {
    use clap::{Args, FromArgMatches};
    let command =
        ServeArgs::augment_args(clap::Command::new("serve")).mut_args(|arg| arg.env(None::<&str>));
    let matches = command.get_matches_from([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--public-url",
        "http://127.0.0.1:8080",
    ]);
    let args = ServeArgs::from_arg_matches(&matches).expect("serve's defaults parse");
    let mut settings = Settings::from_args(&args).expect("serve's defaults are valid");
    // One known key, so every instance on a database agrees and tests can enrol users.
    settings.mfa_key = MfaKeySource::Given(test_mfa_key());
    settings
}

/// `TEST_LOG=1`: the servers' logs (`RUST_LOG`, default `info`) on the test's stderr, as
/// zero-to-production does; silent otherwise.
fn init_test_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").as_deref() == Ok("1") {
            let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

pub const TEST_MFA_KEY: &str = "dGVzdHMgb25seTogYSBrZXkgb2YgMzIgYnl0ZXMgISE";

pub fn test_mfa_key() -> MfaKey {
    MfaKey::parse(TEST_MFA_KEY).expect("the test key parses")
}

/// A user's TOTP turned on as the dashboard would do it (sealed with the test key, the
/// confirming step long past); the secret and the recovery codes.
pub fn enroll_totp(app: &TestApp, user_id: UserId) -> (Secret, Vec<String>) {
    let key = test_mfa_key();
    let secret = Secret::generate();
    let codes = recovery::generate_set();
    let hashes: Vec<Vec<u8>> = codes
        .iter()
        .map(|c| recovery::digest(&key, c).unwrap())
        .collect();
    let sealed = key.seal(user_id, secret.as_bytes());
    latchkey::store::mfa::enable(
        &mut app.conn(),
        clock::now(),
        user_id,
        &sealed,
        0,
        &hashes,
        &Actor::cli(),
    )
    .expect("TOTP turns on");
    (secret, codes)
}

/// The current TOTP code of `secret`, and the one after it (also accepted).
pub fn totp_now(secret: &Secret) -> (String, String) {
    let step = clock::now().unix_seconds() / 30;
    (secret.code_at_step(step), secret.code_at_step(step + 1))
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = match postgres_server() {
        Some(server) => fresh_postgres_database(&server),
        None => dir.path().join("latchkey.db").to_str().unwrap().to_owned(),
    };
    spawn_on(dir, database, adjust)
}

/// Starts another server on an existing database (a restart, or a second instance).
pub async fn spawn_on_same_db(app: &TestApp, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_on(dir, app.database.clone(), adjust)
}

/// The PostgreSQL server the suite runs against (`TEST_DATABASE_URL`, a superuser URL, as
/// `scripts/with-postgres` sets it), or `None` for SQLite.
pub fn postgres_server() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|url| url.starts_with("postgres"))
}

/// A test that needs SQLite itself (its file, its pragmas, its triggers): on the
/// PostgreSQL run it says so and returns true, and the test returns.
pub fn sqlite_only(why: &str) -> bool {
    if postgres_server().is_some() {
        eprintln!("SQLite only ({why}): runs in the SQLite pass of the suite");
        return true;
    }
    false
}

/// Creates an empty database on the test server; its URL.
pub fn fresh_postgres_database(server: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "lk_{}_{}_{:08x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    let mut admin = diesel::PgConnection::establish(server).expect("test PostgreSQL answers");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .expect("a fresh database");
    let (base, _) = server.rsplit_once('/').expect("a URL with a database name");
    format!("{base}/{name}")
}

/// Starts a server whose public URL is its own address, as verifiers that fetch the
/// discovery document need.
pub async fn spawn_app_at_own_url(adjust: impl Fn(&mut Settings)) -> TestApp {
    spawn_at_own_url("127.0.0.1", None, adjust)
}

/// Starts a server on `http://localhost:PORT` (its public URL and the address the test
/// uses): browsers offer passkeys on a host name, never on an IP address. With `same_db`,
/// on that server's database (another instance).
#[allow(dead_code)]
pub async fn spawn_app_on_localhost(
    same_db: Option<&TestApp>,
    adjust: impl Fn(&mut Settings),
) -> TestApp {
    let mut app = spawn_at_own_url("localhost", same_db.map(|a| a.database.clone()), adjust);
    app.address = app.settings.public_url.clone();
    app
}

/// The port is picked before binding, so when another test takes it first another one
/// is tried.
fn spawn_at_own_url(
    host: &str,
    database: Option<String>,
    adjust: impl Fn(&mut Settings),
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = match (database, postgres_server()) {
        (Some(database), _) => database,
        (None, Some(server)) => fresh_postgres_database(&server),
        (None, None) => dir.path().join("latchkey.db").to_str().unwrap().to_owned(),
    };
    let mut attempts = 0;
    let mut dir = Some(dir);
    loop {
        let port = free_port();
        let at_port = |s: &mut Settings| {
            adjust(s);
            s.bind = format!("127.0.0.1:{port}");
            s.public_url = format!("http://{host}:{port}");
        };
        match try_spawn_on(dir.take().unwrap(), database.clone(), at_port) {
            Ok(app) => return app,
            Err((error, back)) if attempts < 5 && format!("{error:#}").contains("in use") => {
                attempts += 1;
                dir = Some(back);
            }
            Err((error, _)) => panic!("app builds: {error:#}"),
        }
    }
}

fn spawn_on(
    dir: tempfile::TempDir,
    database: String,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    try_spawn_on(dir, database, adjust).unwrap_or_else(|(error, _)| panic!("app builds: {error:#}"))
}

/// Builds and spawns a server; on failure, the error and the directory back for a retry.
fn try_spawn_on(
    dir: tempfile::TempDir,
    database: String,
    adjust: impl FnOnce(&mut Settings),
) -> Result<TestApp, (anyhow::Error, tempfile::TempDir)> {
    init_test_log();
    let mut settings = default_settings();
    adjust(&mut settings);
    let db = db::open(&database, 8).expect("database opens");
    let app = match Application::build(settings.clone(), db.clone()) {
        Ok(app) => app,
        Err(error) => return Err((error, dir)),
    };
    let port = app.port();
    let metrics_address = app
        .metrics_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    actix_web::rt::spawn(app.run());
    Ok(TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        database,
        db,
        client: client(),
        settings,
        metrics_address,
        _dir: dir,
    })
}

/// A loopback port free at the moment of asking (a child process binds it next; callers
/// retry if another test took it first).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// A writable connection of the test's own, as another process would have.
    pub fn conn(&self) -> db::Conn {
        db::connect(&self.database).expect("database opens")
    }

    /// Creates a user directly in the database.
    pub fn add_user(&self, name: &str, role: Role) -> UserId {
        let hash = passwords::hash_blocking(&Password::parse(PASSWORD.into()).unwrap()).unwrap();
        let mut conn = self.conn();
        users::create(
            &mut conn,
            clock::now(),
            &Username::parse(name).unwrap(),
            &hash,
            role,
            &Actor::cli(),
        )
        .unwrap()
        .id
    }

    pub async fn post_token(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        client
            .post(self.url("/auth/token"))
            .json(&json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap()
    }

    /// Signs in with `client` (which keeps the refresh cookie) and returns the access token.
    pub async fn sign_in(&self, client: &reqwest::Client, username: &str) -> String {
        let response = self.post_token(client, username, PASSWORD).await;
        assert_eq!(response.status(), 200, "sign-in of {username} failed");
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn refresh(&self, client: &reqwest::Client) -> reqwest::Response {
        client.post(self.url("/auth/refresh")).send().await.unwrap()
    }

    /// A refresh presenting `token` explicitly, with no cookie jar.
    pub async fn refresh_with(&self, token: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(self.url("/auth/refresh"))
            .header("cookie", format!("lk_refresh={token}"))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_bearer(&self, path: &str, token: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete_bearer(&self, path: &str, token: &str) -> reqwest::Response {
        reqwest::Client::new()
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// The session id an access token belongs to, as `/api/me` reports it.
    pub async fn session_id(&self, access: &str) -> String {
        self.me(access).await["session_id"]
            .as_str()
            .expect("session_id is a string")
            .to_owned()
    }

    pub async fn me(&self, token: &str) -> Value {
        let response = self.get_bearer("/api/me", token).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Runs the built `latchkey` binary against this app's database.
    pub fn cli(&self, args: &[&str]) -> Output {
        run_cli(&self.database, args, None)
    }

    pub fn cli_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        run_cli(&self.database, args, Some(stdin))
    }
}

pub fn run_cli(database: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command
        .arg("--database")
        .arg(database)
        .args(args)
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = command.spawn().expect("latchkey binary runs");
    if let Some(input) = stdin {
        // A command that fails before reading (a bad name, an existing user) may exit
        // before we finish writing: that closed pipe is its answer, not a test failure.
        match child.stdin.take().unwrap().write_all(input.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("writing stdin: {e}"),
            _ => {}
        }
    }
    child.wait_with_output().unwrap()
}

/// The value of a `Set-Cookie` for `name`, with its attributes.
pub fn set_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v: &HeaderValue| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

/// Just the cookie's value.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    set_cookie(headers, name).map(|c| {
        c[name.len() + 1..]
            .split(';')
            .next()
            .unwrap_or("")
            .to_owned()
    })
}

pub async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("error bodies are JSON");
    assert!(
        body["message"].is_string(),
        "error body has a message: {body}"
    );
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Polls `/api/me` until it stops answering 200; returns how long that took.
pub async fn time_until_refused(app: &TestApp, access: &str, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let response = app.get_bearer("/api/me", access).await;
        if response.status() == 401 {
            assert_eq!(error_code(response).await.1, "session_revoked");
            return Some(start.elapsed());
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// One failed sign-in of `username` from `actor.ip`, counted and audited the way the
/// sign-in flow does it; the end of the lockout it started or met.
pub fn record_failure(
    conn: &mut db::Conn,
    now: Millis,
    username: &str,
    user_id: Option<UserId>,
    actor: &Actor,
    policy: lockout::Policy,
) -> Result<Option<Millis>, StoreError> {
    let ip = actor.ip.as_deref().unwrap_or("unknown");
    match lockout::reserve(conn, now, username, user_id, ip, actor, policy)? {
        Attempt::Allowed(attempt) => {
            lockout::confirm_failure(conn, now, &attempt, user_id, actor, policy)
        }
        Attempt::Locked(until) => Ok(Some(until)),
        Attempt::Busy => panic!("no attempt is pending in these tests"),
    }
}

/// The end of a lockout running at `now` on (username, ip) or on the whole ip, read
/// straight from the tables.
pub fn locked_until(conn: &mut db::Conn, now: Millis, username: &str, ip: &str) -> Option<Millis> {
    let pair: Option<Option<Millis>> = login_failures::table
        .find((username, ip))
        .select(login_failures::locked_until)
        .one(conn)
        .optional()
        .unwrap();
    let whole: Option<Option<Millis>> = login_failures_by_ip::table
        .find(ip)
        .select(login_failures_by_ip::locked_until)
        .one(conn)
        .optional()
        .unwrap();
    [pair.flatten(), whole.flatten()]
        .into_iter()
        .flatten()
        .filter(|until| *until > now)
        .max()
}

/// A PostgreSQL cluster of one test's own, to stop and start under a running server
/// (the shared test server must stay up for the other tests). Needs `TEST_POSTGRES_BIN`
/// (set by `scripts/with-postgres`); stopped by `pg_ctl` on its own data directory.
pub struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
}

impl OwnPostgres {
    pub fn start() -> Self {
        let bin = PathBuf::from(std::env::var("TEST_POSTGRES_BIN").expect("TEST_POSTGRES_BIN"));
        let dir = tempfile::tempdir().unwrap();
        // initdb refuses root: the cluster belongs to the postgres user when we are root.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let port = free_port();
        let cluster = OwnPostgres { dir, bin, port };
        cluster.pg(&[
            "initdb",
            "-D",
            &cluster.data(),
            "-U",
            "postgres",
            "--auth=trust",
        ]);
        cluster.resume();
        cluster
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_str().unwrap().to_owned()
    }

    fn pg(&self, args: &[&str]) {
        let program = self.bin.join(args[0]);
        let root = unsafe { libc::geteuid() } == 0;
        let mut command = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = command
            .args(&args[1..])
            .stdout(Stdio::null())
            .output()
            .expect("PostgreSQL tools run");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts (again) on the same port and data.
    pub fn resume(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.pg(&[
            "pg_ctl",
            "-D",
            &self.data(),
            "-l",
            log.to_str().unwrap(),
            "-w",
            "-o",
            &options,
            "start",
        ]);
    }

    /// Stops it (fast: open connections are cut, as in a crash of the server's host).
    pub fn stop(&self) {
        self.pg(&["pg_ctl", "-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    /// A fresh database on it; its URL.
    pub fn database(&self) -> String {
        fresh_postgres_database(&format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.port
        ))
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let data = self.data();
        if std::path::Path::new(&data).join("postmaster.pid").exists() {
            self.pg(&["pg_ctl", "-D", &data, "-m", "immediate", "-w", "stop"]);
        }
    }
}

/// A server on `database` (a URL or path made by the caller).
pub async fn spawn_on_database(database: String, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_on(tempfile::tempdir().expect("temp dir"), database, adjust)
}
