//! The few I/O helpers monoio does not have. The only `unsafe` in the edge lives here, each
//! block with the reason it is sound.

#![allow(unsafe_code)]

use bytes::Bytes;
use bytes::BytesMut;
use monoio::buf::{IoBufMut, IoVecBuf};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, CancelableAsyncReadRent, Canceller, OwnedReadHalf,
};
use monoio::net::TcpStream;
use sluice_proto::mux::shell::WriteCursor;
use std::io;
use std::os::fd::{FromRawFd, IntoRawFd};

/// Owned segments for one vectored write: the kernel reads them through `iov` while the write
/// is in flight, and they cannot be freed before it ends because the runtime owns this value.
pub(crate) struct Segments {
    cursor: WriteCursor,
    iov: Vec<libc::iovec>,
}

impl Segments {
    pub(crate) fn new(bufs: Vec<Bytes>) -> Self {
        let mut s = Self {
            cursor: WriteCursor::new(bufs),
            iov: Vec::new(),
        };
        s.rebuild();
        s
    }

    fn rebuild(&mut self) {
        self.iov.clear();
        self.iov.extend(self.cursor.segments().map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        }));
    }

    /// Drops the first `n` bytes (after a partial write).
    fn advance(&mut self, n: usize) {
        self.cursor.advance(n);
        self.rebuild();
    }

    fn is_empty(&self) -> bool {
        self.cursor.is_empty()
    }
}

// SAFETY: `iov` points into the cursor's segments, whose heap storage does not move while this
// value is owned by the runtime (`Bytes` data is heap-allocated or static and the cursor is not
// mutated during the operation); `read_iovec_len` is exactly the number of entries in `iov`.
unsafe impl IoVecBuf for Segments {
    fn read_iovec_ptr(&self) -> *const libc::iovec {
        self.iov.as_ptr()
    }

    fn read_iovec_len(&self) -> usize {
        self.iov.len()
    }
}

/// Writes every segment, in order, with as few `writev` calls as the socket allows.
pub(crate) async fn write_all_segments<W: AsyncWriteRent>(
    w: &mut W,
    bufs: Vec<Bytes>,
) -> io::Result<()> {
    let mut segs = Segments::new(bufs);
    while !segs.is_empty() {
        let (res, back) = w.writev(segs).await;
        segs = back;
        match res {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => segs.advance(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Waits until the read half has bytes (or EOF), without lending the kernel a buffer: an idle
/// connection then holds no read buffer at all.
pub(crate) async fn readable(half: &OwnedReadHalf<TcpStream>) -> io::Result<()> {
    // SAFETY: monoio's own split hands both halves `&mut` access to the same `TcpStream` through
    // this `UnsafeCell` (its `Split` contract: the stream's operations only share the fd). Both
    // halves live on this thread and the executor never runs two tasks at once; `readable`
    // takes `&self` and only submits a poll on the fd.
    let stream = unsafe { &*half.0.get() };
    stream.readable(true).await
}

/// Detaches a connection from this worker's runtime, for handing it to another worker.
pub(crate) fn into_std(stream: TcpStream) -> std::net::TcpStream {
    let fd = stream.into_raw_fd();
    // SAFETY: `into_raw_fd` deregistered the socket from this runtime and gave up ownership of
    // the descriptor, which is an open TCP socket; nothing else owns it now.
    unsafe { std::net::TcpStream::from_raw_fd(fd) }
}

/// [`read_append`] that gives up once `stop` resolves. Giving up cancels the operation and
/// waits for its end, so bytes the kernel delivered meanwhile are kept, never lost: the answer
/// is then either what was read or an error, and `true` says that `stop` fired.
pub(crate) async fn read_append_until<R: CancelableAsyncReadRent>(
    r: &mut R,
    buf: BytesMut,
    stop: impl Future<Output = ()>,
) -> (io::Result<usize>, BytesMut, bool) {
    let len = buf.len();
    let canceller = Canceller::new();
    let read = r.cancelable_read(buf.slice_mut(len..), canceller.handle());
    let mut read = std::pin::pin!(read);
    let finished = monoio::select! {
        done = &mut read => Some(done),
        _ = stop => None,
    };
    let (stopped, (res, slice)) = match finished {
        Some(done) => (false, done),
        None => {
            let _cancelled = canceller.cancel();
            (true, read.await)
        }
    };
    (res, slice.into_inner(), stopped)
}

/// Reads into the spare capacity of `buf`, after the bytes it holds. (monoio's `read` fills a
/// buffer from its start, overwriting what is there.)
pub(crate) async fn read_append<R: AsyncReadRent>(
    r: &mut R,
    buf: BytesMut,
) -> (io::Result<usize>, BytesMut) {
    let len = buf.len();
    let (res, slice) = r.read(buf.slice_mut(len..)).await;
    (res, slice.into_inner())
}
