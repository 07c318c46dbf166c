//! The name of one edge of a fleet, as the operator gives it (`--edge-id eu-1`).
//!
//! The directory (issue 12) keys routes by it and the edge shows it in metric labels, so it
//! is held to what reads the same in an etcd key, a Prometheus label and a log line without
//! quoting: 1..=[`MAX_EDGE_ID_LEN`] bytes of ASCII lower-case letters, digits, `.`, `-` and
//! `_`, starting and ending with a letter or digit (so it is never `.`, `..` or a name that
//! looks like an option). Upper case is refused rather than folded: an id is compared byte
//! for byte across edges, and two spellings of one id on two machines would be two edges.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::limits::MAX_EDGE_ID_LEN;

/// A validated edge id. Cheap to clone: a directory holds one per remote route, and the
/// routes of one edge share its allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EdgeId(Arc<str>);

/// Why a string is not an edge id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EdgeIdError {
    /// The id is empty.
    #[error("edge id is empty")]
    Empty,
    /// The id is longer than [`MAX_EDGE_ID_LEN`] bytes.
    #[error("edge id is {0} bytes, longer than {MAX_EDGE_ID_LEN}")]
    TooLong(usize),
    /// A byte outside `[a-z0-9._-]`, at this offset.
    #[error("edge id has a byte other than a-z, 0-9, '.', '-' or '_' at offset {0}")]
    BadByte(usize),
    /// The first or last byte is `.`, `-` or `_`.
    #[error("edge id must start and end with a letter or digit")]
    BadEnd,
}

impl EdgeId {
    /// Validates `raw` (see the module doc for the rules).
    pub fn parse(raw: &str) -> Result<Self, EdgeIdError> {
        let bytes = raw.as_bytes();
        let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
            return Err(EdgeIdError::Empty);
        };
        if bytes.len() > MAX_EDGE_ID_LEN {
            return Err(EdgeIdError::TooLong(bytes.len()));
        }
        if let Some(at) = bytes.iter().position(|&b| {
            !(b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'))
        }) {
            return Err(EdgeIdError::BadByte(at));
        }
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        if !alnum(first) || !alnum(last) {
            return Err(EdgeIdError::BadEnd);
        }
        Ok(Self(raw.into()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for EdgeId {
    type Err = EdgeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for EdgeId {
    type Error = EdgeIdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<EdgeId> for String {
    fn from(id: EdgeId) -> Self {
        id.0.to_string()
    }
}

impl fmt::Display for EdgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EdgeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for EdgeId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_reads_the_same_everywhere() {
        for ok in ["eu-1", "a", "7", "edge_2.fra.example", "x9"] {
            assert_eq!(ok.parse::<EdgeId>().unwrap().as_str(), ok);
        }
        let longest = "a".repeat(MAX_EDGE_ID_LEN);
        assert_eq!(longest.parse::<EdgeId>().unwrap().to_string(), longest);
    }

    #[test]
    fn refuses_with_the_reason() {
        let bad = |s: &str| s.parse::<EdgeId>().unwrap_err();
        assert_eq!(bad(""), EdgeIdError::Empty);
        assert_eq!(
            bad(&"a".repeat(MAX_EDGE_ID_LEN + 1)),
            EdgeIdError::TooLong(MAX_EDGE_ID_LEN + 1)
        );
        assert_eq!(bad("Eu-1"), EdgeIdError::BadByte(0));
        assert_eq!(bad("eu 1"), EdgeIdError::BadByte(2));
        assert_eq!(bad("eu/1"), EdgeIdError::BadByte(2));
        assert_eq!(bad("édge"), EdgeIdError::BadByte(0));
        for end in ["-eu", "eu-", ".", "..", "_a", "a."] {
            assert_eq!(bad(end), EdgeIdError::BadEnd, "{end:?}");
        }
    }

    #[test]
    fn serde_goes_through_the_same_check() {
        let id: EdgeId = serde_json::from_str("\"eu-1\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"eu-1\"");
        assert!(serde_json::from_str::<EdgeId>("\"EU\"").is_err());
    }
}
