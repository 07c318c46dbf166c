//! One tunnel: the handshake, then two tasks around one [`Multiplexer`] until it ends.
//!
//! - the reader feeds the edge's bytes to the multiplexer and runs its timers (the keepalive,
//!   a PING every 50 s as SniTun's client sends, and the idle timeouts). While a home-side
//!   sink is over its cap it stops reading, so TCP slows the edge down, until the sink drains
//!   or the multiplexer's grace closes the channel;
//! - the writer sends what the multiplexer produces, in vectored batches, each write bounded by
//!   the write timeout.
//!
//! Each channel the edge opens gets its own task (started through [`OnChannel`]). The multiplexer lives
//! behind one mutex that is never held across an await; what it emits is turned into wakeups
//! by the shell contract in [`sluice_proto::mux::shell`].

use rand::SeedableRng;
use rand::rngs::StdRng;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tracing::{Instrument, debug, error, info_span, warn};

use sluice_proto::handshake::ClientHandshake;
use sluice_proto::mux::shell::{Inbox, Slots, WriteCursor, dispatch, end_all};
use sluice_proto::mux::{Multiplexer, MuxError, Transmit};
use sluice_proto::version::ProtocolVersion;

use crate::Error;
use crate::config::ServeConfig;
use crate::credentials::Credentials;
use crate::slot::Slot;
use crate::sync::Latch;

/// Bytes read from the edge at a time.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes gathered for one vectored write to the edge.
const WRITE_BATCH: usize = 256 * 1024;
/// How long a graceful close waits for queued frames to leave.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// What the tunnel does with a channel the edge opened: start its task. Given to [`connect`]
/// rather than called by name, so that this module does not depend on the channel module that
/// depends on it.
pub(crate) type OnChannel = fn(Arc<Tunnel>, Arc<Slot>, Option<IpAddr>);

struct Inner {
    mux: Multiplexer<StdRng>,
    slots: Slots<Arc<Slot>>,
}

/// A connected tunnel.
pub(crate) struct Tunnel {
    inner: Mutex<Inner>,
    pub(crate) serve: Arc<ServeConfig>,
    /// Runs each channel the edge opens (the channel module's `start`).
    on_channel: OnChannel,
    output: Notify,
    /// A deadline may have moved earlier (the first channel arms the idle sweep).
    timer: Notify,
    idle: Notify,
    /// A stall ended: the tunnel takes input again.
    input: Notify,
    ended: Latch,
    end_error: Mutex<Option<Error>>,
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("ended", &self.ended.is_set())
            .finish_non_exhaustive()
    }
}

/// Dials the edge, runs the handshake, and starts the tunnel's tasks.
///
/// `on_key_use` runs just before the answer to the challenge is encrypted: from then on the
/// credentials' key has been used on a connection (which matters for aes-gcm).
pub(crate) async fn connect(
    edge: &str,
    creds: &Credentials,
    serve: Arc<ServeConfig>,
    on_channel: OnChannel,
    on_key_use: impl FnOnce(),
) -> Result<Arc<Tunnel>, Error> {
    let t = &serve.timeouts;
    let mut stream = tokio::time::timeout(t.connect, TcpStream::connect(edge))
        .await
        .map_err(|_| Error::Connect(format!("{edge}: no connection within {:?}", t.connect)))?
        .map_err(|e| Error::Connect(format!("{edge}: {e}")))?;
    let _ = stream.set_nodelay(true);
    let claims = creds.claims();
    let hs = ClientHandshake::new(
        claims.cipher,
        claims.protocol_version,
        &claims.aes_key,
        &claims.aes_iv,
    );
    let mut rng = StdRng::from_entropy();
    let handshake = async {
        stream
            .write_all(creds.token().as_bytes())
            .await
            .map_err(|e| Error::Connect(format!("sending the token: {e}")))?;
        let mut challenge = vec![0; hs.challenge_len()];
        stream.read_exact(&mut challenge).await.map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::Refused(
                    "it closed the connection after the token (a token it cannot verify or that \
                     has expired, or not a SniTun edge)"
                        .into(),
                )
            } else {
                Error::Connect(format!("reading the challenge: {e}"))
            }
        })?;
        on_key_use();
        let (session, answer) = hs
            .answer(&challenge, &mut rng)
            .map_err(|e| Error::Refused(format!("its challenge did not decrypt: {e}")))?;
        stream
            .write_all(&answer)
            .await
            .map_err(|e| Error::Connect(format!("sending the answer: {e}")))?;
        Ok::<_, Error>(session)
    };
    let session = tokio::time::timeout(t.handshake, handshake)
        .await
        .map_err(|_| Error::Refused(format!("no handshake within {:?}", t.handshake)))??;
    let mux = Multiplexer::new(session, serve.mux.clone(), rng, Instant::now());
    let tunnel = Arc::new(Tunnel {
        inner: Mutex::new(Inner {
            mux,
            slots: Slots::new(),
        }),
        serve,
        on_channel,
        output: Notify::new(),
        timer: Notify::new(),
        idle: Notify::new(),
        input: Notify::new(),
        ended: Latch::default(),
        end_error: Mutex::new(None),
    });
    let span = info_span!("tunnel", host = %claims.hostname, edge);
    let (rd, wr) = stream.into_split();
    tokio::spawn(read_loop(tunnel.clone(), rd).instrument(span.clone()));
    tokio::spawn(write_loop(tunnel.clone(), wr).instrument(span));
    Ok(tunnel)
}

impl Tunnel {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the multiplexer as consistent as any other
        // error would; carry on rather than poison every channel.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the multiplexer, then acts on what it says: wakes the tasks concerned and
    /// starts a task for each new channel.
    pub(crate) fn with_mux<T>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut Multiplexer<StdRng>) -> T,
    ) -> T {
        let mut opened = Vec::new();
        let out = {
            let mut inner = self.lock();
            let inner = &mut *inner;
            let out = f(&mut inner.mux);
            let input_ready = dispatch(&mut inner.mux, &mut inner.slots, |channel, caller| {
                let slot = Arc::new(Slot::new(channel));
                opened.push((slot.clone(), caller));
                Some(slot)
            });
            if input_ready {
                self.input.notify_one();
            }
            if inner.mux.wants_output() {
                self.output.notify_one();
            }
            out
        };
        if !opened.is_empty() {
            // The first channel arms the channel-idle sweep.
            self.timer.notify_one();
        }
        for (slot, caller) in opened {
            (self.on_channel)(self.clone(), slot, caller);
        }
        out
    }

    /// Forgets a channel: closes it if it is still open and drops its slot.
    pub(crate) fn detach(self: &Arc<Self>, slot: &Slot) {
        self.with_mux(|m| m.close(slot.handle));
        let mut inner = self.lock();
        inner.slots.remove(slot.handle);
        if inner.slots.is_empty() {
            self.idle.notify_waiters();
        }
    }

    /// Channels being served.
    pub(crate) fn channel_count(&self) -> usize {
        self.lock().slots.len()
    }

    /// Ends the tunnel (the first cause is kept): every task and channel sees it.
    pub(crate) fn end(&self, why: Error) {
        if self.ended.is_set() {
            return;
        }
        {
            let mut e = self.end_error.lock().unwrap_or_else(|e| e.into_inner());
            e.get_or_insert(why);
        }
        self.ended.set();
        end_all(&self.lock().slots);
        self.idle.notify_waiters();
    }

    fn end_with(&self, e: &MuxError) {
        self.end(Error::Tunnel(e.to_string()));
    }

    /// Whether the tunnel has ended.
    pub(crate) fn is_ended(&self) -> bool {
        self.ended.is_set()
    }

    /// Waits until the tunnel ends; returns why.
    pub(crate) async fn ended(&self) -> Error {
        self.ended.wait().await;
        self.end_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or(Error::Stopped)
    }

    /// Waits until no channel is being served (or the tunnel ends).
    pub(crate) async fn wait_idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.channel_count() == 0 || self.ended.is_set() {
                return;
            }
            idle.await;
        }
    }

    /// Closes every channel, gives the CLOSE frames a moment to leave, and ends the tunnel.
    pub(crate) async fn close(self: &Arc<Self>, why: Error) {
        if self.ended.is_set() {
            return;
        }
        self.with_mux(|m| m.close_all());
        let flushed = async {
            while self.lock().mux.wants_output() && !self.ended.is_set() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, flushed).await;
        self.end(why);
    }
}

impl Tunnel {
    /// Runs the multiplexer's timers if one is due; returns the next deadline and whether the
    /// tunnel takes input (one lock for both: the reader asks before every read).
    fn run_timers(self: &Arc<Self>) -> (Option<Instant>, bool) {
        let now = Instant::now();
        let due = self.lock().mux.poll_timeout().is_some_and(|at| at <= now);
        if due && let Err(e) = self.with_mux(|m| m.handle_timeout(now)) {
            debug!(error = %e, "tunnel timer");
            self.end_with(&e);
        }
        let inner = self.lock();
        (inner.mux.poll_timeout(), inner.mux.wants_input())
    }
}

/// Reads the edge into the multiplexer and runs its timers, until the tunnel ends.
async fn read_loop(t: Arc<Tunnel>, mut rd: OwnedReadHalf) {
    let mut inbox = Inbox::new();
    loop {
        let (next, wants_input) = t.run_timers();
        if t.is_ended() {
            return;
        }
        let deadline = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        if !wants_input {
            // A sink is over its cap: read nothing until it drains or the grace ends (a
            // timer), so that TCP slows the edge down.
            tokio::select! {
                _ = t.input.notified() => {}
                _ = t.timer.notified() => {}
                _ = deadline => {}
                _ = t.ended.wait() => return,
            }
            continue;
        }
        if !inbox.held() {
            if inbox.is_empty() && inbox.capacity() > 4 * READ_CHUNK {
                // Return a grown buffer's memory rather than keep it while the tunnel is quiet.
                inbox.shed();
            }
            inbox.buf_mut().reserve(READ_CHUNK);
            // Reading is cancel-safe: a timer that fires first loses no bytes.
            let read = tokio::select! {
                r = rd.read_buf(inbox.buf_mut()) => r,
                _ = t.timer.notified() => continue,
                _ = deadline => continue,
                _ = t.ended.wait() => return,
            };
            match read {
                Ok(0) => return t.end(Error::Tunnel("the edge closed the connection".into())),
                Err(e) => return t.end(Error::Tunnel(format!("reading from the edge: {e}"))),
                Ok(_) => {}
            }
        }
        // What a stall left in the buffer goes first: the socket may have nothing more.
        if let Err(e) = t.with_mux(|m| inbox.feed(m, Instant::now())) {
            if let Some(fix) = e.suggested_version() {
                // The handshake passed and the tunnel looks up, but no browser could be
                // served: one line that says why and what to do.
                let why = Error::ProtocolMismatch(format!(
                    "{e}; no browser can be served through it. Issue the token with \
                     `sluice token issue --protocol-version {fix}`{}",
                    if fix == ProtocolVersion::V0 {
                        " (SniTun 0.40 and older speak only protocol 0)"
                    } else {
                        ""
                    }
                ));
                error!(error = %why, "dropping the tunnel");
                return t.end(why);
            }
            warn!(error = %e, "the edge broke the protocol; dropping the tunnel");
            return t.end_with(&e);
        }
    }
}

async fn write_loop(t: Arc<Tunnel>, mut wr: OwnedWriteHalf) {
    let mut tx = Transmit::new();
    let write_timeout = t.serve.timeouts.write;
    loop {
        if !t.lock().mux.wants_output() {
            tokio::select! {
                _ = t.output.notified() => continue,
                _ = t.ended.wait() => return,
            }
        }
        if let Err(e) = t.with_mux(|m| m.poll_transmit(&mut tx, WRITE_BATCH, Instant::now())) {
            return t.end_with(&e);
        }
        let mut segments = WriteCursor::new(tx.take_segments());
        let written = tokio::select! {
            r = tokio::time::timeout(write_timeout, crate::io::write_all(&mut wr, &mut segments)) => r,
            _ = t.ended.wait() => return,
        };
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return t.end(Error::Tunnel(format!("writing to the edge: {e}"))),
            Err(_) => {
                return t.end(Error::Tunnel(format!(
                    "a write to the edge made no progress for {write_timeout:?}"
                )));
            }
        }
    }
}
