//! The key schema: what the directory writes in the store, and how it reads it back.
//!
//! Everything lives under [`PREFIX`] (`/sluice/v1/`), so one prefix watch sees the whole fleet
//! and a future `v2` can live beside it during an upgrade:
//!
//! | key | value (JSON) | lease |
//! |---|---|---|
//! | `/sluice/v1/edges/<edge-id>` | [`EdgeValue`]: `{"addr":"10.0.0.1:4443"}`, the edge's fleet listener | the edge's |
//! | `/sluice/v1/routes/<host-name>` | [`RouteValue`]: `{"edge":"eu-1","tunnel":7,"primary":true}` | the owning edge's |
//!
//! A route key is put by the edge whose tunnel claims the name, in a transaction that
//! compares the key's mod revision, and under that edge's lease, so it dies with the edge.
//! Whose it is reads from the value's `edge` and the key's lease together: an edge that
//! restarts under the same id has a new lease, and the routes of its previous life are not its
//! own.
//!
//! Decoding reads nothing the caps do not allow: a key longer than [`MAX_KEY_LEN`] or a value
//! longer than [`MAX_VALUE_LEN`] is refused before it is parsed. Unknown JSON fields are
//! ignored, so a newer edge may add some without breaking older ones.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use sluice_proto::{EdgeId, EdgeIdError, Hostname, HostnameError};

/// The prefix of every key the directory reads or writes; the watch covers it.
pub const PREFIX: &str = "/sluice/v1/";
/// Where edges register their fleet address.
pub const EDGES: &str = "/sluice/v1/edges/";
/// Where names are claimed.
pub const ROUTES: &str = "/sluice/v1/routes/";

/// Longest key read from the store, in bytes: the routes prefix and a 253-byte host name fit
/// with room to spare.
pub const MAX_KEY_LEN: usize = 512;
/// Longest value read from the store, in bytes. Route and edge values are well under 200.
pub const MAX_VALUE_LEN: usize = 1024;

/// A key of the schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    /// `/sluice/v1/edges/<id>`.
    Edge(EdgeId),
    /// `/sluice/v1/routes/<name>`.
    Route(Hostname),
}

/// What a route key holds: which tunnel of which edge claimed the name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteValue {
    /// The edge whose tunnel serves the name.
    pub edge: EdgeId,
    /// The tunnel's registration sequence number on that edge (unique within one lease).
    pub tunnel: u64,
    /// Whether the name is the tunnel's primary name (losing it ends the tunnel).
    pub primary: bool,
}

/// What an edge key holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EdgeValue {
    /// Where the other edges reach this one's fleet listener.
    pub addr: SocketAddr,
}

/// Who wrote something the directory cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// Whoever wrote the key or value: another edge (another version?) or an operator.
    Writer,
    /// The store itself answered something impossible (a revision going backwards).
    Store,
}

/// Why a key from the store is not one of the schema's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Longer than [`MAX_KEY_LEN`].
    #[error("key is {0} bytes, longer than {MAX_KEY_LEN}")]
    TooLong(usize),
    /// Not under [`PREFIX`], or under it in a section this version does not know (ignored:
    /// a newer version may have added it).
    #[error("key is not in a section this version knows")]
    UnknownSection,
    /// An edge key whose id is not an edge id.
    #[error("edge key: {0}")]
    EdgeId(#[from] EdgeIdError),
    /// A route key whose name is not a host name.
    #[error("route key: {0}")]
    Hostname(#[from] HostnameError),
    /// A route key whose name is a host name, but not in its normal form (`A.test`).
    #[error("route key is not in normal form")]
    NotNormal,
}

/// Why a value from the store is not what its key says it holds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// Longer than [`MAX_VALUE_LEN`].
    #[error("value is {0} bytes, longer than {MAX_VALUE_LEN}")]
    TooLong(usize),
    /// Not the JSON the key's section holds.
    #[error("value does not parse: {0}")]
    Json(String),
}

/// An entry the directory read and could not use, with who is to blame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The key is not the schema's.
    #[error("key {key:?}: {error}")]
    Key {
        /// The key, lossily as text, cut to [`MAX_KEY_LEN`].
        key: String,
        /// Why.
        error: KeyError,
    },
    /// The key is, its value is not.
    #[error("value of {key:?}: {error}")]
    Value {
        /// The key.
        key: Key,
        /// Why.
        error: ValueError,
    },
}

impl DecodeError {
    /// Who caused it: always the writer of the entry (the store only carries it).
    pub fn blame(&self) -> Blame {
        Blame::Writer
    }
}

impl Key {
    /// The key's bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Edge(id) => format!("{EDGES}{id}").into_bytes(),
            Self::Route(name) => format!("{ROUTES}{name}").into_bytes(),
        }
    }

    /// Reads a key from the store.
    pub fn decode(raw: &[u8]) -> Result<Self, KeyError> {
        if raw.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong(raw.len()));
        }
        if let Some(id) = raw.strip_prefix(EDGES.as_bytes()) {
            let id = std::str::from_utf8(id).map_err(|e| EdgeIdError::BadByte(e.valid_up_to()))?;
            return Ok(Self::Edge(EdgeId::parse(id)?));
        }
        if let Some(name) = raw.strip_prefix(ROUTES.as_bytes()) {
            let parsed = Hostname::parse(name)?;
            // Two spellings of one name would be two keys: only the normal one is a route.
            if parsed.as_str().as_bytes() != name {
                return Err(KeyError::NotNormal);
            }
            return Ok(Self::Route(parsed));
        }
        Err(KeyError::UnknownSection)
    }
}

impl RouteValue {
    /// The value's bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_json(self)
    }

    /// Reads a route value.
    pub fn decode(raw: &[u8]) -> Result<Self, ValueError> {
        decode_json(raw)
    }
}

impl EdgeValue {
    /// The value's bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_json(self)
    }

    /// Reads an edge value.
    pub fn decode(raw: &[u8]) -> Result<Self, ValueError> {
        decode_json(raw)
    }
}

fn encode_json<T: Serialize>(value: &T) -> Vec<u8> {
    // These structs hold strings, integers and booleans only: serializing cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode_json<T: for<'de> Deserialize<'de>>(raw: &[u8]) -> Result<T, ValueError> {
    if raw.len() > MAX_VALUE_LEN {
        return Err(ValueError::TooLong(raw.len()));
    }
    serde_json::from_slice(raw).map_err(|e| ValueError::Json(e.to_string()))
}

/// The key as text for an error message, cut to the cap.
pub(crate) fn lossy(raw: &[u8]) -> String {
    String::from_utf8_lossy(&raw[..raw.len().min(MAX_KEY_LEN)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_key(raw: &str, expected: Result<Key, KeyError>) {
        assert_eq!(Key::decode(raw.as_bytes()), expected, "{raw}");
    }

    #[test]
    fn keys() {
        let route = |n: &str| Key::Route(n.parse().unwrap());
        let edge = |n: &str| Key::Edge(n.parse().unwrap());
        check_key("/sluice/v1/routes/a.test", Ok(route("a.test")));
        check_key("/sluice/v1/edges/eu-1", Ok(edge("eu-1")));
        check_key("/sluice/v1/routes/A.test", Err(KeyError::NotNormal));
        check_key("/sluice/v1/routes/a.test.", Err(KeyError::NotNormal));
        check_key(
            "/sluice/v1/routes/",
            Err(KeyError::Hostname(HostnameError::Empty)),
        );
        check_key(
            "/sluice/v1/edges/EU",
            Err(KeyError::EdgeId(EdgeIdError::BadByte(0))),
        );
        check_key("/sluice/v1/masters/x", Err(KeyError::UnknownSection));
        check_key("/other/a", Err(KeyError::UnknownSection));
        let long = format!("/sluice/v1/routes/{}", "a".repeat(MAX_KEY_LEN));
        assert_eq!(
            Key::decode(long.as_bytes()),
            Err(KeyError::TooLong(long.len()))
        );
        assert_eq!(
            Key::decode(b"/sluice/v1/edges/\xff"),
            Err(KeyError::EdgeId(EdgeIdError::BadByte(0)))
        );
    }

    #[test]
    fn values() {
        let v = RouteValue {
            edge: "eu-1".parse().unwrap(),
            tunnel: 7,
            primary: true,
        };
        assert_eq!(
            v.encode(),
            br#"{"edge":"eu-1","tunnel":7,"primary":true}"#.to_vec()
        );
        assert_eq!(RouteValue::decode(&v.encode()), Ok(v.clone()));
        // Fields a newer version adds are ignored.
        assert_eq!(
            RouteValue::decode(br#"{"edge":"eu-1","tunnel":7,"primary":true,"new":1}"#),
            Ok(v)
        );
        assert!(matches!(
            RouteValue::decode(br#"{"edge":"EU","tunnel":7,"primary":true}"#),
            Err(ValueError::Json(_))
        ));
        assert!(matches!(
            RouteValue::decode(&[b' '; MAX_VALUE_LEN + 1]),
            Err(ValueError::TooLong(_))
        ));
        let e = EdgeValue {
            addr: "10.0.0.1:4443".parse().unwrap(),
        };
        assert_eq!(e.encode(), br#"{"addr":"10.0.0.1:4443"}"#.to_vec());
        assert_eq!(EdgeValue::decode(&e.encode()), Ok(e));
    }
}
