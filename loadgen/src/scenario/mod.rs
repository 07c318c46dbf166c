//! The scenarios. Each runs its browsers thread-per-core for a bounded time and returns a
//! [`Report`](crate::stats::Report).

pub mod bulk;
pub mod connect;
pub mod handover;
pub mod latency;
pub mod scale;
pub mod soak;
pub mod stalled;

use std::time::Duration;

use crate::procstat::Watch;
use crate::runtime::Cores;
use crate::stats::Report;

/// Flags every scenario takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// How long the measurement runs, at most (seconds).
    #[arg(long, default_value_t = 10.0, value_name = "SECS")]
    pub duration: f64,
    /// Load threads (0: one per CPU in --cpus).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub threads: usize,
    /// CPUs to pin load threads to, e.g. `0,1` (default: all).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub cpus: Vec<usize>,
    /// The contender's name in the report.
    #[arg(long, default_value = "target")]
    pub label: String,
    /// Print the report as one JSON line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Report the CPU seconds (and memory) of this process tree, as NAME=PID; repeatable.
    #[arg(long, value_name = "NAME=PID")]
    pub watch: Vec<Watch>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// The case name in the side-by-side report (default: the scenario's name).
    #[arg(long)]
    pub case: Option<String>,
}

impl Common {
    /// The measurement time.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration.clamp(0.1, 3600.0))
    }

    /// The load threads.
    pub fn cores(&self) -> Cores {
        Cores::new(&self.cpus, self.threads)
    }

    /// A report with the common parameters filled in.
    pub fn report(&self, scenario: &str) -> Report {
        let mut r = Report::new(scenario, &self.label);
        r.param("duration_s", self.duration);
        r.param("threads", self.cores().threads());
        if let Some(c) = &self.case {
            r.param("case", c);
        }
        r
    }
}

/// Adds `cpu_s.NAME` for every watched tree (and the load generator itself), plus
/// `cpu_s_per_gb.NAME` when `bytes` moved.
pub fn cpu_figures(r: &mut Report, used: &[(String, f64)], bytes: u64) {
    // Watches that share a name (two hops of one path) add up.
    let mut sum: std::collections::BTreeMap<&str, f64> = Default::default();
    for (name, secs) in used {
        *sum.entry(name).or_default() += secs;
    }
    for (name, secs) in sum {
        r.figure(&format!("cpu_s.{name}"), secs);
        if bytes > 0 {
            r.figure(&format!("cpu_s_per_gb.{name}"), secs / (bytes as f64 / 1e9));
        }
    }
}
