//! Taking what is queued for a channel's sink in one batch.

use bytes::Bytes;

use crate::mux::{ChannelHandle, Multiplexer, Recv};
use crate::random::Random;

/// What [`recv_batch`] took for one channel's sink.
#[derive(Debug, Default)]
pub struct Batch {
    /// The chunks, in order: write them with one vectored write.
    pub segments: Vec<Bytes>,
    /// Their total length: report it [`Multiplexer::consumed`] once written.
    pub bytes: usize,
    /// The channel is closed and this is the last of it (or the handle is stale): close the
    /// sink once the batch is written.
    pub closed: bool,
}

impl Batch {
    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }
}

/// Takes what is queued for `channel`'s sink, up to about `max_bytes` (a chunk is never split)
/// and at most `max_segments` chunks. An empty, open batch means: wait for
/// [`super::Waiters::readable`].
pub fn recv_batch<R: Random>(
    mux: &mut Multiplexer<R>,
    channel: ChannelHandle,
    max_bytes: usize,
    max_segments: usize,
) -> Batch {
    let mut batch = Batch::default();
    while batch.bytes < max_bytes && batch.segments.len() < max_segments.max(1) {
        match mux.recv(channel) {
            Recv::Data(data) => {
                batch.bytes += data.len();
                batch.segments.push(data);
            }
            Recv::Empty => break,
            Recv::Closed => {
                batch.closed = true;
                break;
            }
        }
    }
    batch
}
