//! latency: `--conns` connections each send `--size`-byte requests and read `--size`-byte
//! answers, one at a time, either back to back (`--rate 0`: the maximum rate) or on a fixed
//! schedule of `--rate` requests per second in all (open loop).
//!
//! Open loop and coordinated omission: a request is due at its scheduled time. When the
//! previous answer arrived after that time, the connection (the system under test) made it
//! late, and its latency counts from the scheduled time. When it is late only because the
//! runtime's timer woke late (tokio's timer has 1 ms granularity), it counts from when it was
//! actually sent: timer lag is the load generator's, not the target's.

use anyhow::Result;
use rand::Rng;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Common, cpu_figures};
use crate::browser::{BrowserArgs, Browsers, Conn};
use crate::procstat::CpuSample;
use crate::stats::{Hist, Live, Progress, Report};
use crate::wire::Request;

/// Flags of `latency`.
#[derive(Debug, Clone, clap::Args)]
pub struct LatencyArgs {
    #[command(flatten)]
    browsers: BrowserArgs,
    #[command(flatten)]
    pub common: Common,
    /// Connections (over all threads).
    #[arg(long, default_value_t = 100, value_name = "N")]
    conns: usize,
    /// Requests per second in all; 0 runs closed loop to find the maximum.
    #[arg(long, default_value_t = 0.0, value_name = "PER_SEC")]
    rate: f64,
    /// Bytes of each request body and of each answer.
    #[arg(long, default_value_t = 1024, value_name = "BYTES")]
    size: u32,
}

/// Longest one request (or opening a connection) may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Tally {
    requests: u64,
    errors: u64,
    latency: Hist,
    service: Hist,
}

/// Runs the scenario.
pub fn run(a: LatencyArgs) -> Result<Report> {
    let browsers = Browsers::new(&a.browsers)?;
    let cores = a.common.cores();
    let threads = cores.threads();
    let live = Arc::new(Live::default());
    let dur = a.common.duration();
    let (conns, rate, size) = (a.conns.max(1), a.rate, a.size);
    let barrier = Arc::new(Barrier::new(threads));
    let start_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let l = live.clone();
    let before = Arc::new(Mutex::new(None::<CpuSample>));
    let (b2, watch) = (before.clone(), a.common.watch.clone());
    let quiet = a.common.quiet;
    let per_thread = cores.run(move |t| {
        let browsers = browsers.clone();
        let live = l.clone();
        let barrier = barrier.clone();
        let start_at = start_at.clone();
        let before = b2.clone();
        let watch = watch.clone();
        async move {
            // Every connection is open, and has carried one request, before the clock starts.
            let req = Request {
                body: size,
                answer: u64::from(size),
                close: false,
            }
            .with_body();
            let mut mine = Vec::new();
            for c in (t..conns).step_by(threads) {
                let opened = tokio::time::timeout(REQUEST_TIMEOUT, async {
                    let mut conn = browsers.open(c, &req).await?;
                    let mut buf = vec![0u8; size as usize];
                    conn.read_exact(&mut buf).await?;
                    std::io::Result::Ok(conn)
                })
                .await;
                match opened {
                    Ok(Ok(conn)) => mine.push(conn),
                    _ => live.error(),
                }
            }
            let opened = mine.len();
            barrier.wait();
            let start = {
                let mut s = start_at.lock().unwrap_or_else(|e| e.into_inner());
                *s.get_or_insert_with(|| {
                    *before.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(CpuSample::take(&watch));
                    Instant::now() + Duration::from_millis(20)
                })
            };
            let end = start + dur;
            let interval = (rate > 0.0).then(|| Duration::from_secs_f64(conns as f64 / rate));
            let mut tasks = Vec::new();
            for conn in mine {
                let live = live.clone();
                let req = req.clone();
                let offset = interval.map_or(Duration::ZERO, |i| {
                    i.mul_f64(rand::thread_rng().gen_range(0.0..1.0))
                });
                tasks.push(tokio::task::spawn_local(async move {
                    exchange(conn, &req, size, start + offset, end, interval, &live).await
                }));
            }
            let mut sum = Tally::default();
            for t in tasks {
                if let Ok(x) = t.await {
                    sum.requests += x.requests;
                    sum.errors += x.errors;
                    sum.latency.merge(&x.latency);
                    sum.service.merge(&x.service);
                }
            }
            (sum, opened)
        }
    });
    let progress_guard = (!quiet).then(|| Progress::start("latency", live.clone()));
    let per_thread = per_thread?;
    drop(progress_guard);
    let after = CpuSample::take(&a.common.watch);
    let used = before
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|b| after.since(b))
        .unwrap_or_default();
    let mut all = Tally::default();
    let mut opened = 0;
    for (x, o) in per_thread {
        all.requests += x.requests;
        all.errors += x.errors;
        all.latency.merge(&x.latency);
        all.service.merge(&x.service);
        opened += o;
    }
    let mut r = a.common.report("latency");
    r.param("conns", conns);
    r.param("rate", rate);
    r.param("size", size);
    r.param("tls", a.browsers.tls);
    r.figure("req_per_s", all.requests as f64 / dur.as_secs_f64());
    r.figure("requests", all.requests as f64);
    r.figure("errors", all.errors as f64);
    r.figure("conns_open", opened as f64);
    if opened < conns {
        r.notes
            .push(format!("only {opened} of {conns} connections opened"));
    }
    r.latencies.insert("latency".into(), all.latency.summary());
    r.latencies.insert("service".into(), all.service.summary());
    cpu_figures(&mut r, &used, 0);
    Ok(r)
}

async fn exchange(
    mut conn: Conn,
    req: &[u8],
    size: u32,
    first: Instant,
    end: Instant,
    interval: Option<Duration>,
    live: &Live,
) -> Tally {
    let mut t = Tally::default();
    let mut buf = vec![0u8; size as usize];
    let mut due = first;
    let mut prev_done = first;
    tokio::time::sleep_until(first.into()).await;
    loop {
        if due >= end || Instant::now() >= end {
            break;
        }
        if interval.is_some() && Instant::now() < due {
            tokio::time::sleep_until(due.into()).await;
        }
        let sent = Instant::now();
        let ok = tokio::time::timeout(REQUEST_TIMEOUT, async {
            conn.write_all(req).await?;
            conn.read_exact(&mut buf).await?;
            std::io::Result::Ok(())
        })
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
        let done = Instant::now();
        if ok.is_err() {
            t.errors += 1;
            live.error();
            break;
        }
        let from = if interval.is_some() && prev_done > due {
            due
        } else {
            sent
        };
        t.latency.record(done - from);
        t.service.record(done - sent);
        t.requests += 1;
        live.op();
        prev_done = done;
        due = match interval {
            Some(i) => due + i,
            None => done,
        };
    }
    t
}
