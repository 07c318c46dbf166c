//! A new connection: what is it, and where does it go?
//!
//! Within the hello timeout: an optional PROXY header (required on trusted listeners), then
//! the first byte decides: `0x16` is a browser's TLS ClientHello, read until complete and
//! routed by its SNI; `g` starts a tunnel's Fernet token (single-port and peer listeners);
//! anything else is closed. Refusals of TLS clients carry a fatal TLS alert (the record layer
//! is known by then), so curl and browsers show "unrecognized name" rather than a reset.

use bytes::{Buf, Bytes, BytesMut};
use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;
use tracing::{Instrument, debug, debug_span};

use sluice_proto::Hostname;
use sluice_proto::peek::Peek;
use sluice_proto::proxy::peek_proxy_header;
use sluice_proto::sni::{AlertDescription, HelloError, fatal_alert, peek_client_hello};

use super::{Worker, channel, tunnel};
use crate::io;
use crate::listener::ListenerKind;
use crate::message::{Handover, Message};
use crate::metrics::{Refusal, WorkerMetrics};

/// Most workers a connection visits (routes can move while it travels).
const MAX_HOPS: u8 = 2;
/// Room beyond the hello cap for record headers and a PROXY header.
const PREAMBLE_SLACK: usize = 4096;
/// Most reads a preamble may take. The hello is re-parsed after each read, and a hello cut in
/// tiny records costs more per parse as it grows: bounding the reads bounds the work. A
/// ClientHello dribbled one byte per segment still fits if it is under 1 KiB.
const MAX_PREAMBLE_READS: usize = 1024;
/// How long an alert may take to write before the connection is just closed.
const ALERT_TIMEOUT: Duration = Duration::from_secs(1);

/// Counts a connection as pending (in its hello or handshake) while alive.
pub(super) struct Pending(Rc<Worker>);

impl Pending {
    fn new(w: &Rc<Worker>) -> Self {
        w.pending.set(w.pending.get() + 1);
        Self(w.clone())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.pending.set(self.0.pending.get() - 1);
    }
}

/// Why a connection is turned away, and what it is told.
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) reason: Refusal,
    pub(super) alert: Option<(AlertDescription, u16)>,
}

impl Refused {
    fn silent(reason: Refusal) -> Self {
        Self {
            reason,
            alert: None,
        }
    }

    pub(super) fn tls(reason: Refusal, alert: AlertDescription, record_version: u16) -> Self {
        Self {
            reason,
            alert: Some((alert, record_version)),
        }
    }
}

enum Preamble {
    Browser {
        buf: BytesMut,
        sni: Option<Hostname>,
        record_version: u16,
        caller: IpAddr,
    },
    Tunnel {
        buf: BytesMut,
        caller: IpAddr,
    },
}

/// Serves one accepted connection to its end.
pub(super) async fn handle(w: Rc<Worker>, stream: TcpStream, peer: SocketAddr, kind: ListenerKind) {
    let span = debug_span!("conn", %peer, sni = tracing::field::Empty);
    async move {
        let _ = stream.set_nodelay(true);
        let mut stream = stream;
        let pending = Pending::new(&w);
        let caller = peer.ip().to_canonical();
        let hello_timeout = w.config.timeouts.hello;
        let preamble = match monoio::time::timeout(
            hello_timeout,
            read_preamble(&w, &mut stream, kind, caller),
        )
        .await
        {
            Ok(Ok(p)) => p,
            Ok(Err(refused)) => return refuse(&w, stream, refused).await,
            Err(_) => return refuse(&w, stream, Refused::silent(Refusal::HelloTimeout)).await,
        };
        match preamble {
            Preamble::Browser {
                buf,
                sni,
                record_version,
                caller,
            } => {
                drop(pending);
                if let Some(name) = &sni {
                    tracing::Span::current().record("sni", tracing::field::display(name));
                }
                route(w, stream, buf.freeze(), sni, record_version, caller, 0).await;
            }
            Preamble::Tunnel { buf, caller } => {
                tunnel::accept(w, stream, buf, caller, peer, pending).await;
            }
        }
    }
    .instrument(span)
    .await
}

async fn read_preamble(
    w: &Worker,
    stream: &mut TcpStream,
    kind: ListenerKind,
    mut caller: IpAddr,
) -> Result<Preamble, Refused> {
    let max_hello = w.config.limits.max_hello_len;
    let cap = max_hello + PREAMBLE_SLACK;
    let mut buf = BytesMut::with_capacity(2048);
    let mut proxy_pending = w.config.trust_proxy_protocol;
    let mut reads = 0;
    loop {
        if proxy_pending {
            match peek_proxy_header(&buf) {
                Ok(Peek::Complete(h)) => {
                    if let Some(addrs) = h.addresses {
                        caller = addrs.source.ip().to_canonical();
                    }
                    buf.advance(h.len);
                    proxy_pending = false;
                    continue;
                }
                Ok(Peek::NeedMore) => {}
                Ok(Peek::NotThisProtocol) | Err(_) => {
                    return Err(Refused::silent(Refusal::BadProxyHeader));
                }
            }
        } else if let Some(&first) = buf.first() {
            let tunnels_here = matches!(
                kind,
                ListenerKind::Peer | ListenerKind::Public { tunnels: true }
            );
            match first {
                0x16 if kind == ListenerKind::Peer => {
                    return Err(Refused::silent(Refusal::TlsOnPeerPort));
                }
                0x16 => match peek_client_hello(&buf, max_hello) {
                    Ok(Peek::Complete(hello)) => {
                        return Ok(Preamble::Browser {
                            buf,
                            sni: hello.server_name,
                            record_version: hello.record_version,
                            caller,
                        });
                    }
                    Ok(Peek::NeedMore) => {}
                    Ok(Peek::NotThisProtocol) => return Err(Refused::silent(Refusal::NotTls)),
                    Err(e) => {
                        let reason = match e {
                            HelloError::TooLarge { .. } => Refusal::HelloTooLarge,
                            _ => Refusal::MalformedHello,
                        };
                        return Err(Refused::tls(reason, e.alert(), record_version(&buf)));
                    }
                },
                b'g' if tunnels_here => return Ok(Preamble::Tunnel { buf, caller }),
                b'g' => return Err(Refused::silent(Refusal::TunnelOnPublicPort)),
                _ => return Err(Refused::silent(Refusal::NotTls)),
            }
        }
        if buf.len() >= cap {
            return Err(Refused::tls(
                Refusal::HelloTooLarge,
                AlertDescription::HandshakeFailure,
                record_version(&buf),
            ));
        }
        reads += 1;
        if reads > MAX_PREAMBLE_READS {
            return Err(Refused::silent(Refusal::HelloTrickled));
        }
        buf.reserve(2048.min(cap - buf.len()).max(512));
        let (res, back) = io::read_append(stream, buf).await;
        buf = back;
        match res {
            Ok(0) | Err(_) => return Err(Refused::silent(Refusal::ClosedEarly)),
            Ok(_) => {}
        }
    }
}

/// The record version of a buffer that starts with a TLS record (TLS 1.0 if unreadable).
fn record_version(buf: &[u8]) -> u16 {
    match buf {
        [0x16, major, minor, ..] => u16::from_be_bytes([*major, *minor]),
        _ => 0x0301,
    }
}

/// Sends a browser to its tunnel: here, or on the worker that owns it.
pub(super) async fn route(
    w: Rc<Worker>,
    stream: TcpStream,
    preamble: Bytes,
    sni: Option<Hostname>,
    record_version: u16,
    caller: IpAddr,
    hops: u8,
) {
    let Some(sni) = sni else {
        return refuse(
            &w,
            stream,
            Refused::tls(
                Refusal::NoSni,
                AlertDescription::UnrecognizedName,
                record_version,
            ),
        )
        .await;
    };
    if w.draining.is_set() {
        return refuse(&w, stream, Refused::silent(Refusal::ShuttingDown)).await;
    }
    let unknown = || {
        Refused::tls(
            Refusal::UnknownHost,
            AlertDescription::UnrecognizedName,
            record_version,
        )
    };
    match w.lookup(&sni) {
        Some(r) if r.worker == w.id => match r.tunnel.and_then(|k| w.tunnel(k)) {
            // A task of its own, sized for proxying, not for reading hellos and handshakes.
            Some(t) => {
                monoio::spawn(
                    channel::serve(w, t, stream, preamble, caller, record_version)
                        .in_current_span(),
                );
            }
            None => refuse(&w, stream, unknown()).await,
        },
        Some(r) if hops < MAX_HOPS => {
            debug!(to = r.worker, %sni, "handing over to the tunnel's worker");
            let handover = Handover {
                stream: io::into_std(stream),
                preamble,
                caller,
                sni,
                record_version,
                hops: hops + 1,
            };
            match w.send_to(r.worker, Message::Handover(handover)) {
                Ok(()) => WorkerMetrics::inc(&w.m().handovers_out),
                // That worker is gone (shutting down): the connection closes with the message.
                Err(_) => w.m().refused(Refusal::ShuttingDown),
            }
        }
        _ => refuse(&w, stream, unknown()).await,
    }
}

/// A connection another worker read the hello of.
pub(super) async fn take_handover(w: Rc<Worker>, h: Handover) {
    let span = debug_span!("conn", peer = %h.caller, sni = %h.sni, hops = h.hops);
    async move {
        match TcpStream::from_std(h.stream) {
            Ok(stream) => {
                route(
                    w,
                    stream,
                    h.preamble,
                    Some(h.sni),
                    h.record_version,
                    h.caller,
                    h.hops,
                )
                .await
            }
            Err(e) => debug!(error = %e, "handed-over socket unusable"),
        }
    }
    .instrument(span)
    .await
}

/// Counts the refusal, sends the alert if there is one, and closes.
pub(super) async fn refuse(w: &Worker, mut stream: TcpStream, refused: Refused) {
    debug!(reason = refused.reason.label(), "refused");
    w.m().refused(refused.reason);
    if let Some((alert, version)) = refused.alert {
        let bytes = fatal_alert(alert, version).to_vec();
        let _ = monoio::time::timeout(ALERT_TIMEOUT, async {
            let (res, _) = stream.write_all(bytes).await;
            if res.is_ok() {
                let _ = stream.shutdown().await;
            }
        })
        .await;
    }
}
