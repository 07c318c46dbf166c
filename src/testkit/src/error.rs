//! The one error type of this crate.
//!
//! Every variant says what was going on, and the ones about child processes carry the tail of
//! the process log, so that a failed test shows why without digging.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// What went wrong while setting up or driving a test peer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A bounded wait ran out.
    #[error(
        "timed out after {after:?} waiting for {what}{}",
        log_suffix(log, log_tail)
    )]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it was awaited.
        after: Duration,
        /// The log of the process concerned, if any.
        log: Option<PathBuf>,
        /// The last lines of that log.
        log_tail: String,
    },
    /// A child process exited when it should have kept running.
    #[error("{what} exited ({status}){}", log_suffix(log, log_tail))]
    Exited {
        /// Which process.
        what: String,
        /// Its exit status, in words.
        status: String,
        /// Its log.
        log: Option<PathBuf>,
        /// The last lines of that log.
        log_tail: String,
    },
    /// A SniTun peer release cannot be used on this machine.
    #[error("snitun {release} is unavailable: {reason}")]
    Unavailable {
        /// The release, e.g. `0.47.0`.
        release: &'static str,
        /// Why, in plain words.
        reason: String,
    },
    /// Anything else, in words.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// An [`Error::Io`] with context.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn log_suffix(log: &Option<PathBuf>, tail: &str) -> String {
    match log {
        Some(path) if tail.is_empty() => format!("; log {} is empty", path.display()),
        Some(path) => format!("; last lines of {}:\n{tail}", path.display()),
        None => String::new(),
    }
}

/// Adds context to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}
