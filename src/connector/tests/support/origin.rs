//! Home servers for tests: HTTPS or plain HTTP, with or without a PROXY v2 header in front,
//! recording every request.
//!
//! `GET /` answers `hello from the origin`, `GET /big/<MiB>` the byte pattern `i % 251`,
//! `/upgrade-refused` a 400 (the connection stays open), `/upgrade-accepted` a 101 and then
//! echoes every byte until the client closes.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use sluice_proto::peek::Peek;
use sluice_proto::proxy::peek_proxy_header;

/// What one request looked like.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The PROXY header's source address, if one came first.
    pub proxy_source: Option<SocketAddr>,
    /// The request head, as text.
    pub head: String,
}

/// A running origin; stops on drop.
pub struct Origin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// HTTPS with `tls`, or plain HTTP with `None`; a PROXY header is read if one comes first.
    pub async fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(listener, tls)
    }

    pub fn start_on(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (s, c) = (seen.clone(), connections.clone());
        let task = tokio::spawn(async move {
            let acceptor = tls.map(TlsAcceptor::from);
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (s, acceptor) = (s.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(Duration::from_secs(120), serve(stream, acceptor, s))
                            .await;
                });
            }
        });
        Self {
            addr,
            seen,
            connections,
            task,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn serve(
    mut stream: TcpStream,
    acceptor: Option<TlsAcceptor>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> std::io::Result<()> {
    let proxy_source = read_proxy(&mut stream).await?;
    match acceptor {
        Some(a) => {
            let tls = a.accept(stream).await?;
            answer(tls, proxy_source, seen).await
        }
        None => answer(stream, proxy_source, seen).await,
    }
}

async fn read_proxy(stream: &mut TcpStream) -> std::io::Result<Option<SocketAddr>> {
    let mut buf = vec![0u8; 2100];
    for _ in 0..1000 {
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
            Ok(Peek::NeedMore) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }
    Err(std::io::ErrorKind::TimedOut.into())
}

/// Answers requests on one connection until the client closes it (keep-alive).
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    proxy_source: Option<SocketAddr>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        seen.lock().unwrap().push(Seen {
            proxy_source,
            head: head.clone(),
        });
        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
        let close = head.to_ascii_lowercase().contains("connection: close");
        if path == "/upgrade-refused" {
            let body = b"no upgrades here\n";
            let h = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            s.write_all(h.as_bytes()).await?;
            s.write_all(body).await?;
        } else if path == "/upgrade-accepted" {
            s.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n",
            )
            .await?;
            s.write_all(&buf).await?;
            s.flush().await?;
            return echo(s).await;
        } else if let Some(n) = path
            .strip_prefix("/big/")
            .and_then(|n| n.parse::<usize>().ok())
        {
            let len = n * 1024 * 1024;
            let h = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n");
            s.write_all(h.as_bytes()).await?;
            let block: Vec<u8> = (0..251 * 256).map(|i| (i % 251) as u8).collect();
            let mut sent = 0;
            while sent < len {
                let k = (len - sent).min(block.len());
                s.write_all(&block[..k]).await?;
                sent += k;
            }
        } else {
            let body = b"hello from the origin\n";
            let h = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            s.write_all(h.as_bytes()).await?;
            s.write_all(body).await?;
        }
        s.flush().await?;
        if close {
            return s.shutdown().await;
        }
    }
}

/// After a protocol switch: every byte back, until the client closes.
async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> std::io::Result<()> {
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return s.shutdown().await;
        }
        s.write_all(&chunk[..n]).await?;
        s.flush().await?;
    }
}
