//! soak: mixed traffic for a long time, sampling what the edge holds, and failing when any of
//! it keeps growing once the load is steady.
//!
//! The mix, each kind a fixed number of loops that run back to back until the end:
//! bulk downloads read to the end and checked; many short connections; browsers that read
//! their page and close first on a kept-alive connection (as curl does); browsers that reset
//! mid-download; slow readers; and one tunnel that reconnects every `--reconnect-every`
//! (probed after each reconnect). Every `--sample-every` the edge's descriptors and resident
//! memory (`--watch`, the process itself, not its children) and its channels and tunnels
//! (`--admin`) are sampled. After the warm-up,
//! a series *trends upward* when the mean of its last half passes the mean of its first half by
//! more than `--tolerance` (relative) and its slack (absolute); any such series fails the run.

use anyhow::{Result, bail};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

use super::Common;
use crate::admin;
use crate::browser::{BrowserArgs, Browsers, Conn};
use crate::home::{Plan, TunnelArgs};
use crate::procstat::{fd_count, rss_kib_of};
use crate::stats::{Live, Progress, Report};
use crate::tunnel::{Fleet, Stop};
use crate::wire::{AnswerCheck, Request};

/// Flags of `soak`.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    #[command(flatten)]
    browsers: BrowserArgs,
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    tunnels: TunnelArgs,
    /// The edge's admin address, to sample its channels and tunnels.
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// Seconds between two samples.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    sample_every: f64,
    /// Share of the run, from the start, that is warm-up (not judged).
    #[arg(long, default_value_t = 0.25, value_name = "FRACTION")]
    warmup: f64,
    /// Growth (relative, from the first half of the steady samples to the last) that counts as
    /// a trend, on top of each series' absolute slack.
    #[arg(long, default_value_t = 0.2, value_name = "FRACTION")]
    tolerance: f64,
    /// Loops of bulk downloads (`--bulk-size` bytes, read to the end and checked).
    #[arg(long, default_value_t = 2, value_name = "N")]
    bulk: usize,
    /// Bytes of one bulk download.
    #[arg(long, default_value_t = 4 << 20, value_name = "BYTES")]
    bulk_size: u64,
    /// Loops of short connections (one 16 KiB page, the server closes).
    #[arg(long, default_value_t = 6, value_name = "N")]
    short: usize,
    /// Loops of browsers that read their page and close first, the connection kept alive.
    #[arg(long, default_value_t = 4, value_name = "N")]
    close_first: usize,
    /// Loops of browsers that reset their connection in the middle of a download.
    #[arg(long, default_value_t = 2, value_name = "N")]
    resets: usize,
    /// Loops of slow readers (16 KiB every 20 ms of a 1 MiB download).
    #[arg(long, default_value_t = 2, value_name = "N")]
    slow: usize,
    /// Seconds between two reconnects of the flapping tunnel (0: none).
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    reconnect_every: f64,
}

/// Longest one browser exchange may take before it counts as an error.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes of a short page.
const PAGE: u64 = 16 * 1024;
/// Bytes a slow reader or a resetting browser asks for.
const MEDIUM: u64 = 1 << 20;

/// One sampled quantity and what growth it may show without counting as a trend.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its name in the report.
    pub name: String,
    /// Growth below this (in the series' unit) is noise, whatever the ratio.
    pub slack: f64,
    /// (seconds since the start, value).
    pub points: Vec<(f64, f64)>,
}

/// How a series moved once steady.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    /// Mean of the first half of the steady samples.
    pub early: f64,
    /// Mean of the last half.
    pub late: f64,
    /// Least-squares slope over the steady samples, per minute.
    pub per_minute: f64,
    /// Whether it counts as growing.
    pub upward: bool,
}

impl Series {
    fn new(name: &str, slack: f64) -> Self {
        Self {
            name: name.into(),
            slack,
            points: Vec::new(),
        }
    }

    /// The trend after `warmup` seconds, or `None` with fewer than four steady samples.
    pub fn trend(&self, warmup: f64, tolerance: f64) -> Option<Trend> {
        let steady: Vec<(f64, f64)> = self
            .points
            .iter()
            .copied()
            .filter(|&(t, _)| t >= warmup)
            .collect();
        if steady.len() < 4 {
            return None;
        }
        let half = steady.len() / 2;
        let mean = |s: &[(f64, f64)]| s.iter().map(|p| p.1).sum::<f64>() / s.len() as f64;
        let (early, late) = (mean(&steady[..half]), mean(&steady[steady.len() - half..]));
        let n = steady.len() as f64;
        let (mt, mv) = (steady.iter().map(|p| p.0).sum::<f64>() / n, mean(&steady));
        let (mut num, mut den) = (0.0, 0.0);
        for &(t, v) in &steady {
            num += (t - mt) * (v - mv);
            den += (t - mt) * (t - mt);
        }
        let per_minute = if den > 0.0 { num / den * 60.0 } else { 0.0 };
        let upward = late > early * (1.0 + tolerance) + self.slack;
        Some(Trend {
            early,
            late,
            per_minute,
            upward,
        })
    }
}

#[derive(Debug, Default)]
struct Counts {
    ok: [u64; 6],
    errors: [u64; 6],
    corrupt: u64,
    reconnects: u64,
    /// The first few distinct failures, for the report.
    why: Vec<String>,
}

/// Distinct failures kept for the report.
const MAX_REASONS: usize = 8;

const KINDS: [&str; 6] = [
    "bulk",
    "short",
    "close_first",
    "reset",
    "slow",
    "flap_probe",
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Bulk = 0,
    Short = 1,
    CloseFirst = 2,
    Reset = 3,
    Slow = 4,
    FlapProbe = 5,
}

/// Reads `n` bytes, checking them against the answer pattern; `Ok(false)` if they differ.
async fn read_checked(c: &mut Conn, n: u64, pace: Option<Duration>) -> std::io::Result<bool> {
    let mut check = AnswerCheck::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = n;
    let mut good = true;
    while left > 0 {
        let want = if pace.is_some() { 16 * 1024 } else { buf.len() };
        let want = want.min(left as usize);
        let got = c.read(&mut buf[..want]).await?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        good &= check.check(&buf[..got]);
        left -= got as u64;
        if let Some(p) = pace {
            tokio::time::sleep(p).await;
        }
    }
    Ok(good)
}

async fn exchange(b: &Browsers, host: usize, kind: Kind, bulk_size: u64) -> std::io::Result<bool> {
    let (answer, close) = match kind {
        Kind::Bulk => (bulk_size, false),
        Kind::Short | Kind::FlapProbe => (PAGE, true),
        Kind::CloseFirst => (PAGE, false),
        Kind::Reset | Kind::Slow => (MEDIUM, false),
    };
    let req = Request {
        body: 0,
        answer,
        close,
    }
    .encode();
    let mut c = b
        .open(host, &req)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("opening: {e}")))?;
    let good = match kind {
        Kind::Reset => {
            let good = read_checked(&mut c, 64 * 1024, None).await?;
            c.reset_on_close();
            good
        }
        Kind::Slow => read_checked(&mut c, answer, Some(Duration::from_millis(20))).await?,
        Kind::Short | Kind::FlapProbe => {
            let good = read_checked(&mut c, answer, None).await?;
            // The home side closes after the page: the browser sees the end.
            let mut rest = [0u8; 1];
            if c.read(&mut rest).await? != 0 {
                return Ok(false);
            }
            good
        }
        Kind::Bulk | Kind::CloseFirst => read_checked(&mut c, answer, None).await?,
    };
    // Dropping the connection closes it first (or resets it), with the home side still open.
    drop(c);
    Ok(good)
}

fn record(
    counts: &RefCell<Counts>,
    live: &Live,
    kind: Kind,
    r: Result<std::io::Result<bool>, tokio::time::error::Elapsed>,
) {
    let mut c = counts.borrow_mut();
    match r {
        Ok(Ok(true)) => {
            c.ok[kind as usize] += 1;
            live.op();
        }
        Ok(Ok(false)) => {
            c.corrupt += 1;
            live.error();
        }
        Ok(Err(e)) => c.failed(kind, &e.to_string(), live),
        Err(_) => c.failed(
            kind,
            &format!("no answer within {EXCHANGE_TIMEOUT:?}"),
            live,
        ),
    }
}

impl Counts {
    /// Counts a failed exchange and keeps its reason if it is a new one.
    fn failed(&mut self, kind: Kind, why: &str, live: &Live) {
        self.errors[kind as usize] += 1;
        live.error();
        let why = format!("{}: {why}", KINDS[kind as usize]);
        if self.why.len() < MAX_REASONS && !self.why.contains(&why) {
            self.why.push(why);
        }
    }
}

fn sample(series: &mut [Series], at: f64, watch: &[u32], admin_addr: Option<SocketAddr>) {
    let mut values: Vec<f64> = Vec::new();
    for &pid in watch {
        values.push(fd_count(pid) as f64);
        values.push(rss_kib_of(pid) as f64);
    }
    if let Some(a) = admin_addr {
        let samples = admin::scrape(a).unwrap_or_default();
        values.push(admin::sum(&samples, "sluice_channels", &[]));
        values.push(admin::sum(&samples, "sluice_tunnels", &[]));
    }
    for (s, v) in series.iter_mut().zip(values) {
        s.points.push((at, v));
    }
}

/// Runs the scenario on the first load thread (the others stay idle).
pub fn run(a: SoakArgs) -> Result<Report> {
    let browsers = Browsers::new(&a.browsers)?;
    let Some(plan) = Plan::new(&a.tunnels, &a.browsers.hosts)? else {
        bail!("soak needs tunnels: --tunnels N --tunnel-edge ADDR --fernet-keys FILE");
    };
    if a.tunnels.tunnel_tls || a.browsers.tls {
        bail!("soak speaks raw bytes after the hello: drop --tunnel-tls and --tls");
    }
    if a.browsers.host_count > plan.count {
        bail!("--host-count must not pass --tunnels: every browser host needs a tunnel");
    }
    let cores = a.common.cores();
    let live = Arc::new(Live::default());
    let dur = a.common.duration();
    let watch: Vec<u32> = a.common.watch.iter().map(|w| w.pid).collect();
    let mut names: Vec<Series> = Vec::new();
    for w in &a.common.watch {
        names.push(Series::new(&format!("fds.{}", w.name), 32.0));
        names.push(Series::new(&format!("rss_kib.{}", w.name), 16.0 * 1024.0));
    }
    if a.admin.is_some() {
        names.push(Series::new("edge_channels", 32.0));
        names.push(Series::new("edge_tunnels", 2.0));
    }
    let out: Arc<Mutex<(Vec<Series>, Counts, usize)>> =
        Arc::new(Mutex::new((names, Counts::default(), 0)));
    let progress = (!a.common.quiet).then(|| Progress::start("soak", live.clone()));
    let (l, o2, args) = (live.clone(), out.clone(), a.clone());
    cores.run(move |t| {
        let (browsers, plan, live, out, watch, a) = (
            browsers.clone(),
            plan.clone(),
            l.clone(),
            o2.clone(),
            watch.clone(),
            args.clone(),
        );
        async move {
            if t != 0 {
                return;
            }
            let fleet = Rc::new(Fleet::default());
            let stop = Rc::new(Stop::default());
            let up = plan.open_share(0, 1, &fleet, &stop).await.unwrap_or(0);
            out.lock().unwrap_or_else(|e| e.into_inner()).2 = up;
            let start = Instant::now();
            let end = start + dur;
            let counts = Rc::new(RefCell::new(Counts::default()));
            let hosts = browsers.host_count();
            let mut tasks = tokio::task::JoinSet::new();
            let loops = [
                (Kind::Bulk, a.bulk),
                (Kind::Short, a.short),
                (Kind::CloseFirst, a.close_first),
                (Kind::Reset, a.resets),
                (Kind::Slow, a.slow),
            ];
            let mut n = 0;
            for (kind, count) in loops {
                for _ in 0..count {
                    let (b, c, live) = (browsers.clone(), counts.clone(), live.clone());
                    let (host, bulk_size) = (n % hosts, a.bulk_size);
                    n += 1;
                    tasks.spawn_local(async move {
                        while Instant::now() < end {
                            let r = tokio::time::timeout(
                                EXCHANGE_TIMEOUT,
                                exchange(&b, host, kind, bulk_size),
                            )
                            .await;
                            record(&c, &live, kind, r);
                        }
                    });
                }
            }
            // The flapping tunnel: its own host name, past the browsers' ones.
            if a.reconnect_every > 0.0 {
                let (c, live, plan, fleet) =
                    (counts.clone(), live.clone(), plan.clone(), fleet.clone());
                let every = Duration::from_secs_f64(a.reconnect_every.max(0.5));
                let mut flap_args = a.browsers.clone();
                flap_args.host_count = plan.count + 1;
                let flap_browsers = Browsers::new(&flap_args);
                tasks.spawn_local(async move {
                    let Ok(fb) = flap_browsers else { return };
                    let mut rng = StdRng::from_entropy();
                    while Instant::now() + every < end {
                        let Ok(creds) = plan.creds(plan.count, &mut rng) else {
                            return;
                        };
                        let stop = Rc::new(Stop::default());
                        if fleet
                            .launch(plan.edge(), &creds, None, stop.clone())
                            .await
                            .is_ok()
                        {
                            c.borrow_mut().reconnects += 1;
                            // The edge registers a tunnel a moment after its handshake.
                            let mut r = None;
                            for _ in 0..50 {
                                let got = tokio::time::timeout(
                                    EXCHANGE_TIMEOUT,
                                    exchange(&fb, plan.count, Kind::FlapProbe, 0),
                                )
                                .await;
                                let done = matches!(got, Ok(Ok(_)));
                                r = Some(got);
                                if done {
                                    break;
                                }
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            if let Some(r) = r {
                                record(&c, &live, Kind::FlapProbe, r);
                            }
                        }
                        tokio::time::sleep(every).await;
                        stop.stop();
                    }
                });
            }
            let every = Duration::from_secs_f64(a.sample_every.max(0.2));
            let mut next = start;
            while Instant::now() < end {
                let at = start.elapsed().as_secs_f64();
                let (w, adm) = (watch.clone(), a.admin);
                // /proc and the admin scrape block: keep them off the load loop's thread.
                let mut series =
                    std::mem::take(&mut out.lock().unwrap_or_else(|e| e.into_inner()).0);
                series = tokio::task::spawn_blocking(move || {
                    sample(&mut series, at, &w, adm);
                    series
                })
                .await
                .unwrap_or_default();
                out.lock().unwrap_or_else(|e| e.into_inner()).0 = series;
                next += every;
                tokio::time::sleep_until(next.into()).await;
            }
            while tasks.join_next().await.is_some() {}
            stop.stop();
            tokio::time::sleep(Duration::from_millis(200)).await;
            out.lock().unwrap_or_else(|e| e.into_inner()).1 =
                std::mem::take(&mut *counts.borrow_mut());
        }
    })?;
    drop(progress);
    let (series, counts, up) = std::mem::take(&mut *out.lock().unwrap_or_else(|e| e.into_inner()));
    let mut r = a.common.report("soak");
    for (k, v) in [
        ("bulk", a.bulk),
        ("short", a.short),
        ("close_first", a.close_first),
        ("resets", a.resets),
        ("slow", a.slow),
    ] {
        r.param(k, v);
    }
    r.param("bulk_size", a.bulk_size);
    r.param("sample_every_s", a.sample_every);
    r.param("reconnect_every_s", a.reconnect_every);
    r.param("warmup", a.warmup);
    r.param("tolerance", a.tolerance);
    r.figure("tunnels_up", up as f64);
    for (i, k) in KINDS.iter().enumerate() {
        r.figure(&format!("ok.{k}"), counts.ok[i] as f64);
        r.figure(&format!("errors.{k}"), counts.errors[i] as f64);
    }
    r.figure("corrupt", counts.corrupt as f64);
    for why in &counts.why {
        r.notes.push(format!("failed: {why}"));
    }
    r.figure("reconnects", counts.reconnects as f64);
    let warmup = dur.as_secs_f64() * a.warmup.clamp(0.0, 0.9);
    let mut trending = 0;
    for s in &series {
        r.figure(&format!("samples.{}", s.name), s.points.len() as f64);
        if let Some(last) = s.points.last() {
            r.figure(&format!("last.{}", s.name), last.1);
        }
        if let Some(tr) = s.trend(warmup, a.tolerance) {
            r.figure(&format!("early.{}", s.name), tr.early);
            r.figure(&format!("late.{}", s.name), tr.late);
            r.figure(&format!("per_minute.{}", s.name), tr.per_minute);
            if tr.upward {
                trending += 1;
                r.notes.push(format!(
                    "{} trends upward: {:.0} then {:.0} ({:+.1} per minute)",
                    s.name, tr.early, tr.late, tr.per_minute
                ));
            }
        } else {
            r.notes
                .push(format!("{}: too few steady samples to judge", s.name));
        }
    }
    r.figure("trending", trending as f64);
    // How the edge says its channels and tunnels ended: the first place to look when an
    // exchange failed.
    if let Some(samples) = a.admin.and_then(|adm| admin::scrape(adm).ok()) {
        for (family, prefix) in [
            ("sluice_channel_ends_total", "edge_channel_ends"),
            ("sluice_tunnel_ends_total", "edge_tunnel_ends"),
        ] {
            let mut by_cause: std::collections::BTreeMap<String, f64> = Default::default();
            for s in samples.iter().filter(|s| s.name == family) {
                if let Some(cause) = s.label("cause") {
                    *by_cause.entry(cause.to_owned()).or_default() += s.value;
                }
            }
            for (cause, n) in by_cause {
                r.figure(&format!("{prefix}.{cause}"), n);
            }
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(values: &[f64]) -> Series {
        let mut s = Series::new("x", 10.0);
        s.points = values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as f64 * 5.0, v))
            .collect();
        s
    }

    #[test]
    fn a_flat_noisy_series_is_steady() {
        let s = series(&[500.0, 100.0, 104.0, 98.0, 103.0, 99.0, 105.0, 101.0, 97.0]);
        let t = s.trend(5.0, 0.2).unwrap();
        assert!(!t.upward, "{t:?}");
    }

    #[test]
    fn a_leak_trends_upward() {
        let s = series(&[10.0, 100.0, 120.0, 140.0, 160.0, 180.0, 200.0, 220.0, 240.0]);
        let t = s.trend(5.0, 0.2).unwrap();
        assert!(t.upward, "{t:?}");
        assert!((t.per_minute - 240.0).abs() < 1e-6, "{t:?}");
    }

    #[test]
    fn growth_within_the_slack_is_noise() {
        let s = series(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
        assert!(!s.trend(0.0, 0.2).unwrap().upward);
    }

    #[test]
    fn too_few_samples_are_not_judged() {
        assert!(series(&[1.0, 2.0, 3.0]).trend(0.0, 0.2).is_none());
        assert!(
            series(&[1.0, 2.0, 3.0, 4.0, 5.0])
                .trend(10.0, 0.2)
                .is_none()
        );
    }
}
