//! Thread per core: one OS thread per chosen CPU, pinned to it, each running its own tokio
//! current-thread runtime (with a `LocalSet`, so tasks may hold `Rc`s). Nothing is shared
//! between threads on the data path; results come back when every thread's future is done.
//!
//! Why tokio current-thread and not monoio like the edge: the load generator must also be a
//! TLS client and server, and tokio-rustls is the mature pairing; with one runtime per pinned
//! thread and no work stealing, it has the edge's shape. Its 1 ms timer granularity is handled
//! where it matters (the latency scenario measures from the intended send time only when the
//! connection, not the timer, made a request late).

use anyhow::{Result, anyhow};
use std::future::Future;
use std::sync::Arc;

/// Which CPUs to use, and how many threads.
#[derive(Debug, Clone)]
pub struct Cores {
    cpus: Vec<usize>,
    threads: usize,
}

impl Cores {
    /// `cpus`: CPU ids to pin to (empty: all); `threads`: 0 means one per CPU.
    pub fn new(cpus: &[usize], threads: usize) -> Self {
        let cpus = if cpus.is_empty() {
            core_affinity::get_core_ids()
                .map(|ids| ids.into_iter().map(|c| c.id).collect())
                .unwrap_or_else(|| vec![0])
        } else {
            cpus.to_vec()
        };
        let threads = if threads == 0 { cpus.len() } else { threads };
        Self { cpus, threads }
    }

    /// Threads that will run.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(thread_index)` on every thread, each on its own pinned runtime, and returns the
    /// outputs in thread order.
    pub fn run<T, F, Fut>(&self, f: F) -> Result<Vec<T>>
    where
        T: Send + 'static,
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let f = Arc::new(f);
        let mut handles = Vec::new();
        for i in 0..self.threads {
            let cpu = self.cpus[i % self.cpus.len()];
            let f = f.clone();
            let h = std::thread::Builder::new()
                .name(format!("loadgen-{i}"))
                .spawn(move || -> Result<T> {
                    core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    let local = tokio::task::LocalSet::new();
                    Ok(local.block_on(&rt, f(i)))
                })?;
            handles.push(h);
        }
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow!("a load thread panicked"))?)
            .collect()
    }
}
