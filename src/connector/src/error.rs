//! The connector's one public error type: few variants, stable, each saying whose move it is.

/// Why the connector could not do what it was asked, or why a tunnel ended.
///
/// Every variant carries a human-readable detail; match on the variant, not on the text.
/// Errors are `Clone` because they are also reported through [`crate::State`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable (bad address, certificate, access list...). Fix and
    /// restart; retrying does not help.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The credentials could not be loaded, are malformed, have expired, or may not be used
    /// (an aes-gcm key that was already used on another connection).
    #[error("credentials: {0}")]
    Credentials(String),
    /// The edge could not be reached (resolution, TCP connect, or a timeout doing so).
    #[error("cannot reach the edge: {0}")]
    Connect(String),
    /// The edge closed the connection during the handshake: it refused the token (unknown
    /// key, expired) or the answer (wrong AES key), or it is not a SniTun server.
    #[error("the edge refused the tunnel: {0}")]
    Refused(String),
    /// The edge speaks another multiplexer protocol version than the token says: it opened a
    /// channel in the other version's format (the real SniTun 0.40 ignores the token's version
    /// and speaks only protocol 0). The text names the version to issue the token with.
    /// Retrying with the same token does not help.
    #[error("the edge speaks another protocol version than the token: {0}")]
    ProtocolMismatch(String),
    /// An established tunnel ended: connection lost, keepalive unanswered, or the edge broke
    /// the protocol.
    #[error("tunnel lost: {0}")]
    Tunnel(String),
    /// The connector was shut down.
    #[error("connector stopped")]
    Stopped,
}
