//! Bounded readers over a handshake message that may be split across TLS records.
//!
//! [`Fragments`] stitches the record payloads into one byte stream without copying;
//! [`Reader`] is rustls' codec reader over it: every length prefix opens a sub-reader that
//! cannot read past that length, so a lying inner length is caught where it lies.
//!
//! The small reads are `#[inline(always)]`: they are most of a peek, and called from so many
//! places that LLVM otherwise keeps them out of line (callgrind: about 20% more instructions).

use super::Malformed;

const RECORD_HEADER_LEN: usize = 5;

/// The payloads of consecutive TLS records, read front to back as one stream.
///
/// The records are assumed already checked by `records::locate`; a header that does not
/// fit still ends the stream instead of panicking.
#[derive(Debug)]
pub(super) struct Fragments<'a> {
    buf: &'a [u8],
    /// Offset in `buf` of the next unread payload byte.
    at: usize,
    /// End in `buf` of the current record's payload.
    record_end: usize,
    /// Stream bytes handed out so far.
    consumed: usize,
}

impl<'a> Fragments<'a> {
    /// Reads the payloads of the records that fill `records` exactly.
    pub(super) fn new(records: &'a [u8]) -> Self {
        Self {
            buf: records,
            at: 0,
            record_end: 0,
            consumed: 0,
        }
    }

    /// The next `n` stream bytes if the current record holds them all: the fast path, as
    /// real hellos come in one record.
    #[inline(always)]
    fn take_in_record(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.record_end)?;
        let bytes = self.buf.get(self.at..end)?;
        self.at = end;
        self.consumed += n;
        Some(bytes)
    }

    /// Hands out up to `max` contiguous stream bytes, or `None` at the end of the records.
    fn next_chunk(&mut self, max: usize) -> Option<&'a [u8]> {
        while self.at >= self.record_end {
            let header = self
                .buf
                .get(self.record_end..self.record_end + RECORD_HEADER_LEN)?;
            let len = usize::from(u16::from_be_bytes([*header.get(3)?, *header.get(4)?]));
            self.at = self.record_end + RECORD_HEADER_LEN;
            self.record_end = self.at + len;
        }
        let n = max.min(self.record_end - self.at);
        let chunk = self.buf.get(self.at..self.at + n)?;
        self.at += n;
        self.consumed += n;
        Some(chunk)
    }
}

/// A reader that may not read past `end` (a position in the stream).
#[derive(Debug)]
pub(super) struct Reader<'f, 'a> {
    src: &'f mut Fragments<'a>,
    end: usize,
}

impl<'f, 'a> Reader<'f, 'a> {
    /// A reader over the whole stream.
    pub(super) fn new(src: &'f mut Fragments<'a>) -> Self {
        Self {
            src,
            end: usize::MAX,
        }
    }

    /// Bytes left before this reader's end.
    #[inline(always)]
    pub(super) fn left(&self) -> usize {
        self.end.saturating_sub(self.src.consumed)
    }

    /// Whether the reader is used up.
    #[inline(always)]
    pub(super) fn is_empty(&self) -> bool {
        self.left() == 0
    }

    /// The next byte.
    #[inline(always)]
    pub(super) fn u8(&mut self) -> Result<u8, Malformed> {
        let [b] = self.array()?;
        Ok(b)
    }

    /// The next big-endian `u16`.
    #[inline(always)]
    pub(super) fn u16(&mut self) -> Result<u16, Malformed> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// The next big-endian 24-bit length.
    pub(super) fn u24(&mut self) -> Result<usize, Malformed> {
        let [a, b, c] = self.array()?;
        Ok((usize::from(a) << 16) | (usize::from(b) << 8) | usize::from(c))
    }

    /// The next `N` bytes.
    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        if N > self.left() {
            return Err(Malformed::Truncated);
        }
        match self.src.take_in_record(N) {
            Some(bytes) => <[u8; N]>::try_from(bytes).map_err(|_| Malformed::Truncated),
            None => self.array_across_records(),
        }
    }

    /// [`Self::array`] when the bytes straddle records, which real clients never make happen.
    #[cold]
    #[inline(never)]
    fn array_across_records<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let mut bytes = [0; N];
        self.copy_to(&mut bytes)?;
        Ok(bytes)
    }

    /// Fills `out` with the next bytes.
    pub(super) fn copy_to(&mut self, out: &mut [u8]) -> Result<(), Malformed> {
        if out.len() > self.left() {
            return Err(Malformed::Truncated);
        }
        let mut filled = 0;
        while let Some(slot) = out.get_mut(filled..).filter(|s| !s.is_empty()) {
            let chunk = self
                .src
                .next_chunk(slot.len())
                .ok_or(Malformed::Truncated)?;
            slot.get_mut(..chunk.len())
                .ok_or(Malformed::Truncated)?
                .copy_from_slice(chunk);
            filled += chunk.len();
        }
        Ok(())
    }

    /// The next `n` bytes, borrowed, if they lie in one record.
    pub(super) fn take_in_record(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.left() {
            return None;
        }
        self.src.take_in_record(n)
    }

    /// Skips `n` bytes.
    #[inline(always)]
    pub(super) fn skip(&mut self, n: usize) -> Result<(), Malformed> {
        if n > self.left() {
            return Err(Malformed::Truncated);
        }
        if self.src.take_in_record(n).is_some() {
            return Ok(());
        }
        let mut left = n;
        while left > 0 {
            left -= self.src.next_chunk(left).ok_or(Malformed::Truncated)?.len();
        }
        Ok(())
    }

    /// Skips to this reader's end.
    #[inline(always)]
    pub(super) fn skip_rest(&mut self) -> Result<(), Malformed> {
        self.skip(self.left())
    }

    /// A reader over the next `n` bytes. The caller reads it to its end (or calls
    /// [`Self::finish`]) before using `self` again.
    #[inline(always)]
    pub(super) fn sub(&mut self, n: usize) -> Result<Reader<'_, 'a>, Malformed> {
        if n > self.left() {
            return Err(Malformed::Truncated);
        }
        Ok(Reader {
            end: self.src.consumed + n,
            src: &mut *self.src,
        })
    }

    /// A reader over a block with a one-byte length prefix.
    #[inline(always)]
    pub(super) fn sub_u8(&mut self) -> Result<Reader<'_, 'a>, Malformed> {
        let n = self.u8()?;
        self.sub(usize::from(n))
    }

    /// A reader over a block with a two-byte length prefix.
    #[inline(always)]
    pub(super) fn sub_u16(&mut self) -> Result<Reader<'_, 'a>, Malformed> {
        let n = self.u16()?;
        self.sub(usize::from(n))
    }

    /// Checks that the block was read to its end.
    pub(super) fn finish(&self) -> Result<(), Malformed> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Malformed::TrailingBytes)
        }
    }
}
