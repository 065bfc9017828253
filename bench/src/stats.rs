//! Latency samples and the one-line summary every tool of the harness prints.

use std::fmt;
use std::time::Duration;

/// Outcomes of one stream of requests (or transactions, or hashes).
#[derive(Default)]
pub struct Recorder {
    /// Latency of each success, microseconds.
    micros: Vec<u32>,
    pub errors: u64,
}

impl Recorder {
    pub fn success(&mut self, latency: Duration) {
        self.micros
            .push(latency.as_micros().min(u128::from(u32::MAX)) as u32);
    }

    pub fn error(&mut self) {
        self.errors += 1;
    }

    pub fn merge(&mut self, other: Recorder) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
    }

    /// Summarizes the samples taken over `elapsed`.
    pub fn summary(mut self, name: &str, elapsed: Duration) -> Summary {
        self.micros.sort_unstable();
        let at = |q: f64| -> f64 {
            if self.micros.is_empty() {
                return f64::NAN;
            }
            let rank = ((q * self.micros.len() as f64).ceil() as usize).max(1);
            f64::from(self.micros[rank.min(self.micros.len()) - 1]) / 1000.0
        };
        Summary {
            name: name.to_owned(),
            ok: self.micros.len() as u64,
            errors: self.errors,
            secs: elapsed.as_secs_f64(),
            rate: self.micros.len() as f64 / elapsed.as_secs_f64(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

pub struct Summary {
    pub name: String,
    pub ok: u64,
    pub errors: u64,
    pub secs: f64,
    /// Successes per second.
    pub rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// `RESULT name=… ok=… errors=… secs=… rate=… p50_ms=… p99_ms=… max_ms=…`: what `bench/run` reads.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RESULT name={} ok={} errors={} secs={:.3} rate={:.1} p50_ms={:.3} p99_ms={:.3} max_ms={:.3}",
            self.name,
            self.ok,
            self.errors,
            self.secs,
            self.rate,
            self.p50_ms,
            self.p99_ms,
            self.max_ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut r = Recorder::default();
        for ms in 1..=100 {
            r.success(Duration::from_millis(ms));
        }
        r.error();
        let s = r.summary("x", Duration::from_secs(10));
        assert_eq!((s.ok, s.errors), (100, 1));
        assert_eq!((s.p50_ms, s.p99_ms, s.max_ms), (50.0, 99.0, 100.0));
        assert_eq!(s.rate, 10.0);
    }
}
