//! One channel: the access check, the connection to the local endpoint, and two pumps.
//!
//! - down (edge to home): write what `recv` hands out, report it `consumed` once written (that
//!   is what returns flow-control credit to the edge), and close the endpoint's write side
//!   when the channel ends;
//! - up (home to edge): read the endpoint while the multiplexer's `can_send` allows and queue
//!   what was read as DATA. EOF or an error closes the channel (SniTun has no half-close).
//!
//! In terminate mode the pumps talk to one end of an in-memory pipe; the other end is the TLS
//! server session, whose plaintext goes to the local HTTP server ([`terminate`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tracing::{Instrument, debug, info, warn};

use sluice_proto::mux::shell::{WriteCursor, recv_batch};
use sluice_proto::proxy::{Command, ProxiedAddrs, write_v2};

use crate::buffers;
use crate::config::{Endpoint, ServeConfig};
use crate::forwarded::{Exchange, Http1Error};
use crate::slot::Slot;
use crate::tunnel::Tunnel;

/// Bytes read from the local endpoint at a time.
const READ_CHUNK: usize = buffers::SIZE;
/// Capacity of the in-memory pipe between a channel and its TLS session (terminate mode).
const PIPE_CAPACITY: usize = 256 * 1024;
/// Bytes gathered for one vectored write to the endpoint.
const WRITE_BATCH: usize = 256 * 1024;
/// Most chunks in one vectored write.
const MAX_SEGMENTS: usize = 64;
/// How long closing the endpoint's write side may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Starts a channel's task; what [`crate::tunnel::connect`] is given to run for each channel
/// the edge opens (the tunnel does not import this module: imports run one way).
pub(crate) fn start(t: Arc<Tunnel>, slot: Arc<Slot>, caller: Option<IpAddr>) {
    tokio::spawn(serve(t, slot, caller).in_current_span());
}

/// Serves one channel until it ends.
async fn serve(t: Arc<Tunnel>, slot: Arc<Slot>, caller: Option<IpAddr>) {
    let cfg = t.serve.clone();
    if !cfg.access.permits(caller) {
        info!(caller = %show(caller), "refused by the access list");
        return t.detach(&slot);
    }
    debug!(caller = %show(caller), "new channel");
    match &cfg.endpoint {
        Endpoint::Passthrough { addr } => {
            let stream = tokio::select! {
                s = open_endpoint(addr, caller, &cfg) => s,
                _ = slot.done.wait() => None,
            };
            let Some(stream) = stream else {
                return t.detach(&slot);
            };
            let (rd, wr) = stream.into_split();
            run_pumps(t, slot, rd, wr).await;
        }
        Endpoint::Terminate {
            tls,
            forwarded_headers,
            ..
        } => {
            let (near, far) = tokio::io::duplex(PIPE_CAPACITY);
            let session = tokio::spawn(terminate(
                far,
                tls.clone(),
                caller,
                cfg.clone(),
                *forwarded_headers,
            ));
            let (rd, wr) = tokio::io::split(near);
            run_pumps(t, slot, rd, wr).await;
            // Normally finished already (the pipe is closed); never leave it behind.
            session.abort();
        }
    }
}

/// Connects to the local endpoint and sends the PROXY header if configured.
async fn open_endpoint(
    target: &str,
    caller: Option<IpAddr>,
    cfg: &ServeConfig,
) -> Option<TcpStream> {
    let timeout = cfg.timeouts.endpoint_connect;
    let mut stream = match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            warn!(endpoint = target, error = %e, "cannot reach the local endpoint; closing the channel");
            return None;
        }
        Err(_) => {
            warn!(
                endpoint = target,
                "no connection to the local endpoint within {timeout:?}; closing the channel"
            );
            return None;
        }
    };
    let _ = stream.set_nodelay(true);
    if cfg.proxy_protocol {
        let mut header = Vec::with_capacity(52);
        let addrs = match (caller, stream.peer_addr()) {
            (Some(ip), Ok(dst)) => Some(ProxiedAddrs {
                source: SocketAddr::new(ip.to_canonical(), 0),
                destination: dst,
            }),
            _ => None,
        };
        write_v2(Command::Proxy, addrs.as_ref(), &mut header);
        match tokio::time::timeout(cfg.timeouts.write, stream.write_all(&header)).await {
            Ok(Ok(())) => {}
            _ => {
                warn!(
                    endpoint = target,
                    "cannot send the PROXY header; closing the channel"
                );
                return None;
            }
        }
    }
    Some(stream)
}

async fn run_pumps<R, W>(t: Arc<Tunnel>, slot: Arc<Slot>, rd: R, wr: W)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let up = tokio::spawn(pump_up(t.clone(), slot.clone(), rd));
    pump_down(&t, &slot, wr).await;
    // The down side is done: the up side must stop too.
    slot.done.set();
    let _ = up.await;
    t.detach(&slot);
}

async fn pump_up<R: AsyncRead + Unpin>(t: Arc<Tunnel>, slot: Arc<Slot>, mut rd: R) {
    let h = slot.handle;
    loop {
        if slot.done.is_set() {
            return;
        }
        if !t.with_mux(|m| m.can_send(h)) {
            tokio::select! {
                _ = slot.writable.notified() => continue,
                _ = slot.done.wait() => return,
            }
        }
        let mut buf = buffers::take();
        let read = tokio::select! {
            r = rd.read_buf(&mut buf) => r,
            _ = slot.done.wait() => return,
        };
        match read {
            Ok(0) | Err(_) => {
                // The endpoint is done: close the channel behind what it sent, and let the
                // down pump see the end.
                t.with_mux(|m| m.close(h));
                slot.done.set();
                slot.readable.notify_one();
                return;
            }
            Ok(_) => {
                // A closed channel refuses the data; the down pump is ending it anyway.
                let _ = t.with_mux(|m| m.send(h, buffers::freeze(buf), Instant::now()));
            }
        }
    }
}

async fn pump_down<W: AsyncWrite + Unpin>(t: &Arc<Tunnel>, slot: &Slot, mut wr: W) {
    let h = slot.handle;
    let write_timeout = t.serve.timeouts.write;
    loop {
        if t.is_ended() {
            return;
        }
        // Take what is queued, up to a batch, and write it with one vectored write.
        let batch = t.with_mux(|m| recv_batch(m, h, WRITE_BATCH, MAX_SEGMENTS));
        if !batch.is_empty() {
            let mut segments = WriteCursor::new(batch.segments);
            let write = tokio::select! {
                r = tokio::time::timeout(write_timeout, crate::io::write_all(&mut wr, &mut segments)) => r,
                _ = slot.abort.wait() => return,
            };
            match write {
                Ok(Ok(())) => t.with_mux(|m| m.consumed(h, batch.bytes)),
                // An endpoint that fails or stops reading loses its channel, nobody else.
                _ => return t.with_mux(|m| m.close(h)),
            }
        }
        if batch.closed {
            if slot.abort.is_set() {
                // Killed: the endpoint must not take a cut-short request for a whole one.
                return;
            }
            // Everything the edge sent is written: let the endpoint see a clean end.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, wr.shutdown()).await;
            return;
        }
        if batch.bytes > 0 {
            continue;
        }
        if slot.done.is_set() {
            return;
        }
        tokio::select! {
            _ = slot.readable.notified() => {}
            _ = slot.done.wait() => {}
        }
    }
}

/// Terminate mode: a TLS server session on `pipe`, relayed as HTTP to the local server.
async fn terminate(
    pipe: tokio::io::DuplexStream,
    acceptor: TlsAcceptor,
    caller: Option<IpAddr>,
    cfg: Arc<ServeConfig>,
    forwarded_headers: bool,
) {
    let Endpoint::Terminate { http, .. } = &cfg.endpoint else {
        return;
    };
    let t = cfg.timeouts;
    let tls = match tokio::time::timeout(t.tls_handshake, acceptor.accept(pipe)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            debug!(caller = %show(caller), error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            debug!(caller = %show(caller), "no TLS handshake within {:?}", t.tls_handshake);
            return;
        }
    };
    let Some(upstream) = open_endpoint(http, caller, &cfg).await else {
        return;
    };
    let (mut tls_rd, mut tls_wr) = tokio::io::split(tls);
    let (mut up_rd, mut up_wr) = upstream.into_split();
    // Both directions feed one HTTP/1 exchange: the response side decides when bytes held
    // after an upgrade request may go to the server, and the request side sends them.
    let http = forwarded_headers.then(|| Arc::new(Mutex::new(Http1::new(caller))));
    let released = Arc::new(Notify::new());
    let (http_up, released_up) = (http.clone(), released.clone());
    let requests = async move {
        let mut buf = vec![0; READ_CHUNK];
        let mut out = Vec::with_capacity(READ_CHUNK + 256);
        loop {
            let read = tokio::select! {
                r = tls_rd.read(&mut buf) => Some(r?),
                _ = released_up.notified() => None,
            };
            if read == Some(0) {
                break;
            }
            let chunk = match &http_up {
                Some(http) => {
                    out.clear();
                    let mut h = lock(http);
                    if let Some(n) = read {
                        let h = &mut *h;
                        h.exchange
                            .feed_request(&buf[..n], &mut h.to_server)
                            .map_err(|e| closing(caller, e))?;
                    }
                    std::mem::swap(&mut out, &mut h.to_server);
                    &out[..]
                }
                None => &buf[..read.unwrap_or(0)],
            };
            if !chunk.is_empty() {
                write_bounded(&mut up_wr, chunk, t.write).await?;
            }
        }
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, up_wr.shutdown()).await;
        Ok::<_, std::io::Error>(())
    };
    let responses = async move {
        let mut buf = vec![0; READ_CHUNK];
        loop {
            let n = up_rd.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            if let Some(http) = &http {
                let mut h = lock(http);
                let h = &mut *h;
                h.exchange
                    .feed_response(&buf[..n], &mut h.to_server)
                    .map_err(|e| closing(caller, e))?;
                if !h.to_server.is_empty() {
                    released.notify_one();
                }
            }
            write_bounded(&mut tls_wr, &buf[..n], t.write).await?;
        }
        // close_notify, then the pipe closes and the channel with it.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, tls_wr.shutdown()).await;
        Ok::<_, std::io::Error>(())
    };
    tokio::pin!(requests, responses);
    // The response side decides when the connection is over; a failed request side (a
    // request that cannot be framed) ends it at once.
    tokio::select! {
        r = &mut requests => {
            if r.is_ok() {
                let _ = responses.await;
            }
        }
        _ = &mut responses => {}
    }
}

/// One terminate-mode connection's HTTP/1 state, shared by its two directions (the lock is
/// never held across an await).
struct Http1 {
    exchange: Exchange,
    /// Bytes for the server, in the order produced by either direction; only the request
    /// side writes them, so they reach the server in that order.
    to_server: Vec<u8>,
}

impl Http1 {
    fn new(caller: Option<IpAddr>) -> Self {
        Self {
            exchange: Exchange::new(caller),
            to_server: Vec::new(),
        }
    }
}

fn lock(http: &Mutex<Http1>) -> std::sync::MutexGuard<'_, Http1> {
    // Nothing panics while holding it; were it poisoned, the state is still just bytes.
    http.lock().unwrap_or_else(|e| e.into_inner())
}

/// Logs why a connection that cannot be framed is closed, and says so as an I/O error. A
/// browser's bad request is its own business (debug); a home server's bad response is the
/// operator's to fix (warn).
fn closing(caller: Option<IpAddr>, e: Http1Error) -> std::io::Error {
    if e.is_server_fault() {
        warn!(caller = %show(caller), error = %e, "closing the connection: the home server sent a response that cannot be framed");
    } else {
        debug!(caller = %show(caller), error = %e, "closing the connection");
    }
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

/// Writes and flushes `data` within `timeout`. The flush matters for the TLS side: tokio-rustls
/// accepts bytes into the session's buffer while the transport is busy and only writes them
/// out on the next write or flush; without one, the end of a response would wait there for
/// ever.
async fn write_bounded<W: AsyncWrite + Unpin>(
    w: &mut W,
    data: &[u8],
    timeout: Duration,
) -> std::io::Result<()> {
    let write = async {
        w.write_all(data).await?;
        w.flush().await
    };
    tokio::time::timeout(timeout, write)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))?
}

/// The caller's address for logs.
fn show(caller: Option<IpAddr>) -> String {
    caller.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}
