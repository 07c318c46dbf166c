//! The browsers: connections to an edge (or any target) that start with a real ClientHello
//! for a chosen host name, then speak [`crate::wire`] either as raw bytes or inside a full
//! rustls session.

use anyhow::Result;
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::creds::host_name;
use crate::tls::{Kx, client_config, client_hello};

/// Time allowed to connect (and, in TLS mode, to finish the handshake).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where browsers go and how they speak.
#[derive(Debug, Clone, clap::Args)]
pub struct BrowserArgs {
    /// Address the browsers connect to (the edge, nginx, SniTun, or the origin directly).
    #[arg(long, value_name = "ADDR")]
    pub target: SocketAddr,
    /// Host name pattern; `{}` becomes the host index.
    #[arg(long, default_value = "t{}.bench.test", value_name = "PATTERN")]
    pub hosts: String,
    /// How many host names the browsers spread over (round robin).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub host_count: usize,
    /// A full rustls session to the origin instead of raw bytes after the hello.
    #[arg(long)]
    pub tls: bool,
    /// Key exchange the browsers offer.
    #[arg(long, value_enum, default_value = "x25519")]
    pub kx: Kx,
}

/// What every browser connection needs, built once.
#[derive(Clone)]
pub struct Browsers {
    target: SocketAddr,
    names: Arc<[String]>,
    hellos: Arc<[Vec<u8>]>,
    connector: Option<TlsConnector>,
}

impl std::fmt::Debug for Browsers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browsers")
            .field("target", &self.target)
            .field("hosts", &self.names.len())
            .field("tls", &self.connector.is_some())
            .finish()
    }
}

impl Browsers {
    /// Builds the hellos (raw mode) or the TLS client (TLS mode).
    pub fn new(a: &BrowserArgs) -> Result<Self> {
        let config = client_config(a.kx)?;
        let names: Vec<String> = (0..a.host_count.max(1))
            .map(|i| host_name(&a.hosts, i))
            .collect();
        let hellos = if a.tls {
            Vec::new()
        } else {
            names
                .iter()
                .map(|n| client_hello(&config, n))
                .collect::<Result<_>>()?
        };
        Ok(Self {
            target: a.target,
            names: names.into(),
            hellos: hellos.into(),
            connector: a.tls.then(|| TlsConnector::from(config)),
        })
    }

    /// Host names in use.
    pub fn host_count(&self) -> usize {
        self.names.len()
    }

    /// Bytes of the raw-mode hello for host `i` (0 in TLS mode).
    pub fn hello_len(&self, i: usize) -> usize {
        self.hellos.get(i).map_or(0, Vec::len)
    }

    /// Opens a connection for host `i` and sends `first` (a request) right behind the hello:
    /// in raw mode in the same write; in TLS mode once the handshake is done.
    pub async fn open(&self, i: usize, first: &[u8]) -> std::io::Result<Conn> {
        self.open_from(i, first, None).await
    }

    /// The same from a chosen local address (the handover scenario picks the accepting worker
    /// that way).
    pub async fn open_from(
        &self,
        i: usize,
        first: &[u8],
        local: Option<SocketAddr>,
    ) -> std::io::Result<Conn> {
        let i = i % self.names.len();
        let fut = async {
            let tcp = match local {
                None => TcpStream::connect(self.target).await?,
                Some(l) => {
                    let s = TcpSocket::new_v4()?;
                    s.set_reuseaddr(true)?;
                    s.bind(l)?;
                    s.connect(self.target).await?
                }
            };
            tcp.set_nodelay(true)?;
            match &self.connector {
                None => {
                    let mut tcp = tcp;
                    let hello = &self.hellos[i];
                    if first.is_empty() {
                        tcp.write_all(hello).await?;
                    } else {
                        let mut v = Vec::with_capacity(hello.len() + first.len());
                        v.extend_from_slice(hello);
                        v.extend_from_slice(first);
                        tcp.write_all(&v).await?;
                    }
                    Ok(Conn::Raw(tcp))
                }
                Some(c) => {
                    let name = ServerName::try_from(self.names[i].clone())
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    let mut tls = c.connect(name, tcp).await?;
                    if !first.is_empty() {
                        tls.write_all(first).await?;
                        tls.flush().await?;
                    }
                    Ok(Conn::Tls(Box::new(tls)))
                }
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, fut)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))?
    }
}

/// A browser connection, raw or TLS.
#[derive(Debug)]
pub enum Conn {
    /// Raw bytes after the hello.
    Raw(TcpStream),
    /// A rustls session.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Raw(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        }
    }

    /// Makes the close a reset (no TIME_WAIT; the 4-tuple is free at once).
    pub fn reset_on_close(&self) {
        let _ = self.tcp().set_zero_linger();
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Raw(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Raw(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Raw(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Raw(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
