//! Micro-benchmarks of the per-request token work: `cargo bench --bench tokens`.
//! (Under `cargo test --all-targets` each runs once, as a smoke test.)

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use latchkey::clock;
use latchkey::domain::{Role, SessionId, UserId};
use latchkey::revocation::RevokedSessions;
use latchkey::tokens::access::{AccessTokens, Amr, SessionClaims};
use latchkey::tokens::keys::{KeyAlg, KeySet, Keys};
use latchkey::tokens::refresh::RefreshToken;
use latchkey::tokens::verified;

const ISSUER: &str = "http://127.0.0.1:8080";

fn eddsa() -> (AccessTokens, Vec<latchkey::store::keys::KeyRow>) {
    let rows = vec![KeyAlg::EdDsa
        .generate(latchkey::clock::Millis(0))
        .expect("key")];
    let tokens = AccessTokens::new(
        Keys::new(KeySet::stored(KeyAlg::EdDsa, &rows)),
        ISSUER.into(),
        900,
    );
    (tokens, rows)
}

fn hs256() -> AccessTokens {
    AccessTokens::new(Keys::new(KeySet::hs256(&[7u8; 32])), ISSUER.into(), 900)
}

fn issue(tokens: &AccessTokens) -> String {
    tokens
        .issue(
            UserId(7),
            "alice",
            Role::User,
            SessionClaims {
                id: SessionId(42),
                auth_time: 0,
                amr: Amr::Password,
                not_after: i64::MAX,
            },
        )
        .expect("issue")
        .token
}

fn access_tokens(c: &mut Criterion) {
    let (ed, rows) = eddsa();
    let hs = hs256();
    c.bench_function("issue EdDSA", |b| b.iter(|| issue(&ed)));
    // Baseline: the same token through `jsonwebtoken::encode`, which parses the PKCS#8
    // key and derives its public half on every call.
    let key = jsonwebtoken::EncodingKey::from_ed_der(&rows[0].private_key);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.typ = Some("at+jwt".into());
    header.kid = Some(rows[0].kid.clone());
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "7", "aud": "latchkey", "exp": 1, "iat": 0,
        "jti": "0123456789abcdefghijkl", "sid": "42", "name": "alice", "role": "user",
    });
    c.bench_function("issue EdDSA, jsonwebtoken::encode (baseline)", |b| {
        b.iter(|| jsonwebtoken::encode(&header, &claims, &key).expect("encode"))
    });
    c.bench_function("issue HS256", |b| b.iter(|| issue(&hs)));

    let ed_token = issue(&ed);
    let hs_token = issue(&hs);
    // A cold verification: swapping the key set out and back leaves an empty cache.
    c.bench_function("verify EdDSA (signature)", |b| {
        b.iter_batched(
            || {
                ed.keys.replace(KeySet::stored(KeyAlg::EdDsa, &[]));
                ed.keys.replace(KeySet::stored(KeyAlg::EdDsa, &rows));
            },
            |()| ed.verify(&ed_token).expect("valid"),
            BatchSize::PerIteration,
        )
    });
    c.bench_function("verify HS256 (signature)", |b| {
        b.iter_batched(
            || {
                hs.keys.replace(KeySet::stored(KeyAlg::EdDsa, &[]));
                hs.keys.replace(KeySet::hs256(&[7u8; 32]));
            },
            |()| hs.verify(&hs_token).expect("valid"),
            BatchSize::PerIteration,
        )
    });
    ed.verify(&ed_token).expect("valid");
    c.bench_function("verify EdDSA (cache hit)", |b| {
        b.iter(|| ed.verify(&ed_token).expect("valid"))
    });
    c.bench_function("token digest (SHA-256 cache key)", |b| {
        b.iter(|| verified::digest(&ed_token))
    });
}

fn refresh_tokens(c: &mut Criterion) {
    c.bench_function("refresh token: generate", |b| {
        b.iter(RefreshToken::generate)
    });
    let token = RefreshToken::generate();
    c.bench_function("refresh token: SHA-256", |b| b.iter(|| token.hash()));
}

fn revocation(c: &mut Criterion) {
    let now = clock::now();
    let revoked = RevokedSessions::new(std::time::Duration::from_secs(15 * 60));
    for id in 0..10_000 {
        revoked.insert(SessionId(id * 2), now);
    }
    c.bench_function("guard: revoked-session check (10k revoked)", |b| {
        b.iter(|| revoked.contains(SessionId(12_345)))
    });
}

criterion_group!(benches, access_tokens, refresh_tokens, revocation);
criterion_main!(benches);
