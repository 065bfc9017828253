//! The HTTP series, `latchkey_http_requests_total` (by route and status) and
//! `latchkey_http_request_duration_seconds` (by route), kept apart from the recorder
//! because every request touches them. Each worker thread counts into atomics that only
//! it writes, found in a map only it reads: a request takes no lock and shares no cache
//! line with the other workers. A scrape sums the workers.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

pub const REQUESTS: &str = "latchkey_http_requests_total";
pub const DURATION: &str = "latchkey_http_request_duration_seconds";

/// The duration buckets' upper bounds (inclusive), in seconds and in nanoseconds: from a
/// cached token check to a slow database.
const BOUNDS: [(&str, u64); 14] = [
    ("0.0005", 500_000),
    ("0.001", 1_000_000),
    ("0.0025", 2_500_000),
    ("0.005", 5_000_000),
    ("0.01", 10_000_000),
    ("0.025", 25_000_000),
    ("0.05", 50_000_000),
    ("0.1", 100_000_000),
    ("0.25", 250_000_000),
    ("0.5", 500_000_000),
    ("1", 1_000_000_000),
    ("2.5", 2_500_000_000),
    ("5", 5_000_000_000),
    ("10", 10_000_000_000),
];

/// Every worker's series, for a scrape.
#[derive(Default)]
pub struct HttpSeries {
    workers: Mutex<Vec<Arc<WorkerRoutes>>>,
}

/// One worker's routes; the list grows when a route answers for the first time there.
#[derive(Default)]
struct WorkerRoutes(Mutex<Vec<Arc<RouteCounts>>>);

/// One route's counts on one worker.
struct RouteCounts {
    route: String,
    /// Requests per duration bucket (not cumulative); the last is above every bound.
    buckets: [AtomicU64; BOUNDS.len() + 1],
    nanos: AtomicU64,
    statuses: Mutex<Vec<(u16, Arc<AtomicU64>)>>,
}

/// The worker's own view: its routes by name, each with the statuses it has answered.
struct LocalRoute {
    counts: Arc<RouteCounts>,
    statuses: Vec<(u16, Arc<AtomicU64>)>,
}

/// One worker thread's handle on the HTTP series (not `Send`: each worker has its own).
pub struct WorkerSeries {
    shared: Arc<WorkerRoutes>,
    local: RefCell<HashMap<String, LocalRoute>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data are counters: a panic elsewhere leaves them usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl HttpSeries {
    pub fn for_worker(&self) -> Rc<WorkerSeries> {
        let shared = Arc::new(WorkerRoutes::default());
        lock(&self.workers).push(shared.clone());
        Rc::new(WorkerSeries {
            shared,
            local: RefCell::default(),
        })
    }

    /// Appends both families, in Prometheus' text format, summed over the workers.
    pub fn render(&self, out: &mut String) {
        let mut durations: BTreeMap<String, ([u64; BOUNDS.len() + 1], u64)> = BTreeMap::new();
        let mut requests: BTreeMap<(String, u16), u64> = BTreeMap::new();
        for worker in lock(&self.workers).iter() {
            for route in lock(&worker.0).iter() {
                let (buckets, nanos) = durations.entry(route.route.clone()).or_default();
                for (sum, bucket) in buckets.iter_mut().zip(&route.buckets) {
                    *sum += bucket.load(Relaxed);
                }
                *nanos += route.nanos.load(Relaxed);
                for (status, count) in lock(&route.statuses).iter() {
                    *requests.entry((route.route.clone(), *status)).or_default() +=
                        count.load(Relaxed);
                }
            }
        }
        if !requests.is_empty() {
            let _ = writeln!(
                out,
                "# HELP {REQUESTS} HTTP requests answered, by route pattern and status.\n\
                 # TYPE {REQUESTS} counter"
            );
            for ((route, status), count) in &requests {
                let route = escaped(route);
                let _ = writeln!(
                    out,
                    "{REQUESTS}{{route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
        }
        if !durations.is_empty() {
            let _ = writeln!(
                out,
                "# HELP {DURATION} Time to answer an HTTP request, by route pattern.\n\
                 # TYPE {DURATION} histogram"
            );
            for (route, (buckets, nanos)) in &durations {
                let route = escaped(route);
                let mut below = 0;
                for ((le, _), count) in BOUNDS.iter().zip(buckets) {
                    below += count;
                    let _ = writeln!(
                        out,
                        "{DURATION}_bucket{{route=\"{route}\",le=\"{le}\"}} {below}"
                    );
                }
                let total: u64 = buckets.iter().sum();
                let seconds = *nanos as f64 / 1e9;
                let _ = writeln!(
                    out,
                    "{DURATION}_bucket{{route=\"{route}\",le=\"+Inf\"}} {total}\n\
                     {DURATION}_sum{{route=\"{route}\"}} {seconds}\n\
                     {DURATION}_count{{route=\"{route}\"}} {total}"
                );
            }
        }
    }
}

impl WorkerSeries {
    /// Counts a request answered with `status` by `route`, which took since `started`.
    pub fn answered(&self, started: Instant, route: &str, status: u16) {
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mut routes = self.local.borrow_mut();
        // One lookup for a route seen before, the path of nearly every request.
        if let Some(local) = routes.get_mut(route) {
            return local.count(nanos, status);
        }
        let counts = Arc::new(RouteCounts {
            route: route.to_owned(),
            buckets: Default::default(),
            nanos: AtomicU64::new(0),
            statuses: Mutex::default(),
        });
        lock(&self.shared.0).push(counts.clone());
        let mut local = LocalRoute {
            counts,
            statuses: Vec::new(),
        };
        local.count(nanos, status);
        routes.insert(route.to_owned(), local);
    }
}

impl LocalRoute {
    fn count(&mut self, nanos: u64, status: u16) {
        let bucket = BOUNDS
            .iter()
            .position(|(_, bound)| nanos <= *bound)
            .unwrap_or(BOUNDS.len());
        self.counts.buckets[bucket].fetch_add(1, Relaxed);
        self.counts.nanos.fetch_add(nanos, Relaxed);
        match self.statuses.iter().find(|(s, _)| *s == status) {
            Some((_, count)) => {
                count.fetch_add(1, Relaxed);
            }
            None => {
                let count = Arc::new(AtomicU64::new(1));
                lock(&self.counts.statuses).push((status, count.clone()));
                self.statuses.push((status, count));
            }
        }
    }
}

/// A label value in the text format: backslash, quote and newline escaped.
fn escaped(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bounds_rise_and_match_their_labels() {
        for pair in BOUNDS.windows(2) {
            assert!(pair[0].1 < pair[1].1);
        }
        for (label, nanos) in BOUNDS {
            assert_eq!(label.parse::<f64>().unwrap(), nanos as f64 / 1e9);
        }
    }

    #[test]
    fn workers_are_summed_and_buckets_are_cumulative() {
        let series = HttpSeries::default();
        let (one, two) = (series.for_worker(), series.for_worker());
        let long_ago = Instant::now() - Duration::from_secs(20);
        one.answered(Instant::now(), "/api/me", 200);
        two.answered(Instant::now(), "/api/me", 200);
        two.answered(long_ago, "/api/me", 401);
        one.answered(Instant::now(), "/a \"quoted\" \\ route", 404);
        let mut text = String::new();
        series.render(&mut text);
        for line in [
            r#"latchkey_http_requests_total{route="/api/me",status="200"} 2"#,
            r#"latchkey_http_requests_total{route="/api/me",status="401"} 1"#,
            r#"latchkey_http_requests_total{route="/a \"quoted\" \\ route",status="404"} 1"#,
            r#"latchkey_http_request_duration_seconds_bucket{route="/api/me",le="10"} 2"#,
            r#"latchkey_http_request_duration_seconds_bucket{route="/api/me",le="+Inf"} 3"#,
            r#"latchkey_http_request_duration_seconds_count{route="/api/me"} 3"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        let sum: f64 = text
            .lines()
            .find_map(|l| {
                l.strip_prefix(r#"latchkey_http_request_duration_seconds_sum{route="/api/me"} "#)
            })
            .unwrap()
            .parse()
            .unwrap();
        assert!((20.0..21.0).contains(&sum), "{sum}");
        assert_eq!(text.matches("# TYPE").count(), 2, "one header per family");
    }

    #[test]
    fn nothing_answered_renders_nothing() {
        let series = HttpSeries::default();
        let _worker = series.for_worker();
        let mut text = String::new();
        series.render(&mut text);
        assert_eq!(text, "");
    }
}
