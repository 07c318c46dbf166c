//! A new connection: what is it, and where does it go?
//!
//! Within the hello timeout: an optional PROXY header (required on trusted listeners), then
//! the first byte decides: `0x16` is a browser's TLS ClientHello, read until complete and
//! routed by its SNI; `g` starts a tunnel's Fernet token (single-port and tunnel listeners);
//! anything else is closed. Refusals of TLS clients carry a fatal TLS alert (the record layer
//! is known by then), so curl and browsers show "unrecognized name" rather than a reset.

use bytes::{Buf, Bytes, BytesMut};
use monoio::net::TcpStream;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use tracing::{Instrument, debug, debug_span};

use sluice_proto::Hostname;
use sluice_proto::limits::MAX_PROXY_V2_LEN;
use sluice_proto::peek::Peek;
use sluice_proto::preamble::{self, Rules, classify};
use sluice_proto::sni::AlertDescription;

use super::admission::{Pending, Refused, refuse};
use super::{Worker, channel, forward, tunnel};
use crate::io;
use crate::listener::ListenerKind;
use crate::message::{Handover, Message};
use crate::metrics::{Refusal, WorkerMetrics};
use crate::quota::Held;
use crate::routes::Found;

/// Most workers a connection visits (routes can move while it travels).
const MAX_HOPS: u8 = 2;
/// Most reads a preamble may take. The hello is re-parsed after each read, and a hello cut in
/// tiny records costs more per parse as it grows: bounding the reads bounds the work. A
/// ClientHello dribbled one byte per segment still fits if it is under 1 KiB.
const MAX_PREAMBLE_READS: usize = 1024;

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
pub(super) async fn handle(
    w: Rc<Worker>,
    stream: TcpStream,
    remote: SocketAddr,
    kind: ListenerKind,
    held: Held,
) {
    let span = debug_span!("conn", %remote, sni = tracing::field::Empty);
    async move {
        let _ = stream.set_nodelay(true);
        let mut stream = stream;
        let pending = Pending::new(&w, held);
        let caller = remote.ip().to_canonical();
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
                tunnel::accept(w, stream, buf, caller, remote, pending).await;
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
    caller: IpAddr,
) -> Result<Preamble, Refused> {
    let rules = Rules {
        trust_proxy: kind.trust_proxy,
        browsers: kind.browsers,
        tunnels: kind.tunnels,
        max_hello_len: w.config.limits.max_hello_len,
    };
    let mut buf = BytesMut::with_capacity(2048);
    let mut reads = 0;
    loop {
        match classify(&buf, &rules) {
            Ok(Peek::Complete(preamble::Preamble::Browser {
                start,
                sni,
                record_version,
                caller: proxied,
            })) => {
                buf.advance(start);
                return Ok(Preamble::Browser {
                    buf,
                    sni,
                    record_version,
                    caller: proxied.unwrap_or(caller),
                });
            }
            Ok(Peek::Complete(preamble::Preamble::Tunnel {
                start,
                caller: proxied,
            })) => {
                buf.advance(start);
                return Ok(Preamble::Tunnel {
                    buf,
                    caller: proxied.unwrap_or(caller),
                });
            }
            Ok(Peek::NeedMore | Peek::NotThisProtocol) => {}
            Err(r) => return Err(refusal(r)),
        }
        reads += 1;
        if reads > MAX_PREAMBLE_READS {
            return Err(Refused::silent(Refusal::HelloTrickled));
        }
        // The cap counts after a PROXY header, which is at most MAX_PROXY_V2_LEN.
        let room = preamble::cap(&rules) + MAX_PROXY_V2_LEN - buf.len();
        buf.reserve(2048.min(room).max(512));
        let (res, back) = io::read_append(stream, buf).await;
        buf = back;
        WorkerMetrics::inc(&w.m().preamble_reads);
        match res {
            Ok(0) | Err(_) => return Err(Refused::silent(Refusal::ClosedEarly)),
            Ok(_) => {}
        }
    }
}

/// What a refused preamble is told.
fn refusal(r: preamble::Refusal) -> Refused {
    use preamble::Refusal as R;
    match r {
        R::BadProxyHeader => Refused::silent(Refusal::BadProxyHeader),
        R::TlsOnTunnelPort => Refused::silent(Refusal::TlsOnTunnelPort),
        R::TunnelOnBrowserPort => Refused::silent(Refusal::TunnelOnPublicPort),
        R::NotTls => Refused::silent(Refusal::NotTls),
        R::HelloTooLarge {
            alert,
            record_version,
        } => Refused::tls(Refusal::HelloTooLarge, alert, record_version),
        R::MalformedHello {
            alert,
            record_version,
        } => Refused::tls(Refusal::MalformedHello, alert, record_version),
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
        Some(Found::Local(r)) if r.worker == w.id => match r.tunnel.and_then(|k| w.tunnel(k)) {
            // A task of its own, sized for proxying, not for reading hellos and handshakes.
            Some(t) => {
                monoio::spawn(
                    channel::serve(w, t, stream, preamble, caller, record_version)
                        .in_current_span(),
                );
            }
            None => refuse(&w, stream, unknown()).await,
        },
        Some(Found::Local(r)) if hops < MAX_HOPS => {
            debug!(to = r.worker, %sni, "handing over to the tunnel's worker");
            let handover = Handover {
                stream: io::into_std(stream),
                preamble,
                caller,
                sni,
                record_version,
                hops: hops + 1,
            };
            // Counted before the message leaves: the owning worker may serve the browser whole
            // before this thread runs again, and a reader of the count must not see it short.
            WorkerMetrics::inc(&w.m().handovers_out);
            if w.send_to(r.worker, Message::Handover(handover)).is_err() {
                // That worker is gone (shutting down): the connection closes with the message.
                w.m()
                    .handovers_out
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                w.m().refused(Refusal::ShuttingDown);
            }
        }
        Some(Found::Remote(r)) => {
            forward::forward(w, stream, preamble, caller, record_version, r).await
        }
        _ => refuse(&w, stream, unknown()).await,
    }
}

/// A connection another worker read the hello of.
pub(super) async fn take_handover(w: Rc<Worker>, h: Handover) {
    let span = debug_span!("conn", caller = %h.caller, sni = %h.sni, hops = h.hops);
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
