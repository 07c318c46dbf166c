//! Host names as Sluice routes them: normalized, validated, cheap to compare.
//!
//! SniTun matches the SNI against the token's names byte for byte, so `A.EXAMPLE.TEST` and
//! `a.example.test.` miss a tunnel registered as `a.example.test`. Sluice normalizes every
//! name the same way wherever it enters (SNI, token, config): ASCII lower case, at most one
//! trailing dot removed. Anything that is not a DNS host name is refused at the door, so the
//! routing table only ever holds names a browser could send.

use std::fmt;

use crate::limits::{MAX_HOSTNAME_LEN, MAX_LABEL_LEN};

/// A validated, normalized DNS host name (`a.example.test`).
///
/// Invariants: 1..=253 bytes; dot-separated labels of 1..=63 bytes of ASCII lower-case letters,
/// digits, `-` and `_`; no label starts or ends with `-`; no trailing dot; not an IPv4 literal.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hostname(Box<str>);

/// Why a byte string is not a host name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostnameError {
    /// The name is empty (or only a dot).
    #[error("host name is empty")]
    Empty,
    /// The name is longer than [`MAX_HOSTNAME_LEN`].
    #[error("host name is longer than {MAX_HOSTNAME_LEN} bytes")]
    TooLong,
    /// A label is empty (`a..b`) or longer than [`MAX_LABEL_LEN`].
    #[error("host name has an empty label or one longer than {MAX_LABEL_LEN} bytes")]
    BadLabelLength,
    /// A byte outside `[A-Za-z0-9_-]` (non-ASCII names must arrive as punycode).
    #[error("host name contains a byte that is not a letter, digit, '-' or '_'")]
    BadByte,
    /// A label starts or ends with `-`.
    #[error("host name label starts or ends with '-'")]
    BadHyphen,
    /// The name is an IP address literal, which SNI forbids (RFC 6066 §3).
    #[error("an IP address is not a host name")]
    IpLiteral,
}

impl Hostname {
    /// Validates and normalizes `raw`: ASCII lower case, one trailing dot removed.
    pub fn parse(raw: &[u8]) -> Result<Self, HostnameError> {
        let raw = raw.strip_suffix(b".").unwrap_or(raw);
        if raw.is_empty() {
            return Err(HostnameError::Empty);
        }
        if raw.len() > MAX_HOSTNAME_LEN {
            return Err(HostnameError::TooLong);
        }
        let mut all_numeric_last = false;
        for label in raw.split(|&b| b == b'.') {
            if label.is_empty() || label.len() > MAX_LABEL_LEN {
                return Err(HostnameError::BadLabelLength);
            }
            if !label
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(HostnameError::BadByte);
            }
            if label.starts_with(b"-") || label.ends_with(b"-") {
                return Err(HostnameError::BadHyphen);
            }
            all_numeric_last = label.iter().all(u8::is_ascii_digit);
        }
        // A top-level label of digits only is an IPv4 literal (or something no DNS resolves).
        if all_numeric_last {
            return Err(HostnameError::IpLiteral);
        }
        let mut lower = raw.to_vec();
        lower.make_ascii_lowercase();
        // Every byte was checked to be ASCII above.
        match String::from_utf8(lower) {
            Ok(s) => Ok(Self(s.into_boxed_str())),
            Err(_) => Err(HostnameError::BadByte),
        }
    }

    /// The normalized name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Hostname {
    type Err = HostnameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes())
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for Hostname {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, expected: Result<&str, HostnameError>) {
        let got = Hostname::parse(raw.as_bytes());
        assert_eq!(
            got.as_ref().map(Hostname::as_str),
            expected.as_ref().map(|s| *s),
            "{raw:?}"
        );
    }

    #[test]
    fn normalizes_and_validates() {
        check("a.example.test", Ok("a.example.test"));
        check("A.EXAMPLE.Test", Ok("a.example.test"));
        check("a.example.test.", Ok("a.example.test"));
        check("localhost", Ok("localhost"));
        check("xn--bcher-kva.example", Ok("xn--bcher-kva.example"));
        check("_acme.example.test", Ok("_acme.example.test"));
        check("1password.com", Ok("1password.com"));
        check("a.example.test..", Err(HostnameError::BadLabelLength));
        check("", Err(HostnameError::Empty));
        check(".", Err(HostnameError::Empty));
        check("a..b", Err(HostnameError::BadLabelLength));
        check(".a", Err(HostnameError::BadLabelLength));
        check("-a.example", Err(HostnameError::BadHyphen));
        check("a-.example", Err(HostnameError::BadHyphen));
        check("a b.example", Err(HostnameError::BadByte));
        check("*.example.test", Err(HostnameError::BadByte));
        check("bücher.example", Err(HostnameError::BadByte));
        check("127.0.0.1", Err(HostnameError::IpLiteral));
        check("[::1]", Err(HostnameError::BadByte));
        check(&"a".repeat(64), Err(HostnameError::BadLabelLength));
        check(&"a".repeat(63), Ok(&"a".repeat(63)));
    }

    #[test]
    fn length_cap_counts_without_the_trailing_dot() {
        let label = "a".repeat(63);
        let name = format!("{label}.{label}.{label}.{}", "b".repeat(61)); // 253 bytes
        assert_eq!(name.len(), 253);
        assert!(Hostname::parse(name.as_bytes()).is_ok());
        assert!(Hostname::parse(format!("{name}.").as_bytes()).is_ok());
        let long = format!("{name}b");
        assert_eq!(
            Hostname::parse(long.as_bytes()),
            Err(HostnameError::TooLong)
        );
    }
}
