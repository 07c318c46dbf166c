//! A tunnel client for tests: the real handshake and multiplexer from `sluice-proto` over a
//! std socket, forwarding every channel to a local address. It records what the edge told it
//! (caller addresses) and can be killed mid-transfer. `raw_handshake` gives the bare session
//! for tests that forge frames. (It moved here from the edge's tests: the fixture kit is the
//! one home of test fixtures.)
//!
//! The peer is a shell of the multiplexer's contract, the second loop around
//! [`ClientShell`] (the load generator's tunnels are the first): its channel ends are
//! non-blocking sockets ([`Endpoint`]), and one thread runs
//! `turn (dispatch → serve_channels → poll_transmit) → poll(tunnel, channel sockets, timer)`.

use bytes::BytesMut;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_proto::crypto::{CipherKind, Role, TunnelCipher};
use sluice_proto::handshake::{ClientHandshake, Session};
use sluice_proto::mux::shell::{ClientShell, Endpoint, EndpointError, Produced, Served};
use sluice_proto::mux::{Multiplexer, MuxConfig};
use sluice_proto::token::{FernetKey, Issuer, TokenClaims, TokenRequest};
use sluice_proto::version::ProtocolVersion;

/// Bytes of one read from a channel's local socket.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes of spare room for one read from the tunnel.
const TUNNEL_READ: usize = 64 * 1024;
/// Bytes of frames handed to the tunnel socket at a time.
const WRITE_BATCH: usize = 256 * 1024;
/// How long a peer serves a tunnel at most, so that a test that forgets it cannot hang.
const LIFETIME: Duration = Duration::from_secs(600);
/// How long a channel's connection to the target may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a tunnel client needs: a token and the key material in it.
#[derive(Clone, Debug)]
pub struct Creds {
    /// The token, as sent.
    pub token: String,
    /// What it grants (the tunnel's key and IV among them).
    pub claims: TokenClaims,
}

impl Creds {
    /// Credentials valid for an hour.
    pub fn new(
        key: &FernetKey,
        host: &str,
        aliases: &[&str],
        version: ProtocolVersion,
        cipher: CipherKind,
    ) -> Self {
        Self::valid_for(
            key,
            host,
            aliases,
            version,
            cipher,
            Duration::from_secs(3600),
        )
    }

    /// Credentials valid for `valid`.
    pub fn valid_for(
        key: &FernetKey,
        host: &str,
        aliases: &[&str],
        version: ProtocolVersion,
        cipher: CipherKind,
        valid: Duration,
    ) -> Self {
        Self::issued(
            key,
            host,
            aliases,
            version,
            cipher,
            valid,
            SystemTime::now(),
        )
    }

    fn issued(
        key: &FernetKey,
        host: &str,
        aliases: &[&str],
        version: ProtocolVersion,
        cipher: CipherKind,
        valid: Duration,
        now: SystemTime,
    ) -> Self {
        let request = TokenRequest {
            aliases: aliases.iter().map(|a| a.parse().unwrap()).collect(),
            protocol_version: version,
            cipher,
            valid_for: valid,
            ..TokenRequest::new(host.parse().unwrap())
        };
        let issued = Issuer::new(std::slice::from_ref(key))
            .unwrap()
            .issue(&request, now, &mut StdRng::from_entropy())
            .unwrap();
        Self {
            token: issued.token,
            claims: issued.claims,
        }
    }

    /// A token whose `valid` time is long past (issued in 1970, valid for a minute).
    pub fn expired(key: &FernetKey, host: &str) -> Self {
        let then = UNIX_EPOCH + Duration::from_secs(1_000_000);
        Self::issued(
            key,
            host,
            &[],
            ProtocolVersion::V0,
            CipherKind::AesCbc,
            Duration::from_secs(60),
            then,
        )
    }
}

/// Connects, sends the token, answers the challenge.
pub fn raw_handshake(edge: SocketAddr, creds: &Creds) -> io::Result<(TcpStream, Session)> {
    raw_handshake_with(edge, creds, &[])
}

/// The same, with `preamble` (a PROXY header) sent before the token.
pub fn raw_handshake_with(
    edge: SocketAddr,
    creds: &Creds,
    preamble: &[u8],
) -> io::Result<(TcpStream, Session)> {
    let mut s = TcpStream::connect_timeout(&edge, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_nodelay(true)?;
    s.write_all(preamble)?;
    s.write_all(creds.token.as_bytes())?;
    let c = &creds.claims;
    let hs = ClientHandshake::new(c.cipher, c.protocol_version, &c.aes_key, &c.aes_iv);
    let mut challenge = vec![0u8; hs.challenge_len()];
    s.read_exact(&mut challenge)?;
    let (session, answer) = hs
        .answer(&challenge, &mut StdRng::from_entropy())
        .map_err(|e| io::Error::other(e.to_string()))?;
    s.write_all(&answer)?;
    Ok((s, session))
}

/// Connects and answers the challenge with a well-encrypted but wrong value.
pub fn wrong_answer(edge: SocketAddr, creds: &Creds) -> io::Result<TcpStream> {
    let mut s = TcpStream::connect_timeout(&edge, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(creds.token.as_bytes())?;
    let c = &creds.claims;
    let mut cipher = TunnelCipher::new(c.cipher, &c.aes_key, &c.aes_iv, Role::Client);
    let mut challenge = vec![0u8; 32 + cipher.overhead()];
    s.read_exact(&mut challenge)?;
    cipher
        .open(&mut challenge)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let mut answer = vec![0u8; 32 + cipher.overhead()];
    cipher
        .seal(&[0x5a; 32], &mut answer, &mut StdRng::from_entropy())
        .map_err(|e| io::Error::other(e.to_string()))?;
    s.write_all(&answer)?;
    Ok(s)
}

/// Shared view of what a running peer saw.
#[derive(Debug, Default)]
pub struct PeerLog {
    /// Caller address of every channel the edge opened, in order.
    pub callers: Vec<Option<IpAddr>>,
    /// Channels opened so far.
    pub opened: usize,
    /// Why the tunnel ended, once it has.
    pub ended: Option<String>,
    /// PAUSE frames received.
    pub pauses: u64,
}

/// A running tunnel client that forwards channels to `target`.
#[derive(Debug)]
pub struct TestPeer {
    stop: Arc<AtomicBool>,
    kill: Arc<AtomicBool>,
    /// Written to after `stop` or `kill` is set: the peer's wait sees it readable.
    nudge: UnixStream,
    /// What it saw.
    pub log: Arc<Mutex<PeerLog>>,
    thread: Option<JoinHandle<()>>,
}

impl TestPeer {
    /// Connects and completes the handshake before returning.
    pub fn connect(edge: SocketAddr, creds: &Creds, target: SocketAddr) -> io::Result<Self> {
        let (stream, session) = raw_handshake(edge, creds)?;
        Self::start(stream, session, target)
    }

    /// Connects with a PROXY header (written by `header`) before the token.
    pub fn connect_with_preamble(
        edge: SocketAddr,
        creds: &Creds,
        target: SocketAddr,
        header: impl FnOnce(&mut Vec<u8>),
    ) -> io::Result<Self> {
        let mut preamble = Vec::new();
        header(&mut preamble);
        let (stream, session) = raw_handshake_with(edge, creds, &preamble)?;
        Self::start(stream, session, target)
    }

    /// Serves an authenticated tunnel on its own thread.
    pub fn run(stream: TcpStream, session: Session, target: SocketAddr) -> Self {
        Self::start(stream, session, target).expect("a socket pair for the peer's wakeups")
    }

    fn start(stream: TcpStream, session: Session, target: SocketAddr) -> io::Result<Self> {
        let (nudge, woken) = UnixStream::pair()?;
        woken.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let kill = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(PeerLog::default()));
        let (s, k, l) = (stop.clone(), kill.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            let flags = Flags {
                stop: &s,
                kill: &k,
                woken,
            };
            let why = drive(stream, session, target, &flags, &l);
            l.lock().unwrap().ended = Some(why);
        });
        Ok(Self {
            stop,
            kill,
            nudge,
            log,
            thread: Some(thread),
        })
    }

    /// Whether the edge ended the tunnel (or it failed).
    pub fn ended(&self) -> Option<String> {
        self.log.lock().unwrap().ended.clone()
    }

    /// Waits until the tunnel has ended.
    pub fn wait_ended(&self, within: Duration) -> Option<String> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(why) = self.ended() {
                return Some(why);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Drops the tunnel socket abruptly, as a crashed connector would.
    pub fn kill(&self) {
        self.kill.store(true, Ordering::SeqCst);
        self.wake();
        let _ = self.wait_ended(Duration::from_secs(5));
    }

    fn wake(&self) {
        // A full socket buffer already holds a wakeup.
        let _ = (&self.nudge).write(&[1]);
    }
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wake();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How the test tells the peer's thread to end.
struct Flags<'a> {
    stop: &'a AtomicBool,
    kill: &'a AtomicBool,
    woken: UnixStream,
}

/// A channel's local end: a non-blocking socket to the target.
struct Local {
    sock: TcpStream,
    /// Room for the next read (handed to the multiplexer without a copy).
    buf: BytesMut,
}

impl Endpoint for Local {
    fn deliver(&mut self, data: &[u8]) -> Result<usize, EndpointError> {
        match self.sock.write(data) {
            Ok(0) => Err(EndpointError),
            Ok(n) => Ok(n),
            Err(e) if would_block(&e) => Ok(0),
            Err(_) => Err(EndpointError),
        }
    }

    fn produce(&mut self) -> Result<Produced, EndpointError> {
        self.buf.resize(READ_CHUNK, 0);
        match self.sock.read(&mut self.buf) {
            Ok(0) => Ok(Produced::End),
            Ok(n) => {
                self.buf.truncate(n);
                Ok(Produced::Data(self.buf.split().freeze()))
            }
            Err(e) if would_block(&e) => Ok(Produced::Nothing),
            Err(_) => Err(EndpointError),
        }
    }

    fn finish(&mut self) -> bool {
        let _ = self.sock.shutdown(Shutdown::Write);
        true
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// The test peer's loop: `turn`, then wait on the tunnel (as the shell wants), on every
/// channel socket (as its channel waits), on the test's nudge and on the next timer.
fn drive(
    tunnel: TcpStream,
    session: Session,
    target: SocketAddr,
    flags: &Flags<'_>,
    log: &Mutex<PeerLog>,
) -> String {
    let config = MuxConfig {
        ping_interval: Some(Duration::from_secs(50)),
        ..MuxConfig::client()
    };
    let mux = Multiplexer::new(session, config, StdRng::from_entropy(), Instant::now());
    let mut shell: ClientShell<StdRng, Local> = ClientShell::new(mux, WRITE_BATCH);
    if let Err(e) = tunnel.set_nonblocking(true) {
        return format!("tunnel: {e}");
    }
    let open = |_, caller| {
        {
            let mut l = log.lock().unwrap();
            l.callers.push(caller);
            l.opened += 1;
        }
        let sock = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT).ok()?;
        sock.set_nonblocking(true).ok()?;
        let _ = sock.set_nodelay(true);
        Some(Served::new(Local {
            sock,
            buf: BytesMut::new(),
        }))
    };
    let deadline = Instant::now() + LIFETIME;
    loop {
        if flags.stop.load(Ordering::SeqCst) {
            return "stopped".into();
        }
        if flags.kill.load(Ordering::SeqCst) {
            let _ = tunnel.shutdown(Shutdown::Both);
            return "killed".into();
        }
        let now = Instant::now();
        if now >= deadline {
            return "test peer deadline".into();
        }
        log.lock().unwrap().pauses = shell.mux.stats().pauses_received;
        match shell.turn(now, open) {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => return format!("protocol: {e}"),
        }
        let until = shell
            .mux
            .poll_timeout()
            .map_or(deadline, |t| t.min(deadline));
        let ready = match wait(&tunnel, &flags.woken, &shell, until) {
            Ok(r) => r,
            Err(e) => return format!("poll: {e}"),
        };
        if ready.write
            && let Err(e) = shell.out.write_with(|s| (&tunnel).write_vectored(s))
        {
            return format!("tunnel write: {e}");
        }
        if ready.read {
            match read_into(&tunnel, shell.inbox.buf_mut()) {
                Ok(0) => return "edge closed the tunnel".into(),
                Ok(_) => {}
                Err(e) if would_block(&e) => {}
                Err(e) => return format!("tunnel read: {e}"),
            }
            if let Err(e) = shell.feed(Instant::now()) {
                return format!("protocol: {e}");
            }
        }
        let now = Instant::now();
        if shell.mux.poll_timeout().is_some_and(|t| t <= now)
            && let Err(e) = shell.mux.handle_timeout(now)
        {
            return format!("timer: {e}");
        }
    }
}

/// What the wait saw of the tunnel socket.
struct Ready {
    read: bool,
    write: bool,
}

/// Waits (poll(2)) until the tunnel or a channel socket is ready for what is waiting on it,
/// the test nudges, or `until`.
fn wait(
    tunnel: &TcpStream,
    woken: &UnixStream,
    shell: &ClientShell<StdRng, Local>,
    until: Instant,
) -> io::Result<Ready> {
    let mut want = PollFlags::empty();
    want.set(PollFlags::POLLIN, shell.should_read());
    want.set(PollFlags::POLLOUT, !shell.out.is_empty());
    let mut fds = vec![
        PollFd::new(tunnel.as_fd(), want),
        PollFd::new(woken.as_fd(), PollFlags::POLLIN),
    ];
    for (_, s) in shell.chans.iter() {
        let mut want = PollFlags::empty();
        want.set(PollFlags::POLLIN, s.waits_to_produce());
        want.set(PollFlags::POLLOUT, s.waits_to_deliver());
        // A socket nobody waits on would wake the loop for its errors, again and again;
        // the next turn that uses it sees them.
        if !want.is_empty() {
            fds.push(PollFd::new(s.end.sock.as_fd(), want));
        }
    }
    // Rounded up: a timer due in half a millisecond must not spin the loop.
    let ms = until
        .saturating_duration_since(Instant::now())
        .as_micros()
        .div_ceil(1000);
    let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
    match poll(&mut fds, timeout) {
        Ok(_) | Err(Errno::EINTR) => {}
        Err(e) => return Err(e.into()),
    }
    let got = fds[0].revents().unwrap_or(PollFlags::empty());
    Ok(Ready {
        // A hang-up or an error is read (even during a stall): the read says which.
        read: got.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR),
        write: got.contains(PollFlags::POLLOUT),
    })
}

/// One read from `sock` appended to `buf`.
fn read_into(mut sock: &TcpStream, buf: &mut BytesMut) -> io::Result<usize> {
    let len = buf.len();
    buf.resize(len + TUNNEL_READ, 0);
    let r = sock.read(&mut buf[len..]);
    buf.truncate(len + r.as_ref().map_or(0, |n| *n));
    r
}
