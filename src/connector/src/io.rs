//! Vectored writes on tokio's borrowed-buffer I/O.

use std::io::{self, IoSlice};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use sluice_proto::mux::shell::WriteCursor;

/// Segments per `writev`.
const MAX_IOV: usize = 64;

/// Writes what is left in `cursor`, in order, with as few `writev` calls as the writer allows.
/// On an error the cursor says how far it got.
pub(crate) async fn write_all<W: AsyncWrite + Unpin>(
    w: &mut W,
    cursor: &mut WriteCursor,
) -> io::Result<()> {
    while !cursor.is_empty() {
        let n = {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let k = cursor.slices(&mut slices);
            w.write_vectored(&slices[..k]).await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        cursor.advance(n);
    }
    Ok(())
}
