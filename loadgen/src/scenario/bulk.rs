//! bulk: one or several connections each download `--size` bytes through the target.
//! Reports Gbit/s over the whole transfer and the CPU seconds per GB of every watched process.

use anyhow::Result;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

use super::{Common, cpu_figures};
use crate::browser::{BrowserArgs, Browsers};
use crate::procstat::CpuSample;
use crate::stats::{Live, Progress, Report};
use crate::wire::{AnswerCheck, Request};

/// Flags of `bulk`.
#[derive(Debug, Clone, clap::Args)]
pub struct BulkArgs {
    #[command(flatten)]
    browsers: BrowserArgs,
    #[command(flatten)]
    pub common: Common,
    /// Parallel connections (spread over the host names).
    #[arg(long, default_value_t = 1, value_name = "N")]
    conns: usize,
    /// Bytes each connection downloads.
    #[arg(long, default_value_t = 1 << 30, value_name = "BYTES")]
    size: u64,
    /// Check every byte received against the pattern (costs the load generator CPU).
    #[arg(long)]
    verify: bool,
}

struct Done {
    start: Instant,
    end: Instant,
    bytes: u64,
    ok: bool,
}

/// Runs the scenario.
pub fn run(a: BulkArgs) -> Result<Report> {
    let browsers = Browsers::new(&a.browsers)?;
    let cores = a.common.cores();
    let threads = cores.threads();
    let live = Arc::new(Live::default());
    let limit = a.common.duration();
    let (conns, size, verify) = (a.conns, a.size, a.verify);
    let progress = (!a.common.quiet).then(|| Progress::start("bulk", live.clone()));
    let before = CpuSample::take(&a.common.watch);
    let l = live.clone();
    let per_thread = cores.run(move |t| {
        let browsers = browsers.clone();
        let live = l.clone();
        async move {
            let mut tasks = Vec::new();
            for c in (t..conns).step_by(threads) {
                let browsers = browsers.clone();
                let live = live.clone();
                tasks.push(tokio::task::spawn_local(async move {
                    download(&browsers, c, size, verify, limit, &live).await
                }));
            }
            let mut out = Vec::new();
            for t in tasks {
                if let Ok(d) = t.await {
                    out.push(d);
                }
            }
            out
        }
    })?;
    let used = CpuSample::take(&a.common.watch).since(&before);
    drop(progress);
    let done: Vec<Done> = per_thread.into_iter().flatten().collect();
    let mut r = a.common.report("bulk");
    r.param("conns", conns);
    r.param("size", size);
    r.param("tls", a.browsers.tls);
    r.param("hosts", browsers_hosts(&a.browsers));
    let bytes: u64 = done.iter().map(|d| d.bytes).sum();
    let failed = done.iter().filter(|d| !d.ok).count();
    if let (Some(s), Some(e)) = (
        done.iter().map(|d| d.start).min(),
        done.iter().map(|d| d.end).max(),
    ) {
        let secs = (e - s).as_secs_f64().max(1e-9);
        r.figure("gbit_s", bytes as f64 * 8.0 / secs / 1e9);
        r.figure("mbyte_s", bytes as f64 / secs / 1e6);
        r.figure("seconds", secs);
    }
    r.figure("bytes", bytes as f64);
    r.figure("failed_conns", failed as f64);
    if failed > 0 {
        r.notes
            .push(format!("{failed} of {conns} connections did not finish"));
    }
    cpu_figures(&mut r, &used, bytes);
    Ok(r)
}

fn browsers_hosts(b: &BrowserArgs) -> usize {
    b.host_count
}

async fn download(
    b: &Browsers,
    c: usize,
    size: u64,
    verify: bool,
    limit: Duration,
    live: &Live,
) -> Done {
    let start = Instant::now();
    let req = Request {
        body: 0,
        answer: size,
        close: false,
    }
    .encode();
    let mut got = 0u64;
    let mut ok = false;
    let deadline = start + limit;
    if let Ok(mut conn) = b.open(c, &req).await {
        let mut buf = vec![0u8; 256 * 1024];
        let mut check = AnswerCheck::default();
        ok = true;
        while got < size {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, conn.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {
                    if verify && !check.check(&buf[..n]) {
                        ok = false;
                        break;
                    }
                    got += n as u64;
                    live.bytes(n);
                }
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        live.op();
    } else {
        live.error();
    }
    Done {
        start,
        end: Instant::now(),
        bytes: got,
        ok,
    }
}
