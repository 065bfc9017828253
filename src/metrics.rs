//! What an operator alerts on, in Prometheus' text format, served on a listener of its
//! own (`LATCHKEY_METRICS_BIND`, see `startup`). Without that setting nothing is recorded:
//! every method here is then a check of an `Option`.
//!
//! The series are held by `metrics-exporter-prometheus`' recorder, used directly (never
//! installed as the process-wide recorder: each server — tests start many in one
//! process — counts its own). Counters with a fixed set of labels exist from the start,
//! at zero, so a rate can be taken before the first event. The HTTP series, which every
//! request touches, are counted per worker thread instead (see `http`).

mod http;

use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use metrics::{Counter, Key, Label, Metadata, Recorder as _};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use self::http::{HttpSeries, WorkerSeries};

const SIGN_INS: &str = "latchkey_sign_ins_total";
const REFRESHES: &str = "latchkey_refreshes_total";
const REVOCATIONS: &str = "latchkey_revocations_total";
const LOCKOUTS: &str = "latchkey_lockouts_total";
const HASH_QUEUE: &str = "latchkey_password_hash_queue";
const DB_ERRORS: &str = "latchkey_db_errors_total";

/// The route label of a request no route matched (its path is not a label: that would
/// let anyone make series).
pub const UNMATCHED: &str = "unmatched";

/// How a sign-in (a password, or the code step after it) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    Ok,
    /// Wrong username, password or code, or a disabled account.
    Failed,
    /// Refused by the lockout without being checked.
    Locked,
    /// The password was right; a second factor is asked for.
    MfaRequired,
    /// The database or the hasher failed.
    Error,
}

impl SignIn {
    const ALL: [SignIn; 5] = [
        SignIn::Ok,
        SignIn::Failed,
        SignIn::Locked,
        SignIn::MfaRequired,
        SignIn::Error,
    ];

    fn label(self) -> &'static str {
        match self {
            SignIn::Ok => "ok",
            SignIn::Failed => "failed",
            SignIn::Locked => "locked",
            SignIn::MfaRequired => "mfa_required",
            SignIn::Error => "error",
        }
    }
}

/// How a refresh ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    Ok,
    /// A repeat of a token rotated within the reuse grace: answered with its successor.
    Grace,
    /// A rotated token came back after the grace: its session was revoked.
    Reused,
    /// Unknown, expired, revoked, or malformed.
    Invalid,
}

impl Refresh {
    const ALL: [Refresh; 4] = [
        Refresh::Ok,
        Refresh::Grace,
        Refresh::Reused,
        Refresh::Invalid,
    ];

    fn label(self) -> &'static str {
        match self {
            Refresh::Ok => "ok",
            Refresh::Grace => "grace",
            Refresh::Reused => "reused",
            Refresh::Invalid => "invalid",
        }
    }
}

/// This server's metrics, or nothing when no metrics listener is configured. Cheap to
/// clone.
#[derive(Clone, Default)]
pub struct Metrics(Option<Arc<Registry>>);

struct Registry {
    recorder: PrometheusRecorder,
    sign_ins: Vec<Counter>,
    refreshes: Vec<Counter>,
    lockouts: Counter,
    db_errors: Counter,
    http: HttpSeries,
}

impl Metrics {
    /// Records nothing (no `LATCHKEY_METRICS_BIND`; the command line).
    pub fn off() -> Self {
        Metrics(None)
    }

    pub fn on() -> Self {
        let recorder = PrometheusBuilder::new().build_recorder();
        for (name, help) in [
            (
                SIGN_INS,
                "Sign-ins by result (ok, failed, locked, mfa_required, error).",
            ),
            (
                REFRESHES,
                "Refresh-token exchanges by result (ok, grace, reused, invalid).",
            ),
            (REVOCATIONS, "Sessions this server revoked, by reason."),
            (LOCKOUTS, "Lockouts started by repeated failed sign-ins."),
            (
                DB_ERRORS,
                "Database operations that failed (unavailable or an error).",
            ),
        ] {
            recorder.describe_counter(name.into(), None, help.into());
        }
        recorder.describe_gauge(
            HASH_QUEUE.into(),
            None,
            "Password hashes waiting for or running on a hashing thread.".into(),
        );
        let counter = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &metadata())
        };
        let sign_ins = SignIn::ALL
            .iter()
            .map(|r| counter(SIGN_INS, vec![Label::new("result", r.label())]))
            .collect();
        let refreshes = Refresh::ALL
            .iter()
            .map(|r| counter(REFRESHES, vec![Label::new("result", r.label())]))
            .collect();
        let lockouts = counter(LOCKOUTS, vec![]);
        let db_errors = counter(DB_ERRORS, vec![]);
        Metrics(Some(Arc::new(Registry {
            sign_ins,
            refreshes,
            lockouts,
            db_errors,
            recorder,
            http: HttpSeries::default(),
        })))
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    pub fn sign_in(&self, result: SignIn) {
        if let Some(r) = &self.0 {
            r.sign_ins[result as usize].increment(1);
        }
    }

    pub fn refresh(&self, result: Refresh) {
        if let Some(r) = &self.0 {
            r.refreshes[result as usize].increment(1);
        }
    }

    pub fn lockout(&self) {
        if let Some(r) = &self.0 {
            r.lockouts.increment(1);
        }
    }

    /// `sessions` sessions were revoked for `reason` (a stored revocation reason).
    pub fn revoked(&self, reason: &'static str, sessions: usize) {
        if let (Some(r), n @ 1..) = (&self.0, sessions) {
            let key = Key::from_parts(REVOCATIONS, vec![Label::new("reason", reason)]);
            r.recorder
                .register_counter(&key, &metadata())
                .increment(n as u64);
        }
    }

    /// The exposition: the gauges and totals kept elsewhere are read now.
    pub fn render(&self, hash_queue: usize, db_errors: u64) -> String {
        let Some(r) = &self.0 else {
            return String::new();
        };
        r.db_errors.absolute(db_errors);
        r.recorder
            .register_gauge(&Key::from_name(HASH_QUEUE), &metadata())
            .set(hash_queue as f64);
        let mut text = r.recorder.handle().render();
        r.http.render(&mut text);
        text
    }

    /// The HTTP series for one worker thread (see [`RequestMetrics`]).
    pub fn for_worker(&self) -> RequestMetrics {
        RequestMetrics(self.0.as_ref().map(|r| r.http.for_worker()))
    }
}

fn metadata() -> Metadata<'static> {
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()))
}

/// One worker's handle on the HTTP series, or nothing when metrics are off.
#[derive(Clone)]
pub struct RequestMetrics(Option<Rc<WorkerSeries>>);

impl RequestMetrics {
    /// When a request started, if anything records it.
    pub fn start(&self) -> Option<Instant> {
        self.0.as_ref().map(|_| Instant::now())
    }

    /// Counts a request answered with `status` by `route` (a pattern, or [`UNMATCHED`]).
    pub fn answered(&self, started: Option<Instant>, route: &str, status: u16) {
        if let (Some(worker), Some(started)) = (&self.0, started) {
            worker.answered(started, route, status);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_records_and_renders_nothing() {
        let metrics = Metrics::off();
        metrics.sign_in(SignIn::Ok);
        metrics.revoked("signed_out", 3);
        let worker = metrics.for_worker();
        worker.answered(worker.start(), "/api/me", 200);
        assert_eq!(metrics.render(0, 0), "");
    }

    #[test]
    fn fixed_series_start_at_zero_and_count() {
        let metrics = Metrics::on();
        let text = metrics.render(0, 0);
        assert!(
            text.contains("latchkey_sign_ins_total{result=\"mfa_required\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("latchkey_refreshes_total{result=\"grace\"} 0"),
            "{text}"
        );
        metrics.sign_in(SignIn::Locked);
        metrics.refresh(Refresh::Reused);
        metrics.revoked("refresh_token_reused", 1);
        metrics.revoked("user_disabled", 0);
        let text = metrics.render(2, 5);
        assert!(
            text.contains("latchkey_sign_ins_total{result=\"locked\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("latchkey_refreshes_total{result=\"reused\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("latchkey_revocations_total{reason=\"refresh_token_reused\"} 1"),
            "{text}"
        );
        assert!(!text.contains("user_disabled"), "{text}");
        assert!(text.contains("latchkey_password_hash_queue 2"), "{text}");
        assert!(text.contains("latchkey_db_errors_total 5"), "{text}");
    }

    #[test]
    fn requests_count_by_route_and_status_and_time_by_route() {
        let metrics = Metrics::on();
        let worker = metrics.for_worker();
        for status in [200, 200, 401] {
            worker.answered(worker.start(), "/api/me", status);
        }
        let text = metrics.render(0, 0);
        assert!(
            text.contains("latchkey_http_requests_total{route=\"/api/me\",status=\"200\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("latchkey_http_requests_total{route=\"/api/me\",status=\"401\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("latchkey_http_request_duration_seconds_count{route=\"/api/me\"} 3"),
            "{text}"
        );
        assert!(
            text.contains(
                "latchkey_http_request_duration_seconds_bucket{route=\"/api/me\",le=\"+Inf\"} 3"
            ),
            "{text}"
        );
    }
}
