//! Read buffers recycled per thread.
//!
//! Every read from a local endpoint becomes `Bytes` that the multiplexer holds until the
//! frame is written to the edge. Allocated fresh, each read's buffer was freed after its
//! write, glibc handed the pages back, and the kernel faulted them in again on the next
//! read: page faults were 10 % of the connector's CPU in a download
//! (`flamegraphs/edge-connector-bulk.svg`). Here the last `Bytes` of a read gives its buffer
//! back to the thread it is dropped on, which keeps a few for the next reads.

use bytes::Bytes;
use std::cell::RefCell;

/// Bytes read from a local endpoint at a time: the capacity of every buffer.
pub(crate) const SIZE: usize = 32 * 1024;
/// Buffers a thread keeps for reuse (512 KiB); more are freed.
const KEEP_PER_THREAD: usize = 16;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer of [`SIZE`] bytes' capacity, a recycled one when there is one.
pub(crate) fn take() -> Vec<u8> {
    FREE.try_with(|f| f.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| Vec::with_capacity(SIZE))
}

/// What was read, as `Bytes` that return the buffer when the last of them is dropped.
pub(crate) fn freeze(buf: Vec<u8>) -> Bytes {
    Bytes::from_owner(Recycled(buf))
}

struct Recycled(Vec<u8>);

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        buf.clear();
        // On a thread being torn down the buffer is simply freed.
        let _ = FREE.try_with(|f| {
            let mut free = f.borrow_mut();
            if free.len() < KEEP_PER_THREAD {
                free.push(buf);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_when_its_last_slice_is_dropped() {
        let mut buf = take();
        buf.extend_from_slice(b"hello, world");
        let ptr = buf.as_ptr();
        let bytes = freeze(buf);
        let tail = bytes.slice(7..);
        drop(bytes);
        // A slice still holds it: the next buffer is another one.
        let other = take();
        assert_ne!(other.as_ptr(), ptr);
        assert_eq!(&tail[..], b"world");
        drop(tail);
        let again = take();
        assert_eq!(again.as_ptr(), ptr, "the buffer was recycled");
        assert!(again.is_empty());
    }

    #[test]
    fn the_free_list_is_bounded() {
        let held: Vec<Bytes> = (0..KEEP_PER_THREAD + 8).map(|_| freeze(take())).collect();
        drop(held);
        assert_eq!(FREE.with(|f| f.borrow().len()), KEEP_PER_THREAD);
    }
}
