//! Adding the caller's address to HTTP/1 requests in terminate mode.
//!
//! The protocol work is sans I/O in [`sluice_proto::http1`] (the request rewriter, and the
//! response watcher that says when a connection stops being HTTP); it is re-exported here
//! under the path it had when it lived in this crate. [`crate::channel`] is the shell.

/// The error's name from when the rewriter lived here.
pub use sluice_proto::http1::Http1Error as RewriteError;
pub use sluice_proto::http1::*;
/// Longest request head accepted (the cap now lives in [`sluice_proto::limits`]).
pub use sluice_proto::limits::MAX_HTTP_HEAD_LEN as MAX_HEAD_LEN;
