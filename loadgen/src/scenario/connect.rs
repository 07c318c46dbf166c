//! connect (and handshakes): new connection, hello, one small answer, close, over and over,
//! from `--concurrency` loops spread over the host names. Reports connections per second,
//! the time to the answer's first byte and, in TLS mode (`handshakes`), the time to a finished
//! full TLS 1.3 handshake.

use anyhow::Result;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

use super::{Common, cpu_figures};
use crate::browser::{BrowserArgs, Browsers};
use crate::procstat::CpuSample;
use crate::stats::{Hist, Live, Progress, Report};
use crate::wire::Request;

/// Flags of `connect` and `handshakes`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    browsers: BrowserArgs,
    #[command(flatten)]
    pub common: Common,
    /// Connections in flight at once (over all threads).
    #[arg(long, default_value_t = 64, value_name = "N")]
    concurrency: usize,
    /// Bytes of the answer.
    #[arg(long, default_value_t = 64, value_name = "BYTES")]
    answer: u64,
    /// Close with a reset (SO_LINGER 0) instead of waiting for the origin's FIN.
    #[arg(long)]
    reset: bool,
}

#[derive(Default)]
struct Tally {
    ok: u64,
    /// Of `ok`, those that finished before the deadline: the rate counts only these, so that
    /// connections still hanging at the deadline (up to their timeout) do not stretch the run.
    on_time: u64,
    errors: u64,
    ttfb: Hist,
    total: Hist,
    handshake: Hist,
}

/// Runs `connect`, or `handshakes` when `handshakes` (TLS forced on).
pub fn run(mut a: ConnectArgs, handshakes: bool) -> Result<Report> {
    if handshakes {
        a.browsers.tls = true;
    }
    let browsers = Browsers::new(&a.browsers)?;
    let cores = a.common.cores();
    let threads = cores.threads();
    let live = Arc::new(Live::default());
    let dur = a.common.duration();
    let (conc, answer, reset) = (a.concurrency.max(1), a.answer, a.reset);
    let name = if handshakes { "handshakes" } else { "connect" };
    let progress = (!a.common.quiet).then(|| Progress::start(name, live.clone()));
    let before = CpuSample::take(&a.common.watch);
    let l = live.clone();
    let per_thread = cores.run(move |t| {
        let browsers = browsers.clone();
        let live = l.clone();
        async move {
            let deadline = Instant::now() + dur;
            let mut tasks = Vec::new();
            for c in (t..conc).step_by(threads) {
                let browsers = browsers.clone();
                let live = live.clone();
                tasks.push(tokio::task::spawn_local(async move {
                    let mut tally = Tally::default();
                    let mut k = c;
                    while Instant::now() < deadline {
                        match one(&browsers, k, answer, reset, &mut tally).await {
                            Ok(()) => {
                                tally.ok += 1;
                                tally.on_time += u64::from(Instant::now() <= deadline);
                                live.op();
                            }
                            Err(_) => {
                                tally.errors += 1;
                                live.error();
                                // A refusing target must not turn this into a busy loop.
                                tokio::time::sleep(Duration::from_millis(2)).await;
                            }
                        }
                        k += conc;
                    }
                    tally
                }));
            }
            let mut sum = Tally::default();
            for t in tasks {
                if let Ok(x) = t.await {
                    sum.ok += x.ok;
                    sum.on_time += x.on_time;
                    sum.errors += x.errors;
                    sum.ttfb.merge(&x.ttfb);
                    sum.total.merge(&x.total);
                    sum.handshake.merge(&x.handshake);
                }
            }
            sum
        }
    })?;
    let used = CpuSample::take(&a.common.watch).since(&before);
    drop(progress);
    let mut all = Tally::default();
    for x in per_thread {
        all.ok += x.ok;
        all.on_time += x.on_time;
        all.errors += x.errors;
        all.ttfb.merge(&x.ttfb);
        all.total.merge(&x.total);
        all.handshake.merge(&x.handshake);
    }
    let mut r = a.common.report(name);
    r.param("concurrency", conc);
    r.param("answer", answer);
    r.param("hosts", a.browsers.host_count);
    r.param("tls", a.browsers.tls);
    r.param("close", if reset { "reset" } else { "fin" });
    r.figure("conn_per_s", all.on_time as f64 / dur.as_secs_f64());
    r.figure("connections", all.ok as f64);
    r.figure("errors", all.errors as f64);
    if all.errors > 0 {
        r.notes.push(format!("{} connections failed", all.errors));
    }
    r.latencies.insert("ttfb".into(), all.ttfb.summary());
    r.latencies.insert("complete".into(), all.total.summary());
    if a.browsers.tls {
        r.latencies
            .insert("handshake".into(), all.handshake.summary());
    }
    cpu_figures(&mut r, &used, 0);
    for (n, s) in &used {
        if all.ok > 0 {
            r.figure(&format!("cpu_us_per_conn.{n}"), s * 1e6 / all.ok as f64);
        }
    }
    Ok(r)
}

/// Longest a connection may take in all before it counts as failed.
const CONN_TIMEOUT: Duration = Duration::from_secs(10);

async fn one(
    b: &Browsers,
    k: usize,
    answer: u64,
    reset: bool,
    t: &mut Tally,
) -> std::io::Result<()> {
    tokio::time::timeout(CONN_TIMEOUT, one_inner(b, k, answer, reset, t))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connection timed out"))?
}

async fn one_inner(
    b: &Browsers,
    k: usize,
    answer: u64,
    reset: bool,
    t: &mut Tally,
) -> std::io::Result<()> {
    let t0 = Instant::now();
    let req = Request {
        body: 0,
        answer,
        close: true,
    }
    .encode();
    let mut conn = b.open(k, &req).await?;
    if matches!(conn, crate::browser::Conn::Tls(_)) {
        t.handshake.record(t0.elapsed());
    }
    if reset {
        conn.reset_on_close();
    }
    let mut buf = [0u8; 4096];
    let mut got = 0u64;
    let mut first = true;
    loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        if first {
            t.ttfb.record(t0.elapsed());
            first = false;
        }
        got += n as u64;
        if reset && got >= answer {
            break;
        }
    }
    if got < answer {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "short answer",
        ));
    }
    t.total.record(t0.elapsed());
    Ok(())
}
