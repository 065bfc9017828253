//! No account enumeration: a wrong password, an unknown user and a disabled user get the
//! same status, headers and body, and take about the same time (every one of them costs
//! one argon2 verification).

use std::time::Instant;

use latchkey::domain::Role;

use crate::helpers::*;

/// The three ways a sign-in can fail, plus a name outside the username alphabet.
const KINDS: [(&str, &str, &str); 4] = [
    ("wrong password", "alice", "wrong password!"),
    ("unknown user", "nobody", PASSWORD),
    ("disabled user", "bob", PASSWORD),
    ("malformed name", "no such name!", PASSWORD),
];

async fn enumeration_app() -> TestApp {
    // No lockout within the test: it would answer 429 early and cheaply.
    let app = spawn_app_with(|s| s.login_max_failures = 1_000_000).await;
    app.add_user("alice", Role::User);
    app.add_user("bob", Role::User);
    assert!(app.cli(&["user", "disable", "bob"]).status.success());
    app
}

#[actix_web::test]
async fn every_failure_answers_the_same_bytes() {
    let app = enumeration_app().await;
    let mut answers = Vec::new();
    for (what, username, password) in KINDS {
        let response = app.post_token(&client(), username, password).await;
        let status = response.status();
        let mut headers: Vec<(String, String)> = response
            .headers()
            .iter()
            // The date and the request id differ for every response by design.
            .filter(|(name, _)| *name != "date" && *name != "x-request-id")
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        let body = response.text().await.unwrap();
        answers.push((what, status, headers, body));
    }
    let (_, status, headers, body) = &answers[0];
    assert_eq!(*status, 401);
    assert!(body.contains("invalid_credentials"), "{body}");
    for (what, other_status, other_headers, other_body) in &answers[1..] {
        assert_eq!(other_status, status, "{what}");
        assert_eq!(other_headers, headers, "{what}");
        assert_eq!(other_body, body, "{what}");
    }
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Times `ROUNDS` rounds of the four kinds and compares medians. Each round tries every
/// kind once, back to back, in a rotating order; each time is divided by the median of
/// its round. Other tests share the two cores, so the load rises and falls while this
/// runs: normalising within a round (~0.1 s) cancels that drift, which raw medians over
/// the whole run do not. Both are reported; the assertion uses the normalised ones.
#[actix_web::test]
async fn every_failure_takes_about_the_same_time() {
    const ROUNDS: usize = 50;
    let app = enumeration_app().await;
    let c = client();
    // Warm up: connection, argon2 buffers, SQLite pages.
    for (_, username, password) in KINDS.iter().cycle().take(8) {
        app.post_token(&c, username, password).await;
    }
    let mut raw: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); KINDS.len()];
    let mut relative: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); KINDS.len()];
    for round in 0..ROUNDS {
        let mut times = [0f64; KINDS.len()];
        for step in 0..KINDS.len() {
            let kind = (round + step) % KINDS.len();
            let (what, username, password) = KINDS[kind];
            let start = Instant::now();
            let response = app.post_token(&c, username, password).await;
            times[kind] = start.elapsed().as_secs_f64() * 1e3;
            assert_eq!(response.status(), 401, "{what}");
        }
        let round_median = median(&mut times.clone());
        for (kind, t) in times.iter().enumerate() {
            raw[kind].push(*t);
            relative[kind].push(t / round_median);
        }
    }
    let raw: Vec<f64> = raw.iter_mut().map(|s| median(s)).collect();
    let relative: Vec<f64> = relative.iter_mut().map(|s| median(s)).collect();
    let report: Vec<String> = KINDS
        .iter()
        .enumerate()
        .map(|(i, (what, ..))| format!("{what}: {:.1} ms (x{:.3})", raw[i], relative[i]))
        .collect();
    let report = report.join(", ");
    eprintln!("sign-in failure medians over {ROUNDS} rounds: {report}");
    let fastest = relative.iter().copied().fold(f64::INFINITY, f64::min);
    let slowest = relative.iter().copied().fold(0.0, f64::max);
    assert!(
        slowest <= fastest * 1.2,
        "medians differ by more than 20%: {report}"
    );
}
