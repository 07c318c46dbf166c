//! Every peer-controlled length or count has a named cap, and they all live here.
//!
//! `MAX_*` constants are hard protocol or sanity limits. `DEFAULT_*` constants are the
//! defaults of knobs an operator may change (within the `*_LIMIT` ceilings), usually through
//! [`crate::mux::MuxConfig`] or the edge configuration.

/// Longest host name, in bytes, without a trailing dot (RFC 1035 §2.3.4).
pub const MAX_HOSTNAME_LEN: usize = 253;
/// Longest DNS label, in bytes.
pub const MAX_LABEL_LEN: usize = 63;
/// Longest edge id ([`crate::EdgeId`]), in bytes: it names the edge in directory keys and
/// metric labels, where a short id keeps both readable.
pub const MAX_EDGE_ID_LEN: usize = 64;

/// Longest Fernet token accepted on a tunnel connection, in bytes of base64.
///
/// SniTun reads the token in a single read of at most 2048 (4096 in worker mode) bytes; a
/// minimal token is 332 bytes. 8 KiB leaves room for long alias lists.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
/// Most aliases a token may carry.
pub const MAX_ALIASES: usize = 64;

/// Default cap on a ClientHello handshake message (4-byte header included), in bytes.
///
/// Post-quantum key shares make browser hellos 1.5-2 KiB; a hello may span several TLS
/// records. 16 KiB is the largest a single TLS record can carry.
pub const DEFAULT_MAX_HELLO_LEN: usize = 16 * 1024;
/// Ceiling for the configurable ClientHello cap.
pub const MAX_HELLO_LEN_LIMIT: usize = 64 * 1024;
/// Largest payload of one plaintext TLS record (2^14, RFC 8446 §5.1). A longer record is
/// not TLS, whatever its header says.
pub const MAX_RECORD_PAYLOAD_LEN: usize = 16 * 1024;
/// Longest legacy session id a ClientHello may carry (RFC 8446 §4.1.2).
pub const MAX_SESSION_ID_LEN: usize = 32;

/// Default cap on the payload of one multiplexer frame we accept (the `SIZE` field).
///
/// SniTun enforces none, and its in-process TLS transport sends frames of about 4.2 MB.
/// Payloads are streamed to their channel as they arrive, so this bounds nonsense, not memory.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 8 * 1024 * 1024;
/// Ceiling for the configurable frame cap.
pub const MAX_FRAME_SIZE_LIMIT: u32 = 64 * 1024 * 1024;
/// Largest payload of a frame this crate sends; larger writes are split.
pub const MAX_SEND_FRAME_PAYLOAD: usize = 64 * 1024;
/// Largest `SIZE` of a protocol-2 NEW frame's encrypted caller address (`'6'` + 16 bytes,
/// padded to 32). Larger is a protocol violation.
pub const MAX_NEW_DATA_LEN: u32 = 64;
/// Largest `SIZE` tolerated (and skipped) on CLOSE, PING, PAUSE, RESUME and unknown flows,
/// which carry no payload.
pub const MAX_CONTROL_PAYLOAD: u32 = 64 * 1024;

/// Default limit on open channels per tunnel.
pub const DEFAULT_MAX_CHANNELS: usize = 1024;
/// Default high watermark of a channel's undelivered incoming bytes: above it a protocol-1+
/// peer is sent PAUSE.
pub const DEFAULT_INCOMING_HIGH: usize = 512 * 1024;
/// Default low watermark of a channel's undelivered incoming bytes: at or below it RESUME.
pub const DEFAULT_INCOMING_LOW: usize = 128 * 1024;
/// Default per-channel cap on undelivered incoming bytes: above it the tunnel stops reading
/// (TCP slows the peer), for at most [`DEFAULT_STALL_MAX`]. It leaves room above
/// [`DEFAULT_INCOMING_HIGH`] for what is usually in flight when PAUSE is sent (2-5 MiB
/// measured on loopback; more on a busy host, where the stall absorbs it).
pub const DEFAULT_CHANNEL_INCOMING_MAX: usize = 8 * 1024 * 1024;
/// Default cap on undelivered incoming bytes summed over a tunnel's channels: above it the
/// tunnel stops reading the same way; above half of it channels are paused early.
pub const DEFAULT_TUNNEL_INCOMING_MAX: usize = 32 * 1024 * 1024;
/// How long a tunnel may stop reading for a channel over its cap before the channels that
/// took nothing (protocol 1+: and those still over a cap) are closed (see
/// [`crate::mux::MuxConfig::stall_max`]).
pub const DEFAULT_STALL_MAX: std::time::Duration = std::time::Duration::from_secs(2);
/// Default high watermark of a channel's queued outgoing bytes: above it the local source
/// (browser or home server socket) is not read.
pub const DEFAULT_OUTGOING_HIGH: usize = 256 * 1024;
/// Default low watermark of a channel's queued outgoing bytes.
pub const DEFAULT_OUTGOING_LOW: usize = 64 * 1024;

/// Longest HTTP/1 message head (start line and header fields) that terminate mode reads, in
/// bytes, on either side of a connection. Browsers send a few KiB; large cookies stay far below.
pub const MAX_HTTP_HEAD_LEN: usize = 64 * 1024;
/// Longest chunk-size or trailer line of a chunked HTTP/1 body, CRLF included.
pub const MAX_HTTP_LINE_LEN: usize = 4096;
/// Most request bytes held back after a request that asks to switch protocols (`Upgrade` or
/// `CONNECT`), until the home server's answer says whether they are HTTP. Clients wait for
/// that answer before they send more (RFC 6455 §4.1), so anything held is a pipelined request.
pub const MAX_HTTP_HELD_LEN: usize = 64 * 1024;
/// Most requests on one HTTP/1 connection sent on to the home server and not yet answered.
/// Browsers do not pipeline; a client that does need not be far ahead of the server.
pub const MAX_HTTP_PENDING: usize = 256;

/// Longest PROXY protocol v1 line, in bytes, CRLF included (proxy-protocol.txt §2.1).
///
/// The spec's worst case is `PROXY UNKNOWN` followed by two full-length IPv6 addresses and
/// two 5-digit ports: 107 bytes. A line with no CRLF within this many bytes is invalid.
/// (SniTun allows 108, one more than the spec; a spec-following sender never needs it.)
pub const MAX_PROXY_V1_LEN: usize = 107;
/// Longest PROXY protocol v2 header we accept, in bytes: the 16-byte fixed part plus the
/// address block and TLVs its length field announces.
///
/// The length field allows 65,535; nothing legitimate comes close. The largest address
/// block is AF_UNIX (216 bytes). Sluice routes on the SNI, so a load balancer in front of it
/// does not terminate TLS and sends none of the SSL TLVs (the only registered TLV that can
/// be big is the client certificate). What remains (ALPN, authority ≤ 258, CRC32C 7, unique
/// id ≤ 131, NETNS, the cloud vendors' small endpoint-id TLVs) adds up to well under 1 KiB;
/// 2 KiB leaves room for surprises and still fits one socket read. SniTun's dual-port
/// listener gives up at 1500 bytes. Checked against the length field, before the bytes
/// arrive.
pub const MAX_PROXY_V2_LEN: usize = 16 + 2048;
