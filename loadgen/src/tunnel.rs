//! The home-server role: tunnels that speak the SniTun protocol (`sluice-proto`'s
//! [`ClientHandshake`] and [`Multiplexer`]) to any SniTun-compatible edge, each channel served
//! by a built-in origin ([`Responder`]) with no socket behind it, optionally behind a rustls
//! server session (TLS mode).
//!
//! One task per tunnel owns the socket and the multiplexer and never blocks on a channel. It
//! is one of the two loops around [`ClientShell`] (the test peer in `sluice-testkit` is the
//! other); what is left here is tokio's wait, reads and writes:
//!
//! ```text
//! loop: turn (dispatch → serve_channels: requests in, answers out while can_send
//!             → poll_transmit) → wait(readable | writable | timer)
//! ```
//!
//! Answers are slices of a static pattern ([`crate::wire::PATTERN`]), handed to the
//! multiplexer as `Bytes::from_static`, so a download costs the peer one header encryption per
//! 64 KiB frame and a vectored write; nothing is copied in user space.

use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rustls::ServerConnection;
use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use sluice_proto::handshake::{ClientHandshake, Session};
use sluice_proto::mux::shell::{ClientShell, Endpoint, EndpointError, Produced, Served};
use sluice_proto::mux::{Multiplexer, MuxConfig};

use crate::creds::Creds;
use crate::wire::Responder;

/// Bytes gathered for one vectored write to the tunnel.
const WRITE_BATCH: usize = 512 * 1024;
/// Bytes of spare room for one read from the tunnel.
const READ_CHUNK: usize = 256 * 1024;
/// Reads in a row before the loop turns to its other work.
const READS_PER_TURN: usize = 4;
/// Plaintext per TLS write in TLS mode (one record).
const TLS_PLAIN_CHUNK: usize = 16 * 1024;
/// Time allowed for a tunnel's connect and handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Stops a set of tunnels (or one).
#[derive(Debug, Default)]
pub struct Stop {
    set: Cell<bool>,
    notify: Notify,
}

impl Stop {
    /// Tells every tunnel watching this to end.
    pub fn stop(&self) {
        self.set.set(true);
        self.notify.notify_waiters();
    }

    async fn wait(&self) {
        while !self.set.get() {
            self.notify.notified().await;
        }
    }
}

/// Connects to `edge`, sends the token and answers the challenge.
pub async fn handshake(edge: SocketAddr, creds: &Creds) -> io::Result<(TcpStream, Session)> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut s = TcpStream::connect(edge).await?;
        s.set_nodelay(true)?;
        s.write_all(creds.token.as_bytes()).await?;
        let c = &creds.claims;
        let hs = ClientHandshake::new(c.cipher, c.protocol_version, &c.aes_key, &c.aes_iv);
        let mut challenge = vec![0u8; hs.challenge_len()];
        s.read_exact(&mut challenge).await?;
        let (session, answer) = hs
            .answer(&challenge, &mut StdRng::from_entropy())
            .map_err(|e| io::Error::other(e.to_string()))?;
        s.write_all(&answer).await?;
        Ok((s, session))
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "tunnel handshake timed out"))?
}

/// What serves a channel's bytes.
enum Origin {
    Raw(Responder),
    Tls(Box<ServerConnection>, Responder),
}

struct Chan {
    origin: Origin,
    /// TLS mode: close_notify queued.
    closing: bool,
}

impl Endpoint for Chan {
    fn deliver(&mut self, data: &[u8]) -> Result<usize, EndpointError> {
        self.input(data).map_err(|()| EndpointError)?;
        Ok(data.len())
    }

    fn produce(&mut self) -> Result<Produced, EndpointError> {
        Ok(match self.next_output() {
            Some(b) => Produced::Data(b),
            None if self.done() => Produced::End,
            None => Produced::Nothing,
        })
    }

    fn finish(&mut self) -> bool {
        true
    }
}

impl Chan {
    /// Feeds bytes from the browser. Err: close the channel.
    fn input(&mut self, mut data: &[u8]) -> Result<(), ()> {
        match &mut self.origin {
            Origin::Raw(r) => r.handle_input(data).map_err(|_| ()),
            Origin::Tls(conn, r) => {
                while !data.is_empty() {
                    conn.read_tls(&mut data).map_err(|_| ())?;
                    let state = conn.process_new_packets().map_err(|_| ())?;
                    let mut n = state.plaintext_bytes_to_read();
                    let mut plain = [0u8; 4096];
                    while n > 0 {
                        let got = conn.reader().read(&mut plain).map_err(|_| ())?;
                        if got == 0 {
                            break;
                        }
                        r.handle_input(&plain[..got]).map_err(|_| ())?;
                        n -= got;
                    }
                }
                Ok(())
            }
        }
    }

    /// The next bytes for the tunnel, if any.
    fn next_output(&mut self) -> Option<Bytes> {
        match &mut self.origin {
            Origin::Raw(r) => r.next_chunk(usize::MAX).map(Bytes::from_static),
            Origin::Tls(conn, r) => {
                if !conn.wants_write() && !conn.is_handshaking() {
                    let chunk = r.next_chunk(TLS_PLAIN_CHUNK)?;
                    // rustls buffers it; it cannot fail for a session that is not closed.
                    conn.writer().write_all(chunk).ok()?;
                }
                if !conn.wants_write() {
                    return None;
                }
                let mut out = Vec::with_capacity(TLS_PLAIN_CHUNK + 64);
                while conn.wants_write() {
                    if conn.write_tls(&mut out).is_err() {
                        break;
                    }
                }
                Some(Bytes::from(out))
            }
        }
    }

    /// Whether the channel should be closed now that its output is out.
    fn done(&mut self) -> bool {
        match &mut self.origin {
            Origin::Raw(r) => r.wants_close(),
            Origin::Tls(conn, r) => {
                if r.wants_close() && !conn.wants_write() && !self.closing {
                    self.closing = true;
                    conn.send_close_notify();
                }
                self.closing && !conn.wants_write()
            }
        }
    }
}

/// Serves an authenticated tunnel until the edge ends it or `stop` fires; returns why it ended.
pub async fn serve(
    mut stream: TcpStream,
    session: Session,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: Rc<Stop>,
) -> String {
    let config = MuxConfig {
        outgoing_high: 1024 * 1024,
        outgoing_low: 256 * 1024,
        ..MuxConfig::client()
    };
    let mux = Multiplexer::new(session, config, StdRng::from_entropy(), Instant::now());
    let mut shell: ClientShell<StdRng, Chan> = ClientShell::new(mux, WRITE_BATCH);
    let far = tokio::time::Instant::now() + Duration::from_secs(365 * 86400);
    let sleep = tokio::time::sleep_until(far);
    tokio::pin!(sleep);
    let mut armed: Option<Instant> = None;
    let open = |_, _| {
        let origin = match &tls {
            None => Origin::Raw(Responder::new(true)),
            Some(cfg) => Origin::Tls(
                Box::new(ServerConnection::new(cfg.clone()).ok()?),
                Responder::new(false),
            ),
        };
        Some(Served::new(Chan {
            origin,
            closing: false,
        }))
    };
    let why = 'outer: loop {
        if stop.set.get() {
            break "stopped".to_string();
        }
        match shell.turn(Instant::now(), open) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => break format!("protocol: {e}"),
        }
        // Timer.
        let next = shell.mux.poll_timeout();
        if next != armed {
            armed = next;
            let at = next.map_or(far, tokio::time::Instant::from_std);
            sleep.as_mut().reset(at);
        }
        // Wait.
        let want_read = shell.should_read();
        let want_write = !shell.out.is_empty();
        let interest = match (want_read, want_write) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        };
        let ready = tokio::select! {
            biased;
            r = ready_or_never(&stream, interest) => r,
            _ = &mut sleep => {
                if let Err(e) = shell.mux.handle_timeout(Instant::now()) {
                    break format!("timer: {e}");
                }
                armed = None;
                continue;
            }
            _ = stop.wait() => break "stopped".to_string(),
        };
        let ready = match ready {
            Ok(r) => r,
            Err(e) => break format!("tunnel: {e}"),
        };
        if ready.is_writable()
            && let Err(e) = shell.out.write_with(|s| stream.try_write_vectored(s))
        {
            break format!("tunnel write: {e}");
        }
        if ready.is_readable() || ready.is_read_closed() {
            let mut eof = false;
            for _ in 0..READS_PER_TURN {
                let buf = shell.inbox.buf_mut();
                buf.reserve(READ_CHUNK);
                match stream.try_read_buf(buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        if n < READ_CHUNK / 2 {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => break 'outer format!("tunnel read: {e}"),
                }
            }
            if let Err(e) = shell.feed(Instant::now()) {
                break format!("protocol: {e}");
            }
            if eof {
                break "edge closed the tunnel".to_string();
            }
        }
    };
    let _ = stream.shutdown().await;
    why
}

async fn ready_or_never(s: &TcpStream, interest: Option<Interest>) -> io::Result<tokio::io::Ready> {
    match interest {
        Some(i) => s.ready(i).await,
        None => std::future::pending().await,
    }
}

/// A thread's tunnels, for callers that start and stop them.
#[derive(Debug, Default)]
pub struct Fleet {
    /// Tunnels that ended, with the last reason.
    pub ended: RefCell<(usize, String)>,
}

impl Fleet {
    /// Connects a tunnel and serves it in a local task until `stop`.
    pub async fn launch(
        self: &Rc<Self>,
        edge: SocketAddr,
        creds: &Creds,
        tls: Option<Arc<rustls::ServerConfig>>,
        stop: Rc<Stop>,
    ) -> io::Result<()> {
        let (stream, session) = handshake(edge, creds).await?;
        let me = self.clone();
        tokio::task::spawn_local(async move {
            let why = serve(stream, session, tls, stop).await;
            let mut e = me.ended.borrow_mut();
            e.0 += 1;
            e.1 = why;
        });
        Ok(())
    }
}
