//! A tunnel client for tests: the real handshake and multiplexer from `sluice-proto` over a
//! std socket, forwarding every channel to a local address. It records what the edge told it
//! (caller addresses) and can be killed mid-transfer. `raw_handshake` gives the bare session
//! for tests that forge frames. (It moved here from the edge's tests: the fixture kit is the
//! one home of test fixtures.)

use bytes::{Bytes, BytesMut};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sluice_proto::crypto::{CipherKind, Role, TunnelCipher};
use sluice_proto::handshake::{ClientHandshake, Session};
use sluice_proto::mux::{ChannelHandle, Event, Multiplexer, MuxConfig, Recv, Transmit};
use sluice_proto::token::{FernetKey, Issuer, TokenClaims, TokenRequest};
use sluice_proto::version::ProtocolVersion;

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
    /// What it saw.
    pub log: Arc<Mutex<PeerLog>>,
    thread: Option<JoinHandle<()>>,
}

struct Endpoint {
    sock: TcpStream,
    /// Bytes from the tunnel not yet written to the endpoint, with the handle to credit.
    out: BytesMut,
    remote_closed: bool,
}

impl TestPeer {
    /// Connects and completes the handshake before returning.
    pub fn connect(edge: SocketAddr, creds: &Creds, target: SocketAddr) -> io::Result<Self> {
        let (stream, session) = raw_handshake(edge, creds)?;
        Ok(Self::run(stream, session, target))
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
        Ok(Self::run(stream, session, target))
    }

    /// Serves an authenticated tunnel on its own thread.
    pub fn run(stream: TcpStream, session: Session, target: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let kill = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(PeerLog::default()));
        let (s, k, l) = (stop.clone(), kill.clone(), log.clone());
        let thread = std::thread::spawn(move || {
            let why = drive(stream, session, target, &s, &k, &l);
            l.lock().unwrap().ended = Some(why);
        });
        Self {
            stop,
            kill,
            log,
            thread: Some(thread),
        }
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
        let _ = self.wait_ended(Duration::from_secs(5));
    }
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn drive(
    mut tunnel: TcpStream,
    session: Session,
    target: SocketAddr,
    stop: &AtomicBool,
    kill: &AtomicBool,
    log: &Mutex<PeerLog>,
) -> String {
    let config = MuxConfig {
        ping_interval: Some(Duration::from_secs(50)),
        ..MuxConfig::client()
    };
    let mut mux = Multiplexer::new(session, config, StdRng::from_entropy(), Instant::now());
    let _ = tunnel.set_nonblocking(true);
    let mut inbox = BytesMut::new();
    let mut endpoints: HashMap<ChannelHandle, Endpoint> = HashMap::new();
    let mut tx = Transmit::new();
    let mut pending_out: Vec<Bytes> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(600);
    while Instant::now() < deadline {
        if stop.load(Ordering::SeqCst) {
            return "stopped".into();
        }
        if kill.load(Ordering::SeqCst) {
            let _ = tunnel.shutdown(Shutdown::Both);
            return "killed".into();
        }
        let now = Instant::now();
        let mut progress = false;
        // Tunnel input.
        if mux.wants_input() {
            match tunnel.read(&mut buf) {
                Ok(0) => return "edge closed the tunnel".into(),
                Ok(n) => {
                    inbox.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return format!("tunnel read: {e}"),
            }
        }
        if let Err(e) = mux.handle_input(&mut inbox, now) {
            return format!("protocol: {e}");
        }
        while let Some(event) = mux.poll_event() {
            match event {
                Event::Opened { channel, caller } => {
                    {
                        let mut l = log.lock().unwrap();
                        l.callers.push(caller);
                        l.opened += 1;
                    }
                    match TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
                        Ok(sock) => {
                            let _ = sock.set_nonblocking(true);
                            let _ = sock.set_nodelay(true);
                            endpoints.insert(
                                channel,
                                Endpoint {
                                    sock,
                                    out: BytesMut::new(),
                                    remote_closed: false,
                                },
                            );
                        }
                        Err(_) => mux.close(channel),
                    }
                }
                Event::Closed { channel, .. } => {
                    if let Some(e) = endpoints.get_mut(&channel) {
                        e.remote_closed = true;
                    }
                }
                Event::Readable { .. } | Event::Writable { .. } | Event::InputReady => {}
            }
        }
        log.lock().unwrap().pauses = mux.stats().pauses_received;
        // Channels.
        let mut gone = Vec::new();
        for (&h, e) in endpoints.iter_mut() {
            // Tunnel to endpoint.
            loop {
                if !e.out.is_empty() {
                    match e.sock.write(&e.out) {
                        Ok(n) => {
                            let _ = e.out.split_to(n);
                            mux.consumed(h, n);
                            progress = true;
                            continue;
                        }
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            gone.push(h);
                            break;
                        }
                    }
                }
                match mux.recv(h) {
                    Recv::Data(d) => e.out.extend_from_slice(&d),
                    Recv::Empty => break,
                    Recv::Closed => {
                        e.remote_closed = true;
                        break;
                    }
                }
            }
            if e.remote_closed && e.out.is_empty() {
                let _ = e.sock.shutdown(Shutdown::Write);
                gone.push(h);
                continue;
            }
            // Endpoint to tunnel.
            while mux.can_send(h) {
                match e.sock.read(&mut buf) {
                    Ok(0) => {
                        mux.close(h);
                        gone.push(h);
                        break;
                    }
                    Ok(n) => {
                        let _ = mux.send(h, Bytes::copy_from_slice(&buf[..n]), now);
                        progress = true;
                    }
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        mux.close(h);
                        gone.push(h);
                        break;
                    }
                }
            }
        }
        for h in gone {
            if let Some(e) = endpoints.remove(&h) {
                drop(e.sock);
            }
            mux.close(h);
            // A channel closed by the edge is forgotten by draining to Closed.
            while !matches!(mux.recv(h), Recv::Closed) {}
        }
        // Timers.
        if mux.poll_timeout().is_some_and(|t| t <= now)
            && let Err(e) = mux.handle_timeout(now)
        {
            return format!("timer: {e}");
        }
        // Tunnel output.
        while pending_out.is_empty() && mux.wants_output() {
            if let Err(e) = mux.poll_transmit(&mut tx, 256 * 1024, now) {
                return format!("transmit: {e}");
            }
            pending_out = tx.take_segments();
        }
        while let Some(seg) = pending_out.first_mut() {
            match tunnel.write(seg) {
                Ok(n) => {
                    let _ = seg.split_to(n);
                    if seg.is_empty() {
                        pending_out.remove(0);
                    }
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return format!("tunnel write: {e}"),
            }
        }
        if !progress {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    "test peer deadline".into()
}
