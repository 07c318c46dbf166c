//! Giving freed memory back to the system after a burst.
//!
//! glibc keeps what is freed inside its arenas (one per worker thread) and trims only the top
//! of each heap, so after a peak (thousands of channels, queues full to their caps) the edge's
//! resident memory stays at the peak all night. Trimming on every free costs the data path
//! (glibc's own `heap_trim` was about a tenth of the path's samples when it ran on frees), so a
//! plain thread looks every [`TRIM_EVERY`] instead: when the arenas hold more than
//! [`TRIM_SLACK`] free bytes, `malloc_trim(0)` returns every whole free page of every arena
//! (`MADV_DONTNEED`). The arenas keep their address space; pages come back on the next touch.
//!
//! Only where the allocator is glibc's; elsewhere the trimmer is not started.
#![allow(unsafe_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::metrics::Metrics;

/// How often the trimmer looks at the arenas.
pub const TRIM_EVERY: Duration = Duration::from_secs(5);
/// Free bytes the arenas may keep before they are trimmed: enough to serve the next small
/// burst without a page fault per allocation.
pub const TRIM_SLACK: usize = 16 * 1024 * 1024;

/// What the trimmer did, for the metrics.
#[derive(Debug, Default)]
pub struct TrimStats {
    /// Times `malloc_trim` ran.
    pub trims: AtomicU64,
    /// Free bytes the arenas held when it ran, summed (what it could give back).
    pub freed_bytes: AtomicU64,
}

/// The running trimmer; stops (and is joined) on drop.
#[derive(Debug)]
pub(crate) struct Trimmer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Trimmer {
    /// Starts the trimmer, or `None` where the allocator is not glibc's.
    pub(crate) fn start(metrics: Arc<Metrics>) -> Option<Self> {
        if !cfg!(all(target_os = "linux", target_env = "gnu")) {
            return None;
        }
        let (stop, stopped) = channel();
        let thread = std::thread::Builder::new()
            .name("sluice-trim".into())
            .spawn(move || run(metrics.memory(), &stopped))
            .ok()?;
        Some(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Trimmer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(stats: &TrimStats, stopped: &Receiver<()>) {
    loop {
        match stopped.recv_timeout(TRIM_EVERY) {
            Err(RecvTimeoutError::Timeout) => {}
            // The handle dropped its sender: the edge is stopping.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let free = arena_free_bytes();
        if free > TRIM_SLACK {
            trim();
            stats.trims.fetch_add(1, Ordering::Relaxed);
            stats.freed_bytes.fetch_add(free as u64, Ordering::Relaxed);
            tracing::debug!(free, "returned freed memory to the system");
        }
    }
}

/// Free bytes held in the allocator's arenas, all threads together.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub(crate) fn arena_free_bytes() -> usize {
    // SAFETY: mallinfo2 takes no arguments and only reads the allocator's own bookkeeping
    // (under each arena's lock); it is safe to call from any thread.
    let info = unsafe { libc::mallinfo2() };
    info.fordblks
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn arena_free_bytes() -> usize {
    0
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim(0) only releases pages of free chunks back to the kernel, under
    // each arena's lock; live allocations are untouched.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn a_trim_returns_freed_memory_that_glibc_kept() {
        // 64 MiB in 16 KiB blocks (below the mmap threshold, so in an arena), one block in 16
        // kept alive: the freed ones sit between live ones, where glibc's own top-of-heap trim
        // cannot reach them.
        let mut blocks: Vec<Vec<u8>> = (0..4096).map(|i| vec![i as u8; 16 * 1024]).collect();
        let kept: Vec<Vec<u8>> = blocks.iter_mut().step_by(16).map(std::mem::take).collect();
        drop(blocks);
        let free = arena_free_bytes();
        assert!(free >= 48 * 1024 * 1024, "free in the arenas: {free}");
        let before = rss_bytes();
        trim();
        let after = rss_bytes();
        assert!(
            before.saturating_sub(after) >= 32 * 1024 * 1024,
            "RSS before the trim {before}, after {after}"
        );
        for (i, b) in kept.iter().enumerate() {
            assert!(
                b.iter().all(|&x| x == (i * 16) as u8),
                "a live block changed"
            );
        }
    }
}
