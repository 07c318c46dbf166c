//! The TCP origin: what a home server would be behind nginx, SniTun's client or our connector.
//! It speaks [`crate::wire`], in raw mode (the browser's ClientHello first, skipped) or as a
//! rustls TLS server. One `SO_REUSEPORT` listener per load thread.

use anyhow::{Context, Result};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::wire::Responder;

/// Bytes per read from a browser.
const READ_BUF: usize = 64 * 1024;
/// Backlog of each listener.
const BACKLOG: i32 = 4096;

/// Binds `threads` listeners on one address with `SO_REUSEPORT` (port 0: the first picks it).
pub fn bind(addr: SocketAddr, threads: usize) -> Result<Vec<std::net::TcpListener>> {
    let mut out: Vec<std::net::TcpListener> = Vec::new();
    let mut addr = addr;
    for _ in 0..threads {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        s.set_nonblocking(true)?;
        s.bind(&addr.into())
            .with_context(|| format!("binding {addr}"))?;
        s.listen(BACKLOG)?;
        let l: std::net::TcpListener = s.into();
        addr = l.local_addr()?;
        out.push(l);
    }
    Ok(out)
}

/// Accepts and serves connections on `listener` for `duration`.
pub async fn run(
    listener: std::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    duration: Duration,
) -> Result<()> {
    let listener = TcpListener::from_std(listener)?;
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let deadline = tokio::time::sleep(duration);
    tokio::pin!(deadline);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    // Out of descriptors: back off rather than spin.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = &mut deadline => return Ok(()),
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::task::spawn_local(async move {
            match acceptor {
                None => {
                    let _ = serve(stream, Responder::new(true)).await;
                }
                Some(a) => {
                    if let Ok(s) = a.accept(stream).await {
                        let _ = serve(s, Responder::new(false)).await;
                    }
                }
            }
        });
    }
}

/// Answers requests on one connection until it closes or a request asks to close.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    mut r: Responder,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        r.handle_input(&buf[..n])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        while let Some(chunk) = r.next_chunk(usize::MAX) {
            s.write_all(chunk).await?;
        }
        // A TLS stream keeps the answer's last record buffered until flushed.
        s.flush().await?;
        if r.wants_close() {
            s.shutdown().await?;
            // Wait for the browser's end, so the close is orderly on both sides.
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while s.read(&mut buf).await.unwrap_or(0) > 0 {}
            })
            .await;
            return Ok(());
        }
    }
}
