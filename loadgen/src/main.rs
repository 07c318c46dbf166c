//! `sluice-loadgen`: see the crate documentation and `loadgen/README.md`.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sluice_loadgen::creds::{Creds, host_name, new_key, parse_cipher, parse_version, read_keys};
use sluice_loadgen::home::{Plan, TunnelArgs};
use sluice_loadgen::runtime::Cores;
use sluice_loadgen::scenario::{bulk, connect, handover, latency, scale, soak, stalled};
use sluice_loadgen::tunnel::{Fleet, Stop};
use sluice_loadgen::{admin, origin, report, tls};
use sluice_proto::crypto::CipherKind;
use sluice_proto::version::ProtocolVersion;

#[derive(Debug, Parser)]
#[command(
    name = "sluice-loadgen",
    version,
    about = "Load generator for Sluice and any SniTun-compatible edge",
    after_help = "Roles: `origin` (a TCP/TLS origin), `tunnels` (home servers: SniTun-protocol \
tunnels with a built-in origin), and the browser scenarios. Everything stays on 127.0.0.0/8; \
every run is bounded by --duration."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Browsers download through the target: Gbit/s, CPU seconds per GB.
    Bulk(bulk::BulkArgs),
    /// New connection, hello, small answer, close: connections per second, time to first byte.
    Connect(connect::ConnectArgs),
    /// The same with a full TLS 1.3 handshake to the origin: handshakes per second.
    Handshakes(connect::ConnectArgs),
    /// 1 KiB request/response over 100 connections, closed loop or at a fixed rate.
    Latency(latency::LatencyArgs),
    /// Idle tunnels and idle channels: resident memory per tunnel and per channel.
    Scale(scale::ScaleArgs),
    /// Browsers that never read a large download, and a probe of the same host: what slow
    /// readers cost their neighbours and the edge.
    Stalled(stalled::StalledArgs),
    /// Mixed traffic for a long time, failing when the edge's descriptors, memory, channels or
    /// tunnels keep growing once the load is steady.
    Soak(soak::SoakArgs),
    /// Same-worker against handed-over connections on a Sluice edge.
    Handover(handover::HandoverArgs),
    /// Run an origin (raw or TLS) on a TCP port.
    Origin(OriginArgs),
    /// Run home servers: tunnels with the built-in origin.
    Tunnels(TunnelsArgs),
    /// Print a new Fernet key.
    Keygen,
    /// Print N free TCP ports on 127.0.0.1 (bound and released: for configs written ahead).
    FreePorts {
        /// How many.
        #[arg(default_value_t = 1)]
        n: usize,
    },
    /// Mint a token and write the JSON config of the real SniTun client script.
    SnitunConfig(SnitunConfigArgs),
    /// Turn JSON reports of a side-by-side run into BENCHMARKS.md tables.
    Report(report::ReportArgs),
}

#[derive(Debug, clap::Args)]
struct OriginArgs {
    /// Address to listen on (port 0: any).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Terminate TLS (a fresh self-signed certificate).
    #[arg(long)]
    tls: bool,
    /// Write the bound address to this file once listening.
    #[arg(long, value_name = "FILE")]
    addr_file: Option<PathBuf>,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 3600.0)]
    duration: f64,
    /// Threads (0: one per CPU in --cpus).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// CPUs to pin to (default: all).
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
}

#[derive(Debug, clap::Args)]
struct TunnelsArgs {
    #[command(flatten)]
    tunnels: TunnelArgs,
    /// Host name pattern; tunnel `i` serves `{}` = i.
    #[arg(long, default_value = "t{}.bench.test")]
    hosts: String,
    /// Place tunnel i on edge worker PLACE[i] (needs --admin), e.g. `0,1`.
    #[arg(long, value_delimiter = ',')]
    place: Vec<usize>,
    /// A Sluice edge's admin address: placement, and waiting until every tunnel is registered.
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// Write "ready" here once every tunnel is up.
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 3600.0)]
    duration: f64,
    /// Threads (0: one per CPU in --cpus).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// CPUs to pin to (default: all).
    #[arg(long, value_delimiter = ',')]
    cpus: Vec<usize>,
}

#[derive(Debug, clap::Args)]
struct SnitunConfigArgs {
    /// Fernet key file; the first key mints.
    #[arg(long)]
    fernet_keys: PathBuf,
    /// The tunnel's host name.
    #[arg(long)]
    hostname: String,
    /// Protocol version (0, 1, 2).
    #[arg(long, default_value = "2", value_parser = parse_version)]
    protocol: ProtocolVersion,
    /// Cipher.
    #[arg(long, default_value = "aes-cbc", value_parser = parse_cipher)]
    cipher: CipherKind,
    /// Output file.
    #[arg(long)]
    out: PathBuf,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rep = match cli.command {
        Command::Bulk(a) => (a.common.json, bulk::run(a)?),
        Command::Connect(a) => (a.common.json, connect::run(a, false)?),
        Command::Handshakes(a) => (a.common.json, connect::run(a, true)?),
        Command::Latency(a) => (a.common.json, latency::run(a)?),
        Command::Scale(a) => (a.common.json, scale::run(a)?),
        Command::Stalled(a) => (a.common.json, stalled::run(a)?),
        Command::Soak(a) => (a.common.json, soak::run(a)?),
        Command::Handover(a) => (a.common.json, handover::run(a)?),
        Command::Origin(a) => return run_origin(a),
        Command::Tunnels(a) => return run_tunnels(a),
        Command::FreePorts { n } => {
            let held: Vec<std::net::TcpListener> = (0..n.min(1000))
                .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
                .collect::<std::io::Result<_>>()?;
            for l in &held {
                println!("{}", l.local_addr()?.port());
            }
            return Ok(());
        }
        Command::Keygen => {
            println!("{}", new_key());
            return Ok(());
        }
        Command::SnitunConfig(a) => {
            let key = read_keys(&a.fernet_keys)?.swap_remove(0);
            let creds = Creds::mint(
                &key,
                &a.hostname,
                a.protocol,
                a.cipher,
                &mut rand::SeedableRng::from_entropy(),
            )?;
            std::fs::write(&a.out, creds.snitun_client_json().to_string())?;
            return Ok(());
        }
        Command::Report(a) => return report::run(a),
    };
    let (json, r) = rep;
    r.print(json);
    // A soak that saw growth, corruption or failed exchanges fails (the report says which).
    if r.figures.get("trending").is_some_and(|&n| n > 0.0)
        || r.figures.get("corrupt").is_some_and(|&n| n > 0.0)
    {
        std::process::exit(2);
    }
    Ok(())
}

fn run_origin(a: OriginArgs) -> Result<()> {
    let cores = Cores::new(&a.cpus, a.threads);
    let listeners = origin::bind(a.listen, cores.threads())?;
    let addr = listeners[0].local_addr()?;
    let tls = if a.tls {
        Some(tls::server_config(&[
            "*.bench.test".into(),
            "localhost".into(),
        ])?)
    } else {
        None
    };
    println!("LISTENING {addr}");
    if let Some(f) = &a.addr_file {
        std::fs::write(f, addr.to_string())?;
    }
    let dur = Duration::from_secs_f64(a.duration.clamp(0.1, 7.0 * 86400.0));
    let slots: Vec<_> = listeners
        .into_iter()
        .map(|l| std::sync::Mutex::new(Some(l)))
        .collect();
    let slots = Arc::new(slots);
    cores.run(move |t| {
        let l = slots[t].lock().ok().and_then(|mut s| s.take());
        let tls = tls.clone();
        async move {
            if let Some(l) = l {
                let _ = origin::run(l, tls, dur).await;
            }
        }
    })?;
    Ok(())
}

fn run_tunnels(a: TunnelsArgs) -> Result<()> {
    let plan = Plan::new(&a.tunnels, &a.hosts)?.context("--tunnels must be at least 1")?;
    if !a.place.is_empty() && a.admin.is_none() {
        anyhow::bail!("--place needs --admin");
    }
    let cores = Cores::new(&a.cpus, a.threads);
    let threads = cores.threads();
    let dur = Duration::from_secs_f64(a.duration.clamp(0.1, 7.0 * 86400.0));
    let up = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let (u2, d2, place, admin_addr) = (up.clone(), done.clone(), a.place.clone(), a.admin);
    let count = plan.count;
    let handle = std::thread::spawn(move || {
        cores.run(move |t| {
            let plan = plan.clone();
            let (up, done, place) = (u2.clone(), d2.clone(), place.clone());
            async move {
                let fleet = Rc::new(Fleet::default());
                let stop = Rc::new(Stop::default());
                let mut stops = Vec::new();
                if !place.is_empty() {
                    // Placed tunnels are opened one by one on thread 0.
                    if t == 0
                        && let Some(admin_addr) = admin_addr
                    {
                        for i in 0..plan.count {
                            match plan
                                .place(i, place[i % place.len()], admin_addr, &fleet)
                                .await
                            {
                                Ok(s) => {
                                    stops.push(s);
                                    up.fetch_add(1, Ordering::Relaxed);
                                }
                                Err(e) => eprintln!("placing tunnel {i}: {e:#}"),
                            }
                        }
                    }
                } else {
                    let n = plan
                        .open_share(t, threads, &fleet, &stop)
                        .await
                        .unwrap_or(0);
                    up.fetch_add(n, Ordering::Relaxed);
                }
                done.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(dur).await;
                stop.stop();
                for s in stops {
                    s.stop();
                }
                let ended = fleet.ended.borrow();
                if ended.0 > 0 {
                    eprintln!("thread {t}: {} tunnels ended, last: {}", ended.0, ended.1);
                }
            }
        })
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    while done.load(Ordering::Relaxed) < threads && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let n = up.load(Ordering::Relaxed);
    if let Some(admin_addr) = a.admin {
        // Every route registered before saying ready.
        while Instant::now() < deadline {
            let s = admin::scrape(admin_addr)?;
            if admin::sum(&s, "sluice_tunnels", &[]) as usize >= n {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    } else {
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "READY {n}/{count} tunnels (first host {})",
        host_name(&a.hosts, 0)
    );
    let _ = std::io::stdout().flush();
    if let Some(f) = &a.ready_file {
        std::fs::write(f, format!("ready {n}\n"))?;
    }
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("tunnel threads panicked"))??;
    Ok(())
}
