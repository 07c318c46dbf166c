//! A real HTTPS (or plain HTTP) origin on 127.0.0.1:0: tokio + tokio-rustls, in a background
//! thread with its own runtime. It stands in for Home Assistant behind a tunnel.
//!
//! A PROXY protocol v2 header in front of a connection is read and its source address kept
//! with each request ([`RequestRecord::proxy_source`]); a connection without one is served as
//! it is. [`TlsOrigin::start_plain`] serves plain HTTP instead of TLS.
//!
//! Routes (HTTP/1.1, `GET` only):
//! - `GET /` → `200`, a small text body naming the request, the SNI and the TCP peer it saw;
//! - `GET /big/<MiB>` → `200`, `<MiB>` MiB of the pattern byte `i` = `i % 251`, with
//!   `Content-Length` (compare with [`crate::sha256_of_pattern`]);
//! - `GET /echo-peer` → `200`, the TCP peer address (`ip:port`, no newline);
//! - `GET /upgrade-refused` → `400` with the body `no upgrades here\n`, connection kept;
//! - `GET /upgrade-accepted` → `101 Switching Protocols`, then every byte back (those sent
//!   behind the request first) until the client closes;
//! - anything else → `404`, or, with [`OriginOptions::greeting`], `200` and the greeting (as
//!   `/` then does too).
//!
//! Connections are kept alive as Home Assistant's aiohttp keeps them: after a response the
//! origin waits for the next request and lets the *client* close first (after
//! [`OriginOptions::idle_timeout`] it closes itself). A request with `Connection: close`, or
//! [`OriginOptions::close_after_response`], makes the origin close right after the body
//! instead (close_notify, FIN, then it reads until the client closes too).
//!
//! Which side closes first matters through a tunnel: when the origin closes first, the end of
//! the stream overtakes the data still queued for a slow reader. SniTun 0.47.0 can lose the
//! tail of a response that way on protocol v1/v2 (a CLOSE that arrives while the server-side
//! channel is paused makes its RESUME fail and its backlog be dropped; seen as curl error 18
//! on a rate-limited 24 MiB download).
//!
//! Every request is recorded ([`TlsOrigin::requests`]). The origin stops on drop.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpSocket;
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;

use crate::net::ServerThread;

use sluice_proto::peek::Peek;
use sluice_proto::proxy::peek_proxy_header;

use crate::error::{Error, IoContext as _, Result};
use crate::tls::Leaf;

/// The largest `/big/<MiB>` served.
pub const MAX_BIG_MIB: u64 = 4096;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
const LINGER: Duration = Duration::from_secs(5);
const MAX_HEAD: usize = 16 * 1024;
const BACKLOG: u32 = 1024;

/// How the origin treats connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginOptions {
    /// Close each connection right after its first response, as if every request carried
    /// `Connection: close` (default: keep it alive and let the client close first).
    pub close_after_response: bool,
    /// How long a kept-alive connection may idle before the origin closes it (default 30 s).
    pub idle_timeout: Duration,
    /// Where to listen (default 127.0.0.1:0). A fixed port lets an origin restarted in a new
    /// process come back where its connector expects it.
    pub listen: SocketAddr,
    /// A home server that greets: `/` and every path no other route takes answer `200` with
    /// this body (default `None`: `/` describes the request and the rest is `404`).
    pub greeting: Option<&'static str>,
}

impl Default for OriginOptions {
    fn default() -> Self {
        Self {
            close_after_response: false,
            idle_timeout: Duration::from_secs(30),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            greeting: None,
        }
    }
}

/// One request the origin answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// The TCP peer of the connection.
    pub peer: SocketAddr,
    /// The SNI of the TLS handshake, if any.
    pub sni: Option<String>,
    /// The request method.
    pub method: String,
    /// The request target.
    pub path: String,
    /// The source address of the PROXY v2 header in front of the connection, if one came.
    pub proxy_source: Option<SocketAddr>,
    /// The request head as text, up to and including the blank line.
    pub head: String,
}

#[derive(Debug, Default)]
struct Shared {
    requests: Mutex<Vec<RequestRecord>>,
    accepted: AtomicUsize,
    handshakes: AtomicUsize,
    failed_handshakes: AtomicUsize,
}

/// A running HTTPS origin.
#[derive(Debug)]
pub struct TlsOrigin {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _server: ServerThread,
}

impl TlsOrigin {
    /// Starts an origin that presents `leaf`, with the default [`OriginOptions`].
    pub fn start(leaf: &Leaf) -> Result<TlsOrigin> {
        Self::start_with(leaf.server_config()?, OriginOptions::default())
    }

    /// Starts an origin with any rustls server config and options.
    pub fn start_with(
        config: Arc<rustls::ServerConfig>,
        options: OriginOptions,
    ) -> Result<TlsOrigin> {
        Self::launch(Some(config), options, None)
    }

    /// Starts an origin that serves plain HTTP (no TLS), e.g. behind a TLS-terminating
    /// connector.
    pub fn start_plain(options: OriginOptions) -> Result<TlsOrigin> {
        Self::launch(None, options, None)
    }

    /// Starts an origin on a listener bound (and listening) beforehand, e.g. a port held
    /// while a test checks what happens with nothing serving it; TLS with `config`, plain
    /// HTTP without. [`OriginOptions::listen`] is ignored.
    pub fn start_on(
        listener: std::net::TcpListener,
        config: Option<Arc<rustls::ServerConfig>>,
        options: OriginOptions,
    ) -> Result<TlsOrigin> {
        listener
            .set_nonblocking(true)
            .context(|| "making the origin's listener non-blocking".to_owned())?;
        Self::launch(config, options, Some(listener))
    }

    fn launch(
        config: Option<Arc<rustls::ServerConfig>>,
        options: OriginOptions,
        listener: Option<std::net::TcpListener>,
    ) -> Result<TlsOrigin> {
        let shared = Arc::new(Shared::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let server = ServerThread::spawn("sluice-testkit-origin", move |stop| {
            let listen = Listen { listener, options };
            serve(config, listen, thread_shared, stop, ready_tx)
        })?;
        let addr = match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => return Err(Error::io("binding the origin", e)),
            Err(_) => return Err(Error::Other("the origin thread did not start".into())),
        };
        Ok(TlsOrigin {
            addr,
            shared,
            _server: server,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request answered so far, in order of arrival.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// TCP connections accepted so far.
    pub fn connections_accepted(&self) -> usize {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// TLS handshakes completed so far.
    pub fn handshakes(&self) -> usize {
        self.shared.handshakes.load(Ordering::Relaxed)
    }

    /// TLS handshakes that failed or timed out.
    pub fn failed_handshakes(&self) -> usize {
        self.shared.failed_handshakes.load(Ordering::Relaxed)
    }
}

/// Where the origin thread listens, and how it serves.
struct Listen {
    listener: Option<std::net::TcpListener>,
    options: OriginOptions,
}

async fn serve(
    config: Option<Arc<rustls::ServerConfig>>,
    Listen { listener, options }: Listen,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
    ready: std::sync::mpsc::Sender<std::io::Result<SocketAddr>>,
) {
    {
        let bound = match listener {
            Some(l) => tokio::net::TcpListener::from_std(l),
            None => bind(options.listen),
        };
        let listener = match bound {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(listener.local_addr());
        let acceptor = config.map(TlsAcceptor::from);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                accepted = listener.accept() => {
                    let Ok((tcp, peer)) = accepted else {
                        // EMFILE and friends: back off a little instead of spinning.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                    let acceptor = acceptor.clone();
                    let shared = Arc::clone(&shared);
                    tokio::spawn(async move {
                        let _ = tcp.set_nodelay(true);
                        let mut tcp = tcp;
                        let proxy = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_proxy(&mut tcp));
                        let Ok(Ok(proxy_source)) = proxy.await else {
                            shared.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                            return;
                        };
                        let Some(acceptor) = acceptor else {
                            let info = ConnInfo {
                                peer,
                                proxy_source,
                                sni: None,
                                tls_version: "none".to_owned(),
                            };
                            serve_connection(&mut tcp, &info, options, &shared).await;
                            return;
                        };
                        let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp));
                        let Ok(Ok(mut tls)) = handshake.await else {
                            shared.failed_handshakes.fetch_add(1, Ordering::Relaxed);
                            return;
                        };
                        shared.handshakes.fetch_add(1, Ordering::Relaxed);
                        let (_, conn) = tls.get_ref();
                        let info = ConnInfo {
                            peer,
                            proxy_source,
                            sni: conn.server_name().map(str::to_owned),
                            tls_version: conn
                                .protocol_version()
                                .map(|v| format!("{v:?}"))
                                .unwrap_or_default(),
                        };
                        serve_connection(&mut tls, &info, options, &shared).await;
                    });
                }
            }
        }
    }
}

fn bind(at: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if at.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // A restarted origin rebinds its port while the old one's connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(at)?;
    socket.listen(BACKLOG)
}

/// Reads a PROXY v2 header if one comes first, leaving everything after it unread.
async fn read_proxy(stream: &mut tokio::net::TcpStream) -> std::io::Result<Option<SocketAddr>> {
    let mut buf = vec![0u8; sluice_proto::limits::MAX_PROXY_V2_LEN];
    // Bounded: a header that never completes ends with the handshake timeout around this.
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        match peek_proxy_header(&buf[..n]) {
            Ok(Peek::Complete(h)) => {
                let mut skip = vec![0; h.len];
                stream.read_exact(&mut skip).await?;
                return Ok(h.addresses.map(|a| a.source));
            }
            Ok(Peek::NotThisProtocol) => return Ok(None),
            // peek returns at once while bytes wait: pause until more can have come.
            Ok(Peek::NeedMore) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }
}

/// What the origin knows about one connection.
struct ConnInfo {
    peer: SocketAddr,
    proxy_source: Option<SocketAddr>,
    sni: Option<String>,
    tls_version: String,
}

/// Answers requests on one connection until either side closes it.
async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    info: &ConnInfo,
    options: OriginOptions,
    shared: &Shared,
) {
    let mut buf = Vec::with_capacity(2048);
    let mut first = true;
    loop {
        let wait = if first {
            HEAD_TIMEOUT
        } else {
            options.idle_timeout
        };
        first = false;
        let head = match tokio::time::timeout(wait, read_head(stream, &mut buf)).await {
            Ok(Ok(Some(head))) => head,
            // The client closed (the usual end), sent garbage, or idled out.
            _ => break,
        };
        let (method, path) = request_target(&head);
        if let Ok(mut r) = shared.requests.lock() {
            r.push(RequestRecord {
                peer: info.peer,
                sni: info.sni.clone(),
                method: method.to_owned(),
                path: path.to_owned(),
                proxy_source: info.proxy_source,
                head: head.clone(),
            });
        }
        if method == "GET" && path == "/upgrade-accepted" {
            let _ = switch_and_echo(stream, &buf).await;
            return;
        }
        let close = options.close_after_response
            || head.lines().skip(1).any(|line| {
                line.split_once(':').is_some_and(|(name, value)| {
                    name.trim().eq_ignore_ascii_case("connection")
                        && value.trim().eq_ignore_ascii_case("close")
                })
            });
        if answer(stream, &head, info, close, options.greeting)
            .await
            .is_err()
        {
            return;
        }
        if close {
            break;
        }
    }
    // close_notify and FIN; then read until the client closes too (bounded), so that closing
    // a socket with unread data in it cannot reset the connection under the client.
    if stream.shutdown().await.is_ok() {
        let mut sink = [0u8; 1024];
        let _ = tokio::time::timeout(LINGER, async {
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

/// The method and the target of a request head.
fn request_target(head: &str) -> (&str, &str) {
    let mut parts = head.lines().next().unwrap_or_default().split(' ');
    (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    )
}

/// Answers a protocol switch, then sends every byte back (those that came behind the request
/// first) until the client closes.
async fn switch_and_echo<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    early: &[u8],
) -> std::io::Result<()> {
    stream
        .write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n",
        )
        .await?;
    stream.write_all(early).await?;
    stream.flush().await?;
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return stream.shutdown().await;
        }
        stream.write_all(&chunk[..n]).await?;
        stream.flush().await?;
    }
}

/// Writes the response to one request.
async fn answer<S: AsyncWrite + Unpin>(
    stream: &mut S,
    head: &str,
    info: &ConnInfo,
    close: bool,
    greeting: Option<&str>,
) -> std::io::Result<()> {
    let request_line = head.lines().next().unwrap_or_default();
    let (method, path) = request_target(head);
    if method != "GET" {
        return respond(stream, "405 Method Not Allowed", b"only GET\n", close).await;
    }
    if path == "/upgrade-refused" {
        return respond(stream, "400 Bad Request", b"no upgrades here\n", close).await;
    }
    if let (Some(greeting), "/") = (greeting, path) {
        return respond(stream, "200 OK", greeting.as_bytes(), close).await;
    }
    if path == "/" {
        let body = format!(
            "hello from the sluice-testkit origin\nrequest: {request_line}\nsni: {}\n\
             tcp-peer: {}\ntls: {}\n",
            info.sni.as_deref().unwrap_or("(none)"),
            info.peer,
            info.tls_version
        );
        return respond(stream, "200 OK", body.as_bytes(), close).await;
    }
    if path == "/echo-peer" {
        return respond(stream, "200 OK", info.peer.to_string().as_bytes(), close).await;
    }
    if let Some(mib) = path.strip_prefix("/big/") {
        return match mib.parse::<u64>() {
            Ok(mib) if mib <= MAX_BIG_MIB => send_big(stream, mib, close).await,
            _ => {
                respond(
                    stream,
                    "400 Bad Request",
                    b"/big/<MiB>, at most 4096\n",
                    close,
                )
                .await
            }
        };
    }
    match greeting {
        Some(greeting) => respond(stream, "200 OK", greeting.as_bytes(), close).await,
        None => respond(stream, "404 Not Found", b"not found\n", close).await,
    }
}

/// Reads one request head (up to and including the blank line) from `stream`, keeping any
/// bytes after it in `buf` for the next request; `None` on EOF or an oversized head.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<String>> {
    let mut chunk = [0u8; 2048];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            buf.drain(..end + 4);
            return Ok(Some(head));
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn connection_header(close: bool) -> &'static str {
    if close { "Connection: close\r\n" } else { "" }
}

async fn respond<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: &str,
    body: &[u8],
    close: bool,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        connection_header(close)
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out).await?;
    stream.flush().await
}

async fn send_big<S: AsyncWrite + Unpin>(
    stream: &mut S,
    mib: u64,
    close: bool,
) -> std::io::Result<()> {
    let size = mib * 1024 * 1024;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n{}\r\n",
        connection_header(close)
    );
    stream.write_all(head.as_bytes()).await?;
    // A whole number of 251-byte periods, so that every chunk starts at pattern offset 0.
    let chunk = pattern_chunk();
    let mut sent = 0u64;
    while sent < size {
        let n = (size - sent).min(chunk.len() as u64) as usize;
        stream.write_all(&chunk[..n]).await?;
        sent += n as u64;
    }
    stream.flush().await
}

/// 256 periods of the pattern (64 256 bytes).
pub(crate) fn pattern_chunk() -> Vec<u8> {
    (0..251 * 256).map(|i| (i % 251) as u8).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chunk_is_a_whole_number_of_periods() {
        let c = pattern_chunk();
        assert_eq!(c.len() % 251, 0);
        assert_eq!(c[250], 250);
        assert_eq!(c[251], 0);
    }
}
