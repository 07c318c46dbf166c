//! scale: thousands of idle tunnels, then thousands of idle channels through them; the resident
//! memory (VmRSS) of every watched process before, after the tunnels and after the channels
//! gives its cost per idle tunnel and per idle channel. The kernel's slab growth is reported
//! too (it holds the sockets of both ends, the load generator's included).
//!
//! Mind the open-files limit (20,000 per process here): this process holds one socket per
//! tunnel and one per channel; the edge the same.

use anyhow::Result;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::Barrier;

use super::Common;
use crate::browser::{BrowserArgs, Browsers};
use crate::home::{Plan, TunnelArgs};
use crate::procstat::{rss_kib, slab_kib};
use crate::stats::{Live, Progress, Report};
use crate::tunnel::{Fleet, Stop};
use crate::wire::Request;

/// Flags of `scale`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    browsers: BrowserArgs,
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    tunnels: TunnelArgs,
    /// Idle browser connections to open (spread over the host names).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    channels: usize,
    /// Seconds to let things settle before each memory sample.
    #[arg(long, default_value_t = 2.0, value_name = "SECS")]
    settle: f64,
}

type Samples = Vec<(Vec<u64>, u64)>;

/// Runs the scenario.
pub fn run(a: ScaleArgs) -> Result<Report> {
    let browsers = Browsers::new(&a.browsers)?;
    let plan = Plan::new(&a.tunnels, &a.browsers.hosts)?;
    let cores = a.common.cores();
    let threads = cores.threads();
    let live = Arc::new(Live::default());
    let channels = a.channels;
    let settle = Duration::from_secs_f64(a.settle.clamp(0.0, 60.0));
    let barrier = Arc::new(Barrier::new(threads));
    let samples: Arc<Mutex<Samples>> = Arc::default();
    let watch: Vec<u32> = a.common.watch.iter().map(|w| w.pid).collect();
    let counts = Arc::new(Mutex::new((0usize, 0usize)));
    let progress = (!a.common.quiet).then(|| Progress::start("scale", live.clone()));
    let (l, s2, c2) = (live.clone(), samples.clone(), counts.clone());
    cores.run(move |t| {
        let browsers = browsers.clone();
        let plan = plan.clone();
        let barrier = barrier.clone();
        let samples = s2.clone();
        let watch = watch.clone();
        let live = l.clone();
        let counts = c2.clone();
        async move {
            let sample = || {
                let rss: Vec<u64> = watch.iter().map(|&p| rss_kib(p)).collect();
                samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((rss, slab_kib()));
            };
            let fleet = Rc::new(Fleet::default());
            let stop = Rc::new(Stop::default());
            if barrier.wait().await.is_leader() {
                sample();
            }
            let mut up = 0;
            if let Some(p) = &plan {
                up = p.open_share(t, threads, &fleet, &stop).await.unwrap_or(0);
            }
            barrier.wait().await;
            tokio::time::sleep(settle).await;
            if barrier.wait().await.is_leader() {
                sample();
            }
            // Idle channels: each carries one request and its one-byte answer, so it is open
            // end to end, then nothing.
            let req = Request {
                body: 0,
                answer: 1,
                close: false,
            }
            .encode();
            let mut conns = Vec::new();
            let mine: Vec<usize> = (t..channels).step_by(threads).collect();
            for batch in mine.chunks(64) {
                let mut set = tokio::task::JoinSet::new();
                for &c in batch {
                    let browsers = browsers.clone();
                    set.spawn_local(async move {
                        let opened = tokio::time::timeout(Duration::from_secs(20), async {
                            let mut conn = browsers.open(c, &req).await?;
                            let mut one = [0u8; 1];
                            conn.read_exact(&mut one).await?;
                            std::io::Result::Ok(conn)
                        })
                        .await;
                        opened.unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
                    });
                }
                while let Some(r) = set.join_next().await {
                    match r {
                        Ok(Ok(c)) => {
                            conns.push(c);
                            live.op();
                        }
                        _ => live.error(),
                    }
                }
            }
            {
                let mut c = counts.lock().unwrap_or_else(|e| e.into_inner());
                c.0 += up;
                c.1 += conns.len();
            }
            barrier.wait().await;
            tokio::time::sleep(settle).await;
            if barrier.wait().await.is_leader() {
                sample();
            }
            barrier.wait().await;
            drop(conns);
            stop.stop();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })?;
    drop(progress);
    let s = samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (tunnels_up, channels_up) = *counts.lock().unwrap_or_else(|e| e.into_inner());
    let mut r = a.common.report("scale");
    r.param("tunnels", a.tunnels.tunnels);
    r.param("channels", channels);
    r.param("tls", a.browsers.tls);
    r.figure("tunnels_up", tunnels_up as f64);
    r.figure("channels_up", channels_up as f64);
    if s.len() == 3 {
        for (i, w) in a.common.watch.iter().enumerate() {
            let (r0, r1, r2) = (s[0].0[i], s[1].0[i], s[2].0[i]);
            r.figure(&format!("rss_kib.{}", w.name), r2 as f64);
            if tunnels_up > 0 {
                r.figure(
                    &format!("rss_kib_per_tunnel.{}", w.name),
                    (r1 as f64 - r0 as f64) / tunnels_up as f64,
                );
            }
            if channels_up > 0 {
                r.figure(
                    &format!("rss_kib_per_channel.{}", w.name),
                    (r2 as f64 - r1 as f64) / channels_up as f64,
                );
            }
        }
        if channels_up > 0 {
            r.figure(
                "slab_kib_per_channel_all_ends",
                (s[2].1 as f64 - s[1].1 as f64) / channels_up as f64,
            );
        }
        if tunnels_up > 0 {
            r.figure(
                "slab_kib_per_tunnel_both_ends",
                (s[1].1 as f64 - s[0].1 as f64) / tunnels_up as f64,
            );
        }
    }
    if tunnels_up < a.tunnels.tunnels || channels_up < channels {
        r.notes.push(format!(
            "opened {tunnels_up}/{} tunnels and {channels_up}/{channels} channels",
            a.tunnels.tunnels
        ));
    }
    Ok(r)
}
