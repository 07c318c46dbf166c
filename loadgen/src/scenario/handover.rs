//! handover: connections whose tunnel is on the worker that accepted them, against
//! connections another worker accepted and handed over. Sluice edges only (it reads
//! `/metrics`).
//!
//! The kernel's `SO_REUSEPORT` hash of the 4-tuple picks the accepting worker, so the
//! scenario picks it by picking the source address:
//! 1. one tunnel is placed on worker 0 (reconnected until `/metrics` shows it there);
//! 2. calibration: from each of `--probes` source addresses (127.1.x.y, port chosen at bind),
//!    one connection with an unknown host name; the worker whose `unknown_host` refusals rise
//!    accepted it;
//! 3. measurement, alternating the two classes in rounds: connect from a source of the class,
//!    hello, a 64-byte answer, close with a reset (so the 4-tuple is free again at once).
//!
//! The edge's `sluice_handovers_sent_total` must rise by the number of other-core connections.

use anyhow::{Context, Result, bail};
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;

use super::Common;
use crate::admin;
use crate::browser::{BrowserArgs, Browsers};
use crate::home::{Plan, TunnelArgs};
use crate::stats::{Hist, Report};
use crate::tunnel::Fleet;
use crate::wire::Request;

/// Flags of `handover`.
#[derive(Debug, Clone, clap::Args)]
pub struct HandoverArgs {
    #[command(flatten)]
    browsers: BrowserArgs,
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    tunnels: TunnelArgs,
    /// The edge's admin address (for `/metrics`).
    #[arg(long, value_name = "ADDR")]
    admin: SocketAddr,
    /// Source addresses to calibrate.
    #[arg(long, default_value_t = 64, value_name = "N")]
    probes: usize,
    /// Rounds (each runs both classes for duration / (2 × rounds)).
    #[arg(long, default_value_t = 6, value_name = "N")]
    rounds: usize,
}

#[derive(Default)]
struct Class {
    sources: Vec<SocketAddr>,
    ok: u64,
    errors: u64,
    busy: Duration,
    ttfb: Hist,
    complete: Hist,
}

/// Runs the scenario (on one load thread: the first of --cpus).
pub fn run(mut a: HandoverArgs) -> Result<Report> {
    a.common.threads = 1;
    a.tunnels.tunnels = a.tunnels.tunnels.max(1);
    let browsers = Browsers::new(&a.browsers)?;
    let plan = Plan::new(&a.tunnels, &a.browsers.hosts)?.context("no tunnels")?;
    let cores = a.common.cores();
    let dur = a.common.duration();
    let (admin_addr, probes, rounds) = (a.admin, a.probes.max(2), a.rounds.max(1));
    let target = a.browsers.target;
    let out = cores.run(move |_| {
        let browsers = browsers.clone();
        let plan = plan.clone();
        async move { measure(&browsers, &plan, admin_addr, target, probes, rounds, dur).await }
    })?;
    let (same, other, handovers) = out.into_iter().next().context("no result")??;
    let mut r = a.common.report("handover");
    r.param("probes", probes);
    r.param("rounds", rounds);
    for (name, c) in [("same", &same), ("other", &other)] {
        r.figure(&format!("sources.{name}"), c.sources.len() as f64);
        r.figure(&format!("connections.{name}"), c.ok as f64);
        r.figure(&format!("errors.{name}"), c.errors as f64);
        if !c.busy.is_zero() {
            r.figure(
                &format!("conn_per_s.{name}"),
                c.ok as f64 / c.busy.as_secs_f64(),
            );
        }
        r.latencies.insert(format!("ttfb.{name}"), c.ttfb.summary());
        r.latencies
            .insert(format!("complete.{name}"), c.complete.summary());
    }
    r.figure("handovers_seen", handovers);
    if (handovers - other.ok as f64).abs() > 0.5 + other.errors as f64 {
        r.notes.push(format!(
            "the edge counted {handovers} handovers for {} other-core connections",
            other.ok
        ));
    }
    Ok(r)
}

async fn measure(
    b: &Browsers,
    plan: &Plan,
    admin_addr: SocketAddr,
    target: SocketAddr,
    probes: usize,
    rounds: usize,
    dur: Duration,
) -> Result<(Class, Class, f64)> {
    let fleet = Rc::new(Fleet::default());
    let _stop = plan.place(0, 0, admin_addr, &fleet).await?;
    // Let the route reach the other workers.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let unknown = Browsers::new(&BrowserArgs {
        target,
        hosts: "calibration.invalid".into(),
        host_count: 1,
        tls: false,
        kx: crate::tls::Kx::X25519,
    })?;
    let (mut same, mut other) = (Class::default(), Class::default());
    const REFUSED: &str = "sluice_refusals_total";
    let filter = [("reason", "unknown_host")];
    for i in 0..probes {
        let ip = Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8);
        let sock = TcpSocket::new_v4()?;
        sock.set_reuseaddr(true)?;
        sock.bind(SocketAddr::new(ip.into(), 0))?;
        let local = sock.local_addr()?;
        drop(sock);
        let before = admin::per_worker(&admin::scrape(admin_addr)?, REFUSED, &filter);
        if let Ok(mut c) = unknown.open_from(0, &[], Some(local)).await {
            c.reset_on_close();
            let mut buf = [0u8; 64];
            let _ = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await;
        }
        let after = admin::per_worker(&admin::scrape(admin_addr)?, REFUSED, &filter);
        let rose =
            |w: usize| after.get(w).copied().unwrap_or(0.0) > before.get(w).copied().unwrap_or(0.0);
        if rose(0) {
            same.sources.push(local);
        } else if (1..after.len()).any(rose) {
            other.sources.push(local);
        }
    }
    if same.sources.is_empty() || other.sources.is_empty() {
        bail!(
            "calibration found {} same-core and {} other-core sources: is the edge running 2+ workers?",
            same.sources.len(),
            other.sources.len()
        );
    }
    let hand = |s: &[admin::Sample]| admin::sum(s, "sluice_handovers_sent_total", &[]);
    let h0 = hand(&admin::scrape(admin_addr)?);
    let slice = dur / (2 * rounds) as u32;
    let req = Request {
        body: 0,
        answer: 64,
        close: true,
    }
    .encode();
    for _ in 0..rounds {
        for class in [&mut same, &mut other] {
            let start = Instant::now();
            let mut k = 0;
            while start.elapsed() < slice {
                let src = class.sources[k % class.sources.len()];
                k += 1;
                let t0 = Instant::now();
                let r = async {
                    let mut c = b.open_from(0, &req, Some(src)).await?;
                    c.reset_on_close();
                    let mut buf = [0u8; 256];
                    let mut got = 0;
                    let mut first = None;
                    while got < 64 {
                        let n = c.read(&mut buf).await?;
                        if n == 0 {
                            break;
                        }
                        first.get_or_insert_with(|| t0.elapsed());
                        got += n;
                    }
                    std::io::Result::Ok((first, got))
                }
                .await;
                match r {
                    Ok((Some(ttfb), got)) if got >= 64 => {
                        class.ttfb.record(ttfb);
                        class.complete.record(t0.elapsed());
                        class.ok += 1;
                    }
                    _ => {
                        class.errors += 1;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
            }
            class.busy += start.elapsed();
        }
    }
    let h1 = hand(&admin::scrape(admin_addr)?);
    Ok((same, other, h1 - h0))
}
