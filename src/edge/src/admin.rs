//! The admin endpoint: `GET /metrics` (Prometheus text format), `GET /healthz`, and the
//! per-tunnel views `GET /tunnels[?limit=N]` and `GET /tunnels/HOST` ([`crate::inspect`]), on
//! a plain thread of its own, away from the workers. The tunnel views name tenants and their
//! addresses: they are served only when the admin listens on a loopback address.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

use crate::inspect::{self, Answer, BadQuery, Inspect, Listing, Query};
use crate::message::Message;
use crate::metrics::Metrics;

/// Longest request head read.
const MAX_REQUEST: usize = 8 * 1024;
/// A scraper that does not send or read in this time is dropped.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct Admin {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Admin {
    pub(crate) fn start(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        workers: Vec<UnboundedSender<Message>>,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot listen on admin address {addr}: {e}"),
            )
        })?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sluice-admin".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        let _ = serve(conn, &metrics, &workers, addr.ip().is_loopback());
                    }
                }
            })?;
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    mut conn: TcpStream,
    metrics: &Metrics,
    workers: &[UnboundedSender<Message>],
    loopback: bool,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(IO_TIMEOUT))?;
    conn.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut chunk)?;
        if n == 0 || head.len() + n > MAX_REQUEST {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let (status, kind, body) = match line {
        l if l.starts_with(b"GET /metrics ") => {
            ("200 OK", "text/plain; version=0.0.4", metrics.render())
        }
        l if l.starts_with(b"GET /healthz ") => ("200 OK", "text/plain", "ok\n".to_owned()),
        l if l.starts_with(b"GET /tunnels") => {
            let path = std::str::from_utf8(&l[4..])
                .ok()
                .and_then(|p| p.split(' ').next())
                .unwrap_or("");
            tunnels(path, workers, loopback)
        }
        _ => ("404 Not Found", "text/plain", "not found\n".to_owned()),
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    conn.flush()
}

/// Answers `/tunnels...`: asks every worker, waiting at most [`inspect::INSPECT_TIMEOUT`] for
/// each.
fn tunnels(
    path: &str,
    workers: &[UnboundedSender<Message>],
    loopback: bool,
) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain";
    if !loopback {
        return (
            "403 Forbidden",
            TEXT,
            "tunnel views are served only on a loopback admin address\n".into(),
        );
    }
    let (host, limit) = match inspect::parse(path) {
        Ok(Query::List { limit }) => (None, limit),
        Ok(Query::Host(h)) => (Some(h), 1),
        Err(BadQuery::BadLimit) => {
            let why = format!("limit must be 1 to {}\n", inspect::MAX_LIST);
            return ("400 Bad Request", TEXT, why);
        }
        Err(BadQuery::BadHost) => return ("400 Bad Request", TEXT, "not a host name\n".into()),
        Err(BadQuery::NotTunnels) => return ("404 Not Found", TEXT, "not found\n".into()),
    };
    let mut waiting = Vec::new();
    for w in workers {
        let (reply, answer) = std::sync::mpsc::sync_channel::<Answer>(1);
        let q = Inspect {
            host: host.clone(),
            limit,
            reply,
        };
        if w.send(Message::Inspect(q)).is_ok() {
            waiting.push(answer);
        }
    }
    let deadline = std::time::Instant::now() + inspect::INSPECT_TIMEOUT;
    let (mut views, mut total, mut unanswered) = (Vec::new(), 0, workers.len() - waiting.len());
    for answer in waiting {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match answer.recv_timeout(left) {
            Ok(a) => {
                total += a.total;
                views.extend(a.views);
            }
            Err(_) => unanswered += 1,
        }
    }
    let views = inspect::rank(views, limit);
    if host.is_some() {
        return match views.first() {
            Some(v) => (
                "200 OK",
                "application/json",
                serde_json::to_string(v).unwrap_or_default() + "\n",
            ),
            None => (
                "404 Not Found",
                TEXT,
                "no tunnel serves that host here\n".into(),
            ),
        };
    }
    let body = Listing {
        truncated: total > views.len(),
        tunnels: &views,
        workers_unanswered: unanswered,
    }
    .render();
    ("200 OK", "application/json", body)
}
