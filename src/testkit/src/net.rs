//! A TCP echo server counting its connections, a bounded read for raw-protocol tests, and a
//! plain HTTP GET for admin endpoints.
//!
//! ```
//! use std::io::{Read as _, Write as _};
//! let echo = sluice_testkit::EchoServer::start().unwrap();
//! let mut s = std::net::TcpStream::connect(echo.addr).unwrap();
//! s.write_all(b"ping").unwrap();
//! let mut back = [0u8; 4];
//! s.read_exact(&mut back).unwrap();
//! assert_eq!(&back, b"ping");
//! assert_eq!(echo.accepted(), 1);
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;

use crate::error::{IoContext as _, Result};

/// How long one echoed connection may idle before the server closes it.
const IDLE: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Counts {
    accepted: AtomicUsize,
    closed: AtomicUsize,
}

/// An echo server on 127.0.0.1:0, in a background thread with its own runtime: every byte it
/// receives goes back. It stops on drop (its port then refuses connections).
#[derive(Debug)]
pub struct EchoServer {
    /// Where it listens.
    pub addr: SocketAddr,
    counts: Arc<Counts>,
    _server: ServerThread,
}

impl EchoServer {
    /// Starts one.
    pub fn start() -> Result<Self> {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .context(|| "binding the echo server".to_owned())?;
        listener
            .set_nonblocking(true)
            .context(|| "making the echo listener non-blocking".to_owned())?;
        let addr = listener
            .local_addr()
            .context(|| "the echo server's address".to_owned())?;
        let counts = Arc::new(Counts::default());
        let thread_counts = Arc::clone(&counts);
        let server = ServerThread::spawn("sluice-testkit-echo", move |stop| {
            serve(listener, thread_counts, stop)
        })?;
        Ok(Self {
            addr,
            counts,
            _server: server,
        })
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.counts.accepted.load(Ordering::SeqCst)
    }

    /// Connections that have ended (the client closed, or a read or write failed).
    pub fn closed(&self) -> usize {
        self.counts.closed.load(Ordering::SeqCst)
    }
}

/// A background thread that runs one server on a current-thread tokio runtime of its own,
/// handing it a stop signal. Dropping it sends the signal and joins the thread; the runtime
/// then drops, which cancels every task the server spawned.
#[derive(Debug)]
pub(crate) struct ServerThread {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Runs `server(stop)` on a thread named `name`; `server` builds its future on that thread,
    /// so the future need not be `Send`.
    pub(crate) fn spawn<F>(
        name: &str,
        server: impl FnOnce(oneshot::Receiver<()>) -> F + Send + 'static,
    ) -> Result<Self>
    where
        F: std::future::Future<Output = ()>,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context(|| format!("the runtime of {name}"))?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || runtime.block_on(server(stop_rx)))
            .context(|| format!("starting {name}"))?;
        Ok(Self {
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    counts: Arc<Counts>,
    mut stop: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((mut s, _)) = accepted else {
                    // EMFILE and friends: back off a little instead of spinning.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                counts.accepted.fetch_add(1, Ordering::SeqCst);
                let counts = Arc::clone(&counts);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(Ok(n)) = tokio::time::timeout(IDLE, s.read(&mut buf)).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    counts.closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        }
    }
}

/// Reads from `stream` until what was read contains `want`, the stream ends or fails, or
/// `timeout` passes; returns what was read (the caller asserts on it).
pub async fn read_until<S: AsyncRead + Unpin>(
    stream: &mut S,
    want: &[u8],
    timeout: Duration,
) -> Vec<u8> {
    let mut got = Vec::new();
    let read = async {
        let mut chunk = [0u8; 4096];
        while want.is_empty() || !got.windows(want.len()).any(|w| w == want) {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(timeout, read).await;
    got
}

/// A plain HTTP/1.1 `GET path` to `addr` (an admin endpoint: `/metrics`, `/healthz`): the whole
/// response, head and body, as text. Connecting, writing and reading each get `timeout`.
pub fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<String> {
    use std::io::{Read as _, Write as _};
    let what = || format!("GET {path} from {addr}");
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout).context(what)?;
    s.set_read_timeout(Some(timeout)).context(what)?;
    s.set_write_timeout(Some(timeout)).context(what)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .context(what)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).context(what)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The sum over all label sets of the Prometheus sample `name` in `metrics` (the text of a
/// `/metrics` page), or `None` when no sample has that name.
pub fn metric_sum(metrics: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        if let Some(v) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
            *found.get_or_insert(0.0) += v;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_sums_add_every_label_set_and_skip_longer_names() {
        let page = "# HELP x_total X.\nx_total{worker=\"0\"} 2\nx_total{worker=\"1\"} 3\n\
                    x_total_more 7\ny 1\n";
        assert_eq!(metric_sum(page, "x_total"), Some(5.0));
        assert_eq!(metric_sum(page, "y"), Some(1.0));
        assert_eq!(metric_sum(page, "z"), None);
    }
}
