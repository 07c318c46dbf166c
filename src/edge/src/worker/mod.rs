//! One worker: a thread pinned to a CPU, its own runtime, its own listeners, tunnels, routes
//! and limits. It talks to other workers only through [`Message`]s.

mod admission;
mod channel;
mod conn;
mod forward;
mod tunnel;

use monoio::net::TcpListener;
use rand::SeedableRng;
use rand::rngs::StdRng;
use slab::Slab;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tracing::{debug, info, warn};

use sluice_proto::Hostname;
use sluice_proto::token::FernetKey;

use crate::config::EdgeConfig;
use crate::events::RouteEvent;
use crate::inspect::Answer;
use crate::listener::ListenerKind;
use crate::message::Message;
use crate::metrics::{Metrics, TunnelEnd, WorkerMetrics};
use crate::quota::Quotas;
use crate::routes::{LocalRoute, Routes};
use crate::sync::Latch;
use tunnel::Tunnel;

/// A worker's CSPRNG, shared by its tasks (one thread: a `RefCell` suffices).
#[derive(Clone)]
pub(crate) struct SharedRng(Rc<RefCell<StdRng>>);

impl sluice_proto::Random for SharedRng {
    fn fill(&mut self, dest: &mut [u8]) {
        rand::RngCore::fill_bytes(&mut *self.0.borrow_mut(), dest);
    }
}

/// Everything one worker owns. Lives in an `Rc` on the worker's thread.
pub(crate) struct Worker {
    pub(crate) id: usize,
    pub(crate) config: Arc<EdgeConfig>,
    metrics: Arc<Metrics>,
    keys: RefCell<Arc<[FernetKey]>>,
    routes: RefCell<Routes>,
    tunnels: RefCell<Slab<Rc<Tunnel>>>,
    /// Senders to every worker of this edge, this one included (index = worker id).
    siblings: Vec<UnboundedSender<Message>>,
    /// The edge-wide registration counter (touched once per tunnel handshake).
    seq: Arc<AtomicU64>,
    rng: SharedRng,
    /// The edge-wide limits, counted with the other workers.
    pub(crate) quotas: Quotas,
    /// Connections still reading their hello or tunnel handshake.
    pending: Cell<usize>,
    /// Browser connections proxied into a tunnel now.
    connections: Cell<usize>,
    /// Outside observers of this worker's route claims and releases.
    observers: RefCell<Vec<std::sync::mpsc::Sender<RouteEvent>>>,
    /// Stop accepting (graceful shutdown has begun).
    pub(crate) draining: Latch,
    /// Close everything now.
    pub(crate) aborting: Latch,
}

impl Worker {
    pub(crate) fn new(
        id: usize,
        config: Arc<EdgeConfig>,
        metrics: Arc<Metrics>,
        siblings: Vec<UnboundedSender<Message>>,
        seq: Arc<AtomicU64>,
        quotas: Quotas,
    ) -> Self {
        Self {
            id,
            keys: RefCell::new(config.fernet_keys.clone().into()),
            config,
            metrics,
            routes: RefCell::new(Routes::new(id)),
            tunnels: RefCell::new(Slab::new()),
            siblings,
            seq,
            rng: SharedRng(Rc::new(RefCell::new(StdRng::from_entropy()))),
            quotas,
            pending: Cell::new(0),
            connections: Cell::new(0),
            observers: RefCell::new(Vec::new()),
            draining: Latch::default(),
            aborting: Latch::default(),
        }
    }

    pub(crate) fn m(&self) -> &WorkerMetrics {
        self.metrics.worker(self.id)
    }

    pub(crate) fn keys(&self) -> Arc<[FernetKey]> {
        self.keys.borrow().clone()
    }

    /// The worker's random source, for a new tunnel. Shared by all the worker's tunnels: one
    /// generator per tunnel would cost 320 bytes each.
    pub(crate) fn rng(&self) -> SharedRng {
        self.rng.clone()
    }

    /// Runs the worker until shutdown completes.
    pub(crate) async fn run(
        self: Rc<Self>,
        listeners: Vec<(ListenerKind, std::net::TcpListener)>,
        mut inbox: UnboundedReceiver<Message>,
    ) {
        for (kind, std_listener) in listeners {
            match TcpListener::from_std(std_listener) {
                Ok(l) => {
                    // Counted here, not in the task, so the gauge is whole before any connection.
                    WorkerMetrics::gauge(&self.m().listeners, 1);
                    monoio::spawn(accept_loop(self.clone(), l, kind));
                }
                Err(e) => warn!(error = %e, "cannot use a listening socket"),
            }
        }
        let grace = loop {
            match inbox.recv().await {
                Some(Message::Shutdown { grace }) => break grace,
                Some(msg) => self.handle(msg),
                // Every handle to the edge is gone: stop at once.
                None => break Duration::ZERO,
            }
        };
        self.draining.set();
        self.drain(grace, &mut inbox).await;
    }

    fn handle(self: &Rc<Self>, msg: Message) {
        match msg {
            Message::Handover(h) => {
                WorkerMetrics::inc(&self.m().handovers_in);
                monoio::spawn(conn::take_handover(self.clone(), h));
            }
            Message::RouteClaim { names, worker, seq } => {
                let replaced = self.routes.borrow_mut().claim(&names, worker, seq, None);
                self.replace(replaced);
                self.count_routes();
            }
            Message::RouteRelease { names, worker, seq } => {
                self.routes.borrow_mut().release(&names, worker, seq);
                self.count_routes();
            }
            Message::RemoteInstall { names, edge, rev } => {
                let refused = self.routes.borrow_mut().install_remote(&names, &edge, rev);
                if refused > 0 {
                    WorkerMetrics::add(&self.m().remote_routes_refused, refused);
                    warn!(
                        refused,
                        %edge,
                        cap = crate::routes::MAX_REMOTE_ROUTES,
                        "remote routes over the cap refused"
                    );
                }
                self.count_routes();
            }
            Message::RemoteRemove { names, edge, rev } => {
                self.routes.borrow_mut().remove_remote(&names, &edge, rev);
                self.count_routes();
            }
            Message::Keys(keys) => {
                info!(keys = keys.len(), "Fernet keys reloaded");
                *self.keys.borrow_mut() = keys;
            }
            Message::Observe(tx) => {
                // A newcomer first learns what is already here.
                for (_, t) in self.tunnels.borrow().iter() {
                    let _ = tx.send(RouteEvent::Claimed {
                        names: t.names.to_vec(),
                        worker: self.id,
                        seq: t.seq,
                    });
                }
                self.observers.borrow_mut().push(tx);
            }
            Message::EndTunnel { name, reply } => {
                let mine = self
                    .lookup_local(&name)
                    .filter(|r| r.worker == self.id)
                    .and_then(|r| r.tunnel.and_then(|k| self.tunnel(k)));
                if let Some(t) = &mine {
                    info!(host = %t.names[0], "tunnel ended by the edge's owner");
                    t.end(TunnelEnd::Ended);
                }
                let _ = reply.try_send(mine.is_some());
            }
            Message::Inspect(q) => {
                let answer = match &q.host {
                    Some(host) => {
                        let views: Vec<_> = self
                            .lookup_local(host)
                            .filter(|r| r.worker == self.id)
                            .and_then(|r| r.tunnel.and_then(|k| self.tunnel(k)))
                            .map(|t| t.view(self.id))
                            .into_iter()
                            .collect();
                        Answer {
                            total: views.len(),
                            views,
                        }
                    }
                    None => self.busiest(q.limit),
                };
                // The admin may have stopped waiting: then nobody needs the answer.
                let _ = q.reply.try_send(answer);
            }
            Message::Shutdown { .. } => {}
        }
    }

    /// Graceful shutdown: listeners are closed; wait for browser connections to finish, then
    /// close tunnels. Messages keep flowing meanwhile (handovers, route changes).
    async fn drain(self: &Rc<Self>, grace: Duration, inbox: &mut UnboundedReceiver<Message>) {
        let deadline = Instant::now() + grace;
        debug!(connections = self.connections.get(), ?grace, "draining");
        while self.connections.get() > 0 && Instant::now() < deadline {
            let tick = monoio::time::sleep(Duration::from_millis(50));
            monoio::select! {
                m = inbox.recv() => match m {
                    Some(Message::Handover(h)) => drop(h),
                    Some(msg) => self.handle(msg),
                    None => {}
                },
                _ = tick => {}
            }
        }
        self.aborting.set();
        let tunnels: Vec<Rc<Tunnel>> = self
            .tunnels
            .borrow()
            .iter()
            .map(|(_, t)| t.clone())
            .collect();
        for t in tunnels {
            t.end(TunnelEnd::Shutdown);
        }
        // Let the tasks see the latches and release their sockets.
        for _ in 0..100 {
            if self.tunnels.borrow().is_empty() && self.connections.get() == 0 {
                break;
            }
            monoio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Registers a tunnel that passed its handshake; returns its table key.
    fn register(self: &Rc<Self>, t: &Rc<Tunnel>) -> usize {
        let key = self.tunnels.borrow_mut().insert(t.clone());
        let replaced = self
            .routes
            .borrow_mut()
            .claim(&t.names, self.id, t.seq, Some(key));
        self.replace(replaced);
        self.count_routes();
        self.broadcast(|| Message::RouteClaim {
            names: t.names.clone(),
            worker: self.id,
            seq: t.seq,
        });
        self.tell(RouteEvent::Claimed {
            names: t.names.to_vec(),
            worker: self.id,
            seq: t.seq,
        });
        key
    }

    /// Tells the observers; one that went away is forgotten.
    fn tell(&self, event: RouteEvent) {
        self.observers
            .borrow_mut()
            .retain(|o| o.send(event.clone()).is_ok());
    }

    fn unregister(&self, key: usize, t: &Tunnel) {
        self.tunnels.borrow_mut().try_remove(key);
        self.routes.borrow_mut().release(&t.names, self.id, t.seq);
        self.count_routes();
        self.broadcast(|| Message::RouteRelease {
            names: t.names.clone(),
            worker: self.id,
            seq: t.seq,
        });
        self.tell(RouteEvent::Released {
            names: t.names.to_vec(),
            worker: self.id,
            seq: t.seq,
        });
    }

    fn replace(&self, keys: Vec<usize>) {
        for key in keys {
            let old = self.tunnels.borrow().get(key).cloned();
            if let Some(old) = old {
                info!(host = %old.names[0], "replaced by a newer tunnel for the same name");
                old.end(TunnelEnd::Replaced);
            }
        }
    }

    /// Views of the `limit` busiest tunnels (channels, then bytes), without building a view
    /// for every tunnel.
    fn busiest(&self, limit: usize) -> Answer {
        let tunnels = self.tunnels.borrow();
        let mut keys: Vec<((usize, u64), usize)> =
            tunnels.iter().map(|(k, t)| (t.weight(), k)).collect();
        let total = keys.len();
        if keys.len() > limit {
            keys.select_nth_unstable_by(limit, |a, b| b.0.cmp(&a.0));
            keys.truncate(limit);
        }
        let views = keys
            .iter()
            .map(|&(_, k)| tunnels[k].view(self.id))
            .collect();
        Answer { views, total }
    }

    fn broadcast(&self, msg: impl Fn() -> Message) {
        for (i, sibling) in self.siblings.iter().enumerate() {
            if i != self.id {
                // A worker that is gone needs no news.
                let _ = sibling.send(msg());
            }
        }
    }

    fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    fn lookup(&self, name: &Hostname) -> Option<crate::routes::Found> {
        self.routes.borrow().lookup(name)
    }

    fn lookup_local(&self, name: &Hostname) -> Option<LocalRoute> {
        self.routes.borrow().lookup_local(name)
    }

    /// Publishes the directory's size after a change (two relaxed stores).
    fn count_routes(&self) {
        let (local, remote) = self.routes.borrow().counts();
        self.m().set_routes(local, remote);
    }

    fn tunnel(&self, key: usize) -> Option<Rc<Tunnel>> {
        self.tunnels.borrow().get(key).cloned()
    }

    fn send_to(&self, worker: usize, msg: Message) -> Result<(), Message> {
        self.siblings[worker].send(msg).map_err(|e| e.0)
    }
}

async fn accept_loop(w: Rc<Worker>, listener: TcpListener, kind: ListenerKind) {
    loop {
        let accepted = monoio::select! {
            r = listener.accept() => Some(r),
            _ = w.draining.wait() => None,
        };
        let Some(accepted) = accepted else {
            // Past this, this loop accepts nothing more: a gauge of 0 tells a drain's observer
            // that no new connection can be taken.
            drop(listener);
            WorkerMetrics::gauge(&w.m().listeners, -1);
            return;
        };
        match accepted {
            Ok((stream, remote)) => {
                let Some(held) = w.quotas.pending.take() else {
                    w.m().refused(crate::metrics::Refusal::PendingLimit);
                    continue;
                };
                monoio::spawn(conn::handle(w.clone(), stream, remote, kind, held));
            }
            Err(e) => {
                // Out of descriptors or memory: back off instead of spinning on the error.
                warn!(error = %e, "accept failed");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
