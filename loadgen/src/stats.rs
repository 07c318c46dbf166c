//! Histograms, live counters, the progress line and the final report (human table or JSON).

use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A latency histogram in nanoseconds (1 ns to 100 s, 3 significant digits).
#[derive(Debug, Clone)]
pub struct Hist(Histogram<u64>);

impl Default for Hist {
    fn default() -> Self {
        // Bounds are constants that hdrhistogram accepts.
        Self(Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid bounds"))
    }
}

impl Hist {
    /// Records one duration.
    pub fn record(&mut self, d: Duration) {
        self.0
            .saturating_record(d.as_nanos().min(u64::MAX as u128) as u64);
    }

    /// Adds another histogram's samples.
    pub fn merge(&mut self, other: &Hist) {
        // Same bounds on both sides: cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The summary in microseconds.
    pub fn summary(&self) -> Summary {
        let us = |v: u64| v as f64 / 1000.0;
        Summary {
            count: self.0.len(),
            mean_us: self.0.mean() / 1000.0,
            p50_us: us(self.0.value_at_quantile(0.50)),
            p90_us: us(self.0.value_at_quantile(0.90)),
            p99_us: us(self.0.value_at_quantile(0.99)),
            p999_us: us(self.0.value_at_quantile(0.999)),
            max_us: us(self.0.max()),
        }
    }
}

/// Percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
}

/// Counters every thread bumps, read by the progress line.
#[derive(Debug, Default)]
pub struct Live {
    /// Operations completed (connections, requests...).
    pub ops: AtomicU64,
    /// Payload bytes received by browsers.
    pub bytes: AtomicU64,
    /// Failures.
    pub errors: AtomicU64,
}

impl Live {
    /// One more operation.
    pub fn op(&self) {
        self.ops.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes received.
    pub fn bytes(&self, n: usize) {
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// One more failure.
    pub fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Prints a progress line to stderr every second until dropped.
#[derive(Debug)]
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Starts printing `what` with the counters of `live`.
    pub fn start(what: &str, live: Arc<Live>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let what = what.to_owned();
        let tty = std::io::stderr().is_terminal();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            let (mut last_ops, mut last_bytes, mut last) = (0, 0, start);
            let mut tick = 0u64;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() < Duration::from_secs(1) {
                    continue;
                }
                tick += 1;
                let now = Instant::now();
                let dt = (now - last).as_secs_f64();
                let ops = live.ops.load(Ordering::Relaxed);
                let bytes = live.bytes.load(Ordering::Relaxed);
                let line = format!(
                    "[{what} {:5.1}s] {ops} ops ({:.0}/s), {:.2} Gbit/s, {} errors",
                    (now - start).as_secs_f64(),
                    (ops - last_ops) as f64 / dt,
                    (bytes - last_bytes) as f64 * 8.0 / dt / 1e9,
                    live.errors.load(Ordering::Relaxed),
                );
                if tty {
                    eprint!("\r{line}\x1b[K");
                } else if tick.is_multiple_of(5) {
                    eprintln!("{line}");
                }
                (last_ops, last_bytes, last) = (ops, bytes, now);
            }
            if tty {
                eprintln!();
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What a scenario run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The scenario.
    pub scenario: String,
    /// The contender's name (`--label`).
    pub label: String,
    /// The flags that shaped the run.
    pub params: BTreeMap<String, serde_json::Value>,
    /// Single figures (rates, throughputs, CPU, memory).
    pub figures: BTreeMap<String, f64>,
    /// Latency histograms.
    pub latencies: BTreeMap<String, Summary>,
    /// Remarks (errors seen, checks that failed...).
    pub notes: Vec<String>,
}

impl Report {
    /// An empty report.
    pub fn new(scenario: &str, label: &str) -> Self {
        Self {
            scenario: scenario.into(),
            label: label.into(),
            params: BTreeMap::new(),
            figures: BTreeMap::new(),
            latencies: BTreeMap::new(),
            notes: Vec::new(),
        }
    }

    /// Records a parameter.
    pub fn param(&mut self, k: &str, v: impl Serialize) {
        self.params.insert(
            k.into(),
            serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
        );
    }

    /// Records a figure.
    pub fn figure(&mut self, k: &str, v: f64) {
        self.figures.insert(k.into(), v);
    }

    /// Prints the report: JSON on one line, or a table.
    pub fn print(&self, json: bool) {
        if json {
            // A report is plain data: serialization cannot fail.
            println!("{}", serde_json::to_string(self).unwrap_or_default());
            return;
        }
        println!("{} ({})", self.scenario, self.label);
        for (k, v) in &self.params {
            println!("  {k:<24} {v}");
        }
        println!("  {:-<40}", "");
        for (k, v) in &self.figures {
            println!("  {k:<24} {}", human(*v));
        }
        if !self.latencies.is_empty() {
            println!(
                "  {:<16} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10}",
                "latency (µs)", "count", "p50", "p90", "p99", "p99.9", "max"
            );
            for (k, s) in &self.latencies {
                println!(
                    "  {k:<16} {:>9} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
                    s.count, s.p50_us, s.p90_us, s.p99_us, s.p999_us, s.max_us
                );
            }
        }
        for n in &self.notes {
            println!("  note: {n}");
        }
    }
}

fn human(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}
