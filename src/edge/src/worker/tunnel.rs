//! A tunnel: the handshake, then the tasks around one [`Multiplexer`] until it ends.
//!
//! - the reader (the tunnel's own task) feeds the socket's bytes to the multiplexer and runs
//!   its timers (keepalive, idle, token expiry). While a browser is over its cap it stops
//!   reading, so TCP slows the connector down, until the browser drains or the
//!   multiplexer's grace closes its channel;
//! - a writer task, started when there is output and gone after a quiet second, sends what
//!   the multiplexer produces in vectored batches.
//!
//! What the multiplexer emits becomes wakeups through the shell contract in
//! [`sluice_proto::mux::shell`]. Browser connections attach to it as channels
//! ([`super::channel`]). When the tunnel ends,
//! for whatever reason, every one of its browsers is closed and its routes are released.

use bytes::BytesMut;
use monoio::io::{AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::{Instrument, debug, info, info_span};

use sluice_proto::Hostname;
use sluice_proto::crypto::CipherKind;
use sluice_proto::handshake::{HandshakeError, ServerChallenge, read_token};
use sluice_proto::limits::MAX_TOKEN_LEN;
use sluice_proto::mux::shell::{self, Inbox, Slots, Waiters};
use sluice_proto::mux::{
    Blame, ChannelHandle, CloseCause, Multiplexer, MuxError, OpenError, Transmit,
};
use sluice_proto::peek::Peek;
use sluice_proto::token::{FernetError, TokenError, is_unsigned_token};

use super::admission::Pending;
use super::{SharedRng, Worker};
use crate::io;
use crate::metrics::{ChannelEnd, HandshakeFailure, Metrics, Refusal, TunnelEnd, WorkerMetrics};
use crate::sync::{Latch, Notify};

/// Bytes read from a tunnel socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// A tunnel quiet for this long gives its buffers' memory back.
const SHED_AFTER: Duration = Duration::from_secs(1);
/// Bytes gathered for one vectored write to a tunnel.
const WRITE_BATCH: usize = 256 * 1024;

/// The per-channel wakeups a browser connection waits on.
#[derive(Debug)]
pub(super) struct ChannelSlot {
    pub(super) handle: ChannelHandle,
    /// Data (or the end) is ready to `recv`.
    pub(super) readable: Notify,
    /// The browser may be read again.
    pub(super) writable: Notify,
    /// Stop reading the browser: the channel is closed.
    pub(super) source_done: Latch,
    /// Stop writing to the browser too: the channel was killed (idle, overrun), its
    /// undelivered bytes are gone.
    pub(super) abort: Latch,
    /// Why the channel ended; the first cause wins.
    pub(super) end: Cell<Option<ChannelEnd>>,
}

impl ChannelSlot {
    /// Records why the channel ended, unless a cause is already known.
    pub(super) fn ended(&self, why: ChannelEnd) {
        if self.end.get().is_none() {
            self.end.set(Some(why));
        }
    }
}

impl Waiters for ChannelSlot {
    fn readable(&self) {
        self.readable.notify();
    }

    fn writable(&self) {
        self.writable.notify();
    }

    fn closed(&self, cause: CloseCause) {
        self.ended(match cause {
            CloseCause::PeerClosed => ChannelEnd::HomeClosed,
            CloseCause::Idle => ChannelEnd::Idle,
            CloseCause::Overrun => ChannelEnd::Overrun,
            CloseCause::DuplicateId => ChannelEnd::DuplicateId,
        });
        if cause.discards_undelivered() {
            // Nothing is left to deliver: a write in progress is cut short.
            self.abort.set();
        }
        self.source_done.set();
        self.readable.notify();
    }

    fn tunnel_ended(&self) {
        self.ended(ChannelEnd::TunnelEnded);
        self.source_done.set();
        self.readable.notify();
        self.writable.notify();
    }
}

/// One connected tunnel, owned by the worker that accepted it.
pub(super) struct Tunnel {
    pub(super) names: Arc<[Hostname]>,
    pub(super) seq: u64,
    mux: RefCell<Multiplexer<SharedRng>>,
    slots: RefCell<Slots<Rc<ChannelSlot>>>,
    /// Wakes a running writer task.
    output: Notify,
    /// A deadline may have moved earlier (the first channel arms the idle sweep).
    timer: Notify,
    /// A stall ended: the tunnel takes input again.
    input: Notify,
    /// The socket's write half while no writer task runs: an idle tunnel has no writer task.
    writer: RefCell<Option<OwnedWriteHalf<TcpStream>>>,
    write_timeout: Duration,
    span: tracing::Span,
    pub(super) ended: Latch,
    end_cause: Cell<Option<TunnelEnd>>,
    metrics: Arc<Metrics>,
    worker: usize,
    /// What this tunnel last added to the worker's `queued_to_browsers` gauge.
    queued: Cell<usize>,
    /// The multiplexer's `pause_overshoot_max` last reported.
    overshoot: Cell<u64>,
    /// The multiplexer's `pauses_sent` last added to the worker's counter.
    pauses: Cell<u64>,
    /// The multiplexer's `compactions` last added to the worker's counter.
    compactions: Cell<u64>,
    cipher: CipherKind,
    /// The connector's address.
    remote: SocketAddr,
    since: Instant,
}

impl Tunnel {
    /// How busy it is, for the admin's listing: channels, then bytes.
    pub(super) fn weight(&self) -> (usize, u64) {
        let mux = self.mux.borrow();
        let s = mux.stats();
        (mux.channel_count(), s.data_bytes_in + s.data_bytes_out)
    }

    /// What an operator sees of this tunnel.
    pub(super) fn view(&self, worker: usize) -> crate::inspect::TunnelView {
        let mux = self.mux.borrow();
        let stats = mux.stats();
        crate::inspect::TunnelView {
            worker,
            host: self.names[0].to_string(),
            aliases: self.names[1..].iter().map(ToString::to_string).collect(),
            protocol: mux.version().number(),
            cipher: self.cipher.name(),
            remote: self.remote.to_string(),
            channels: mux.channel_count(),
            bytes_in: stats.data_bytes_in,
            bytes_out: stats.data_bytes_out,
            queued: mux.incoming_queued(),
            overruns: stats.channels_overrun,
            age_s: self.since.elapsed().as_secs(),
        }
    }

    /// Opens a channel for a browser and queues its hello.
    pub(super) fn open(
        self: &Rc<Self>,
        caller: IpAddr,
        hello: bytes::Bytes,
    ) -> Result<Rc<ChannelSlot>, OpenError> {
        let now = Instant::now();
        let handle = {
            let mut mux = self.mux.borrow_mut();
            let handle = mux.open_channel(caller, now)?;
            // Fresh channel, open tunnel: this cannot fail.
            let _ = mux.send(handle, hello, now);
            handle
        };
        let slot = Rc::new(ChannelSlot {
            handle,
            readable: Notify::default(),
            writable: Notify::default(),
            source_done: Latch::default(),
            abort: Latch::default(),
            end: Cell::new(None),
        });
        self.slots.borrow_mut().insert(handle, slot.clone());
        self.dispatch();
        // The first channel arms the channel-idle sweep.
        self.timer.notify();
        Ok(slot)
    }

    /// The browser is done (EOF or an error): the channel ends both ways at once (SniTun has no
    /// half-close), and the down pump is woken to see it.
    pub(super) fn browser_closed(self: &Rc<Self>, slot: &ChannelSlot) {
        slot.ended(ChannelEnd::BrowserClosed);
        self.with_mux(|m| m.close(slot.handle));
        slot.source_done.set();
        slot.readable.notify();
    }

    /// Forgets a channel's slot; closes the channel if it is still open.
    pub(super) fn detach(self: &Rc<Self>, handle: ChannelHandle) {
        self.mux.borrow_mut().close(handle);
        self.slots.borrow_mut().remove(handle);
        self.dispatch();
    }

    /// Runs `f` on the multiplexer, then acts on what it says.
    pub(super) fn with_mux<T>(
        self: &Rc<Self>,
        f: impl FnOnce(&mut Multiplexer<SharedRng>) -> T,
    ) -> T {
        let out = f(&mut self.mux.borrow_mut());
        self.dispatch();
        out
    }

    /// Wakes whoever the multiplexer's events concern.
    fn dispatch(self: &Rc<Self>) {
        let mut mux = self.mux.borrow_mut();
        let mut slots = self.slots.borrow_mut();
        // A server is never offered channels: nothing to open.
        if shell::dispatch(&mut mux, &mut slots, |_, _| None) {
            self.input.notify();
        }
        let output = mux.wants_output();
        let queued = mux.incoming_queued();
        let overshoot = mux.stats().pause_overshoot_max;
        let (pauses, compactions) = (mux.stats().pauses_sent, mux.stats().compactions);
        drop((mux, slots));
        self.report_queued(queued);
        let m = self.metrics.worker(self.worker);
        add_since(&m.pauses_sent, &self.pauses, pauses);
        add_since(&m.tunnels_compacted, &self.compactions, compactions);
        if overshoot > self.overshoot.get() {
            self.overshoot.set(overshoot);
            self.metrics
                .worker(self.worker)
                .pause_overshoot_max
                .fetch_max(overshoot, std::sync::atomic::Ordering::Relaxed);
        }
        if output {
            self.kick_writer();
        }
    }

    fn report_queued(&self, queued: usize) {
        let before = self.queued.replace(queued);
        if before != queued {
            WorkerMetrics::gauge(
                &self.metrics.worker(self.worker).queued_to_browsers,
                queued as i64 - before as i64,
            );
        }
    }

    /// Makes sure a writer task runs: wakes it, or starts one with the parked write half.
    fn kick_writer(self: &Rc<Self>) {
        let parked = self.writer.borrow_mut().take();
        match parked {
            Some(wr) if !self.ended.is_set() => {
                monoio::spawn(write_loop(self.clone(), wr).instrument(self.span.clone()));
            }
            _ => self.output.notify(),
        }
    }

    /// Runs the multiplexer's timers if one is due; returns the next deadline.
    fn run_timers(self: &Rc<Self>) -> Option<Instant> {
        let now = Instant::now();
        let due = self.mux.borrow().poll_timeout().is_some_and(|at| at <= now);
        if due {
            let r = self.mux.borrow_mut().handle_timeout(now);
            self.dispatch();
            if let Err(e) = r {
                debug!(error = %e, "tunnel timer");
                self.end_with(&e);
            }
        }
        self.mux.borrow().poll_timeout()
    }

    /// Ends the tunnel (first cause wins): every task and browser sees the latch.
    pub(super) fn end(&self, cause: TunnelEnd) {
        if self.ended.is_set() {
            return;
        }
        self.end_cause.set(Some(cause));
        self.ended.set();
        shell::end_all(&self.slots.borrow());
    }

    fn end_with(&self, e: &MuxError) {
        self.end(match (e, e.blame()) {
            (MuxError::Expired, _) => TunnelEnd::Expired,
            (_, Blame::Peer) => TunnelEnd::ProtocolError,
            (_, Blame::Timeout) => TunnelEnd::Timeout,
            (_, Blame::Local) => TunnelEnd::Io,
        });
    }
}

/// Runs a tunnel connection: handshake, registration, service, cleanup.
pub(super) async fn accept(
    w: Rc<Worker>,
    mut stream: TcpStream,
    buf: BytesMut,
    caller: IpAddr,
    remote: SocketAddr,
    pending: Pending,
) {
    let limit = w.config.timeouts.handshake;
    // Set while the bytes so far are a whole token that no key signed: a timeout then means
    // a foreign key, not a stalled client.
    let unsigned = Cell::new(false);
    let session =
        match monoio::time::timeout(limit, handshake(&w, &mut stream, buf, &unsigned)).await {
            Ok(Ok(s)) => s,
            Ok(Err(why)) => {
                debug!(reason = why.label(), "tunnel handshake failed");
                w.m().handshake_failed(why);
                return;
            }
            Err(_) => {
                w.m().handshake_failed(if unsigned.get() {
                    HandshakeFailure::WrongKey
                } else {
                    HandshakeFailure::Timeout
                });
                return;
            }
        };
    drop(pending);
    let (claims, session) = session;
    if w.draining.is_set() {
        w.m().refused(Refusal::ShuttingDown);
        return;
    }
    let Some(held) = w.quotas.tunnels.take() else {
        w.m().refused(Refusal::TunnelLimit);
        return;
    };
    let now = Instant::now();
    let mut mux = Multiplexer::new(session, w.config.mux.clone(), w.rng(), now);
    // The token's expiry as a deadline on this clock: a tunnel ends when its token does.
    let left = claims
        .expires_at()
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO);
    mux.set_deadline(now + left);
    let names: Arc<[Hostname]> = claims.names().cloned().collect::<Vec<_>>().into();
    let names0 = names[0].clone();
    let t = Rc::new(Tunnel {
        names,
        seq: w.next_seq(),
        mux: RefCell::new(mux),
        slots: RefCell::new(Slots::new()),
        output: Notify::default(),
        timer: Notify::default(),
        input: Notify::default(),
        writer: RefCell::new(None),
        write_timeout: w.config.timeouts.write,
        span: info_span!("tunnel", host = %names0, %remote, %caller),
        ended: Latch::default(),
        end_cause: Cell::new(None),
        metrics: w.metrics.clone(),
        worker: w.id,
        queued: Cell::new(0),
        overshoot: Cell::new(0),
        pauses: Cell::new(0),
        compactions: Cell::new(0),
        cipher: claims.cipher,
        remote,
        since: now,
    });
    let span = t.span.clone();
    // The tunnel lives in a task of its own: the handshake's state (this future) is freed now
    // instead of being carried, at its largest size, for the tunnel's lifetime.
    let version = claims.protocol_version;
    let cipher = claims.cipher;
    monoio::spawn(
        async move {
            info!(aliases = t.names.len() - 1, %version, %cipher, "tunnel connected");
            serve(w, t, stream).await;
            drop(held);
        }
        .instrument(span),
    );
}

/// Registers a tunnel, runs it until it ends, then cleans up.
///
/// An idle tunnel is this one task, waiting for readability or its next deadline; a writer
/// task exists only while there is something to send.
async fn serve(w: Rc<Worker>, t: Rc<Tunnel>, stream: TcpStream) {
    let key = w.register(&t);
    WorkerMetrics::inc(&w.m().tunnels_accepted);
    WorkerMetrics::gauge(&w.m().tunnels, 1);
    let (rd, wr) = stream.into_split();
    *t.writer.borrow_mut() = Some(wr);
    read_loop(t.clone(), rd).await;
    // Make sure every waiter sees the end, then let go of the socket.
    t.end(TunnelEnd::Io);
    t.writer.borrow_mut().take();
    let cause = t.end_cause.get().unwrap_or(TunnelEnd::Io);
    info!(cause = cause.label(), "tunnel ended");
    w.m().tunnel_ended(cause);
    WorkerMetrics::gauge(&w.m().tunnels, -1);
    t.report_queued(0);
    w.unregister(key, &t);
}

type Accepted = (
    sluice_proto::token::TokenClaims,
    sluice_proto::handshake::Session,
);

/// Token, challenge, answer.
async fn handshake(
    w: &Worker,
    stream: &mut TcpStream,
    mut buf: BytesMut,
    unsigned: &Cell<bool>,
) -> Result<Accepted, HandshakeFailure> {
    let keys = w.keys();
    let claims = loop {
        match read_token(&buf, &keys, SystemTime::now()) {
            Ok(Peek::Complete(claims)) => break claims,
            Ok(Peek::NeedMore) if buf.len() < MAX_TOKEN_LEN => {
                unsigned.set(is_unsigned_token(&buf, &keys))
            }
            Ok(Peek::NeedMore | Peek::NotThisProtocol) => {
                return Err(HandshakeFailure::InvalidToken);
            }
            Err(e) => return Err(classify(&e)),
        }
        buf.reserve(1024);
        let (res, back) = io::read_append(stream, buf).await;
        buf = back;
        match res {
            Ok(0) | Err(_) => return Err(HandshakeFailure::Io),
            Ok(_) => {}
        }
    };
    let (challenge, wire) =
        ServerChallenge::new(&claims, &mut w.rng()).map_err(|e| classify(&e))?;
    let (res, _) = stream.write_all(wire).await;
    res.map_err(|_| HandshakeFailure::Io)?;
    let answer = vec![0u8; challenge.answer_len()];
    let (res, answer) = monoio::io::AsyncReadRentExt::read_exact(stream, answer).await;
    res.map_err(|_| HandshakeFailure::Io)?;
    let session = challenge.verify(&answer).map_err(|e| classify(&e))?;
    Ok((claims, session))
}

fn classify(e: &HandshakeError) -> HandshakeFailure {
    match e {
        HandshakeError::Token(TokenError::Fernet(FernetError::BadSignature)) => {
            HandshakeFailure::WrongKey
        }
        HandshakeError::Token(TokenError::Expired { .. }) => HandshakeFailure::Expired,
        HandshakeError::Token(_) => HandshakeFailure::InvalidToken,
        HandshakeError::Crypto(_)
        | HandshakeError::WrongAnswer
        | HandshakeError::WrongLength { .. } => HandshakeFailure::ChallengeFailed,
    }
}

/// Reads the socket into the multiplexer and runs its timers, until the tunnel ends.
async fn read_loop(t: Rc<Tunnel>, mut rd: OwnedReadHalf<TcpStream>) {
    let mut inbox = Inbox::new();
    // After a read that filled the buffer, more is likely waiting: read again at once.
    // Otherwise wait for readability first, so an idle tunnel lends the kernel no buffer.
    let mut hot = false;
    // When the tunnel last went quiet, to give the buffer back after a quiet second.
    let mut quiet_since: Option<Instant> = None;
    loop {
        let next = t.run_timers();
        if t.ended.is_set() {
            return;
        }
        // Timers are only raced against waits that hold no buffer and consume no bytes.
        let wake_at = |shed: Option<Instant>| {
            let at = [next, shed].into_iter().flatten().min();
            match at {
                Some(at) => monoio::time::sleep_until(monoio::time::Instant::from_std(at)),
                None => monoio::time::sleep(Duration::from_secs(3600)),
            }
        };
        if !t.mux.borrow().wants_input() {
            // A browser (or the tunnel) is over its cap: read nothing until it drains or its
            // grace ends (a timer), so that TCP slows the connector down.
            monoio::select! {
                _ = t.input.wait() => {}
                _ = t.timer.wait() => {}
                _ = wake_at(None) => {}
                _ = t.ended.wait() => return,
            }
            continue;
        }
        if inbox.held() {
            // What the stall left in the buffer goes first: the socket may have nothing more.
            let r = t.with_mux(|m| inbox.feed(m, Instant::now()));
            if let Err(e) = r {
                return t.end_with(&e);
            }
            continue;
        }
        if !hot && inbox.is_empty() {
            let shed = match (quiet_since, inbox.capacity()) {
                (_, 0) => None,
                (Some(since), _) => Some(since + SHED_AFTER),
                (None, _) => {
                    quiet_since = Some(Instant::now());
                    quiet_since.map(|since| since + SHED_AFTER)
                }
            };
            let ready = monoio::select! {
                r = io::readable(&rd) => r,
                _ = t.timer.wait() => continue,
                _ = wake_at(shed) => {
                    // A quiet second: give the buffer's memory back.
                    if shed.is_some_and(|at| Instant::now() >= at) && inbox.shed() {
                        WorkerMetrics::inc(&t.metrics.worker(t.worker).tunnel_buffers_shed);
                    }
                    continue;
                }
                _ = t.ended.wait() => return,
            };
            if ready.is_err() {
                return t.end(TunnelEnd::Io);
            }
        }
        quiet_since = None;
        let mut buf = inbox.take();
        buf.reserve(READ_CHUNK);
        let spare = buf.capacity() - buf.len();
        // A read that waits (mid-frame, or after a full read) must not hold the timers up: a
        // due timer cancels it, and what it had read is kept.
        let timer_due = async {
            monoio::select! {
                _ = t.timer.wait() => {}
                _ = wake_at(None) => {}
            }
        };
        let (res, back, stopped) = monoio::select! {
            r = io::read_append_until(&mut rd, buf, timer_due) => r,
            _ = t.ended.wait() => return,
        };
        inbox.put(back);
        match res {
            Err(_) if stopped => continue,
            Ok(0) => return t.end(TunnelEnd::PeerClosed),
            Err(_) => return t.end(TunnelEnd::Io),
            Ok(n) => hot = n == spare,
        }
        let r = t.with_mux(|m| inbox.feed(m, Instant::now()));
        if let Err(e) = r {
            debug!(error = %e, "tunnel input error");
            return t.end_with(&e);
        }
    }
}

/// Writes what the multiplexer produces; after a quiet second, parks the write half in the
/// tunnel and exits (the next output starts a new writer).
async fn write_loop(t: Rc<Tunnel>, mut wr: OwnedWriteHalf<TcpStream>) {
    let mut tx = Transmit::new();
    loop {
        if t.ended.is_set() {
            return;
        }
        if !t.mux.borrow().wants_output() {
            let woken = monoio::select! {
                r = monoio::time::timeout(SHED_AFTER, t.output.wait()) => r.is_ok(),
                _ = t.ended.wait() => return,
            };
            if !woken && !t.mux.borrow().wants_output() {
                *t.writer.borrow_mut() = Some(wr);
                return;
            }
            continue;
        }
        let r = t
            .mux
            .borrow_mut()
            .poll_transmit(&mut tx, WRITE_BATCH, Instant::now());
        t.dispatch();
        if let Err(e) = r {
            return t.end_with(&e);
        }
        let segments = tx.take_segments();
        let written = monoio::select! {
            r = monoio::time::timeout(t.write_timeout, io::write_all_segments(&mut wr, segments)) => r,
            _ = t.ended.wait() => return,
        };
        match written {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return t.end(TunnelEnd::Io),
            Err(_) => return t.end(TunnelEnd::Timeout),
        }
    }
}

/// Adds to a worker's `counter` what a multiplexer's count (`now`) gained since `last`.
fn add_since(counter: &std::sync::atomic::AtomicU64, last: &Cell<u64>, now: u64) {
    let gained = now.saturating_sub(last.replace(now));
    if gained > 0 {
        counter.fetch_add(gained, std::sync::atomic::Ordering::Relaxed);
    }
}
