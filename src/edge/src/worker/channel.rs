//! A browser connection proxied through a tunnel channel: two pumps, one per direction.
//!
//! - up (browser to tunnel): read the browser while the multiplexer's `can_send` allows, queue
//!   what was read as DATA. EOF or an error ends the channel both ways at once (SniTun has no
//!   half-close): CLOSE goes to the connector, what was still queued for the browser is
//!   dropped, and the down pump is woken to close the browser's socket.
//! - down (tunnel to browser): write what `recv` hands out, report it `consumed` once
//!   written (that is what returns flow-control credit to the tunnel), and close the browser
//!   when the channel ends: after the last byte when the connector closed it, at once (even
//!   in the middle of a write) when the multiplexer killed it (idle, overrun).
//!
//! Reads wait for readability before taking a buffer unless the last read filled one, so an
//! idle browser connection holds no buffer.

use bytes::{Bytes, BytesMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use sluice_proto::mux::OpenError;
use sluice_proto::mux::shell::recv_batch;
use sluice_proto::sni::AlertDescription;

use super::Worker;
use super::admission::{Refused, refuse};
use super::tunnel::{ChannelSlot, Tunnel};
use crate::io;
use crate::metrics::{ChannelEnd, Refusal, WorkerMetrics};
use crate::quota::Held;

/// Bytes of a browser read after it was idle.
const FIRST_READ: usize = 16 * 1024;
/// Bytes read from a browser at a time while it streams (one frame's payload at most).
const READ_CHUNK: usize = sluice_proto::limits::MAX_SEND_FRAME_PAYLOAD;
/// Bytes gathered for one vectored write to a browser.
const WRITE_BATCH: usize = 256 * 1024;
/// Most chunks in one vectored write.
const MAX_SEGMENTS: usize = 64;
/// How long closing the browser's side may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Counts a proxied browser connection while alive.
struct Connection(Rc<Worker>, #[allow(dead_code)] Held);

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.connections.set(self.0.connections.get() - 1);
        WorkerMetrics::gauge(&self.0.m().channels, -1);
    }
}

/// Proxies a browser whose hello is in `preamble` through tunnel `t`, until either side ends.
pub(super) async fn serve(
    w: Rc<Worker>,
    t: Rc<Tunnel>,
    stream: TcpStream,
    preamble: Bytes,
    caller: IpAddr,
    record_version: u16,
) {
    let Some(held) = w.quotas.connections.take() else {
        let r = Refused::tls(
            Refusal::ConnectionLimit,
            AlertDescription::InternalError,
            record_version,
        );
        return refuse(&w, stream, r).await;
    };
    let slot = match t.open(caller, preamble) {
        Ok(slot) => slot,
        Err(e) => {
            let r = match e {
                // No free id means a broken random source (never with StdRng); it refuses
                // like a full tunnel.
                OpenError::TooManyChannels | OpenError::NoFreeChannelId => Refused::tls(
                    Refusal::ChannelLimit,
                    AlertDescription::InternalError,
                    record_version,
                ),
                OpenError::TunnelClosed | OpenError::NotServer => Refused::tls(
                    Refusal::UnknownHost,
                    AlertDescription::UnrecognizedName,
                    record_version,
                ),
            };
            return refuse(&w, stream, r).await;
        }
    };
    w.connections.set(w.connections.get() + 1);
    let _connection = Connection(w.clone(), held);
    WorkerMetrics::gauge(&w.m().channels, 1);
    WorkerMetrics::inc(&w.m().browsers_accepted);

    let (rd, wr) = stream.into_split();
    let up = monoio::spawn(pump_up(w.clone(), t.clone(), slot.clone(), rd));
    pump_down(&w, &t, &slot, wr).await;
    // The down side is done: the up side must stop too.
    slot.source_done.set();
    up.await;
    t.detach(slot.handle);
    w.m()
        .channel_ended(slot.end.get().unwrap_or(ChannelEnd::TunnelEnded));
}

async fn pump_up(
    w: Rc<Worker>,
    t: Rc<Tunnel>,
    slot: Rc<ChannelSlot>,
    mut rd: OwnedReadHalf<TcpStream>,
) {
    let h = slot.handle;
    let mut hot = false;
    loop {
        if slot.source_done.is_set() {
            return;
        }
        if !t.with_mux(|m| m.can_send(h)) {
            monoio::select! {
                _ = slot.writable.wait() => continue,
                _ = slot.source_done.wait() => return,
            }
        }
        if !hot {
            let ready = monoio::select! {
                r = io::readable(&rd) => r,
                _ = slot.source_done.wait() => return,
            };
            if ready.is_err() {
                return t.browser_closed(&slot);
            }
        }
        // Most reads are small requests: start small, read big once a read fills the buffer.
        let size = if hot { READ_CHUNK } else { FIRST_READ };
        let buf = BytesMut::with_capacity(size);
        let (res, buf) = monoio::select! {
            r = rd.read(buf) => r,
            _ = slot.source_done.wait() => return,
        };
        match res {
            Ok(0) | Err(_) => return t.browser_closed(&slot),
            Ok(n) => {
                hot = n == size;
                WorkerMetrics::add(&w.m().bytes_to_tunnels, n);
                // A closed channel refuses the data; the down pump is ending it anyway.
                let _ = t.with_mux(|m| m.send(h, buf.freeze(), Instant::now()));
            }
        }
    }
}

async fn pump_down(
    w: &Worker,
    t: &Rc<Tunnel>,
    slot: &ChannelSlot,
    mut wr: OwnedWriteHalf<TcpStream>,
) {
    let h = slot.handle;
    let write_timeout = w.config.timeouts.write;
    loop {
        if t.ended.is_set() {
            return;
        }
        // Take what is queued, up to a batch, and write it with one vectored write.
        let batch = t.with_mux(|m| recv_batch(m, h, WRITE_BATCH, MAX_SEGMENTS));
        let (bytes, closed) = (batch.bytes, batch.closed);
        if !batch.is_empty() {
            let written = monoio::select! {
                r = monoio::time::timeout(write_timeout, io::write_all_segments(&mut wr, batch.segments)) => r,
                _ = t.ended.wait() => return,
                _ = slot.abort.wait() => return,
            };
            match written {
                Ok(Ok(())) => {
                    WorkerMetrics::add(&w.m().bytes_to_browsers, bytes);
                    t.with_mux(|m| m.consumed(h, bytes));
                }
                // A browser that fails or stops reading loses its channel, nobody else.
                _ => {
                    slot.ended(ChannelEnd::WriteFailed);
                    return t.with_mux(|m| m.close(h));
                }
            }
            continue;
        }
        if closed {
            if slot.abort.is_set() {
                // Killed: the browser must not take a cut-short answer for a whole one.
                return;
            }
            // Everything the tunnel sent is written: let the browser see a clean end.
            let _ = monoio::time::timeout(CLOSE_TIMEOUT, wr.shutdown()).await;
            return;
        }
        monoio::select! {
            _ = slot.readable.wait() => {}
            _ = t.ended.wait() => return,
        }
    }
}
