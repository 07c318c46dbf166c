//! Writing segments in order across partial vectored writes.

use bytes::{Buf, Bytes};
use std::collections::VecDeque;
use std::io::{self, IoSlice};

/// Slices handed to one vectored write (under every platform's `IOV_MAX`).
const WRITE_SLICES: usize = 64;

/// Segments to write in order (a [`crate::mux::Transmit`]'s, or a [`super::Batch`]'s), and how
/// far the writes have got. A vectored write may take any prefix: [`Self::advance`] by what it
/// took, and write [`Self::slices`] again until [`Self::is_empty`].
#[derive(Debug, Default)]
pub struct WriteCursor {
    segments: VecDeque<Bytes>,
    len: usize,
}

impl WriteCursor {
    /// A cursor at the start of `segments` (empty ones are dropped).
    pub fn new(segments: Vec<Bytes>) -> Self {
        // `From<Vec>` keeps the vector's allocation: no copy per write.
        let mut segments = VecDeque::from(segments);
        segments.retain(|s| !s.is_empty());
        let len = segments.iter().map(Bytes::len).sum();
        Self { segments, len }
    }

    /// Appends segments behind what is left.
    pub fn extend(&mut self, segments: impl IntoIterator<Item = Bytes>) {
        for s in segments {
            if !s.is_empty() {
                self.len += s.len();
                self.segments.push_back(s);
            }
        }
    }

    /// Bytes left to write.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether everything was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The next segment to write.
    pub fn front(&self) -> Option<&Bytes> {
        self.segments.front()
    }

    /// The segments left, in order (for runtimes that build their own iovecs).
    pub fn segments(&self) -> impl Iterator<Item = &Bytes> {
        self.segments.iter()
    }

    /// Fills `out` with slices of what is left, in order; returns how many it filled.
    pub fn slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, seg) in out.iter_mut().zip(self.segments.iter()) {
            *slot = IoSlice::new(seg);
            n += 1;
        }
        n
    }

    /// Writes what is left with `write` (a non-blocking vectored write) until it is all out
    /// or the writer would block (`WouldBlock`, `Interrupted`: not an error, write again when
    /// the socket is writable). A writer that takes nothing fails with `WriteZero`.
    pub fn write_with(
        &mut self,
        mut write: impl FnMut(&[IoSlice<'_>]) -> io::Result<usize>,
    ) -> io::Result<()> {
        while !self.is_empty() {
            let mut slices = [IoSlice::new(&[]); WRITE_SLICES];
            let k = self.slices(&mut slices);
            match write(&slices[..k]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.advance(n),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Records that a write took the next `n` bytes (more than is left counts as all of it).
    pub fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let Some(front) = self.segments.front_mut() else {
                break;
            };
            let take = n.min(front.len());
            front.advance(take);
            self.len -= take;
            n -= take;
            if front.is_empty() {
                self.segments.pop_front();
            }
        }
    }
}
