//! The master's own error: why it cannot start or its configuration is unusable (the
//! operator's doing). Each layer below has its own: [`StoreError`], [`AccountError`].

use std::path::PathBuf;

use crate::accounts::AccountError;
use crate::store::StoreError;

/// Why the master cannot start, or a configuration cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// A setting is missing or has an unusable value.
    #[error("configuration: {0}")]
    Config(String),
    /// A file the configuration names cannot be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The listening socket cannot be bound or served.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The store cannot be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The account layer cannot start (its signing key).
    #[error(transparent)]
    Accounts(#[from] AccountError),
    /// The block list cannot be read.
    #[error(transparent)]
    Versions(#[from] crate::versions::VersionError),
}
