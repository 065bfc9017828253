//! The baselines latchkey is measured against, each run on the server's core by
//! `bench/run`:
//! - `serve`: plain actix-web handlers: a fixed JSON body, and the same body after
//!   verifying an EdDSA, ES256, RS256 or HS256 JWT with jsonwebtoken on every request;
//! - `sqlite`: the refresh rotation transaction in raw SQLite (prepared statements,
//!   WAL, synchronous=NORMAL) on latchkey's own schema;
//! - `postgres`: the same rotation transaction in raw PostgreSQL statements through libpq
//!   (diesel's `PgConnection`), from several connections at once;
//! - `argon2`: argon2id verifications back to back on one thread.

use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::web::{self, Data};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use anyhow::Context;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::PasswordHasher as _;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use clap::{Parser, Subcommand};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use latchkey_bench::stats::Recorder;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Parser)]
#[command(about = "Baselines for latchkey benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the baseline handlers on 127.0.0.1 (port printed as `PORT n`).
    Serve,
    /// Raw SQLite refresh rotations for SECONDS on a fresh database at DB.
    Sqlite {
        #[arg(long)]
        db: String,
        /// latchkey's migration (`migrations/*/up.sql`), so the schema is the same.
        #[arg(long)]
        schema: String,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long, default_value_t = 32)]
        chains: usize,
    },
    /// Raw PostgreSQL refresh rotations for SECONDS on the (migrated, empty) database at
    /// URL, CHAINS chains over CONNECTIONS connections.
    Postgres {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        #[arg(long, default_value_t = 32)]
        chains: usize,
        #[arg(long, default_value_t = 8)]
        connections: usize,
    },
    /// argon2id (m=19456 KiB, t=2, p=1) verifications for SECONDS.
    Argon2 {
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve => serve(),
        Command::Sqlite {
            db,
            schema,
            seconds,
            chains,
        } => sqlite(&db, &schema, Duration::from_secs_f64(seconds), chains),
        Command::Postgres {
            url,
            seconds,
            chains,
            connections,
        } => postgres::run(&url, Duration::from_secs_f64(seconds), chains, connections),
        Command::Argon2 { seconds } => argon2(Duration::from_secs_f64(seconds)),
    }
}

// ---- HTTP baselines ----

const ISSUER: &str = "http://127.0.0.1:8080";
const AUDIENCE: &str = "latchkey";
/// About what `GET /api/me` answers.
const FIXED: &str = r#"{"id":"1","username":"bench","role":"user","session_id":"1"}"#;

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    exp: i64,
    iat: i64,
    jti: String,
    sid: String,
    name: String,
    role: String,
}

struct Scheme {
    token: String,
    key: DecodingKey,
    validation: Validation,
}

/// One scheme per algorithm, by its path name (`eddsa`, `es256`, `rs256`, `hs256`).
struct Baselines(std::collections::HashMap<String, Scheme>);

fn scheme(alg: jsonwebtoken::Algorithm, encoding: &EncodingKey, key: DecodingKey) -> Scheme {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut head = Header::new(alg);
    head.typ = Some("at+jwt".into());
    head.kid = Some("baseline-key-1".into());
    let claims = Claims {
        iss: ISSUER.into(),
        sub: "1".into(),
        aud: AUDIENCE.into(),
        exp: now + 3600,
        iat: now,
        jti: "b1xqg9TXxPoM0kuR8UYw3A".into(),
        sid: "1".into(),
        name: "bench".into(),
        role: "user".into(),
    };
    let token = jsonwebtoken::encode(&head, &claims, encoding).expect("baseline token signs");
    let mut validation = Validation::new(alg);
    validation.leeway = 5;
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    Scheme {
        token,
        key,
        validation,
    }
}

fn baselines() -> anyhow::Result<Baselines> {
    use jsonwebtoken::Algorithm as Alg;
    use rsa::pkcs1::{EncodeRsaPrivateKey as _, EncodeRsaPublicKey as _};
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
    let der = signing
        .to_pkcs8_der()
        .map_err(|e| anyhow::anyhow!("pkcs8: {e}"))?;
    let public = signing.verifying_key().to_bytes();
    let ec = p256::ecdsa::SigningKey::random(&mut rsa::rand_core::OsRng);
    let ec_der = ec
        .to_pkcs8_der()
        .map_err(|e| anyhow::anyhow!("pkcs8: {e}"))?;
    let ec_point = ec.verifying_key().to_encoded_point(false);
    let rsa_key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)?;
    let rsa_der = rsa_key.to_pkcs1_der()?;
    let rsa_public = rsa_key.to_public_key().to_pkcs1_der()?;
    let secret = [42u8; 32];
    let schemes = [
        (
            "eddsa",
            scheme(
                Alg::EdDSA,
                &EncodingKey::from_ed_der(der.as_bytes()),
                DecodingKey::from_ed_der(&public),
            ),
        ),
        (
            "es256",
            scheme(
                Alg::ES256,
                &EncodingKey::from_ec_der(ec_der.as_bytes()),
                DecodingKey::from_ec_der(ec_point.as_bytes()),
            ),
        ),
        (
            "rs256",
            scheme(
                Alg::RS256,
                &EncodingKey::from_rsa_der(rsa_der.as_bytes()),
                DecodingKey::from_rsa_der(rsa_public.as_bytes()),
            ),
        ),
        (
            "hs256",
            scheme(
                Alg::HS256,
                &EncodingKey::from_secret(&secret),
                DecodingKey::from_secret(&secret),
            ),
        ),
    ];
    Ok(Baselines(
        schemes
            .into_iter()
            .map(|(n, s)| (n.to_owned(), s))
            .collect(),
    ))
}

async fn fixed() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(FIXED)
}

fn verified(req: &HttpRequest, scheme: &Scheme) -> HttpResponse {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token.map(|t| jsonwebtoken::decode::<Claims>(t, &scheme.key, &scheme.validation)) {
        Some(Ok(_)) => HttpResponse::Ok()
            .content_type("application/json")
            .body(FIXED),
        _ => HttpResponse::Unauthorized().finish(),
    }
}

async fn verify(req: HttpRequest, alg: web::Path<String>, b: Data<Baselines>) -> HttpResponse {
    match b.0.get(alg.as_str()) {
        Some(scheme) => verified(&req, scheme),
        None => HttpResponse::NotFound().finish(),
    }
}

async fn token(alg: web::Path<String>, b: Data<Baselines>) -> HttpResponse {
    match b.0.get(alg.as_str()) {
        Some(scheme) => HttpResponse::Ok().body(scheme.token.clone()),
        None => HttpResponse::NotFound().finish(),
    }
}

fn serve() -> anyhow::Result<()> {
    let state = Data::new(baselines()?);
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    println!("PORT {}", listener.local_addr()?.port());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .route("/fixed", web::get().to(fixed))
                .route("/verify/{alg}", web::get().to(verify))
                .route("/token/{alg}", web::get().to(token))
        })
        .workers(workers)
        .listen(listener)?
        .run()
        .await
    })?;
    Ok(())
}

// ---- SQLite baseline ----

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn random_hash() -> Vec<u8> {
    let mut token = [0u8; 32];
    rand::fill(&mut token);
    Sha256::digest(token).to_vec()
}

/// What latchkey's `sessions::rotate` does, as plain prepared statements in one
/// `BEGIN IMMEDIATE` transaction: find the token by hash, read its session and user,
/// mark it rotated, insert the successor, touch the session.
fn rotate(conn: &mut Connection, presented: &[u8], next: &[u8]) -> rusqlite::Result<bool> {
    const DAY: i64 = 86_400_000;
    let now = now_ms();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let token = tx
        .prepare_cached(
            "SELECT id, session_id, expires_at, rotated_at FROM refresh_tokens WHERE token_hash = ?1",
        )?
        .query_row([presented], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })
        .optional()?;
    let Some((token_id, session_id, expires_at, rotated_at)) = token else {
        return Ok(false);
    };
    let (revoked, absolute, disabled) = tx
        .prepare_cached(
            "SELECT s.revoked_at, s.absolute_expires_at, u.disabled FROM sessions s
             JOIN users u ON u.id = s.user_id WHERE s.id = ?1",
        )?
        .query_row([session_id], |r| {
            Ok((
                r.get::<_, Option<i64>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, bool>(2)?,
            ))
        })?;
    if revoked.is_some() || absolute <= now || disabled || rotated_at.is_some() || expires_at <= now
    {
        return Ok(false);
    }
    tx.prepare_cached("UPDATE refresh_tokens SET rotated_at = ?1 WHERE id = ?2")?
        .execute(params![now, token_id])?;
    let expires = (now + 7 * DAY).min(absolute);
    tx.prepare_cached(
        "INSERT INTO refresh_tokens (session_id, token_hash, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![session_id, next, now, expires])?;
    tx.prepare_cached(
        "UPDATE sessions SET last_used_at = ?1, expires_at = ?2, ip = ?3, user_agent = ?4
         WHERE id = ?5",
    )?
    .execute(params![now, expires, "127.0.0.1", "lk-load", session_id])?;
    tx.commit()?;
    Ok(true)
}

fn sqlite(path: &str, schema: &str, window: Duration, chains: usize) -> anyhow::Result<()> {
    const DAY: i64 = 86_400_000;
    let mut conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA busy_timeout = 5000; PRAGMA journal_mode = WAL;
         PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
    )?;
    let schema = std::fs::read_to_string(schema).with_context(|| format!("reading {schema}"))?;
    conn.execute_batch(&schema)?;
    let now = now_ms();
    conn.execute(
        "INSERT INTO users (username, password_hash, role, created_at) VALUES ('bench', '!', 'user', ?1)",
        [now],
    )?;
    let mut current = Vec::with_capacity(chains);
    for _ in 0..chains {
        conn.execute(
            "INSERT INTO sessions (user_id, created_at, last_used_at, expires_at, absolute_expires_at, ip, user_agent)
             VALUES (1, ?1, ?1, ?2, ?3, '127.0.0.1', 'lk-load')",
            params![now, now + 7 * DAY, now + 30 * DAY],
        )?;
        let hash = random_hash();
        conn.execute(
            "INSERT INTO refresh_tokens (session_id, token_hash, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![conn.last_insert_rowid(), hash, now, now + 7 * DAY],
        )?;
        current.push(hash);
    }
    let mut recorder = Recorder::default();
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < window {
        let chain = i % chains;
        i += 1;
        let next = random_hash();
        let began = Instant::now();
        match rotate(&mut conn, &current[chain], &next) {
            Ok(true) => {
                recorder.success(began.elapsed());
                current[chain] = next;
            }
            _ => recorder.error(),
        }
    }
    println!("{}", recorder.summary("sqlite", start.elapsed()));
    Ok(())
}

// ---- argon2 baseline ----

fn argon2(window: Duration) -> anyhow::Result<()> {
    let params = Params::new(19_456, 2, 1, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let password = b"correct horse battery staple";
    let phc = hasher
        .hash_password_with_salt(password, b"baseline-salt-16")
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .to_string();
    let parsed = PasswordHash::new(&phc).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (salt, expected) = (parsed.salt.context("salt")?, parsed.hash.context("hash")?);
    let mut blocks = vec![Block::new(); params.block_count()];
    let mut out = vec![0u8; expected.len()];
    let mut recorder = Recorder::default();
    let start = Instant::now();
    while start.elapsed() < window {
        let began = Instant::now();
        hasher
            .hash_password_into_with_memory(password, &salt, &mut out, &mut blocks)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if out == expected.as_bytes() {
            recorder.success(began.elapsed());
        } else {
            recorder.error();
        }
    }
    println!("{}", recorder.summary("argon2", start.elapsed()));
    Ok(())
}

mod postgres {
    //! The rotation transaction of `rotate` above, on PostgreSQL: what latchkey's store
    //! does for a refresh, without the service around it.

    use std::time::{Duration, Instant};

    use diesel::connection::SimpleConnection;
    use diesel::pg::PgConnection;
    use diesel::sql_types::{BigInt, Binary, Bool, Nullable, Text};
    use diesel::{Connection, OptionalExtension, QueryableByName, RunQueryDsl};
    use latchkey_bench::stats::Recorder;

    const DAY: i64 = 86_400_000;

    #[derive(QueryableByName)]
    struct Token {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = BigInt)]
        session_id: i64,
        #[diesel(sql_type = BigInt)]
        expires_at: i64,
        #[diesel(sql_type = Nullable<BigInt>)]
        rotated_at: Option<i64>,
    }

    #[derive(QueryableByName)]
    struct Session {
        #[diesel(sql_type = Nullable<BigInt>)]
        revoked_at: Option<i64>,
        #[diesel(sql_type = BigInt)]
        absolute_expires_at: i64,
        #[diesel(sql_type = Bool)]
        disabled: bool,
    }

    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }

    fn rotate(conn: &mut PgConnection, presented: &[u8], next: &[u8]) -> diesel::QueryResult<bool> {
        let now = super::now_ms();
        conn.transaction(|conn| {
            let token: Option<Token> = diesel::sql_query(
                "SELECT id, session_id, expires_at, rotated_at FROM refresh_tokens WHERE token_hash = $1",
            )
            .bind::<Binary, _>(presented)
            .get_result(conn)
            .optional()?;
            let Some(token) = token else { return Ok(false) };
            let session: Session = diesel::sql_query(
                "SELECT s.revoked_at, s.absolute_expires_at, u.disabled FROM sessions s
                 JOIN users u ON u.id = s.user_id WHERE s.id = $1",
            )
            .bind::<BigInt, _>(token.session_id)
            .get_result(conn)?;
            if session.revoked_at.is_some()
                || session.absolute_expires_at <= now
                || session.disabled
                || token.rotated_at.is_some()
                || token.expires_at <= now
            {
                return Ok(false);
            }
            let rotated = diesel::sql_query(
                "UPDATE refresh_tokens SET rotated_at = $1 WHERE id = $2 AND rotated_at IS NULL",
            )
            .bind::<BigInt, _>(now)
            .bind::<BigInt, _>(token.id)
            .execute(conn)?;
            if rotated != 1 {
                return Ok(false);
            }
            let expires = (now + 7 * DAY).min(session.absolute_expires_at);
            diesel::sql_query(
                "INSERT INTO refresh_tokens (session_id, token_hash, created_at, expires_at)
                 VALUES ($1, $2, $3, $4)",
            )
            .bind::<BigInt, _>(token.session_id)
            .bind::<Binary, _>(next)
            .bind::<BigInt, _>(now)
            .bind::<BigInt, _>(expires)
            .execute(conn)?;
            diesel::sql_query(
                "UPDATE sessions SET last_used_at = $1, expires_at = $2, ip = $3, user_agent = $4
                 WHERE id = $5",
            )
            .bind::<BigInt, _>(now)
            .bind::<BigInt, _>(expires)
            .bind::<Text, _>("127.0.0.1")
            .bind::<Text, _>("lk-load")
            .bind::<BigInt, _>(token.session_id)
            .execute(conn)?;
            Ok(true)
        })
    }

    pub fn run(
        url: &str,
        window: Duration,
        chains: usize,
        connections: usize,
    ) -> anyhow::Result<()> {
        let mut setup = PgConnection::establish(url)?;
        let now = super::now_ms();
        setup.batch_execute(&format!(
            "INSERT INTO users (username, password_hash, role, created_at)
             VALUES ('raw-bench', '!', 'user', {now}) ON CONFLICT DO NOTHING"
        ))?;
        let user: Id = diesel::sql_query("SELECT id FROM users WHERE username = 'raw-bench'")
            .get_result(&mut setup)?;
        let mut chains_of: Vec<Vec<Vec<u8>>> = vec![Vec::new(); connections];
        for chain in 0..chains {
            let session: Id = diesel::sql_query(
                "INSERT INTO sessions (user_id, created_at, last_used_at, expires_at, absolute_expires_at, ip, user_agent)
                 VALUES ($1, $2, $2, $3, $4, '127.0.0.1', 'lk-load') RETURNING id",
            )
            .bind::<BigInt, _>(user.id)
            .bind::<BigInt, _>(now)
            .bind::<BigInt, _>(now + 7 * DAY)
            .bind::<BigInt, _>(now + 30 * DAY)
            .get_result(&mut setup)?;
            let hash = super::random_hash();
            diesel::sql_query(
                "INSERT INTO refresh_tokens (session_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind::<BigInt, _>(session.id)
            .bind::<Binary, _>(&hash)
            .bind::<BigInt, _>(now)
            .bind::<BigInt, _>(now + 7 * DAY)
            .execute(&mut setup)?;
            chains_of[chain % connections].push(hash);
        }
        let start = Instant::now();
        let workers: Vec<_> = chains_of
            .into_iter()
            .map(|mut current| {
                let url = url.to_owned();
                std::thread::spawn(move || -> anyhow::Result<Recorder> {
                    let mut conn = PgConnection::establish(&url)?;
                    let mut recorder = Recorder::default();
                    let mut i = 0;
                    while start.elapsed() < window && !current.is_empty() {
                        let chain = i % current.len();
                        i += 1;
                        let next = super::random_hash();
                        let began = Instant::now();
                        match rotate(&mut conn, &current[chain], &next) {
                            Ok(true) => {
                                recorder.success(began.elapsed());
                                current[chain] = next;
                            }
                            _ => recorder.error(),
                        }
                    }
                    Ok(recorder)
                })
            })
            .collect();
        let mut all = Recorder::default();
        for worker in workers {
            all.merge(
                worker
                    .join()
                    .map_err(|_| anyhow::anyhow!("a worker panicked"))??,
            );
        }
        println!("{}", all.summary("pg.raw", start.elapsed()));
        Ok(())
    }
}
