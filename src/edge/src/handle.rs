//! Starting and stopping an edge.

use crate::events::RouteEvent;
use crate::memory::Trimmer;
use sluice_proto::{EdgeId, Hostname};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tracing::{info, info_span, warn};

use sluice_proto::token::FernetKey;

use crate::admin::Admin;
use crate::config::{ConfigError, EdgeConfig};
use crate::listener::{self, ListenerKind};
use crate::message::Message;
use crate::metrics::Metrics;
use crate::runtime::{self, Driver};
use crate::worker::Worker;

/// How long workers may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration does not validate (zero workers, a zero timeout, ...): nothing was
    /// bound or started.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// A listening address could not be bound.
    #[error("{0}")]
    Bind(std::io::Error),
    /// A worker's runtime could not be built (io_uring required but unavailable, ...).
    #[error("worker {worker}: {message}")]
    Worker {
        /// Which worker.
        worker: usize,
        /// What went wrong.
        message: String,
    },
}

/// A running edge. Dropping it stops the edge at once; [`EdgeHandle::shutdown`] drains first.
#[derive(Debug)]
pub struct EdgeHandle {
    listen: Vec<SocketAddr>,
    tunnel_listen: Vec<SocketAddr>,
    admin: Option<Admin>,
    senders: Vec<UnboundedSender<Message>>,
    threads: Vec<JoinHandle<()>>,
    metrics: Arc<Metrics>,
    drivers: Vec<Driver>,
    grace: Duration,
    _trimmer: Option<Trimmer>,
}

/// How long [`EdgeHandle::end_tunnel`] waits for the workers' answers.
const END_TUNNEL_TIMEOUT: Duration = Duration::from_secs(2);

/// Binds every address, starts the workers and the admin endpoint, and returns once every
/// worker is accepting. A configuration that does not [validate](EdgeConfig::validate) is
/// refused before anything is bound.
pub fn start(config: EdgeConfig) -> Result<EdgeHandle, StartError> {
    config.validate()?;
    let workers = config.workers;
    let bound = listener::bind_all(&config.listener_specs(), workers).map_err(StartError::Bind)?;
    let metrics = Arc::new(Metrics::new(workers));
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..workers).map(|_| unbounded_channel()).unzip();
    let admin = match config.admin {
        Some(addr) => {
            Some(Admin::start(addr, metrics.clone(), senders.clone()).map_err(StartError::Bind)?)
        }
        None => None,
    };
    let mut per_worker: Vec<Vec<(ListenerKind, std::net::TcpListener)>> =
        (0..workers).map(|_| Vec::new()).collect();
    let mut listen = Vec::new();
    let mut tunnel_listen = Vec::new();
    for b in bound {
        if b.kind.browsers {
            listen.push(b.addr);
        } else {
            tunnel_listen.push(b.addr);
        }
        for (i, l) in b.per_worker.into_iter().enumerate() {
            per_worker[i].push((b.kind, l));
        }
    }
    let config = Arc::new(config);
    let seq = Arc::new(AtomicU64::new(1));
    let quotas = crate::quota::Quotas::new(&config.limits);
    let cores = if config.pin_workers {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let (ready_tx, ready_rx) = mpsc::channel::<(usize, Result<(Driver, Option<String>), String>)>();
    let mut threads = Vec::new();
    for (id, (listeners, inbox)) in per_worker.into_iter().zip(receivers).enumerate() {
        let config = config.clone();
        let metrics = metrics.clone();
        let siblings = senders.clone();
        let seq = seq.clone();
        let quotas = quotas.clone();
        let ready = ready_tx.clone();
        let core = (!cores.is_empty()).then(|| cores[id % cores.len()]);
        let spawned = std::thread::Builder::new()
            .name(format!("sluice-w{id}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                let _span = info_span!("worker", id).entered();
                let (mut rt, driver, why) = match runtime::build(config.io) {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = ready.send((id, Err(e.to_string())));
                        return;
                    }
                };
                metrics.worker(id).set_driver(driver);
                let worker = Rc::new(Worker::new(id, config, metrics, siblings, seq, quotas));
                let _ = ready.send((id, Ok((driver, why))));
                drop(ready);
                rt.block_on(worker.run(listeners, inbox));
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                return Err(StartError::Worker {
                    worker: id,
                    message: e.to_string(),
                });
            }
        }
    }
    drop(ready_tx);
    let mut drivers = vec![Driver::Epoll; workers];
    let mut fallback = None;
    let mut failure = None;
    for _ in 0..workers {
        match ready_rx.recv_timeout(START_TIMEOUT) {
            Ok((id, Ok((driver, why)))) => {
                drivers[id] = driver;
                fallback = fallback.or(why);
            }
            Ok((id, Err(message))) => {
                failure.get_or_insert(StartError::Worker {
                    worker: id,
                    message,
                });
            }
            Err(_) => {
                failure.get_or_insert(StartError::Worker {
                    worker: usize::MAX,
                    message: "workers did not start in time".into(),
                });
                break;
            }
        }
    }
    let trimmer = config
        .trim_memory
        .then(|| Trimmer::start(metrics.clone()))
        .flatten();
    let handle = EdgeHandle {
        listen,
        tunnel_listen,
        admin,
        senders,
        threads,
        metrics,
        drivers,
        grace: config.timeouts.shutdown_grace,
        _trimmer: trimmer,
    };
    if let Some(e) = failure {
        drop(handle);
        return Err(e);
    }
    if let Some(why) = fallback {
        warn!("io_uring unavailable: {why}; running on epoll");
    }
    info!(
        listen = ?handle.listen,
        tunnel_listen = ?handle.tunnel_listen,
        admin = ?handle.admin_addr(),
        workers,
        driver = handle.drivers[0].name(),
        "edge started"
    );
    Ok(handle)
}

impl EdgeHandle {
    /// The addresses browsers (and, without a tunnel listener, tunnels) connect to.
    pub fn listen_addrs(&self) -> &[SocketAddr] {
        &self.listen
    }

    /// The tunnel-only addresses (dual-port mode).
    pub fn tunnel_addrs(&self) -> &[SocketAddr] {
        &self.tunnel_listen
    }

    /// The admin endpoint's address.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(Admin::addr)
    }

    /// The counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The driver of each worker.
    pub fn drivers(&self) -> &[Driver] {
        &self.drivers
    }

    /// Route claims and releases of every worker, for the fleet to mirror: first a `Claimed`
    /// for every tunnel registered now, then each change as it happens. Dropping the receiver
    /// ends the feed.
    pub fn route_events(&self) -> std::sync::mpsc::Receiver<RouteEvent> {
        let (tx, rx) = std::sync::mpsc::channel();
        for s in &self.senders {
            let _ = s.send(Message::Observe(tx.clone()));
        }
        rx
    }

    /// Ends the tunnel that serves `name` (primary or alias), wherever it lives; its
    /// browsers are cut and its names released. Whether one did, answered within 2 s.
    pub fn end_tunnel(&self, name: &Hostname) -> bool {
        let mut answers = Vec::new();
        for s in &self.senders {
            let (reply, answer) = std::sync::mpsc::sync_channel(1);
            if s.send(Message::EndTunnel {
                name: name.clone(),
                reply,
            })
            .is_ok()
            {
                answers.push(answer);
            }
        }
        let deadline = std::time::Instant::now() + END_TUNNEL_TIMEOUT;
        answers.into_iter().any(|a| {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            a.recv_timeout(left).unwrap_or(false)
        })
    }

    /// Routes `names` to another edge, `edge`, as of directory revision `rev`: every worker
    /// installs them in its copy of the directory when it next reads its inbox (watch
    /// [`Metrics`]' route counts to see them land). A name held by a tunnel on this edge
    /// stays with that tunnel; a name whose remote route has a newer revision is left alone;
    /// new names beyond [`MAX_REMOTE_ROUTES`](crate::routes::MAX_REMOTE_ROUTES) are refused
    /// and counted (`sluice_remote_routes_refused_total`).
    pub fn install_remote(&self, names: &[Hostname], edge: &EdgeId, rev: u64) {
        let names: Arc<[Hostname]> = names.into();
        for s in &self.senders {
            let _ = s.send(Message::RemoteInstall {
                names: names.clone(),
                edge: edge.clone(),
                rev,
            });
        }
    }

    /// Removes the remote routes of `names` that are `edge`'s and were installed at `rev` or
    /// before (whatever `edge` holds when `rev` is `None`), so a removal that arrives after
    /// a newer install leaves the newer route in place.
    pub fn remove_remote(&self, names: &[Hostname], edge: &EdgeId, rev: Option<u64>) {
        let names: Arc<[Hostname]> = names.into();
        for s in &self.senders {
            let _ = s.send(Message::RemoteRemove {
                names: names.clone(),
                edge: edge.clone(),
                rev,
            });
        }
    }

    /// Replaces the Fernet keys on every worker (tunnels already connected stay).
    pub fn reload_keys(&self, keys: Vec<FernetKey>) {
        let keys: Arc<[FernetKey]> = keys.into();
        for s in &self.senders {
            let _ = s.send(Message::Keys(keys.clone()));
        }
    }

    /// Stops accepting, lets browser connections finish for the configured grace period,
    /// then closes every tunnel and waits for the workers to exit.
    pub fn shutdown(mut self) {
        let grace = self.grace;
        self.stop(grace);
    }

    fn stop(&mut self, grace: Duration) {
        for s in &self.senders {
            let _ = s.send(Message::Shutdown { grace });
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(admin) = self.admin.take() {
            admin.stop();
        }
    }
}

impl Drop for EdgeHandle {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop(Duration::ZERO);
        }
    }
}
