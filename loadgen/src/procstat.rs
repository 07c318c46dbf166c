//! CPU time and resident memory of a process and its descendants, from `/proc`.
//!
//! nginx (master plus workers), SniTun in worker mode (forkserver processes) and our edge
//! (threads) are all measured the same way: the sum over the process tree.

use std::collections::HashMap;
use std::fs;

/// Kernel clock ticks per second in `/proc/*/stat` (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// The process and every descendant alive now.
pub fn tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1).and_then(|s| s.parse().ok()))
            {
                children.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c);
        }
        i += 1;
    }
    out
}

/// Fields of `/proc/PID/stat` after the command name: index 0 is the state, 1 the ppid.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    Some(after.split_whitespace().map(str::to_owned).collect())
}

/// User plus system CPU seconds of one process (all its threads).
fn cpu_of(pid: u32) -> f64 {
    stat_fields(pid)
        .and_then(|f| {
            let u: f64 = f.get(11)?.parse().ok()?;
            let s: f64 = f.get(12)?.parse().ok()?;
            Some((u + s) / TICKS)
        })
        .unwrap_or(0.0)
}

/// CPU seconds used so far by the tree under `root`.
pub fn cpu_seconds(root: u32) -> f64 {
    tree(root).into_iter().map(cpu_of).sum()
}

/// Resident set (VmRSS) of the tree under `root`, in KiB.
pub fn rss_kib(root: u32) -> u64 {
    tree(root).into_iter().map(vm_rss).sum()
}

fn vm_rss(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Open descriptors of one process (not its descendants).
pub fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Resident set (VmRSS) of one process (not its descendants), in KiB.
pub fn rss_kib_of(pid: u32) -> u64 {
    vm_rss(pid)
}

/// The kernel's slab memory (`/proc/meminfo` Slab), in KiB: sockets live there.
pub fn slab_kib() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Slab:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A named process tree whose CPU a scenario reports (`--watch NAME=PID`).
#[derive(Debug, Clone)]
pub struct Watch {
    /// The label in the report.
    pub name: String,
    /// The root process.
    pub pid: u32,
}

impl std::str::FromStr for Watch {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, pid) = s.split_once('=').ok_or("expected NAME=PID")?;
        Ok(Self {
            name: name.to_owned(),
            pid: pid.parse().map_err(|_| format!("bad pid in {s:?}"))?,
        })
    }
}

/// CPU seconds of every watched tree at one instant.
#[derive(Debug, Clone)]
pub struct CpuSample(Vec<(String, f64)>);

impl CpuSample {
    /// Samples every watch, plus this process as `loadgen`.
    pub fn take(watches: &[Watch]) -> Self {
        let mut v: Vec<(String, f64)> = watches
            .iter()
            .map(|w| (w.name.clone(), cpu_seconds(w.pid)))
            .collect();
        v.push(("loadgen".into(), cpu_of(std::process::id())));
        Self(v)
    }

    /// CPU seconds each tree used since `earlier`.
    pub fn since(&self, earlier: &CpuSample) -> Vec<(String, f64)> {
        self.0
            .iter()
            .zip(&earlier.0)
            .map(|((n, b), (_, a))| (n.clone(), (b - a).max(0.0)))
            .collect()
    }
}
