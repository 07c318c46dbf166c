//! The demo's home server: a small HTTPS origin that expects a PROXY v2 header first, so it
//! can tell who the caller is.
//!
//! - `GET /` a greeting naming the caller's address;
//! - `GET /big/<MiB>` `<MiB>` MiB (at most 1024) of the byte pattern `i % 251`;
//! - anything else `404`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::debug;

use sluice_proto::peek::Peek;
use sluice_proto::proxy::peek_proxy_header;

const MAX_BIG_MIB: usize = 1024;
const MAX_HEAD: usize = 16 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Serves HTTPS on `listener` with `tls` until the task is dropped.
pub(crate) async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if let Err(e) = tokio::time::timeout(TIMEOUT, handle(stream, peer, acceptor)).await {
                debug!(%peer, "demo origin: {e}");
            }
        });
    }
}

async fn handle(
    mut stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
) -> std::io::Result<()> {
    let caller = read_proxy_header(&mut stream).await?;
    let mut tls = acceptor.accept(stream).await?;
    let Some(path) = read_request_path(&mut tls).await? else {
        return Ok(());
    };
    let who = match caller {
        Some(addr) => format!("{} (from the connector's PROXY v2 header)", addr.ip()),
        None => format!("unknown (no PROXY header; the TCP peer is {peer})"),
    };
    if path == "/" {
        let body = format!(
            "Hello from the Sluice demo origin.\n\
             Your address: {who}\n\
             Your TLS session ends here, in the home server: the edge only routed it by its SNI.\n\
             Try /big/64 for 64 MiB through the tunnel.\n"
        );
        return respond(&mut tls, "200 OK", "text/plain", body.as_bytes()).await;
    }
    if let Some(n) = path
        .strip_prefix("/big/")
        .and_then(|n| n.parse::<usize>().ok())
        && n <= MAX_BIG_MIB
    {
        let len = n * 1024 * 1024;
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
        );
        tls.write_all(head.as_bytes()).await?;
        let block: Vec<u8> = (0..251 * 256).map(|i| (i % 251) as u8).collect();
        let mut sent = 0;
        while sent < len {
            let n = (len - sent).min(block.len());
            tls.write_all(&block[..n]).await?;
            sent += n;
        }
        return tls.shutdown().await;
    }
    respond(&mut tls, "404 Not Found", "text/plain", b"not found\n").await
}

/// Reads a PROXY header if one comes first; `None` if the stream starts with anything else.
async fn read_proxy_header(stream: &mut TcpStream) -> std::io::Result<Option<SocketAddr>> {
    let mut buf = vec![0u8; sluice_proto::limits::MAX_PROXY_V2_LEN];
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
            Ok(Peek::NeedMore) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }
}

async fn read_request_path<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Option<String>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = s.read(&mut byte).await?;
        if n == 0 {
            return Ok(None);
        }
        head.extend_from_slice(&byte[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let text = String::from_utf8_lossy(line);
    Ok(text.split(' ').nth(1).map(str::to_owned))
}

async fn respond<S: AsyncWrite + Unpin>(
    s: &mut S,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    s.shutdown().await
}
