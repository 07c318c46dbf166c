//! Shared pieces of the edge's integration tests: an in-process edge on port 0, a tunnel
//! client, local origin servers and browser helpers. Every wait here has a deadline.

#![allow(dead_code)]

pub mod hello;
/// The test tunnel client lives in the fixture kit.
pub use sluice_testkit::tunnel_peer as peer;

use rand::SeedableRng;
use rand::rngs::StdRng;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use sluice_edge::{EdgeConfig, EdgeHandle, IoDriver};
use sluice_proto::token::FernetKey;

/// Both drivers, for tests that must pass under each.
/// The drivers a test runs under: io_uring and epoll, or epoll alone where io_uring is
/// unavailable (a container's seccomp profile, an old kernel), which is said once on stderr
/// instead of failing every io_uring half.
pub fn drivers() -> Vec<IoDriver> {
    static URING: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let uring = *URING.get_or_init(|| {
        let mut config = EdgeConfig::for_keys(vec![new_key()]);
        config.io = IoDriver::IoUring;
        match sluice_edge::start(config) {
            Ok(_probe) => true,
            Err(e) => {
                eprintln!("io_uring is unavailable ({e}): running the epoll half only");
                false
            }
        }
    });
    if uring {
        vec![IoDriver::IoUring, IoDriver::Epoll]
    } else {
        vec![IoDriver::Epoll]
    }
}

/// A fresh random Fernet key.
pub fn new_key() -> FernetKey {
    FernetKey::generate(&mut StdRng::from_entropy())
}

/// An edge with one key, on 127.0.0.1:0, with `tweak` applied to its configuration.
pub fn edge(
    io: IoDriver,
    workers: usize,
    tweak: impl FnOnce(&mut EdgeConfig),
) -> (EdgeHandle, FernetKey) {
    logging();
    let key = new_key();
    let mut config = EdgeConfig::for_keys(vec![key.clone()]);
    config.io = io;
    config.workers = workers;
    tweak(&mut config);
    (sluice_edge::start(config).expect("edge starts"), key)
}

/// Waits until the edge has registered `n` tunnels in all (bounded).
pub fn registered(edge: &EdgeHandle, n: u64) {
    let accepted = || {
        edge.metrics().total(|w| {
            w.tunnels_accepted
                .load(std::sync::atomic::Ordering::Relaxed)
        })
    };
    assert!(
        wait_for(Duration::from_secs(5), || (accepted() >= n).then_some(())).is_some(),
        "{n} tunnels registered"
    );
}

/// Connects a test peer and waits until the edge has registered its tunnel: the protocol has
/// no acknowledgement, so the client is done before the edge has the route.
pub fn attach(
    edge: &EdgeHandle,
    at: SocketAddr,
    creds: &peer::Creds,
    target: SocketAddr,
) -> io::Result<peer::TestPeer> {
    let accepted = || {
        edge.metrics().total(|w| {
            w.tunnels_accepted
                .load(std::sync::atomic::Ordering::Relaxed)
        })
    };
    let before = accepted();
    let peer = peer::TestPeer::connect(at, creds, target)?;
    // A tunnel the edge refuses after its handshake (at a limit) is never counted: give up
    // waiting after a while and let the test look.
    let _ = wait_for(Duration::from_secs(2), || {
        (accepted() > before).then_some(())
    });
    // The owning worker counts the tunnel as soon as it has claimed its names; the others
    // learn the claim by message. Until every worker holds as many names, a browser that
    // lands on another worker may find none.
    let _ = wait_for(Duration::from_secs(2), || {
        let workers = edge.metrics().workers();
        let first = workers.first().map(|w| w.routes());
        workers
            .iter()
            .all(|w| Some(w.routes()) == first)
            .then_some(())
    });
    Ok(peer)
}

/// Logs to the test output when `SLUICE_LOG` is set.
pub fn logging() {
    if let Ok(filter) = std::env::var("SLUICE_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Polls `f` until it returns `Some`, or `within` passes (the kit's bounded wait).
pub fn wait_for<T>(within: Duration, f: impl FnMut() -> Option<T>) -> Option<T> {
    sluice_testkit::wait_for_value("a condition", within, f).ok()
}

/// Runs a listener thread that hands each connection to `serve`.
fn serve_with(serve: impl Fn(TcpStream) + Send + Sync + Clone + 'static) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for conn in l.incoming().flatten() {
            let serve = serve.clone();
            thread::spawn(move || serve(conn));
        }
    });
    addr
}

/// An origin that sends back every byte it receives: the kit's echo server, kept for the
/// rest of the test binary's life, as the tests hand out only its address.
pub fn echo_server() -> SocketAddr {
    let echo = sluice_testkit::EchoServer::start().expect("the echo server starts");
    Box::leak(Box::new(echo)).addr
}

/// The byte at position `i` of the download pattern.
pub fn pattern_byte(i: usize) -> u8 {
    (i % 251) as u8
}

/// An origin that, once the hello (first bytes) arrives, sends `total` pattern bytes and closes.
pub fn pattern_server(total: usize) -> SocketAddr {
    serve_with(move |mut c| {
        let _ = c.set_read_timeout(Some(Duration::from_secs(30)));
        let mut first = [0u8; 1];
        if c.read(&mut first).unwrap_or(0) == 0 {
            return;
        }
        let chunk: Vec<u8> = (0..251 * 256).map(pattern_byte).collect();
        let mut sent = 0;
        while sent < total {
            let n = (total - sent).min(chunk.len());
            if c.write_all(&chunk[..n]).is_err() {
                return;
            }
            sent += n;
        }
        // Closing with unread input would send a reset, and a reset discards what the other
        // side has not read yet: finish writing, then drain until the other side closes.
        let _ = c.shutdown(std::net::Shutdown::Write);
        let mut sink = [0u8; 4096];
        while matches!(c.read(&mut sink), Ok(n) if n > 0) {}
    })
}

/// A browser-side connection with sane timeouts.
pub fn browser(edge: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&edge, Duration::from_secs(5)).expect("connect to edge");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads exactly `n` bytes or fails.
pub fn read_n(s: &mut TcpStream, n: usize) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; n];
    s.read_exact(&mut out)?;
    Ok(out)
}

/// Reads until EOF (or the read timeout), returning what came.
pub fn read_to_end(s: &mut TcpStream) -> (Vec<u8>, io::Result<()>) {
    let mut out = Vec::new();
    let r = s.read_to_end(&mut out).map(|_| ());
    (out, r)
}

/// Sends a hello for `sni` through the edge to an echo origin and checks the echo.
pub fn echo_round_trip(edge: SocketAddr, sni: &str) -> io::Result<()> {
    let mut b = browser(edge);
    let hello = hello::client_hello(Some(sni), 0);
    b.write_all(&hello)?;
    let back = read_n(&mut b, hello.len())?;
    if back != hello {
        return Err(io::Error::other("echo mismatch"));
    }
    b.write_all(b"more bytes after the hello")?;
    let back = read_n(&mut b, 26)?;
    if back != b"more bytes after the hello" {
        return Err(io::Error::other("echo mismatch after hello"));
    }
    Ok(())
}

/// The 7 bytes of a fatal TLS alert record with `description`, as the edge writes it.
pub fn alert(description: u8) -> Vec<u8> {
    vec![0x15, 0x03, 0x01, 0x00, 0x02, 0x02, description]
}
