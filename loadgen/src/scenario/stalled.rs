//! stalled: `--stalled` browsers each ask one host for a `--size`-byte download and never read
//! a byte of it; meanwhile a probe browser of the same host asks for a small page every
//! `--probe-every` and times the answer. It measures what slow readers cost their neighbours
//! (the probe's latency and failures) and what they cost the edge (its queued bytes and RSS,
//! sampled every second from `--admin` and `--watch`).

use anyhow::Result;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

use super::Common;
use crate::admin;
use crate::browser::{BrowserArgs, Browsers};
use crate::home::{Plan, TunnelArgs};
use crate::procstat::rss_kib;
use crate::stats::{Hist, Live, Progress, Report};
use crate::tunnel::{Fleet, Stop};
use crate::wire::Request;

/// Flags of `stalled`.
#[derive(Debug, Clone, clap::Args)]
pub struct StalledArgs {
    #[command(flatten)]
    browsers: BrowserArgs,
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    tunnels: TunnelArgs,
    /// Browsers that ask for a download and never read.
    #[arg(long, default_value_t = 100, value_name = "N")]
    stalled: usize,
    /// Bytes each stalled browser asks for.
    #[arg(long, default_value_t = 64 << 20, value_name = "BYTES")]
    size: u64,
    /// Bytes of the probe's page.
    #[arg(long, default_value_t = 16 * 1024, value_name = "BYTES")]
    page: u64,
    /// Time between two probes (milliseconds).
    #[arg(long, default_value_t = 100, value_name = "MS")]
    probe_every: u64,
    /// The edge's admin address, to sample its queued bytes and channel ends.
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
}

/// Longest a probe may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Default, Clone)]
struct Edge {
    queued: f64,
    overshoot: f64,
    overruns: f64,
    channels: f64,
}

fn sample_edge(admin: SocketAddr) -> Option<Edge> {
    let samples = admin::scrape(admin).ok()?;
    Some(Edge {
        queued: admin::sum(&samples, "sluice_queued_to_browsers_bytes", &[]),
        // A per-worker maximum: the edge's is the largest of them.
        overshoot: admin::per_worker(&samples, "sluice_pause_overshoot_max_bytes", &[])
            .into_iter()
            .fold(0.0, f64::max),
        overruns: admin::sum(
            &samples,
            "sluice_channel_ends_total",
            &[("cause", "overrun")],
        ),
        channels: admin::sum(&samples, "sluice_channels", &[]),
    })
}

#[derive(Debug, Default)]
struct Outcome {
    stalled_open: usize,
    probes: Hist,
    probe_errors: u64,
    max_queued: f64,
    max_channels: f64,
    last: Edge,
    max_rss: Vec<u64>,
}

/// Runs the scenario (on the first load thread; the others stay idle).
pub fn run(a: StalledArgs) -> Result<Report> {
    let browsers = Browsers::new(&a.browsers)?;
    let plan = Plan::new(&a.tunnels, &a.browsers.hosts)?;
    let cores = a.common.cores();
    let live = Arc::new(Live::default());
    let dur = a.common.duration();
    let out: Arc<Mutex<Outcome>> = Arc::default();
    let watch: Vec<u32> = a.common.watch.iter().map(|w| w.pid).collect();
    let progress = (!a.common.quiet).then(|| Progress::start("stalled", live.clone()));
    let (l, o2) = (live.clone(), out.clone());
    let (stalled, size, page, admin) = (a.stalled, a.size, a.page, a.admin);
    let every = Duration::from_millis(a.probe_every.max(1));
    cores.run(move |t| {
        let (browsers, plan, live, out, watch) = (
            browsers.clone(),
            plan.clone(),
            l.clone(),
            o2.clone(),
            watch.clone(),
        );
        async move {
            if t != 0 {
                return;
            }
            let fleet = Rc::new(Fleet::default());
            let stop = Rc::new(Stop::default());
            if let Some(p) = &plan {
                let _ = p.open_share(0, 1, &fleet, &stop).await;
            }
            // The stalled browsers: one request each, then silence.
            let big = Request {
                body: 0,
                answer: size,
                close: false,
            }
            .encode();
            let mut held = Vec::new();
            for _ in 0..stalled {
                match browsers.open(0, &big).await {
                    Ok(c) => held.push(c),
                    Err(_) => live.error(),
                }
            }
            out.lock().unwrap_or_else(|e| e.into_inner()).stalled_open = held.len();
            let small = Request {
                body: 0,
                answer: page,
                close: true,
            }
            .encode();
            let end = Instant::now() + dur;
            let mut next_sample = Instant::now();
            let mut buf = vec![0u8; page as usize];
            while Instant::now() < end {
                let started = Instant::now();
                let probe = tokio::time::timeout(PROBE_TIMEOUT, async {
                    let mut c = browsers.open(0, &small).await?;
                    c.read_exact(&mut buf).await?;
                    std::io::Result::Ok(())
                })
                .await;
                {
                    let mut o = out.lock().unwrap_or_else(|e| e.into_inner());
                    match probe {
                        Ok(Ok(())) => {
                            o.probes.record(started.elapsed());
                            live.op();
                        }
                        _ => {
                            o.probe_errors += 1;
                            live.error();
                        }
                    }
                    if Instant::now() >= next_sample {
                        next_sample += Duration::from_secs(1);
                        if let Some(e) = admin.and_then(sample_edge) {
                            o.max_queued = o.max_queued.max(e.queued);
                            o.max_channels = o.max_channels.max(e.channels);
                            o.last = e;
                        }
                        let rss: Vec<u64> = watch.iter().map(|&p| rss_kib(p)).collect();
                        if o.max_rss.len() != rss.len() {
                            o.max_rss = rss;
                        } else {
                            for (m, r) in o.max_rss.iter_mut().zip(rss) {
                                *m = (*m).max(r);
                            }
                        }
                    }
                }
                tokio::time::sleep_until((started + every).into()).await;
            }
            drop(held);
            stop.stop();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })?;
    drop(progress);
    let o = std::mem::take(&mut *out.lock().unwrap_or_else(|e| e.into_inner()));
    let mut r = a.common.report("stalled");
    r.param("stalled", stalled);
    r.param("size", size);
    r.param("page", page);
    r.param("probe_every_ms", a.probe_every);
    r.figure("stalled_open", o.stalled_open as f64);
    r.figure("probes", o.probes.count() as f64);
    r.figure("probe_errors", o.probe_errors as f64);
    if admin.is_some() {
        r.figure("edge_queued_max_bytes", o.max_queued);
        r.figure("edge_channels_max", o.max_channels);
        r.figure("edge_pause_overshoot_max_bytes", o.last.overshoot);
        r.figure("edge_channel_overruns", o.last.overruns);
    }
    for (w, rss) in a.common.watch.iter().zip(&o.max_rss) {
        r.figure(&format!("rss_kib_max.{}", w.name), *rss as f64);
    }
    r.latencies.insert("probe".into(), o.probes.summary());
    Ok(r)
}
